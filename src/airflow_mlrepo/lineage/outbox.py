"""A durable OpenLineage transport: every event goes to an on-disk outbox first, then to Marquez.

``emit`` appends the event (after the Marquez registration events it needs, see
:mod:`airflow_mlrepo.lineage.marquez`) as one *entry* file to ``<outbox>/pending/`` (write to a
temporary file, fsync, rename: an entry is either complete or absent) and returns; it never talks to
the network, so Marquez being down or slow never blocks a task. A **deliverer** process, started on
demand and detached from the task, posts the entries to the HTTP endpoint strictly in order (entry
names sort by emission time), one event at a time, with exponential backoff while the endpoint is
down, and removes an entry only after every event in it was accepted. It exits after a while without
work; the next ``emit`` starts it again. One deliverer per outbox at a time (an exclusive
``flock`` on ``<outbox>/deliverer.lock``).

Semantics (``docs/how-to/lineage-to-marquez.md``):

* **at least once**: an event whose POST succeeded but whose answer was lost is sent again;
* **in order** per outbox: events are delivered in the order they were written (entries by name,
  events inside an entry by line); an event is never sent before all earlier ones were accepted;
* an entry the endpoint rejects as invalid (HTTP 4xx other than 408/429) moves to
  ``<outbox>/rejected/`` instead of blocking the queue forever; ``mlrepo lineage replay
  --include-rejected`` retries them.

Configure it as the openlineage provider's transport (the client builds it by class path)::

    [openlineage]
    transport = {"type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
                 "http": {"url": "http://marquez:5000", "endpoint": "api/v1/lineage"}}

``http`` takes the options of openlineage's ``http`` transport (``url``, ``endpoint``, ``timeout``,
``auth``, ``custom_headers``, ``verify``...). Without ``http`` events are only kept (deliver them with
``mlrepo lineage replay --url ...``). Other options: ``outbox_dir`` (default
``$AIRFLOW_HOME/mlrepo-lineage-outbox``), ``marquez_exact_versions`` (default true), ``fsync``
(default true), ``deliver_in_background`` (default true), ``idle_exit_seconds`` (default 60),
``max_backoff_seconds`` (default 30).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import json
import logging
import logging.handlers
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import attr
from openlineage.client.transport import register_transport
from openlineage.client.transport.transport import Config, Transport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from openlineage.client.client import Event

log = logging.getLogger(__name__)

OUTBOX_ENV = "MLREPO_LINEAGE_OUTBOX"
#: The deliverer reads its HTTP options (which may hold an API key) from this variable, never argv.
HTTP_CONFIG_ENV = "MLREPO_LINEAGE_HTTP_CONFIG"
DEFAULT_DIR_NAME = "mlrepo-lineage-outbox"
PENDING = "pending"
REJECTED = "rejected"
LOCK_FILE = "deliverer.lock"
STATE_FILE = "deliverer-state.json"
LOG_FILE = "deliverer.log"
ENTRY_SUFFIX = ".jsonl"
_counter = itertools.count()
_counter_lock = threading.Lock()


def default_outbox_dir() -> Path:
    """``$MLREPO_LINEAGE_OUTBOX``, else ``$AIRFLOW_HOME/mlrepo-lineage-outbox`` (``~/airflow`` by default)."""
    explicit = os.environ.get(OUTBOX_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return Path(home).expanduser() / DEFAULT_DIR_NAME


def redact_url(url: str) -> str:
    """A URL without user info (for logs and status)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class DeliveryError(Exception):
    """An event was not accepted. ``retryable`` False: the endpoint rejected it as invalid."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# ---------------------------------------------------------------------------------------- outbox


@dataclass
class Outbox:
    """The on-disk queue: ``pending/`` entries (one JSON event a line), ``rejected/``, lock and state."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def pending_dir(self) -> Path:
        return self.path / PENDING

    @property
    def rejected_dir(self) -> Path:
        return self.path / REJECTED

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def ensure(self) -> None:
        for directory in (self.path, self.pending_dir, self.rejected_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def append(self, lines: Sequence[str], *, fsync: bool = True) -> Path:
        """Write one entry atomically; its name sorts after every entry written before it."""
        if not lines:
            raise ValueError("An outbox entry needs at least one event")
        self.ensure()
        with _counter_lock:
            sequence = next(_counter)
        name = f"{time.time_ns():020d}-{os.getpid():010d}-{sequence:08d}{ENTRY_SUFFIX}"
        data = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.pending_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            target = self.pending_dir / name
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if fsync:
            _fsync_dir(self.pending_dir)
        return target

    def pending(self) -> list[Path]:
        """Pending entries, oldest first."""
        return _entries(self.pending_dir)

    def rejected(self) -> list[Path]:
        return _entries(self.rejected_dir)

    def requeue_rejected(self) -> int:
        """Move rejected entries back to ``pending/`` (keeping their names, so their place in the order)."""
        moved = 0
        for entry in self.rejected():
            os.replace(entry, self.pending_dir / entry.name)
            moved += 1
        return moved

    @contextlib.contextmanager
    def delivery_lock(self, *, wait: float = 0.0) -> Iterator[bool]:
        """Hold the deliverer lock; yields False if another process holds it after ``wait`` seconds."""
        self.ensure()
        handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the whole block
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def deliverer_running(self) -> bool:
        """Whether some process holds the deliverer lock right now."""
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_state(self, state: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path)
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(state), handle, sort_keys=True)
        os.replace(tmp, self.state_path)

    def status(self) -> dict[str, Any]:
        pending = self.pending()
        events = 0
        for entry in pending:
            with contextlib.suppress(FileNotFoundError):
                events += sum(1 for line in entry.read_text().splitlines() if line.strip())
        oldest = _entry_time(pending[0]) if pending else None
        return {
            "outbox": str(self.path),
            "pending_entries": len(pending),
            "pending_events": events,
            "oldest_pending_age_seconds": round(time.time() - oldest, 3) if oldest else None,
            "rejected_entries": len(self.rejected()),
            "deliverer_running": self.deliverer_running(),
            "deliverer": self.read_state(),
        }


