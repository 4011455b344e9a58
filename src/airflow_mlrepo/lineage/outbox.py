"""A durable OpenLineage transport: every event goes to an on-disk outbox first, then to Marquez.

``emit`` appends the event (after the Marquez registration events it needs, see
:mod:`airflow_mlrepo.lineage.marquez`) as one *entry* file to ``<outbox>/pending/`` (write to a
temporary file, fsync, rename: an entry is either complete or absent) and returns; it never talks to
the network, so Marquez being down or slow never blocks a task. A **deliverer** process, started on
demand and detached from the task, posts the entries to the HTTP endpoint strictly in order (entry
names start with a sequence number taken under ``<outbox>/sequence.lock``, never the wall clock),
one event at a time, with exponential backoff while the endpoint is down, and removes an entry only
after every event in it was accepted. It exits after a while without work; the next ``emit`` starts
it again. One deliverer per outbox at a time (an exclusive ``flock`` on ``<outbox>/deliverer.lock``).

Every rewrite of an entry (what is left after a partial delivery, a move to ``rejected/`` or
``quarantine/``) is fsynced, file and directory. Each entry is handled on its own: one that cannot
be read (not UTF-8, a line that is not a JSON object...) moves to ``<outbox>/quarantine/`` with a
``.reason`` file beside it, and the queue goes on.

Short-lived workers (KubernetesExecutor pods, autoscaled Celery workers) may be gone before a
detached deliverer ran: ``flush_at_task_end_seconds`` (default: 1 s on such workers, see
:func:`short_lived_worker`) makes ``emit`` of a task's final event (COMPLETE/FAIL/ABORT) deliver
synchronously for at most that long, and a loud warning names what is still pending when the outbox
is on an ephemeral disk. The outbox's place is ``outbox_dir``, else ``$MLREPO_LINEAGE_OUTBOX``, else
``[mlrepo] lineage_outbox_dir``, else ``$AIRFLOW_HOME/mlrepo-lineage-outbox``.

Semantics (``docs/how-to/lineage-to-marquez.md``):

* **at least once**: an event whose POST succeeded but whose answer was lost is sent again;
* **in order** per outbox: events are delivered in the order they were written (entries by name,
  events inside an entry by line); an event is never sent before all earlier ones were accepted;
* an entry the endpoint rejects as invalid (HTTP 400, 413, 415 or 422: :data:`FINAL_STATUSES`) moves to
  ``<outbox>/rejected/`` instead of blocking the queue forever; ``mlrepo lineage replay
  --include-rejected`` retries them. Every other failure (401/403: wrong credentials, 404: wrong
  URL, 408/429, 5xx, unreachable) is retried with backoff and logged as an error: a wrong API key
  keeps the queue until it is fixed, it does not throw it away.

Configure it as the openlineage provider's transport (the client builds it by class path)::

    [openlineage]
    transport = {"type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
                 "http": {"url": "http://marquez:5000", "endpoint": "api/v1/lineage"}}

``http`` takes the options of openlineage's ``http`` transport (``url``, ``endpoint``, ``timeout``,
``auth``, ``custom_headers``, ``verify``...). Without ``http`` events are only kept (deliver them with
``mlrepo lineage replay --url ...``). Other options: ``outbox_dir`` (default
``$AIRFLOW_HOME/mlrepo-lineage-outbox``), ``marquez_exact_versions`` (default true), ``fsync``
(default true), ``deliver_in_background`` (default true), ``idle_exit_seconds`` (default 60),
``max_backoff_seconds`` (default 30), ``flush_at_task_end_seconds`` (default ``auto``: 1 on a
short-lived worker, else 0), ``persistent`` (default ``auto``: guess from the file system whether
the outbox outlives the worker).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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
QUARANTINE = "quarantine"
REASON_SUFFIX = ".reason"
LOCK_FILE = "deliverer.lock"
SEQUENCE_FILE = "sequence"
SEQUENCE_LOCK_FILE = "sequence.lock"
STATE_FILE = "deliverer-state.json"
LOG_FILE = "deliverer.log"
ENTRY_SUFFIX = ".jsonl"
CONFIG_SECTION = "mlrepo"
#: HTTP answers that mean "this event is invalid": sending it again cannot help.
FINAL_STATUSES = frozenset({400, 413, 415, 422})
#: HTTP answers that mean "our credentials are wrong": retried, and logged as errors.
AUTH_STATUSES = frozenset({401, 403})
#: Longest synchronous flush at task end on a short-lived worker.
DEFAULT_TASK_END_FLUSH_SECONDS = 1.0
#: File systems that do not outlive a container (its writable layer, memory).
EPHEMERAL_FILESYSTEMS = frozenset({"overlay", "tmpfs", "ramfs", "aufs"})
_FINAL_EVENT_TYPES = frozenset({"COMPLETE", "FAIL", "ABORT"})
_sequence_lock = threading.Lock()


def _airflow_option(option: str) -> str:
    """``[mlrepo] <option>`` from Airflow's configuration, or "" (also when Airflow is not installed)."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - the provider always has Airflow; the CLI may not
        return ""
    return str(conf.get(CONFIG_SECTION, option, fallback="") or "")


