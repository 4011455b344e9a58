"""``dags/iris_daily.py`` (the DAG of docs/how-to/write-a-dag.md) run as it is with the real
``airflow dags test`` and the local runner on the real lakeFS; only its repository names are
replaced by fresh ones."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.provenance import input_commits
from tests.integration.dag_runs import DagRunResult, dags_test_command, session_home

EXAMPLE = Path(__file__).resolve().parents[2] / "dags" / "iris_daily.py"
KINDS = ("iris-train", "iris-input", "iris-models", "iris-predictions")


@pytest.fixture
def repos(hook: LakeFSHook, airflow_metadata_db: str) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"{kind}-{suffix}" for kind in KINDS}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


def test_iris_daily_trains_and_predicts_with_provenance(hook: LakeFSHook, repos: dict[str, str]) -> None:
    for part in (1, 2):
        hook.upload_object(repos["iris-train"], "main", f"data/iris-part-{part}.csv", seed.training_csv(part, 2))
        hook.commit(repos["iris-train"], "main", f"training data part {part}")
    hook.upload_object(repos["iris-input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 1))
    input_commit = hook.commit(repos["iris-input"], "main", "input batch 1").id

    source = EXAMPLE.read_text()
    for kind, name in repos.items():
        assert f"lakefs://{kind}/" in source, f"{EXAMPLE.name} no longer reads {kind}"
        source = source.replace(f"lakefs://{kind}/", f"lakefs://{name}/")
    home = session_home()
    home.dags_folder.mkdir(parents=True, exist_ok=True)
    dag_file = home.dags_folder / "iris_daily.py"
    dag_file.write_text(source)
    when = datetime.now(timezone.utc)
    try:
        run = subprocess.run(
            dags_test_command("iris_daily", when),
            env={**home.env(), "AIRFLOW__MLREPO__RUNNER": "local"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        dag_file.unlink(missing_ok=True)
    result = DagRunResult("iris_daily", run.returncode, run.stdout + run.stderr)
    assert result.state == "success", result.output[-4000:]

    model_head = hook.resolve_commit_id(repos["iris-models"], "main")
    prediction_head = hook.get_commit(repos["iris-predictions"], "main")
    assert prediction_head.metadata["mlrepo.model.commit_id"] == model_head
    assert input_commits(prediction_head.metadata)["input_data"].startswith(
        f"lakefs://{repos['iris-input']}/{input_commit}/"
    )
    csv = hook.read_object_bytes(repos["iris-predictions"], "main", f"predictions/{when:%Y-%m-%d}/predictions.csv")
    assert csv.count(b"\n") > 1
