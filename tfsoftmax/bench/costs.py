"""D2L's cost questions timed on the config's data for `tfsoftmax bench --costs`: the definition-based
cross-entropy against the fused one per epoch, and a softmax layer's training step as the classes grow
(the measurements themselves are `lessons.costs`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset

CLASS_COUNTS = (10, 100, 1000, 10_000, 100_000)


def measure_costs(
    dataset: Dataset, config: Config, epochs: int, classes: tuple[int, ...], report: Callable[[str], None]
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The losses per epoch and the softmax layer per class count: both tables as text, and as the JSON holds them."""
    from tfsoftmax.lessons import costs

    batch = config.data.batch_size
    report(
        f"bench: {len(costs.LOSSES)} cross-entropy losses x {epochs + 2} epochs on {len(dataset.train_y)} images ..."
    )
    losses = costs.cross_entropy_epochs(
        dataset.train_x, dataset.train_y, batch, epochs, config.train.lr, config.train.seed, config.model.init_stddev
    )
    report(f"bench: a softmax layer's training step for {', '.join(f'{k:,}' for k in classes)} classes ...")
    input_dim = math.prod(dataset.image_shape)
    layers = costs.softmax_layer_cost(classes, input_dim=input_dim, batch_size=batch, seed=config.train.seed)
    text = "\n".join(
        [
            f"cross-entropy, softmax regression on {len(dataset.train_y)} training images, batch {batch}, "
            f"lr {config.train.lr}: median of {epochs} epochs after 1 warm-up; finite on 0..255: one more epoch "
            "on unscaled pixels",
            costs.format_costs(losses),
            f"\nsoftmax layer, Dense(K) on {input_dim} inputs + fused cross-entropy, batch {batch}: one forward "
            "and backward step, median after 1 warm-up",
            costs.format_costs(layers),
        ]
    )
    return text, {"cross_entropy": costs.costs_json(losses), "softmax_layer": costs.costs_json(layers)}
