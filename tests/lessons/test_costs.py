"""The cost measurements: the losses compared do the same work, the naive ones overflow, the rows add up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfsoftmax.lessons import costs


def _logits(scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.normal(0.0, scale, (16, 10)).astype(np.float32), rng.integers(0, 10, 16).astype(np.int64))


def test_every_loss_gives_the_fused_value_on_moderate_logits() -> None:
    logits, labels = _logits(3.0)
    fused = float(costs.fused_cross_entropy(logits, labels))
    for name, (loss_fn, _) in costs.LOSSES.items():
        assert float(loss_fn(logits, labels)) == pytest.approx(fused, rel=1e-5), name


def test_the_naive_losses_are_not_finite_on_huge_logits_where_the_fused_one_is() -> None:
    logits, labels = _logits(300.0)
    assert np.isfinite(float(costs.fused_cross_entropy(logits, labels)))
    assert np.isfinite(float(costs.LOSSES["stable"][0](logits, labels)))
    for name in ("definition", "naive"):
        assert not np.isfinite(float(costs.LOSSES[name][0](logits, labels))), name


@pytest.mark.slow  # trains four losses; the losses agree in a fast test
def test_cross_entropy_epochs_times_every_loss_on_the_same_batches() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 4, 4, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, 50).astype(np.int32)
    rows = costs.cross_entropy_epochs(images, labels, batch_size=16, epochs=2)
    assert [r.loss for r in rows] == list(costs.LOSSES)
    fused = next(r for r in rows if r.loss == costs.FUSED)
    assert fused.ratio_to_fused == 1.0
    for r in rows:
        assert len(r.epoch_s) == 2 and all(t > 0 for t in r.epoch_s) and r.ratio_to_fused > 0
        # Same weights, batches and learning rate: the losses train the same model.
        assert r.last_epoch_loss == pytest.approx(fused.last_epoch_loss, rel=1e-4), r.loss
    assert {r.loss: r.finite_unscaled for r in rows} == {
        "definition": False,
        "naive": False,
        "stable": True,
        "fused": True,
    }


def test_softmax_layer_cost_counts_weight_memory_exactly() -> None:
    rows = costs.softmax_layer_cost(num_classes=(10, 100), batch_size=8, repeats=3)
    assert [r.num_classes for r in rows] == [10, 100]
    for r in rows:
        k = r.num_classes
        assert r.weight_bytes == (784 * k + k) * 4
        assert r.momentum_bytes == r.weight_bytes
        assert r.flops == 4 * 8 * 784 * k
        assert len(r.step_s) == 3 and r.median_step_s > 0 and r.warmup_s > 0


def test_format_costs_has_a_header_and_a_line_per_row_and_rows_dump_to_json() -> None:
    rows = costs.softmax_layer_cost(num_classes=(10, 100), batch_size=8, repeats=3)
    lines = costs.format_costs(rows).splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "classes"
    assert lines[2].split()[0] == "100"
    assert json.loads(json.dumps(costs.costs_json(rows)))[1]["num_classes"] == 100


def test_format_costs_of_loss_rows() -> None:
    row = costs.LossCost(
        loss="naive",
        formula="f",
        warmup_s=1.0,
        epoch_s=[0.5],
        median_epoch_s=0.5,
        ratio_to_fused=1.25,
        last_epoch_loss=0.5,
        finite_unscaled=False,
    )
    lines = costs.format_costs([row, row]).splitlines()
    assert len(lines) == 3 and lines[0].startswith("loss")
    assert lines[1].split()[-2:] == ["0.5000", "no"] and "1.25" in lines[1]
