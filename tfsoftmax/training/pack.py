"""Several sweep trials of softmax regression stepped together: one weight matrix holds every trial's
weights side by side, so each step is one matmul for all of them, and each trial keeps its own learning
rate, batch size, momentum or Adam state, and weight decay.

The arithmetic is Keras' own, written out: the loss is `SparseCategoricalCrossentropy(from_logits=True)`
averaged over the batch plus weight_decay / 2 * ||W||^2 (the L2 regularizer `model.build_model` sets),
its gradient is softmax - one-hot, and the updates are Keras' SGD (with momentum) and Adam. Every trial
reads the examples in the order a run of the same seed reads them (`data.epoch_order`), in micro-batches
whose size divides every trial's batch size: a trial of batch 128 in a pack of micro-batch 32 sums the
gradients of 4 micro-batches and applies its update after the fourth, exactly as its own run's batch
would. Only the order of float additions differs from a run's, so a trial matches a standalone run of its
config to float rounding (`tests/training/test_pack.py` measures how closely).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfsoftmax import data as data_lib
from tfsoftmax.training import compile_cache

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults, as `models.softmax` builds it


@dataclass(frozen=True)
class Member:
    """One trial's hyperparameters inside a pack. `momentum` is 0 for plain SGD: w + (0 * v - lr * g), in a
    pack with momentum trials, equals Keras' w - lr * g exactly (a pack of plain SGD keeps no velocity)."""

    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass
class EpochResult:
    """One epoch of every trial: Keras' epoch logs (mean loss and accuracy over the epoch's batches), the
    updates applied, and the first batch (1-based) whose loss was not finite, 0 where none."""

    loss: np.ndarray
    accuracy: np.ndarray
    steps: np.ndarray
    diverged_at: np.ndarray


