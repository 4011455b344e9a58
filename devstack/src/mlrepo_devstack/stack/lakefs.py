"""lakeFS, built from its Go module at a pinned version (with its web UI) and run with local KV + local blockstore.

Build, the way lakeFS's own ``make gen-ui`` + ``go build`` does it: the module
``github.com/treeverse/lakefs`` is downloaded into Go's module cache (``<cache>/gomod``) through the
wrapper module in ``lakefs_build/`` (``go.mod`` + ``go.sum``; it repeats lakeFS's ``delta-go``
replace directive), copied to a temporary directory (the module cache is read-only), its ``webui/``
is built there with ``npm ci`` (its ``package-lock.json``) and ``npm run build`` into
``webui/dist``, which ``webui/content.go`` embeds (``//go:embed all:dist``; lakeFS serves "UI Not
Built" when only ``dist/.gitkeep`` is there), and ``go build -ldflags "-X
.../pkg/version.Version=<version>" github.com/treeverse/lakefs/cmd/lakefs`` runs in the wrapper
with a ``replace`` pointing at that copy. The binary is cached at
``<cache>/lakefs/<version>-webui-<lockfile sha256[:12]>/lakefs``: a new version or another
lockfile builds again.

Run: ``lakefs run`` configured only through ``LAKEFS_*`` environment variables (lakeFS reads
them through viper with prefix ``LAKEFS`` and ``.`` replaced by ``_``). The admin user is seeded
non-interactively from ``LAKEFS_INSTALLATION_*`` with credentials generated on the first ``up``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import secrets as random_source
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack.health import http_request, port_is_open, wait_until
from mlrepo_devstack.stack.processes import (
    is_alive,
    last_lines,
    log_tail,
    read_pid_file,
    run_logged,
    start_detached,
    stop_process,
)
from mlrepo_devstack.stack.state import LOCALHOST
from mlrepo_devstack.stack.status import LAKEFS, ComponentStatus

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping

    from mlrepo_devstack.stack.state import StackSettings

log = logging.getLogger(__name__)

LAKEFS_VERSION = "v1.86.0"
LAKEFS_MODULE = "github.com/treeverse/lakefs"
ADMIN_USER_NAME = "admin"
#: Modules go.sum pins that the public checksum database does not know.
GONOSUMDB = "github.com/treeverse/delta-go,github.com/treeverse/secret-detector"
BUILD_TIMEOUT = 3600.0
START_TIMEOUT = 120.0
GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
#: sha256 of ``webui/package-lock.json`` in the pinned module: part of the binary's cache key, and
#: checked before ``npm ci`` runs (a module that does not match what this stack pinned is refused).
WEBUI_LOCKFILE_SHA256 = "9aa992212786760b9f99bdfd0d3e36ceedec594b588054bd850b79adb6f2f29d"
#: Node.js lakeFS's ``webui/package.json`` asks for (``engines.node``).
MIN_NODE_MAJOR = 18
#: lakeFS environment variable holding the shared secret of the Airflow webhook receiver.
WEBHOOK_SECRET_ENV = "LAKEFSACTION_MLREPO_WEBHOOK_SECRET"


def endpoint(settings: StackSettings) -> str:
    return f"http://{LOCALHOST}:{settings.lakefs_port}"


def binary_path(settings: StackSettings, version: str = LAKEFS_VERSION) -> Path:
    """The cached binary with its web UI, keyed by lakeFS version and the web UI's lockfile."""
    return settings.cache_dir / "lakefs" / f"{version}-webui-{WEBUI_LOCKFILE_SHA256[:12]}" / "lakefs"


def go_module_cache(settings: StackSettings) -> Path:
    return settings.cache_dir / "gomod"


def _data_dir(settings: StackSettings) -> Path:
    return settings.component_dir("lakefs")


def _find_go() -> str:
    found = shutil.which("go")
    if found:
        return found
    for candidate in GO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise StackError(
        "building lakeFS needs the Go toolchain (>= 1.26.4) on PATH; "
        f"install it from https://go.dev/dl/ or put a prebuilt lakeFS {LAKEFS_VERSION} at the cache path"
    )


def _find_npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(
            f"building lakeFS's web UI needs npm and Node.js >= {MIN_NODE_MAJOR} on PATH "
            "(Debian: apt-get install nodejs npm)"
        )
    return npm


def _go_environment(settings: StackSettings) -> dict[str, str]:
    return {
        **os.environ,
        "GOMODCACHE": str(go_module_cache(settings)),
        "GONOSUMDB": GONOSUMDB,
        "GOFLAGS": "-mod=mod",
    }


