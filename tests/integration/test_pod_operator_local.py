"""The training and inference operators under the local runner, run by the real `airflow dags test`,
against the real lakeFS."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX
from tests.integration.commits import commit_file
from tests.integration.conftest import LakeFSServer
from tests.integration.dag_runs import (
    COPY_JOB,
    dags_test_command,
    manual_run_id,
    remove_dag,
    run_dag,
    run_task_again,
    session_home,
    write_dag,
)

MLREPO = str(Path(sys.executable).with_name("mlrepo"))


@pytest.fixture
def repos(hook: LakeFSHook) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    data, models = f"data-{suffix}", f"models-{suffix}"
    for name in (data, models):
        hook.create_repository(name, f"local://{name}")
    yield data, models
    for name in (data, models):
        hook.delete_repository(name, missing_ok=True)


def _attempt_branches(hook: LakeFSHook, repo: str) -> list[str]:
    return hook.list_branches(repo, ATTEMPT_BRANCH_PREFIX)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def test_train_commits_output_with_provenance(
    hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str, lakefs_server: LakeFSServer
) -> None:
    data, models = repos
    pinned = commit_file(hook, data, "main", "data/part-1.csv", "a,b\n1,2\n")
    when = _now()
    later = commit_file(hook, data, "main", "data/part-2.csv", "3,4\n", date=int(when.timestamp()) + 3600)
    models_head = hook.get_branch_head(models, "main")

    result = run_dag(
        "train",
        when,
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        hyperparameters={"C": 0.5},
        image="example/train:1",
        cmds=["python", COPY_JOB],
    )
    assert result.state == "success", result.output[-4000:]

    head = hook.get_commit(models, "main")
    assert head.parents[0] == models_head  # merged on top of what the target had
    meta = head.metadata
    # pinned as of the run's data interval end: the later commit is not read
    assert meta["mlrepo.input.training_data"] == f"lakefs://{data}/{pinned.id}/data/"
    assert later.id not in str(meta)
    assert meta["mlrepo.input.training_data.rule"] == "as_of"
    assert meta["mlrepo.input.training_data.source"] == f"lakefs://{data}/main/data/"
    assert meta["mlrepo.dag_id"] == result.dag_id
    assert meta["mlrepo.task_id"] == "train"
    assert meta["mlrepo.try_number"] == "1"
    assert meta["mlrepo.image"] == "example/train:1"
    assert meta["mlrepo.runner"] == "local"
    assert meta["mlrepo.output_kind"] == "model"
    assert meta["mlrepo.hyperparameters"] == '{"C": 0.5}'
    assert meta["::lakefs::Airflow::dag_id"] == result.dag_id
    assert meta["::lakefs::Airflow::url[url:ui]"].endswith("/tasks/train")
    assert meta["mlrepo.run_id"] == meta["::lakefs::Airflow::dag_run_id"]
    # enums by value, as Airflow's REST API and UI show them (not "DagRunType.MANUAL")
    assert meta["::lakefs::Airflow::run_type"] == "manual"
    report = subprocess.run(
        [MLREPO, "provenance", f"lakefs://{models}/{head.id}/model/training_data-0.txt", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["airflow"]["run_type"] == "manual"
    for value in meta.values():
        assert lakefs_server.secret_access_key not in value
        assert lakefs_server.access_key_id not in value
    assert lakefs_server.secret_access_key not in result.output
    # the container read exactly the pinned commit, and its output streamed into the task log
    assert hook.read_object_bytes(models, "main", "model/training_data-0.txt") == b"A,B\n1,2\n"
    assert "[container] copy_job: done" in result.output
    assert _attempt_branches(hook, models) == []


def test_container_failure_leaves_target_untouched_and_reports_last_lines(
    hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str
) -> None:
    data, models = repos
    commit_file(hook, data, "main", "data/x.csv", "x")
    before = commit_file(hook, models, "main", "model/old.txt", "previous model").id

    result = run_dag(
        "train",
        _now(),
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        image="example/train:1",
        cmds=["python", COPY_JOB, "--fail-after-write"],
    )
    assert result.state == "failed"
    assert hook.get_branch_head(models, "main") == before
    assert hook.read_object_bytes(models, "main", "model/old.txt") == b"previous model"
    assert _attempt_branches(hook, models) == []
    assert "exited with code 3" in result.output
    assert "last" in result.output
    assert "failing on purpose after writing" in result.output
    # the failed task reads no output-commit XCom it never pushed (its extra link knows it made none)
    assert "XCom not found" not in result.output, result.output[-3000:]


def test_container_that_writes_nothing_fails_clearly(
    hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str
) -> None:
    data, models = repos
    commit_file(hook, data, "main", "data/x.csv", "x")
    before = hook.get_branch_head(models, "main")
    result = run_dag(
        "train",
        _now(),
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        image="example/train:1",
        cmds=["python", COPY_JOB, "--write-nothing"],
    )
    assert result.state == "failed"
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []
    assert "wrote nothing" in result.output


@pytest.mark.parametrize(
    ("input_uri", "output_uri", "fragment"),
    [
        ("lakefs://{data}/main/data/", "lakefs://{models}/v1/model/", "output branch 'v1' does not exist"),
        ("lakefs://{data}/main/data/", "lakefs://{models}/main~1/model/", "must be on a branch"),
        ("lakefs://{data}/no-such-branch/data/", "lakefs://{models}/main/model/", "no-such-branch"),
        ("lakefs://no-such-repo-z/main/data/", "lakefs://{models}/main/model/", "no-such-repo-z"),
        ("s3://{data}/main/data/", "lakefs://{models}/main/model/", "input 'training_data'"),
    ],
)
def test_bad_input_fails_before_any_container_starts(
    hook: LakeFSHook,
    repos: tuple[str, str],
    airflow_metadata_db: str,
    input_uri: str,
    output_uri: str,
    fragment: str,
) -> None:
    data, models = repos
    commit_file(hook, data, "main", "data/x.csv", "x")
    hook.create_tag(models, "v1", "main")
    before = hook.get_branch_head(models, "main")
    marker = f"container-started-{uuid.uuid4().hex}"
    result = run_dag(
        "train",
        _now(),
        inputs={"training_data": input_uri.format(data=data)},
        output_location=output_uri.format(models=models),
        image="example/train:1",
        cmds=[sys.executable, "-c", f"print('{marker}')"],
    )
    assert result.state == "failed"
    assert fragment in result.output
    assert marker not in result.output
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []


def test_inference_model_policies(hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str) -> None:
    data, models = repos
    commit_file(hook, data, "main", "input/a.csv", "in")
    old_model = commit_file(hook, models, "main", "model/m.txt", "model-1")
    when = _now()
    new_model = commit_file(hook, models, "main", "model/m.txt", "model-2", date=int(when.timestamp()) + 60)
    hook.create_branch(models, "predictions", "main")
    hook.create_tag(models, "model-v1", old_model.id)

    def predict(version: str) -> dict[str, str]:
        result = run_dag(
            "predict",
            when,
            inputs={"input_data": f"lakefs://{data}/main/input/"},
            model=f"lakefs://{models}/main/model/",
            model_version=version,
            output_location=f"lakefs://{models}/predictions/out/",
            image="example/predict:1",
            cmds=["python", COPY_JOB],
        )
        assert result.state == "success", result.output[-4000:]
        return dict(hook.get_commit(models, "predictions").metadata)

    latest = predict("latest")
    assert latest["mlrepo.model.commit_id"] == new_model.id
    assert latest["mlrepo.model.policy"] == "latest"
    assert hook.read_object_bytes(models, "predictions", "out/model-0.txt") == b"MODEL-2"

    as_of = predict("as_of")
    assert as_of["mlrepo.model.commit_id"] == old_model.id
    assert as_of["mlrepo.model.policy"] == "as_of"
    assert hook.read_object_bytes(models, "predictions", "out/model-0.txt") == b"MODEL-1"

    explicit = predict("model-v1")
    assert explicit["mlrepo.model.commit_id"] == old_model.id
    assert explicit["mlrepo.model.policy"] == "explicit:model-v1"
    assert explicit["mlrepo.model"] == f"lakefs://{models}/{old_model.id}/model/"


def test_output_prefix_is_replaced_not_merged(
    hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str
) -> None:
    data, models = repos
    commit_file(hook, data, "main", "data/x.csv", "x")
    hook.upload_object(models, "main", "model/stale-from-old-run.bin", b"old")
    hook.upload_object(models, "main", "elsewhere/keep.txt", b"keep")
    hook.commit(models, "main", "old state")
    result = run_dag(
        "train",
        _now() + timedelta(seconds=1),
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        image="example/train:1",
        cmds=["python", COPY_JOB],
    )
    assert result.state == "success", result.output[-4000:]
    assert sorted(o.path for o in hook.list_objects(models, "main", "model/")) == [
        "model/run.json",
        "model/training_data-0.txt",
    ]
    assert hook.object_exists(models, "main", "elsewhere/keep.txt")


def test_a_retry_that_finds_its_output_published_removes_the_branch_the_killed_try_left(
    hook: LakeFSHook, repos: tuple[str, str], airflow_metadata_db: str
) -> None:
    """A try killed after its merge but before it deleted its attempt branch: the retry reuses the
    output (no second commit) and removes that branch (the fault trials hit this once in CI)."""
    data, models = repos
    commit_file(hook, data, "main", "data/x.csv", "x")
    home = session_home()
    dag_id = write_dag(
        "train",
        home,
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/model/",
        image="example/train:1",
        cmds=["python", COPY_JOB],
    )
    try:
        first = subprocess.run(
            dags_test_command(dag_id, _now()), env=home.env(), capture_output=True, text=True, timeout=300, check=False
        )
        output = first.stdout + first.stderr
        run_id = manual_run_id(output)
        attempt = re.search(r"Attempt branch (\S+) created from", output)
        assert first.returncode == 0, output[-4000:]
        assert run_id, output[-4000:]
        assert attempt, output[-4000:]
        published = hook.get_commit(models, "main")
        # what the killed try leaves: its attempt branch, at the output commit it merged
        hook.create_branch(models, attempt.group(1), published.parents[1])

        code, retry = run_task_again(dag_id, "train", run_id, home, timeout=300)

        assert code == 0, retry[-4000:]
        assert "already exists" in retry, retry[-4000:]
        assert f"Removing branch {attempt.group(1)} left by an earlier attempt" in retry, retry[-4000:]
        assert hook.get_branch_head(models, "main") == published.id  # reused: no second commit
        assert _attempt_branches(hook, models) == []
    finally:
        remove_dag(dag_id, home)
