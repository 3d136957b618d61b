"""A run's curves redrawn in its cell as each epoch ends: the role of D2L's Animator. Imported only inside a
Jupyter kernel (`notebook.run_callbacks`), since it loads Keras, IPython and matplotlib."""

from __future__ import annotations

import keras
from IPython.display import Image

from tfsoftmax.display.render import curves_png
from tfsoftmax.display.shown import Shown


class LiveCurves(keras.callbacks.Callback):
    """One figure per run, the same output updated after every epoch (never one image per epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.first_epoch: int | None = None
        self.shown = Shown()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch  # a resumed run starts here
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        png = curves_png(self.history, self.params.get("epochs"), self.first_epoch)
        drawn = list(range(self.first_epoch + 1, epoch + 2))  # the epochs the figure covers, for a reader's tools
        self.shown.show(Image(data=png, format="png", metadata={"epochs": drawn}))
