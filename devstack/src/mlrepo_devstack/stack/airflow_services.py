"""The stack's Airflow: api-server, scheduler, dag-processor and triggerer on the stack's PostgreSQL.

Optional: ``stack.up()`` without arguments does not start it; ``stack.up(["airflow"])`` (or
``mlrepo stack up --only airflow``) does, after PostgreSQL and the migrated ``airflow`` database.

* ``AIRFLOW_HOME`` is ``<state>/airflow`` (the one the ``airflow-db`` component migrates); the DAGs
  folder is ``$MLREPO_DAGS_FOLDER``, default ``<state>/airflow/dags``; the api-server listens on
  ``127.0.0.1:$MLREPO_AIRFLOW_PORT`` (default 8080).
* ``LocalExecutor``, ``SimpleAuthManager`` with ``simple_auth_manager_all_admins=True`` (no login:
  a local development stack), examples off, the DAGs folder re-listed every 5 s and files re-parsed
  every 10 s, triggerer capacity 2000.
* ``[mlrepo] runner``: ``local`` (the default: operators run their container command as a local
  process) or, with ``MLREPO_RUNNER=kubernetes``, ``kubernetes``: pods on the stack's cluster
  (component ``kubernetes``), through the connection ``kubernetes_default`` (the cluster's admin
  kubeconfig, namespace ``default``, the XCom sidecar image built here), with the lakeFS
  connection's extra ``lakefs_endpoint_in_pod`` (the bridge gateway). ``MLREPO_DEFERRABLE=true``
  sets ``[operators] default_deferrable``: the same DAGs then run their pods deferrably.
* DAG import timeouts a slow, loaded machine survives: ``[core] dagbag_import_timeout`` 300 s and
  ``[dag_processor] dag_file_processor_timeout`` 360 s (Airflow's defaults are 30 s and 50 s).
* OpenLineage is on in every component (:func:`lineage_environment`): namespace
  :data:`LINEAGE_NAMESPACE`, the provider's outbox transport (``<state>/airflow/mlrepo-lineage-outbox``)
  delivering to the stack's Marquez (its own or the external ``MLREPO_MARQUEZ_URL``) when it runs, and
  ``[mlrepo] marquez_url`` set for the "Marquez run" link. Without a running Marquez the events are
  kept in the outbox (``mlrepo lineage replay`` delivers them later).
* The four components share a generated JWT secret and Fernet key (``secrets.env``), the lakeFS
  connection ``lakefs_default`` and the lakeFS webhook secret (``[mlrepo] webhook_secret``). If the
  stack's lakeFS runs without that secret in its environment (it was started by an older version
  of this stack), it is restarted once so its actions can authenticate to the receiver.
* Each component is started detached with its own pid file and log (``<state>/logs/airflow-*.log``);
  health is ``GET /api/v2/monitor/health`` (metadata DB, scheduler, triggerer and dag-processor
  all ``healthy``). A marker records the configuration it was started with; an ``up`` with another
  configuration (port, DAGs folder, Airflow version) restarts it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack import lakefs, marquez
from mlrepo_devstack.stack.airflow_db import airflow_executable, airflow_home, airflow_version, connection_url
from mlrepo_devstack.stack.health import http_request, port_is_open, wait_until
from mlrepo_devstack.stack.processes import (
    is_alive,
    kill_process,
    log_tail,
    read_pid_file,
    start_detached,
    stop_process,
)
from mlrepo_devstack.stack.state import LOCALHOST, format_env_text, parse_env_text
from mlrepo_devstack.stack.status import AIRFLOW, LAKEFS, ComponentStatus

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

#: Airflow CLI commands, in start order (the api-server first: the others talk to it).
SERVICES: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Components ``/api/v2/monitor/health`` must report healthy.
HEALTH_COMPONENTS: tuple[str, ...] = ("metadatabase", "scheduler", "triggerer", "dag_processor")
START_TIMEOUT = 300.0
MARKER_FILENAME = ".mlrepo-services"
#: Seconds a DAG file's import may take (``[core] dagbag_import_timeout``, Airflow's default 30).
DAGBAG_IMPORT_TIMEOUT = 300
#: Seconds one DAG-file processor may run (``[dag_processor] dag_file_processor_timeout``, default 50).
DAG_FILE_PROCESSOR_TIMEOUT = 360
#: Triggers one triggerer runs at once (Airflow's default is 1000; benchmarks use 1000 + others).
TRIGGERER_CAPACITY = 2000


def api_endpoint(settings: StackSettings) -> str:
    return f"http://{LOCALHOST}:{settings.airflow_port}"


def dags_folder(settings: StackSettings) -> Path:
    return settings.dags_folder or airflow_home(settings) / "dags"


def _pid_path(settings: StackSettings, service: str) -> Path:
    return settings.pid_path(f"airflow-{service}")


def _log_path(settings: StackSettings, service: str) -> Path:
    return settings.log_path(f"airflow-{service}")


#: Offsets of the worker and triggerer log-server ports from the api-server port (8080 + 713 = 8793).
WORKER_LOG_PORT_OFFSET = 713
TRIGGER_LOG_PORT_OFFSET = 714


RUNNERS = ("local", "kubernetes")


def runner() -> str:
    """``MLREPO_RUNNER`` (``local`` or ``kubernetes``), default ``local``."""
    value = os.environ.get("MLREPO_RUNNER", "").strip().lower() or "local"
    if value not in RUNNERS:
        raise StackError(f"MLREPO_RUNNER={value!r}: use one of {', '.join(RUNNERS)}")
    return value


def deferrable() -> bool:
    """``MLREPO_DEFERRABLE``: whether operators default to deferrable mode (``[operators] default_deferrable``)."""
    return os.environ.get("MLREPO_DEFERRABLE", "").strip().lower() in ("1", "true", "yes")


def _kubernetes_settings(settings: StackSettings) -> tuple[dict[str, str], dict[str, str]]:
    """Extra environment and lakeFS connection extras for ``runner = kubernetes``."""
    from mlrepo_devstack.stack import kubernetes

    env = {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(kubernetes.airflow_connection(settings)),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable()),
    }
    return env, {"lakefs_endpoint_in_pod": kubernetes.lakefs_endpoint_in_pod(settings)}


#: OpenLineage namespace of the stack's Airflow jobs.
LINEAGE_NAMESPACE = "mlrepo-stack"
OUTBOX_TRANSPORT = "airflow_mlrepo.lineage.outbox.OutboxTransport"
OUTBOX_DIR_NAME = "mlrepo-lineage-outbox"
#: The marker's ``LINEAGE_TO`` when no Marquez ran at start: events stay in the outbox.
_OUTBOX_ONLY = "outbox only"


def lineage_outbox(settings: StackSettings) -> Path:
    """Where the stack's Airflow keeps OpenLineage events until Marquez accepted them."""
    return airflow_home(settings) / OUTBOX_DIR_NAME


