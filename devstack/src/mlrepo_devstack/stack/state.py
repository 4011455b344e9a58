"""Where the local stack keeps its things, and the ``stack.env`` / ``secrets.env`` files.

Two directories:

* the **state dir** (``$MLREPO_HOME``, default ``~/.local/share/airflow-mlrepo``) holds data,
  logs, pid files, the generated secrets and ``stack.env``;
* the **cache dir** (``$MLREPO_CACHE_DIR``, default ``~/.cache/airflow-mlrepo``) holds what can be
  rebuilt or downloaded again: the lakeFS binary (keyed by version), the Go module cache and
  Maven's local repository.

``secrets.env`` is the source of truth for the random secrets generated on the first ``up``;
``stack.env`` is what users and tests read. Both are written atomically with mode 0600.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import secrets
import string
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_mlrepo.exceptions import StackError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

STACK_ENV_FILENAME = "stack.env"
SECRETS_ENV_FILENAME = "secrets.env"
LOCK_FILENAME = "stack.lock"

DEFAULT_LAKEFS_PORT = 8000
DEFAULT_POSTGRES_PORT = 5433
DEFAULT_MARQUEZ_PORT = 5000
DEFAULT_MARQUEZ_ADMIN_PORT = 5001
DEFAULT_POSTGRES_CLUSTER = "mlrepo"
DEFAULT_AIRFLOW_PORT = 8080

LOCALHOST = "127.0.0.1"

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _port_from_environ(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError as err:
        raise StackError(f"{name}={raw!r} is not a port number") from err
    if not 0 < port < 65536:
        raise StackError(f"{name}={port} is outside 1..65535")
    return port


def _path_from_environ(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "").strip()
    return Path(raw).expanduser().absolute() if raw else None


def _url_from_environ(environ: Mapping[str, str], name: str, credential_variable: str) -> str | None:
    """An ``http(s)://host[:port][/path]`` URL without user info or query, trailing ``/`` removed."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise StackError(f"{name}={raw!r} is not an http(s) URL such as http://marquez.example:5000")
    if parts.username or parts.password:
        raise StackError(f"{name} must not carry credentials in the URL; put the API key in {credential_variable}")
    if parts.query or parts.fragment:
        raise StackError(f"{name}={raw!r}: give the base URL of the service, without a query or fragment")
    return raw.rstrip("/")


@dataclass(frozen=True)
class StackSettings:
    """Directories, ports and names of one local stack, read from the environment."""

    state_dir: Path
    cache_dir: Path
    lakefs_port: int = DEFAULT_LAKEFS_PORT
    postgres_port: int = DEFAULT_POSTGRES_PORT
    postgres_cluster: str = DEFAULT_POSTGRES_CLUSTER
    marquez_port: int = DEFAULT_MARQUEZ_PORT
    marquez_admin_port: int = DEFAULT_MARQUEZ_ADMIN_PORT
    airflow_port: int = DEFAULT_AIRFLOW_PORT
    #: DAGs folder of the stack's Airflow (``MLREPO_DAGS_FOLDER``); None: ``<state>/airflow/dags``.
    dags_folder: Path | None = None
    #: An already-running Marquez (``MLREPO_MARQUEZ_URL``): the stack then starts none and uses it.
    marquez_url: str | None = None
    #: Its API key (``MLREPO_MARQUEZ_API_KEY``), sent as ``Authorization: Bearer <key>``; never printed.
    marquez_api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        """Settings from ``MLREPO_*`` variables (``os.environ`` when not given)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or Path.home())
        state_dir = (
            Path(env["MLREPO_HOME"]) if env.get("MLREPO_HOME") else (home / ".local" / "share" / "airflow-mlrepo")
        )
        cache_dir = (
            Path(env["MLREPO_CACHE_DIR"]) if env.get("MLREPO_CACHE_DIR") else (home / ".cache" / "airflow-mlrepo")
        )
        cluster = env.get("MLREPO_POSTGRES_CLUSTER", "").strip() or DEFAULT_POSTGRES_CLUSTER
        if not re.fullmatch(r"[a-z][a-z0-9_]*", cluster):
            raise StackError(f"MLREPO_POSTGRES_CLUSTER={cluster!r}: use lower-case letters, digits, _")
        return cls(
            state_dir=state_dir.expanduser().absolute(),
            cache_dir=cache_dir.expanduser().absolute(),
            lakefs_port=_port_from_environ(env, "MLREPO_LAKEFS_PORT", DEFAULT_LAKEFS_PORT),
            postgres_port=_port_from_environ(env, "MLREPO_POSTGRES_PORT", DEFAULT_POSTGRES_PORT),
            postgres_cluster=cluster,
            marquez_port=_port_from_environ(env, "MLREPO_MARQUEZ_PORT", DEFAULT_MARQUEZ_PORT),
            marquez_admin_port=_port_from_environ(env, "MLREPO_MARQUEZ_ADMIN_PORT", DEFAULT_MARQUEZ_ADMIN_PORT),
            airflow_port=_port_from_environ(env, "MLREPO_AIRFLOW_PORT", DEFAULT_AIRFLOW_PORT),
            dags_folder=_path_from_environ(env, "MLREPO_DAGS_FOLDER"),
            marquez_url=_url_from_environ(env, "MLREPO_MARQUEZ_URL", "MLREPO_MARQUEZ_API_KEY"),
            marquez_api_key=env.get("MLREPO_MARQUEZ_API_KEY", "").strip() or None,
        )

    @property
    def stack_env_path(self) -> Path:
        return self.state_dir / STACK_ENV_FILENAME

    @property
    def secrets_env_path(self) -> Path:
        return self.state_dir / SECRETS_ENV_FILENAME

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """Pid files live here."""
        return self.state_dir / "run"

    def component_dir(self, component: str) -> Path:
        """Data directory of one component, e.g. ``<state>/lakefs``."""
        return self.state_dir / component

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def ensure_dirs(self) -> None:
        for directory in (self.state_dir, self.logs_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)


# --- KEY=value files --------------------------------------------------------------------------


def _decode_value(raw: str) -> str:
    """Undo the quoting :func:`_encode_value` applies (and accept plain ``KEY=value``)."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("'\\''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _encode_value(value: str) -> str:
    """Leave simple values bare; single-quote the rest the way a POSIX shell reads them."""
    if "\n" in value or "\r" in value:
        raise ValueError("values in env files cannot contain line breaks")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./~-]*", value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, separator, raw_value = stripped.partition("=")
        key = key.strip()
        if not separator or not _ENV_KEY.match(key):
            raise StackError(f"line {number} is not KEY=value")
        values[key] = _decode_value(raw_value)
    return values


