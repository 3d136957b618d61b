"""From-scratch softmax regression pieces (D2L's scratch chapter), naive next to stable.

Logits and probabilities are float tensors of shape (batch, classes); labels are integer class
ids of shape (batch,), in any integer dtype. Everything works eagerly and inside `tf.function`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def _shift_by_max(logits: tf.Tensor) -> tf.Tensor:
    # The shift cancels out of softmax, so no gradient should flow through it: letting it through
    # only adds rounding noise and splits the gradient between tied maxima.
    return logits - tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))


def _true_class(values: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    # tf.gather takes only int16/32/64 indices, and TFDS hands out uint8 or int64 labels.
    return tf.gather(values, tf.cast(labels, tf.int64), batch_dims=1)


def softmax(logits: tf.Tensor) -> tf.Tensor:
    """D2L's first softmax: exp, then divide by the row sum; kept to show how it fails.

    In float32 exp overflows to inf once a logit passes ~88.7, and inf / inf is NaN; a row whose
    logits all lie below ~-87.3 underflows to 0 / 0, NaN again.
    """
    exps = tf.exp(logits)
    return exps / tf.reduce_sum(exps, axis=-1, keepdims=True)


def stable_softmax(logits: tf.Tensor) -> tf.Tensor:
    """Softmax of the logits minus each row's max: the largest exp is 1, so nothing overflows.

    Fine for any finite logits; an inf or NaN logit still gives NaN.
    """
    exps = tf.exp(_shift_by_max(logits))
    return exps / tf.reduce_sum(exps, axis=-1, keepdims=True)


def log_softmax(logits: tf.Tensor) -> tf.Tensor:
    """log(softmax) by the log-sum-exp trick, finite where log(stable_softmax) would give -inf."""
    shifted = _shift_by_max(logits)
    return shifted - tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=-1, keepdims=True))


def cross_entropy(probs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """D2L's `cross_entropy(y_hat, y)`: -log of the true class's probability, batch mean.

    inf as soon as that probability has underflowed to 0 (log(0) = -inf), e.g. softmax of
    [0, -200] in float32; use `cross_entropy_from_logits` for training.
    """
    return -tf.reduce_mean(tf.math.log(_true_class(probs, labels)))


def cross_entropy_from_logits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Batch-mean cross-entropy from logits via `log_softmax`: finite for any finite logits.

    Its gradient with respect to the logits is (softmax - onehot) / batch.
    """
    return -tf.reduce_mean(_true_class(log_softmax(logits), labels))


def accuracy(scores: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Fraction of rows whose argmax is the label, as a float32 scalar.

    Takes logits or probabilities alike, since softmax keeps the order. tf.argmax passes over NaN
    (an all-NaN row picks class 0), so a diverged model can still score: check the loss for NaN.
    """
    predicted = tf.argmax(scores, axis=-1, output_type=tf.int64)
    return tf.reduce_mean(tf.cast(predicted == tf.cast(labels, tf.int64), tf.float32))


def sgd_update(params: Sequence[tf.Variable], grads: Sequence[tf.Tensor], lr: float) -> None:
    """D2L's minibatch SGD step, in place: each param -= lr * grad.

    The grads must be of the batch-mean loss (as both losses here are), so unlike D2L's
    `sgd(params, grads, lr, batch_size)` there is no second division by the batch size.
    """
    for param, grad in zip(params, grads, strict=True):
        param.assign_sub(lr * grad)
