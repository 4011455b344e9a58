"""``python -m mlrepo_tensorflow.predict``: predict iris species with a pinned ``.keras`` model.

Reads ``model.keras`` and ``classes.json`` under the pinned model location (``MLREPO_MODEL``) and
every ``*.csv`` under input ``input_data``, and uploads ``predictions.csv`` and ``summary.json`` to
the output prefix, without committing. The same model and input commits give byte-identical
outputs (inference is deterministic on the CPU build).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlrepo_iris import command
from mlrepo_iris.dataset import IrisDataError
from mlrepo_iris.model_io import finish_inference, start_inference

from mlrepo_tensorflow.train import CLASSES_FILE, MODEL_FILE, quiet_tensorflow

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_tensorflow.predict"


def predict(log: command.Progress) -> None:
    run = start_inference(log)
    classes = json.loads(run.model_file(CLASSES_FILE))
    quiet_tensorflow()
    import keras
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="mlrepo-tensorflow-") as workdir:
        path = Path(workdir) / MODEL_FILE
        path.write_bytes(run.model_file(MODEL_FILE))
        try:
            model = keras.models.load_model(path)
        except Exception as exc:
            raise IrisDataError(
                f"{run.model_uri.rstrip('/')}/{MODEL_FILE} is not a loadable Keras model: {exc}"
            ) from None
    labels: list[str] = []
    if run.data.ids:
        probabilities = model.predict(np.asarray(run.data.features, dtype=np.float32), verbose=0)
        labels = [str(classes[int(i)]) for i in np.argmax(probabilities, axis=1)]
    finish_inference(log, run, labels, classes)


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species with the pinned Keras model (container contract).", predict, argv)


if __name__ == "__main__":
    main()
