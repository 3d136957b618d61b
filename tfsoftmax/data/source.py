"""Where a dataset's arrays come from: TFDS, offline (prepared from the manual directory, checked against
TFDS's registered checksums), decoded once into the cache beside TFDS's copy (`cache`), whose index lets a
later process load them without TFDS."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tfsoftmax.config import MANUAL_DIR_ENV, DataConfig
from tfsoftmax.config.checks import suggest
from tfsoftmax.data import cache
from tfsoftmax.data.dataset import Dataset
from tfsoftmax.display.notebook import preparing
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import locked

_LOADED: dict[tuple[str, str | None, str | None], Dataset] = {}


def load_dataset(cfg: DataConfig) -> Dataset:
    """The decoded dataset, prepared from the manual directory if needed; loaded once per process."""
    key = (cfg.dataset, cfg.data_dir, cfg.manual_folder)
    if key not in _LOADED:
        _LOADED[key] = _load(cfg)
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


def _load(cfg: DataConfig) -> Dataset:
    """The decoded dataset: from the cache its index entry points to, else through TFDS (preparing and
    decoding it first, then caching and indexing the arrays)."""
    entry = cache.indexed(cfg)
    if entry is None:
        builder = _builder(cfg)
        path = Path(builder.data_dir) / cache.CACHE_NAME
        with locked(Path(builder.data_dir).parent / f".{builder.info.version}.tfsoftmax.lock"):
            if not path.is_file():
                _prepare(builder, cfg.manual_folder, cfg.dataset)
                cache.write(path, _decode(builder))
        entry = cache.Entry(
            cache=str(path),
            name=builder.name,
            version=str(builder.info.version),
            class_names=tuple(builder.info.features["label"].names),
        )
        cache.add_to_index(cfg, entry)
    arrays = cache.read(Path(entry.cache))
    return Dataset(
        name=entry.name,
        version=entry.version,
        checksum=str(arrays["checksum"]),
        class_names=entry.class_names,
        train_x=arrays["train_x"],
        train_y=arrays["train_y"],
        test_x=arrays["test_x"],
        test_y=arrays["test_y"],
    )
