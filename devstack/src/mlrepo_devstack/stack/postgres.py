"""PostgreSQL 15 from Debian's packages, as a dedicated cluster (``15/mlrepo`` by default).

The cluster is created with ``pg_createcluster`` (start-conf ``manual``; a ``conf.d`` snippet
makes it listen on 127.0.0.1 only) and driven with ``pg_ctlcluster``; roles and databases are managed with ``psql``
run as the ``postgres`` OS user over the local socket. Two roles and databases exist:
``airflow`` (Airflow's metadata DB) and ``marquez``; each database is *owned* by its role, which
PostgreSQL 15 needs for the role to create tables in schema ``public``.

The data directory and server log are Debian's defaults for the cluster
(``/var/lib/postgresql/15/<cluster>``, ``/var/log/postgresql/postgresql-15-<cluster>.log``):
the ``postgres`` user cannot reach a state dir under a private home directory.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack.debian import as_postgres_user, as_root, install_packages
from mlrepo_devstack.stack.health import port_is_open, wait_until
from mlrepo_devstack.stack.processes import last_lines, run_logged
from mlrepo_devstack.stack.state import LOCALHOST
from mlrepo_devstack.stack.status import POSTGRES, ComponentStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

POSTGRES_MAJOR_VERSION = "15"
POSTGRES_BIN_DIR = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR_VERSION}/bin")
#: Debian package that brings PostgreSQL 15 on bookworm.
POSTGRES_DEBIAN_PACKAGE = "postgresql"
START_TIMEOUT = 60.0
LISTEN_CONF_NAME = "airflow-mlrepo.conf"

#: (database, owning role, key of its password in secrets.env)
DATABASES: tuple[tuple[str, str, str], ...] = (
    ("airflow", "airflow", "POSTGRES_AIRFLOW_PASSWORD"),
    ("marquez", "marquez", "POSTGRES_MARQUEZ_PASSWORD"),
)


@dataclass(frozen=True)
class ClusterInfo:
    """One line of ``pg_lsclusters -h``."""

    version: str
    name: str
    port: int
    status: str
    owner: str
    data_dir: Path
    log_file: str

    @property
    def online(self) -> bool:
        return self.status.startswith("online")


def endpoint(settings: StackSettings) -> str:
    return f"postgresql://{LOCALHOST}:{settings.postgres_port}"


def sqlalchemy_url(settings: StackSettings, database: str, password: str) -> str:
    """``postgresql+psycopg2://<role>:<password>@127.0.0.1:<port>/<database>`` (role = database)."""
    return f"postgresql+psycopg2://{database}:{password}@{LOCALHOST}:{settings.postgres_port}/{database}"


def jdbc_url(settings: StackSettings, database: str) -> str:
    return f"jdbc:postgresql://{LOCALHOST}:{settings.postgres_port}/{database}"


def server_installed() -> bool:
    return shutil.which("pg_createcluster") is not None and (POSTGRES_BIN_DIR / "postgres").exists()


def ensure_server_installed(settings: StackSettings) -> None:
    """Install Debian's PostgreSQL 15 packages when the server binaries are missing."""
    if server_installed():
        return
    install_packages([POSTGRES_DEBIAN_PACKAGE], log_path=settings.log_path("apt"))
    if not server_installed():
        raise StackError(
            f"installed package {POSTGRES_DEBIAN_PACKAGE!r} but {POSTGRES_BIN_DIR}/postgres is missing: "
            f"this stack needs PostgreSQL {POSTGRES_MAJOR_VERSION} (Debian 12 'bookworm')"
        )


def cluster_info(settings: StackSettings) -> ClusterInfo | None:
    """The stack's cluster as ``pg_lsclusters`` sees it, or None when it does not exist."""
    if shutil.which("pg_lsclusters") is None:
        return None
    completed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False, timeout=30)
    for line in completed.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == POSTGRES_MAJOR_VERSION and fields[1] == settings.postgres_cluster:
            return ClusterInfo(
                version=fields[0],
                name=fields[1],
                port=int(fields[2]),
                status=fields[3],
                owner=fields[4],
                data_dir=Path(fields[5]),
                log_file=fields[6] if len(fields) > 6 else "",
            )
    return None


