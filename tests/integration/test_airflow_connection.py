"""The lakeFS connection as Airflow users create it: env URI/JSON, `airflow connections add`, CLI test."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.conftest import LakeFSServer

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture
def airflow_env(stack_env: dict[str, str], lakefs_server: LakeFSServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An Airflow CLI environment on the stack's PostgreSQL metadata database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = stack_env["AIRFLOW_HOME"]
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = stack_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    return env


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_provider_is_listed(airflow_env: dict[str, str]) -> None:
    result = _airflow(airflow_env, "providers", "list", "--output", "plain")
    assert result.returncode == 0, result.stderr
    assert "airflow-mlrepo" in result.stdout


def test_connection_from_env_uri(lakefs_server: LakeFSServer, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = urllib.parse.urlsplit(lakefs_server.endpoint)
    uri = (
        f"lakefs://{urllib.parse.quote(lakefs_server.access_key_id, safe='')}:"
        f"{urllib.parse.quote(lakefs_server.secret_access_key, safe='')}@{endpoint.netloc}/http"
    )
    monkeypatch.setenv("AIRFLOW_CONN_LAKEFS_URI", uri)
    hook = LakeFSHook("lakefs_uri")
    assert hook.settings.endpoint == lakefs_server.endpoint
    ok, message = hook.test_connection()
    assert ok, message


def test_connection_from_env_json(lakefs_server: LakeFSServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LAKEFS_JSON", lakefs_server.connection_json())
    ok, message = LakeFSHook("lakefs_json").test_connection()
    assert ok, message


def _add_connection(env: dict[str, str], conn_id: str, server: LakeFSServer, password: str) -> None:
    _airflow(env, "connections", "delete", conn_id)
    added = _airflow(
        env,
        "connections",
        "add",
        conn_id,
        "--conn-type",
        "lakefs",
        "--conn-host",
        server.endpoint,
        "--conn-login",
        server.access_key_id,
        "--conn-password",
        password,
    )
    assert added.returncode == 0, added.stderr


def test_connection_added_with_the_cli_is_tested_by_the_cli(
    airflow_env: dict[str, str], lakefs_server: LakeFSServer
) -> None:
    good, bad = "lakefs_cli_good", "lakefs_cli_bad"
    _add_connection(airflow_env, good, lakefs_server, lakefs_server.secret_access_key)
    _add_connection(airflow_env, bad, lakefs_server, "wrong-secret-value")
    try:
        tested = _airflow(airflow_env, "connections", "test", good)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "Connection success!" in tested.stdout
        assert lakefs_server.secret_access_key not in tested.stdout + tested.stderr

        failed = _airflow(airflow_env, "connections", "test", bad)
        output = failed.stdout + failed.stderr
        assert "Connection failed!" in output
        assert "401" in output
        assert bad in output
        assert "wrong-secret-value" not in output
    finally:
        _airflow(airflow_env, "connections", "delete", good)
        _airflow(airflow_env, "connections", "delete", bad)