def default_outbox_dir() -> Path:
    """``$MLREPO_LINEAGE_OUTBOX``, else ``[mlrepo] lineage_outbox_dir``, else ``$AIRFLOW_HOME/<DEFAULT_DIR_NAME>``."""
    explicit = os.environ.get(OUTBOX_ENV) or _airflow_option("lineage_outbox_dir")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return Path(home).expanduser() / DEFAULT_DIR_NAME


def filesystem_type(path: Path) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        fs_type = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def short_lived_worker() -> bool:
    """Whether tasks run where no long-lived deliverer can be relied on (a pod, or a K8s executor)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    executor = os.environ.get("AIRFLOW__CORE__EXECUTOR", "")
    return "Kubernetes" in executor


def ephemeral_disk(path: Path) -> bool:
    """Whether ``path`` is on storage that goes away with the worker (a container layer or memory)."""
    fs_type = filesystem_type(path)
    if fs_type in EPHEMERAL_FILESYSTEMS:
        return True
    # in a pod, anything not mounted on its own (the image's root file system) dies with it
    return short_lived_worker() and _mount_point(path) == "/"


def _mount_point(path: Path) -> str:
    current = Path(os.path.realpath(path))
    while not current.exists():
        current = current.parent
    while not os.path.ismount(current):
        current = current.parent
    return str(current)


def redact_url(url: str) -> str:
    """A URL without user info (for logs and status)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class DeliveryError(Exception):
    """An event was not accepted. ``retryable`` False: the endpoint rejected it as invalid."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class MalformedEntryError(ValueError):
    """An outbox entry that cannot be delivered as it is (not UTF-8, a line that is not a JSON object)."""


# ---------------------------------------------------------------------------------------- outbox


@dataclass
class Outbox:
    """The on-disk queue: ``pending/`` entries (one JSON event a line), ``rejected/``, ``quarantine/``.

    ``fsync`` False skips the fsyncs (survives a killed process, not a power cut).
    """

    path: Path
    fsync: bool = True

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def pending_dir(self) -> Path:
        return self.path / PENDING

    @property
    def rejected_dir(self) -> Path:
        return self.path / REJECTED

    @property
    def quarantine_dir(self) -> Path:
        return self.path / QUARANTINE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def ensure(self) -> None:
        for directory in (self.path, self.pending_dir, self.rejected_dir, self.quarantine_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def append(self, lines: Sequence[str], *, fsync: bool | None = None) -> Path:
        """Write one entry atomically; its name sorts after every entry written before it.

        The name starts with the next number of the outbox's sequence (a counter file under an
        exclusive ``flock``, shared by every process writing to this outbox): the order of the queue
        never depends on the wall clock. The entry is renamed into ``pending/`` while the sequence
        lock is held, so a deliverer never sees number N+1 before N.
        """
        if not lines:
            raise ValueError("An outbox entry needs at least one event")
        sync = self.fsync if fsync is None else fsync
        self.ensure()
        data = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.pending_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            with self._sequence() as next_number:
                sequence = next_number()
                target = self.pending_dir / f"{sequence:020d}-{os.getpid():010d}{ENTRY_SUFFIX}"
                os.replace(tmp, target)
                if sync:
                    _fsync_dir(self.pending_dir)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    @contextlib.contextmanager
    def _sequence(self) -> Iterator[Callable[[], int]]:
        """Hold the sequence lock; yields a function returning the next number (recorded on disk).

        The counter is a fixed-width number overwritten in place and fsynced (one fsync, no rename);
        one that cannot be read (new outbox, torn write) restarts after the highest entry number.
        """
        with _sequence_lock, open(self.path / SEQUENCE_LOCK_FILE, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                fd = os.open(self.path / SEQUENCE_FILE, os.O_RDWR | os.O_CREAT, 0o600)
                try:

                    def next_number() -> int:
                        number = max(self._recorded_sequence(fd), 0) + 1
                        os.pwrite(fd, f"{number:020d}\n".encode(), 0)
                        if self.fsync:
                            os.fsync(fd)
                        return number

                    yield next_number
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _recorded_sequence(self, fd: int) -> int:
        raw = os.pread(fd, 64, 0)
        if len(raw) == 21 and raw.endswith(b"\n") and raw[:20].isdigit():
            return int(raw[:20])
        # a new outbox, or one written before the sequence existed (names led by the time in ns):
        # continue after the highest number in use, so the existing order is kept
        numbers = [_entry_number(entry) for entry in (*self.pending(), *self.rejected())]
        return max((number for number in numbers if number is not None), default=0)

    def pending(self) -> list[Path]:
        """Pending entries, oldest first."""
        return _entries(self.pending_dir)

    def rejected(self) -> list[Path]:
        return _entries(self.rejected_dir)

    def quarantined(self) -> list[Path]:
        return _entries(self.quarantine_dir)

    def requeue_rejected(self) -> int:
        """Move rejected entries back to ``pending/`` (keeping their names, so their place in the order)."""
        moved = 0
        for entry in self.rejected():
            self.move(entry, self.pending_dir)
            with contextlib.suppress(FileNotFoundError):
                (self.rejected_dir / f"{entry.name}{REASON_SUFFIX}").unlink()
            moved += 1
        return moved

    def move(self, entry: Path, directory: Path, *, reason: str | None = None) -> Path:
        """Move an entry to ``directory`` (with a ``.reason`` file beside it), fsyncing both directories."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = directory / entry.name
        if reason is not None:
            note = json.dumps({"entry": entry.name, "reason": reason, "at": time.time()}, sort_keys=True)
            _write_atomically(directory / f"{entry.name}{REASON_SUFFIX}", note.encode() + b"\n", fsync=self.fsync)
        os.replace(entry, target)
        if self.fsync:
            _fsync_dir(directory)
            _fsync_dir(entry.parent)
        return target

    def rewrite(self, entry: Path, lines: Sequence[str]) -> None:
        """Replace an entry by what is left of it: temporary file, fsync, rename, fsync the directory."""
        _write_atomically(entry, "".join(line + "\n" for line in lines).encode(), fsync=self.fsync)

    def remove(self, entry: Path) -> None:
        """Delete a delivered entry (fsyncing the directory: a crash cannot bring it back)."""
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            if self.fsync:
                _fsync_dir(entry.parent)

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
        # status only (nothing is lost with it): not fsynced, it is written after every entry
        _write_atomically(self.state_path, json.dumps(dict(state), sort_keys=True).encode(), fsync=False)

    def status(self) -> dict[str, Any]:
        pending = self.pending()
        events = 0
        for entry in pending:
            with contextlib.suppress(FileNotFoundError):
                events += sum(1 for line in entry.read_bytes().splitlines() if line.strip())
        oldest = _entry_time(pending[0]) if pending else None
        return {
            "outbox": str(self.path),
            "pending_entries": len(pending),
            "pending_events": events,
            "oldest_pending_age_seconds": round(time.time() - oldest, 3) if oldest else None,
            "rejected_entries": len(self.rejected()),
            "quarantined_entries": len(self.quarantined()),
            "deliverer_running": self.deliverer_running(),
            "deliverer": self.read_state(),
        }


