"""OpenLineage from real DAG runs (real `airflow dags test`, real lakeFS, the openlineage provider's listener)
into the on-disk outbox transport: names, commit versions, MODEL type, provenance, Marquez registrations.

No Marquez needed: the transport keeps every event in the outbox, which is what is asserted here.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage import marquez
from airflow_mlrepo.lineage.outbox import Outbox
from tests.integration.conftest import LakeFSServer
from tests.integration.dag_runs import DagRunResult, dags_test_command, remove_dag, run_dag, session_home
from tests.openlineage_validation import validate_event

IMAGE = "airflow-mlrepo/iris:0.1"


@pytest.fixture
def iris_repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"ol-{kind}-{suffix}" for kind in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    """The openlineage provider of every `airflow dags test` below writes to this outbox only."""
    path = tmp_path / "outbox"
    transport = {"type": "airflow_mlrepo.lineage.outbox.OutboxTransport", "outbox_dir": str(path), "fsync": False}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "mlrepo-it")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    return Outbox(path)


def _entries(outbox: Outbox) -> list[list[dict[str, Any]]]:
    return [[json.loads(line) for line in entry.read_text().splitlines()] for entry in outbox.pending()]


def _events(outbox: Outbox) -> list[dict[str, Any]]:
    """The events the listener emitted: the last of each entry (the ones before are Marquez registrations)."""
    return [entry[-1] for entry in _entries(outbox)]


def _task_event(outbox: Outbox, result: DagRunResult, task_id: str, event_type: str) -> dict[str, Any]:
    job = f"{result.dag_id}.{task_id}"
    found = [e for e in _events(outbox) if e["job"]["name"] == job and e["eventType"] == event_type]
    assert len(found) == 1, [(e["job"]["name"], e["eventType"]) for e in _events(outbox)]
    return found[0]


def _entry_of(outbox: Outbox, run_id: str, event_type: str) -> list[dict[str, Any]]:
    for entry in _entries(outbox):
        if entry[-1]["run"]["runId"] == run_id and entry[-1]["eventType"] == event_type:
            return entry
    raise AssertionError(f"no outbox entry ends with the {event_type} of run {run_id}")


def _by_name(datasets: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in datasets}


def test_train_predict_and_historical_predict_emit_exact_commits(
    hook: LakeFSHook,
    iris_repos: dict[str, str],
    outbox: Outbox,
    lakefs_server: LakeFSServer,
    airflow_metadata_db: str,
) -> None:
    repos = iris_repos
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    train_commit = hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    first_input = hook.commit(repos["input"], "main", "input batch 1")

    trained = run_dag(
        "train",
        datetime.now(timezone.utc),
        inputs={"training_data": f"lakefs://{repos['train']}/main/data/"},
        output_location=f"lakefs://{repos['models']}/main/model/",
        hyperparameters={"C": 1.0},
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.train"],
    )
    assert trained.state == "success", trained.output[-4000:]
    model_commit = hook.get_commit(repos["models"], "main")

    predict_kwargs = {
        "inputs": {"input_data": f"lakefs://{repos['input']}/main/batches/"},
        "model": f"lakefs://{repos['models']}/main/model/",
        "output_location": f"lakefs://{repos['predictions']}/main/predictions/",
        "image": IMAGE,
        "cmds": ["python", "-m", "mlrepo_iris.predict"],
    }
    first_predict_time = datetime.now(timezone.utc)
    predicted = run_dag("predict", first_predict_time, model_version="latest", **predict_kwargs)
    assert predicted.state == "success", predicted.output[-4000:]
    first_predictions = hook.get_commit(repos["predictions"], "main")

    # a newer input batch arrives; a historical (backfilled) run for the earlier time reads the older one
    hook.upload_object(repos["input"], "main", "batches/batch-2.csv", seed.inference_csv(2, 3))
    second_input = hook.commit(
        repos["input"], "main", "input batch 2", date=int((first_predict_time + timedelta(hours=1)).timestamp())
    )
    historical = run_dag("predict", first_predict_time, model_version="as_of", **predict_kwargs)
    assert historical.state == "success", historical.output[-4000:]
    historical_predictions = hook.get_commit(repos["predictions"], "main")

    # ---------------------------------------------------------------------------- training
    train_start = _task_event(outbox, trained, "train", "START")
    assert train_start["inputs"] == []
    assert train_start["outputs"] == []
    train_complete = _task_event(outbox, trained, "train", "COMPLETE")
    train_run_id = train_complete["run"]["runId"]
    assert train_start["run"]["runId"] == train_run_id
    (training_data,) = train_complete["inputs"]
    assert (training_data["namespace"], training_data["name"]) == (f"lakefs://{repos['train']}", "main/data")
    assert training_data["facets"]["version"]["datasetVersion"] == train_commit.id
    assert training_data["facets"]["lakefs_commit"]["commitId"] == train_commit.id
    assert not training_data.get("inputFacets")  # Marquez would show them on the version
    ((data_pin,),) = [train_complete["run"]["facets"]["mlrepo_pins"]["inputs"]]
    assert (data_pin["name"], data_pin["commitId"], data_pin["rule"]) == ("main/data", train_commit.id, "as_of")
    (model_out,) = train_complete["outputs"]
    assert (model_out["namespace"], model_out["name"]) == (f"lakefs://{repos['models']}", "main/model")
    assert model_out["facets"]["version"]["datasetVersion"] == model_commit.id
    assert model_out["facets"]["datasetType"]["datasetType"] == "MODEL"
    params = {p["key"]: p["value"] for p in train_complete["run"]["facets"]["executionParameters"]["parameters"]}
    assert params == {"C": "1.0"}
    assert train_complete["run"]["facets"]["mlrepo_container"]["image"] == IMAGE
    # provenance on the model commit names this very OpenLineage run
    assert model_commit.metadata["mlrepo.openlineage_run_id"] == train_run_id
    assert model_commit.metadata["mlrepo.openlineage.job_name"] == f"{trained.dag_id}.train"
    assert model_commit.metadata["mlrepo.openlineage.namespace"] == "mlrepo-it"
    assert (
        model_commit.metadata["mlrepo.openlineage.parent_run_id"]
        == (train_complete["run"]["facets"]["parent"]["run"]["runId"])
    )
    # the training data was pushed by a person: a registration run of that commit (its START and
    # COMPLETE) precedes the COMPLETE
    registration_start, registration, reading = _entry_of(outbox, train_run_id, "COMPLETE")
    assert registration_start["eventType"] == "START"
    assert registration_start["run"]["runId"] == registration["run"]["runId"]
    assert registration["run"]["runId"] == marquez.registration_run_id(
        f"lakefs://{repos['train']}", "main/data", train_commit.id
    )
    assert registration["outputs"][0]["facets"]["version"]["datasetVersion"] == train_commit.id
    assert reading is not None

    # --------------------------------------------------------------------------- inference
    predict_complete = _task_event(outbox, predicted, "predict", "COMPLETE")
    inputs = _by_name(predict_complete["inputs"])
    model_in = inputs[(f"lakefs://{repos['models']}", "main/model")]
    assert model_in["facets"]["version"]["datasetVersion"] == model_commit.id
    assert model_in["facets"]["datasetType"]["datasetType"] == "MODEL"
    model_pin = {pin["name"]: pin for pin in predict_complete["run"]["facets"]["mlrepo_pins"]["inputs"]}["main/model"]
    assert model_pin["producedBy"]["runId"] == train_run_id
    assert model_pin["producedBy"]["jobName"] == f"{trained.dag_id}.train"
    data_in = inputs[(f"lakefs://{repos['input']}", "main/batches")]
    assert data_in["facets"]["version"]["datasetVersion"] == first_input.id
    (predictions_out,) = predict_complete["outputs"]
    assert predictions_out["name"] == "main/predictions"
    assert predictions_out["facets"]["version"]["datasetVersion"] == first_predictions.id
    choice = predict_complete["run"]["facets"]["mlrepo_modelChoice"]
    assert (choice["policy"], choice["commitId"]) == ("latest", model_commit.id)
    entry = _entry_of(outbox, predict_complete["run"]["runId"], "COMPLETE")
    registrations = {e["run"]["runId"]: e for e in entry[:-1]}
    # the model is registered again as the training run's output: its Marquez version is the training run's
    assert registrations[train_run_id]["outputs"][0]["facets"]["version"]["datasetVersion"] == model_commit.id
    assert registrations[train_run_id]["job"]["name"] == f"{trained.dag_id}.train"
    data_registration = marquez.registration_run_id(f"lakefs://{repos['input']}", "main/batches", first_input.id)
    assert data_registration in registrations

    # ------------------------------------------------------------------ historical inference
    historical_complete = _task_event(outbox, historical, "predict", "COMPLETE")
    inputs = _by_name(historical_complete["inputs"])
    old_data = inputs[(f"lakefs://{repos['input']}", "main/batches")]
    assert old_data["facets"]["version"]["datasetVersion"] == first_input.id != second_input.id
    assert inputs[(f"lakefs://{repos['models']}", "main/model")]["facets"]["version"]["datasetVersion"] == (
        model_commit.id
    )
    assert historical_complete["outputs"][0]["facets"]["version"]["datasetVersion"] == historical_predictions.id
    assert historical_complete["run"]["facets"]["mlrepo_modelChoice"]["policy"] == "as_of"
    entry = _entry_of(outbox, historical_complete["run"]["runId"], "COMPLETE")
    # the older input commit is registered again right before the historical run's COMPLETE
    assert data_registration in {e["run"]["runId"] for e in entry[:-1]}

    # ------------------------------------------------ every event follows the OpenLineage schemas
    every = [event for entry in _entries(outbox) for event in entry]
    assert {e["eventType"] for e in every} >= {"START", "COMPLETE"}
    for event in every:  # the listener's task and DAG events, our registrations
        validate_event(event)

    # ----------------------------------------------------------------------------- secrets
    everything = "\n".join(entry.read_text() for entry in outbox.pending())
    assert lakefs_server.secret_access_key not in everything
    assert lakefs_server.access_key_id not in everything


_HELLO_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):

    @task
    def hello() -> str:
        return "hello"

    hello()
"""


