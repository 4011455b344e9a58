"""``LakeFSRevertOperator`` decisions, with a fake lakeFS hook (the real revert is in the integration and e2e tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlrepo.exceptions import CommitNotAncestorError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit
from airflow_mlrepo.operators.revert import REVERTED_COMMIT, LakeFSRevertOperator


def commit(cid: str, parents: tuple[str, ...] = ("p",), **metadata: str) -> LakeFSCommit:
    return LakeFSCommit(
        id=cid, parents=parents, committer="me", message=f"msg {cid}", creation_date=0, metadata=metadata
    )


@dataclass
class FakeHook:
    commits: dict[str, LakeFSCommit]
    log: list[LakeFSCommit]
    ancestors: set[str]
    reverts: list[dict[str, Any]] = field(default_factory=list)
    settings: Any = field(default_factory=lambda: SimpleNamespace(browser_url="http://lakefs"))

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        return self.commits[ref]

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool:
        return commit_id in self.ancestors

    def log_commits(self, repository: str, ref: str, **_: Any) -> list[LakeFSCommit]:
        return self.log

    def revert(self, repository: str, branch: str, ref: str, **kwargs: Any) -> LakeFSCommit:
        self.reverts.append({"ref": ref, **kwargs})
        return commit("new-head", metadata_key="x")


@dataclass
class FakeTI:
    dag_id: str = "iris_revert"
    task_id: str = "revert_model"
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run(operator: LakeFSRevertOperator, hook: FakeHook) -> tuple[dict[str, Any], FakeTI]:
    operator.__dict__["lakefs_hook"] = hook  # the cached_property's slot
    ti = FakeTI()
    return operator.execute({"ti": ti, "run_id": "manual__1"}), ti  # type: ignore[arg-type]


def test_reverts_the_branch_head_and_a_merge_relative_to_its_first_parent() -> None:
    head = commit("head", parents=("a", "b"))
    hook = FakeHook(commits={"main": head}, log=[head], ancestors={"head"})
    result, ti = run(LakeFSRevertOperator(task_id="revert_model", repository="models", branch="main"), hook)
    (call,) = hook.reverts
    assert call["ref"] == "head"
    assert call["parent_number"] == 1
    assert call["metadata"][REVERTED_COMMIT] == "head"
    assert call["metadata"]["mlrepo.run_id"] == "manual__1"
    assert result == {
        "repository": "models",
        "branch": "main",
        "reverted_commit_id": "head",
        "commit_id": "new-head",
        "reused": False,
    }
    assert ti.pushed["mlrepo_output_commit_url"] == "http://lakefs/repositories/models/commits/new-head"


def test_a_retry_returns_the_revert_it_already_made_instead_of_reverting_the_revert() -> None:
    earlier = commit(
        "revert-1",
        **{
            REVERTED_COMMIT: "bad",
            "mlrepo.dag_id": "iris_revert",
            "mlrepo.run_id": "manual__1",
            "mlrepo.task_id": "revert_model",
        },
    )
    hook = FakeHook(commits={"main": earlier}, log=[earlier], ancestors={"revert-1", "bad"})
    result, _ = run(LakeFSRevertOperator(task_id="revert_model", repository="models", branch="main"), hook)
    assert hook.reverts == []
    assert (result["reverted_commit_id"], result["commit_id"], result["reused"]) == ("bad", "revert-1", True)


def test_a_commit_outside_the_branch_history_is_refused_naming_repo_and_branch() -> None:
    other = commit("elsewhere", parents=("x",))
    hook = FakeHook(commits={"elsewhere": other}, log=[], ancestors=set())
    operator = LakeFSRevertOperator(task_id="t", repository="train", branch="main", commit="elsewhere")
    with pytest.raises(CommitNotAncestorError, match="branch 'main' of repository 'train'"):
        run(operator, hook)
    assert hook.reverts == []


def test_a_model_revert_reports_the_restored_model_and_its_revert_commit_and_records_its_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chain a prediction after a revert follows: revert commit -> revert run -> the restored
    model commit -> the training run that wrote it."""
    from airflow.sdk import Asset

    from airflow_mlrepo.lineage.ids import TaskLineageIds
    from airflow_mlrepo.operators import revert as revert_module
    from tests.openlineage_validation import validate_event

    trained = TaskLineageIds(
        "airflow",
        "iris_training.train",
        "01935b8e-0000-7000-8000-000000000001",
        "01935b8e-0000-7000-8000-000000000002",
        "iris_training",
    )
    revert_run = TaskLineageIds(
        "airflow",
        "iris_revert.revert_model",
        "01935b8e-0000-7000-8000-0000000000f1",
        "01935b8e-0000-7000-8000-0000000000f2",
        "iris_revert",
    )
    monkeypatch.setattr(revert_module, "task_lineage_ids", lambda _ti: revert_run)
    previous = "a" * 64
    bad = "b" * 64
    head = commit(bad, parents=(previous, "c" * 64))
    restored = commit(previous, **{"mlrepo.output_kind": "model", **trained.commit_metadata()})
    hook = FakeHook(commits={"main": head, bad: head, previous: restored}, log=[head], ancestors={bad})
    hook.revert = lambda repository, branch, ref, **kwargs: (  # type: ignore[method-assign]
        hook.reverts.append({"ref": ref, **kwargs}) or commit("d" * 64, parents=(bad,), **kwargs["metadata"])
    )
    operator = LakeFSRevertOperator(
        task_id="revert_model",
        repository="iris-models",
        branch="main",
        outlets=[Asset("lakefs://iris-models/main/model")],
    )
    run(operator, hook)
    (call,) = hook.reverts
    assert call["metadata"]["mlrepo.openlineage_run_id"] == revert_run.run_id  # readers find this run
    assert operator.get_openlineage_facets_on_start().outputs == []
    lineage = operator.get_openlineage_facets_on_complete(None)
    (restored_input,) = lineage.inputs
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("lakefs://iris-models", "main/model")
    assert output.facets["version"].datasetVersion == "d" * 64  # type: ignore[attr-defined]
    assert output.facets["datasetType"].datasetType == "MODEL"  # type: ignore[attr-defined]
    assert restored_input.facets["version"].datasetVersion == previous  # type: ignore[attr-defined]
    assert not restored_input.inputFacets  # Marquez would show input facets on the version
    pin = lineage.run_facets["mlrepo_pins"].pin_of(restored_input.namespace, restored_input.name)  # type: ignore[attr-defined]
    assert (pin.rule, pin.commitId, pin.producedBy.runId) == ("revert", previous, trained.run_id)
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde

    from airflow_mlrepo.lineage.facets import PRODUCER
    from airflow_mlrepo.lineage.marquez import registration_events

    event = Serde.to_dict(
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime="2026-11-01T00:10:00+00:00",
            run=Run(runId=revert_run.run_id, facets=lineage.run_facets),
            job=Job(namespace="airflow", name=revert_run.job_name),
            inputs=lineage.inputs,
            outputs=lineage.outputs,
            producer=PRODUCER,
        )
    )
    validate_event(event)
    (registration,) = registration_events(event)  # Marquez links the restored model to its training run
    assert registration["run"]["runId"] == trained.run_id


def test_a_training_data_revert_reports_its_datasets() -> None:
    previous, bad = "a" * 64, "b" * 64
    head = commit(bad, parents=(previous,))
    hook = FakeHook(
        commits={"main": head, bad: head, previous: commit(previous, parents=())}, log=[head], ancestors={bad}
    )
    operator = LakeFSRevertOperator(
        task_id="revert_training_data", repository="iris-train", branch="main", paths=["data/"]
    )
    run(operator, hook)
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.name, d.facets["version"].datasetVersion) for d in lineage.inputs] == [("main/data", previous)]  # type: ignore[attr-defined]
    assert [(d.name, d.facets["version"].datasetVersion) for d in lineage.outputs] == [("main/data", "new-head")]  # type: ignore[attr-defined]
