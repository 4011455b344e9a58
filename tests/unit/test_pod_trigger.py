"""The deferrable pod operators' trigger holds an early event back (apache/airflow#72716)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import TriggerEvent

from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.triggers import pod as pod_trigger
from airflow_mlrepo.triggers.pod import LakeFSPodTrigger


def _kpo_trigger() -> KubernetesPodTrigger:
    return KubernetesPodTrigger(
        pod_name="train-abc",
        pod_namespace="ml",
        trigger_start_time=datetime(2026, 12, 2, tzinfo=timezone.utc),
        base_container_name="base",
        kubernetes_conn_id="kubernetes_default",
        poll_interval=2,
        on_finish_action="delete_pod",
        trigger_kwargs={"mlrepo": 1},
    )


def test_the_settled_trigger_is_the_same_pod_trigger_with_a_time_before_which_it_never_fires() -> None:
    before = time.time()
    settled = LakeFSPodTrigger.settled(_kpo_trigger(), settle_seconds=5)
    classpath, kwargs = settled.serialize()
    assert classpath == "airflow_mlrepo.triggers.pod.LakeFSPodTrigger"
    assert before + 5 <= kwargs.pop("fire_not_before") <= time.time() + 5
    assert kwargs.pop("worker") == (socket.gethostname(), os.getpid())
    assert kwargs == _kpo_trigger().serialize()[1]
    # the triggerer rebuilds it from what was serialized
    rebuilt = LakeFSPodTrigger(**settled.serialize()[1])
    assert rebuilt.serialize() == settled.serialize()


def test_an_event_ready_at_once_waits_until_fire_not_before_and_a_late_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def pod_finished_at_once(self: KubernetesPodTrigger) -> Any:
        yield TriggerEvent({"status": "success", "name": self.pod_name})

    monkeypatch.setattr(KubernetesPodTrigger, "run", pod_finished_at_once)

    async def first_event(trigger: LakeFSPodTrigger) -> tuple[TriggerEvent, float]:
        async for event in trigger.run():
            return event, time.time()
        raise AssertionError("no event")

    early = LakeFSPodTrigger.settled(_kpo_trigger(), settle_seconds=0.5)
    early.worker = None  # a worker on another host: the time rule
    event, fired_at = asyncio.run(first_event(early))
    assert event.payload == {"status": "success", "name": "train-abc"}
    assert fired_at >= early.fire_not_before  # type: ignore[operator]

    late = LakeFSPodTrigger.settled(_kpo_trigger(), settle_seconds=-60)  # the pod took longer than the settle
    late.worker = ("another-host", 1)
    started = time.time()
    asyncio.run(first_event(late))
    assert time.time() - started < 0.2


def test_on_the_workers_host_the_event_waits_for_the_deferring_process_to_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def pod_finished_at_once(self: KubernetesPodTrigger) -> Any:
        yield TriggerEvent({"status": "success"})

    monkeypatch.setattr(KubernetesPodTrigger, "run", pod_finished_at_once)
    monkeypatch.setattr(pod_trigger, "AFTER_EXIT_SECONDS", 0.3)
    worker_started = time.time()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    trigger = LakeFSPodTrigger(
        fire_not_before=time.time() + 3600, worker=(socket.gethostname(), worker.pid), **_kpo_trigger().serialize()[1]
    )
    reaper = threading.Thread(target=worker.wait)  # as the worker's supervisor would
    reaper.start()

    async def first_event() -> float:
        async for _ in trigger.run():
            return time.time()
        raise AssertionError("no event")

    fired_at = asyncio.run(first_event())
    reaper.join()
    assert worker.returncode == 0
    assert fired_at - worker_started >= 1.5 + 0.3 - 0.2  # exited, then the margin; not the hour of fire_not_before


def test_the_operator_defers_on_the_settled_trigger() -> None:
    op = LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": "lakefs://data/main/d/"},
        output_location="lakefs://models/main/model/",
        image="example/train:1",
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.defer(trigger=_kpo_trigger(), method_name="trigger_reentry")
    trigger = deferred.value.trigger
    assert isinstance(trigger, LakeFSPodTrigger)
    assert trigger.pod_name == "train-abc"
    assert deferred.value.method_name == "trigger_reentry"
    assert trigger.fire_not_before is not None
    assert trigger.fire_not_before >= time.time() + op.deferral_settle_seconds - 1
