"""Commits, branches, merges, reverts and tags against the real lakeFS."""

from __future__ import annotations

import pytest

from airflow_mlrepo.exceptions import (
    InvalidLakeFSLocationError,
    LakeFSBadInputError,
    LakeFSConflictError,
    LakeFSNotFoundError,
)
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.commits import commit_file


def test_commit_with_metadata_round_trips(hook: LakeFSHook, repo: str) -> None:
    hook.upload_object(repo, "main", "model.pkl", b"weights")
    metadata = {"::lakefs::Airflow::url[url:ui]": "http://airflow/x", "input_commit": "abc", "empty": ""}
    commit = hook.commit(repo, "main", "train model", metadata)

    stored = hook.get_commit(repo, commit.id)
    assert stored.metadata == metadata
    assert stored.message == "train model"
    assert hook.get_branch_head(repo, "main") == commit.id


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"n": 3}, "key 'n'"),
        ({"ok": "x", "flag": True}, "key 'flag'"),
        ({"": "x"}, "key ''"),
        ({" padded": "x"}, "key ' padded'"),
        ({"tab\tkey": "x"}, "control"),
        ({"k": None}, "key 'k'"),
    ],
)
def test_bad_metadata_is_rejected_before_lakefs_is_called(
    hook: LakeFSHook, repo: str, metadata: dict[str, object], fragment: str
) -> None:
    hook.upload_object(repo, "main", "staged.txt", b"x")
    head = hook.get_branch_head(repo, "main")
    calls = hook.api_calls
    with pytest.raises(LakeFSBadInputError, match="metadata") as err:
        hook.commit(repo, "main", "msg", metadata)  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert hook.api_calls == calls
    assert hook.get_branch_head(repo, "main") == head


def test_create_branch_is_idempotent_and_refuses_a_different_source(hook: LakeFSHook, repo: str) -> None:
    first = commit_file(hook, repo, "main", "a", "1")
    assert hook.create_branch(repo, "work", first.id) == first.id
    assert hook.create_branch(repo, "work", "main") == first.id  # same commit: no-op
    commit_file(hook, repo, "main", "a", "2")
    with pytest.raises(LakeFSConflictError, match="already exists"):
        hook.create_branch(repo, "work", "main")
    assert hook.get_branch_head(repo, "work") == first.id


def test_invalid_names_fail_before_any_call(hook: LakeFSHook, repo: str) -> None:
    calls = hook.api_calls
    with pytest.raises(InvalidLakeFSLocationError, match="branch name 'bad/name'"):
        hook.create_branch(repo, "bad/name", "main")
    with pytest.raises(InvalidLakeFSLocationError, match="repository name 'Bad_Repo'"):
        hook.get_branch_head("Bad_Repo", "main")
    with pytest.raises(InvalidLakeFSLocationError, match="tag name"):
        hook.create_tag(repo, "bad tag", "main")
    with pytest.raises(InvalidLakeFSLocationError, match="path"):
        hook.stat_object(repo, "main", "/absolute")
    assert hook.api_calls == calls


def test_delete_branch(hook: LakeFSHook, repo: str) -> None:
    hook.create_branch(repo, "tmp", "main")
    hook.delete_branch(repo, "tmp")
    assert not hook.branch_exists(repo, "tmp")
    hook.delete_branch(repo, "tmp", missing_ok=True)
    with pytest.raises(LakeFSNotFoundError, match="tmp"):
        hook.delete_branch(repo, "tmp")


def test_merge_conflict_leaves_destination_untouched_and_strategy_resolves(hook: LakeFSHook, repo: str) -> None:
    commit_file(hook, repo, "main", "model.txt", "base")
    hook.create_branch(repo, "candidate", "main")
    commit_file(hook, repo, "candidate", "model.txt", "candidate")
    main_head = commit_file(hook, repo, "main", "model.txt", "main").id

    with pytest.raises(LakeFSConflictError) as err:
        hook.merge(repo, "candidate", "main", message="merge")
    assert "candidate" in str(err.value)
    assert repo in str(err.value)
    assert hook.get_branch_head(repo, "main") == main_head

    with pytest.raises(LakeFSBadInputError, match="strategy"):
        hook.merge(repo, "candidate", "main", strategy="theirs")

    merged = hook.merge(repo, "candidate", "main", strategy="source-wins", metadata={"why": "test"})
    assert hook.get_branch_head(repo, "main") == merged
    assert hook.read_object_bytes(repo, "main", "model.txt") == b"candidate"
    assert hook.get_commit(repo, merged).metadata == {"why": "test", ".lakefs.merge.strategy": "source-wins"}


def test_revert_commit_and_merge_commit(hook: LakeFSHook, repo: str) -> None:
    commit_file(hook, repo, "main", "model.txt", "good")
    bad = commit_file(hook, repo, "main", "model.txt", "bad")

    reverted = hook.revert(repo, "main", bad.id)
    assert reverted.parents == (bad.id,)
    assert hook.read_object_bytes(repo, "main", "model.txt") == b"good"

    hook.create_branch(repo, "feature", "main")
    commit_file(hook, repo, "feature", "extra.txt", "extra")
    merge_id = hook.merge(repo, "feature", "main", message="merge")
    with pytest.raises(LakeFSBadInputError, match="merge commit"):
        hook.revert(repo, "main", merge_id)
    hook.revert(repo, "main", merge_id, parent_number=1)
    assert not hook.object_exists(repo, "main", "extra.txt")


def test_create_tag_is_idempotent(hook: LakeFSHook, repo: str) -> None:
    first = commit_file(hook, repo, "main", "a", "1")
    assert hook.create_tag(repo, "model-v1", first.id) == first.id
    assert hook.create_tag(repo, "model-v1", first.id) == first.id
    commit_file(hook, repo, "main", "a", "2")
    with pytest.raises(LakeFSConflictError, match="model-v1"):
        hook.create_tag(repo, "model-v1", "main")
