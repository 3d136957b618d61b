"""The exp ranges are checked against an oracle that shares nothing with numerics.

The oracle writes each format's limits out from its IEEE-754 parameters (no finfo look-up), takes
their logarithms in exact decimal arithmetic and rounds those onto the format's grid by hand; tf.exp
on the CPU then confirms each bound and the value one ulp beyond it.
"""

import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.lessons import numerics
from tfsoftmax.models import ops

DTYPES = ["float64", "float32", "bfloat16", "float16"]

TABLE_HEAD = [
    "format    exp(x) finite for x <=  exp(x) > 0 for x >=  subnormals  naive softmax gap <=",
    "float64         709.782712893384   -708.3964185322641     flushed      709.782712893384",
    "float32                 88.72283            -87.33654     flushed              88.72283",
    "bfloat16                    88.5                  -87     flushed                  88.5",
    "float16                   11.086               -17.33        kept                11.086",
]


EXACT = 800
"""Decimal digits enough to hold every limit here exactly: 2**-1074 has 751 significant digits."""


def _power(exponent: int) -> Decimal:
    with localcontext(prec=EXACT):
        return Decimal(2) ** exponent


@dataclass(frozen=True)
class Format:
    """A binary float format from its two IEEE-754 parameters, so a wrong finfo cannot leak in.

    precision counts the significand's bits, the implicit leading one included. Limits are exact.
    """

    precision: int
    emax: int

    @property
    def max(self) -> Decimal:
        with localcontext(prec=EXACT):
            return (2 - _power(1 - self.precision)) * _power(self.emax)

    @property
    def tiny(self) -> Decimal:
        """The smallest normal number."""
        return _power(1 - self.emax)

    @property
    def smallest_subnormal(self) -> Decimal:
        return _power(2 - self.emax - self.precision)

    def ln_grid(self, x: Decimal) -> tuple[float, float]:
        """log(x) on the format's grid: its value nearest log(x) towards zero, then the one a ulp
        further out.

        Exact: the ulp is a power of two, and log(x), never a grid point, is known to EXACT digits.
        """
        with localcontext(prec=EXACT):
            log = x.ln()
            exponent = math.floor(math.log2(abs(log)))
            assert _power(exponent) <= abs(log) < _power(exponent + 1)
            ulp = _power(exponent - self.precision + 1)
            inside = (abs(log) / ulp).to_integral_value(rounding=ROUND_FLOOR) * ulp
        sign = 1 if log > 0 else -1
        return sign * float(inside), sign * float(inside + ulp)


FORMATS = {
    "float64": Format(precision=53, emax=1023),
    "float32": Format(precision=24, emax=127),
    "bfloat16": Format(precision=8, emax=127),
    "float16": Format(precision=11, emax=15),
}


def _max_arg_oracle(dtype: str) -> tuple[float, float]:
    """exp(x) <= max for x up to the first value, and overflows from the one after it.

    The next value is more than half a ulp of max beyond log(max) in every format here, so the
    rounded exp is inf there.
    """
    return FORMATS[dtype].ln_grid(FORMATS[dtype].max)


def _min_arg_oracle(dtype: str) -> tuple[float, float]:
    """Where exp stops being > 0: at log(smallest normal) in the three formats TF flushes, at
    log(smallest subnormal / 2) in float16, whose exp runs in float32 and rounds anything above that
    half up to the smallest subnormal."""
    fmt = FORMATS[dtype]
    with localcontext(prec=EXACT):
        return fmt.ln_grid(fmt.smallest_subnormal / 2 if dtype == "float16" else fmt.tiny)


def _tf_exp(x: float, dtype: str) -> float:
    """tf.exp in `dtype` on the CPU, whose kernels the measured table describes."""
    with tf.device("/CPU:0"):
        return float(tf.exp(tf.constant([x], dtype=dtype))[0])


def _naive_softmax(gap: float, dtype: str) -> np.ndarray:
    with tf.device("/CPU:0"):
        return ops.softmax(tf.constant([[gap, 0.0]], dtype=dtype)).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def ranges() -> dict[str, numerics.ExpRange]:
    return {r.dtype: r for r in numerics.exp_ranges()}


def test_exp_ranges_cover_the_four_formats_widest_first(
    ranges: dict[str, numerics.ExpRange],
) -> None:
    assert list(ranges) == DTYPES