def _entries(directory: Path) -> list[Path]:
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(ENTRY_SUFFIX))
    except FileNotFoundError:
        return []
    return [directory / name for name in names]


def _entry_time(entry: Path) -> float | None:
    try:
        return int(entry.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -------------------------------------------------------------------------------------- delivery


class HttpSender:
    """Posts one serialized event with openlineage's own ``HttpTransport`` (auth, headers, TLS), no retries."""

    def __init__(self, http_config: Mapping[str, Any]) -> None:
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        options = dict(http_config)
        options.pop("type", None)
        # backoff is ours (the queue keeps its order); the HTTP layer tries exactly once
        options["retry"] = {"total": 0, "connect": 0, "read": 0, "status": 0, "status_forcelist": []}
        options.setdefault("timeout", 5.0)
        self.transport = HttpTransport(HttpConfig.from_dict(options))
        self.url = redact_url(str(options["url"]))

    def run_end_time(self, run_id: str) -> str | None:
        """Marquez's ``endedAt`` of a run (``GET /api/v1/jobs/runs/{id}``), None if unknown or unreachable."""
        import requests

        config = self.transport.config
        headers = {"Accept": "application/json"}
        bearer = config.auth.get_bearer() if config.auth is not None else None
        if bearer:
            headers["Authorization"] = bearer
        try:
            answer = requests.get(
                f"{str(config.url).rstrip('/')}/api/v1/jobs/runs/{run_id}",
                headers=headers,
                timeout=config.timeout,
                verify=config.verify,
            )
            ended = answer.json().get("endedAt") if answer.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError):
            return None
        return str(ended) if ended else None

    def prepare_registration(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """A Marquez registration as it must be posted now (:func:`airflow_mlrepo.lineage.marquez.keep_run_times`)."""
        from airflow_mlrepo.lineage.marquez import keep_run_times

        return keep_run_times(event, self.run_end_time)

    def __call__(self, event: Mapping[str, Any]) -> None:
        import requests

        try:
            self.transport.emit(dict(event))  # type: ignore[arg-type]
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            retryable = status >= 500 or status in (408, 429) or status == 0
            raise DeliveryError(f"{self.url} answered HTTP {status}", retryable=retryable) from exc
        except Exception as exc:
            raise DeliveryError(f"{self.url} unreachable: {type(exc).__name__}", retryable=True) from exc


@dataclass
class DeliveryReport:
    delivered_events: int = 0
    delivered_entries: int = 0
    rejected_entries: int = 0
    failures: int = 0
    remaining_entries: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


def deliver(
    outbox: Outbox,
    send: Callable[[Mapping[str, Any]], None],
    *,
    idle_exit: float = 0.0,
    give_up_after: float | None = None,
    min_backoff: float = 0.5,
    max_backoff: float = 30.0,
    poll_interval: float = 0.2,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
) -> DeliveryReport:
    """Deliver pending entries in order; the caller holds :meth:`Outbox.delivery_lock`.

    Returns when the outbox stayed empty for ``idle_exit`` seconds (0: as soon as it is empty), when
    the endpoint kept failing for ``give_up_after`` seconds (None: never give up), or on ``stop``.
    """
    report = DeliveryReport()
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    backoff = min_backoff
    failing_since: float | None = None
    idle_since: float | None = None
    state: dict[str, Any] = {**outbox.read_state(), "pid": os.getpid(), "started": time.time()}
    outbox.write_state(state)
    while not stop.is_set():
        pending = outbox.pending()
        if not pending:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= idle_exit:
                break
            wait(poll_interval)
            continue
        idle_since = None
        entry = pending[0]
        try:
            ok = _deliver_entry(outbox, entry, send, report)
        except DeliveryError as exc:
            report.failures += 1
            report.last_error = str(exc)
            state.update(last_error=str(exc), last_error_at=time.time(), consecutive_failures=report.failures)
            outbox.write_state(state)
            failing_since = failing_since or time.monotonic()
            if give_up_after is not None and time.monotonic() - failing_since >= give_up_after:
                break
            log.warning("Lineage delivery failed (%s); retrying in %.1fs", exc, backoff)
            wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        failing_since = None
        backoff = min_backoff
        if ok:
            report.delivered_entries += 1
        else:
            report.rejected_entries += 1
        state.update(
            last_success_at=time.time(),
            consecutive_failures=0,
            delivered_events=report.delivered_events,
            rejected_entries=report.rejected_entries,
        )
        outbox.write_state(state)
    report.remaining_entries = len(outbox.pending())
    state.update(stopped=time.time(), remaining_entries=report.remaining_entries)
    outbox.write_state(state)
    return report


def _deliver_entry(
    outbox: Outbox, entry: Path, send: Callable[[Mapping[str, Any]], None], report: DeliveryReport
) -> bool:
    """Send every event of one entry in order; True when delivered, False when moved to rejected/."""
    try:
        lines = [line for line in entry.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return True
    prepare = getattr(send, "prepare_registration", None)
    for index, line in enumerate(lines):
        try:
            event = json.loads(line)
            # every line but an entry's last is a Marquez registration (OutboxTransport.entry_lines)
            send(prepare(event) if prepare is not None and index < len(lines) - 1 else event)
        except DeliveryError as exc:
            if index:
                # keep only what is left, so a restart does not send the delivered part again
                _rewrite(entry, lines[index:])
            if exc.retryable:
                raise
            log.error("Lineage endpoint rejected an event of %s (%s); moved to %s", entry.name, exc, REJECTED)
            report.errors.append(f"{entry.name}: {exc}")
            os.replace(entry, outbox.rejected_dir / entry.name)
            return False
        except json.JSONDecodeError:
            log.error("Unreadable line in lineage outbox entry %s; moved to %s", entry.name, REJECTED)
            os.replace(entry, outbox.rejected_dir / entry.name)
            return False
        report.delivered_events += 1
    with contextlib.suppress(FileNotFoundError):
        entry.unlink()
    return True


def _rewrite(entry: Path, lines: Sequence[str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=entry.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    os.replace(tmp, entry)


def start_deliverer(outbox: Outbox, http_config: Mapping[str, Any], *, idle_exit: float, max_backoff: float) -> bool:
    """Start a detached deliverer unless one runs; True if one was started."""
    if outbox.deliverer_running():
        return False
    env = dict(os.environ)
    env[HTTP_CONFIG_ENV] = json.dumps(dict(http_config))
    command = [
        sys.executable,
        "-m",
        "airflow_mlrepo.lineage.outbox",
        "deliver",
        "--outbox",
        str(outbox.path),
        "--idle-exit",
        str(idle_exit),
        "--max-backoff",
        str(max_backoff),
    ]
    with open(outbox.path / LOG_FILE, "ab") as log_handle:
        subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=log_handle,
            start_new_session=True,
            close_fds=True,
        )
    return True


# ------------------------------------------------------------------------------------- transport


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@attr.define
class OutboxConfig(Config):
    outbox_dir: str | None = None
    http: dict[str, Any] | None = None
    marquez_exact_versions: bool = True
    fsync: bool = True
    deliver_in_background: bool = True
    idle_exit_seconds: float = 60.0
    max_backoff_seconds: float = 30.0

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> OutboxConfig:
        http = params.get("http")
        if isinstance(http, str):
            http = json.loads(http)
        if http is not None and (not isinstance(http, dict) or not http.get("url")):
            raise ValueError("OutboxTransport: 'http' must be a mapping with at least 'url' (the Marquez base URL)")
        return cls(
            outbox_dir=params.get("outbox_dir") or None,
            http=http,
            marquez_exact_versions=_as_bool(params.get("marquez_exact_versions"), True),
            fsync=_as_bool(params.get("fsync"), True),
            deliver_in_background=_as_bool(params.get("deliver_in_background"), True),
            idle_exit_seconds=float(params.get("idle_exit_seconds", 60.0)),
            max_backoff_seconds=float(params.get("max_backoff_seconds", 30.0)),
        )


class OutboxTransport(Transport):
    """OpenLineage transport: append to the on-disk outbox, deliver in the background (module docstring)."""

    kind = "mlrepo_outbox"
    config_class = OutboxConfig

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self.outbox = Outbox(Path(config.outbox_dir).expanduser() if config.outbox_dir else default_outbox_dir())

    def entry_lines(self, event: Event) -> list[str]:
        from openlineage.client.serde import Serde

        document = Serde.to_dict(event)
        documents: list[Mapping[str, Any]] = []
        if self.config.marquez_exact_versions:
            from airflow_mlrepo.lineage.marquez import registration_events

            documents.extend(registration_events(document))
        documents.append(document)
        return [json.dumps(item, sort_keys=True, separators=(",", ":")) for item in documents]

    def emit(self, event: Event) -> Path:
        entry = self.outbox.append(self.entry_lines(event), fsync=self.config.fsync)
        if self.config.http and self.config.deliver_in_background:
            try:
                start_deliverer(
                    self.outbox,
                    self.config.http,
                    idle_exit=self.config.idle_exit_seconds,
                    max_backoff=self.config.max_backoff_seconds,
                )
            except Exception:
                log.exception("Could not start the lineage deliverer; the event is kept in %s", entry)
        return entry

    def close(self, timeout: float = -1) -> bool:
        # delivery belongs to the deliverer process; what is not delivered yet is safe on disk
        return True


# ------------------------------------------------------------------------------------ deliverer


def _configure_deliverer_logging(outbox: Outbox) -> None:
    handler = logging.handlers.RotatingFileHandler(outbox.path / LOG_FILE, maxBytes=1_000_000, backupCount=2)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run_deliverer(outbox: Outbox, http_config: Mapping[str, Any], *, idle_exit: float, max_backoff: float) -> int:
    """The background deliverer: deliver while there is work, then release the lock and exit."""
    send = HttpSender(http_config)
    while True:
        with outbox.delivery_lock() as acquired:
            if not acquired:
                return 0  # another deliverer is at work
            log.info("Delivering lineage from %s to %s", outbox.path, send.url)
            deliver(outbox, send, idle_exit=idle_exit, max_backoff=max_backoff)
        # an emitter that found the lock held just before we released it relies on this re-check
        if not outbox.pending():
            return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_mlrepo.lineage.outbox")
    commands = parser.add_subparsers(dest="command", required=True)
    deliver_parser = commands.add_parser("deliver", help="deliver the outbox in the background (started by emit)")
    deliver_parser.add_argument("--outbox", required=True)
    deliver_parser.add_argument("--idle-exit", type=float, default=60.0)
    deliver_parser.add_argument("--max-backoff", type=float, default=30.0)
    args = parser.parse_args(argv)
    outbox = Outbox(Path(args.outbox))
    outbox.ensure()
    _configure_deliverer_logging(outbox)
    raw = os.environ.pop(HTTP_CONFIG_ENV, "")
    if not raw:
        log.error("%s is not set: nothing to deliver to", HTTP_CONFIG_ENV)
        return 2
    return run_deliverer(outbox, json.loads(raw), idle_exit=args.idle_exit, max_backoff=args.max_backoff)


# also usable as {"type": "mlrepo_outbox"} once this module was imported (the class path always works)
register_transport(OutboxTransport)

__all__ = [
    "DeliveryError",
    "HttpSender",
    "Outbox",
    "OutboxConfig",
    "OutboxTransport",
    "default_outbox_dir",
    "deliver",
    "start_deliverer",
]

if __name__ == "__main__":
    sys.exit(main())
