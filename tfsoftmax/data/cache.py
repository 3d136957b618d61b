"""The decoded-array cache: a dataset's train and test arrays in one NumPy file beside TFDS's prepared copy,
and the data directory's index of those files, which tells a later process where a dataset's cache is and
what TFDS said of it (name, version, class names), so that loading it needs no TFDS at all."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from tfsoftmax.config import DataConfig
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import atomic_write, locked, write_json

CACHE_NAME = "tfsoftmax-arrays.npz"
INDEX_NAME = "tfsoftmax-index.json"


@dataclass(frozen=True)
class Entry:
    """One dataset in the index: its cache file and what TFDS's builder said of it."""

    cache: str
    name: str
    version: str
    class_names: tuple[str, ...]


def write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read(path: Path) -> dict[str, np.ndarray]:
    """The cached arrays; one line naming the file if it is unreadable."""
    try:
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(
            f"data: decoded-array cache {path} is unreadable ({e}); delete it to rebuild", RUNTIME_ERROR
        ) from None


def _index_path(cfg: DataConfig) -> tuple[Path, str] | None:
    """The index file of the data directory (TFDS's own default when the config sets none) and this
    dataset's name in it, which holds the installed TFDS's version: another TFDS may resolve the same
    name to another dataset version. None without an installed `tensorflow-datasets` to name."""
    try:
        tfds_version = version("tensorflow-datasets")
    except PackageNotFoundError:
        return None
    root = cfg.data_dir or os.environ.get("TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))
    return Path(root).expanduser() / INDEX_NAME, f"{cfg.dataset} (tensorflow-datasets {tfds_version})"


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def indexed(cfg: DataConfig) -> Entry | None:
    """This dataset's entry, if the index has a whole one and its cache file is there; else None, and TFDS
    is asked."""
    where = _index_path(cfg)
    if where is None:
        return None
    raw = _read_index(where[0]).get(where[1])
    try:
        entry = Entry(**{**raw, "class_names": tuple(raw["class_names"])})
    except (TypeError, KeyError):
        return None
    texts = (entry.cache, entry.name, entry.version, *entry.class_names)
    if not all(isinstance(t, str) for t in texts) or not Path(entry.cache).is_file():
        return None
    return entry


def add_to_index(cfg: DataConfig, entry: Entry) -> None:
    """Record `entry`; a data directory that cannot take the index only loses the shortcut."""
    where = _index_path(cfg)
    if where is None:
        return
    path, name = where
    try:
        with locked(path.parent / f".{INDEX_NAME}.lock"):
            write_json(path, {**_read_index(path), name: asdict(entry)})
    except (OSError, TfsoftmaxError):
        return