def _entries(directory: Path) -> list[Path]:
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(ENTRY_SUFFIX))
    except FileNotFoundError:
        return []
    return [directory / name for name in names]


def _entry_number(entry: Path) -> int | None:
    try:
        return int(entry.name.split("-", 1)[0])
    except ValueError:
        return None


def _entry_time(entry: Path) -> float | None:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(target: Path, data: bytes, *, fsync: bool) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename (fsyncing file and directory)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(target.parent)


def parse_entry(data: bytes) -> list[dict[str, Any]]:
    """The events of an entry; :class:`MalformedEntryError` naming what is wrong if it cannot be sent."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEntryError(f"not UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from None
    events: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise MalformedEntryError(f"line {number} is not JSON: {type(exc).__name__}: {exc}") from None
        if not isinstance(event, dict):
            raise MalformedEntryError(f"line {number} is a JSON {type(event).__name__}, not an object (an event)")
        events.append(event)
    if not events:
        raise MalformedEntryError("no event in it")
    return events


# -------------------------------------------------------------------------------------- delivery


class HttpSender:
    """Posts one serialized event with openlineage's own ``HttpTransport`` (auth, headers, TLS), no retries."""

    def __init__(self, http_config: Mapping[str, Any], *, timeout: float | None = None) -> None:
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        options = dict(http_config)
        options.pop("type", None)
        # backoff is ours (the queue keeps its order); the HTTP layer tries exactly once
        options["retry"] = {"total": 0, "connect": 0, "read": 0, "status": 0, "status_forcelist": []}
        options.setdefault("timeout", 5.0)
        if timeout is not None:
            options["timeout"] = min(float(options["timeout"]), timeout)
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
            raise delivery_error(self.url, status) from exc
        except Exception as exc:
            raise DeliveryError(f"{self.url} unreachable: {type(exc).__name__}", retryable=True) from exc


