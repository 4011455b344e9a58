"""The local service stack: lakeFS, PostgreSQL 15, Marquez and the Airflow metadata DB.

Used by the ``mlrepo stack`` CLI, by test fixtures and by CI::

    from mlrepo_devstack import stack

    status = stack.up()                 # idempotent: reuses running, healthy services
    env = stack.read_env()              # the KEY=value pairs of <state>/stack.env
    stack.down()

Components (:data:`COMPONENTS`): ``"postgres"``, ``"lakefs"``, ``"marquez"``, ``"airflow-db"`` and
``"kubernetes"`` (a single-node cluster, see :mod:`mlrepo_devstack.stack.kubernetes`) and
``"airflow"`` (api-server, scheduler, dag-processor and triggerer). The last two are opt-in:
``up()`` without arguments starts :data:`DEFAULT_COMPONENTS`, every component but these.
lakeFS, PostgreSQL and the Airflow DB are required: if one fails, :func:`up` raises
:class:`StackError`. Marquez is optional: when it cannot be provided its status is
``unavailable`` with the reason, and ``stack.env`` says ``MARQUEZ_STATUS=unavailable: <reason>``.

Configuration is by environment variable: ``MLREPO_HOME`` (state dir), ``MLREPO_CACHE_DIR``,
``MLREPO_LAKEFS_PORT`` (8000), ``MLREPO_POSTGRES_PORT`` (5433), ``MLREPO_POSTGRES_CLUSTER``
(``mlrepo``), ``MLREPO_MARQUEZ_PORT`` (5000), ``MLREPO_MARQUEZ_ADMIN_PORT`` (5001),
``MLREPO_AIRFLOW_PORT`` (8080), ``MLREPO_DAGS_FOLDER`` (``<state>/airflow/dags``),
``MLREPO_MARQUEZ_URL`` / ``MLREPO_MARQUEZ_API_KEY`` (use an already-running Marquez instead of
starting one: :mod:`mlrepo_devstack.stack.marquez`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError, StackNotUpError
from mlrepo_devstack.stack import airflow_db, airflow_services, kubernetes, lakefs, marquez, postgres
from mlrepo_devstack.stack.state import (
    StackSettings,
    load_or_create_secrets,
    read_env_file,
    read_secrets,
    stack_lock,
    write_env_file,
)
from mlrepo_devstack.stack.status import (
    AIRFLOW,
    AIRFLOW_DB,
    COMPONENTS,
    DEFAULT_COMPONENTS,
    DEPENDENCIES,
    KUBERNETES,
    LAKEFS,
    MARQUEZ,
    POSTGRES,
    REQUIRED_COMPONENTS,
    STOPPED_WITH,
    ComponentState,
    ComponentStatus,
    StackStatus,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "AIRFLOW",
    "AIRFLOW_DB",
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "KUBERNETES",
    "LAKEFS",
    "MARQUEZ",
    "POSTGRES",
    "REQUIRED_COMPONENTS",
    "ComponentState",
    "ComponentStatus",
    "StackError",
    "StackNotUpError",
    "StackSettings",
    "StackStatus",
    "down",
    "read_env",
    "status",
    "up",
]

log = logging.getLogger(__name__)


def _with_dependencies(components: Sequence[str] | None) -> list[str]:
    """Requested components plus what they need, in start order (the defaults when None)."""
    if components is None:
        return list(DEFAULT_COMPONENTS)
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    wanted = set(components)
    for name in list(wanted):
        wanted.update(DEPENDENCIES[name])
    return [name for name in COMPONENTS if name in wanted]


def _component_status(
    name: str, settings: StackSettings, secrets: Mapping[str, str], postgres_running: bool
) -> ComponentStatus:
    if name == POSTGRES:
        return postgres.status(settings)
    if name == LAKEFS:
        return lakefs.status(settings, secrets)
    if name == MARQUEZ:
        return marquez.status(settings)
    if name == AIRFLOW:
        return airflow_services.status(settings)
    if name == KUBERNETES:
        return kubernetes.status(settings)
    return airflow_db.status(settings, postgres_running)


def _collect(settings: StackSettings, secrets: Mapping[str, str], known: Mapping[str, ComponentStatus]) -> StackStatus:
    """Status of every component, taking the ones just brought up from ``known``."""
    components: dict[str, ComponentStatus] = {}
    for name in COMPONENTS:
        if name in known:
            components[name] = known[name]
        else:
            # POSTGRES comes first in COMPONENTS, so it is known when the others are asked.
            postgres_running = name != POSTGRES and components[POSTGRES].is_up
            components[name] = _component_status(name, settings, secrets, postgres_running)
    return StackStatus(components=components, env_file=settings.stack_env_path)


def _marquez_status_value(component: ComponentStatus) -> str:
    if component.state in ("running", "stopped"):
        return component.state
    return f"{component.state}: {component.detail}"


def stack_env_values(settings: StackSettings, secrets: Mapping[str, str], current: StackStatus) -> dict[str, str]:
    """The ``stack.env`` contents for ``current``."""
    lakefs_endpoint = lakefs.endpoint(settings)
    access_key_id = secrets["LAKEFS_ACCESS_KEY_ID"]
    secret_access_key = secrets["LAKEFS_SECRET_ACCESS_KEY"]
    values = {
        "MLREPO_HOME": str(settings.state_dir),
        "LAKEFS_ENDPOINT": lakefs_endpoint,
        "LAKEFS_ACCESS_KEY_ID": access_key_id,
        "LAKEFS_SECRET_ACCESS_KEY": secret_access_key,
        "LAKEFS_VERSION": current[LAKEFS].version or lakefs.LAKEFS_VERSION,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_AIRFLOW_PASSWORD": secrets["POSTGRES_AIRFLOW_PASSWORD"],
        "POSTGRES_MARQUEZ_PASSWORD": secrets["POSTGRES_MARQUEZ_PASSWORD"],
        "AIRFLOW_HOME": str(airflow_db.airflow_home(settings)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db.connection_url(settings, secrets),
        "AIRFLOW_CONN_LAKEFS_DEFAULT": json.dumps(
            {
                "conn_type": "lakefs",
                "host": lakefs_endpoint,
                "login": access_key_id,
                "password": secret_access_key,
            }
        ),
    }
    marquez_status = current[MARQUEZ]
    if marquez_status.state == "running":
        values["MARQUEZ_URL"] = marquez.endpoint(settings)
        if marquez.is_external(settings):
            values["MARQUEZ_MANAGED"] = marquez.MANAGED_EXTERNALLY
        else:
            values["MARQUEZ_MANAGED"] = marquez.MANAGED_BY_STACK
            values["MARQUEZ_ADMIN_URL"] = marquez.admin_endpoint(settings)
        values["OPENLINEAGE_URL"] = marquez.endpoint(settings)
        if settings.marquez_api_key:
            values["MARQUEZ_API_KEY"] = settings.marquez_api_key
            values["OPENLINEAGE_API_KEY"] = settings.marquez_api_key
    values["MARQUEZ_STATUS"] = _marquez_status_value(marquez_status)
    values["MLREPO_WEBHOOK_SECRET"] = secrets.get("MLREPO_WEBHOOK_SECRET", "")
    airflow_status = current.components.get(AIRFLOW)
    if airflow_status is not None and airflow_status.state == "running":
        values["AIRFLOW_API_URL"] = airflow_services.api_endpoint(settings)
    kubernetes_status = current.components.get(KUBERNETES)
    if kubernetes_status is not None and kubernetes_status.state == "running":
        values["KUBECONFIG"] = str(kubernetes.kubeconfig_path(settings))
        values["MLREPO_LAKEFS_ENDPOINT_IN_POD"] = kubernetes.lakefs_endpoint_in_pod(settings)
    return values


def _write_stack_env(settings: StackSettings, secrets: Mapping[str, str], current: StackStatus) -> None:
    write_env_file(
        settings.stack_env_path,
        stack_env_values(settings, secrets, current),
        header="Written by `mlrepo stack up`; contains credentials (mode 0600). "
        'Load it with: eval "$(mlrepo stack env)"',
    )


def up(components: Sequence[str] | None = None) -> StackStatus:
    """Bring up ``components`` (all when None) and what they depend on; write ``stack.env``.

    Idempotent: running, healthy services of this stack are reused as they are. Raises
    :class:`StackError` when a required component cannot be brought up; an unavailable
    Marquez is reported in the returned status instead.
    """
    settings = StackSettings.from_environ()
    ordered = _with_dependencies(components)
    with stack_lock(settings):
        secrets = load_or_create_secrets(settings)
        brought_up: dict[str, ComponentStatus] = {}
        try:
            for name in ordered:
                started = time.monotonic()
                if name == POSTGRES:
                    brought_up[name] = postgres.up(settings, secrets)
                elif name == LAKEFS:
                    brought_up[name] = lakefs.up(settings, secrets)
                elif name == MARQUEZ:
                    brought_up[name] = marquez.up(settings, secrets)
                elif name == KUBERNETES:
                    brought_up[name] = kubernetes.up(settings, secrets)
                elif name == AIRFLOW:
                    brought_up[name] = airflow_services.up(settings, secrets)
                    brought_up.pop(LAKEFS, None)  # it may have restarted lakeFS: read its status again
                else:
                    brought_up[name] = airflow_db.up(settings, secrets)
                log.debug("%s: %s after %.1fs", name, brought_up[name].state, time.monotonic() - started)
        finally:
            current = _collect(settings, secrets, brought_up)
            _write_stack_env(settings, secrets, current)
    return current


def components_to_stop(components: Sequence[str] | None) -> set[str]:
    """``components`` (all when None) and whatever a stop of them takes down (``STOPPED_WITH``)."""
    if components is None:
        return set(COMPONENTS)
    _with_dependencies(components)  # validates the names
    stopping = set(components)
    changed = True
    while changed:
        changed = False
        for name, needs in STOPPED_WITH.items():
            if name not in stopping and stopping & set(needs):
                stopping.add(name)
                changed = True
    return stopping


def down(components: Sequence[str] | None = None) -> None:
    """Stop ``components`` (all when None), and anything that depends on a stopped one.

    Services get SIGTERM, then SIGKILL if they do not exit in time; PostgreSQL gets a fast
    shutdown. Data, secrets and ``stack.env`` stay, so the next :func:`up` finds everything again.
    """
    settings = StackSettings.from_environ()
    stopping = components_to_stop(components)
    with stack_lock(settings):
        for name in reversed(COMPONENTS):
            if name not in stopping:
                continue
            if name == AIRFLOW:
                airflow_services.down(settings)
            elif name == KUBERNETES:
                kubernetes.down(settings)
            elif name == MARQUEZ:
                marquez.down(settings)
            elif name == LAKEFS:
                lakefs.down(settings)
            elif name == POSTGRES:
                postgres.down(settings)
            # airflow-db is a schema inside PostgreSQL: nothing of its own to stop.
        secrets = read_secrets(settings)
        if secrets:
            _write_stack_env(settings, secrets, _collect(settings, secrets, {}))


def status() -> StackStatus:
    """What is running now (no side effects besides reading state)."""
    settings = StackSettings.from_environ()
    return _collect(settings, read_secrets(settings), {})


def read_env() -> dict[str, str]:
    """The variables of ``stack.env`` (credentials and endpoints of the running stack)."""
    settings = StackSettings.from_environ()
    path = settings.stack_env_path
    if not path.exists():
        raise StackNotUpError(f"{path} does not exist; run `mlrepo stack up` first")
    return read_env_file(path)
