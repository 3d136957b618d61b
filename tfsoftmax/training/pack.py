"""Several sweep trials of softmax regression stepped together: one weight matrix holds every trial's
weights side by side, stepped in one lane of trials per core, so each step is one matmul for a lane's
trials, and each trial keeps its own learning rate, batch size, momentum or Adam state, and weight decay.

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
from tfsoftmax.training import lane as lane_lib


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

    All trials' weights are the rows of one matrix, stepped in one lane per core (`training.lane`): each
    lane's step is one wide matmul over its trials, and the lanes run side by side. Batched per-trial
    matmuls give bits independent of the pack-mates but cost more time (docs/design.md). A wide matmul
    splits its sums by its width, so a trial's last bits depend on its lane's size, set by the pack's size
    and the process's cores: the same sweep forms the same packs and gives the same numbers in any process
    with the same cores. Each trial's kernel is held transposed, (classes, inputs), so its weights are
    contiguous: the small matmuls of a micro-step run about twice as fast on CPU as with Keras' (inputs,
    classes) layout (docs/design.md)."""

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
        self.n, self.seed, self.size = len(x), seed, len(members)
        # The arrays' TensorFlow copies are shared by every pack of the process (`as_tensor`).
        self.x = tf.reshape(data_lib.as_tensor(x), (len(x), -1))
        self.y = data_lib.as_tensor(y)
        classes = weights[0][0].shape[1]
        micro = micro_batch(members)
        micros = data_lib.steps_per_epoch(self.n, micro)
        # Plain SGD's pass skips the velocity, a full pass over the weights at every step it would not use.
        self.lane = lane_lib.Lane(micro, micros, family, *traced_options(members, family))
        self.ranges = lane_lib.ranges(self.size)  # one lane of trials per core, run side by side
        # Per-trial values are variables, so the next pack of this shape reuses the compiled pass (`engine`).
        self.lr, self.momentum, self.decay = (tf.Variable(tf.zeros((self.size, 1, 1))) for _ in range(3))
        self.half_decay = tf.Variable(tf.zeros(self.size))
        self.every = tf.Variable(tf.ones(self.size, tf.int32))
        # (trials, classes, inputs), used as (trials * classes, inputs); the bias as (trials, classes, 1),
        # so per-trial values of shape (trials, 1, 1) broadcast over both.
        self.kernel = tf.Variable(tf.zeros((self.size, classes, self.x.shape[1])))
        self.bias = tf.Variable(tf.zeros((self.size, classes, 1)))
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

    @property
    def micro(self) -> int:
        """The micro-batch every trial steps by: the gcd of their batch sizes."""
        return self.lane.micro

    def parts(self) -> list[tuple[str, tf.Variable]]:
        """The trained variables by name, as the optimizer slots and checkpoints name them."""
        return [("kernel", self.kernel), ("bias", self.bias)]

    def _all(self) -> list[tuple[str, tf.Variable]]:
        return [*self.parts(), *self.slots.items()]

    @tf.function(autograph=False)
    def _order(self, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The pass's order padded to whole micro-batches, and which of its places hold an example."""
        order = data_lib.epoch_order(self.n, self.seed, epoch)
        pad = self.lane.micros * self.lane.micro - self.n
        return tf.pad(order, [[0, pad]]), tf.pad(tf.ones(self.n), [[0, pad]])

    @tf.function(autograph=False)
    def _train_epoch(self, order: tf.Tensor, real: tf.Tensor) -> tuple[tf.Tensor, ...]:
        # Each lane's pass is one XLA program on its slice of the variables, written back at the end: no lane
        # reads another's results or any variable, so TensorFlow runs them side by side, one per core.
        held = {**dict(self._all()), "steps": self.steps}
        per_trial = {
            "lr": self.lr,
            "momentum": self.momentum,
            "decay": self.decay,
            "half_decay": self.half_decay,
            "every": self.every,
            "active": self.active,
        }
        done = [
            self.lane.train(
                (self.x, self.y),
                order,
                real,
                {name: var[a:b] for name, var in held.items()},
                {name: var[a:b] for name, var in per_trial.items()},
            )
            for a, b in self.ranges
        ]
        steps_before = tf.identity(self.steps)
        for name, var in held.items():
            var.assign(tf.concat([lane.state[name] for lane in done], 0))
        loss, correct, bad = (
            tf.concat([getattr(lane, part) for lane in done], 0) for part in ("loss", "correct", "bad")
        )
        return loss / self.n, correct / self.n, self.steps - steps_before, bad

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
        ce, hits, _ = lane_lib.losses(lane_lib.logits(self.kernel, self.bias, tf.reshape(x, (tf.shape(x)[0], -1))), y)
        return tf.reduce_sum(ce, axis=0), tf.reduce_sum(hits, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every trial's loss (with its penalty, as Keras' `val_loss`) and accuracy on (x, y), in one call:
        one trace for the whole split, which costs little memory at a linear model's size."""
        loss, hits = self._evaluate(data_lib.as_tensor(x), data_lib.as_tensor(y))
        return loss.numpy() / len(x) + lane_lib.penalty(self.half_decay, self.kernel).numpy(), hits.numpy() / len(x)

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
