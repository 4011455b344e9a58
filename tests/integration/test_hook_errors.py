"""Bad input and broken environments end in typed errors that name what is wrong."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from mlrepo_devstack import stack

from airflow_mlrepo.exceptions import LakeFSAuthError, LakeFSNotFoundError, LakeFSUnavailableError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.conftest import LakeFSServer


@pytest.fixture
def conn_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")}
    yield
    for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        del os.environ[key]
    os.environ.update(saved)


def test_unknown_repository(hook: LakeFSHook) -> None:
    with pytest.raises(LakeFSNotFoundError) as err:
        hook.get_commit("no-such-repository", "main")
    assert "no-such-repository" in str(err.value)
    assert "repository not found" in str(err.value)
    with pytest.raises(LakeFSNotFoundError, match="no-such-repository"):
        hook.commits_since("no-such-repository", "main", "main")


def test_wrong_credentials_name_the_connection(lakefs_server: LakeFSServer, conn_env: None) -> None:
    os.environ["AIRFLOW_CONN_LAKEFS_WRONG"] = lakefs_server.connection_json(password="not-the-secret")
    hook = LakeFSHook("lakefs_wrong")
    with pytest.raises(LakeFSAuthError) as err:
        hook.get_branch_head("any-repo", "main")
    assert err.value.status == 401
    assert "lakefs_wrong" in str(err.value)
    assert "not-the-secret" not in str(err.value)
    ok, message = hook.test_connection()
    assert not ok
    assert "401" in message
    assert "not-the-secret" not in message


def test_nothing_listening_is_unavailable_and_names_the_endpoint(lakefs_server: LakeFSServer, conn_env: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ["AIRFLOW_CONN_LAKEFS_NOWHERE"] = lakefs_server.connection_json(host=f"http://127.0.0.1:{port}")
    hook = LakeFSHook("lakefs_nowhere")
    with pytest.raises(LakeFSUnavailableError) as err:
        hook.get_branch_head("some-repo", "main")
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "some-repo" in str(err.value)


@pytest.mark.lakefs_outage
def test_lakefs_stopped_then_restarted(hook: LakeFSHook, repo: str) -> None:
    head = hook.get_branch_head(repo, "main")
    stack.down(["lakefs"])
    try:
        with pytest.raises(LakeFSUnavailableError) as err:
            hook.get_branch_head(repo, "main")
        assert hook.settings.endpoint in str(err.value)
        assert repo in str(err.value)
    finally:
        stack.up(["lakefs"])
    # the same hook (and its pooled client) works again once lakeFS is back
    assert hook.get_branch_head(repo, "main") == head
