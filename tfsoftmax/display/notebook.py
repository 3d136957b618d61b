"""What the Python API shows inside a Jupyter kernel: the command line's quiet (a kernel has no terminal of
its own, so the filter is a thread, and only while a call runs), live outputs updated in place, and
messages in the Python API's words. Outside a kernel every function here does nothing, and nothing here
imports IPython, TensorFlow or matplotlib unless a kernel is running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from tfsoftmax.display.shown import Shown
from tfsoftmax.display.terminal import RetracingFilter, StartupNotices, verbose_requested
from tfsoftmax.errors import TfsoftmaxError

THREAD_JOIN_S = 5.0  # at the end of a call, at most this long for the filter thread to pass on the last lines
# keras-tuner prints this whenever a sweep's tuner is made again (every resume, every collect).
_TUNER_CHATTER = re.compile(r"Reloading Tuner from .*\n?")
# TFDS warns about its own half-written folder while it prepares a dataset.
_TFDS_CHATTER = re.compile(r"Variant folder .* has no ")
_state = {"loggers": False, "calls": 0}
# One for the kernel's life: "no CUDA driver", seen at the first import, is what makes a later failed cuInit
# a notice.
_notices = StartupNotices()


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython); never imports IPython itself."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def quiet_wanted() -> bool:
    """A kernel, and $TFSOFTMAX_VERBOSE not asking to see everything."""
    return in_notebook() and not verbose_requested(False)


class _MessageFilter(logging.Filter):
    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(str(record.msg))


def _one_path_for_warnings() -> None:
    """Each TensorFlow warning once, on stderr. Imported with no root handler, TensorFlow gives its logger
    one of its own (in a kernel: at INFO, on stdout), and absl's first log call later adds a root handler
    too: every warning twice. So the root handler absl would add comes first, and TensorFlow adds none; if
    TensorFlow was imported before, its logger stops at its own handler. Retracing warnings, which a sweep
    causes on purpose, are dropped either way."""
    if _state["loggers"]:
        return
    _state["loggers"] = True
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addFilter(RetracingFilter())
    if "tensorflow" not in sys.modules:
        if not logging.root.handlers:
            logging.basicConfig()
    elif tf_logger.handlers:
        tf_logger.propagate = False
        tf_logger.setLevel(logging.WARNING)
    logging.getLogger("absl").addFilter(_MessageFilter(_TFDS_CHATTER))


def _forward(read_fd: int, stream: TextIO) -> None:
    """Copy the pipe to the kernel's stderr stream, less TensorFlow's known notices, until EOF."""
    pending = b""
    with open(read_fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = [line + b"\n" for line in lines if not _notices.is_notice(line.decode(errors="replace"))]
            if kept:
                stream.write(b"".join(kept).decode(errors="replace"))
                stream.flush()
    if pending:
        stream.write(pending.decode(errors="replace"))
        stream.flush()


@contextlib.contextmanager
def _filtered_fd2() -> Iterator[None]:
    """Descriptor 2 through a filter thread while the call runs, then the kernel's own again. What C++
    writes there (TensorFlow's start-up notices, its "NodeDef mentions" error at every run) reaches this
    pipe; the rest goes to the cell's stderr from a thread started in the cell, and is all there before the
    call returns (the kernel's own descriptor 2 watcher may show a line only in the next cell)."""
    sys.stderr.flush()
    real_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    thread = threading.Thread(target=_forward, args=(read_fd, sys.stderr), name="tfsoftmax-stderr", daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        os.dup2(real_fd, 2)  # the pipe's last writer (but for children still running) is gone: EOF
        os.close(real_fd)
        thread.join(THREAD_JOIN_S)


class _LineFilter:
    """sys.stdout without the lines matching `pattern`, passed on whole lines at a time."""

    def __init__(self, stream: TextIO, pattern: re.Pattern[str]) -> None:
        self.stream, self.pattern, self.pending = stream, pattern, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        kept = "".join(line + "\n" for line in lines if not self.pattern.match(line))
        if kept:
            self.stream.write(kept)
        return len(text)

    def flush(self) -> None:
        if self.pending and not self.pattern.match(self.pending):
            self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Around a Python API call: in a kernel, the same quiet as the command line's (start-up notices,
    INFO lines, retracing warnings and keras-tuner's reloading line left out; warnings and errors kept);
    elsewhere, or with $TFSOFTMAX_VERBOSE, nothing changes. Nested calls share the outer one's."""
    if not quiet_wanted() or _state["calls"]:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # as the command line: INFO hidden at the source
    _state["calls"] += 1
    stdout = _LineFilter(sys.stdout, _TUNER_CHATTER)
    try:
        with _filtered_fd2(), contextlib.redirect_stdout(stdout):  # type: ignore[type-var]
            _one_path_for_warnings()
            try:
                yield
            finally:
                stdout.flush()
    finally:
        _state["calls"] -= 1


def run_callbacks() -> list:
    """The Keras callbacks a run adds in a kernel: its live curves. None elsewhere (nothing imported)."""
    if not in_notebook():
        return []
    from tfsoftmax.display.live import LiveCurves

    return [LiveCurves()]


@contextlib.contextmanager
def preparing(name: str, folder: str) -> Iterator[None]:
    """A dataset's first preparation shows one line in a kernel, updated when done, instead of TFDS's
    progress bars (drawn with cursor moves a cell cannot redraw)."""
    if not in_notebook():
        yield
        return
    import time

    import tensorflow_datasets as tfds
    from IPython.display import HTML

    shown = Shown()
    shown.show(HTML(f"<code>preparing {name} from {folder} (once; about 20 s for Fashion-MNIST)</code>"))
    started = time.perf_counter()
    tfds.disable_progress_bar()
    try:
        yield
    finally:
        tfds.enable_progress_bar()
    shown.show(HTML(f"<code>prepared {name} in {time.perf_counter() - started:.0f} s</code>"))


def announce(result: Any) -> None:
    """A diverged run says so in its cell, where only `result.status` would tell otherwise."""
    if in_notebook() and result.status == "diverged":
        from IPython.display import HTML, display

        from tfsoftmax.display.render import diverged_html

        display(HTML(diverged_html(result)))


def for_here(message: str) -> str:
    """A command-line message as the user reads it here: in the Python API's words inside a kernel (the
    first interrupt's "stopping after the batch or epoch in progress"), as it is elsewhere."""
    return python_words(message) if in_notebook() else message


_CLI_WORDS = [
    (re.compile(r"resume with: tfsoftmax run --resume (\S+)"), r'resume with: tfsoftmax.resume("\1")'),
    (re.compile(r"--resume (\S+): "), r"tfsoftmax.resume(\1): "),
    (re.compile(r"run the same sweep command again to resume"), "run the same tfsoftmax.sweep(config) to resume"),
    (re.compile(r"press Ctrl-C"), "interrupt"),
    (re.compile(r"Ctrl-C"), "an interrupt"),
]


def python_words(message: str) -> str:
    """A message written for the command line, in the Python API's words: `tfsoftmax.resume(run_dir)` for
    `tfsoftmax run --resume`, an interrupt for Ctrl-C."""
    for pattern, words in _CLI_WORDS:
        message = pattern.sub(words, message)
    return message


@contextlib.contextmanager
def python_errors() -> Iterator[None]:
    """Our errors from inside a Python API call, reworded for the Python API (see `python_words`)."""
    try:
        yield
    except TfsoftmaxError as e:
        raise TfsoftmaxError(python_words(str(e)), e.exit_code, e.resumable) from None
