"""The outbox under poison entries, wrong credentials, a clock that jumps back and short-lived workers.

Delivery goes to :mod:`tests.lineage_receiver`, a real HTTP endpoint on loopback that records what
it receives, through the real :class:`~airflow_mlrepo.lineage.outbox.HttpSender`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from airflow_mlrepo.lineage import outbox as outbox_module
from airflow_mlrepo.lineage.outbox import HttpSender, Outbox, OutboxTransport, default_outbox_dir, deliver
from tests.lineage_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def _line(run: int) -> str:
    return json.dumps({"eventType": "COMPLETE", "run": {"runId": str(uuid.UUID(int=run))}, "job": {"name": "j"}})


def _deliver(outbox: Outbox, receiver: Receiver, **options: Any) -> Any:
    with outbox.delivery_lock() as acquired:
        assert acquired
        options.setdefault("give_up_after", 5.0)
        return deliver(outbox, HttpSender({"url": receiver.url, "timeout": 2}), min_backoff=0.01, **options)


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        (b'{"run": {"runId": "caf\xe9"}}\n', "not UTF-8"),
        (b"[1, 2, 3]\n", "not an object"),
        (b'"just a string"\n', "not an object"),
        (b"{not json\n", "not JSON"),
        (b"\n\n", "no event"),
        (b"[" * 100_000 + b"\n", "not JSON"),
    ],
    ids=["non-utf8", "json-array", "json-string", "not-json", "empty", "deeply-nested"],
)
def test_a_malformed_entry_is_quarantined_with_its_reason_and_the_queue_goes_on(
    tmp_path: Path, receiver: Receiver, poison: bytes, reason: str
) -> None:
    outbox = Outbox(tmp_path)
    outbox.append([_line(1)])
    bad = outbox.append(["{}"])
    bad.write_bytes(poison)
    outbox.append([_line(3)])
    report = _deliver(outbox, receiver)
    assert receiver.run_ids() == [str(uuid.UUID(int=1)), str(uuid.UUID(int=3))]
    assert outbox.pending() == []
    assert [entry.name for entry in outbox.quarantined()] == [bad.name]
    note = json.loads((outbox.quarantine_dir / f"{bad.name}.reason").read_text())
    assert reason in note["reason"]
    assert report.quarantined_entries == 1
    # a restarted deliverer does not trip over it again
    outbox.append([_line(4)])
    _deliver(outbox, receiver)
    assert receiver.run_ids()[-1] == str(uuid.UUID(int=4))


@pytest.mark.parametrize("status", [401, 403, 500, 503, 404, 429])
def test_wrong_credentials_and_server_errors_are_retried_loudly_never_dropped(
    tmp_path: Path, receiver: Receiver, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path)
    for run in (1, 2):
        outbox.append([_line(run)])
    receiver.script = [status, status, status]
    with caplog.at_level(logging.WARNING, logger=outbox_module.__name__):
        report = _deliver(outbox, receiver)
    assert receiver.run_ids() == [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]
    assert outbox.rejected() == []
    assert report.failures == 3
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors, "repeated failures must be logged as errors"
    assert f"HTTP {status}" in errors[0].getMessage()
    if status in (401, 403):
        assert "credentials" in errors[0].getMessage()


@pytest.mark.parametrize("status", [400, 422])
def test_only_an_invalid_event_answer_is_final(tmp_path: Path, receiver: Receiver, status: int) -> None:
    outbox = Outbox(tmp_path)
    rejected = outbox.append([_line(1)])
    outbox.append([_line(2)])
    receiver.script = [status]
    report = _deliver(outbox, receiver)
    assert report.rejected_entries == 1
    assert [entry.name for entry in outbox.rejected()] == [rejected.name]
    assert f"HTTP {status}" in json.loads((outbox.rejected_dir / f"{rejected.name}.reason").read_text())["reason"]
    assert receiver.run_ids() == [str(uuid.UUID(int=2))]


def test_order_follows_the_sequence_even_when_the_clock_jumps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    clock = iter(range(10**18, 0, -(10**15)))  # every call is a millisecond... earlier
    monkeypatch.setattr(time, "time_ns", lambda: next(clock))
    monkeypatch.setattr(time, "time", lambda: next(clock) / 1e9)
    outbox = Outbox(tmp_path)
    for run in range(1, 8):
        outbox.append([_line(run)])
    monkeypatch.undo()
    _deliver(outbox, receiver)
    assert receiver.run_ids() == [str(uuid.UUID(int=run)) for run in range(1, 8)]


def test_the_sequence_continues_after_entries_named_by_the_old_clock_scheme(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.ensure()
    old = outbox.pending_dir / f"{time.time_ns():020d}-{os.getpid():010d}-00000000.jsonl"
    old.write_text(_line(1) + "\n")
    new = outbox.append([_line(2)])
    assert outbox.pending() == [old, new]


def test_every_rewrite_is_fsynced_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    outbox = Outbox(tmp_path)
    entry = outbox.append([_line(1), _line(2), _line(3)])
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    receiver.script = [201, 500]  # the first event gets through, the second fails: the entry is rewritten
    with outbox.delivery_lock():
        deliver(outbox, HttpSender({"url": receiver.url}), give_up_after=0.0)
    assert entry.read_text().splitlines() == [_line(2), _line(3)]
    assert str(outbox.pending_dir) in synced  # the directory after the rename
    assert any(path.startswith(str(outbox.pending_dir) + "/.tmp-") for path in synced)  # the new file
    synced.clear()
    receiver.script = [422]
    with outbox.delivery_lock():
        deliver(outbox, HttpSender({"url": receiver.url}), give_up_after=0.0)
    assert {str(outbox.rejected_dir), str(outbox.pending_dir)} <= set(synced)


def _event(run: int, state: RunState = RunState.COMPLETE) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime="2026-11-01T00:00:00+00:00",
        run=Run(runId=str(uuid.UUID(int=run))),
        job=Job(namespace="test", name="job"),
        producer="https://github.com/airflow-mlrepo/airflow-mlrepo",
    )


def _transport(tmp_path: Path, url: str, **options: Any) -> OutboxTransport:
    params = {"outbox_dir": str(tmp_path), "http": {"url": url, "timeout": 5}, "deliver_in_background": False}
    return OutboxTransport(OutboxTransport.config_class.from_dict({**params, **options}))


def test_a_short_lived_worker_flushes_synchronously_at_task_end(tmp_path: Path, receiver: Receiver) -> None:
    transport = _transport(tmp_path, receiver.url, flush_at_task_end_seconds=1)
    transport.emit(_event(1, RunState.START))
    assert receiver.run_ids() == []  # a START is left to the deliverer
    transport.emit(_event(1))
    assert receiver.run_ids() == [str(uuid.UUID(int=1))] * 2  # the task's last event takes the queue along
    assert transport.outbox.pending() == []


def test_the_task_end_flush_is_bounded_when_the_endpoint_hangs(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 10.0
    transport = _transport(tmp_path, receiver.url, flush_at_task_end_seconds=1)
    started = time.monotonic()
    transport.emit(_event(1))
    assert time.monotonic() - started < 1.5
    assert len(transport.outbox.pending()) == 1  # kept for later


def test_the_flush_is_on_by_default_only_on_short_lived_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert _transport(tmp_path, "http://127.0.0.1:9").task_end_flush_seconds == 0
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    assert _transport(tmp_path, "http://127.0.0.1:9").task_end_flush_seconds == 1.0


def test_pending_events_on_an_ephemeral_disk_are_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = Receiver()  # never started
    transport = _transport(tmp_path, down.url, flush_at_task_end_seconds=0.2, persistent="false")
    with caplog.at_level(logging.WARNING, logger=outbox_module.__name__):
        transport.emit(_event(1))
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert any("persistent volume" in message and str(tmp_path) in message for message in messages), messages
    caplog.clear()
    persistent = _transport(tmp_path / "pv", down.url, flush_at_task_end_seconds=0.2, persistent="true")
    with caplog.at_level(logging.WARNING, logger=outbox_module.__name__):
        persistent.emit(_event(2))
    assert not [record for record in caplog.records if "persistent volume" in record.getMessage()]


def test_a_memory_file_system_counts_as_ephemeral() -> None:
    assert outbox_module.filesystem_type(Path("/proc/self")) == "proc"
    if outbox_module.filesystem_type(Path("/dev/shm")) == "tmpfs":
        assert outbox_module.ephemeral_disk(Path("/dev/shm/mlrepo-outbox"))


def test_the_outbox_location_is_an_mlrepo_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outbox_module.OUTBOX_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW__MLREPO__LINEAGE_OUTBOX_DIR", str(tmp_path / "pv" / "outbox"))
    assert default_outbox_dir() == tmp_path / "pv" / "outbox"
    transport = OutboxTransport(OutboxTransport.config_class.from_dict({}))
    assert transport.outbox.path == tmp_path / "pv" / "outbox"
