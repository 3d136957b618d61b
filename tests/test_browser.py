"""TensorBoard in a real browser: headless Chromium renders the Scalars, Images and HParams dashboards
over a log root made by a short run and a short sweep. Screenshots are kept as test artifacts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from tfsoftmax import train, tune
from tfsoftmax.config import load_config

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TFSOFTMAX_TEST_ARTIFACTS", ROOT / "logs" / "test-artifacts"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.tensorboard,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")]


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
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for dashboard, words in expected.items():
            page.goto(f"{board.url}/#{dashboard}")
            for word in words:  # text locators pierce TensorBoard's shadow DOM; each waits up to 30 s
                page.get_by_text(word, exact=False).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # let charts and images finish drawing before the screenshot
            page.screenshot(path=str(ARTIFACTS / f"tensorboard-{dashboard}.png"))
        browser.close()
    for dashboard in expected:
        assert (ARTIFACTS / f"tensorboard-{dashboard}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
