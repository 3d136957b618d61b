"""How big a sweep is before it runs: its trial count (as keras-tuner's oracles will count them, Hyperband's
brackets included), and the `--dry-run` report of the space, that count and a time estimate from whole
epochs measured the way a trial trains them (the same `train.fit`, callbacks and writes), on random inputs
of the data's shape and size, so nothing is trained on the data and nothing is kept."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config
from tfsoftmax.config.loader import override
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.rundir import layout as rundir

# What a trial costs beyond its epochs: resetting the model, a new input pipeline, keras-tuner's trial
# files and best-epoch checkpoint, the HParams records, saving model.keras (see docs/speed.md).
TRIAL_OVERHEAD_S = 1.2
# A packed trial's own writes (its files and HParams at the start, model.keras at the end), and each of its
# epochs' record, checkpoint and TensorBoard writes (see docs/speed.md).
PACKED_TRIAL_OVERHEAD_S = 0.15
PACKED_EPOCH_WRITES_S = 0.01
STEPS_TIMED = 500  # per batch size: enough for a steady rate, few enough that batch size 1 takes seconds
HYPERBAND_FACTOR = 3  # keras-tuner's default, which the Hyperband tuner is given


def hyperband_rounds(max_epochs: int, factor: int) -> list[tuple[int, int, int]]:
    """keras-tuner's HyperbandOracle's rounds in one iteration, as (trials, first epoch, last epoch): each
    bracket's rounds train new trials, those after the first continuing their parents' weights."""
    brackets = 1 + int(math.log(max_epochs, factor) + 1e-9)
    end_size = math.ceil(1 + math.log(max_epochs, factor))

    def epochs(b: int, r: int) -> int:
        return math.ceil(max_epochs / factor ** (b - r))

    return [
        (math.ceil(end_size / (b + 1) * factor ** (b - r)), epochs(b, r - 1) if r else 0, epochs(b, r))
        for b in reversed(range(brackets))
        for r in range(b + 1)
    ]


def hyperband_trials(max_epochs: int, factor: int) -> int:
    """How many trials keras-tuner's HyperbandOracle runs in one iteration: every round of every bracket."""
    return sum(trials for trials, _, _ in hyperband_rounds(max_epochs, factor))


