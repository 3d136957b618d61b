"""D2L's exercise on the range of arguments exp survives in each float format, measured in TF.

Each bound starts from the format's own limits (NumPy's finfo, ml_dtypes' for bfloat16) and is then
settled by running tf.exp in that format, because TF's answer is not the textbook one: its CPU
kernels flush subnormal results to 0 in float64, float32 and bfloat16 (float16 is computed in
float32 and keeps them). TensorFlow is imported inside the functions, so importing this is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError
from tfsoftmax.table import format_table

DTYPES = ("float64", "float32", "bfloat16", "float16")

CHECK_LOGITS = (100.0, 0.0)
"""D2L's overflow example: exp(100) is finite in float64 but inf in the three narrower formats."""


@dataclass(frozen=True)
class ExpRange:
    """Where tf.exp works in one format.

    min_arg: smallest x with exp(x) > 0. max_arg: largest x with exp(x) finite.
    max_naive_gap: largest g for which the naive softmax of [g, 0] has no inf or NaN; the stable
    softmax survives any finite gap, since after the max shift every exponent is <= 0.
    subnormals: whether tf.exp returns subnormal results; where it flushes them to 0, min_arg sits
    at log(smallest normal) instead of log(smallest subnormal / 2).
    """

    dtype: str
    min_arg: float
    max_arg: float
    max_naive_gap: float
    subnormals: bool


@dataclass(frozen=True)
class SoftmaxCheck:
    """The naive and stable softmax of CHECK_LOGITS in one format."""

    dtype: str
    naive: tuple[float, ...]
    stable: tuple[float, ...]


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise TfsoftmaxError(f"numerics: unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}", CONFIG_ERROR)


def _scalar_type(dtype: str) -> type[np.generic]:
    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype).type


def _finfo(dtype: str) -> np.finfo:
    # NumPy's finfo does not know bfloat16.
    return ml_dtypes.finfo(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.finfo(dtype)


def _show(x: float, dtype: str) -> str:
    """The shortest digits naming x in its format: float32 88.72283, not 88.72283172607422."""
    return str(_scalar_type(dtype)(x))


def _last_true(holds: Callable[[np.generic], bool], good: np.generic, bad: np.generic) -> np.generic:
    """Bisect from `good` (holds) towards `bad` (does not) to the last value where it holds.

    Assumes `holds` switches once between them, as it does for anything monotone in exp.
    """
    scalar = type(good)
    while (step := np.nextafter(good, bad)) != bad:
        mid = scalar((float(good) + float(bad)) / 2)
        # ml_dtypes rounds to bfloat16 through float32; that double rounding can land on an end.
        if mid in (good, bad):
            mid = step
        good, bad = (mid, bad) if holds(mid) else (good, mid)
    return good


def _tf_exp(x: np.generic) -> float:
    import tensorflow as tf

    # Pinned to the CPU: underflow handling belongs to the kernel, and the table should not change
    # when a GPU is present.
    with tf.device("/CPU:0"):
        return float(tf.exp(tf.constant(np.asarray([x])))[0])


def _naive_softmax_finite(gap: np.generic) -> bool:
    import tensorflow as tf

    from tfsoftmax.models import ops

    with tf.device("/CPU:0"):
        probs = ops.softmax(tf.constant(np.asarray([[gap, 0]], dtype=type(gap))))
    return bool(np.isfinite(probs.numpy().astype(np.float64)).all())


def _measure(dtype: str) -> ExpRange:
    info = _finfo(dtype)
    scalar = _scalar_type(dtype)
    zero = scalar(0)
    # Safe brackets from the format's limits: exp(2 log max) = max**2 overflows and
    # exp(2 log smallest_subnormal) = smallest_subnormal**2 underflows, in any format.
    overflows = scalar(2 * np.log(np.float64(info.max)))
    underflows = scalar(2 * np.log(np.float64(info.smallest_subnormal)))
    max_arg = _last_true(lambda x: np.isfinite(_tf_exp(x)), zero, overflows)
    min_arg = _last_true(lambda x: _tf_exp(x) > 0, zero, underflows)
    return ExpRange(
        dtype=dtype,
        min_arg=float(min_arg),
        max_arg=float(max_arg),
        max_naive_gap=float(_last_true(_naive_softmax_finite, zero, overflows)),
        subnormals=_tf_exp(min_arg) < float(info.tiny),
    )


def exp_ranges() -> list[ExpRange]:
    """Measure exp's argument range in float64, float32, bfloat16 and float16, widest first.

    Each bound is a bisection of one-element tf.exp calls on the CPU, a few hundred calls in all.
    """
    return [_measure(dtype) for dtype in DTYPES]


def format_ranges(ranges: Sequence[ExpRange]) -> str:
    """An aligned text table of `exp_ranges()`, each number in the shortest digits of its format."""
    header = (
        "format",
        "exp(x) finite for x <=",
        "exp(x) > 0 for x >=",
        "subnormals",
        "naive softmax gap <=",
    )
    rows = [
        (
            r.dtype,
            _show(r.max_arg, r.dtype),
            _show(r.min_arg, r.dtype),
            "kept" if r.subnormals else "flushed",
            _show(r.max_naive_gap, r.dtype),
        )
        for r in ranges
    ]
    notes = [
        "exp(x) > 0 stops at log(smallest normal) where TF flushes subnormal results to 0,",
        "and at log(smallest subnormal / 2) where it keeps them.",
        "The stable softmax survives any finite gap: after the max shift every exponent is <= 0.",
    ]
    return "\n".join([format_table(header, rows, right=range(1, len(header))), "", *notes])


def softmax_check(dtype: str) -> SoftmaxCheck:
    """Run the naive and stable softmax of CHECK_LOGITS in `dtype`, the failure D2L warns about.

    Raises:
        TfsoftmaxError: exit code 2, if `dtype` is not one of DTYPES.
    """
    _check_dtype(dtype)
    import tensorflow as tf

    from tfsoftmax.models import ops

    with tf.device("/CPU:0"):
        logits = tf.constant([CHECK_LOGITS], dtype=dtype)
        naive, stable = ops.softmax(logits), ops.stable_softmax(logits)
    return SoftmaxCheck(
        dtype=dtype,
        naive=tuple(float(p) for p in naive[0]),
        stable=tuple(float(p) for p in stable[0]),
    )


def format_check(check: SoftmaxCheck) -> str:
    """A heading, then the naive and the stable softmax, numbers in the check's format."""
    logits = ", ".join(_show(x, check.dtype) for x in CHECK_LOGITS)

    def show(probs: tuple[float, ...]) -> str:
        return "[" + ", ".join(_show(p, check.dtype) for p in probs) + "]"

    return "\n".join(
        [
            f"softmax([{logits}]) in {check.dtype}:",
            f"  naive  (exp, then normalise): {show(check.naive)}",
            f"  stable (shift by the max):    {show(check.stable)}",
        ]
    )


def report(dtype: str) -> str:
    """What `tfsoftmax numerics --dtype DTYPE` prints: the table for all formats, then the check.

    Raises:
        TfsoftmaxError: exit code 2, if `dtype` is not one of DTYPES.
    """
    check = softmax_check(dtype)
    return format_ranges(exp_ranges()) + "\n\n" + format_check(check)
