"""Each framework example DAG (dags/framework_examples.py) end to end: real `airflow dags test` and the
real lakeFS; the containers run with the local runner by the frameworks environment's Python, or
(``MLREPO_RUNNER=kubernetes``) as pods of the framework's image on the stack's cluster.

Per framework: train -> model commit (provenance, framework and format) -> predict -> predictions
commit (provenance complete); then new data and a retrained model arrive, and predicting again
with ``model_version=as_of`` pins the first run's model and input commits and reproduces its
predictions byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.pod import IMAGE_ID_METADATA
from tests.frameworks.conftest import ContainerRuntime
from tests.integration.dag_runs import AIRFLOW, DagRunResult, session_home

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "framework_examples.py"
TRAINING_ROWS = 75  # part 1 of 2 of the 150 iris rows
BATCH_ROWS = 50  # part 1 of 3


@dataclass(frozen=True)
class ModelFiles:
    """What a framework's model commit must hold under ``model/`` (besides ``metrics.json``)."""

    required: frozenset[str]
    min_files: int = 1


#: The frameworks this tier runs, and what each model looks like in lakeFS. docs/frameworks/index.md's
#: table lists exactly these (tests/unit/test_frameworks_docs.py checks it).
EXPECTED_MODELS: dict[str, ModelFiles] = {
    "sklearn": ModelFiles(frozenset({"model.pkl"})),
    "tensorflow": ModelFiles(frozenset({"model.keras", "classes.json"})),
    "spark": ModelFiles(frozenset({"spark-model/metadata/_SUCCESS"}), min_files=10),
    "pmml": ModelFiles(frozenset({"model.pmml"})),
    "h2o": ModelFiles(frozenset({"pojo/iris_gbm.java", "pojo/h2o-genmodel.jar"})),
}

#: Provenance keys every output commit must carry (docs/reference/provenance).
PROVENANCE_KEYS = {
    "mlrepo.format",
    "mlrepo.output_kind",
    "mlrepo.dag_id",
    "mlrepo.run_id",
    "mlrepo.task_id",
    "mlrepo.try_number",
    "mlrepo.image",
    "mlrepo.command",
    "mlrepo.runner",
    "mlrepo.hyperparameters",
    "mlrepo.fingerprint",
    "mlrepo.inputs",
    "::lakefs::Airflow::dag_id",
    "::lakefs::Airflow::dag_run_id",
    "::lakefs::Airflow::url[url:ui]",
}