def count_trials(config: Config) -> int:
    """How many trials the sweep will run: max_trials, or fewer for a small grid; Hyperband's own count."""
    sweep = config.sweep
    if sweep.algorithm == "hyperband":
        return hyperband_trials(config.trial_epochs, HYPERBAND_FACTOR)
    if sweep.algorithm == "grid" and all(e.values or e.step for e in sweep.space):
        size = 1
        for e in sweep.space:
            size *= len(e.values) if e.values else int((e.max - e.min) // e.step) + 1
        return min(size, sweep.max_trials)
    return sweep.max_trials


def batch_sizes(config: Config) -> list[int]:
    """The batch sizes the sweep will train with: its values, or a range's ends, or the config's."""
    entry = next((e for e in config.sweep.space if e.key == "data.batch_size"), None)
    if entry is None:
        return [config.data.batch_size]
    return list(entry.values) if entry.values else [int(entry.min), int(entry.max)]


def spread_members(config: Config, size: int) -> list:
    """`size` pack members of the sweep's optimizer at its batch sizes in turn: a pack as the sweep forms
    them, for timing one."""
    from tfsoftmax.training.packed_trial import member

    sizes = batch_sizes(config)
    return [member(override(config, {"data.batch_size": sizes[i % len(sizes)]})) for i in range(size)]


def whole_epoch_s(
    config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits, batch_size: int
) -> tuple[float, float]:
    """(first epoch, later epoch) seconds at `batch_size`, as `time_s` records them: `train.fit` with
    the record, checkpoint and TensorBoard callbacks, on random data of the real splits' shape. At most
    STEPS_TIMED steps are trained; the training pass is scaled up to the real epoch, the rest of the
    epoch (validation, writes) is the same whatever the epoch's length."""
    import numpy as np

    from tfsoftmax.models.softmax import build_model
    from tfsoftmax.training import train

    rng = np.random.default_rng(0)
    shape, classes = dataset.image_shape, dataset.num_classes

    def fake(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.random((n, *shape), dtype=np.float32), rng.integers(0, classes, n).astype(np.int32)

    n_train = len(splits.train[1])
    timed = min(n_train, batch_size * STEPS_TIMED)
    val = None if splits.val is None else fake(len(splits.val[1]))
    fakes = data_lib.Splits(train=fake(timed), val=val, test=fake(1))
    trial = override(config, {"data.batch_size": batch_size})
    train.seed_everything(trial.train.seed)
    model = build_model(shape, classes, trial.model, trial.train)
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-dry-run-") as tmp:
        record = train.fit(
            model, fakes, trial, Path(tmp), [train.tensorboard_callback(Path(tmp), trial)], 2, epoch_lines=False
        )
    if record.divergence is not None:
        raise TfsoftmaxError(
            f"--dry-run: the timing run at batch {batch_size} diverged on random inputs "
            f"({record.divergence['reason']}); no estimate",
            RUNTIME_ERROR,
        )
    (first, later), rate = record.history["time_s"], record.history["examples_per_second"][-1]
    # The later epoch's training pass grows with the epoch's length; the first epoch's tracing does not.
    scaled = later + timed / rate * (n_train / timed - 1)
    return scaled + first - later, scaled


def pack_epoch_s(config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits, size: int) -> tuple[float, float]:
    """(first pass, later pass) seconds of a pack of `size` trials at the space's batch sizes (`packing`),
    validation included, on random inputs: at most STEPS_TIMED micro-batches, scaled to the real epoch."""
    import numpy as np

    from tfsoftmax.training.compiled_packs import timed_passes
    from tfsoftmax.training.pack import Pack
    from tfsoftmax.training.packed_trial import family

    sizes = batch_sizes(config)
    rng = np.random.default_rng(0)
    n_train, classes = len(splits.train[1]), dataset.num_classes
    timed = min(n_train, math.gcd(*sizes) * STEPS_TIMED)
    shape = splits.train[0].shape[1:]
    fake = rng.random((timed, *shape), dtype=np.float32), rng.integers(0, classes, timed).astype(np.int32)
    start = np.zeros((math.prod(shape), classes), np.float32), np.zeros(classes, np.float32)
    members = spread_members(config, size)
    pack = Pack(fake, config.train.seed, members, family(config), [start] * size)
    times = timed_passes(pack, 2, splits.val)
    scaled = times[1] * n_train / timed
    return scaled + times[0] - times[1], scaled


def _packed_estimate(config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits, trials: int) -> tuple:
    """(seconds, what they are made of) for a packed sweep: packs of one shape share one compilation."""
    pack = config.sweep.pack
    if config.sweep.algorithm == "hyperband":  # each round trains as packs of its own shape
        rounds = hyperband_rounds(config.trial_epochs, HYPERBAND_FACTOR)
    else:
        rounds = [(trials, 0, config.trial_epochs)]
    size = min(pack, max(n for n, _, _ in rounds))
    first, later = pack_epoch_s(config, dataset, splits, size)
    passes = sum(math.ceil(n / pack) * (last - start) for n, start, last in rounds)
    epochs = sum(n * (last - start) for n, start, last in rounds)
    compiling = (first - later) * len(rounds)
    writes = trials * PACKED_TRIAL_OVERHEAD_S + epochs * PACKED_EPOCH_WRITES_S
    seconds = compiling + passes * later + writes
    how = (
        f"measured pack of {size} trials (micro-batch {math.gcd(*batch_sizes(config))}): {later:.2f} s a pass for "
        f"all of them, {first - later:.1f} s compiling per pack shape ({len(rounds)}); {passes} passes, "
        f"+{writes:.1f} s of writes; trials of other optimizer families or seeds form packs of their own"
    )
    return seconds, how


def describe(config: Config) -> str:
    """The --dry-run report: space, trial count, measured epoch times and the estimated wall time."""
    started = time.perf_counter()
    lines = [
        f"sweep {rundir.experiment_dir(config)}: {config.sweep.algorithm} search, objective {config.sweep.objective}"
    ]
    for e in config.sweep.space:
        if e.values:
            lines.append(f"  {e.key:<24} one of {list(e.values)}")
        else:
            step = f", step {e.step}" if e.step else ""
            lines.append(f"  {e.key:<24} {e.min} .. {e.max} ({e.sampling}{step})")
    trials, epochs, executions = count_trials(config), config.trial_epochs, config.sweep.executions_per_trial
    if config.sweep.algorithm == "hyperband":
        budgets = sorted({last for _, _, last in hyperband_rounds(epochs, HYPERBAND_FACTOR)})
        each = f"{budgets[0]} to {budgets[-1]} epochs each (Hyperband's rounds)"
    else:
        each = f"{epochs} epochs each"
    lines.append(f"trials: {trials}, {each}, {executions} execution(s) per trial")
    dataset = data_lib.load_dataset(config.data)
    splits = data_lib.split(dataset, config.data)
    # TensorFlow's import and the data's loading, which the sweep pays too (the interpreter's own start
    # before `describe` is not counted).
    startup = time.perf_counter() - started
    from tfsoftmax.sweeps.packing import packable

    if packable(config):
        seconds, how = _packed_estimate(config, dataset, splits, trials)
        total = startup + seconds
        lines.append(how)
        lines.append(
            f"estimated time: {total / 60:.1f} min ({total:.0f} s) for the whole command, packed "
            f"(+{startup:.1f} s start-up and data)"
        )
        return "\n".join(lines)
    measured = {b: whole_epoch_s(config, dataset, splits, b) for b in batch_sizes(config)}
    lines.append(
        "measured whole epoch (training, validation, record, checkpoint, TensorBoard): "
        + ", ".join(f"batch {b}: {later:.2f} s" for b, (_, later) in measured.items())
    )
    # A process traces the model once (trials reuse it); each trial then pays its epochs and its overhead.
    tracing = max(first - later for first, later in measured.values())
    epoch_s = [later for _, later in measured.values()]
    guided = guided_trials(config, trials)
    # Random and grid trials sample the space evenly: the mean epoch. A guided search (Bayesian) spends
    # its later trials near the best so far, at batch sizes no one can know in advance: those are taken
    # halfway between the mean and the slowest epoch.
    mean = statistics.mean(epoch_s)
    per_trial = [mean] * (trials - guided) + [(mean + max(epoch_s)) / 2] * guided
    total = startup + tracing + executions * sum(epochs * e + TRIAL_OVERHEAD_S for e in per_trial)
    how = "the mean measured epoch" + (f" ({guided} guided trials: halfway to the slowest)" if guided else "")
    lines.append(
        f"estimated time: {total / 60:.1f} min ({total:.0f} s) for the whole command in one process "
        f"({trials * executions} trainings x {epochs} epochs at {how}, +{TRIAL_OVERHEAD_S} s per "
        f"training, +{tracing:.1f} s tracing once, +{startup:.1f} s start-up and data)"
    )
    return "\n".join(lines)


def guided_trials(config: Config, trials: int) -> int:
    """How many trials a Bayesian search places by its model rather than at random: all after keras-tuner's
    initial random points (3 per swept key, at least 3)."""
    if config.sweep.algorithm != "bayesian":
        return 0
    return max(0, trials - max(3 * len(config.sweep.space), 3))
