"""Ctrl-C and SIGTERM during training: a request to stop at the next batch end (under `model.fit`; at the
epoch's end under the packed pass) with everything written, held by a context manager around the
training, so no handler outlives the run or sweep that set it."""

from __future__ import annotations

import signal
import sys
import threading
from types import TracebackType
from typing import Any

from tfsoftmax.display import notebook
from tfsoftmax.training.epoch import STOPPING


class StopSignal:
    """Within `with StopSignal() as stop:`, the first Ctrl-C or SIGTERM sets `stop.requested` (training
    then stops at the next batch or epoch end, its record written) and a second one raises KeyboardInterrupt at
    once. Outside the main thread, where Python cannot take signals, it is a request nobody makes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    def request(self) -> None:
        """Ask training to stop at the next batch or epoch end, as the first signal does."""
        self._event.set()

    def _handle(self, signum: int, frame: object) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt
        self._event.set()
        print(f"\n{notebook.for_here(STOPPING)}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