def test_a_rerun_of_the_same_dag_and_logical_date_gets_its_own_run_ids_and_a_dag_run_start(
    outbox: Outbox, airflow_metadata_db: str
) -> None:
    """`airflow dags test` twice for one logical date (what the demo's "clear" does): two runs in
    OpenLineage, each DAG run with its START and COMPLETE, each task run under its own DAG run."""
    home = session_home()
    dag_id = f"test_rerun_{uuid.uuid4().hex[:10]}"
    (home.dags_folder / f"{dag_id}.py").write_text(_HELLO_DAG.format(dag_id=dag_id))
    when = datetime(2026, 11, 30, 6, tzinfo=timezone.utc)
    try:
        for _ in range(2):
            done = subprocess.run(
                dags_test_command(dag_id, when), env=home.env(), capture_output=True, text=True, timeout=300
            )
            assert DagRunResult(dag_id, done.returncode, done.stdout + done.stderr).state == "success", done.stdout[
                -3000:
            ]
    finally:
        remove_dag(dag_id, home)
    events = [e for e in _events(outbox) if e["job"]["name"] in (dag_id, f"{dag_id}.hello")]
    dag_runs: dict[str, set[str]] = {}
    task_runs: dict[str, set[str]] = {}
    parents: dict[str, str] = {}
    for event in events:
        runs = dag_runs if event["job"]["name"] == dag_id else task_runs
        runs.setdefault(event["run"]["runId"], set()).add(event["eventType"])
        if event["job"]["name"] != dag_id:
            parents[event["run"]["runId"]] = event["run"]["facets"]["parent"]["run"]["runId"]
    assert len(task_runs) == 2, task_runs  # the re-run is not merged into the first run
    assert len(dag_runs) == 2, dag_runs
    assert all(states == {"START", "COMPLETE"} for states in (*dag_runs.values(), *task_runs.values())), events
    assert set(parents.values()) == set(dag_runs)  # each task run under its own DAG run
    for event in events:  # the DAG-run START we add follows the spec too
        validate_event(event)