def load_examples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("framework_examples", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module


EXAMPLES = {example.name: example for example in load_examples().FRAMEWORKS}


def test_every_example_dag_is_run_by_this_tier() -> None:
    assert sorted(EXAMPLES) == sorted(EXPECTED_MODELS)


@pytest.fixture
def repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"fw-{kind}-{suffix}" for kind in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


def run_example(
    name: str, when: datetime, conf: dict[str, str], runtime: ContainerRuntime, *, skip_tasks: str | None = None
) -> DagRunResult:
    """``airflow dags test framework_<name> <when> -f dags/framework_examples.py -c <conf>`` on ``runtime``."""
    home = session_home()
    # `dags test -f` takes only files inside the dags folder (the DAG bundle): run a copy from there
    home.dags_folder.mkdir(parents=True, exist_ok=True)
    dag_file = home.dags_folder / DAG_FILE.name
    shutil.copyfile(DAG_FILE, dag_file)
    env = home.env()
    env["AIRFLOW__MLREPO__RUNNER"] = runtime.runner
    env["MLREPO_EXAMPLES_PYTHON"] = runtime.python
    command = [AIRFLOW, "dags", "test", f"framework_{name}", when.isoformat(), "-f", str(dag_file)]
    command += ["-c", json.dumps(conf)]
    if skip_tasks:
        command += ["--mark-success-pattern", skip_tasks]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    return DagRunResult(f"framework_{name}", result.returncode, result.stdout + result.stderr)


def model_objects(hook: LakeFSHook, repository: str, ref: str) -> dict[str, int]:
    return {o.path.removeprefix("model/"): o.size_bytes for o in hook.list_objects(repository, ref, "model/")}


def assert_provenance(
    metadata: dict[str, str], *, kind: str, dag_id: str, task_id: str, runtime: ContainerRuntime
) -> None:
    missing = PROVENANCE_KEYS - set(metadata)
    assert not missing, f"provenance keys missing on the {kind} commit: {sorted(missing)}"
    assert metadata["mlrepo.output_kind"] == kind
    assert metadata["mlrepo.dag_id"] == dag_id
    assert metadata["mlrepo.task_id"] == task_id
    assert metadata["mlrepo.runner"] == runtime.runner
    assert json.loads(metadata["mlrepo.command"])[0] == runtime.python
    if runtime.runner == "kubernetes":  # the digest the pod ran, from its container status
        assert "sha256:" in metadata[IMAGE_ID_METADATA], metadata
    assert not any("secret" in value.lower() for value in metadata.values())


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_framework_example_round_trips_through_lakefs(
    name: str, hook: LakeFSHook, repos: dict[str, str], airflow_metadata_db: str, container_runtime: ContainerRuntime
) -> None:
    from mlrepo_iris import seed

    example = EXAMPLES[name]
    container_runtime.ensure_image(example.image)
    dag_id = f"framework_{name}"
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    train_commit = hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    input_commit = hook.commit(repos["input"], "main", "input batch 1")
    conf = {
        "training_data": f"lakefs://{repos['train']}/main/data/",
        "input_data": f"lakefs://{repos['input']}/main/batches/",
        "models": f"lakefs://{repos['models']}/main/model/",
        "predictions": f"lakefs://{repos['predictions']}/main/predictions/",
        "model_version": "latest",
    }

    # 1. train >> predict, as the daily schedule would run it
    first_run = datetime.now(timezone.utc)
    first = run_example(name, first_run, conf, container_runtime)
    assert first.state == "success", first.output[-6000:]
    model = hook.get_commit(repos["models"], "main")
    meta = model.metadata
    assert_provenance(meta, kind="model", dag_id=dag_id, task_id="train", runtime=container_runtime)
    assert meta["mlrepo.input.training_data"] == f"lakefs://{repos['train']}/{train_commit.id}/data/"
    assert meta["mlrepo.model.framework"] == example.framework
    assert meta["mlrepo.model.format"] == example.model_format
    assert json.loads(meta["mlrepo.hyperparameters"]) == example.hyperparameters
    objects = model_objects(hook, repos["models"], model.id)
    expected = EXPECTED_MODELS[name]
    assert expected.required <= set(objects), sorted(objects)
    assert len(objects) - 1 >= expected.min_files, sorted(objects)
    metrics = json.loads(hook.read_object_bytes(repos["models"], model.id, "model/metrics.json"))
    assert metrics["n_samples"] == TRAINING_ROWS
    assert metrics["accuracy"] > 0.85
    if name != "sklearn":  # the iris (pickle) example predates these two keys
        assert (metrics["framework"], metrics["model"]["format"]) == (example.framework, example.model_format)
        assert set(metrics["model"]["files"]) == set(objects) - {"metrics.json"}

    predictions = hook.get_commit(repos["predictions"], "main")
    pmeta = predictions.metadata
    assert_provenance(pmeta, kind="predictions", dag_id=dag_id, task_id="predict", runtime=container_runtime)
    assert pmeta["mlrepo.model.commit_id"] == model.id
    assert pmeta["mlrepo.model.policy"] == "latest"
    assert pmeta["mlrepo.input.input_data"] == f"lakefs://{repos['input']}/{input_commit.id}/batches/"
    ds = first_run.date().isoformat()
    first_predictions = hook.read_object_bytes(
        repos["predictions"], predictions.id, f"predictions/{ds}/predictions.csv"
    )
    first_summary = hook.read_object_bytes(repos["predictions"], predictions.id, f"predictions/{ds}/summary.json")
    rows = first_predictions.decode().splitlines()
    assert rows[0] == "id,species"
    assert len(rows) == 1 + BATCH_ROWS
    assert {row.split(",")[1] for row in rows[1:]} <= {"setosa", "versicolor", "virginica"}
    assert json.loads(first_summary)["n_predictions"] == BATCH_ROWS

    # 2. later: more training data and a new input batch; the next run retrains the model
    reproduce_at = datetime.now(timezone.utc)
    time.sleep(1)  # commits below are strictly after reproduce_at (lakeFS dates have 1 s resolution)
    hook.upload_object(repos["train"], "main", "data/iris-part-2.csv", seed.training_csv(2, 2))
    hook.commit(repos["train"], "main", "training data part 2")
    hook.upload_object(repos["input"], "main", "batches/batch-2.csv", seed.inference_csv(2, 3))
    hook.commit(repos["input"], "main", "input batch 2")
    second = run_example(name, datetime.now(timezone.utc), conf, container_runtime)
    assert second.state == "success", second.output[-6000:]
    retrained = hook.get_commit(repos["models"], "main")
    assert retrained.id != model.id
    retrained_metrics = json.loads(hook.read_object_bytes(repos["models"], retrained.id, "model/metrics.json"))
    assert retrained_metrics["n_samples"] == 2 * TRAINING_ROWS

    # 3. reproduce the first predictions: predict only, model and input as of the first run
    third = run_example(name, reproduce_at, {**conf, "model_version": "as_of"}, container_runtime, skip_tasks="^train$")
    assert third.state == "success", third.output[-6000:]
    again = hook.get_commit(repos["predictions"], "main")
    ameta = again.metadata
    assert_provenance(ameta, kind="predictions", dag_id=dag_id, task_id="predict", runtime=container_runtime)
    assert ameta["mlrepo.model.commit_id"] == model.id != retrained.id
    assert ameta["mlrepo.model.policy"] == "as_of"
    assert ameta["mlrepo.input.input_data"] == pmeta["mlrepo.input.input_data"]
    ds = reproduce_at.date().isoformat()
    assert hook.read_object_bytes(repos["predictions"], again.id, f"predictions/{ds}/predictions.csv") == (
        first_predictions
    )
    assert hook.read_object_bytes(repos["predictions"], again.id, f"predictions/{ds}/summary.json") == first_summary