def format_env_text(values: Mapping[str, str], header: str | None = None) -> str:
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for key, value in values.items():
        if not _ENV_KEY.match(key):
            raise ValueError(f"{key!r} is not a valid variable name")
        lines.append(f"{key}={_encode_value(value)}")
    return "\n".join(lines) + "\n"


def read_env_file(path: Path) -> dict[str, str]:
    """Read a ``KEY=value`` file written by :func:`write_env_file`."""
    text = path.read_text(encoding="utf-8")
    try:
        return parse_env_text(text)
    except StackError as err:
        raise StackError(f"{path}: {err}") from err


def write_env_file(path: Path, values: Mapping[str, str], header: str | None = None) -> None:
    """Write ``KEY=value`` lines atomically; the file is created with mode 0600."""
    text = format_env_text(values, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
    path.chmod(0o600)


# --- generated secrets ------------------------------------------------------------------------

_UPPER_ALNUM = string.ascii_uppercase + string.digits


def new_fernet_key() -> str:
    """A Fernet key (URL-safe base64 of 32 random bytes), the form Airflow's ``fernet_key`` takes."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


_ALNUM = string.ascii_letters + string.digits


def random_text(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_lakefs_access_key_id() -> str:
    """``AKIA`` plus 16 upper-case letters and digits, the shape of an AWS-style key id."""
    return "AKIA" + random_text(16, _UPPER_ALNUM)


def new_lakefs_secret_access_key() -> str:
    return random_text(40)


_SECRET_FACTORIES: dict[str, Callable[[], str]] = {
    "LAKEFS_ACCESS_KEY_ID": new_lakefs_access_key_id,
    "LAKEFS_SECRET_ACCESS_KEY": new_lakefs_secret_access_key,
    "LAKEFS_AUTH_ENCRYPT_SECRET_KEY": lambda: random_text(48),
    "LAKEFS_BLOCKSTORE_SIGNING_SECRET_KEY": lambda: random_text(48),
    "POSTGRES_AIRFLOW_PASSWORD": lambda: random_text(32),
    "POSTGRES_MARQUEZ_PASSWORD": lambda: random_text(32),
    # The lakeFS webhook -> Airflow shared secret (lakeFS env LAKEFSACTION_MLREPO_WEBHOOK_SECRET,
    # Airflow [mlrepo] webhook_secret), and what the stack's Airflow components must share.
    "MLREPO_WEBHOOK_SECRET": lambda: random_text(40),
    "AIRFLOW_JWT_SECRET": lambda: random_text(48),
    "AIRFLOW_FERNET_KEY": new_fernet_key,
}


def load_or_create_secrets(settings: StackSettings) -> dict[str, str]:
    """The stack's secrets, generating (once) and saving any that are missing."""
    path = settings.secrets_env_path
    existing = read_env_file(path) if path.exists() else {}
    missing = [key for key in _SECRET_FACTORIES if not existing.get(key)]
    if missing:
        for key in missing:
            existing[key] = _SECRET_FACTORIES[key]()
        write_env_file(
            path,
            existing,
            header="Secrets generated by `mlrepo stack up`. Do not share; delete the state dir to rotate.",
        )
    return existing


def read_secrets(settings: StackSettings) -> dict[str, str]:
    """The stack's secrets without generating anything (empty if never generated)."""
    path = settings.secrets_env_path
    return read_env_file(path) if path.exists() else {}


@contextmanager
def stack_lock(settings: StackSettings) -> Iterator[None]:
    """Serialise ``up``/``down`` of one state dir across processes (pytest workers, shells)."""
    settings.ensure_dirs()
    with (settings.state_dir / LOCK_FILENAME).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
