"""The arrays a run trains on: the whole decoded dataset, and its train, validation and test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
