"""Lineage in the real Marquez: exact lakeFS commits through Marquez's own API, and no event lost in an outage.

Real `airflow dags test` runs with the openlineage provider configured to the outbox transport,
delivering to the Marquez of the stack (its own, or the external one of ``MLREPO_MARQUEZ_URL``). The
lineage is read back the way Marquez answers (:mod:`airflow_mlrepo.lineage.marquez_reader`): run
lineage, then each dataset's versions matched on ``createdByRun``. Skips (with the stack's reason)
where no Marquez runs; the same runs without Marquez are asserted in ``test_lineage_events.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.exceptions import MarquezReadError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage.ids import RUN_ID_KEY
from airflow_mlrepo.lineage.marquez_reader import MarquezReader, render, trace
from airflow_mlrepo.lineage.outbox import Outbox
from tests.integration.conftest import MarquezServer
from tests.integration.dag_runs import DagRunResult, run_dag
from tests.integration.tcp_forwarder import TcpForwarder

IMAGE = "airflow-mlrepo/iris:0.1"
OUTAGE_SECONDS = 60


@pytest.fixture
def iris_repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"mq-{kind}-{suffix}" for kind in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marquez_server: MarquezServer) -> Outbox:
    path = tmp_path / "outbox"
    transport = {
        "type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
        "outbox_dir": str(path),
        "http": marquez_server.http_transport(),
        "idle_exit_seconds": 5,
        "max_backoff_seconds": 5,
    }
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", f"mlrepo-it-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    return Outbox(path)


def _wait_until_delivered(outbox: Outbox, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not outbox.pending():
            return
        time.sleep(0.5)
    raise AssertionError(f"not delivered in {timeout} s: {outbox.status()}")


def _listener_events(outbox: Outbox) -> list[dict[str, Any]]:
    return [json.loads(entry.read_text().splitlines()[-1]) for entry in outbox.pending()]


def _run_id(events: list[dict[str, Any]], result: DagRunResult, task_id: str) -> str:
    job = f"{result.dag_id}.{task_id}"
    (run_id,) = {e["run"]["runId"] for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"}
    return run_id


def _predict_kwargs(repos: dict[str, str]) -> dict[str, Any]:
    return {
        "inputs": {"input_data": f"lakefs://{repos['input']}/main/batches/"},
        "model": f"lakefs://{repos['models']}/main/model/",
        "output_location": f"lakefs://{repos['predictions']}/main/predictions/",
        "image": IMAGE,
        "cmds": ["python", "-m", "mlrepo_iris.predict"],
    }


def _train(repos: dict[str, str], when: datetime) -> DagRunResult:
    return run_dag(
        "train",
        when,
        inputs={"training_data": f"lakefs://{repos['train']}/main/data/"},
        output_location=f"lakefs://{repos['models']}/main/model/",
        hyperparameters={"C": 1.0},
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.train"],
    )


def _run_of(hook: LakeFSHook, repository: str) -> str:
    """The OpenLineage run that wrote the head commit of ``main`` (its provenance metadata)."""
    return hook.get_commit(repository, "main").metadata[RUN_ID_KEY]


def test_marquez_shows_the_exact_commits_of_train_predict_and_a_historical_predict(
    marquez_server: MarquezServer,
    hook: LakeFSHook,
    iris_repos: dict[str, str],
    outbox: Outbox,
    airflow_metadata_db: str,
) -> None:
    repos = iris_repos
    marquez = MarquezReader(marquez_server.url, marquez_server.api_key)
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    train_commit = hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    first_input = hook.commit(repos["input"], "main", "input batch 1")

    trained = _train(repos, datetime.now(timezone.utc))
    assert trained.state == "success", trained.output[-4000:]
    model_commit = hook.get_commit(repos["models"], "main")
    train_run = model_commit.metadata[RUN_ID_KEY]
    first_time = datetime.now(timezone.utc)
    predicted = run_dag("predict", first_time, model_version="latest", **_predict_kwargs(repos))
    assert predicted.state == "success", predicted.output[-4000:]
    predict_run = _run_of(hook, repos["predictions"])
    # newer input, read by a current run: it becomes the dataset's current version in Marquez
    hook.upload_object(repos["input"], "main", "batches/batch-2.csv", seed.inference_csv(2, 3))
    second_input = hook.commit(
        repos["input"], "main", "input batch 2", date=int((first_time + timedelta(minutes=30)).timestamp())
    )
    current = run_dag("predict", first_time + timedelta(hours=1), model_version="latest", **_predict_kwargs(repos))
    assert current.state == "success", current.output[-4000:]
    current_run = _run_of(hook, repos["predictions"])
    # then a historical (backfilled / cleared) run for the first time reads the older commit
    historical = run_dag("predict", first_time, model_version="as_of", **_predict_kwargs(repos))
    assert historical.state == "success", historical.output[-4000:]
    historical_run = _run_of(hook, repos["predictions"])
    assert len({train_run, predict_run, current_run, historical_run}) == 4
    _wait_until_delivered(outbox)

    models_ns, input_ns, train_ns = (f"lakefs://{repos[k]}" for k in ("models", "input", "train"))
    # prediction run -> (run lineage, each dataset's versions matched on createdByRun) -> the exact
    # model and input commits -> the training run -> the training-data commit
    lineage = trace(marquez, predict_run)
    model = lineage.input(models_ns, "main/model")
    assert model.commit_id == model_commit.id
    assert model.produced_by_run_id == train_run
    assert lineage.input(input_ns, "main/batches").commit_id == first_input.id
    assert model.producer is not None
    assert model.producer.input(train_ns, "main/data").commit_id == train_commit.id
    # the current run read the newer input; the historical run the older one, not Marquez's newest
    assert trace(marquez, current_run).input(input_ns, "main/batches").commit_id == second_input.id
    back = trace(marquez, historical_run)
    assert back.input(input_ns, "main/batches").commit_id == first_input.id
    historical_model = back.input(models_ns, "main/model")
    assert historical_model.commit_id == model_commit.id
    assert historical_model.producer is not None
    assert historical_model.producer.run_id == train_run
    assert historical_model.producer.input(train_ns, "main/data").commit_id == train_commit.id
    # registration left the training run as it was: one run, COMPLETED, its own end time
    training = marquez.run(train_run)
    assert training["state"] == "COMPLETED"
    # the model version's facets are the commit only, whatever its three readers chose; each reader's
    # choice is in its own run's facets (mlrepo_pins)
    (model_version,) = [
        v for v in marquez.dataset_versions(models_ns, "main/model") if v["createdByRun"]["id"] == train_run
    ]
    assert set(model_version["facets"]) == {"version", "lakefs_commit", "datasetType"}, model_version["facets"]
    for run_id, rule in ((predict_run, "latest"), (current_run, "latest"), (historical_run, "as_of")):
        document = marquez.run(run_id)
        pins = {(pin["namespace"], pin["name"]): pin for pin in document["facets"]["mlrepo_pins"]["inputs"]}
        assert pins[(models_ns, "main/model")]["rule"] == rule
        assert pins[(models_ns, "main/model")]["commitId"] == model_commit.id
        # the DAG run's START is its real start: Marquez shows it started before it ended
        parent = marquez.run(document["facets"]["parent"]["run"]["runId"])
        assert parent["startedAt"] is not None, parent
        assert datetime.fromisoformat(parent["startedAt"]) <= datetime.fromisoformat(parent["endedAt"]), parent
    # `mlrepo lineage show` walks the same route
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mlrepo")), "lineage", "show", historical_run, "--url", marquez_server.url],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **({"MARQUEZ_API_KEY": marquez_server.api_key} if marquez_server.api_key else {})},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"commit {model_commit.id}" in shown.stdout
    assert f"commit {first_input.id}" in shown.stdout
    assert f"commit {train_commit.id}" in shown.stdout
    print("\n".join(render(lineage)))
    print(shown.stdout)


def test_no_event_is_lost_while_marquez_is_down_for_a_minute(
    marquez_server: MarquezServer,
    hook: LakeFSHook,
    iris_repos: dict[str, str],
    outbox: Outbox,
    airflow_metadata_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outage is a loopback forwarder of the test's going down (connections refused, as for a
    stopped Marquez) and coming back on the same port: the real Marquez, maybe a user's, is untouched."""
    target = urllib.parse.urlsplit(marquez_server.url)
    forwarder = TcpForwarder(target.hostname or "127.0.0.1", target.port or 80)
    transport = json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    transport["http"]["url"] = forwarder.url + target.path
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    repos = iris_repos
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    hook.commit(repos["input"], "main", "input batch 1")

    forwarder.go_down()
    stopped = time.monotonic()
    try:
        with pytest.raises(MarquezReadError, match="did not answer"):
            MarquezReader(forwarder.url + target.path).get("/api/v1/namespaces")
        started = time.monotonic()
        trained = _train(repos, datetime.now(timezone.utc))
        predicted = run_dag("predict", datetime.now(timezone.utc), model_version="latest", **_predict_kwargs(repos))
        runs_took = time.monotonic() - started
        assert trained.state == "success", trained.output[-4000:]
        assert predicted.state == "success", predicted.output[-4000:]
        events = _listener_events(outbox)
        assert len(events) >= 4  # START + COMPLETE of both tasks, all kept on disk
        remaining = OUTAGE_SECONDS - (time.monotonic() - stopped)
        if remaining > 0:
            time.sleep(remaining)
        assert time.monotonic() - stopped >= OUTAGE_SECONDS
        print(f"both DAG runs took {runs_took:.1f} s with Marquez down; {len(events)} events waiting")
    finally:
        forwarder.come_back()
    _wait_until_delivered(outbox)
    marquez = MarquezReader(marquez_server.url, marquez_server.api_key)
    for event in events:
        run = marquez.run(event["run"]["runId"])
        assert run["id"] == event["run"]["runId"]
    for result, task in ((trained, "train"), (predicted, "predict")):
        assert marquez.run(_run_id(events, result, task))["state"] == "COMPLETED"
