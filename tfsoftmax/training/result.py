"""What a finished run gives back to the command line and to notebooks: its folder, status, curves, test
metrics and model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError

if TYPE_CHECKING:
    import keras


@dataclass
class RunResult:
    """What a finished run returns to the CLI and to notebooks."""

    run_dir: Path
    status: str
    history: dict[str, list[float]]
    test: dict[str, float]
    wall_time_s: float
    model: keras.Model
    divergence: dict[str, Any] | None

    def raise_for_status(self, what: str = "run") -> RunResult:
        """The result itself if the run completed; a diverged run is an outcome with exit code 1, where
        notebooks may keep the result and the command line may not."""
        if self.status == "diverged":
            raise TfsoftmaxError(
                f"{what} diverged: {(self.divergence or {}).get('reason', '')}; record kept in {self.run_dir}",
                RUNTIME_ERROR,
            )
        return self
