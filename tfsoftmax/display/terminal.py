"""What the terminal shows: TensorFlow's known notices on a CPU-only machine (its start-up lines, and two
it logs as errors though nothing is wrong) are left out; everything else on stderr, TensorFlow's real
warnings and errors included, reaches the user.

TensorFlow's C++ libraries write these notices straight to file descriptor 2, some before absl's logging
starts, so TF_CPP_MIN_LOG_LEVEL cannot silence them and no Python-level filter ever sees them.
`quiet_tensorflow` therefore puts a pipe on descriptor 2 and forks a small filter process that forwards
each line to the real stderr unless it is one of the exact notices below. A process, not a thread: it
outlives the main process, so the last lines before an abort() (TensorFlow's fatal "F..." Check-failed
lines), a segfault or a SIGKILL still arrive; and it needs none of our GIL, which C++ may hold while it
writes. Child processes inherit the pipe, so their lines pass the same filter. Imports only the standard
library: it runs before TensorFlow is loaded.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import signal
import sys
import warnings

VERBOSE_ENV = "TFSOFTMAX_VERBOSE"

# absl's prefix: severity, date, time, thread id. Before absl starts, date and time read "0000 00:00:<epoch s>".
_ABSL = r"[IWEF]\d{4} [\d:.]+ +\d+ "
_NOTICES = re.compile(
    "|".join(
        [
            r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
            _ABSL + r"port\.cc:\d+\] oneDNN custom operations are on\. ",
            _ABSL
            + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU instructions ",
            r"To enable the following instructions: .*, in other operations, rebuild TensorFlow with the appropriate "
            r"compiler flags\.$",
            # Logged as an error, though TensorFlow itself adds "This may be expected ... will be ignored".
            _ABSL + r"node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool which is not in the "
            r"op definition: ",
            _ABSL + r"util\.cc:\d+\] oneDNN supports DT_HALF only on platforms with AVX-512\. ",
        ]
    )
)
_NO_CUDA_DRIVER = re.compile(
    _ABSL + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.$"
)
_CUINIT_FAILED = re.compile(_ABSL + r"cuda_platform\.cc:\d+\] failed call to cuInit: ")
_RETRACING = re.compile(r"\d+ out of the last \d+ calls to .+ triggered tf\.function retracing\. ")
# scikit-learn's Gaussian process, which keras-tuner's Bayesian oracle fits after every trial, warns when a
# kernel's length scale ends at a bound: nothing a sweep's user can act on.
_GP_BOUND = r"The optimal value found for dimension \d+ of parameter .+ is close to the specified (upper|lower) bound"
# A pipe's end of line: \r too, so progress bars (TFDS's tqdm) move as they are drawn.
_LINE_END = re.compile(rb"(?<=\n)|(?<=\r)(?!\n)")
PARTIAL_LINE_WAIT_S = 0.05  # a prompt or half-drawn line waits this long for its end before it is shown
DRAIN_TIMEOUT_S = 10.0  # at exit, at most this long for the filter process to catch up
# Ctrl-C (and Ctrl-\) reach the whole foreground process group, a sweep's SIGTERM the worker's: the filter
# keeps forwarding the main process's last lines ("interrupted ...", a traceback) and stops only at EOF.
_FILTER_IGNORES = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)


class StartupNotices:
    """Tells TensorFlow's start-up notices from every other stderr line, one line at a time."""

    def __init__(self) -> None:
        self.no_cuda_driver = False

    def is_notice(self, line: str) -> bool:
        """True for a known notice. A failed cuInit counts only after TensorFlow said there is no CUDA
        driver: on a machine with a GPU it is a real error."""
        line = line.rstrip("\r\n")
        if _NO_CUDA_DRIVER.match(line):
            self.no_cuda_driver = True
            return True
        if _CUINIT_FAILED.match(line):
            return self.no_cuda_driver
        return bool(_NOTICES.match(line))


