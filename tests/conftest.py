"""Shared fixtures: seeds, a tiny generated dataset behind the real loader, TFDS's mock data behind a
prepared copy, a TensorBoard client."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's compilation cache (`training.compile_cache`) for every process of the suite, outside the user's own.
os.environ.setdefault("TFSOFTMAX_XLA_CACHE", str(Path(tempfile.gettempdir()) / f"tfsoftmax-tests-xla-{os.getuid()}"))

ROOT = Path(__file__).resolve().parent.parent
SHARED_FASHION = ROOT.parent / "shared" / "datasets" / "fashion_mnist"
TINY_TRAIN, TINY_TEST = 120, 40
MOCK_EXAMPLES = 40  # per split; TFDS's mock gives train and test the same examples


def striped(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28 x 28 images, each with a bright stripe where its label says: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int32)
    x = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.3
    for i, label in enumerate(y):
        x[i, 2 + 2 * label : 4 + 2 * label] += 0.7
    return x, y


def write_tiny_cache(data_dir: Path, train: int = TINY_TRAIN, test: int = TINY_TEST, seed: int = 0) -> None:
    """A small learnable Fashion-MNIST look-alike, stored where the loader keeps its decoded arrays.

    Each class is a bright stripe at its own row, so a linear model learns it in a few epochs.
    """
    from tfsoftmax.data import CACHE_NAME

    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n).astype(np.int32)
        x = rng.integers(0, 60, size=(n, 28, 28, 1)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 + 2 * label : 4 + 2 * label, :, 0] = 250
        return x, y

    (train_x, train_y), (test_x, test_y) = make(train), make(test)
    folder = data_dir / "fashion_mnist" / "3.0.1"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / CACHE_NAME,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        checksum=np.array("tiny-generated"),
    )


@contextlib.contextmanager
def mock_prepared(name: str, data_dir: Path) -> Iterator[None]:
    """TFDS's mock examples for `name`, behind what a prepared copy leaves in `data_dir`: its metadata.

    Without it (mock policy USE_CODE) the builder points at a folder that does not exist, so it is never
    prepared, and its splits have no sizes (reading a whole split aborts the interpreter). With it (policy
    USE_FILES) the builder is prepared, as after a real download, with train and test of MOCK_EXAMPLES each.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(
                    name=split,
                    shard_lengths=[MOCK_EXAMPLES],
                    num_bytes=0,
                    filename_template=tfds.core.ShardedFileTemplate(
                        data_dir=builder.data_path, dataset_name=name, split=split, filetype_suffix="tfrecord"
                    ),
                )
                for split in ("train", "test")
            ]
        )
    )
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=str(data_dir)):
        yield


@pytest.fixture(autouse=True)
def _seed() -> None:
    import random

    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _clear_dataset_cache() -> Iterator[None]:
    """Each test sees its own data_dir; the per-process cache must not leak between tests."""
    from tfsoftmax import data

    data.source._LOADED.clear()
    yield
    data.source._LOADED.clear()


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tfds"
    write_tiny_cache(folder)
    return folder


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an experiment file: the tiny data, a temporary log root, and whatever the test adds."""

    def write(text: str = "", name: str = "tiny", data_dir: Path | None = None) -> Path:
        data_dir = data_dir or tmp_path / "tfds"
        if not (data_dir / "fashion_mnist").exists():
            write_tiny_cache(data_dir)
        sections: dict[str, list[str]] = {
            "data": [f'data_dir = "{data_dir}"', "batch_size = 16"],
            "train": ["epochs = 2", "lr = 0.5"],
            "logging": [f'root = "{tmp_path / "logs"}"', "num_images = 6"],
        }
        extra: list[str] = []
        current = None
        for line in text.strip().splitlines():
            line = line.strip()
            if line.startswith("[") and line.strip("[]") in sections:
                current = line.strip("[]")
            elif line.startswith("["):
                current = None
                extra.append(line)
            elif current:
                key = line.split("=")[0].strip()
                sections[current] = [kept for kept in sections[current] if kept.split("=")[0].strip() != key] + [line]
            elif line:
                extra.append(line)
        body = "\n".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())
        path = tmp_path / f"{name}.toml"
        path.write_text(body + "\n".join(extra) + "\n")
        return path

    return write


def tfsoftmax_command(*args: str) -> list[str]:
    """The CLI as a child process runs it."""
    return [sys.executable, "-m", "tfsoftmax", *args]


def prepared_command(setup: str, argv: list[str]) -> list[str]:
    """`argv` started by a Python trampoline that runs `setup` first (signal dispositions and resource limits
    survive `exec`). Not `preexec_fn`: that forks the test process itself, and once it holds gRPC (a sweep
    or TensorBoard test before), gRPC's fork handlers can abort the child before it execs ("epoll_wait
    error: Bad file descriptor", exit -6)."""
    code = f"import os, resource, signal, sys; {setup}; os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", code, *argv]


def interruptible_child(argv: list[str]) -> subprocess.Popen:
    """`argv` as a user's command in a terminal, its stderr kept for the test: SIGINT is not ignored, as a
    shell's background jobs (and the children they start) would ignore it."""
    return subprocess.Popen(
        prepared_command("signal.signal(signal.SIGINT, signal.SIG_DFL)", argv),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def child_env() -> dict[str, str]:
    """Environment for CLI children: this checkout's package, quiet TensorFlow, and no .pyc writes (a
    child under a file-size limit would leave truncated ones behind)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process; return its exit code and its stderr, which must be exactly one line."""
    from tfsoftmax import cli

    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return code, err


def event_steps(folder: Path, tag: str) -> dict[int, int]:
    """How many events each step has for `tag` in a TensorBoard run folder, read from its event files."""
    import tensorflow as tf

    counts: dict[int, int] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if any(value.tag == tag for value in event.summary.value):
                counts[event.step] = counts.get(event.step, 0) + 1
    return counts


class Board:
    """A TensorBoard server on 127.0.0.1, queried through its HTTP data API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def wait_for(self, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("TensorBoard did not show the expected data in time")
            time.sleep(0.5)


@pytest.fixture
def tensorboard() -> Iterator[Callable[[Path], Board]]:
    """Start TensorBoard servers (own processes, the Python loader, reloading every second) on log roots;
    stopped at the end of the test. In-process servers can abort the interpreter at exit."""
    processes: list[subprocess.Popen] = []

    def start(logdir: Path) -> Board:
        from tfsoftmax.distributed.launcher import free_port

        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--load_fast",
                "false",
                "--reload_interval",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        board = Board(f"http://127.0.0.1:{port}")

        def up() -> bool:
            assert process.poll() is None, "TensorBoard exited"
            try:
                board.get("/data/runs")
                return True
            except OSError:
                return False

        board.wait_for(up)
        return board

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
