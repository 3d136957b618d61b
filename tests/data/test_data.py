"""The data path: loader and cache, splits, pipeline shapes, dtypes, range and reshuffling, bad data."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import data
from tfsoftmax.config import MANUAL_DIR_ENV, DataConfig
from tfsoftmax.errors import TfsoftmaxError

from conftest import MOCK_EXAMPLES, SHARED_FASHION, TINY_TEST, TINY_TRAIN, mock_prepared


def test_loader_reads_info_from_tfds_and_arrays_from_cache(tiny_data_dir: Path) -> None:
    dataset = data.load_dataset(DataConfig(data_dir=str(tiny_data_dir)))
    assert dataset.image_shape == (28, 28, 1)
    assert dataset.num_classes == 10
    assert dataset.class_names[0] == "T-shirt/top"
    assert dataset.version == "3.0.1"
    assert len(dataset.train_y) == TINY_TRAIN and len(dataset.test_y) == TINY_TEST
    assert data.load_dataset(DataConfig(data_dir=str(tiny_data_dir))) is dataset  # once per process


def test_tfds_mock_data_is_decoded_split_and_cached_then_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real loading path, which the tiny cache skips: TFDS's builder and `as_dataset` decode the
    examples, the arrays are cached beside TFDS's metadata, and a later process reads only the cache."""
    cfg = DataConfig(data_dir=str(tmp_path / "tfds"), validation_fraction=0.25)
    cache = tmp_path / "tfds" / "fashion_mnist" / "3.0.1" / data.CACHE_NAME
    with mock_prepared("fashion_mnist", tmp_path / "tfds"):
        dataset = data.load_dataset(cfg)
    assert cache.is_file()
    assert dataset.name == "fashion_mnist" and dataset.version == "3.0.1"
    assert dataset.class_names[0] == "T-shirt/top" and dataset.num_classes == 10
    assert dataset.train_x.shape == dataset.test_x.shape == (MOCK_EXAMPLES, 28, 28, 1)
    assert dataset.train_x.dtype == np.uint8 and dataset.train_y.dtype == np.int32
    assert dataset.train_x.max() > 0 and set(dataset.train_y.tolist()) <= set(range(10))
    assert len(dataset.checksum) == 64  # a sha256 of the decoded arrays
    splits = data.split(dataset, cfg)
    assert len(splits.val[1]) == MOCK_EXAMPLES // 4 and len(splits.train[1]) == MOCK_EXAMPLES - MOCK_EXAMPLES // 4
    assert splits.train[0].dtype == np.float32 and splits.train[0].min() >= 0.0 and splits.train[0].max() <= 1.0

    data.source._LOADED.clear()  # as a new process: outside the mock, only the cache holds the examples

    def no_decoding(builder: object) -> None:
        raise AssertionError("the cached arrays were decoded again")

    monkeypatch.setattr(data.source, "_decode", no_decoding)
    again = data.load_dataset(cfg)
    assert again is not dataset and again.checksum == dataset.checksum
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(getattr(again, name), getattr(dataset, name)), name


def test_a_later_process_loads_a_cached_dataset_without_importing_tfds(tmp_path: Path) -> None:
    """Once decoded, a dataset's arrays and what the run records of it (name, version, class names) come
    from the cache through the data directory's index, in a new process that never imports TFDS; a broken
    index or a cache deleted since sends the load back to TFDS."""
    cfg = DataConfig(data_dir=str(tmp_path / "tfds"))
    with mock_prepared("fashion_mnist", tmp_path / "tfds"):
        dataset = data.load_dataset(cfg)
    load = (
        "import sys; from tfsoftmax import data; from tfsoftmax.config import DataConfig; "
        "d = data.load_dataset(DataConfig(data_dir=sys.argv[1])); "
        "print(d.name, d.version, d.class_names[-1], d.checksum, 'tensorflow_datasets' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", load, cfg.data_dir], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["fashion_mnist", "3.0.1", "Ankle", "boot", dataset.checksum, "False"]
    index = tmp_path / "tfds" / data.cache.INDEX_NAME
    whole = index.read_text()
    assert data.cache.indexed(cfg) == data.cache.Entry(
        str(tmp_path / "tfds" / "fashion_mnist" / "3.0.1" / data.CACHE_NAME),
        "fashion_mnist",
        "3.0.1",
        dataset.class_names,
    )
    for broken in ("{", "[]", whole.replace('"class_names"', '"classes"'), whole.replace('"3.0.1"', "3")):
        index.write_text(broken)
        assert data.cache.indexed(cfg) is None, broken  # TFDS's builder is asked instead
    index.write_text(whole)
    (tmp_path / "tfds" / "fashion_mnist" / "3.0.1" / data.CACHE_NAME).unlink()
    assert data.cache.indexed(cfg) is None


