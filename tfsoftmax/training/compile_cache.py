"""Where TensorFlow keeps the packed pass's XLA programs between processes: a pack's pass compiles in about
half a second and loads from this cache in a sixth of that (docs/speed.md), so a second run or sweep of the
same shapes starts training at once.

TensorFlow's own persistent cache (`--tf_xla_persistent_cache_directory` in `TF_XLA_FLAGS`) does the work;
this module chooses its folder: one per TensorFlow version and processor, since a cached program is machine
code for the processor that compiled it. `TFSOFTMAX_XLA_CACHE` names another root folder, or `off`.
TensorFlow reads its flags at the process's first XLA compilation, so `enable` comes before that."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
from pathlib import Path

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError

ENV = "TFSOFTMAX_XLA_CACHE"
OFF = "off"
XLA_FLAGS_ENV = "TF_XLA_FLAGS"
FLAG = "--tf_xla_persistent_cache_directory="
ENTRIES = "xla_compile_cache__*"  # the names TensorFlow gives its cache files
MIN_FREE_BYTES = 64 * 2**20  # TensorFlow fails a compilation it cannot save: no cache near a full disk
MAX_BYTES = 256 * 2**20  # about a thousand pack shapes; beyond it, the oldest-written entries go first


def root() -> Path | None:
    """The cache's root folder: `TFSOFTMAX_XLA_CACHE`, else the user's cache folder; None when turned off."""
    chosen = os.environ.get(ENV, "")
    if chosen.lower() == OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfsoftmax" / "xla"


def machine_key(tf_version: str) -> str:
    """The TensorFlow version and a digest of the processor's model and features: a program compiled on
    another machine or by another TensorFlow is never loaded here."""
    described = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text(errors="replace").splitlines()
        described += "".join(sorted({line for line in lines if line.startswith(("flags", "Features", "model name"))}))
    return f"tf-{tf_version}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"


def in_use() -> Path | None:
    """The folder this process's `TF_XLA_FLAGS` gives TensorFlow's cache, if any (set here, by a parent
    process or by the user)."""
    for flag in os.environ.get(XLA_FLAGS_ENV, "").split():
        if flag.startswith(FLAG):
            return Path(flag.removeprefix(FLAG))
    return None


def enable(tf_version: str) -> Path | None:
    """Give TensorFlow this machine's cache folder unless a folder is already set, the cache is turned off,
    or the folder cannot be written or sits on a nearly full disk (then every process compiles, as without
    a cache). Returns the folder in use."""
    found = in_use()
    if found is not None:
        return found
    base = root()
    if base is None:
        return None
    folder = base / machine_key(tf_version)
    if any(c.isspace() for c in str(folder)):  # TF_XLA_FLAGS is split at spaces
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
            return None
        trim(folder, MAX_BYTES)
    except OSError:
        return None
    os.environ[XLA_FLAGS_ENV] = f"{os.environ.get(XLA_FLAGS_ENV, '')} {FLAG}{folder}".strip()
    return folder


def trim(folder: Path, limit: int) -> int:
    """Remove the oldest-written entries of `folder` until the others hold at most `limit` bytes, so the
    cache does not grow with every pack shape a machine ever trained; returns how many went. TensorFlow
    compiles a removed program again when a process needs it."""
    entries = []
    for entry in folder.glob(ENTRIES):
        try:
            found = entry.stat()
        except FileNotFoundError:  # removed meanwhile by another process
            continue
        entries.append((found.st_mtime, found.st_size, entry))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, entry in sorted(entries):
        if total <= limit:
            break
        entry.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed


def damaged(error: Exception) -> TfsoftmaxError | None:
    """What to raise when TensorFlow could not read a cached program (`error`, a read or parse failure):
    the cache's entries are removed, so the same command compiles afresh. None without a cache in use."""
    folder = in_use()
    if folder is None:
        return None
    for entry in folder.glob(ENTRIES):
        entry.unlink(missing_ok=True)
    return TfsoftmaxError(
        f"XLA's compilation cache in {folder} could not be read ({type(error).__name__}); its entries were "
        "removed: run the same command again",
        RUNTIME_ERROR,
        resumable=True,
    )
