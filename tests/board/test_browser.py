"""TensorBoard in a real browser: headless Chromium renders the dashboards over a log root made by a short
run and a short sweep on tiny data, and over real Fashion-MNIST runs and a real sweep, whose screenshots
are the docs' (docs/images/). Screenshots are kept as test artifacts."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import matplotlib.image
import numpy as np
import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.sweeps import tune
from tfsoftmax.training import train

from conftest import ROOT, SHARED_FASHION

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TFSOFTMAX_TEST_ARTIFACTS", ROOT / "logs" / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The original files TFDS prepares Fashion-MNIST from, where the real-data test finds them.
REAL_FASHION = Path(os.environ.get("TFSOFTMAX_MANUAL_DIR") or SHARED_FASHION)
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.tensorboard,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)"),
]


def _pixels(png: bytes) -> np.ndarray:
    """A screenshot as 8-bit RGB, shape (height, width, 3)."""
    return (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(np.uint8)


def _assert_not_blank(pixels: np.ndarray, what: str, min_colours: int) -> None:
    """A blank, uniform or barely drawn picture has few colours, or few pixels off its commonest one
    (the background)."""
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    foreground = 1 - counts.max() / counts.sum()
    assert len(colours) >= min_colours and foreground >= 0.05, (
        f"{what} looks blank: {len(colours)} colours, {foreground:.1%} off the background"
    )


def _assert_dashboard_draws_data(view: Page | Locator, dashboard: str, min_images: int) -> None:
    """What a dashboard (the page, or the pane of it that matters) draws from the logs, which TensorBoard
    without data lacks though its header and sidebar still render: each image tag's picture decoded and not
    uniform, and coloured run lines in each scalar chart (its axes and grid are grey)."""
    if dashboard == "images":
        images = view.locator("img")
        assert images.count() >= min_images
        for i in range(images.count()):
            assert images.nth(i).evaluate("image => image.decode().then(() => image.naturalWidth)") > 0
            picture = _pixels(images.nth(i).screenshot())
            _assert_not_blank(picture, f"image {i} on the images dashboard", 16)
            assert picture.std() > 10, f"image {i} on the images dashboard is nearly uniform"
    if dashboard == "scalars":
        charts = view.locator("vz-line-chart2")
        assert charts.count() >= 1
        for i in range(charts.count()):
            chart = _pixels(charts.nth(i).screenshot()).astype(int)
            coloured = int((chart.max(axis=-1) - chart.min(axis=-1) > 80).sum())
            assert coloured > 200, f"scalar chart {i} has no run lines: {coloured} coloured pixels"


def test_dashboards_render_runs_tags_and_trial_hyperparameters(
    write_config: Callable[..., Path], tensorboard: Callable
) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    run = train.run(load_config(write_config("[train]\nepochs = 3", name="browser_run")))
    sweep = load_config(
        write_config(
            '[sweep]\nalgorithm = "grid"\nmax_trials = 2\nepochs = 2\n[sweep.space]\n'
            '"train.lr" = { values = [0.2, 0.5] }\n"data.batch_size" = { values = [8] }',
            name="browser_sweep",
        )
    )
    tune.search(sweep)
    root = Path(sweep.logging.root)
    board = tensorboard(root)
    board.wait_for(lambda: len(board.get("/data/runs")) >= 9)
    expected = {
        "scalars": [
            f"browser_run/{run.run_dir.name}/train",
            "browser_sweep/0/execution0",
            "epoch_accuracy",
            "epoch_learning_rate",
            "epoch_examples_per_second",
        ],
        "images": ["test/predictions", "test/confusion_matrix", "model/weight_templates"],
        "hparams": ["train.lr", "data.batch_size", "validation accuracy", "train examples_per_second"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots: dict[str, bytes] = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for dashboard, words in expected.items():
            # Per-epoch tags only: single-point charts (best/*) are dots, which the line check cannot see.
            page.goto(
                f"{board.url}/"
                + (_fragment(dashboard, tagFilter="epoch_") if dashboard == "scalars" else f"#{dashboard}")
            )
            for word in words:  # text locators pierce TensorBoard's shadow DOM; each waits up to 30 s
                page.get_by_text(word, exact=False).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # let charts and images finish drawing before the screenshot
            shots[dashboard] = page.screenshot(path=str(ARTIFACTS / f"tensorboard-{dashboard}.png"))
            drawn = (
                page.locator("tf-category-paginated-view", has_text="Tags matching") if dashboard == "scalars" else page
            )
            _assert_dashboard_draws_data(drawn, dashboard, len(expected["images"]))
        browser.close()
    for dashboard, png in shots.items():
        _assert_not_blank(_pixels(png), f"the {dashboard} dashboard", 200)


@pytest.fixture
def real_log_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A log root as a user's looks on the real Fashion-MNIST: the reference run, two of D2L's learning-rate
    runs (full length) and a six-trial random sweep. Returns it and the reference run's name."""
    monkeypatch.setenv("TFSOFTMAX_MANUAL_DIR", str(REAL_FASHION))
    root = [f'logging.root = "{tmp_path}"']
    experiments = ROOT / "experiments"
    reference = train.run(load_config(experiments / "fashion_mnist.toml", root))
    for lr in ("0.03", "1.0"):
        train.run(load_config(experiments / f"d2l_lr_{lr}.toml", root))
    tune.search(
        load_config(
            experiments / "fashion_mnist_sweep.toml",
            [*root, "sweep.max_trials=6", "sweep.epochs=3", 'sweep.algorithm="random"'],
        )
    )
    return tmp_path, reference.run_dir.name