def _check(completed: subprocess.CompletedProcess[str], what: str, build_log: Path) -> None:
    if completed.returncode != 0:
        raise StackError(
            f"{what} for lakeFS {LAKEFS_VERSION} failed (exit {completed.returncode}); "
            f"see {build_log}:\n{last_lines(completed.stderr or completed.stdout)}"
        )


def lockfile_sha256(webui_dir: Path) -> str:
    return hashlib.sha256((webui_dir / "package-lock.json").read_bytes()).hexdigest()


def _module_source(go: str, work_dir: Path, env: Mapping[str, str], build_log: Path) -> Path:
    """Download the pinned lakeFS module (``go mod download``) and return its directory in the module cache."""
    completed = run_logged(
        [go, "mod", "download", "-json", f"{LAKEFS_MODULE}@{LAKEFS_VERSION}"],
        log_path=build_log,
        env=env,
        cwd=work_dir,
        timeout=BUILD_TIMEOUT,
    )
    _check(completed, "go mod download", build_log)
    source = Path(json.loads(completed.stdout)["Dir"])
    if not (source / "webui" / "content.go").is_file():
        raise StackError(f"the lakeFS module at {source} has no webui/content.go to embed the web UI into")
    return source


def build_webui(source: Path, copy: Path, build_log: Path) -> None:
    """Copy the module to ``copy`` (writable) and build ``copy/webui/dist`` with npm from the lockfile."""
    shutil.copytree(source, copy, symlinks=True)
    for folder, _, files in os.walk(copy):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
    webui = copy / "webui"
    found = lockfile_sha256(webui)
    if found != WEBUI_LOCKFILE_SHA256:
        raise StackError(
            f"lakeFS {LAKEFS_VERSION}'s webui/package-lock.json has sha256 {found}, not the pinned "
            f"{WEBUI_LOCKFILE_SHA256} (mlrepo_devstack.stack.lakefs.WEBUI_LOCKFILE_SHA256)"
        )
    npm = _find_npm()
    npm_env = {**os.environ, "VERSION": LAKEFS_VERSION, "CI": "true", "NO_UPDATE_NOTIFIER": "1"}
    for argv, what in (
        ([npm, "ci", "--no-audit", "--no-fund"], "npm ci (lakeFS web UI)"),
        ([npm, "run", "build"], "npm run build (lakeFS web UI)"),
    ):
        _check(run_logged(argv, log_path=build_log, env=npm_env, cwd=webui, timeout=BUILD_TIMEOUT), what, build_log)
    if not (webui / "dist" / "index.html").is_file():
        raise StackError(f"npm run build left no webui/dist/index.html for lakeFS {LAKEFS_VERSION}; see {build_log}")


