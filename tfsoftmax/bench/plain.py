"""The peer `tfsoftmax bench --goals` times tfsoftmax's sweep against: the same random search written the
keras-io way, with nothing of tfsoftmax but the config's data arrays and splits (the same train and
validation images as tfsoftmax's sweep). A plain keras-tuner `HyperModel` whose `fit` picks the batch size,
Keras' TensorBoard callback, the data as NumPy arrays.

Run as `python -m tfsoftmax.bench.plain CONFIG ROOT TRIALS EPOCHS SEED`; prints the best validation
accuracy as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LR_RANGE = (1e-3, 1.0)


def main(argv: list[str]) -> int:
    """Search, print the best trial's score; 0 on success."""
    config_path, root, trials, epochs, seed = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
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
        seed=seed + 1,
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
    print(json.dumps({"best_val_accuracy": best.score, "trials": len(tuner.oracle.trials)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
