"""``python -m mlrepo_spark.predict``: predict iris species with a pinned Spark ML model directory.

Downloads every object under the pinned model location (``MLREPO_MODEL``) into a local directory,
loads ``spark-model/`` with ``PipelineModel.load`` in a local-mode Spark session, scores every
``*.csv`` under input ``input_data`` and uploads ``predictions.csv`` and ``summary.json`` to the
output prefix, without committing. Rows keep their input order (an explicit row index is sorted on).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, IrisDataError
from mlrepo_iris.model_io import finish_inference, start_inference

from mlrepo_spark.session import local_spark
from mlrepo_spark.train import MODEL_DIRECTORY, PREDICTION_COLUMN

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_spark.predict"
ROW = "_row"


def predict(log: command.Progress) -> None:
    run = start_inference(log)
    if not any(name.startswith(f"{MODEL_DIRECTORY}/") for name in run.model_files):
        raise IrisDataError(f"the model at {run.model_uri} has no {MODEL_DIRECTORY}/ directory")
    from pyspark.ml import PipelineModel

    with tempfile.TemporaryDirectory(prefix="mlrepo-spark-") as workdir, local_spark(PROG, Path(workdir)) as spark:
        root = run.write_model(Path(workdir) / "model")
        try:
            model = PipelineModel.load(str(root / MODEL_DIRECTORY))
        except Exception as exc:
            raise IrisDataError(f"{run.model_uri} holds no loadable Spark ML pipeline: {exc}") from None
        labels: list[str] = []
        classes: list[str] = list(model.stages[-1].getLabels())
        if run.data.ids:
            rows = [(index, *features) for index, features in enumerate(run.data.features)]
            frame = spark.createDataFrame(rows, [ROW, *FEATURES])
            scored = model.transform(frame).select(ROW, PREDICTION_COLUMN).orderBy(ROW).collect()
            labels = [str(row[PREDICTION_COLUMN]) for row in scored]
    finish_inference(log, run, labels, classes)


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species with the pinned Spark ML model (container contract).", predict, argv)


if __name__ == "__main__":
    main()
