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
