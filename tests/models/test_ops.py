import math
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tfsoftmax.models import ops

DTYPES = [tf.float32, tf.float64]
TOLERANCE = {tf.float32: 1e-6, tf.float64: 1e-12}


def _logits(dtype: tf.DType) -> tf.Tensor:
    rng = np.random.default_rng(0)
    return tf.constant(rng.normal(scale=5.0, size=(8, 10)), dtype=dtype)


def _labels(dtype: tf.DType = tf.int64) -> tf.Tensor:
    return tf.constant([0, 3, 9, 1, 1, 5, 7, 2], dtype=dtype)


def _assert_close(actual: tf.Tensor, expected: tf.Tensor, dtype: tf.DType) -> None:
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=TOLERANCE[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("softmax", [ops.softmax, ops.stable_softmax])
def test_softmax_matches_tf_nn_softmax(softmax: Callable[[tf.Tensor], tf.Tensor], dtype: tf.DType) -> None:
    logits = _logits(dtype)
    _assert_close(softmax(logits), tf.nn.softmax(logits), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_matches_tf_nn_log_softmax(dtype: tf.DType) -> None:
    logits = _logits(dtype)
    _assert_close(ops.log_softmax(logits), tf.nn.log_softmax(logits), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_both_cross_entropies_match_keras_loss(dtype: tf.DType) -> None:
    logits, labels = _logits(dtype), _labels()
    expected = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    _assert_close(ops.cross_entropy_from_logits(logits, labels), expected, dtype)
    _assert_close(ops.cross_entropy(tf.nn.softmax(logits), labels), expected, dtype)


@pytest.mark.parametrize("label_dtype", [tf.uint8, tf.int16, tf.int32, tf.int64])
def test_labels_of_any_integer_dtype_give_the_same_loss_and_accuracy(label_dtype: tf.DType) -> None:
    logits = _logits(tf.float32)
    labels = _labels(label_dtype)
    probs = ops.softmax(logits)
    assert float(ops.cross_entropy_from_logits(logits, labels)) == float(
        ops.cross_entropy_from_logits(logits, _labels())
    )
    assert float(ops.cross_entropy(probs, labels)) == float(ops.cross_entropy(probs, _labels()))
    assert float(ops.accuracy(logits, labels)) == float(ops.accuracy(logits, _labels()))


def test_accuracy_counts_argmax_hits() -> None:
    scores = tf.constant([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    result = ops.accuracy(scores, tf.constant([0, 2, 2, 1]))
    assert result.dtype == tf.float32
    assert float(result) == 0.5


def test_accuracy_matches_keras_metric_on_logits_and_probabilities() -> None:
    logits, labels = _logits(tf.float32), _labels()
    expected = float(tf.reduce_mean(tf.keras.metrics.sparse_categorical_accuracy(labels, logits)))
    assert float(ops.accuracy(logits, labels)) == expected
    assert float(ops.accuracy(tf.nn.softmax(logits), labels)) == expected


def test_ops_give_the_same_numbers_inside_tf_function() -> None:
    logits, labels = _logits(tf.float32), _labels(tf.int32)
    for op, args in [
        (ops.softmax, (logits,)),
        (ops.stable_softmax, (logits,)),
        (ops.log_softmax, (logits,)),
        (ops.cross_entropy, (tf.nn.softmax(logits), labels)),
        (ops.cross_entropy_from_logits, (logits, labels)),
        (ops.accuracy, (logits, labels)),
    ]:
        np.testing.assert_allclose(tf.function(op)(*args).numpy(), op(*args).numpy(), rtol=1e-6)


def test_naive_softmax_overflows_to_nan_where_stable_gives_one() -> None:
    logits = tf.constant([[100.0, 0.0]])
    # exp(100) is inf in float32: inf / inf = nan, 1 / inf = 0.
    naive = ops.softmax(logits).numpy().tolist()[0]
    assert math.isnan(naive[0])
    assert naive[1] == 0.0
    # exp(-100) ~ 3.7e-44 would be a float32 subnormal, which TF's CPU kernels flush to 0.
    assert ops.stable_softmax(logits).numpy().tolist() == [[1.0, 0.0]]


def test_float64_has_room_for_exp_100() -> None:
    logits = tf.constant([[100.0, 0.0]], dtype=tf.float64)
    assert ops.stable_softmax(logits).numpy().tolist() == [[1.0, 3.720075976020836e-44]]
    assert ops.softmax(logits).numpy().tolist() == [[1.0, 3.7200759760208356e-44]]


def test_naive_softmax_underflows_to_nan_where_stable_gives_one_half() -> None:
    logits = tf.constant([[-1000.0, -1000.0]])
    # exp(-1000) is 0 in every format: 0 / 0 = nan.
    assert np.isnan(ops.softmax(logits).numpy()).all()
    assert ops.stable_softmax(logits).numpy().tolist() == [[0.5, 0.5]]


def test_naive_cross_entropy_is_inf_once_the_probability_underflows() -> None:
    logits, labels = tf.constant([[0.0, -200.0]]), tf.constant([1])
    assert ops.stable_softmax(logits).numpy().tolist() == [[1.0, 0.0]]
    assert float(ops.cross_entropy(ops.stable_softmax(logits), labels)) == math.inf
    # The exact loss is 200 + log(1 + exp(-200)), which is 200.0 in float32 as in float64.
    assert float(ops.cross_entropy_from_logits(logits, labels)) == 200.0
    assert float(ops.cross_entropy_from_logits(tf.cast(logits, tf.float64), labels)) == 200.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_gradient_is_softmax_minus_onehot_over_batch(dtype: tf.DType) -> None:
    logits, labels = _logits(dtype), _labels()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = ops.cross_entropy_from_logits(logits, labels)
        keras_loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    grad = tape.gradient(ours, logits)
    expected = (tf.nn.softmax(logits) - tf.one_hot(labels, 10, dtype=dtype)) / 8
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(grad.numpy(), tape.gradient(keras_loss, logits).numpy(), rtol=0, atol=TOLERANCE[dtype])


def test_cross_entropy_gradient_stays_finite_for_extreme_logits() -> None:
    logits, labels = tf.constant([[0.0, -200.0]]), tf.constant([1])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = ops.cross_entropy_from_logits(logits, labels)
    assert tape.gradient(loss, logits).numpy().tolist() == [[1.0, -1.0]]


def test_sgd_update_subtracts_exactly_lr_times_grad_in_place() -> None:
    weights = tf.Variable([1.0, 2.0])
    bias = tf.Variable(0.5)
    params = [weights, bias]
    ops.sgd_update(params, [tf.constant([0.5, -0.25]), tf.constant(4.0)], lr=0.5)
    assert params[0] is weights
    assert weights.numpy().tolist() == [0.75, 2.125]
    assert float(bias) == -1.5


def test_sgd_update_works_inside_tf_function() -> None:
    weights = tf.Variable([1.0, 2.0])
    step = tf.function(lambda grad: ops.sgd_update([weights], [grad], lr=0.25))
    step(tf.constant([1.0, -1.0]))
    step(tf.constant([1.0, -1.0]))
    assert weights.numpy().tolist() == [0.5, 2.5]


def test_sgd_update_refuses_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="zip"):
        ops.sgd_update([tf.Variable(1.0)], [], lr=0.1)