def _fragment(dashboard: str, **state: str) -> str:
    """A dashboard's address: TensorBoard keeps its filters in the URL fragment (tagFilter: tags, regexInput:
    runs, _smoothingWeight), so a screenshot shows the same view on every machine."""
    return "#" + "&".join([dashboard, *(f"{key}={quote(value, safe='')}" for key, value in state.items())])


def _scroll_into_view(page: Page, pictures: Locator) -> None:
    """Scroll TensorBoard's main panel (the page itself does not scroll) just far enough that the lowest of
    the pictures ends inside the viewport, keeping the ones above it on screen. A card's title shows before
    its picture loads, so this waits for a picture first."""
    pictures.first.wait_for(timeout=30_000)
    boxes = (pictures.nth(i).bounding_box() for i in range(pictures.count()))
    bottom = max(box["y"] + box["height"] for box in boxes if box is not None)
    page.mouse.move(900, 500)
    page.mouse.wheel(0, max(0, bottom + 16 - page.viewport_size["height"]))


def _show_what_a_user_looks_for(page: Page, dashboard: str, sessions: int) -> None:
    """The clicks that make a dashboard's screenshot tell its story, beyond what the URL fragment sets."""
    if dashboard == "scalars":  # lr 1.0's bad epochs are the point of its curve, not outliers to clip
        page.get_by_text("Ignore outliers in chart scaling").click()
    if dashboard == "images":
        _scroll_into_view(page, page.locator("img"))
    if dashboard == "hparams-parallel":
        page.get_by_text("PARALLEL COORDINATES VIEW").click()
        # An axis of seconds per epoch measures the machine, not the hyperparameters: leave it out.
        page.locator("paper-checkbox", has_text="train time_s").click()
        # The sweep samples lr on a log scale and batch sizes are powers of two; the scatter plot view,
        # hidden, has the same buttons.
        for key in ("train.lr", "data.batch_size"):
            page.locator(f'[id="logScaleButton_{key}"] >> visible=true').click()
        lines = page.locator("tf-hparams-parallel-coords-plot .foreground path")
        lines.nth(sessions - 1).wait_for(state="attached", timeout=30_000)
        assert lines.count() == sessions, f"parallel coordinates: {lines.count()} lines for {sessions} sessions"


@pytest.mark.skipif(
    not all((REAL_FASHION / name).is_file() for name in FASHION_FILES),
    reason=f"needs the original Fashion-MNIST files ({', '.join(FASHION_FILES)}) in "
    "$TFSOFTMAX_MANUAL_DIR or ../shared/datasets/fashion_mnist",
)
def test_real_runs_and_sweep_show_garments_templates_and_trials_on_every_dashboard(
    real_log_root: tuple[Path, str], tensorboard: Callable
) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    root, reference = real_log_root
    run = f"fashion_mnist/{reference}"
    board = tensorboard(root)
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    sessions = 9  # every run and every trial is a row of HParams; all are loaded before the first screenshot
    board.wait_for(lambda: len(board.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]) == sessions)
    board.wait_for(lambda: len(board.get("/data/plugin/images/tags")) == 3)
    # dashboard: (its view, the texts it must show). Scalars, histograms and images leave out the sweep's
    # 3-epoch trials, which HParams compares; text shows the reference run's complete config.
    views = {
        "scalars": (
            _fragment(
                "scalars",
                tagFilter="epoch_accuracy|epoch_loss",
                regexInput="fashion_mnist/|d2l_lr",
                _smoothingWeight="0",
            ),
            [f"{run}/train", f"{run}/validation", "d2l_lr/lr_1.0/validation", "epoch_accuracy", "epoch_loss"],
        ),
        "images": (
            _fragment("images", regexInput="^fashion_mnist/"),
            ["model/weight_templates", "test/confusion_matrix", "test/predictions", run],
        ),
        "histograms": (
            _fragment("histograms", tagFilter="kernel", regexInput="fashion_mnist/|d2l_lr"),
            ["softmax_regression/dense/kernel/histogram", f"{run}/train", "d2l_lr/lr_1.0/train"],
        ),
        "text": (_fragment("text", regexInput="^fashion_mnist/"), ["config", run, "[train]", "lr = 0.1"]),
        "hparams": (
            _fragment("hparams"),
            ["train.lr", "data.batch_size", "validation accuracy", "lr_0.03", "lr_1.0", reference],
        ),
        "hparams-parallel": (_fragment("hparams"), ["PARALLEL COORDINATES VIEW", "train.lr", "validation accuracy"]),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for dashboard, (fragment, words) in views.items():
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{board.url}/{fragment}")
            for word in words:  # text locators pierce TensorBoard's shadow DOM; each waits up to 30 s
                page.get_by_text(word, exact=False).first.wait_for(timeout=30_000)
            _show_what_a_user_looks_for(page, dashboard, sessions)
            page.wait_for_timeout(2000)  # let charts and images finish drawing before the screenshot
            png = page.screenshot(path=str(ARTIFACTS / f"tensorboard-real-{dashboard}.png"))
            _assert_not_blank(_pixels(png), f"the real {dashboard} dashboard", 200)
            # Single-point charts (best/*) are dots, not lines: only the filtered pane's charts must have lines.
            drawn = (
                page.locator("tf-category-paginated-view", has_text="Tags matching") if dashboard == "scalars" else page
            )
            _assert_dashboard_draws_data(drawn, dashboard, 3)
            page.close()
        browser.close()