def delivery_error(url: str, status: int) -> DeliveryError:
    """The error for an HTTP answer: final only when it says the event itself is invalid."""
    if status in AUTH_STATUSES:
        return DeliveryError(
            f"{url} answered HTTP {status}: the lineage endpoint refused our credentials (check the "
            "'auth' of the http transport options); events are kept and retried",
            retryable=True,
            status=status,
        )
    if status in FINAL_STATUSES:
        return DeliveryError(
            f"{url} answered HTTP {status}: it rejected the event as invalid", retryable=False, status=status
        )
    return DeliveryError(f"{url} answered HTTP {status}", retryable=True, status=status)


@dataclass
class DeliveryReport:
    delivered_events: int = 0
    delivered_entries: int = 0
    rejected_entries: int = 0
    failures: int = 0
    quarantined_entries: int = 0
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
    deadline: float | None = None,
) -> DeliveryReport:
    """Deliver pending entries in order; the caller holds :meth:`Outbox.delivery_lock`.

    Returns when the outbox stayed empty for ``idle_exit`` seconds (0: as soon as it is empty), when
    the endpoint kept failing for ``give_up_after`` seconds (None: never give up), at ``deadline``
    (a :func:`time.monotonic` instant; no new event is sent after it), or on ``stop``.
    """
    report = DeliveryReport()
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    backoff = min(min_backoff, max_backoff)
    failing_since: float | None = None
    idle_since: float | None = None
    consecutive = 0
    state: dict[str, Any] = {**outbox.read_state(), "pid": os.getpid(), "started": time.time()}
    outbox.write_state(state)
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
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
            outcome = _deliver_entry(outbox, entry, send, report)
        except DeliveryError as exc:
            report.failures += 1
            consecutive += 1
            report.last_error = str(exc)
            state.update(last_error=str(exc), last_error_at=time.time(), consecutive_failures=consecutive)
            outbox.write_state(state)
            failing_since = failing_since or time.monotonic()
            waiting = len(outbox.pending())
            # loud: a wrong key or a broken endpoint must not go unnoticed while events pile up
            level = logging.ERROR if exc.status in AUTH_STATUSES or consecutive > 1 else logging.WARNING
            log.log(level, "Lineage delivery failed (%s); %d entries waiting, retrying in %.1fs", exc, waiting, backoff)
            if give_up_after is not None and time.monotonic() - failing_since >= give_up_after:
                break
            if deadline is not None and time.monotonic() + backoff >= deadline:
                break
            wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        if consecutive:
            log.warning("Lineage endpoint accepts events again after %d failed attempts", consecutive)
        failing_since = None
        consecutive = 0
        backoff = min(min_backoff, max_backoff)
        if outcome == DELIVERED:
            report.delivered_entries += 1
        elif outcome == REJECTED:
            report.rejected_entries += 1
        else:
            report.quarantined_entries += 1
        state.update(
            last_success_at=time.time(),
            consecutive_failures=0,
            delivered_events=report.delivered_events,
            rejected_entries=report.rejected_entries,
            quarantined_entries=report.quarantined_entries,
        )
        outbox.write_state(state)
    report.remaining_entries = len(outbox.pending())
    state.update(stopped=time.time(), remaining_entries=report.remaining_entries)
    outbox.write_state(state)
    return report


