"""The peer `tfsoftmax bench --goals` times tfsoftmax's sweep against: the same random search written the
keras-io way, with nothing of tfsoftmax but the data arrays. A plain keras-tuner `HyperModel` whose `fit`
picks the batch size, Keras' TensorBoard callback, a 10% validation split, the data as NumPy arrays.

Run as `python -m tfsoftmax.bench_plain ROOT TRIALS EPOCHS SEED`; prints the best validation accuracy as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LR_RANGE = (1e-3, 1.0)


def main(argv: list[str]) -> int:
    root, trials, epochs, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    import keras
    import keras_tuner
    import numpy as np

    from tfsoftmax import data as data_lib
    from tfsoftmax.config import DataConfig

    dataset = data_lib.load_dataset(DataConfig())
    x = dataset.train_x.astype(np.float32) / 255.0
    y = dataset.train_y
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = len(x) // 10
    val, train = order[:n_val], order[n_val:]

    class SoftmaxRegression(keras_tuner.HyperModel):
        def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
            model = keras.Sequential(
                [
                    keras.Input(shape=x.shape[1:]),
                    keras.layers.Flatten(),
                    keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01)),
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
        seed=seed + 1,
        directory=root,
        project_name="plain",
        overwrite=True,
    )
    tuner.search(
        x[train],
        y[train],
        epochs=epochs,
        validation_data=(x[val], y[val]),
        callbacks=[keras.callbacks.TensorBoard(f"{root}/tensorboard")],
        verbose=0,
    )
    best = tuner.oracle.get_best_trials(1)[0]
    print(json.dumps({"best_val_accuracy": best.score, "trials": len(tuner.oracle.trials)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
