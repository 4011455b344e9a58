"""Marquez, from its published Maven artifact ``io.github.marquezproject:marquez-api``, on Java 17.

The classpath is resolved by Maven from a tiny generated POM (one dependency on marquez-api,
Dropwizard's BOM imported so Jackson/Jetty/Jersey line up the way Dropwizard expects):
``mvn -B -q dependency:copy-dependencies -DincludeScope=runtime`` into
``<cache>/marquez/<version>/lib``, Maven's local repository being ``<cache>/m2``. The versions in
:data:`MARQUEZ_VERSIONS` are tried in order; the first that resolves is used.

Then ``java -cp 'lib/*' marquez.MarquezApp db-migrate marquez.yml`` and, detached,
``... server marquez.yml``. Health is ``GET /ping`` on the admin port.

Marquez is optional for the stack: when it cannot be provided (no artifact, no Java, a crash)
:func:`up` returns an ``unavailable`` status whose detail is the exact reason (for Maven, its
first ``[ERROR]`` line); the reason is also kept in ``<state>/marquez/unavailable``.

**An external Marquez.** With ``MLREPO_MARQUEZ_URL`` set (and ``MLREPO_MARQUEZ_API_KEY`` if it sits
behind an API-key proxy) the stack starts no Marquez and downloads nothing: :func:`up` and
:func:`status` only ask that Marquez's API (``GET /api/v1/namespaces?limit=1``) and report it
``running`` or ``unavailable`` with the reason; :func:`down` leaves it alone. Everything that reads
``stack.env`` (the demo, the stack's Airflow, the Marquez tier of the tests) then uses it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import MarquezUnavailableError, StackError
from mlrepo_devstack.stack.debian import install_packages
from mlrepo_devstack.stack.health import http_request, port_is_open, wait_until
from mlrepo_devstack.stack.postgres import jdbc_url
from mlrepo_devstack.stack.processes import (
    is_alive,
    log_tail,
    read_pid_file,
    run_logged,
    start_detached,
    stop_process,
)
from mlrepo_devstack.stack.state import LOCALHOST
from mlrepo_devstack.stack.status import MARQUEZ, ComponentStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

MARQUEZ_GROUP_ID = "io.github.marquezproject"
MARQUEZ_ARTIFACT_ID = "marquez-api"
#: Tried in order; the first one Maven resolves is used.
MARQUEZ_VERSIONS: tuple[str, ...] = ("0.51.1", "0.51.0", "0.50.0")
#: Marquez 0.50/0.51 are built on Dropwizard 2.1.12.
DROPWIZARD_VERSION = "2.1.12"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAIN_CLASS = "marquez.MarquezApp"
JAVA_MIN_MAJOR = 17
JAVA_OPTIONS = ("-Xmx1g", "-Duser.timezone=UTC", "-Dlog4j2.formatMsgNoLookups=true")
#: Debian packages giving ``java`` (17) and ``mvn`` when they are missing.
JAVA_DEBIAN_PACKAGES = ("openjdk-17-jre-headless", "maven")
MAVEN_TIMEOUT = 900.0
MIGRATE_TIMEOUT = 600.0
START_TIMEOUT = 180.0
COMPLETE_MARKER = ".complete"
UNAVAILABLE_FILENAME = "unavailable"

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Maven failures seen by this process, by version: each version is tried at most once per run.
_failed_resolutions: dict[str, str] = {}


#: ``stack.env``'s ``MARQUEZ_MANAGED``: who runs the Marquez at ``MARQUEZ_URL``.
MANAGED_BY_STACK = "stack"
MANAGED_EXTERNALLY = "external"
EXTERNAL_PROBE_TIMEOUT = 5.0


def is_external(settings: StackSettings) -> bool:
    """Whether ``MLREPO_MARQUEZ_URL`` names a Marquez the stack uses instead of starting its own."""
    return settings.marquez_url is not None


def endpoint(settings: StackSettings) -> str:
    if settings.marquez_url is not None:
        return settings.marquez_url
    return f"http://{LOCALHOST}:{settings.marquez_port}"


def admin_endpoint(settings: StackSettings) -> str:
    return f"http://{LOCALHOST}:{settings.marquez_admin_port}"


def api_headers(api_key: str | None) -> dict[str, str]:
    """The headers of a request to Marquez's API: ``Authorization: Bearer <key>`` when there is a key.

    The same header OpenLineage's ``http`` transport sends for ``{"type": "api_key"}`` auth.
    """
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def http_transport_options(url: str, api_key: str | None = None) -> dict[str, Any]:
    """OpenLineage ``http`` transport options that post events to the Marquez at ``url``."""
    options: dict[str, Any] = {"url": url, "endpoint": "api/v1/lineage", "timeout": 5}
    if api_key:
        options["auth"] = {"type": "api_key", "apiKey": api_key}
    return options


def external_status(settings: StackSettings) -> ComponentStatus:
    """Whether the external Marquez answers its API (``GET /api/v1/namespaces?limit=1``)."""
    url = endpoint(settings)
    answer = http_request(
        f"{url}/api/v1/namespaces?limit=1",
        headers={"Accept": "application/json", **api_headers(settings.marquez_api_key)},
        timeout=EXTERNAL_PROBE_TIMEOUT,
    )
    where = f"external Marquez at {url} (MLREPO_MARQUEZ_URL)"
    if answer is None:
        return ComponentStatus(MARQUEZ, "unavailable", endpoint=url, detail=f"{where} does not answer")
    if answer.status in (401, 403):
        hint = "check MLREPO_MARQUEZ_API_KEY" if settings.marquez_api_key else "set MLREPO_MARQUEZ_API_KEY"
        return ComponentStatus(
            MARQUEZ, "unavailable", endpoint=url, detail=f"{where} refused the request (HTTP {answer.status}): {hint}"
        )
    try:
        body = answer.json() if answer.status == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("namespaces"), list):
        return ComponentStatus(
            MARQUEZ,
            "unavailable",
            endpoint=url,
            detail=f"{where} answered GET /api/v1/namespaces with HTTP {answer.status}, not Marquez's namespace list",
        )
    return ComponentStatus(MARQUEZ, "running", endpoint=url, detail="external Marquez, not started by this stack")


def _data_dir(settings: StackSettings) -> Path:
    return settings.component_dir("marquez")


def _unavailable_path(settings: StackSettings) -> Path:
    return _data_dir(settings) / UNAVAILABLE_FILENAME


def recorded_unavailability(settings: StackSettings) -> str | None:
    """Why the last ``up`` could not provide Marquez, if it could not."""
    try:
        return _unavailable_path(settings).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _record_unavailability(settings: StackSettings, reason: str | None) -> None:
    path = _unavailable_path(settings)
    if reason is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason + "\n", encoding="utf-8")


def classpath_pom(version: str) -> str:
    """The throw-away POM whose runtime dependencies are Marquez's classpath."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.airflow-mlrepo</groupId>
  <artifactId>marquez-classpath</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.dropwizard</groupId>
        <artifactId>dropwizard-dependencies</artifactId>
        <version>{DROPWIZARD_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>{MARQUEZ_GROUP_ID}</groupId>
      <artifactId>{MARQUEZ_ARTIFACT_ID}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def _maven_error_line(output: str) -> str:
    """The first meaningful ``[ERROR]`` line of Maven's output, exactly as Maven printed it."""
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in output.splitlines()]
    errors = [line for line in lines if line.startswith("[ERROR]") and line != "[ERROR]"]
    if errors:
        return errors[0]
    meaningful = [line for line in lines if line]
    return meaningful[-1] if meaningful else "Maven failed without output"


