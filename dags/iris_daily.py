"""Iris, daily: train on the training data as of each day, then predict that day's input batches.

Repositories (create them once; `mlrepo demo` does): iris-train (training CSVs under data/),
iris-input (batches under batches/), iris-models (model under model/), iris-predictions.
Runs on Kubernetes by default; set `[mlrepo] runner = local` to run the same commands as local
processes. Backfill it from the UI or `airflow backfill create`: each run pins its inputs to the
branch heads as of its own data interval end.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator

IMAGE = "ghcr.io/airflow-mlrepo/iris:0.1.0"

with DAG(
    dag_id="iris_daily",
    schedule="@daily",
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    # "{{ params.C }}" must reach the container as a number, not the string "1.0".
    render_template_as_native_obj=True,
    params={
        "model_version": Param("latest", type="string", description="latest, as_of, or a commit id/tag"),
        "C": Param(1.0, type="number", description="inverse regularisation strength"),
    },
    tags=["mlrepo", "iris"],
) as dag:
    train = LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": "lakefs://iris-train/main/data/"},
        output_location="lakefs://iris-models/main/model/",
        hyperparameters={"C": "{{ params.C }}"},
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.train"],
        namespace="ml",
    )
    predict = LakeFSInferenceOperator(
        task_id="predict",
        inputs={"input_data": "lakefs://iris-input/main/batches/"},
        model="lakefs://iris-models/main/model/",
        model_version="{{ params.model_version }}",
        output_location="lakefs://iris-predictions/main/predictions/{{ ds }}/",
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.predict"],
        namespace="ml",
    )
    train >> predict