DELIVERED = "delivered"
QUARANTINED = "quarantined"


def _deliver_entry(
    outbox: Outbox, entry: Path, send: Callable[[Mapping[str, Any]], None], report: DeliveryReport
) -> str:
    """Send every event of one entry in order: :data:`DELIVERED`, :data:`REJECTED` or :data:`QUARANTINED`.

    A retryable failure raises :class:`DeliveryError` after keeping only what is left of the entry.
    Anything wrong with the entry itself is confined to it: it moves to ``quarantine/``.
    """
    try:
        data = entry.read_bytes()
    except FileNotFoundError:
        return DELIVERED  # delivered by a deliverer that held the lock before us
    except OSError as exc:
        return _quarantine(outbox, entry, f"unreadable: {type(exc).__name__}: {exc}", report)
    try:
        events = parse_entry(data)
    except MalformedEntryError as exc:
        return _quarantine(outbox, entry, str(exc), report)
    prepare = getattr(send, "prepare_registration", None)
    for index, event in enumerate(events):
        try:
            # every event but an entry's last is a Marquez registration (OutboxTransport.entry_lines)
            send(prepare(event) if prepare is not None and index < len(events) - 1 else event)
        except DeliveryError as exc:
            if index:
                # keep only what is left, so a restart does not send the delivered part again
                lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
                outbox.rewrite(entry, lines[index:])
            if exc.retryable:
                raise
            log.error("Lineage endpoint rejected an event of %s (%s); moved to %s", entry.name, exc, REJECTED)
            report.errors.append(f"{entry.name}: {exc}")
            outbox.move(entry, outbox.rejected_dir, reason=str(exc))
            return REJECTED
        report.delivered_events += 1
    outbox.remove(entry)
    return DELIVERED


