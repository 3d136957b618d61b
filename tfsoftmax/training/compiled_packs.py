"""The packs a process keeps, one per shape and training split, each with its compiled pass: a new pack costs
an XLA compilation, and the compiled passes TensorFlow keeps would grow the process with every pack. And how
long a pack's passes take, for `--dry-run` and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from tfsoftmax.training.pack import Member, Pack, micro_batch, traced_options

_ENGINES: dict[tuple, Pack] = {}
_ENGINES_KEPT = 2  # each holds a compiled pass; a sweep's packs mostly share one shape


def engine(
    train: tuple[np.ndarray, np.ndarray],
    seed: int,
    members: Sequence[Member],
    family: str,
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Pack:
    """A pack for `members`, reusing (reset) one this process built for the same shape and the same training
    arrays."""
    key = (len(train[0]), seed, family, len(members), micro_batch(members), *traced_options(members, family))
    found = _ENGINES.get(key)
    if found is not None and found.source is train[0]:  # the same arrays, not another of their size
        found.reset(members, weights)
        return found
    _ENGINES.pop(key, None)
    while len(_ENGINES) >= _ENGINES_KEPT:
        _ENGINES.pop(next(iter(_ENGINES)))
    made = _ENGINES[key] = Pack(train, seed, members, family, weights)
    return made


def timed_passes(pack: Pack, epochs: int, val: tuple[np.ndarray, np.ndarray] | None) -> list[float]:
    """Seconds of each of `epochs` passes of `pack` from epoch 0, validation on `val` included (the first one
    compiles): what `--dry-run` and `benchmarks/goals.py` time a pack by."""
    times = []
    for epoch in range(epochs):
        began = time.perf_counter()
        pack.epoch(epoch)
        if val is not None:
            pack.evaluate(*val)
        times.append(time.perf_counter() - began)
    return times