def test_split_carves_validation_from_train(tiny_data_dir: Path) -> None:
    cfg = DataConfig(data_dir=str(tiny_data_dir), validation_fraction=0.25)
    splits = data.split(data.load_dataset(cfg), cfg)
    assert len(splits.val[1]) == TINY_TRAIN // 4 and len(splits.train[1]) == TINY_TRAIN - TINY_TRAIN // 4
    assert len(splits.test[1]) == TINY_TEST
    assert splits.train[0].dtype == np.float32 and splits.train[0].min() >= 0.0 and splits.train[0].max() <= 1.0


def test_validation_fraction_zero_trains_on_all_of_train_and_validates_on_nothing(tiny_data_dir: Path) -> None:
    cfg = DataConfig(data_dir=str(tiny_data_dir), validation_fraction=0.0)
    splits = data.split(data.load_dataset(cfg), cfg)
    assert splits.val is None and len(splits.train[1]) == TINY_TRAIN


def test_scale_false_keeps_pixel_values(tiny_data_dir: Path) -> None:
    cfg = DataConfig(data_dir=str(tiny_data_dir), scale=False)
    splits = data.split(data.load_dataset(cfg), cfg)
    assert splits.train[0].max() == 250.0


@pytest.mark.parametrize("scale", [True, False])
def test_images_become_aligned_float32_that_tensorflow_uses_without_a_copy(scale: bool) -> None:
    from tfsoftmax.data import pipeline

    images = np.random.default_rng(0).integers(0, 256, size=(50, 28, 28, 1), dtype=np.uint8)
    out = pipeline.preprocess(images[3:], scale)  # a view that starts off any boundary
    expected = images[3:].astype(np.float32) / (255.0 if scale else 1.0)
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    assert out.ctypes.data % pipeline.ALIGN == 0 and out.flags.c_contiguous
    unaligned = pipeline.aligned_empty((expected.size + 1,), np.float32)[1:].reshape(expected.shape)
    unaligned[...] = expected
    lent, copied = pipeline.as_tensor(out), pipeline.as_tensor(unaligned)
    assert np.array_equal(lent.numpy(), expected) and np.array_equal(copied.numpy(), expected)
    # The splits are never written: here only to see whose memory each tensor reads.
    out[0, 0, 0, 0] = unaligned[0, 0, 0, 0] = -1.0
    assert float(lent[0, 0, 0, 0]) == -1.0 and float(copied[0, 0, 0, 0]) == expected[0, 0, 0, 0]
    assert pipeline.as_tensor(out) is lent  # made once per array


def test_pipeline_shapes_dtypes_and_reshuffle_every_epoch(tiny_data_dir: Path) -> None:
    cfg = DataConfig(data_dir=str(tiny_data_dir))
    x, y = data.split(data.load_dataset(cfg), cfg).train
    steps = data.steps_per_epoch(len(y), 32)
    ds = data.train_batches(x, y, 32, seed=3)
    epoch1 = [(bx.numpy(), by.numpy()) for bx, by in ds]
    epoch2 = [(bx.numpy(), by.numpy()) for bx, by in ds]
    assert len(epoch1) == len(epoch2) == steps == ds.cardinality() == 4
    assert epoch1[0][0].shape == (32, 28, 28, 1) and epoch1[0][0].dtype == np.float32
    assert epoch1[0][1].dtype == np.int32
    assert [len(b[1]) for b in epoch1] == [32, 32, 32, len(y) - 96]  # an epoch's last batch is not topped up
    order1 = np.concatenate([b[1] for b in epoch1])
    order2 = np.concatenate([b[1] for b in epoch2])
    assert sorted(order1) == sorted(order2) == sorted(y.tolist()) and not np.array_equal(order1, order2)
    assert all(b[0].min() >= 0.0 and b[0].max() <= 1.0 for b in epoch1)