class RetracingFilter(logging.Filter):
    """Drops the `tensorflow` logger's "triggered tf.function retracing" warning: a sweep retraces on
    purpose when a trial's graph differs from the last one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _RETRACING.match(record.getMessage())


def verbose_requested(flag: bool) -> bool:
    """--verbose, or TFSOFTMAX_VERBOSE set to anything but empty or 0."""
    return flag or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def draws_in_place() -> bool:
    """Whether stdout can redraw a line (a progress bar): a terminal can; a Jupyter cell's `!command` gives
    the command a pseudo-terminal too, but the cell shows each redraw as more text (jupyter_client marks
    a kernel's environment, which its shell commands inherit, with JPY_PARENT_PID)."""
    return sys.stdout.isatty() and "JPY_PARENT_PID" not in os.environ


def _write_all(fd: int, data: bytes) -> None:
    """Every byte: os.write may take only part."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:  # stderr closed or gone: keep reading, or writers would block on a full pipe
        pass


def _forward(read_fd: int, real_fd: int, marker: bytes, ack_fd: int) -> None:
    """Copy the pipe to the real stderr, less the notices, until every writer is gone. Each marker line is
    answered on `ack_fd` only once every line before it is written."""
    notices = StartupNotices()
    pending = b""
    while True:
        if pending and not select.select([read_fd], [], [], PARTIAL_LINE_WAIT_S)[0]:
            _write_all(real_fd, pending)
            pending = b""
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            _write_all(real_fd, pending)
            return
        *lines, pending = _LINE_END.split(pending + chunk)
        kept = []
        for line in lines:
            acknowledge = line.endswith(marker)
            if acknowledge:  # a last line without its newline may come first, on the same line
                line = line[: -len(marker)]
            if line and not notices.is_notice(line.decode(errors="replace")):
                kept.append(line)
            if acknowledge:
                _write_all(real_fd, b"".join(kept))
                kept = []
                _write_all(ack_fd, b"k")
        _write_all(real_fd, b"".join(kept))


def _run_filter(read_fd: int, real_fd: int, marker: bytes, ack_fd: int) -> None:
    """The forked filter process: holds only its three descriptors (another copy of the pipe's write end
    would keep EOF from ever coming), forwards until EOF and exits without running the parent's atexit
    handlers or flushing its buffers a second time."""
    code = 1
    try:
        for signum in _FILTER_IGNORES:
            signal.signal(signum, signal.SIG_IGN)
        keep = sorted((read_fd, real_fd, ack_fd))
        for low, high in zip([0] + [fd + 1 for fd in keep], keep + [os.sysconf("SC_OPEN_MAX")], strict=True):
            os.closerange(low, high)
        _forward(read_fd, real_fd, marker, ack_fd)
        code = 0
    finally:
        os._exit(code)


def _drain(real_fd: int, marker: bytes, ack_fd: int, owner: int) -> None:
    """At exit: everything written so far (a traceback, the last error line) reaches the terminal, in
    order; then stderr is the real one again for whatever the interpreter writes while it shuts down. Waits
    for the filter's answer to a marker, not for EOF: a child (a sweep worker, TensorBoard's data server)
    may still hold the pipe."""
    if os.getpid() != owner:  # a forked copy of this process: the answer is not for it
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _write_all(2, marker)
    if select.select([ack_fd], [], [], DRAIN_TIMEOUT_S)[0]:
        os.read(ack_fd, 1)  # the answer, or EOF if the filter is gone: nothing more to wait for
    os.dup2(real_fd, 2)


_installed = False


def quiet_tensorflow() -> None:
    """Leave TensorFlow's start-up notices, INFO lines and retracing warnings out of this process's stderr
    until it exits; its warnings and errors still show. Call before TensorFlow is imported, while the
    process has no other threads (it forks), and only in a process whose stderr is its own (the command
    line, not a test or notebook); once is enough."""
    global _installed
    if _installed:
        return
    _installed = True
    # Only INFO is hidden at the source; the known notices among TensorFlow's warnings go through the pipe.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.getLogger("tensorflow").addFilter(RetracingFilter())
    warnings.filterwarnings("ignore", message=_GP_BOUND, module=r"sklearn\.gaussian_process")
    sys.stdout.flush()  # else the filter would hold a copy of unwritten output (it never writes it)
    sys.stderr.flush()
    real_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    ack_read, ack_write = os.pipe()
    marker = f"tfsoftmax-stderr-drained-{os.urandom(8).hex()}\n".encode()
    # Blocked across the fork, so a Ctrl-C now cannot end the filter before it ignores them; the parent gets
    # its own once they are unblocked.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FILTER_IGNORES)
    try:
        if os.fork() == 0:
            _run_filter(read_fd, real_fd, marker, ack_write)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(read_fd)
    os.close(ack_write)
    os.dup2(write_fd, 2)  # inheritable: child processes write into the same filter
    os.close(write_fd)
    atexit.register(_drain, real_fd, marker, ack_read, os.getpid())
