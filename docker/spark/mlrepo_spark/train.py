"""``python -m mlrepo_spark.train``: train a Spark MLlib iris pipeline on the pinned training data.

Reads every ``*.csv`` under input ``training_data`` in path order, fits a ``pyspark.ml`` pipeline
(``VectorAssembler`` -> ``LogisticRegression`` -> ``IndexToString``) in a local-mode Spark session,
saves it with ``PipelineModel.save`` and uploads the whole model directory (metadata JSON, Parquet
coefficients, ``.crc`` checksums and zero-byte ``_SUCCESS`` markers: many files) under
``spark-model/`` of the output prefix, with ``metrics.json`` next to it, without committing.

Spark names its Parquet part files with random UUIDs, so two trainings on identical data give
directories with equal content under different file names; ``metrics.json`` records the
coefficients' sha256, which is equal.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, LABEL
from mlrepo_iris.model_io import (
    METRICS_FILE,
    json_bytes,
    read_directory,
    start_training,
    training_metrics,
    upload_files,
)

from mlrepo_spark.session import local_spark

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_spark.train"
MODEL_DIRECTORY = "spark-model"
PREDICTION_COLUMN = "predicted_species"
FRAMEWORK = "spark-mllib"
MODEL_FORMAT = "spark-ml-model-directory"
ALGORITHM = "pyspark.ml.classification.LogisticRegression"
HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "max_iter": (int, 100),
    "reg_param": (float, 0.01),
    "elastic_net_param": (float, 0.0),
}


def train(log: command.Progress) -> None:
    run, params = start_training(log, HYPERPARAMETERS)
    import pyspark
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import IndexToString, StringIndexer, VectorAssembler

    with tempfile.TemporaryDirectory(prefix="mlrepo-spark-") as workdir, local_spark(PROG, Path(workdir)) as spark:
        rows = [(*features, label) for features, label in zip(run.data.features, run.data.labels, strict=True)]
        frame = spark.createDataFrame(rows, [*FEATURES, LABEL])
        indexer = StringIndexer(inputCol=LABEL, outputCol="label", stringOrderType="alphabetAsc").fit(frame)
        assembler = VectorAssembler(inputCols=list(FEATURES), outputCol="features")
        classifier = LogisticRegression(
            maxIter=params["max_iter"], regParam=params["reg_param"], elasticNetParam=params["elastic_net_param"]
        ).fit(assembler.transform(indexer.transform(frame)))
        labels = list(indexer.labels)
        # The saved pipeline goes from the four feature columns to the species name.
        model = PipelineModel(
            stages=[
                assembler,
                classifier,
                IndexToString(inputCol="prediction", outputCol=PREDICTION_COLUMN, labels=labels),
            ]
        )
        predicted = [row[PREDICTION_COLUMN] for row in model.transform(frame).select(PREDICTION_COLUMN).collect()]
        accuracy = sum(p == t for p, t in zip(predicted, run.data.labels, strict=True)) / len(run.data.labels)
        coefficients = hashlib.sha256(
            json.dumps(
                {
                    "coefficients": classifier.coefficientMatrix.toArray().tolist(),
                    "intercepts": classifier.interceptVector.toArray().tolist(),
                    "labels": labels,
                }
            ).encode()
        ).hexdigest()
        target = Path(workdir) / MODEL_DIRECTORY
        model.write().overwrite().save(str(target))
        files = {f"{MODEL_DIRECTORY}/{name}": data for name, data in read_directory(target).items()}
        log(f"trained {ALGORITHM} on {len(rows)} samples: training accuracy {accuracy:.4f}; {len(files)} files")
        metrics = training_metrics(
            run,
            framework=FRAMEWORK,
            model_format=MODEL_FORMAT,
            algorithm=ALGORITHM,
            model_files=files,
            params=params,
            accuracy=accuracy,
            versions={"pyspark": pyspark.__version__, "spark": spark.version},
            extra={"directory": MODEL_DIRECTORY, "coefficients_sha256": coefficients},
        )
    upload_files(log, run.lakefs, run.contract.output, {**files, METRICS_FILE: json_bytes(metrics)})


def main(argv: Sequence[str] | None = None) -> None:
    command.run(
        PROG, "Train a Spark MLlib iris pipeline on the pinned training data (container contract).", train, argv
    )


if __name__ == "__main__":
    main()
