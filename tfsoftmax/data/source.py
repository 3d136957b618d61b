"""Where a dataset's arrays come from: TFDS, offline (prepared from the manual directory, checked against
TFDS's registered checksums), decoded once into a cache on disk beside TFDS's copy; an index of those
caches lets a later process load them without importing TFDS at all."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from tfsoftmax.config import MANUAL_DIR_ENV, DataConfig
from tfsoftmax.config.checks import suggest
from tfsoftmax.data.dataset import Dataset
from tfsoftmax.display.notebook import preparing
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import atomic_write, locked, write_text

CACHE_NAME = "tfsoftmax-arrays.npz"

_LOADED: dict[tuple[str, str | None, str | None], Dataset] = {}


def load_dataset(cfg: DataConfig) -> Dataset:
    """The decoded dataset, prepared from the manual directory if needed; loaded once per process."""
    key = (cfg.dataset, cfg.data_dir, cfg.manual_folder)
    if key not in _LOADED:
        _LOADED[key] = load(cfg)
    return _LOADED[key]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _original_files(builder: object) -> list:
    """TFDS's registered downloads (filename, checksum) for this builder; the manual directory holds them."""
    return list((getattr(builder, "url_infos", None) or {}).values())


def verify_manual_dir(builder: object, folder: str) -> None:
    """Check every file TFDS will read from the manual directory against TFDS's registered checksums."""
    for info in _original_files(builder):
        path = Path(folder) / info.filename
        if not path.is_file():
            raise TfsoftmaxError(
                f"data.manual_dir: {path}: missing; expected the original file (sha256 {info.checksum})", RUNTIME_ERROR
            )
        got = _sha256(path)
        if got != info.checksum:
            raise TfsoftmaxError(
                f"data.manual_dir: {path}: corrupt or wrong file: sha256 {got}, expected {info.checksum}", RUNTIME_ERROR
            )


def _builder(cfg: DataConfig):  # noqa: ANN202 (a tfds builder; typing it would import TFDS)
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(cfg.dataset, data_dir=cfg.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        hint = suggest(cfg.dataset.split(":")[0], tfds.list_builders())
        raise TfsoftmaxError(
            f"data.dataset: unknown TFDS dataset '{cfg.dataset}'{hint}; allowed: a TFDS "
            "image-classification dataset with 'image' and 'label' features",
            CONFIG_ERROR,
        ) from None
    except (ValueError, AssertionError) as e:  # an unknown config or version of a known dataset
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfsoftmaxError(f"data.dataset: '{cfg.dataset}': {first}", CONFIG_ERROR) from None
    features = builder.info.features
    if "image" not in features or "label" not in features or not hasattr(features["label"], "names"):
        raise TfsoftmaxError(
            f"data.dataset: '{cfg.dataset}' has features {sorted(features)}; allowed: a "
            "dataset with an 'image' feature and a class 'label' feature",
            CONFIG_ERROR,
        )
    return builder


def _prepare(builder, folder: str | None, dataset: str) -> None:  # noqa: ANN001
    import tensorflow_datasets as tfds

    if builder.is_prepared():
        return
    if not folder:
        # No download is tried: offline, TFDS retries for minutes before it fails.
        files = ", ".join(sorted(info.filename for info in _original_files(builder))) or "see its TFDS page"
        raise TfsoftmaxError(
            f"data.manual_dir: '{builder.name}' is not prepared in {builder.data_dir} and "
            f"tfsoftmax does not download; set data.manual_dir or ${MANUAL_DIR_ENV} to a "
            f"folder holding its original files ({files}), or prepare it where there is "
            'internet: python -c "import tensorflow_datasets as tfds; '
            f"tfds.builder('{dataset}', data_dir='{builder.data_dir_root}').download_and_prepare()\"",
            RUNTIME_ERROR,
        )
    if not Path(folder).is_dir():
        raise TfsoftmaxError(f"data.manual_dir: {folder}: no such folder", RUNTIME_ERROR)
    verify_manual_dir(builder, folder)
    try:
        with preparing(builder.name, folder):
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=folder))
    except Exception as e:  # TFDS raises many kinds; the user needs the one line, not the type.
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfsoftmaxError(
            f"data: preparing '{builder.name}' from {folder} failed: {message}", RUNTIME_ERROR
        ) from None


def _decode(builder) -> dict[str, np.ndarray]:  # noqa: ANN001
    import tensorflow_datasets as tfds

    if "train" not in builder.info.splits or "test" not in builder.info.splits:
        raise TfsoftmaxError(
            f"data.dataset: '{builder.name}' has splits {sorted(builder.info.splits)}; "
            "allowed: a dataset with 'train' and 'test' splits",
            CONFIG_ERROR,
        )
    arrays = {}
    for split in ("train", "test"):
        batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        arrays[f"{split}_x"] = np.asarray(batch["image"], dtype=np.uint8)
        arrays[f"{split}_y"] = np.asarray(batch["label"], dtype=np.int32)
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(arrays[name].tobytes())
    arrays["checksum"] = np.array(digest.hexdigest())
    return arrays


INDEX_NAME = "tfsoftmax-index.json"


def _index_path(cfg: DataConfig) -> tuple[Path, str]:
    """Where the data directory's index of decoded-array caches lives (TFDS's own default folder when the
    config sets none), and this dataset's entry in it: the installed TFDS's version is part of the name,
    since another TFDS may resolve the same name to another version."""
    import os
    from importlib.metadata import version

    root = cfg.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return Path(root).expanduser() / INDEX_NAME, f"{cfg.dataset} (tensorflow-datasets {version('tensorflow-datasets')})"


def _indexed(cfg: DataConfig) -> dict | None:
    """The index's entry for this dataset if its cache is there: then nothing of TFDS, whose import and
    builder cost a third of a second, is needed to load it."""
    import json

    path, name = _index_path(cfg)
    try:
        entry = json.loads(path.read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or not Path(str(entry.get("cache", ""))).is_file():
        return None
    return entry


def _add_to_index(cfg: DataConfig, entry: dict) -> None:
    import json

    path, name = _index_path(cfg)
    with locked(path.parent / f".{INDEX_NAME}.lock"):
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError):
            index = {}
        if not isinstance(index, dict):
            index = {}
        index[name] = entry
        write_text(path, json.dumps(index, indent=1, sort_keys=True))


def load(cfg: DataConfig) -> Dataset:
    """The decoded dataset: from the cache the index points to, else through TFDS (preparing it first)."""
    entry = _indexed(cfg)
    if entry is None:
        builder = _builder(cfg)
        cache = Path(builder.data_dir) / CACHE_NAME
        with locked(Path(builder.data_dir).parent / f".{builder.info.version}.tfsoftmax.lock"):
            if not cache.is_file():
                _prepare(builder, cfg.manual_folder, cfg.dataset)
                arrays = _decode(builder)
                atomic_write(cache, lambda f: np.savez(f, **arrays))
        entry = {
            "cache": str(cache),
            "name": builder.name,
            "version": str(builder.info.version),
            "class_names": list(builder.info.features["label"].names),
        }
        _add_to_index(cfg, entry)
    cache = Path(entry["cache"])
    try:
        with np.load(cache) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(
            f"data: decoded-array cache {cache} is unreadable ({e}); delete it to rebuild", RUNTIME_ERROR
        ) from None
    return Dataset(
        name=entry["name"],
        version=entry["version"],
        checksum=str(arrays["checksum"]),
        class_names=tuple(entry["class_names"]),
        train_x=arrays["train_x"],
        train_y=arrays["train_y"],
        test_x=arrays["test_x"],
        test_y=arrays["test_y"],
    )
