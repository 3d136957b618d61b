"""A pack's lanes: trials split into contiguous ranges, one per core, and the same trials stepped in several
lanes or in one agree to float rounding, whatever the machine's core count."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfsoftmax.training import lane
from tfsoftmax.training.pack import Member, Pack

from conftest import striped


@pytest.mark.parametrize(
    ("trials", "lanes", "expected"),
    [
        (16, 2, [(0, 8), (8, 16)]),
        (3, 2, [(0, 2), (2, 3)]),
        (1, 2, [(0, 1)]),
        (5, 1, [(0, 5)]),
        (7, 3, [(0, 3), (3, 5), (5, 7)]),
        (2, 4, [(0, 1), (1, 2)]),
    ],
)
def test_trials_split_into_contiguous_ranges_as_even_as_can_be(
    trials: int, lanes: int, expected: list[tuple[int, int]]
) -> None:
    assert lane.ranges(trials, lanes) == expected


# Batch sizes 8..24 step at micro-batch 8 over 108 examples: the last micro-batch is padded, every last
# batch short; one trial diverges (lr 1e38) and ends alone. Plain SGD's pass keeps no velocity.
MEMBERS = {
    "sgd": [Member(0.3, 8), Member(0.1, 16, momentum=0.9), Member(1e38, 8, momentum=0.9), Member(0.05, 24, 0, 1e-2)],
    "plain sgd": [Member(0.3, 8), Member(0.1, 16), Member(0.05, 24)],
    "adam": [Member(0.01, 8), Member(0.003, 16, weight_decay=1e-3), Member(0.03, 24)],
}


@pytest.mark.parametrize("family", list(MEMBERS))
def test_trials_in_several_lanes_step_as_in_one(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    members, xy = MEMBERS[family], striped(108)
    rng = np.random.default_rng(0)
    starts = [(rng.normal(0, 0.01, (784, 10)).astype(np.float32), np.zeros(10, np.float32)) for _ in members]
    results = {}
    for cores in (1, 2, 3):
        monkeypatch.setattr(lane, "cores", lambda cores=cores: cores)
        pack = Pack(xy, 0, members, "adam" if family == "adam" else "sgd", starts)
        assert len(pack.ranges) == min(cores, len(members)) and pack.micro == 8
        epochs = [pack.epoch(epoch) for epoch in range(3)]
        results[cores] = (epochs, [pack.state(i) for i in range(len(members))])
    one_epochs, one_states = results[1]
    for cores in (2, 3):
        epochs, states = results[cores]
        for mine, theirs in zip(epochs, one_epochs, strict=True):
            np.testing.assert_array_equal(mine.steps, theirs.steps)
            np.testing.assert_array_equal(mine.diverged_at, theirs.diverged_at)
            finite = np.isfinite(theirs.loss)
            np.testing.assert_allclose(mine.loss[finite], theirs.loss[finite], rtol=1e-5)
            np.testing.assert_allclose(mine.accuracy, theirs.accuracy, atol=1e-6)
        for mine, theirs in zip(states, one_states, strict=True):
            assert mine.keys() == theirs.keys()
            for name in theirs:
                np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-4, atol=1e-6, err_msg=name)
    if family == "sgd":
        assert (results[2][0][0].diverged_at > 0).tolist() == [False, False, True, False]


def test_each_lane_is_a_stateless_program_that_waits_for_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """What lets TensorFlow run the lanes side by side: a stateful call (one that read a variable itself)
    would be ordered after the others by automatic control dependencies."""
    monkeypatch.setattr(lane, "cores", lambda: 2)
    members = MEMBERS["plain sgd"]
    start = (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
    pack = Pack(striped(108), 0, members, "sgd", [start] * len(members))
    graph = pack._train_epoch.get_concrete_function(*pack._order(tf.constant(0, tf.int64))).graph
    calls = [op for op in graph.get_operations() if op.type.endswith("PartitionedCall")]
    assert [op.type for op in calls] == ["PartitionedCall"] * 2
    assert [op.control_inputs for op in calls] == [[], []]

    def upstream(op: tf.Operation) -> set[str]:
        seen, todo = set(), [t.op for t in op.inputs]
        while todo:
            above = todo.pop()
            if above.name not in seen:
                seen.add(above.name)
                todo.extend(t.op for t in above.inputs)
        return seen

    assert calls[0].name not in upstream(calls[1]) and calls[1].name not in upstream(calls[0])
