"""The sweep's token: keras-tuner's gRPC service is unauthenticated, so the chief writes a random token
into the sweep's folder on the shared log root, readable by its owner only, and refuses every call that
does not carry it. Its workers read it from the same folder (which they share with the chief anyway, for
checkpoints), so nothing new is configured; a process that cannot read the folder, or holds another
sweep's token or a restarted chief's old one, changes nothing in the search."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError

FILE = "chief_token"
OWNER_ONLY = 0o600


@contextlib.contextmanager
def published(folder: Path) -> Iterator[str]:
    """A new token in `folder` while the chief serves, removed when it ends: each chief has its own."""
    folder.mkdir(parents=True, exist_ok=True)
    path, token = folder / FILE, secrets.token_hex(32)
    tmp = folder / f".{FILE}.{os.getpid()}.tmp"
    try:
        # Created owner-only, never readable by others even for a moment, then renamed into place.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TfsoftmaxError(f"sweep chief: cannot write its token {path}: {e.strerror or e}", RUNTIME_ERROR) from None
    try:
        yield token
    finally:
        path.unlink(missing_ok=True)


def read(folder: Path) -> str:
    """The token of the chief serving `folder`'s sweep now; empty where there is none to read."""
    with contextlib.suppress(OSError):
        return (folder / FILE).read_text().strip()
    return ""
