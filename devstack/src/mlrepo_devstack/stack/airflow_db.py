"""The Airflow metadata database: ``airflow db migrate`` against the stack's PostgreSQL.

``AIRFLOW_HOME`` is ``<state>/airflow``; the connection is
``postgresql+psycopg2://airflow:<password>@127.0.0.1:<port>/airflow``. The ``airflow`` executable
next to ``sys.executable`` runs the migration. A marker records the Alembic revision and Airflow
version after a successful migration, so a warm ``up`` skips the (slow) CLI when nothing changed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack.postgres import run_psql, sqlalchemy_url
from mlrepo_devstack.stack.processes import last_lines, run_logged
from mlrepo_devstack.stack.state import LOCALHOST, format_env_text, parse_env_text
from mlrepo_devstack.stack.status import AIRFLOW_DB, ComponentStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

MIGRATE_TIMEOUT = 1200.0
MARKER_FILENAME = ".mlrepo-db-migrated"


def airflow_home(settings: StackSettings) -> Path:
    return settings.component_dir("airflow")


def connection_url(settings: StackSettings, secrets: Mapping[str, str]) -> str:
    return sqlalchemy_url(settings, "airflow", secrets["POSTGRES_AIRFLOW_PASSWORD"])


def endpoint(settings: StackSettings) -> str:
    """Where the database is, without the password."""
    return f"postgresql://airflow@{LOCALHOST}:{settings.postgres_port}/airflow"


def airflow_version() -> str:
    try:
        return importlib.metadata.version("apache-airflow")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def airflow_executable() -> str:
    beside_python = Path(sys.executable).parent / "airflow"
    if os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("airflow")
    if found is None:
        raise StackError(f"no `airflow` executable next to {sys.executable} or on PATH")
    return found


#: Python modules Airflow needs for a PostgreSQL metadata DB: the sync and the async driver
#: (Airflow 3 derives ``postgresql+asyncpg://`` from the ``postgresql+psycopg2://`` URL).
POSTGRES_DRIVER_MODULES = {"psycopg2": "psycopg2-binary", "asyncpg": "asyncpg"}


def missing_drivers() -> list[str]:
    """PyPI names of the PostgreSQL drivers missing from this Python environment."""
    return [package for module, package in POSTGRES_DRIVER_MODULES.items() if importlib.util.find_spec(module) is None]


def schema_revision(settings: StackSettings) -> str | None:
    """The Alembic revision of the airflow database, None when not migrated or unreachable."""
    try:
        output = run_psql(settings, "SELECT version_num FROM alembic_version;\n", database="airflow")
    except StackError:
        return None
    revision = output.strip().splitlines()
    return revision[0].strip() if revision else None


def _marker_path(settings: StackSettings) -> Path:
    return airflow_home(settings) / MARKER_FILENAME


def _marker_matches(settings: StackSettings, revision: str | None) -> bool:
    path = _marker_path(settings)
    if revision is None or not path.exists():
        return False
    recorded = parse_env_text(path.read_text(encoding="utf-8"))
    return (
        recorded.get("ALEMBIC_REVISION") == revision
        and recorded.get("AIRFLOW_VERSION") == airflow_version()
        and recorded.get("DATABASE") == endpoint(settings)
    )


def _ready_status(settings: StackSettings, revision: str, note: str = "") -> ComponentStatus:
    detail = f"airflow {airflow_version()}, schema {revision}, AIRFLOW_HOME {airflow_home(settings)}"
    return ComponentStatus(
        AIRFLOW_DB, "ready", endpoint=endpoint(settings), detail=detail + note, version=airflow_version()
    )


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Run ``airflow db migrate`` unless the schema is already migrated by this Airflow version."""
    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    revision = schema_revision(settings)
    if _marker_matches(settings, revision) and revision is not None:
        return _ready_status(settings, revision, ", already migrated")
    missing = missing_drivers()
    if missing:
        raise StackError(
            f"Airflow needs {' and '.join(missing)} to use PostgreSQL; install into {sys.prefix}: "
            f"pip install {' '.join(missing)}  (or apache-airflow-providers-postgres)"
        )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": connection_url(settings, secrets),
    }
    migrate_log = settings.log_path("airflow-db-migrate")
    log.info("running `airflow db migrate` (log: %s)", migrate_log)
    started = time.monotonic()
    completed = run_logged(
        [airflow_executable(), "db", "migrate"],
        log_path=migrate_log,
        env=env,
        cwd=home,
        timeout=MIGRATE_TIMEOUT,
    )
    if completed.returncode != 0:
        raise StackError(
            f"`airflow db migrate` failed (exit {completed.returncode}); see {migrate_log}:\n"
            f"{last_lines(completed.stderr or completed.stdout)}"
        )
    revision = schema_revision(settings)
    if revision is None:
        raise StackError(f"`airflow db migrate` succeeded but no alembic_version is recorded; see {migrate_log}")
    _marker_path(settings).write_text(
        format_env_text(
            {
                "ALEMBIC_REVISION": revision,
                "AIRFLOW_VERSION": airflow_version(),
                "DATABASE": endpoint(settings),
            }
        ),
        encoding="utf-8",
    )
    log.info("Airflow metadata DB migrated to %s in %.0fs", revision, time.monotonic() - started)
    return _ready_status(settings, revision)


def status(settings: StackSettings, postgres_running: bool) -> ComponentStatus:
    if not postgres_running:
        return ComponentStatus(AIRFLOW_DB, "stopped", detail="PostgreSQL is not running")
    revision = schema_revision(settings)
    if revision is None:
        return ComponentStatus(AIRFLOW_DB, "stopped", endpoint=endpoint(settings), detail="not migrated")
    return _ready_status(settings, revision)
