"""Any framework, any model format: the iris workflow once per framework, with the same operators.

One DAG per framework, ``framework_<name>``: train on the pinned training data, commit the model
atomically with provenance, predict the pinned input batches with the model chosen by
``model_version``, commit the predictions. Only the container (image and command) and the model's
files differ:

| DAG | framework | model format |
| --- | --- | --- |
| ``framework_sklearn`` | scikit-learn | pickle (``model.pkl``) |
| ``framework_tensorflow`` | TensorFlow / Keras | Keras native (``model.keras``) |
| ``framework_spark`` | Spark MLlib | Spark ML model directory (``spark-model/``, many files) |
| ``framework_pmml`` | scikit-learn + sklearn2pmml | PMML XML (``model.pmml``), scored by JPMML-Evaluator |
| ``framework_h2o`` | H2O-3 | POJO Java source + ``h2o-genmodel.jar``, scored by ``java`` |

Every model commit carries ``mlrepo.model.framework`` and ``mlrepo.model.format`` besides the usual
provenance. All five read the same iris data (repositories ``iris-train`` and ``iris-input`` by
default), so their predictions can be compared commit for commit. The locations are run params.

The containers' code is under ``docker/<name>/``; in an image the command's ``python`` is the
image's. Under the local runner (``[mlrepo] runner = local``) set ``MLREPO_EXAMPLES_PYTHON`` to the
absolute path of the frameworks environment's Python (``make frameworks-install`` builds
``.venv-frameworks/``), since the worker's own Python has none of these libraries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator

#: The Python that runs the container commands: the image's ``python``, or a local environment's.
PYTHON = os.environ.get("MLREPO_EXAMPLES_PYTHON", "python")


@dataclass(frozen=True)
class FrameworkExample:
    """One framework's containers: ``python -m <package>.train`` and ``python -m <package>.predict``."""

    name: str
    framework: str
    model_format: str
    package: str
    image: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)


# --8<-- [start:frameworks]
FRAMEWORKS = (
    FrameworkExample(
        "sklearn", "scikit-learn", "pickle", "mlrepo_iris", "ghcr.io/airflow-mlrepo/iris:0.1.0", {"C": 1.0}
    ),
    FrameworkExample(
        "tensorflow",
        "tensorflow",
        "keras",
        "mlrepo_tensorflow",
        "ghcr.io/airflow-mlrepo/tensorflow:0.1.0",
        {"epochs": 60, "learning_rate": 0.01},
    ),
    FrameworkExample(
        "spark",
        "spark-mllib",
        "spark-ml-model-directory",
        "mlrepo_spark",
        "ghcr.io/airflow-mlrepo/spark:0.1.0",
        {"reg_param": 0.01},
    ),
    FrameworkExample(
        "pmml", "scikit-learn+sklearn2pmml", "pmml", "mlrepo_pmml", "ghcr.io/airflow-mlrepo/pmml:0.1.0", {"C": 1.0}
    ),
    FrameworkExample("h2o", "h2o", "h2o-pojo", "mlrepo_h2o", "ghcr.io/airflow-mlrepo/h2o:0.1.0", {"ntrees": 30}),
)
# --8<-- [end:frameworks]


# --8<-- [start:dag]
def framework_dag(example: FrameworkExample) -> DAG:
    """train >> predict for one framework, exactly as the iris workflow."""
    with DAG(
        dag_id=f"framework_{example.name}",
        schedule="@daily",
        start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        params={
            "training_data": Param("lakefs://iris-train/main/data/", type="string"),
            "input_data": Param("lakefs://iris-input/main/batches/", type="string"),
            "models": Param(f"lakefs://{example.name}-models/main/model/", type="string"),
            "predictions": Param(f"lakefs://{example.name}-predictions/main/predictions/", type="string"),
            "model_version": Param("latest", type="string", description="latest, as_of, or a commit id/tag"),
        },
        tags=["mlrepo", "iris", "frameworks", example.framework],
    ) as dag:
        train = LakeFSTrainingOperator(
            task_id="train",
            inputs={"training_data": "{{ params.training_data }}"},
            output_location="{{ params.models }}",
            hyperparameters=example.hyperparameters,
            framework=example.framework,
            model_format=example.model_format,
            image=example.image,
            cmds=[PYTHON, "-m", f"{example.package}.train"],
            namespace="ml",
        )
        predict = LakeFSInferenceOperator(
            task_id="predict",
            inputs={"input_data": "{{ params.input_data }}"},
            model="{{ params.models }}",
            model_version="{{ params.model_version }}",
            output_location="{{ params.predictions }}{{ ds }}/",
            image=example.image,
            cmds=[PYTHON, "-m", f"{example.package}.predict"],
            namespace="ml",
        )
        train >> predict
    return dag


for _example in FRAMEWORKS:
    framework_dag(_example)
# --8<-- [end:dag]
