"""What a finished run gives back to the command line and to notebooks: its folder, status, curves, test
metrics and model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError

if TYPE_CHECKING:
    import keras


@dataclass(repr=False)
class RunResult:
    """What a finished run returns to the CLI and to notebooks; a notebook renders it as HTML."""

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

    def __repr__(self) -> str:
        from tfsoftmax.display.render import run_text

        return run_text(self)

    def _repr_html_(self) -> str:
        """Status, test metrics, epochs, time, folder, curves and the TensorBoard command, in a notebook."""
        from tfsoftmax.display.render import run_html

        return run_html(self)