def lineage_target(settings: StackSettings) -> str | None:
    """The Marquez the stack's Airflow delivers lineage to: its URL when it runs, else None."""
    status = marquez.status(settings)
    return status.endpoint if status.state == "running" else None


def lineage_environment(settings: StackSettings, marquez_url: str | None) -> dict[str, str]:
    """``[openlineage]`` and ``[mlrepo] marquez_url`` of the components (OpenLineage on, outbox transport)."""
    transport: dict[str, Any] = {"type": OUTBOX_TRANSPORT, "outbox_dir": str(lineage_outbox(settings))}
    env = {"AIRFLOW__OPENLINEAGE__DISABLED": "False", "AIRFLOW__OPENLINEAGE__NAMESPACE": LINEAGE_NAMESPACE}
    if marquez_url is not None:
        transport["http"] = marquez.http_transport_options(marquez_url, settings.marquez_api_key)
        env["AIRFLOW__MLREPO__MARQUEZ_URL"] = marquez_url
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(transport)
    return env


def environment(settings: StackSettings, secrets: Mapping[str, str], marquez_url: str | None = None) -> dict[str, str]:
    """The environment of every component: the caller's minus any ``AIRFLOW*`` settings, plus ours.

    ``marquez_url``: where lineage is delivered (:func:`lineage_target`); None keeps it in the outbox.
    """
    base = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    endpoint = api_endpoint(settings)
    lakefs_endpoint = lakefs.endpoint(settings)
    pod_env, lakefs_extra = _kubernetes_settings(settings) if runner() == "kubernetes" else ({}, {})
    lakefs_connection: dict[str, object] = {
        "conn_type": "lakefs",
        "host": lakefs_endpoint,
        "login": secrets["LAKEFS_ACCESS_KEY_ID"],
        "password": secrets["LAKEFS_SECRET_ACCESS_KEY"],
    }
    if lakefs_extra:
        lakefs_connection["extra"] = lakefs_extra
    return {
        **pod_env,
        **base,
        "AIRFLOW_HOME": str(airflow_home(settings)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": connection_url(settings, secrets),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(settings)),
        "AIRFLOW__CORE__FERNET_KEY": secrets["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{endpoint}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__API__HOST": LOCALHOST,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": endpoint,
        "AIRFLOW__API__WORKERS": "1",
        # The worker's and the triggerer's log servers follow the api-server's port (8080 -> Airflow's
        # defaults 8793 and 8794), so that two stacks with different MLREPO_AIRFLOW_PORTs can run side by side.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_port + WORKER_LOG_PORT_OFFSET),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_port + TRIGGER_LOG_PORT_OFFSET),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Importing a DAG file that uses the provider takes seconds on an idle machine and far more on
        # a loaded two-core one (docs/benchmarks.md); Airflow's 30 s / 50 s defaults then fail the parse.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": str(DAGBAG_IMPORT_TIMEOUT),
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": str(DAG_FILE_PROCESSOR_TIMEOUT),
        # An asset watcher's trigger is registered on the parse after its asset became active:
        # re-parse every 10 s (default 30) so a new watcher starts within seconds.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
        "AIRFLOW__MLREPO__WEBHOOK_SECRET": secrets["MLREPO_WEBHOOK_SECRET"],
        # local: the training/inference operators run their container commands as local processes
        # of the worker (the example DAGs' images are installed in the venv); kubernetes: pods.
        "AIRFLOW__MLREPO__RUNNER": runner(),
        "AIRFLOW_CONN_LAKEFS_DEFAULT": json.dumps(lakefs_connection),
        "PYTHONUNBUFFERED": "1",
        **lineage_environment(settings, marquez_url),
    }


def _configuration(settings: StackSettings, marquez_url: str | None) -> dict[str, str]:
    """What the running components must have been started with to be reused."""
    return {
        "AIRFLOW_VERSION": airflow_version(),
        "PORT": str(settings.airflow_port),
        "DAGS_FOLDER": str(dags_folder(settings)),
        "RUNNER": runner(),
        "DEFERRABLE": str(deferrable()),
        "LINEAGE_TO": marquez_url or _OUTBOX_ONLY,
    }


def _marker_path(settings: StackSettings) -> Path:
    return airflow_home(settings) / MARKER_FILENAME


def _started_with(settings: StackSettings) -> dict[str, str]:
    try:
        return parse_env_text(_marker_path(settings).read_text(encoding="utf-8"))
    except (FileNotFoundError, StackError):
        return {}


def health(settings: StackSettings) -> dict[str, Any] | None:
    """The api-server's ``/api/v2/monitor/health`` answer, or None when it does not answer."""
    answer = http_request(f"{api_endpoint(settings)}/api/v2/monitor/health", timeout=3.0)
    if answer is None or answer.status != 200:
        return None
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unhealthy_components(report: Mapping[str, Any] | None) -> list[str]:
    """Names of the components the health report does not call healthy (all of them for None)."""
    if report is None:
        return list(HEALTH_COMPONENTS)
    return [
        name
        for name in HEALTH_COMPONENTS
        if not isinstance(report.get(name), dict) or report[name].get("status") != "healthy"
    ]


def _running_pids(settings: StackSettings) -> dict[str, int | None]:
    return {service: read_pid_file(_pid_path(settings, service)) for service in SERVICES}


def _running_status(settings: StackSettings, pids: Mapping[str, int | None], note: str = "") -> ComponentStatus:
    return ComponentStatus(
        AIRFLOW,
        "running",
        endpoint=api_endpoint(settings),
        detail=f"airflow {airflow_version()}, DAGs folder {dags_folder(settings)}{note}",
        pid=pids.get("api-server"),
        version=airflow_version(),
        extra_endpoints={"health": f"{api_endpoint(settings)}/api/v2/monitor/health"},
    )


def _ensure_lakefs_knows_the_webhook_secret(settings: StackSettings, secrets: Mapping[str, str]) -> None:
    pid = read_pid_file(settings.pid_path(LAKEFS))
    if pid is None or lakefs.knows_webhook_secret(pid, secrets) is not False:
        return
    log.warning("restarting lakeFS (pid %d) so that its actions know the Airflow webhook secret", pid)
    lakefs.down(settings)
    lakefs.up(settings, secrets)


def _stop_all(settings: StackSettings) -> bool:
    stopped = False
    for service in reversed(SERVICES):
        stopped = stop_process(_pid_path(settings, service), f"airflow {service}") or stopped
    return stopped


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Start the four components unless ours are running, healthy and configured the same way."""
    _ensure_lakefs_knows_the_webhook_secret(settings, secrets)
    marquez_url = lineage_target(settings)
    configuration = _configuration(settings, marquez_url)
    pids = _running_pids(settings)
    if all(pid is not None for pid in pids.values()) and _started_with(settings) == configuration:
        if wait_until(lambda: not unhealthy_components(health(settings)), timeout=60.0):
            return _running_status(settings, pids, ", already running")
        log.warning("the stack's Airflow is not healthy (%s); restarting it", unhealthy_components(health(settings)))
    if any(pid is not None for pid in pids.values()):
        _stop_all(settings)
    if port_is_open(LOCALHOST, settings.airflow_port):
        raise StackError(
            f"port {settings.airflow_port} on {LOCALHOST} is taken by another process; "
            "set MLREPO_AIRFLOW_PORT to a free port"
        )
    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    dags_folder(settings).mkdir(parents=True, exist_ok=True)
    env = environment(settings, secrets, marquez_url)
    airflow = airflow_executable()
    started = time.monotonic()
    for service in SERVICES:
        start_detached(
            [airflow, service],
            env=env,
            log_path=_log_path(settings, service),
            pid_path=_pid_path(settings, service),
            cwd=home,
        )

    def all_alive() -> bool:
        return all(pid is not None for pid in _running_pids(settings).values())

    healthy = wait_until(
        lambda: not unhealthy_components(health(settings)), timeout=START_TIMEOUT, interval=1.0, keep_waiting=all_alive
    )
    if not healthy:
        report = health(settings)
        dead = [service for service, pid in _running_pids(settings).items() if pid is None]
        tails = "\n".join(
            f"--- {service} ({_log_path(settings, service)}):\n{log_tail(_log_path(settings, service), 8)}"
            for service in (dead or SERVICES)
        )
        _stop_all(settings)
        raise StackError(
            f"the stack's Airflow did not become healthy within {START_TIMEOUT:.0f}s "
            f"(exited: {', '.join(dead) or 'none'}; unhealthy: {', '.join(unhealthy_components(report))}):\n{tails}"
        )
    _marker_path(settings).write_text(format_env_text(configuration), encoding="utf-8")
    elapsed = time.monotonic() - started
    log.info("Airflow %s healthy at %s after %.0fs", airflow_version(), api_endpoint(settings), elapsed)
    return _running_status(settings, _running_pids(settings))


def status(settings: StackSettings) -> ComponentStatus:
    pids = _running_pids(settings)
    if not any(pid is not None for pid in pids.values()):
        return ComponentStatus(AIRFLOW, "stopped")
    missing = [service for service, pid in pids.items() if pid is None or not is_alive(pid)]
    problems = unhealthy_components(health(settings))
    if missing or problems:
        detail = "; ".join(
            part
            for part in (
                f"not running: {', '.join(missing)}" if missing else "",
                f"unhealthy: {', '.join(problems)}" if problems else "",
            )
            if part
        )
        return ComponentStatus(
            AIRFLOW, "stopped", endpoint=api_endpoint(settings), detail=detail, pid=pids.get("api-server")
        )
    return _running_status(settings, pids)


def down(settings: StackSettings) -> bool:
    return _stop_all(settings)


def stop_service(settings: StackSettings, service: str) -> bool:
    """Stop one component (e.g. ``"triggerer"``), leaving the others running."""
    if service not in SERVICES:
        raise StackError(f"unknown Airflow service {service!r}; choose from {', '.join(SERVICES)}")
    return stop_process(_pid_path(settings, service), f"airflow {service}")


def kill_service(settings: StackSettings, service: str) -> bool:
    """SIGKILL one component's whole process tree (a crash: nothing is shut down cleanly)."""
    if service not in SERVICES:
        raise StackError(f"unknown Airflow service {service!r}; choose from {', '.join(SERVICES)}")
    return kill_process(_pid_path(settings, service), f"airflow {service}")


def start_service(settings: StackSettings, secrets: Mapping[str, str], service: str) -> int:
    """Start one component again, with the same environment as :func:`up` gives it; return its pid."""
    if service not in SERVICES:
        raise StackError(f"unknown Airflow service {service!r}; choose from {', '.join(SERVICES)}")
    running = read_pid_file(_pid_path(settings, service))
    if running is not None:
        return running
    lineage_to = _started_with(settings).get("LINEAGE_TO", _OUTBOX_ONLY)
    return start_detached(
        [airflow_executable(), service],
        env=environment(settings, secrets, None if lineage_to == _OUTBOX_ONLY else lineage_to),
        log_path=_log_path(settings, service),
        pid_path=_pid_path(settings, service),
        cwd=airflow_home(settings),
    )


__all__ = [
    "LINEAGE_NAMESPACE",
    "SERVICES",
    "api_endpoint",
    "dags_folder",
    "down",
    "environment",
    "kill_service",
    "lineage_environment",
    "lineage_outbox",
    "start_service",
    "status",
    "stop_service",
    "up",
]
