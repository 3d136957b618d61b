"""TensorBoard in a real browser: headless Chromium renders the Scalars, Images and HParams dashboards
over a log root made by a short run and a short sweep. Screenshots are kept as test artifacts."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import matplotlib.image
import numpy as np
import pytest

from tfsoftmax import train, tune
from tfsoftmax.config import load_config

from conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TFSOFTMAX_TEST_ARTIFACTS", ROOT / "logs" / "test-artifacts"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.tensorboard,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")]


def _pixels(png: bytes) -> np.ndarray:
    """A screenshot as 8-bit RGB, shape (height, width, 3)."""
    return (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(np.uint8)


def _assert_not_blank(pixels: np.ndarray, what: str, min_colours: int) -> None:
    """A blank, uniform or barely drawn picture has few colours, or few pixels off its commonest one
    (the background)."""
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    foreground = 1 - counts.max() / counts.sum()
    assert len(colours) >= min_colours and foreground >= 0.05, (
        f"{what} looks blank: {len(colours)} colours, {foreground:.1%} off the background")


def _assert_dashboard_draws_data(page: Page, dashboard: str, min_images: int) -> None:
    """What a dashboard draws from the logs, which TensorBoard without data lacks though its header and
    sidebar still render: each image tag's picture decoded and not uniform, and coloured run lines in
    each scalar chart (its axes and grid are grey)."""
    if dashboard == "images":
        images = page.locator("img")
        assert images.count() >= min_images
        for i in range(images.count()):
            assert images.nth(i).evaluate("image => image.decode().then(() => image.naturalWidth)") > 0
            picture = _pixels(images.nth(i).screenshot())
            _assert_not_blank(picture, f"image {i} on the images dashboard", 16)
            assert picture.std() > 10, f"image {i} on the images dashboard is nearly uniform"
    if dashboard == "scalars":
        charts = page.locator("vz-line-chart2")
        assert charts.count() >= 1
        for i in range(charts.count()):
            chart = _pixels(charts.nth(i).screenshot()).astype(int)
            coloured = int((chart.max(axis=-1) - chart.min(axis=-1) > 80).sum())
            assert coloured > 200, f"scalar chart {i} has no run lines: {coloured} coloured pixels"


def test_dashboards_render_runs_tags_and_trial_hyperparameters(write_config: Callable[..., Path],
                                                                tensorboard: Callable) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    run = train.run(load_config(write_config("[train]\nepochs = 3", name="browser_run")))
    sweep = load_config(write_config('[sweep]\nalgorithm = "grid"\nmax_trials = 2\nepochs = 2\n[sweep.space]\n'
                                     '"train.lr" = { values = [0.2, 0.5] }\n"data.batch_size" = { values = [8] }',
                                     name="browser_sweep"))
    tune.search(sweep)
    root = Path(sweep.logging.root)
    board = tensorboard(root)
    board.wait_for(lambda: len(board.get("/data/runs")) >= 9)
    expected = {
        "scalars": [f"browser_run/{run.run_dir.name}/train", "browser_sweep/0/execution0", "epoch_accuracy",
                    "epoch_learning_rate", "epoch_examples_per_second"],
        "images": ["test/predictions", "test/confusion_matrix", "model/weight_templates"],
        "hparams": ["train.lr", "data.batch_size", "validation accuracy", "train examples_per_second"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots: dict[str, bytes] = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for dashboard, words in expected.items():
            page.goto(f"{board.url}/#{dashboard}")
            for word in words:  # text locators pierce TensorBoard's shadow DOM; each waits up to 30 s
                page.get_by_text(word, exact=False).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # let charts and images finish drawing before the screenshot
            shots[dashboard] = page.screenshot(path=str(ARTIFACTS / f"tensorboard-{dashboard}.png"))
            _assert_dashboard_draws_data(page, dashboard, len(expected["images"]))
        browser.close()
    for dashboard, png in shots.items():
        _assert_not_blank(_pixels(png), f"the {dashboard} dashboard", 200)