def ensure_binary(settings: StackSettings) -> Path:
    """The cached lakeFS binary with its web UI, building it from the Go module if it is not there yet."""
    target = binary_path(settings)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = _find_go()
    _find_npm()
    build_log = settings.log_path("lakefs-build")
    log.info(
        "building lakeFS %s with its web UI from its Go module (npm + go: several minutes the first time; log: %s)",
        LAKEFS_VERSION,
        build_log,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    env = _go_environment(settings)
    started = time.monotonic()
    module_files = importlib.resources.files("mlrepo_devstack.stack").joinpath("lakefs_build")
    with tempfile.TemporaryDirectory(prefix="mlrepo-lakefs-build-") as work:
        work_dir = Path(work)
        for name in ("go.mod", "go.sum"):
            Path(work_dir, name).write_bytes(module_files.joinpath(name).read_bytes())
        source = _module_source(go, work_dir, env, build_log)
        build_webui(source, work_dir / "lakefs-src", build_log)
        with Path(work_dir, "go.mod").open("a", encoding="utf-8") as go_mod:
            go_mod.write(f"\nreplace {LAKEFS_MODULE} => ./lakefs-src\n")
        completed = run_logged(
            [
                go,
                "build",
                "-ldflags",
                f"-X {LAKEFS_MODULE}/pkg/version.Version={LAKEFS_VERSION}",
                "-o",
                str(partial),
                f"{LAKEFS_MODULE}/cmd/lakefs",
            ],
            log_path=build_log,
            env=env,
            cwd=work_dir,
            timeout=BUILD_TIMEOUT,
        )
    if completed.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        _check(completed, "go build", build_log)
        raise StackError(f"go build of lakeFS {LAKEFS_VERSION} wrote no binary; see {build_log}")
    partial.chmod(0o755)
    os.replace(partial, target)
    log.info("built %s in %.0fs", target, time.monotonic() - started)
    return target


def run_environment(settings: StackSettings, secrets: Mapping[str, str]) -> dict[str, str]:
    """The environment ``lakefs run`` gets: the caller's, minus stray ``LAKEFS_*``, plus ours."""
    data = _data_dir(settings)
    base = {key: value for key, value in os.environ.items() if not key.startswith(("LAKEFS_", "LAKECTL_"))}
    return {
        **base,
        "LAKEFS_LISTEN_ADDRESS": f"{LOCALHOST}:{settings.lakefs_port}",
        "LAKEFS_DATABASE_TYPE": "local",
        "LAKEFS_DATABASE_LOCAL_PATH": str(data / "metadata"),
        "LAKEFS_BLOCKSTORE_TYPE": "local",
        "LAKEFS_BLOCKSTORE_LOCAL_PATH": str(data / "block"),
        "LAKEFS_BLOCKSTORE_SIGNING_SECRET_KEY": secrets["LAKEFS_BLOCKSTORE_SIGNING_SECRET_KEY"],
        "LAKEFS_COMMITTED_LOCAL_CACHE_DIR": str(data / "cache"),
        "LAKEFS_AUTH_ENCRYPT_SECRET_KEY": secrets["LAKEFS_AUTH_ENCRYPT_SECRET_KEY"],
        "LAKEFS_INSTALLATION_USER_NAME": ADMIN_USER_NAME,
        "LAKEFS_INSTALLATION_ACCESS_KEY_ID": secrets["LAKEFS_ACCESS_KEY_ID"],
        "LAKEFS_INSTALLATION_SECRET_ACCESS_KEY": secrets["LAKEFS_SECRET_ACCESS_KEY"],
        "LAKEFS_STATS_ENABLED": "false",
        "LAKEFS_SECURITY_CHECK_LATEST_VERSION": "false",
        "LAKEFS_EMAIL_SUBSCRIPTION_ENABLED": "false",
        # Actions (webhooks) are on by default; lakeFS has no allow-list blocking 127.0.0.1.
        "LAKEFS_ACTIONS_ENABLED": "true",
        "LAKEFS_LOGGING_LEVEL": "WARN",
        # Action files refer to it as {{ ENV.LAKEFSACTION_MLREPO_WEBHOOK_SECRET }} (the header the
        # Airflow webhook receiver checks); lakeFS only resolves variables with this prefix.
        WEBHOOK_SECRET_ENV: secrets["MLREPO_WEBHOOK_SECRET"],
    }


def knows_webhook_secret(pid: int, secrets: Mapping[str, str]) -> bool | None:
    """Whether the lakeFS process ``pid`` was started with the current webhook secret (None: unknown)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    wanted = f"{WEBHOOK_SECRET_ENV}={secrets['MLREPO_WEBHOOK_SECRET']}".encode()
    return wanted in raw.split(b"\0")


def _credentials(secrets: Mapping[str, str]) -> tuple[str, str]:
    return secrets["LAKEFS_ACCESS_KEY_ID"], secrets["LAKEFS_SECRET_ACCESS_KEY"]


def server_version(settings: StackSettings, secrets: Mapping[str, str]) -> str | None:
    """``version_config.version`` from ``GET /api/v1/config`` (authenticated), None if not healthy.

    Raises StackError when lakeFS answers but rejects the stack's credentials.
    """
    base = endpoint(settings)
    health = http_request(f"{base}/_health", timeout=2.0)
    if health is None or health.status >= 300:
        return None
    answer = http_request(f"{base}/api/v1/config", basic_auth=_credentials(secrets), timeout=5.0)
    if answer is None:
        return None
    if answer.status in (401, 403):
        raise StackError(
            f"lakeFS at {base} rejects the credentials in {settings.secrets_env_path}; its metadata "
            f"in {_data_dir(settings)} was set up with other credentials (remove that directory to reset)"
        )
    if answer.status != 200:
        return None
    version = answer.json().get("version_config", {}).get("version")
    return str(version) if version else None


def check_local_repository(settings: StackSettings, secrets: Mapping[str, str]) -> None:
    """Create a repository on ``local://<name>``, write/read an object, delete it all again."""
    base = f"{endpoint(settings)}/api/v1"
    auth = _credentials(secrets)
    name = f"mlrepo-stack-check-{random_source.token_hex(4)}"
    created = http_request(
        f"{base}/repositories",
        method="POST",
        basic_auth=auth,
        json_body={"name": name, "storage_namespace": f"local://{name}", "default_branch": "main"},
    )
    if created is None or created.status != 201:
        detail = created.body.decode(errors="replace") if created else "no answer"
        raise StackError(f"lakeFS could not create a repository on local://{name}: {detail}")
    try:
        _check_object_round_trip(base, auth, name)
    finally:
        deleted = http_request(f"{base}/repositories/{name}", method="DELETE", basic_auth=auth)
        if deleted is None or deleted.status != 204:
            log.warning("could not delete check repository %s", name)
        shutil.rmtree(_data_dir(settings) / "block" / name, ignore_errors=True)


def _check_object_round_trip(base: str, auth: tuple[str, str], repository: str) -> None:
    payload = b"mlrepo stack check\n"
    path = quote("check/object.txt", safe="")
    boundary = random_source.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="object.txt"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    uploaded = http_request(
        f"{base}/repositories/{repository}/branches/main/objects?path={path}",
        method="POST",
        basic_auth=auth,
        body=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        timeout=10.0,
    )
    if uploaded is None or uploaded.status != 201:
        detail = uploaded.body.decode(errors="replace") if uploaded else "no answer"
        raise StackError(f"lakeFS upload to the local blockstore failed: {detail}")
    read_back = http_request(f"{base}/repositories/{repository}/refs/main/objects?path={path}", basic_auth=auth)
    if read_back is None or read_back.status != 200 or read_back.body != payload:
        raise StackError("lakeFS did not return the object just written to the local blockstore")


def _running_status(settings: StackSettings, pid: int, version: str, reused: bool) -> ComponentStatus:
    detail = f"{version}, admin user {ADMIN_USER_NAME}"
    if reused:
        detail += ", already running"
    return ComponentStatus(LAKEFS, "running", endpoint=endpoint(settings), detail=detail, pid=pid, version=version)


def up(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    """Start lakeFS unless our instance is already running and healthy."""
    pid_path = settings.pid_path(LAKEFS)
    running_pid = read_pid_file(pid_path)
    if running_pid is not None:
        found: list[str] = []

        def healthy() -> bool:
            version = server_version(settings, secrets)
            if version:
                found.append(version)
            return bool(version)

        if wait_until(healthy, timeout=30.0, keep_waiting=lambda: is_alive(running_pid)):
            return _running_status(settings, running_pid, found[-1], reused=True)
        log.warning("lakeFS pid %d is not healthy; restarting it", running_pid)
        stop_process(pid_path, "lakeFS")
    if port_is_open(LOCALHOST, settings.lakefs_port):
        raise StackError(
            f"port {settings.lakefs_port} on {LOCALHOST} is taken by another process; "
            "set MLREPO_LAKEFS_PORT to a free port"
        )
    binary = ensure_binary(settings)
    data = _data_dir(settings)
    for sub_dir in ("metadata", "block", "cache"):
        (data / sub_dir).mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    log_path = settings.log_path(LAKEFS)
    pid = start_detached(
        [str(binary), "run"],
        env=run_environment(settings, secrets),
        log_path=log_path,
        pid_path=pid_path,
        cwd=data,
    )
    versions: list[str] = []

    def started() -> bool:
        version = server_version(settings, secrets)
        if version:
            versions.append(version)
        return bool(version)

    try:
        healthy_in_time = wait_until(started, timeout=START_TIMEOUT, keep_waiting=lambda: is_alive(pid))
    except StackError:
        stop_process(pid_path, "lakeFS")  # e.g. it rejects our credentials: do not leave it running
        raise
    if not healthy_in_time:
        alive = is_alive(pid)
        stop_process(pid_path, "lakeFS")
        raise StackError(
            f"lakeFS {'did not become healthy' if alive else 'exited'} (log {log_path}):\n{log_tail(log_path)}"
        )
    if versions[-1] != LAKEFS_VERSION:
        log.warning("lakeFS reports version %s, expected %s", versions[-1], LAKEFS_VERSION)
    check_local_repository(settings, secrets)
    log.info("lakeFS %s running at %s (pid %d)", versions[-1], endpoint(settings), pid)
    return _running_status(settings, pid, versions[-1], reused=False)


def status(settings: StackSettings, secrets: Mapping[str, str]) -> ComponentStatus:
    pid = read_pid_file(settings.pid_path(LAKEFS))
    if pid is None:
        detail = ""
        if port_is_open(LOCALHOST, settings.lakefs_port):
            detail = f"port {settings.lakefs_port} is taken by a process that is not ours"
        return ComponentStatus(LAKEFS, "stopped", detail=detail)
    try:
        version = server_version(settings, secrets) if secrets else None
    except StackError as err:
        return ComponentStatus(LAKEFS, "stopped", endpoint=endpoint(settings), detail=str(err), pid=pid)
    if version is None:
        return ComponentStatus(
            LAKEFS, "stopped", endpoint=endpoint(settings), detail="process alive but not healthy", pid=pid
        )
    return _running_status(settings, pid, version, reused=False)


def down(settings: StackSettings) -> bool:
    return stop_process(settings.pid_path(LAKEFS), "lakeFS")