class Pack(tf.Module):
    """The weights and optimizer state of `len(members)` trials of one optimizer family ("sgd" covers
    SGD and momentum, "adam" Adam), trained on the same data with the same seed.

    All trials' weights are the rows of one matrix, so each step is one wide matmul: batched per-trial
    matmuls give bits independent of the pack-mates but cost more time (docs/design.md). A wide
    matmul splits its sums by its width, so a trial's last bits depend on its pack's size: the same sweep
    forms the same packs and gives the same numbers in any process. Each trial's kernel is held
    transposed, (classes, inputs), so its weights are contiguous: the small matmuls of a micro-step run
    about twice as fast on CPU as with Keras' (inputs, classes) layout (docs/design.md)."""

    def __init__(
        self,
        train: tuple[np.ndarray, np.ndarray],
        seed: int,
        members: Sequence[Member],
        family: str,
        weights: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        super().__init__()
        compile_cache.enable(tf.__version__)  # in use already if a model was built (`train.seed_everything`)
        x, y = train
        self.source = x  # held, so `engine` can tell these arrays from later ones of the same size
        self.n, self.seed, self.family, self.size = len(x), seed, family, len(members)
        # The arrays' TensorFlow copies are shared by every pack of the process (`as_tensor`).
        self.x = tf.reshape(data_lib.as_tensor(x), (len(x), -1))
        self.y = data_lib.as_tensor(y)
        self.classes = weights[0][0].shape[1]
        self.micro = micro_batch(members)
        self.micros = data_lib.steps_per_epoch(self.n, self.micro)
        # Plain SGD's pass skips the velocity, a full pass over the weights at every step it would not use.
        self.decays, self.moves = traced_options(members, family)
        # Per-trial values are variables, so the next pack of this shape reuses the compiled pass (`engine`).
        self.lr, self.momentum, self.decay = (tf.Variable(tf.zeros((self.size, 1, 1))) for _ in range(3))
        self.half_decay = tf.Variable(tf.zeros(self.size))
        self.every = tf.Variable(tf.ones(self.size, tf.int32))
        # (trials, classes, inputs), used as (trials * classes, inputs); the bias as (trials, classes, 1),
        # so per-trial values of shape (trials, 1, 1) broadcast over both.
        self.kernel = tf.Variable(tf.zeros((self.size, self.classes, self.x.shape[1])))
        self.bias = tf.Variable(tf.zeros((self.size, self.classes, 1)))
        names = ("m", "v") if family == "adam" else ("v",)
        self.slots = {f"{n}/{part}": tf.Variable(tf.zeros_like(var)) for n in names for part, var in self.parts()}
        self.steps = tf.Variable(tf.zeros(self.size, tf.int64))
        self.active = tf.Variable(tf.ones(self.size, tf.bool))
        self.reset(members, weights)

    def reset(self, members: Sequence[Member], weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Start `members` from `weights` with fresh optimizer state."""

        def per_trial(values: list[float]) -> np.ndarray:
            return np.asarray(values, np.float32).reshape(-1, 1, 1)

        self.lr.assign(per_trial([m.lr for m in members]))
        self.momentum.assign(per_trial([m.momentum for m in members]))
        self.decay.assign(per_trial([m.weight_decay for m in members]))
        self.half_decay.assign([m.weight_decay / 2 for m in members])
        self.every.assign([m.batch_size // self.micro for m in members])
        self.kernel.assign(np.stack([w.T for w, _ in weights]).astype(np.float32))
        self.bias.assign(np.stack([b for _, b in weights])[..., None].astype(np.float32))
        for slot in self.slots.values():
            slot.assign(tf.zeros_like(slot))
        self.steps.assign(tf.zeros(self.size, tf.int64))
        self.active.assign(tf.ones(self.size, tf.bool))

    def parts(self) -> list[tuple[str, tf.Variable]]:
        """The trained variables by name, as the optimizer slots and checkpoints name them."""
        return [("kernel", self.kernel), ("bias", self.bias)]

    def _all(self) -> list[tuple[str, tf.Variable]]:
        return [*self.parts(), *self.slots.items()]

    def _wide(self, delta: tf.Tensor) -> tf.Tensor:
        """(examples, trials * classes) from (examples, trials, classes)."""
        return tf.reshape(delta, (tf.shape(delta)[0], self.size * self.classes))

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        """(examples, trials, classes)."""
        wide = tf.matmul(x, tf.reshape(self.kernel, (self.size * self.classes, -1)), transpose_b=True)
        return tf.reshape(wide, (-1, self.size, self.classes)) + self.bias[..., 0]

    def _penalty(self) -> tf.Tensor:
        """weight_decay / 2 * ||W||^2 of each trial's kernel (the bias is not decayed)."""
        return self.half_decay * tf.reduce_sum(tf.square(self.kernel), axis=[1, 2])

    def _losses(self, logits: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per trial and example: cross-entropy from logits (log-sum-exp), hits, and the loss's gradient
        with respect to the logits (softmax - one-hot)."""
        onehot = tf.one_hot(y, self.classes)[:, None]
        lse = tf.reduce_logsumexp(logits, axis=2, keepdims=True)
        ce = (lse - tf.reduce_sum(logits * onehot, axis=2, keepdims=True))[..., 0]
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=2, output_type=tf.int32), y[:, None]), tf.float32)
        return ce, hits, tf.exp(logits - lse) - onehot

    def _apply(self, grads: dict[str, tf.Tensor], update: tf.Tensor) -> None:
        """One optimizer step for the trials where `update` is set; the others keep every variable."""
        on = update[:, None, None]
        t = tf.reshape(tf.cast(self.steps + 1, tf.float32), (-1, 1, 1))
        for part, var in self.parts():
            g = grads[part]
            if self.family == "adam":
                alpha = self.lr * tf.sqrt(1 - ADAM_BETA_2**t) / (1 - ADAM_BETA_1**t)
                m, v = self.slots[f"m/{part}"], self.slots[f"v/{part}"]
                new_m = m + (g - m) * (1 - ADAM_BETA_1)
                new_v = v + (tf.square(g) - v) * (1 - ADAM_BETA_2)
                m.assign(tf.where(on, new_m, m))
                v.assign(tf.where(on, new_v, v))
                var.assign(tf.where(on, var - (new_m * alpha) / (tf.sqrt(new_v) + ADAM_EPSILON), var))
            elif not self.moves:
                var.assign(tf.where(on, var - g * self.lr, var))
            else:
                v = self.slots[f"v/{part}"]
                new_v = v * self.momentum - g * self.lr
                v.assign(tf.where(on, new_v, v))
                var.assign(tf.where(on, var + new_v, var))
        self.steps.assign_add(tf.cast(update, tf.int64))

    @tf.function(autograph=False)
    def _order(self, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The pass's order padded to whole micro-batches, and which of its places hold an example."""
        order = data_lib.epoch_order(self.n, self.seed, epoch)
        pad = self.micros * self.micro - self.n
        return tf.pad(order, [[0, pad]]), tf.pad(tf.ones(self.n), [[0, pad]])

    @tf.function(jit_compile=True, autograph=False)
    def _train_epoch(self, order: tf.Tensor, real: tf.Tensor) -> tuple[tf.Tensor, ...]:
        # One XLA program for the whole pass: a micro-batch step is a few small ops, whose dispatch would
        # cost more than their arithmetic. Fixed-size micro-batches (the last padded, its padding weighted 0).
        # The loop is written as `tf.while_loop`, not converted by autograph: tracing is then a fraction of
        # the time, and the traced program is the same.
        p, m = self.size, self.micro
        start_steps = tf.identity(self.steps)

        def step(
            j: tf.Tensor,
            loss: tf.Tensor,
            correct: tf.Tensor,
            bad: tf.Tensor,
            seen: tf.Tensor,
            grad_k: tf.Tensor,
            grad_b: tf.Tensor,
            fresh: tf.Tensor,
        ) -> tuple[tf.Tensor, ...]:
            rows = tf.slice(order, [j * m], [m])
            weight = tf.slice(real, [j * m], [m])
            x, y = tf.gather(self.x, rows), tf.gather(self.y, rows)
            count = tf.reduce_sum(weight)
            ce, hits, delta = self._losses(self._logits(x), y)
            batch_loss = tf.reduce_sum(ce * weight[:, None], axis=0)
            if self.decays:
                batch_loss += self._penalty() * count
            loss += batch_loss
            correct += tf.reduce_sum(hits * weight[:, None], axis=0)
            batch = j // self.every + 1
            bad = tf.where((bad == 0) & ~tf.math.is_finite(batch_loss) & self.active, batch, bad)
            delta *= weight[:, None, None]
            # Started afresh by selection, not by zeroing after the update: one pass over the weights fewer.
            restart = fresh[:, None, None]
            part_k = tf.reshape(tf.matmul(self._wide(delta), x, transpose_a=True), tf.shape(grad_k))
            part_b = tf.reduce_sum(delta, axis=0)[..., None]
            grad_k = tf.where(restart, part_k, grad_k + part_k)
            grad_b = tf.where(restart, part_b, grad_b + part_b)
            seen = tf.where(fresh, count, seen + count)
            due = ((j + 1) % self.every == 0) | (j == self.micros - 1)
            per_trial = seen[:, None, None]
            decayed = self.decay * self.kernel if self.decays else 0.0
            self._apply(
                {"kernel": grad_k / per_trial + decayed, "bias": grad_b / per_trial}, due & self.active & (bad == 0)
            )
            return j + 1, loss, correct, bad, seen, grad_k, grad_b, due

        start = (
            tf.constant(0),
            tf.zeros(p),
            tf.zeros(p),
            tf.zeros(p, tf.int32),
            tf.zeros(p),
            tf.zeros_like(self.kernel),
            tf.zeros_like(self.bias),
            tf.ones(p, tf.bool),  # a trial's batch starts at this micro-batch: its sums start afresh
        )
        _, loss, correct, bad, *_ = tf.while_loop(lambda j, *_: j < self.micros, step, start)
        return loss / self.n, correct / self.n, self.steps - start_steps, bad

    def epoch(self, epoch: int) -> EpochResult:
        """Train every active trial one epoch (the `epoch`-th pass of the seed's order)."""
        try:
            loss, accuracy, steps, bad = self._train_epoch(*self._order(tf.constant(epoch, tf.int64)))
        except (tf.errors.OutOfRangeError, tf.errors.DataLossError) as e:  # a cached program cut short or garbled
            damaged = compile_cache.damaged(e)
            if damaged is None:
                raise
            raise damaged from None
        return EpochResult(loss.numpy(), accuracy.numpy(), steps.numpy(), bad.numpy())

    @tf.function(autograph=False)
    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ce, hits, _ = self._losses(self._logits(tf.reshape(x, (tf.shape(x)[0], -1))), y)
        return tf.reduce_sum(ce, axis=0), tf.reduce_sum(hits, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every trial's loss (with its penalty, as Keras' `val_loss`) and accuracy on (x, y), in one call:
        one trace for the whole split, which costs little memory at a linear model's size."""
        loss, hits = self._evaluate(data_lib.as_tensor(x), data_lib.as_tensor(y))
        return loss.numpy() / len(x) + self._penalty().numpy(), hits.numpy() / len(x)

    def weights(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Trial `i`'s kernel and bias, as a Keras Dense layer holds them."""
        return np.ascontiguousarray(self.kernel[i].numpy().T), self.bias[i, :, 0].numpy()

    def state(self, i: int) -> dict[str, np.ndarray]:
        """Everything trial `i` needs to continue exactly: weights, optimizer slots, step count, each
        shaped as Keras holds it: (inputs, classes) for a kernel's, (classes,) for a bias's."""
        arrays = {name: _as_keras(name, var[i].numpy()) for name, var in self._all()}
        arrays["steps"] = np.asarray(self.steps[i].numpy())
        return arrays

    def load(self, i: int, arrays: dict[str, np.ndarray]) -> None:
        """Put a trial's saved `state` back in slot `i`."""
        for name, var in self._all():
            var[i].assign(arrays[name][:, None] if _is_bias(name) else arrays[name].T)
        self.steps[i].assign(int(arrays["steps"]))

    def stop(self, i: int) -> None:
        """Trial `i` takes no more updates (finished, stopped early or diverged); the others go on."""
        self.active[i].assign(False)


def _is_bias(name: str) -> bool:
    """Whether a variable's name (`parts`, or a slot's "m/bias") is a bias's."""
    return name.rsplit("/", 1)[-1] == "bias"


def _as_keras(name: str, held: np.ndarray) -> np.ndarray:
    """One trial's slice of a pack variable, shaped as Keras holds it: (classes,) or (inputs, classes)."""
    return held[:, 0] if _is_bias(name) else np.ascontiguousarray(held.T)


def micro_batch(members: Sequence[Member]) -> int:
    """The largest micro-batch every member's batch size is a whole number of."""
    return math.gcd(*(m.batch_size for m in members))


def traced_options(members: Sequence[Member], family: str) -> tuple[bool, bool]:
    """What the compiled pass is traced with besides shapes: any weight decay, any velocity (momentum, Adam)."""
    return any(m.weight_decay for m in members), family == "adam" or any(m.momentum for m in members)