def _run_as_root(
    settings: StackSettings, argv: list[str], what: str, accepted_exit_codes: tuple[int, ...] = (0,)
) -> str:
    completed = run_logged(as_root(argv), log_path=settings.log_path("postgres-admin"), timeout=120)
    if completed.returncode not in accepted_exit_codes:
        raise StackError(
            f"{what} failed (exit {completed.returncode}): {last_lines(completed.stderr or completed.stdout, 8)}"
        )
    return completed.stdout


def run_psql(settings: StackSettings, sql: str, database: str = "postgres") -> str:
    """Run SQL (fed on stdin, so secrets stay out of argv) as the postgres superuser."""
    argv = as_postgres_user(
        [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-p",
            str(settings.postgres_port),
            "-d",
            database,
            "-f",
            "-",
        ]
    )
    completed = run_logged(
        argv, log_path=settings.log_path("postgres-admin"), input_text=sql, timeout=120, cwd=Path("/")
    )
    if completed.returncode != 0:
        # stderr names the failing statement's error, not the SQL text, so no secret leaks here.
        raise StackError(f"psql on database {database!r} failed: {last_lines(completed.stderr, 5)}")
    return completed.stdout


def _conf_value(settings: StackSettings, key: str) -> str:
    completed = subprocess.run(
        ["pg_conftool", "-s", POSTGRES_MAJOR_VERSION, settings.postgres_cluster, "show", key],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return completed.stdout.strip().strip("'") if completed.returncode == 0 else ""


def _set_conf(settings: StackSettings, key: str, value: str) -> bool:
    """Set a postgresql.conf value if it differs; True when it changed (a restart is needed)."""
    if _conf_value(settings, key) == value:
        return False
    _run_as_root(
        settings,
        ["pg_conftool", POSTGRES_MAJOR_VERSION, settings.postgres_cluster, "set", key, value],
        f"pg_conftool set {key}",
    )
    return True


def listen_config_path(settings: StackSettings) -> Path:
    return Path("/etc/postgresql", POSTGRES_MAJOR_VERSION, settings.postgres_cluster, "conf.d", LISTEN_CONF_NAME)


def _ensure_listen_config(settings: StackSettings) -> bool:
    """Listen on 127.0.0.1 only, via a ``conf.d`` snippet; True when it changed (restart needed).

    Not ``pg_conftool set`` / ``pg_createcluster -o``: they write ``127.0.0.1`` unquoted (it looks
    like a number to them), which PostgreSQL then rejects as a syntax error.
    """
    target = listen_config_path(settings)
    wanted = f"# Written by airflow-mlrepo (`mlrepo stack up`).\nlisten_addresses = '{LOCALHOST}'\n"
    try:
        if target.read_text(encoding="utf-8") == wanted:
            return False
    except FileNotFoundError:
        pass
    staged = settings.component_dir("postgres") / LISTEN_CONF_NAME
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(wanted, encoding="utf-8")
    _run_as_root(settings, ["install", "-m", "0644", str(staged), str(target)], f"writing {target}")
    return True


def _create_cluster(settings: StackSettings) -> None:
    log.info(
        "creating PostgreSQL cluster %s/%s on %s:%d",
        POSTGRES_MAJOR_VERSION,
        settings.postgres_cluster,
        LOCALHOST,
        settings.postgres_port,
    )
    _run_as_root(
        settings,
        [
            "pg_createcluster",
            POSTGRES_MAJOR_VERSION,
            settings.postgres_cluster,
            "--port",
            str(settings.postgres_port),
            "--start-conf=manual",
            "--locale=C.UTF-8",
            "--",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
        ],
        "pg_createcluster",
    )


def _ctl(settings: StackSettings, action: str, *options: str) -> None:
    """``pg_ctlcluster [options] 15 <cluster> <action>``; exit 2 (already in that state) is fine."""
    _run_as_root(
        settings,
        ["pg_ctlcluster", *options, POSTGRES_MAJOR_VERSION, settings.postgres_cluster, action],
        f"pg_ctlcluster {action}",
        accepted_exit_codes=(0, 2),
    )


def postmaster_pid(info: ClusterInfo) -> int | None:
    try:
        first_line = (info.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first_line) if first_line.strip().isdigit() else None


def _ensure_roles_and_databases(settings: StackSettings, secrets: Mapping[str, str]) -> None:
    statements = []
    for database, role, password_key in DATABASES:
        password = secrets[password_key].replace("'", "''")
        statements += [
            f"SELECT 'CREATE ROLE {role} LOGIN' "
            f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')\\gexec",
            f"ALTER ROLE {role} WITH LOGIN PASSWORD '{password}';",
            f"SELECT 'CREATE DATABASE {database} OWNER {role} ENCODING ''UTF8'' TEMPLATE template0' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec",
            f"ALTER DATABASE {database} OWNER TO {role};",
        ]
    run_psql(settings, "\n".join(statements) + "\n")


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Create (once) and start the cluster; create or repair the roles and databases."""
    ensure_server_installed(settings)
    info = cluster_info(settings)
    if info is None:
        _create_cluster(settings)
        info = cluster_info(settings)
        if info is None:
            raise StackError(f"pg_createcluster did not create cluster {settings.postgres_cluster}")
    restart_needed = _set_conf(settings, "port", str(settings.postgres_port))
    restart_needed |= _ensure_listen_config(settings)
    if info.online and restart_needed:
        log.info("restarting PostgreSQL to apply port/listen_addresses")
        _ctl(settings, "restart")
    elif not info.online:
        if port_is_open(LOCALHOST, settings.postgres_port):
            raise StackError(
                f"port {settings.postgres_port} on {LOCALHOST} is taken by another process; "
                "set MLREPO_POSTGRES_PORT to a free port"
            )
        log.info("starting PostgreSQL cluster %s/%s", POSTGRES_MAJOR_VERSION, settings.postgres_cluster)
        _ctl(settings, "start")
    if not wait_until(lambda: port_is_open(LOCALHOST, settings.postgres_port), timeout=START_TIMEOUT):
        raise StackError(
            f"PostgreSQL did not accept connections on {LOCALHOST}:{settings.postgres_port} "
            f"within {START_TIMEOUT:.0f}s; see {info.log_file}"
        )
    _ensure_roles_and_databases(settings, secrets)
    current = status(settings)
    if info.online and not restart_needed and current.state == "running":
        return replace(current, detail=current.detail + ", already running")
    log.info("PostgreSQL %s running at %s", POSTGRES_MAJOR_VERSION, endpoint(settings))
    return current


def status(settings: StackSettings) -> ComponentStatus:
    if not server_installed():
        return ComponentStatus(POSTGRES, "stopped", detail=f"PostgreSQL {POSTGRES_MAJOR_VERSION} not installed")
    info = cluster_info(settings)
    if info is None:
        return ComponentStatus(
            POSTGRES,
            "stopped",
            detail=f"cluster {POSTGRES_MAJOR_VERSION}/{settings.postgres_cluster} not created",
        )
    if not info.online or not port_is_open(LOCALHOST, settings.postgres_port):
        return ComponentStatus(
            POSTGRES, "stopped", detail=f"cluster {POSTGRES_MAJOR_VERSION}/{info.name} {info.status}"
        )
    return ComponentStatus(
        POSTGRES,
        "running",
        endpoint=endpoint(settings),
        detail=f"cluster {POSTGRES_MAJOR_VERSION}/{info.name}, databases airflow, marquez",
        pid=postmaster_pid(info),
        version=POSTGRES_MAJOR_VERSION,
    )


def database_owners(settings: StackSettings) -> dict[str, str]:
    """``{database: owner}`` for the stack's databases that exist."""
    names = ", ".join(f"'{database}'" for database, _, _ in DATABASES)
    output = run_psql(
        settings,
        "SELECT d.datname || '|' || r.rolname FROM pg_database d "
        f"JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname IN ({names});\n",
    )
    owners = {}
    for line in output.splitlines():
        database, _, owner = line.partition("|")
        if owner:
            owners[database] = owner
    return owners


def down(settings: StackSettings) -> bool:
    """Stop the cluster (fast shutdown, then immediate if it hangs). True if it was running."""
    info = cluster_info(settings)
    if info is None or not info.online:
        return False
    log.info("stopping PostgreSQL cluster %s/%s", POSTGRES_MAJOR_VERSION, info.name)
    try:
        _ctl(settings, "stop")  # fast shutdown: disconnect clients, checkpoint, exit
    except StackError as err:
        log.warning("fast shutdown failed (%s); forcing (immediate mode, then kill)", err)
        _ctl(settings, "stop", "--force")
    return True
