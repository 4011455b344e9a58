"""``python -m mlrepo_pmml.predict``: predict iris species from a pinned PMML document.

Reads ``model.pmml`` under the pinned model location (``MLREPO_MODEL``), evaluates it with
JPMML-Evaluator on every ``*.csv`` under input ``input_data`` and uploads ``predictions.csv`` and
``summary.json`` to the output prefix, without committing. No scikit-learn model is loaded: the
XML is the model. The same model and input commits give byte-identical outputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlrepo_iris import command
from mlrepo_iris.model_io import finish_inference, start_inference

from mlrepo_pmml.evaluate import class_names, predict_labels
from mlrepo_pmml.train import MODEL_FILE

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_pmml.predict"


def predict(log: command.Progress) -> None:
    run = start_inference(log)
    document = run.model_file(MODEL_FILE)
    with tempfile.TemporaryDirectory(prefix="mlrepo-pmml-") as workdir:
        path = Path(workdir) / MODEL_FILE
        path.write_bytes(document)
        labels = predict_labels(path, run.data.features, where=f"{run.model_uri.rstrip('/')}/{MODEL_FILE}")
    finish_inference(log, run, labels, class_names(document))


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species from the pinned PMML model (container contract).", predict, argv)


if __name__ == "__main__":
    main()
