import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from tfsoftmax import numerics, ops
from tfsoftmax.errors import TfsoftmaxError

DTYPES = ["float64", "float32", "bfloat16", "float16"]


@pytest.fixture(scope="module")
def ranges() -> dict[str, numerics.ExpRange]:
    return {r.dtype: r for r in numerics.exp_ranges()}


def _scalar(x: float, dtype: str) -> np.generic:
    return (ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype).type)(x)


def _finfo(dtype: str) -> np.finfo:
    return ml_dtypes.finfo(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.finfo(dtype)


def _step(x: float, dtype: str, towards: float) -> float:
    """The neighbour of x in its format, one ulp towards `towards`."""
    return float(np.nextafter(_scalar(x, dtype), _scalar(towards, dtype)))


def _ulp(x: float, dtype: str) -> float:
    return float(np.abs(np.spacing(_scalar(x, dtype))))


def _tf_exp(x: float, dtype: str) -> float:
    return float(tf.exp(tf.constant([x], dtype=dtype))[0])


def test_exp_ranges_cover_the_four_formats_widest_first(
    ranges: dict[str, numerics.ExpRange],
) -> None:
    assert list(ranges) == DTYPES


def test_measured_bounds(ranges: dict[str, numerics.ExpRange]) -> None:
    assert ranges == {
        "float64": numerics.ExpRange(
            "float64", -708.3964185322641, 709.782712893384, 709.782712893384, False
        ),
        "float32": numerics.ExpRange(
            "float32", -87.33654022216797, 88.72283172607422, 88.72283172607422, False
        ),
        "bfloat16": numerics.ExpRange("bfloat16", -87.0, 88.5, 88.5, False),
        "float16": numerics.ExpRange("float16", -17.328125, 11.0859375, 11.0859375, True),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_arg_is_the_last_argument_with_finite_exp(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    max_arg = ranges[dtype].max_arg
    assert math.isfinite(_tf_exp(max_arg, dtype))
    assert _tf_exp(_step(max_arg, dtype, math.inf), dtype) == math.inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_arg_is_log_of_the_largest_value_to_one_ulp(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    max_arg = ranges[dtype].max_arg
    assert abs(max_arg - math.log(float(_finfo(dtype).max))) <= _ulp(max_arg, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_min_arg_is_the_last_argument_with_nonzero_exp(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    min_arg = ranges[dtype].min_arg
    assert _tf_exp(min_arg, dtype) > 0
    assert _tf_exp(_step(min_arg, dtype, -math.inf), dtype) == 0


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_min_arg_is_log_of_smallest_normal_where_tf_flushes_subnormals(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    info, min_arg = _finfo(dtype), ranges[dtype].min_arg
    assert not ranges[dtype].subnormals
    assert _tf_exp(min_arg, dtype) >= float(info.tiny)
    assert abs(min_arg - math.log(float(info.tiny))) <= _ulp(min_arg, dtype)


def test_float16_min_arg_is_log_of_half_the_smallest_subnormal(
    ranges: dict[str, numerics.ExpRange],
) -> None:
    # float16 exp runs in float32, where its subnormals are normal numbers, so none is flushed;
    # anything above half the smallest subnormal rounds up to it.
    smallest = float(_finfo("float16").smallest_subnormal)
    min_arg = ranges["float16"].min_arg
    assert ranges["float16"].subnormals
    assert _tf_exp(min_arg, "float16") == smallest
    assert abs(min_arg - math.log(smallest / 2)) <= _ulp(min_arg, "float16")


def test_float16_range_is_much_narrower_than_float32(ranges: dict[str, numerics.ExpRange]) -> None:
    assert ranges["float16"].max_arg == 11.0859375
    assert ranges["float32"].max_arg > 8 * ranges["float16"].max_arg


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_softmax_survives_gaps_up_to_max_arg_only(
    ranges: dict[str, numerics.ExpRange], dtype: str
) -> None:
    gap = ranges[dtype].max_naive_gap
    assert gap == ranges[dtype].max_arg
    assert np.isfinite(ops.softmax(tf.constant([[gap, 0.0]], dtype=dtype)).numpy()).all()
    beyond = tf.constant([[_step(gap, dtype, math.inf), 0.0]], dtype=dtype)
    assert np.isnan(ops.softmax(beyond).numpy().astype(np.float64)[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_softmax_survives_the_widest_finite_gap(dtype: str) -> None:
    largest = float(_finfo(dtype).max)
    logits = tf.constant([[largest, -largest]], dtype=dtype)
    assert ops.stable_softmax(logits).numpy().astype(np.float64).tolist() == [[1.0, 0.0]]


def test_table_shows_each_bound_in_its_own_format(ranges: dict[str, numerics.ExpRange]) -> None:
    table = numerics.format_table(list(ranges.values()))
    assert table.splitlines()[:5] == [
        "format    exp(x) finite for x <=  exp(x) > 0 for x >=  subnormals  naive softmax gap <=",
        "float64         709.782712893384   -708.3964185322641     flushed      709.782712893384",
        "float32                 88.72283            -87.33654     flushed              88.72283",
        "bfloat16                    88.5                  -87     flushed                  88.5",
        "float16                   11.086               -17.33        kept                11.086",
    ]


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
    assert [line.split()[0] for line in text.splitlines()[1:5]] == DTYPES
    assert text.endswith(numerics.format_check(numerics.softmax_check("float16")))
    assert "softmax([100.0, 0.0]) in float16:" in text


@pytest.mark.parametrize("function", [numerics.softmax_check, numerics.report])
def test_unknown_dtype_is_a_usage_error(function: Callable[[str], object]) -> None:
    with pytest.raises(
        TfsoftmaxError,
        match=r"^numerics: unknown dtype 'float8'; allowed: float64, float32, bfloat16, float16$",
    ) as raised:
        function("float8")
    assert raised.value.exit_code == 2


def test_importing_numerics_does_not_load_tensorflow() -> None:
    code = "import sys, tfsoftmax.numerics; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "False\n"
