"""Run ``LakeFSPodOperator`` attempts against the stack's real Kubernetes cluster and real lakeFS.

The operator runs in this process (or, for the worker-kill tests, in a child process started with
``python -m tests.integration.kubernetes_harness SPEC``) exactly as an Airflow worker calls it:
``execute(context)``; in deferrable mode the ``TaskDeferred`` it raises carries the real
``KubernetesPodTrigger``, which runs here against the cluster until its first event, and the event
goes to ``trigger_reentry`` as the triggerer would hand it over. Only the task context is made
here (task instance ids, try number, run id, data interval, an XCom recorder): no Airflow metadata
database is involved. The pods, the kubelet, containerd, the Secret and lakeFS are all real.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from airflow.sdk.exceptions import TaskDeferred

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.pod import LakeFSPodOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.triggers.pod import LakeFSPodTrigger

IRIS_IMAGE = "ghcr.io/airflow-mlrepo/iris:0.1.0"
OPERATORS: dict[str, type[LakeFSPodOperator]] = {"train": LakeFSTrainingOperator, "predict": LakeFSInferenceOperator}


@dataclass
class TaskInstance:
    """What the operators read from ``context["ti"]``, with XComs kept in a dict."""

    dag_id: str
    task_id: str
    try_number: int
    map_index: int = -1
    start_date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def make_operator(kind: str, **kwargs: Any) -> LakeFSPodOperator:
    defaults: dict[str, Any] = {"task_id": kind, "runner": "kubernetes", "image": IRIS_IMAGE, "namespace": "default"}
    return OPERATORS[kind](**{**defaults, **kwargs})


def make_context(op: LakeFSPodOperator, *, dag_id: str, run_id: str, try_number: int, when: datetime) -> dict[str, Any]:
    ti = TaskInstance(dag_id=dag_id, task_id=op.task_id, try_number=try_number)
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id=dag_id),
        "dag_run": SimpleNamespace(run_id=run_id, run_type="manual", run_after=when),
        "task": op,
        "logical_date": when,
        "data_interval_start": when,
        "data_interval_end": when,
    }


def first_event(deferred: TaskDeferred) -> dict[str, Any]:
    """Run the deferred task's real trigger until its first event; the event's payload.

    The trigger is the operator's own (``LakeFSPodTrigger``), as Airflow would rebuild it from what
    it serialized. Its hold for Airflow's stale-event race is lifted: here this process is the
    worker that deferred (it never exits) and there is no scheduler to race with.
    """
    trigger = deferred.trigger
    assert isinstance(trigger, LakeFSPodTrigger), type(trigger)
    trigger = LakeFSPodTrigger(**{**trigger.serialize()[1], "worker": None, "fire_not_before": None})

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def run_to_completion(op: LakeFSPodOperator, context: dict[str, Any]) -> Any:
    """``execute``, then (deferrable) trigger events into ``trigger_reentry`` until it returns."""
    try:
        return op.execute(context)  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        pending = deferred
    while True:
        event = first_event(pending)
        try:
            return getattr(op, pending.method_name)(context, event)
        except TaskDeferred as again:
            pending = again


def main(argv: list[str]) -> None:
    """Child-process entry point: ``SPEC`` is JSON with kind, operator kwargs, dag_id, run_id, try, when."""
    spec = json.loads(argv[0])
    op = make_operator(spec["kind"], **spec["kwargs"])
    context = make_context(
        op,
        dag_id=spec["dag_id"],
        run_id=spec["run_id"],
        try_number=spec["try_number"],
        when=datetime.fromisoformat(spec["when"]),
    )
    print(json.dumps({"result": run_to_completion(op, context)}, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
