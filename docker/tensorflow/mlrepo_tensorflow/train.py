"""``python -m mlrepo_tensorflow.train``: train a Keras iris classifier on the pinned training data.

Reads every ``*.csv`` under input ``training_data`` in path order, fits a small dense network
(normalisation, one hidden layer, softmax) with every seed set and TensorFlow's deterministic ops,
and uploads to the output prefix, without committing:

* ``model.keras``: the model in Keras' native format (a zip archive; its ``metadata.json`` holds the
  save time, so the archive's bytes differ between saves of an identical model);
* ``classes.json``: the class names in the order of the softmax outputs;
* ``metrics.json``: training accuracy, counts, hyperparameters, ``model.weights_sha256`` (the
  sha256 of the trained weights: equal for equal data and hyperparameters on the same CPU build).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrepo_iris import command
from mlrepo_iris.model_io import METRICS_FILE, json_bytes, start_training, training_metrics, upload_files

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_tensorflow.train"
MODEL_FILE = "model.keras"
CLASSES_FILE = "classes.json"
FRAMEWORK = "tensorflow"
MODEL_FORMAT = "keras"
ALGORITHM = "keras.Sequential(Normalization, Dense(relu), Dense(softmax))"
HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "epochs": (int, 60),
    "batch_size": (int, 16),
    "learning_rate": (float, 0.01),
    "hidden_units": (int, 16),
    "seed": (int, 0),
}


def quiet_tensorflow() -> None:
    """Set before TensorFlow is imported: less C++ start-up chatter in the task log, and no oneDNN
    kernels, whose results depend on the CPU's instruction set (reproducibility across machines)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def train(log: command.Progress) -> None:
    run, params = start_training(log, HYPERPARAMETERS)
    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(params["seed"])  # Python, NumPy and TensorFlow seeds
    tf.config.experimental.enable_op_determinism()
    classes = run.classes
    X = np.asarray(run.data.features, dtype=np.float32)
    y = np.asarray([classes.index(label) for label in run.data.labels], dtype=np.int32)
    normalization = keras.layers.Normalization()
    normalization.adapt(X)
    model = keras.Sequential(
        [
            keras.Input(shape=(X.shape[1],), name="features"),
            normalization,
            keras.layers.Dense(params["hidden_units"], activation="relu"),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(X, y, epochs=params["epochs"], batch_size=params["batch_size"], shuffle=True, verbose=0)
    probabilities = model.predict(X, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y))
    weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    with tempfile.TemporaryDirectory(prefix="mlrepo-tensorflow-") as workdir:
        path = Path(workdir) / MODEL_FILE
        model.save(path)
        files = {MODEL_FILE: path.read_bytes(), CLASSES_FILE: (json.dumps(classes) + "\n").encode()}
    log(f"trained {ALGORITHM} on {len(y)} samples: training accuracy {accuracy:.4f}")
    metrics = training_metrics(
        run,
        framework=FRAMEWORK,
        model_format=MODEL_FORMAT,
        algorithm=ALGORITHM,
        model_files=files,
        params=params,
        accuracy=accuracy,
        versions={"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        extra={"weights_sha256": weights},
    )
    upload_files(log, run.lakefs, run.contract.output, {**files, METRICS_FILE: json_bytes(metrics)})


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Train a Keras iris classifier on the pinned training data (container contract).", train, argv)


if __name__ == "__main__":
    main()
