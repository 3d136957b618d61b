"""The peer benchmarks/goals.py times tfsoftmax's sweep against: the same random search written the keras-io
way, with nothing of tfsoftmax but the config's data arrays and splits (the same train and validation images
as tfsoftmax's sweep). A plain keras-tuner `HyperModel` whose `fit` picks the batch size, Keras' TensorBoard
callback, the data as NumPy arrays.

    python benchmarks/plain_keras_tuner.py [CONFIG] [--root DIR] [--trials 12] [--epochs 3]

Prints the best validation accuracy and the trial count as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "experiments" / "fashion_mnist.toml"
# The search itself, which goals.py writes as tfsoftmax's sweep too: learning rate and batch size, 12 x 3.
BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LR_RANGE = (1e-3, 1.0)
TRIALS, EPOCHS = 12, 3


def search(config_path: str, root: str, trials: int, epochs: int) -> dict[str, Any]:
    """Search in plain keras-tuner under `root`; the best trial's score and the number of trials."""
    import keras
    import keras_tuner

    from tfsoftmax import data as data_lib
    from tfsoftmax.config.loader import load_config

    config = load_config(config_path)
    dataset = data_lib.load_dataset(config.data)
    splits = data_lib.split(dataset, config.data)
    (x, y), (x_val, y_val) = splits.train, splits.val
    stddev, classes = config.model.init_stddev, dataset.num_classes

    class SoftmaxRegression(keras_tuner.HyperModel):
        def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
            model = keras.Sequential(
                [
                    keras.Input(shape=x.shape[1:]),
                    keras.layers.Flatten(),
                    keras.layers.Dense(classes, kernel_initializer=keras.initializers.RandomNormal(stddev=stddev)),
                ]
            )
            lr = hp.Float("lr", *LR_RANGE, sampling="log")
            model.compile(
                optimizer=keras.optimizers.SGD(learning_rate=lr),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            return model

        def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=hp.Choice("batch_size", BATCH_SIZES), **kwargs)

    tuner = keras_tuner.RandomSearch(
        SoftmaxRegression(),
        objective="val_accuracy",
        max_trials=trials,
        seed=config.sweep.seed + 1,  # as tfsoftmax's tuner gets it: keras-tuner reads 0 as "pick one at random"
        directory=root,
        project_name="plain",
        overwrite=True,
    )
    tuner.search(
        x,
        y,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=[keras.callbacks.TensorBoard(f"{root}/tensorboard")],
        verbose=0,
    )
    best = tuner.oracle.get_best_trials(1)[0]
    return {"best_val_accuracy": best.score, "trials": len(tuner.oracle.trials)}


def main(argv: list[str] | None = None) -> int:
    """Parse, search, print the JSON line; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="experiment TOML file")
    parser.add_argument("--root", metavar="DIR", help="keras-tuner's folder (default: a temporary one)")
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"trials (default: {TRIALS})")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs per trial (default: {EPOCHS})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plain-keras-tuner-") as tmp:
        print(json.dumps(search(args.config, args.root or tmp, args.trials, args.epochs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
