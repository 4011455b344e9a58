"""Publishing outputs (docs/concepts/publishing.md) on the real lakeFS: a late retry finds its output by
fingerprint tag however long the branch's history has grown, and a run told to publish to its own
branch (a real `airflow dags test`) leaves the production branch alone."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.pod import AttemptPlan
from airflow_mlrepo.operators.publishing import fingerprint_tag, record_published
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.provenance import FINGERPRINT
from tests.integration.commits import commit_file
from tests.integration.dag_runs import (
    COPY_JOB,
    DagRunResult,
    dags_test_command,
    manual_run_id,
    remove_dag,
    run_task_again,
    session_home,
    write_dag,
)


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


def test_a_late_retry_finds_its_output_after_more_than_200_commits(hook: LakeFSHook, repo: str) -> None:
    """The lookup a retry does first, on a busy output branch: the output is 205 commits down."""
    fingerprint = hashlib.sha256(b"this work").hexdigest()
    operator = LakeFSTrainingOperator(
        task_id="train", output_location=f"lakefs://{repo}/main/model/", image="example/train:1", runner="local"
    )
    plan = AttemptPlan(
        target=LakeFSLocation(repo, "main", "model/"),
        pins={},
        attempt_branch="mlrepo-train-0123456789ab-try2",
        stale_prefix="mlrepo-train-0123456789ab-",
        fingerprint=fingerprint,
    )
    assert operator.find_existing_output(plan) is None
    # What publish() leaves behind: the output merged with its fingerprint, the merge commit tagged.
    hook.create_branch(repo, "attempt", "main")
    hook.upload_object(repo, "attempt", "model/model.pkl", b"model")
    hook.commit(repo, "attempt", "model", {FINGERPRINT: fingerprint})
    merged = hook.merge(repo, "attempt", "main", message="model", metadata={FINGERPRINT: fingerprint})
    record_published(hook, plan.target, fingerprint, merged, log=operator.log)
    hook.delete_branch(repo, "attempt")
    for n in range(205):
        hook.commit(repo, "main", f"someone else's commit {n}", allow_empty=True)

    before = operator.lakefs_hook.api_calls
    assert operator.find_existing_output(plan) == merged
    assert operator.lakefs_hook.api_calls - before <= 3  # list attempt branches, resolve the tag, check the ancestry
    # An attempt that died between merge and tag: its branch still holds the output commit under the merge.
    hook.client.tags_api.delete_tag(repo, fingerprint_tag(fingerprint))
    output_commit = hook.get_commit(repo, merged).parents[1]
    hook.create_branch(repo, f"{plan.stale_prefix}try1", output_commit)
    assert operator.find_existing_output(plan) == merged
    assert hook.resolve_commit_id(repo, fingerprint_tag(fingerprint)) == merged  # tagged now


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


def test_a_run_that_runs_again_publishes_on_top_of_its_own_branch_after_main_moved(
    hook: LakeFSHook, repo_pair: tuple[str, str], airflow_metadata_db: str
) -> None:
    """A cleared run (or one backfilled again) whose own branch exists, made from an older ``main``."""
    data, models = repo_pair
    commit_file(hook, data, "main", "data/part-1.csv", "a,b\n1,2\n")
    commit_file(hook, models, "main", "model/training_data-0.txt", "production model")
    dag_id = _train_dag(data, models, publish_to="run_branch")
    home = session_home()
    dag_file = home.dags_folder / f"{dag_id}.py"
    try:
        first = _run(dag_id, datetime.now(timezone.utc))
        assert first.state == "success", first.output[-4000:]
        run_id = manual_run_id(first.output)
        assert run_id, first.output[-3000:]
        (branch,) = [b for b in hook.list_branches(models, "run-") if dag_id in b]
        published = hook.get_branch_head(models, branch)
        production = commit_file(hook, models, "main", "model/training_data-0.txt", "a newer production model")
        # the same task of the same DAG run again, with other work (another command: another fingerprint)
        dag_file.write_text(dag_file.read_text().replace(COPY_JOB, f'{COPY_JOB}", "--tag", "again'))
        code, output = run_task_again(dag_id, "train", run_id, home, timeout=600)
    finally:
        remove_dag(dag_id)
    assert code == 0, output[-4000:]
    head = hook.get_commit(models, branch)
    assert head.id != published, output[-4000:]  # before the fix: "Cannot create branch ...: it already exists"
    assert "made by an earlier run of it" in output
    assert hook.is_ancestor(models, published, branch)  # on top of the first output, not instead of it
    assert head.metadata["mlrepo.run_id"] == run_id
    assert hook.get_branch_head(models, "main") == production.id