def test_measured_bounds(ranges: dict[str, numerics.ExpRange]) -> None:
    assert ranges == {
        "float64": numerics.ExpRange("float64", -708.3964185322641, 709.782712893384, 709.782712893384, False),
        "float32": numerics.ExpRange("float32", -87.33654022216797, 88.72283172607422, 88.72283172607422, False),
        "bfloat16": numerics.ExpRange("bfloat16", -87.0, 88.5, 88.5, False),
        "float16": numerics.ExpRange("float16", -17.328125, 11.0859375, 11.0859375, True),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_format_parameters_give_the_known_limits(dtype: str) -> None:
    """The oracle's own inputs, against IEEE-754's published limits rather than finfo."""
    known = {
        "float64": (1.7976931348623157e308, 2.2250738585072014e-308, 5e-324),
        "float32": (3.4028234663852886e38, 1.1754943508222875e-38, 1.401298464324817e-45),
        "bfloat16": (3.3895313892515355e38, 1.1754943508222875e-38, 9.183549615799121e-41),
        "float16": (65504.0, 6.103515625e-05, 5.960464477539063e-08),
    }
    fmt = FORMATS[dtype]
    assert (float(fmt.max), float(fmt.tiny), float(fmt.smallest_subnormal)) == known[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_arg_is_log_of_the_largest_value_rounded_down(ranges: dict[str, numerics.ExpRange], dtype: str) -> None:
    assert ranges[dtype].max_arg == _max_arg_oracle(dtype)[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tf_exp_is_finite_at_max_arg_and_inf_one_ulp_beyond(dtype: str) -> None:
    """Confirms the oracle against TF itself, so the exact-equality tests rest on TF's behaviour."""
    max_arg, beyond = _max_arg_oracle(dtype)
    assert math.isfinite(_tf_exp(max_arg, dtype))
    assert _tf_exp(beyond, dtype) == math.inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_min_arg_is_the_rounded_log_of_the_smallest_result_tf_keeps(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    assert ranges[dtype].min_arg == _min_arg_oracle(dtype)[0]


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_tf_exp_flushes_below_the_smallest_normal(ranges: dict[str, numerics.ExpRange], dtype: str) -> None:
    """One ulp below min_arg the true exp is a subnormal the format could hold, yet TF returns 0."""
    min_arg, beyond = _min_arg_oracle(dtype)
    tiny = float(FORMATS[dtype].tiny)
    assert not ranges[dtype].subnormals
    assert _tf_exp(min_arg, dtype) >= tiny
    assert math.exp(beyond) > float(FORMATS[dtype].smallest_subnormal)
    assert _tf_exp(beyond, dtype) == 0


def test_tf_exp_keeps_float16_subnormals_down_to_the_smallest(
    ranges: dict[str, numerics.ExpRange],
) -> None:
    min_arg, beyond = _min_arg_oracle("float16")
    assert ranges["float16"].subnormals
    assert _tf_exp(min_arg, "float16") == float(FORMATS["float16"].smallest_subnormal)
    assert _tf_exp(beyond, "float16") == 0


def test_float16_range_is_much_narrower_than_float32(ranges: dict[str, numerics.ExpRange]) -> None:
    assert ranges["float16"].max_arg == 11.0859375
    assert ranges["float32"].max_arg > 8 * ranges["float16"].max_arg


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_softmax_survives_gaps_up_to_max_arg_only(ranges: dict[str, numerics.ExpRange], dtype: str) -> None:
    """softmax([g, 0]) = exp(g) / (exp(g) + 1) breaks exactly when exp(g) does: inf / inf."""
    max_arg, beyond = _max_arg_oracle(dtype)
    assert ranges[dtype].max_naive_gap == max_arg
    assert np.isfinite(_naive_softmax(max_arg, dtype)).all()
    assert np.isnan(_naive_softmax(beyond, dtype)[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_softmax_survives_the_widest_finite_gap(dtype: str) -> None:
    largest = float(FORMATS[dtype].max)
    logits = tf.constant([[largest, -largest]], dtype=dtype)
    assert ops.stable_softmax(logits).numpy().astype(np.float64).tolist() == [[1.0, 0.0]]


def test_table_shows_each_bound_in_its_own_format(ranges: dict[str, numerics.ExpRange]) -> None:
    table = numerics.format_ranges(list(ranges.values()))
    assert table.splitlines()[:5] == TABLE_HEAD


def test_softmax_check_in_float32_gives_nan_naive_and_one_stable() -> None:
    check = numerics.softmax_check("float32")
    assert math.isnan(check.naive[0])
    assert check.naive[1] == 0.0
    assert check.stable == (1.0, 0.0)
    assert numerics.format_check(check) == (
        "softmax([100.0, 0.0]) in float32:\n"
        "  naive  (exp, then normalise): [nan, 0.0]\n"
        "  stable (shift by the max):    [1.0, 0.0]"
    )


def test_softmax_check_in_float64_has_room_for_exp_100() -> None:
    check = numerics.softmax_check("float64")
    assert check.naive == (1.0, 3.7200759760208356e-44)
    assert check.stable == (1.0, 3.720075976020836e-44)


def test_report_has_table_for_all_formats_then_the_chosen_check() -> None:
    text = numerics.report("float16")
    assert text.splitlines()[:5] == TABLE_HEAD
    assert text.endswith(
        "\n\nsoftmax([100.0, 0.0]) in float16:\n"
        "  naive  (exp, then normalise): [nan, 0.0]\n"
        "  stable (shift by the max):    [1.0, 0.0]"
    )


@pytest.mark.parametrize("function", [numerics.softmax_check, numerics.report])
def test_unknown_dtype_is_a_usage_error(function: Callable[[str], object]) -> None:
    with pytest.raises(
        TfsoftmaxError,
        match=r"^numerics: unknown dtype 'float8'; allowed: float64, float32, bfloat16, float16$",
    ) as raised:
        function("float8")
    assert raised.value.exit_code == 2


@pytest.mark.slow  # a fresh interpreter
def test_importing_numerics_does_not_load_tensorflow() -> None:
    code = "import sys, tfsoftmax.lessons.numerics; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "False\n"
