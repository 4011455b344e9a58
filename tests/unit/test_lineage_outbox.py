"""The durable outbox transport against a local HTTP receiver that goes down and comes back.

The receiver (:mod:`tests.lineage_receiver`) is a stand-in for Marquez's ``POST /api/v1/lineage`` (a
fake boundary, fine in unit tests); the real-Marquez outage test is ``tests/integration/test_lineage_marquez.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
from openlineage.client.transport import get_default_factory

from airflow_mlrepo.cli import main as mlrepo
from airflow_mlrepo.lineage import marquez, naming
from airflow_mlrepo.lineage.facets import LakeFSProducerRun
from airflow_mlrepo.lineage.outbox import HttpSender, Outbox, OutboxTransport, deliver
from airflow_mlrepo.locations import LakeFSLocation
from tests.lineage_receiver import Receiver

COMMIT_A = "a" * 64
COMMIT_B = "b" * 64


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def _event(index: int, inputs: list[InputDataset] | None = None, run_facets: dict[str, Any] | None = None) -> RunEvent:
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-01T00:00:00+00:00",
        run=Run(runId=str(uuid.UUID(int=index + 1)), facets=run_facets or {}),
        job=Job(namespace="test", name=f"job{index}"),
        inputs=inputs or [],
        outputs=[],
        producer="https://github.com/airflow-mlrepo/airflow-mlrepo",
    )


def _transport(outbox: Path, **options: Any) -> OutboxTransport:
    return OutboxTransport(OutboxTransport.config_class.from_dict({"outbox_dir": str(outbox), **options}))


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_transport_is_built_by_class_path_from_the_provider_style_config(tmp_path: Path) -> None:
    transport = get_default_factory().create(
        {
            "type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
            "outbox_dir": str(tmp_path),
            "http": {"url": "http://marquez:5000"},
        }
    )
    assert isinstance(transport, OutboxTransport)
    assert transport.outbox.path == tmp_path
    with pytest.raises(ValueError, match="'http' must be a mapping"):
        OutboxTransport.config_class.from_dict({"http": {"endpoint": "x"}})


def test_emit_keeps_events_on_disk_fast_while_the_endpoint_is_down(tmp_path: Path) -> None:
    down = Receiver()  # never started: connection refused
    client = OpenLineageClient(transport=_transport(tmp_path, http={"url": down.url}, deliver_in_background=False))
    durations = []
    for index in range(50):
        started = time.perf_counter()
        client.emit(_event(index))
        durations.append(time.perf_counter() - started)
    outbox = Outbox(tmp_path)
    assert len(outbox.pending()) == 50
    assert max(durations) < 0.5, max(durations)
    stored = [json.loads(entry.read_text())["run"]["runId"] for entry in outbox.pending()]
    assert stored == [str(uuid.UUID(int=i + 1)) for i in range(50)]


def test_delivery_survives_an_outage_in_order_without_loss(tmp_path: Path, receiver: Receiver) -> None:
    transport = _transport(tmp_path, http={"url": receiver.url}, deliver_in_background=False)
    outbox = transport.outbox
    stop = threading.Event()
    result: dict[str, Any] = {}

    def deliverer() -> None:
        with outbox.delivery_lock() as acquired:
            assert acquired
            result["report"] = deliver(
                outbox, HttpSender({"url": receiver.url, "timeout": 2}), idle_exit=3600, min_backoff=0.05,
                max_backoff=0.4, stop=stop, poll_interval=0.02,
            )  # fmt: skip

    thread = threading.Thread(target=deliverer)
    thread.start()
    try:
        for index in range(10):
            transport.emit(_event(index))
        _wait_for(lambda: len(receiver.run_ids()) == 10)
        receiver.stop()
        emit_times = []
        for index in range(10, 40):
            started = time.perf_counter()
            transport.emit(_event(index))
            emit_times.append(time.perf_counter() - started)
        time.sleep(1.5)  # the endpoint stays down; the deliverer keeps backing off
        assert len(outbox.pending()) >= 29
        receiver.start()
        _wait_for(lambda: not outbox.pending())
    finally:
        stop.set()
        thread.join(timeout=30)
    ids = receiver.run_ids()
    expected = [str(uuid.UUID(int=i + 1)) for i in range(40)]
    first_seen = list(dict.fromkeys(ids))
    assert first_seen == expected  # in order, nothing lost (at least once: a repeat is allowed)
    assert max(emit_times) < 0.5
    assert result["report"].failures >= 1
    assert outbox.read_state()["consecutive_failures"] == 0


def test_background_deliverer_process_delivers_and_exits_when_idle(tmp_path: Path, receiver: Receiver) -> None:
    transport = _transport(tmp_path, http={"url": receiver.url}, idle_exit_seconds=0.5)
    for index in range(5):
        transport.emit(_event(index))
    _wait_for(lambda: len(set(receiver.run_ids())) == 5)
    assert list(dict.fromkeys(receiver.run_ids())) == [str(uuid.UUID(int=i + 1)) for i in range(5)]
    _wait_for(lambda: not transport.outbox.deliverer_running(), timeout=30)
    assert transport.outbox.pending() == []
    # a later event starts a new deliverer
    transport.emit(_event(5))
    _wait_for(lambda: len(set(receiver.run_ids())) == 6)


def test_an_event_the_endpoint_rejects_moves_aside_and_the_queue_goes_on(tmp_path: Path, receiver: Receiver) -> None:
    outbox = Outbox(tmp_path)
    outbox.append([json.dumps({"run": {"runId": "bad"}})])
    outbox.append([json.dumps({"run": {"runId": str(uuid.UUID(int=7))}})])
    calls: list[str] = []

    def send(event: Any) -> None:
        calls.append(event["run"]["runId"])
        if event["run"]["runId"] == "bad":
            from airflow_mlrepo.lineage.outbox import DeliveryError

            raise DeliveryError("HTTP 422", retryable=False)

    with outbox.delivery_lock() as acquired:
        assert acquired
        report = deliver(outbox, send)
    assert calls == ["bad", str(uuid.UUID(int=7))]
    assert report.rejected_entries == 1
    assert report.delivered_events == 1
    assert len(outbox.rejected()) == 1
    assert outbox.pending() == []


def test_registrations_precede_the_reading_event_in_one_entry(tmp_path: Path) -> None:
    producer = LakeFSProducerRun(
        runId=str(uuid.UUID(int=99)), jobNamespace="airflow", jobName="dag.train", parentRunId=str(uuid.UUID(int=98)),
        parentJobName="dag",
    )  # fmt: skip
    models = LakeFSLocation.parse("lakefs://iris-models/main/model/")
    batches = LakeFSLocation.parse("lakefs://iris-input/main/batches/")
    model = naming.input_dataset(models, commit_id=COMMIT_A, model=True)
    data = naming.input_dataset(batches, commit_id=COMMIT_B)
    pins = naming.pins_facet([
        naming.input_pin(
            models, commit_id=COMMIT_A, pin_rule="latest", commit_time=1_790_000_000, produced_by=producer
        ),
        naming.input_pin(batches, commit_id=COMMIT_B, pin_rule="as_of"),
    ])  # fmt: skip
    transport = _transport(tmp_path)
    entry = transport.emit(_event(1, [model, data], pins))
    lines = [json.loads(line) for line in entry.read_text().splitlines()]
    assert len(lines) == 4
    model_registration, data_start, data_registration, reading = lines
    # the model is re-registered as an output of the training run that wrote it
    assert model_registration["run"]["runId"] == producer.runId
    assert model_registration["job"] == {"namespace": "airflow", "name": "dag.train", "facets": {}}
    assert model_registration["run"]["facets"]["parent"]["run"]["runId"] == producer.parentRunId
    assert model_registration["eventType"] == "COMPLETE"
    assert model_registration["eventTime"] == "2026-09-21T14:13:20+00:00"
    (registered,) = model_registration["outputs"]
    assert (registered["namespace"], registered["name"]) == ("lakefs://iris-models", "main/model")
    assert registered["facets"]["version"]["datasetVersion"] == COMMIT_A
    assert registered["facets"]["datasetType"]["datasetType"] == "MODEL"
    # exactly the facets the writer's output had: nothing of the reader's choice on the version
    assert registered["facets"] == {key: model.facets[key] for key in ("version", "lakefs_commit", "datasetType")} | {
        key: registered["facets"][key] for key in registered["facets"]
    }
    assert set(registered["facets"]) == {"version", "lakefs_commit", "datasetType"}
    assert set(registered["facets"]["lakefs_commit"]) == {
        "_producer", "_schemaURL", "repository", "branch", "commitId", "path", "uri"
    }  # fmt: skip
    assert model_registration["producer"] == registered["facets"]["lakefs_commit"]["_producer"]
    assert model_registration["run"]["facets"]["parent"]["_producer"] == model_registration["producer"]
    # user data: a registration run whose id is fixed by dataset and commit, with its START and COMPLETE
    assert data_start["eventType"] == "START"
    assert data_start["run"]["runId"] == data_registration["run"]["runId"]
    assert data_start["eventTime"] == data_registration["eventTime"]
    assert data_registration["run"]["runId"] == marquez.registration_run_id(
        "lakefs://iris-input", "main/batches", COMMIT_B
    )
    assert data_registration["job"]["namespace"] == "lakefs://iris-input"
    assert data_registration["job"]["name"] == "lakefs_commit/main/batches"
    assert reading["run"]["runId"] == str(uuid.UUID(int=2))
    assert reading["run"]["facets"]["mlrepo_pins"]["inputs"][0]["rule"] == "latest"
    assert not reading["inputs"][0].get("inputFacets")


def test_a_registration_keeps_the_end_time_marquez_has_for_the_writing_run() -> None:
    registration = {"eventType": "COMPLETE", "eventTime": "2026-09-21T14:13:20+00:00", "run": {"runId": "r"}}
    registration["job"] = {"namespace": "airflow", "name": "dag.train"}
    ended = "2026-09-21T14:13:27.123456Z"
    assert marquez.keep_run_times(registration, {"r": ended}.get)["eventTime"] == ended
    assert marquez.keep_run_times(registration, {}.get)["eventTime"] == "2026-09-21T14:13:20+00:00"
    commit_registration = {**registration, "job": {"namespace": "lakefs://x", "name": "lakefs_commit/main/data"}}
    assert marquez.keep_run_times(commit_registration, {"r": ended}.get)["eventTime"] == "2026-09-21T14:13:20+00:00"


def test_registration_ids_are_stable_per_commit_and_differ_between_commits() -> None:
    first = marquez.registration_run_id("lakefs://iris-input", "main/batches", COMMIT_A)
    assert first == marquez.registration_run_id("lakefs://iris-input", "main/batches", COMMIT_A)
    assert first != marquez.registration_run_id("lakefs://iris-input", "main/batches", COMMIT_B)
    assert first != marquez.registration_run_id("lakefs://iris-input", "main/other", COMMIT_A)
    uuid.UUID(first)


def test_no_registration_without_commit_facets_or_when_turned_off(tmp_path: Path) -> None:
    plain = InputDataset(namespace="lakefs://iris-input", name="main/batches")
    assert (
        marquez.registration_events(json.loads(json.dumps({"run": {}, "inputs": [{"namespace": "n", "name": "x"}]})))
        == []
    )
    transport = _transport(tmp_path, marquez_exact_versions=False)
    data = naming.input_dataset(LakeFSLocation.parse("lakefs://iris-input/main/b"), commit_id=COMMIT_B)
    assert len(transport.emit(_event(1, [plain, data])).read_text().splitlines()) == 1


def test_cli_status_and_replay_deliver_by_hand(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = _transport(tmp_path, deliver_in_background=False)
    for index in range(3):
        transport.emit(_event(index))
    assert mlrepo(["lineage", "status", "--outbox", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["pending_entries"], status["pending_events"], status["deliverer_running"]) == (3, 3, False)
    assert mlrepo(["lineage", "replay", "--outbox", str(tmp_path), "--url", receiver.url]) == 0
    assert "delivered 3 events" in capsys.readouterr().out
    assert receiver.run_ids() == [str(uuid.UUID(int=i + 1)) for i in range(3)]
    assert Outbox(tmp_path).pending() == []


def test_cli_replay_reports_an_endpoint_that_stays_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _transport(tmp_path, deliver_in_background=False).emit(_event(0))
    down = Receiver()
    code = mlrepo(["lineage", "replay", "--outbox", str(tmp_path), "--url", down.url, "--give-up-after", "0.5"])
    assert code == 1
    assert "1 entries left" in capsys.readouterr().out
    assert len(Outbox(tmp_path).pending()) == 1


def test_outbox_entries_are_private_and_atomic(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "box")
    entry = outbox.append(['{"a":1}'])
    assert oct(os.stat(outbox.pending_dir).st_mode & 0o777) == "0o700"
    assert not [name for name in os.listdir(outbox.pending_dir) if name.startswith(".tmp-")]
    assert entry.read_text() == '{"a":1}\n'
