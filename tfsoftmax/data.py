"""Data: TFDS loading (offline via the manual directory), a decoded-array cache, splits, tf.data pipelines.

Decoding a prepared TFDS split costs seconds, so the decoded arrays are cached on disk beside TFDS's copy
and held in memory once per process. Pipelines shuffle indices and gather batches from in-memory tensors:
images are never decoded or copied through a shuffle buffer again.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfsoftmax.config import MANUAL_DIR_ENV, DataConfig
from tfsoftmax.config.checks import suggest
from tfsoftmax.display.notebook import preparing
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import atomic_write, locked

if TYPE_CHECKING:
    import tensorflow as tf

CACHE_NAME = "tfsoftmax-arrays.npz"
EVAL_BATCH = 2048  # evaluation has no gradient: big batches cost little and mean few steps.


@dataclass(frozen=True)
class Dataset:
    """A whole TFDS image-classification dataset, decoded, with what the model and the record need."""

    name: str
    version: str
    checksum: str
    class_names: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Splits:
    """Train, validation and test arrays; images already float32 and scaled as configured. `val` is None
    when no validation split is carved: per-epoch metrics are then never computed on test either."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]


_LOADED: dict[tuple[str, str | None, str | None], Dataset] = {}
_TENSORS: dict[int, tuple[np.ndarray, tf.Tensor]] = {}
_TENSORS_KEPT = 8  # train, validation and test images and labels of the split in use, with room to spare


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
    builder = _builder(cfg)
    cache = Path(builder.data_dir) / CACHE_NAME
    with locked(Path(builder.data_dir).parent / f".{builder.info.version}.tfsoftmax.lock"):
        if not cache.is_file():
            _prepare(builder, cfg.manual_folder, cfg.dataset)
            arrays = _decode(builder)
            atomic_write(cache, lambda f: np.savez(f, **arrays))
    try:
        with np.load(cache) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(
            f"data: decoded-array cache {cache} is unreadable ({e}); delete it to rebuild", RUNTIME_ERROR
        ) from None
    return Dataset(
        name=builder.name,
        version=str(builder.info.version),
        checksum=str(arrays["checksum"]),
        class_names=tuple(builder.info.features["label"].names),
        train_x=arrays["train_x"],
        train_y=arrays["train_y"],
        test_x=arrays["test_x"],
        test_y=arrays["test_y"],
    )


def preprocess(images: np.ndarray, scale: bool) -> np.ndarray:
    """float32 once, up front, so no batch pays for it; scaled to [0, 1] unless the config says not."""
    out = images.astype(np.float32)
    if scale:
        out /= 255.0
    return out


def split(dataset: Dataset, cfg: DataConfig) -> Splits:
    """Carve the validation split from train with `shuffle_seed`; fraction 0 trains on all of train and
    validates on nothing, so no curve labelled validation is ever a test curve."""
    test = (preprocess(dataset.test_x, cfg.scale), dataset.test_y)
    if cfg.validation_fraction == 0:
        return Splits(train=(preprocess(dataset.train_x, cfg.scale), dataset.train_y), val=None, test=test)
    order = np.random.default_rng(cfg.shuffle_seed).permutation(len(dataset.train_x))
    n_val = max(1, round(len(dataset.train_x) * cfg.validation_fraction))
    val, train = order[:n_val], order[n_val:]
    # Rows picked from the uint8 images, then converted: a quarter of the bytes to move, the same floats.
    x = dataset.train_x
    return Splits(
        train=(preprocess(x[train], cfg.scale), dataset.train_y[train]),
        val=(preprocess(x[val], cfg.scale), dataset.train_y[val]),
        test=test,
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch; the last one may be smaller."""
    return -(-n // batch_size)


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """The array as a TensorFlow constant, copied once per process: sweep trials share it."""
    import tensorflow as tf

    hit = _TENSORS.get(id(array))
    if hit is None or hit[0] is not array:
        while len(_TENSORS) >= _TENSORS_KEPT:
            _TENSORS.pop(next(iter(_TENSORS)))
        hit = _TENSORS[id(array)] = (array, tf.constant(array))
    return hit[1]


def epoch_order(n: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """The example order of one pass, a stateless function of (seed, epoch): runs and packed sweep trials
    (`pack`) read the same order, whatever their batch size."""
    import tensorflow as tf

    seeds = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seeds)


def train_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0) -> tf.data.Dataset:
    """Batches reshuffled at each pass; the order of a pass is a stateless function of (seed, epoch), the
    epoch counting passes from `first_epoch`: a run resumed at epoch k sees exactly the batches an
    uninterrupted run sees from epoch k on. Indices are shuffled and sliced; rows are gathered from
    in-memory tensors, so no image goes through a shuffle buffer."""
    import tensorflow as tf

    images, labels = as_tensor(x), as_tensor(y)
    n, steps = len(x), steps_per_epoch(len(x), batch_size)
    # Keras starts a new pass over the dataset at each epoch; the pass reads and advances this counter.
    epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False)

    def epoch_batches(_: tf.Tensor) -> tf.data.Dataset:
        order = epoch_order(n, seed, epoch.assign_add(1) - 1)

        def batch(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            rows = order[i * batch_size : (i + 1) * batch_size]
            return tf.gather(images, rows), tf.gather(labels, rows)

        # Images and labels gathered in one map stage: every further stage costs time on each batch.
        return tf.data.Dataset.range(steps).map(batch)

    return (
        tf.data.Dataset.range(1)
        .flat_map(epoch_batches)
        .apply(tf.data.experimental.assert_cardinality(steps))  # lets Keras count steps up front
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_batches(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Unshuffled large batches for evaluation."""
    import tensorflow as tf

    images, labels = as_tensor(x), as_tensor(y)
    return (
        tf.data.Dataset.range(len(x))
        .batch(EVAL_BATCH)
        .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        .prefetch(tf.data.AUTOTUNE)
    )
