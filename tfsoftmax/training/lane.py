"""The arithmetic of a pack's pass, on tensors: logits and losses of many trials at once, Keras' optimizer
updates, and one lane's loop over an epoch's micro-batches.

A lane is a range of a pack's trials stepped by a loop of its own, one XLA program. A pack runs one lane
per core: no lane's program reads another's results or any variable, so TensorFlow's executor runs them
side by side, where one loop's small matmuls of a micro-batch keep about one core busy. In one XLA program
the loops would run one after the other (docs/design.md, "A pass runs a lane per core").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from tfsoftmax.rundir.environment import cores

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults, as `models.softmax` builds it

State = dict[str, tf.Tensor]  # "kernel", "bias", the optimizer's slots ("v/kernel", ...) and "steps"
PerTrial = dict[str, tf.Tensor]  # "lr", "momentum", "decay" (trials, 1, 1); "half_decay", "every", "active"


class Passed(NamedTuple):
    """A lane's pass: its trials' state after it, and each trial's summed loss, hits and first non-finite
    batch (0 where none)."""

    state: State
    loss: tf.Tensor
    correct: tf.Tensor
    bad: tf.Tensor


def logits(kernel: tf.Tensor, bias: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """(examples, trials, classes) from a kernel of (trials, classes, inputs) used as one wide matrix."""
    trials, classes = kernel.shape[0], kernel.shape[1]
    wide = tf.matmul(x, tf.reshape(kernel, (trials * classes, -1)), transpose_b=True)
    return tf.reshape(wide, (-1, trials, classes)) + bias[..., 0]


def losses(scores: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per example and trial: cross-entropy from logits (log-sum-exp), hits, and the loss's gradient with
    respect to the logits (softmax - one-hot)."""
    onehot = tf.one_hot(y, scores.shape[2])[:, None]
    lse = tf.reduce_logsumexp(scores, axis=2, keepdims=True)
    ce = (lse - tf.reduce_sum(scores * onehot, axis=2, keepdims=True))[..., 0]
    hits = tf.cast(tf.equal(tf.argmax(scores, axis=2, output_type=tf.int32), y[:, None]), tf.float32)
    return ce, hits, tf.exp(scores - lse) - onehot