def test_each_epoch_order_depends_only_on_seed_and_epoch(tiny_data_dir: Path) -> None:
    """What resuming needs: starting at epoch 2 gives the batches an uninterrupted run gives from epoch 2."""
    import tensorflow as tf

    cfg = DataConfig(data_dir=str(tiny_data_dir))
    x, y = data.split(data.load_dataset(cfg), cfg).train

    def labels(seed: int, epochs: int, first_epoch: int = 0) -> np.ndarray:
        batches = data.train_batches(x, y, 32, seed=seed, first_epoch=first_epoch)
        return np.concatenate([by.numpy() for _ in range(first_epoch, epochs) for _, by in batches])

    whole = labels(3, 4)
    tf.random.set_seed(123)  # global RNG state must not matter
    assert np.array_equal(labels(3, 4, first_epoch=2), whole[2 * len(y) :])
    assert np.array_equal(labels(3, 4), whole)
    assert not np.array_equal(labels(4, 1), whole[: len(y)])


def test_images_and_labels_stay_paired(tiny_data_dir: Path) -> None:
    cfg = DataConfig(data_dir=str(tiny_data_dir))
    x, y = data.split(data.load_dataset(cfg), cfg).train
    for bx, by in data.train_batches(x, y, 16, seed=1):
        rows = np.argmax(bx.numpy()[:, 2::2, 0, 0], axis=1)  # the bright stripe encodes the label
        assert np.array_equal(rows, by.numpy())


def test_unknown_dataset_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        TfsoftmaxError,
        match=r"unknown TFDS dataset 'fashon_mnist' \(did you mean "
        r"'fashion_mnist'\?\)",
    ) as info:
        data.load_dataset(DataConfig(dataset="fashon_mnist", data_dir=str(tmp_path)))
    assert info.value.exit_code == 2


def test_dataset_without_image_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match="allowed: a dataset with an 'image' feature"):
        data.load_dataset(DataConfig(dataset="imdb_reviews", data_dir=str(tmp_path)))


def test_unprepared_without_manual_dir_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)
    with pytest.raises(TfsoftmaxError, match=r"set data.manual_dir or \$TFSOFTMAX_MANUAL_DIR") as info:
        data.load_dataset(DataConfig(data_dir=str(tmp_path)))
    assert info.value.exit_code == 1


def test_unprepared_dataset_names_its_original_files_and_how_to_prepare_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)
    with pytest.raises(TfsoftmaxError) as info:
        data.load_dataset(DataConfig(dataset="cifar10", data_dir=str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message and "original files (cifar-10-binary.tar.gz)" in message
    assert message.endswith(f"tfds.builder('cifar10', data_dir='{tmp_path}').download_and_prepare()\"")


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="needs ../shared/datasets/fashion_mnist")
def test_manual_dir_of_another_dataset_with_the_same_file_names_is_refused(tmp_path: Path) -> None:
    """MNIST, KMNIST and Fashion-MNIST share file names; only the checksums tell them apart."""
    with pytest.raises(
        TfsoftmaxError,
        match=r"fashion_mnist/t10k-images-idx3-ubyte.gz: corrupt or wrong file: "
        r"sha256 346e55b948d9[0-9a-f]{52}, expected 8d422c7b0a1c",
    ) as info:
        data.load_dataset(DataConfig(dataset="mnist", data_dir=str(tmp_path), manual_dir=str(SHARED_FASHION)))
    assert info.value.exit_code == 1


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="needs ../shared/datasets/fashion_mnist")
def test_missing_manual_file_is_named(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    shutil.copytree(SHARED_FASHION, manual)
    (manual / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        TfsoftmaxError,
        match=r"t10k-labels-idx1-ubyte.gz: missing; expected the original file "
        r"\(sha256 67da17c7",
    ):
        data.load_dataset(DataConfig(data_dir=str(tmp_path / "tfds"), manual_dir=str(manual)))


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="needs ../shared/datasets/fashion_mnist")
def test_corrupt_manual_file_is_named_with_expected_checksum(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    shutil.copytree(SHARED_FASHION, manual)
    target = manual / "train-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"truncated"))
    with pytest.raises(
        TfsoftmaxError,
        match=r"train-labels-idx1-ubyte.gz: corrupt or wrong file: sha256 [0-9a-f]{64}"
        r", expected a04f17134ac0",
    ):
        data.load_dataset(DataConfig(data_dir=str(tmp_path / "tfds"), manual_dir=str(manual)))


def test_unreadable_cache_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "fashion_mnist" / "3.0.1"
    folder.mkdir(parents=True)
    (folder / data.CACHE_NAME).write_bytes(b"not an npz")
    with pytest.raises(TfsoftmaxError, match="decoded-array cache .* is unreadable .*; delete it to rebuild"):
        data.load_dataset(DataConfig(data_dir=str(tmp_path)))