def _java_major(java: str) -> int | None:
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', completed.stderr + completed.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _find_java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java")


def ensure_java_and_maven(settings: StackSettings) -> tuple[str, str]:
    """``(java, mvn)`` executables, installing Debian's packages if missing."""
    java, mvn = _find_java(), shutil.which("mvn")
    if java is None or mvn is None:
        try:
            install_packages(JAVA_DEBIAN_PACKAGES, log_path=settings.log_path("apt"))
        except StackError as err:
            raise MarquezUnavailableError(f"Java 17 / Maven missing and not installable: {err}") from err
        java, mvn = _find_java(), shutil.which("mvn")
    if java is None or mvn is None:
        raise MarquezUnavailableError("`java` or `mvn` not on PATH after installing them")
    major = _java_major(java)
    if major is None or major < JAVA_MIN_MAJOR:
        raise MarquezUnavailableError(f"{java} is Java {major}; Marquez needs Java {JAVA_MIN_MAJOR}+")
    return java, mvn


def _classpath_dir(settings: StackSettings, version: str) -> Path:
    return settings.cache_dir / "marquez" / version / "lib"


def _resolve_version(settings: StackSettings, mvn: str, version: str) -> Path:
    """Copy marquez-api ``version`` and its runtime dependencies into the cache; return the dir."""
    lib = _classpath_dir(settings, version)
    if (lib / COMPLETE_MARKER).exists():
        return lib
    if version in _failed_resolutions:
        raise MarquezUnavailableError(_failed_resolutions[version])
    work = lib.parent
    work.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_text(classpath_pom(version), encoding="utf-8")
    partial = work / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log.info("resolving %s:%s:%s with Maven", MARQUEZ_GROUP_ID, MARQUEZ_ARTIFACT_ID, version)
    completed = run_logged(
        [
            mvn,
            "-B",
            "-q",
            "-U",
            "-Dstyle.color=never",
            f"-Dmaven.repo.local={settings.cache_dir / 'm2'}",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        log_path=settings.log_path("marquez-maven"),
        cwd=work,
        timeout=MAVEN_TIMEOUT,
    )
    if completed.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        reason = _maven_error_line(completed.stdout + "\n" + completed.stderr)
        _failed_resolutions[version] = reason
        raise MarquezUnavailableError(reason)
    if not any(partial.glob(f"{MARQUEZ_ARTIFACT_ID}-*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        reason = f"Maven resolved {MARQUEZ_ARTIFACT_ID}:{version} but copied no {MARQUEZ_ARTIFACT_ID} jar"
        _failed_resolutions[version] = reason
        raise MarquezUnavailableError(reason)
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    (lib / COMPLETE_MARKER).write_text(version + "\n", encoding="utf-8")
    return lib


def resolve_classpath(settings: StackSettings, mvn: str) -> tuple[str, Path]:
    """``(version, lib dir)`` of the newest Marquez in :data:`MARQUEZ_VERSIONS` that resolves."""
    last_error = ""
    for version in MARQUEZ_VERSIONS:
        try:
            return version, _resolve_version(settings, mvn, version)
        except MarquezUnavailableError as err:
            last_error = str(err)
    raise MarquezUnavailableError(
        f"{MARQUEZ_GROUP_ID}:{MARQUEZ_ARTIFACT_ID} could not be resolved from Maven "
        f"(tried {', '.join(MARQUEZ_VERSIONS)}; log {settings.log_path('marquez-maven')}). "
        f"Maven said: {last_error}"
    )


def config_yaml(settings: StackSettings) -> str:
    """Dropwizard config; the DB password comes from ``$MARQUEZ_DB_PASSWORD`` at start."""
    return f"""# Generated by `mlrepo stack up`; edits are overwritten.
server:
  applicationConnectors:
    - type: http
      bindHost: {LOCALHOST}
      port: {settings.marquez_port}
      httpCompliance: RFC7230_LEGACY
  adminConnectors:
    - type: http
      bindHost: {LOCALHOST}
      port: {settings.marquez_admin_port}
db:
  driverClass: org.postgresql.Driver
  url: {jdbc_url(settings, "marquez")}
  user: marquez
  password: ${{MARQUEZ_DB_PASSWORD}}
migrateOnStartup: false
graphql:
  enabled: true
search:
  enabled: false
logging:
  level: WARN
  appenders:
    - type: console
"""


def _java_argv(java: str, lib: Path, command: str, config: Path) -> list[str]:
    return [java, *JAVA_OPTIONS, "-cp", f"{lib}/*", MAIN_CLASS, command, str(config)]


def _healthy(settings: StackSettings) -> bool:
    answer = http_request(f"{admin_endpoint(settings)}/ping", timeout=2.0)
    return answer is not None and answer.status == 200


def _running_status(settings: StackSettings, pid: int, version: str, note: str = "") -> ComponentStatus:
    return ComponentStatus(
        MARQUEZ,
        "running",
        endpoint=endpoint(settings),
        detail=f"marquez-api {version}{note}",
        pid=pid,
        version=version,
        extra_endpoints={"admin": admin_endpoint(settings)},
    )


def _start(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    java, mvn = ensure_java_and_maven(settings)
    version, lib = resolve_classpath(settings, mvn)
    data = _data_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    config = data / "marquez.yml"
    config.write_text(config_yaml(settings), encoding="utf-8")
    config.chmod(0o600)
    env = {**os.environ, "MARQUEZ_DB_PASSWORD": secrets["POSTGRES_MARQUEZ_PASSWORD"]}
    migrate_log = settings.log_path("marquez-migrate")
    log.info("migrating the Marquez %s database", version)
    migrated = run_logged(
        _java_argv(java, lib, "db-migrate", config),
        log_path=migrate_log,
        env=env,
        cwd=data,
        timeout=MIGRATE_TIMEOUT,
    )
    if migrated.returncode != 0:
        raise MarquezUnavailableError(f"Marquez {version} db-migrate failed; see {migrate_log}")
    for port in (settings.marquez_port, settings.marquez_admin_port):
        if port_is_open(LOCALHOST, port):
            raise MarquezUnavailableError(
                f"port {port} on {LOCALHOST} is taken; set MLREPO_MARQUEZ_PORT / MLREPO_MARQUEZ_ADMIN_PORT"
            )
    pid_path = settings.pid_path(MARQUEZ)
    log_path = settings.log_path(MARQUEZ)
    pid = start_detached(
        _java_argv(java, lib, "server", config), env=env, log_path=log_path, pid_path=pid_path, cwd=data
    )
    if not wait_until(lambda: _healthy(settings), timeout=START_TIMEOUT, keep_waiting=lambda: is_alive(pid)):
        stop_process(pid_path, "Marquez")
        raise MarquezUnavailableError(
            f"Marquez {version} did not answer {admin_endpoint(settings)}/ping; log {log_path}:\n"
            f"{log_tail(log_path, 8)}"
        )
    (data / "version").write_text(version + "\n", encoding="utf-8")
    log.info("Marquez %s running at %s (pid %d)", version, endpoint(settings), pid)
    return _running_status(settings, pid, version)


def _installed_version(settings: StackSettings) -> str:
    try:
        return (_data_dir(settings) / "version").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "unknown version"


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Start Marquez, or reuse ours (or the external one); never raises for an unavailable Marquez, reports it."""
    if is_external(settings):
        return external_status(settings)
    pid = read_pid_file(settings.pid_path(MARQUEZ))
    if pid is not None and wait_until(lambda: _healthy(settings), timeout=30.0, keep_waiting=lambda: is_alive(pid)):
        return _running_status(settings, pid, _installed_version(settings), ", already running")
    if pid is not None:
        log.warning("Marquez pid %d is not healthy; restarting it", pid)
        stop_process(settings.pid_path(MARQUEZ), "Marquez")
    try:
        started = _start(settings, secrets)
    except MarquezUnavailableError as err:
        reason = str(err)
        _record_unavailability(settings, reason)
        log.error("Marquez unavailable: %s", reason)
        return ComponentStatus(MARQUEZ, "unavailable", detail=reason)
    _record_unavailability(settings, None)
    return started


def status(settings: StackSettings) -> ComponentStatus:
    if is_external(settings):
        return external_status(settings)
    pid = read_pid_file(settings.pid_path(MARQUEZ))
    if pid is not None and _healthy(settings):
        return _running_status(settings, pid, _installed_version(settings))
    reason = recorded_unavailability(settings)
    if reason is not None:
        return ComponentStatus(MARQUEZ, "unavailable", detail=reason)
    if pid is not None:
        return ComponentStatus(MARQUEZ, "stopped", detail="process alive but /ping fails", pid=pid)
    return ComponentStatus(MARQUEZ, "stopped")


def down(settings: StackSettings) -> bool:
    """Stop the Marquez this stack started (an external Marquez is never touched)."""
    return stop_process(settings.pid_path(MARQUEZ), "Marquez")