def penalty(half_decay: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """weight_decay / 2 * ||W||^2 of each trial's kernel (the bias is not decayed)."""
    return half_decay * tf.reduce_sum(tf.square(kernel), axis=[1, 2])


@dataclass(frozen=True)
class Lane:
    """What a lane's loop is traced with: the micro-batch, how many make the pass, the optimizer family
    ("sgd" or "adam"), and whether any trial decays its weights or keeps a velocity."""

    micro: int
    micros: int
    family: str
    decays: bool
    moves: bool

    def apply(self, state: State, grads: State, update: tf.Tensor, per_trial: PerTrial) -> State:
        """One optimizer step for the trials where `update` is set; the others keep every value."""
        on, lr = update[:, None, None], per_trial["lr"]
        t = tf.reshape(tf.cast(state["steps"] + 1, tf.float32), (-1, 1, 1))
        new = dict(state, steps=state["steps"] + tf.cast(update, tf.int64))
        for part in ("kernel", "bias"):
            g, var = grads[part], state[part]
            if self.family == "adam":
                alpha = lr * tf.sqrt(1 - ADAM_BETA_2**t) / (1 - ADAM_BETA_1**t)
                m, v = state[f"m/{part}"], state[f"v/{part}"]
                new_m = m + (g - m) * (1 - ADAM_BETA_1)
                new_v = v + (tf.square(g) - v) * (1 - ADAM_BETA_2)
                new[f"m/{part}"], new[f"v/{part}"] = tf.where(on, new_m, m), tf.where(on, new_v, v)
                new[part] = tf.where(on, var - (new_m * alpha) / (tf.sqrt(new_v) + ADAM_EPSILON), var)
            elif not self.moves:
                new[part] = tf.where(on, var - g * lr, var)
            else:
                v = state[f"v/{part}"]
                new_v = v * per_trial["momentum"] - g * lr
                new[f"v/{part}"] = tf.where(on, new_v, v)
                new[part] = tf.where(on, var + new_v, var)
        return new

    @tf.function(jit_compile=True, autograph=False)
    def train(
        self, data: tuple[tf.Tensor, tf.Tensor], order: tf.Tensor, real: tf.Tensor, state: State, per_trial: PerTrial
    ) -> Passed:
        """One pass of the lane's trials over `order` (padded to whole micro-batches, `real` marking the
        examples). One XLA program: a micro-batch step is a few small ops, whose dispatch would cost more
        than their arithmetic. Everything comes in as arguments, so equal lanes of any pack share one
        compiled program, and it reads no variable, so lanes run side by side. The loop is written as
        `tf.while_loop`, not converted by autograph: tracing is then a fraction of the time, and the
        traced program is the same."""
        m, trials = self.micro, state["kernel"].shape[0]
        every, active = per_trial["every"], per_trial["active"]

        def step(
            j: tf.Tensor, sums: tuple[tf.Tensor, ...], state: State, grad: State, seen: tf.Tensor, fresh: tf.Tensor
        ) -> tuple[tf.Tensor, tuple[tf.Tensor, ...], State, State, tf.Tensor, tf.Tensor]:
            loss, correct, bad = sums
            rows = tf.slice(order, [j * m], [m])
            weight = tf.slice(real, [j * m], [m])
            x, y = tf.gather(data[0], rows), tf.gather(data[1], rows)
            count = tf.reduce_sum(weight)
            ce, hits, delta = losses(logits(state["kernel"], state["bias"], x), y)
            batch_loss = tf.reduce_sum(ce * weight[:, None], axis=0)
            if self.decays:
                batch_loss += penalty(per_trial["half_decay"], state["kernel"]) * count
            batch = j // every + 1
            bad = tf.where((bad == 0) & ~tf.math.is_finite(batch_loss) & active, batch, bad)
            sums = (loss + batch_loss, correct + tf.reduce_sum(hits * weight[:, None], axis=0), bad)
            delta *= weight[:, None, None]
            # Started afresh by selection, not by zeroing after the update: one pass over the weights fewer.
            restart = fresh[:, None, None]
            wide = tf.reshape(delta, (m, -1))
            part = {
                "kernel": tf.reshape(tf.matmul(wide, x, transpose_a=True), tf.shape(grad["kernel"])),
                "bias": tf.reduce_sum(delta, axis=0)[..., None],
            }
            grad = {k: tf.where(restart, part[k], grad[k] + part[k]) for k in grad}
            seen = tf.where(fresh, count, seen + count)
            due = ((j + 1) % every == 0) | (j == self.micros - 1)
            scale = seen[:, None, None]
            decayed = per_trial["decay"] * state["kernel"] if self.decays else 0.0
            mean = {"kernel": grad["kernel"] / scale + decayed, "bias": grad["bias"] / scale}
            state = self.apply(state, mean, due & active & (bad == 0), per_trial)
            return j + 1, sums, state, grad, seen, due

        start = (
            tf.constant(0),
            (tf.zeros(trials), tf.zeros(trials), tf.zeros(trials, tf.int32)),
            state,
            {"kernel": tf.zeros_like(state["kernel"]), "bias": tf.zeros_like(state["bias"])},
            tf.zeros(trials),
            tf.ones(trials, tf.bool),  # a trial's batch starts at this micro-batch: its sums start afresh
        )
        _, (loss, correct, bad), state, *_ = tf.while_loop(lambda j, *_: j < self.micros, step, start)
        return Passed(state, loss, correct, bad)


def ranges(trials: int, lanes: int | None = None) -> list[tuple[int, int]]:
    """`trials` split into at most `lanes` contiguous ranges (one per core by default) of sizes as equal as
    can be, larger first."""
    count = max(1, min(trials, cores() if lanes is None else lanes))
    sizes = [trials // count + (i < trials % count) for i in range(count)]
    return list(itertools.pairwise(itertools.accumulate(sizes, initial=0)))
