"""`mlrepo provenance` against the real lakeFS: histories written the way the operators write them
(attempt branch → commit with provenance → merge into main with the same metadata)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_mlrepo.exceptions import LakeFSNotFoundError, NoProvenanceError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import PinnedInput
from airflow_mlrepo.provenance import build_provenance
from airflow_mlrepo.provenance_report import Links, trace
from tests.integration.conftest import LakeFSServer

MLREPO = str(Path(sys.executable).with_name("mlrepo"))


@pytest.fixture
def repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"prov-{role}-{suffix}" for role in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


def _publish(hook: LakeFSHook, repository: str, path: str, data: bytes, metadata: dict[str, str]) -> str:
    """What LakeFSPodOperator.publish does: write on an attempt branch, commit, merge into main."""
    branch = f"mlrepo-attempt-{uuid.uuid4().hex[:6]}"
    hook.create_branch(repository, branch, "main")
    hook.upload_object(repository, branch, path, data)
    hook.commit(repository, branch, f"{metadata['mlrepo.output_kind']} output", metadata)
    merge = hook.merge(repository, branch, "main", message="merge output", metadata=metadata)
    hook.delete_branch(repository, branch)
    return merge


def _provenance(kind: str, pins: dict[str, PinnedInput], model_input: str | None, dag_id: str) -> dict[str, str]:
    when = datetime(2026, 11, 25, tzinfo=timezone.utc)
    return build_provenance(
        output_kind=kind,
        pins=pins,
        model_input=model_input,
        model_policy="latest" if model_input else None,
        dag_id=dag_id,
        run_id="scheduled__2026-11-25T00:00:00+00:00",
        task_id="task",
        map_index=-1,
        try_number=1,
        run_type="scheduled",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        command=["python", "-m", "mlrepo_iris.task"],
        runner="local",
        hyperparameters={},
        fingerprint_value=uuid.uuid4().hex,
        airflow_url="http://localhost:8080/dags/x/runs/y/tasks/task",
        openlineage_run_id=None,
    )


@pytest.fixture
def workflow(hook: LakeFSHook, repos: dict[str, str]) -> dict[str, str]:
    hook.upload_object(repos["train"], "main", "data/iris.csv", b"sepal_length,species\n5.1,setosa\n")
    train_commit = hook.commit(repos["train"], "main", "training data").id
    hook.upload_object(repos["input"], "main", "batches/b1.csv", b"id,sepal_length\niris-000,5.1\n")
    input_commit = hook.commit(repos["input"], "main", "input batch").id
    train_pin = PinnedInput("training_data", LakeFSLocation(repos["train"], "main", "data/"), train_commit, "as_of")
    model_commit = _publish(
        hook,
        repos["models"],
        "model/model.pkl",
        b"model",
        _provenance("model", {"training_data": train_pin}, None, "t"),
    )
    pins = {
        "input_data": PinnedInput(
            "input_data", LakeFSLocation(repos["input"], "main", "batches/"), input_commit, "as_of"
        ),
        "model": PinnedInput("model", LakeFSLocation(repos["models"], "main", "model/"), model_commit, "latest"),
    }
    predictions_commit = _publish(
        hook,
        repos["predictions"],
        "predictions/predictions.csv",
        b"id,species\niris-000,setosa\n",
        _provenance("predictions", pins, "model", "p"),
    )
    return {
        "train": train_commit,
        "input": input_commit,
        "model": model_commit,
        "predictions": predictions_commit,
    }


def test_prediction_object_traces_to_the_exact_commits(
    hook: LakeFSHook, repos: dict[str, str], workflow: dict[str, str]
) -> None:
    links = Links(lakefs_ui=hook.settings.browser_url, airflow_ui="http://localhost:8080")
    node = trace(hook, f"lakefs://{repos['predictions']}/main/predictions/predictions.csv", links=links)
    assert node.commit_id == workflow["predictions"]  # the merge on main, not the attempt commit
    found = {role: node.find(role) for role in ("model", "input_data", "training_data")}
    assert {role: n.commit_id for role, n in found.items() if n} == {
        "model": workflow["model"],
        "input_data": workflow["input"],
        "training_data": workflow["train"],
    }
    # the same chain from the prefix, from the branch (its head commit) and from the commit id
    for location in (
        f"lakefs://{repos['predictions']}/main/predictions/",
        f"lakefs://{repos['predictions']}/main",
        f"lakefs://{repos['predictions']}/{workflow['predictions']}",
    ):
        again = trace(hook, location, links=links)
        assert again.commit_id == node.commit_id
        assert [child.to_dict() for child in again.inputs] == [child.to_dict() for child in node.inputs]


def test_data_objects_have_no_provenance(hook: LakeFSHook, repos: dict[str, str], workflow: dict[str, str]) -> None:
    with pytest.raises(NoProvenanceError) as caught:
        trace(hook, f"lakefs://{repos['train']}/main/data/iris.csv")
    assert caught.value.repository == repos["train"]
    assert workflow["train"] in str(caught.value)
    with pytest.raises(LakeFSNotFoundError):
        trace(hook, f"lakefs://{repos['predictions']}/main/never/written.csv")


def test_cli_json_and_tree(lakefs_server: LakeFSServer, repos: dict[str, str], workflow: dict[str, str]) -> None:
    env = {**os.environ, "AIRFLOW_CONN_LAKEFS_DEFAULT": lakefs_server.connection_json()}
    location = f"lakefs://{repos['predictions']}/main/predictions/predictions.csv"
    as_json = subprocess.run(
        [MLREPO, "provenance", location, "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["commit_id"] == workflow["predictions"]
    assert {child["role"]: child["commit_id"] for child in data["inputs"]} == {
        "input_data": workflow["input"],
        "model": workflow["model"],
    }
    assert lakefs_server.secret_access_key not in as_json.stdout
    tree = subprocess.run(
        [MLREPO, "provenance", location], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert tree.returncode == 0, tree.stderr
    assert workflow["train"][:12] in tree.stdout
    missing = subprocess.run(
        [MLREPO, "provenance", f"lakefs://{repos['input']}/main/batches/b1.csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1
    assert "carries no airflow-mlrepo provenance" in missing.stderr
