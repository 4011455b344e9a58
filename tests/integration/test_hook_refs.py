from __future__ import annotations

import pytest

from airflow_mlrepo.exceptions import LakeFSNotFoundError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.commits import commit_file
from tests.integration.conftest import LakeFSServer


def test_talks_to_the_real_lakefs(lakefs_server: LakeFSServer, hook: LakeFSHook) -> None:
    assert hook.server_version() == lakefs_server.version
    assert lakefs_server.version.startswith("v1.")
    ok, message = hook.test_connection()
    assert ok, message
    assert lakefs_server.version in message


def test_resolves_every_kind_of_ref_to_a_full_commit_id(hook: LakeFSHook, repo: str) -> None:
    first = commit_file(hook, repo, "main", "a.txt", "1")
    second = commit_file(hook, repo, "main", "a.txt", "2")
    third = commit_file(hook, repo, "main", "a.txt", "3")
    hook.create_tag(repo, "v1", second.id)

    assert hook.resolve_commit_id(repo, "main") == third.id
    assert hook.resolve_commit_id(repo, "main~1") == second.id
    assert hook.resolve_commit_id(repo, "main~2") == first.id
    assert hook.resolve_commit_id(repo, "main^1") == second.id
    assert hook.resolve_commit_id(repo, "v1") == second.id
    assert hook.resolve_commit_id(repo, first.id[:12]) == first.id
    assert hook.resolve_commit_id(repo, third.id) == third.id
    assert hook.get_branch_head(repo, "main") == third.id
    assert len(third.id) == 64


def test_unknown_ref_names_repository_and_ref(hook: LakeFSHook, repo: str) -> None:
    with pytest.raises(LakeFSNotFoundError) as err:
        hook.resolve_commit_id(repo, "no-such-branch")
    assert repo in str(err.value)
    assert "no-such-branch" in str(err.value)
    assert err.value.status == 404


def test_branch_head_of_missing_branch(hook: LakeFSHook, repo: str) -> None:
    assert hook.branch_exists(repo, "main")
    assert not hook.branch_exists(repo, "missing")
    with pytest.raises(LakeFSNotFoundError, match="missing"):
        hook.get_branch_head(repo, "missing")


def test_missing_repository_is_never_read_as_missing_branch(hook: LakeFSHook) -> None:
    with pytest.raises(LakeFSNotFoundError, match="no-such-repo-x"):
        hook.branch_exists("no-such-repo-x", "main")
