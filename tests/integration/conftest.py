"""Fixtures for the integration tier: the real lakeFS (and PostgreSQL, Marquez) of the local stack.

The session starts the stack (or reuses a running one) through ``mlrepo_devstack.stack``,
points the ``lakefs_default`` Airflow connection at it, and prints the lakeFS server version
so the log shows which real server the tier talked to. Each test that asks for ``repo`` gets
a fresh repository of its own, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.stack.state import StackSettings

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.conftest import REAL_SERVICES
from tests.secret_scan import SecretScan, local_stack_logs_dir, scan_of_local_stack


@dataclass(frozen=True)
class LakeFSServer:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    version: str

    def connection_json(self, **overrides: str) -> str:
        conn = {
            "conn_type": "lakefs",
            "host": self.endpoint,
            "login": self.access_key_id,
            "password": self.secret_access_key,
        }
        conn.update(overrides)
        return json.dumps(conn)


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    stack.up(["postgres", "lakefs", "marquez"])
    return stack.read_env()


@dataclass(frozen=True)
class MarquezServer:
    """The Marquez of the stack: its own, or the external one named by ``MLREPO_MARQUEZ_URL``."""

    url: str
    api_key: str | None
    managed: str  # "stack" (started by the stack: it can be stopped) or "external"

    @property
    def external(self) -> bool:
        return self.managed == "external"

    def http_transport(self) -> dict[str, object]:
        """OpenLineage ``http`` transport options posting to this Marquez (with its API key)."""
        from mlrepo_devstack.stack.marquez import http_transport_options

        return http_transport_options(self.url, self.api_key)


@pytest.fixture(scope="session")
def marquez_server(stack_env: dict[str, str]) -> MarquezServer:
    """The running Marquez of the stack; the test skips, with the stack's reason, when there is none."""
    url = stack_env.get("MARQUEZ_URL")
    if not url:
        pytest.skip(f"Marquez is not running in the local stack: {stack_env.get('MARQUEZ_STATUS', 'unknown')}")
    managed = stack_env.get("MARQUEZ_MANAGED", "stack")
    REAL_SERVICES["Marquez"] = f"{url} ({'external: MLREPO_MARQUEZ_URL' if managed == 'external' else 'the stack'})"
    return MarquezServer(url=url, api_key=stack_env.get("MARQUEZ_API_KEY") or None, managed=managed)


@pytest.fixture(scope="session")
def lakefs_server(stack_env: dict[str, str]) -> LakeFSServer:
    os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack_env["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    hook = LakeFSHook()
    version = hook.server_version()
    REAL_SERVICES["lakeFS"] = f"{version} at {hook.settings.endpoint}"
    return LakeFSServer(
        endpoint=stack_env["LAKEFS_ENDPOINT"],
        access_key_id=stack_env["LAKEFS_ACCESS_KEY_ID"],
        secret_access_key=stack_env["LAKEFS_SECRET_ACCESS_KEY"],
        version=version,
    )


@pytest.fixture
def hook(lakefs_server: LakeFSServer) -> LakeFSHook:
    return LakeFSHook()


@pytest.fixture
def repo(hook: LakeFSHook) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    hook.create_repository(name, f"local://{name}")
    yield name
    hook.delete_repository(name, missing_ok=True)


@pytest.fixture
def repo_pair(hook: LakeFSHook) -> Iterator[tuple[str, str]]:
    """Two fresh repositories (say, data and models), deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"a-{suffix}", f"b-{suffix}")
    for name in names:
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names:
        hook.delete_repository(name, missing_ok=True)


@pytest.fixture(scope="session")
def airflow_metadata_db() -> str:
    """Migrate the session's own Airflow metadata DB (SQLite in the test AIRFLOW_HOME) for dag.test()."""
    import subprocess
    import sys
    from pathlib import Path

    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return os.environ["AIRFLOW_HOME"]


# ------------------------------------------------------------------ the stack's Kubernetes cluster


@pytest.fixture(scope="session")
def kubernetes_cluster(lakefs_server: LakeFSServer) -> StackSettings:
    """The stack's cluster, Ready (started if needed, once per session): the settings it runs with."""
    import time

    started = time.monotonic()
    status = stack.up(["lakefs", "kubernetes"])[stack.KUBERNETES]
    REAL_SERVICES["Kubernetes"] = f"{status.detail} ({time.monotonic() - started:.0f}s to Ready)"
    return StackSettings.from_environ()


@pytest.fixture(scope="module")
def kube(lakefs_server: LakeFSServer, kubernetes_cluster: StackSettings) -> Iterator[Any]:
    """A ``CoreV1Api`` of the stack's cluster; ``kubernetes_default`` and ``lakefs_default`` (with
    ``lakefs_endpoint_in_pod``) point at it for this process and the Airflow processes it starts, for the
    test module that asks for it only: the variables are restored after it."""
    from kubernetes import client as k8s_client
    from mlrepo_devstack.stack import kubernetes as cluster

    settings = kubernetes_cluster
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(cluster.airflow_connection(settings)))
        environment.setenv(
            "AIRFLOW_CONN_LAKEFS_DEFAULT",
            lakefs_server.connection_json(
                extra=json.dumps({"lakefs_endpoint_in_pod": cluster.lakefs_endpoint_in_pod(settings)})
            ),
        )
        yield k8s_client.CoreV1Api(cluster.api_client(settings))


@pytest.fixture(scope="module")
def secret_scan() -> SecretScan:
    return scan_of_local_stack()


def assert_no_secret_on_the_cluster(kube: Any, secret_scan: SecretScan) -> None:
    """No secret of the stack in any pod spec, in the stack's logs (the pods' output, the API server's
    audit log of every pod spec sent) or in what ``secret_scan`` was given so far (issue 18)."""
    from mlrepo_devstack.stack import kubernetes as cluster

    secret_scan.pods(kube)
    secret_scan.files("stack log", [local_stack_logs_dir()])
    assert secret_scan.scanned.get("stack log"), "no stack log was scanned"
    assert cluster.audit_log_path(StackSettings.from_environ()).exists(), "the API server wrote no audit log"
    assert not secret_scan.hits, secret_scan.report()
