"""One output of a notebook cell that is redrawn in place (IPython's display_id), not appended to."""

from __future__ import annotations

from typing import Any


class Shown:
    """Drawn on the first `show`, updated in place after; IPython is imported only then."""

    def __init__(self) -> None:
        self.handle: Any = None

    def show(self, obj: Any) -> None:
        from IPython.display import display

        if self.handle is None:
            self.handle = display(obj, display_id=True)
        else:
            self.handle.update(obj)
