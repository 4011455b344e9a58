"""Publishing outputs (docs/concepts/publishing.md) with the real `airflow dags test` and the real lakeFS:
a late retry finds its output by fingerprint tag however long the branch's history has grown, and a
run told to publish to its own branch leaves the production branch alone."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.publishing import fingerprint_tag
from tests.integration.commits import commit_file
from tests.integration.dag_runs import COPY_JOB, DagRunResult, dags_test_command, remove_dag, session_home, write_dag


def _train_dag(data: str, models: str, **extra: str) -> str:
    return write_dag(
        "train",
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        image="example/train:1",
        cmds=["python", COPY_JOB],
        **extra,
    )


def _run(dag_id: str, when: datetime) -> DagRunResult:
    home = session_home()
    result = subprocess.run(
        dags_test_command(dag_id, when), env=home.env(), capture_output=True, text=True, timeout=900, check=False
    )
    return DagRunResult(dag_id, result.returncode, result.stdout + result.stderr)


def test_a_late_retry_finds_its_output_after_more_than_200_commits(
    hook: LakeFSHook, repo_pair: tuple[str, str], airflow_metadata_db: str
) -> None:
    data, models = repo_pair
    commit_file(hook, data, "main", "data/part-1.csv", "a,b\n1,2\n")
    when = datetime.now(timezone.utc).replace(microsecond=0)
    dag_id = _train_dag(data, models)
    try:
        first = _run(dag_id, when)
        assert first.state == "success", first.output[-4000:]
        published = hook.get_commit(models, "main")
        fingerprint = published.metadata["mlrepo.fingerprint"]
        assert hook.resolve_commit_id(models, fingerprint_tag(fingerprint)) == published.id
        # A busy output branch: 205 commits by others before the same work runs again.
        for n in range(205):
            hook.commit(models, "main", f"someone else's commit {n}", allow_empty=True)
        busy_head = hook.get_branch_head(models, "main")

        again = _run(dag_id, when)  # the same run id, the same pins: the same work
        assert again.state == "success", again.output[-4000:]
    finally:
        remove_dag(dag_id)
    assert "already exists" in again.output
    assert hook.get_branch_head(models, "main") == busy_head  # nothing committed twice
    outputs = [
        c
        for c in hook.log_commits(models, "main", first_parent=True)
        if c.metadata.get("mlrepo.fingerprint") == fingerprint
    ]
    assert [c.id for c in outputs] == [published.id]


def test_a_run_publishing_to_its_own_branch_leaves_the_production_branch_alone(
    hook: LakeFSHook, repo_pair: tuple[str, str], airflow_metadata_db: str
) -> None:
    data, models = repo_pair
    commit_file(hook, data, "main", "data/part-1.csv", "a,b\n1,2\n")
    production = commit_file(hook, models, "main", "model/training_data-0.txt", "production model")
    dag_id = _train_dag(data, models, publish_to="run_branch")
    try:
        result = _run(dag_id, datetime.now(timezone.utc))
    finally:
        remove_dag(dag_id)
    assert result.state == "success", result.output[-4000:]
    assert hook.get_branch_head(models, "main") == production.id
    (branch,) = [b for b in hook.list_branches(models, "run-") if dag_id in b]
    head = hook.get_commit(models, branch)
    assert head.metadata["mlrepo.dag_id"] == dag_id
    assert hook.read_object_bytes(models, branch, "model/training_data-0.txt") == b"A,B\n1,2\n"
    assert hook.read_object_bytes(models, "main", "model/training_data-0.txt") == b"production model"