def _quarantine(outbox: Outbox, entry: Path, reason: str, report: DeliveryReport) -> str:
    log.error("Lineage outbox entry %s cannot be delivered (%s); moved to %s/", entry.name, reason, QUARANTINE)
    report.errors.append(f"{entry.name}: {reason}")
    outbox.move(entry, outbox.quarantine_dir, reason=reason)
    return QUARANTINED


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
    #: None: "auto" (:data:`DEFAULT_TASK_END_FLUSH_SECONDS` on a short-lived worker, else 0)
    flush_at_task_end_seconds: float | None = None
    #: None: "auto" (:func:`ephemeral_disk` decides)
    persistent: bool | None = None

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
            flush_at_task_end_seconds=_auto_float(params.get("flush_at_task_end_seconds")),
            persistent=None if _is_auto(params.get("persistent")) else _as_bool(params.get("persistent"), True),
        )


def _is_auto(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto"))


def _auto_float(value: Any) -> float | None:
    return None if _is_auto(value) else float(value)


class OutboxTransport(Transport):
    """OpenLineage transport: append to the on-disk outbox, deliver in the background (module docstring)."""

    kind = "mlrepo_outbox"
    config_class = OutboxConfig

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self.outbox = Outbox(
            Path(config.outbox_dir).expanduser() if config.outbox_dir else default_outbox_dir(), fsync=config.fsync
        )

    @property
    def task_end_flush_seconds(self) -> float:
        """How long ``emit`` of a final event delivers synchronously (0: leave it to the deliverer)."""
        if self.config.flush_at_task_end_seconds is not None:
            return max(0.0, self.config.flush_at_task_end_seconds)
        return DEFAULT_TASK_END_FLUSH_SECONDS if short_lived_worker() else 0.0

    @property
    def on_ephemeral_disk(self) -> bool:
        if self.config.persistent is not None:
            return not self.config.persistent
        return ephemeral_disk(self.outbox.path)

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
        entry = self.outbox.append(self.entry_lines(event))
        if _is_final(event):
            self._at_task_end()
        if self.config.http and self.config.deliver_in_background and self.outbox.pending():
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

    def _at_task_end(self) -> None:
        """A task's last event: flush for a bounded time on a short-lived worker, warn about what is left."""
        budget = self.task_end_flush_seconds
        if self.config.http and budget > 0:
            try:
                flush(self.outbox, self.config.http, budget=budget)
            except Exception:
                log.exception("Synchronous lineage flush failed; the events stay in %s", self.outbox.path)
        if self.on_ephemeral_disk:
            left = len(self.outbox.pending())
            if left:
                log.error(
                    "%d lineage event entries are still pending in %s, on a disk that does not outlive this "
                    "worker: they are lost when it goes away. Put the outbox on a persistent volume "
                    "([mlrepo] lineage_outbox_dir or the transport's outbox_dir), see "
                    "docs/how-to/lineage-to-marquez.md",
                    left,
                    self.outbox.path,
                )


def _is_final(event: Any) -> bool:
    event_type = getattr(event, "eventType", None)
    return str(getattr(event_type, "value", event_type) or "").upper() in _FINAL_EVENT_TYPES


def flush(outbox: Outbox, http_config: Mapping[str, Any], *, budget: float) -> DeliveryReport | None:
    """Deliver what is pending for at most ``budget`` seconds, in this process (None: a deliverer is at work).

    Each HTTP call's timeout is cut to what is left of the budget, so the whole flush ends within
    about ``budget`` seconds even when the endpoint hangs. A running deliverer holds the lock: then
    nothing is done here, it delivers.
    """
    deadline = time.monotonic() + budget
    with outbox.delivery_lock() as acquired:
        if not acquired:
            return None
        send = HttpSender(http_config, timeout=max(0.05, budget / 2))
        return deliver(outbox, send, idle_exit=0.0, min_backoff=budget, max_backoff=budget, deadline=deadline)


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
    "MalformedEntryError",
    "Outbox",
    "OutboxConfig",
    "OutboxTransport",
    "default_outbox_dir",
    "deliver",
    "ephemeral_disk",
    "flush",
    "parse_entry",
    "short_lived_worker",
    "start_deliverer",
]

if __name__ == "__main__":
    sys.exit(main())
