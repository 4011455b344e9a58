"""Make Marquez show the exact lakeFS commit every run read (Marquez issue #2733).

Marquez links a run's input to the dataset's *current* version when it ingests the event and
ignores the input's ``version`` facet. A dataset's current version is the one most recently written
as an *output*. So, right before an event whose inputs carry a ``lakefs_commit`` facet, the outbox
(:mod:`airflow_mlrepo.lineage.outbox`) puts one **registration event** per such input: a ``COMPLETE``
event whose only output is that dataset at that commit. Marquez makes that version current, and the
reading event that follows links its input to it.

Which run registers the commit:

* The commit was written by an airflow-mlrepo task (its provenance metadata names the OpenLineage
  run, so the facet carries ``producedBy``): the registration is a repeat of **that run's**
  ``COMPLETE`` with the same output. Marquez's version id is a hash of the dataset and the run id,
  so this is the very version the producing run created: it becomes current again, and from the
  reader's input version Marquez leads to the training run (``createdByRun``) and on to its inputs.
* Any other commit (data pushed by people or other tools): a registration run whose id is derived
  from dataset + commit id (uuid5), of the job ``lakefs_commit/<branch>/<path>`` in the dataset's
  namespace. Registering the same commit again re-selects the same version, so a cleared or
  backfilled run that reads an older commit links to that commit's version, not to the newest.

The registration, the reading event and their order travel together in one outbox entry, delivered
in order by one deliverer, so no other event of this outbox can come between them. See
``docs/concepts/lineage.md``.

**What the registration leaves as it was, and the trade-off (Marquez 0.51).** Marquez accepts only a
run *state* event here: a RunEvent without ``eventType`` is answered HTTP 500 ("lineageEventType is
marked non-null") after it already created the run, and ``OTHER`` / ``RUNNING`` set a completed run
back to RUNNING. So a registration is a ``COMPLETE`` of the writing run, and :func:`keep_run_times`
(called by the outbox's deliverer right before it posts a registration) gives it the ``eventTime``
Marquez already has as that run's ``endedAt``: the run's end time and state stay exactly as they were
(Marquez records one more COMPLETE of the same run, with the same time). The registration carries no
run facets but the writing run's ``parent``, and the output facets the writing run itself reported,
so the version's facets stay the writer's. What the reader chose (rule, as-of, declared ref) and who
wrote the commit is the reader's ``mlrepo_pins`` *run* facet: Marquez 0.51 stores a reader's input
dataset facets and input facets on the version it links (the latest per facet name wins), so there
they would show the latest reader's choice as the version's; the reader's dataset facets are exactly
the writer's (the commit only). When
the writing run is not in Marquez (yet), the commit time is used. Commit-registration runs (data from
outside) get a START and a COMPLETE, both at the commit time; registering the commit again repeats
them with the same times.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from airflow_mlrepo.lineage.facets import LAKEFS_COMMIT_FACET, PINS_FACET, PRODUCER

#: Namespace of the uuid5 ids of commit-registration runs (fixed: ids must never change).
REGISTRATION_UUID_NAMESPACE = uuid.UUID("5b0f3d2e-8f41-4c55-9a43-1b6f0e7d2a10")
REGISTRATION_JOB_PREFIX = "lakefs_commit/"
RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#: Facets of a registration output: what identifies and describes the commit (the facets the writing
#: run's own output carried), nothing of the reader's (its choice is its ``mlrepo_pins`` run facet).
_KEPT_DATASET_FACETS = ("version", LAKEFS_COMMIT_FACET, "datasetType")


def registration_run_id(namespace: str, name: str, commit_id: str) -> str:
    """The fixed run id that registers ``commit_id`` of dataset ``namespace``/``name``."""
    return str(uuid.uuid5(REGISTRATION_UUID_NAMESPACE, f"{namespace}\n{name}\n{commit_id}"))


def _registered_dataset(dataset: Mapping[str, Any]) -> dict[str, Any]:
    facets = dataset.get("facets") or {}
    kept = {key: dict(facets[key]) for key in _KEPT_DATASET_FACETS if key in facets}
    return {"namespace": dataset["namespace"], "name": dataset["name"], "facets": kept}


def _job_type_facet() -> dict[str, Any]:
    from openlineage.client.facet_v2 import job_type_job
    from openlineage.client.serde import Serde

    facet = job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration="LAKEFS", jobType="COMMIT", producer=PRODUCER
    )
    return Serde.to_dict(facet)


def _parent_facet(run_id: str, job_namespace: str, job_name: str) -> dict[str, Any]:
    from openlineage.client.facet_v2 import parent_run
    from openlineage.client.serde import Serde

    facet = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=job_namespace, name=job_name), producer=PRODUCER
    )
    return Serde.to_dict(facet)


def registration_event(
    dataset: Mapping[str, Any], fallback_time: str, pin: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The registration event for one input dataset dict, or None if it has no commit facets.

    ``pin`` is the reading run's ``mlrepo_pins`` entry of that input (commit time, who wrote it).
    """
    facets = dataset.get("facets") or {}
    commit = facets.get(LAKEFS_COMMIT_FACET)
    if not isinstance(commit, Mapping) or "version" not in facets or not commit.get("commitId"):
        return None
    pin = pin or {}
    output = _registered_dataset(dataset)
    event_time = pin.get("commitTime") or fallback_time
    produced = pin.get("producedBy")
    run_facets: dict[str, Any] = {}
    job_facets: dict[str, Any] = {}
    if isinstance(produced, Mapping) and produced.get("runId"):
        run_id = str(produced["runId"])
        job = {"namespace": produced["jobNamespace"], "name": produced["jobName"]}
        if produced.get("parentRunId") and produced.get("parentJobName"):
            run_facets["parent"] = _parent_facet(
                str(produced["parentRunId"]),
                str(produced.get("parentJobNamespace") or produced["jobNamespace"]),
                str(produced["parentJobName"]),
            )
    else:
        run_id = registration_run_id(dataset["namespace"], dataset["name"], str(commit["commitId"]))
        job = {"namespace": dataset["namespace"], "name": f"{REGISTRATION_JOB_PREFIX}{dataset['name']}"}
        job_facets["jobType"] = _job_type_facet()
    return {
        "eventType": "COMPLETE",
        "eventTime": event_time,
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {**job, "facets": job_facets},
        "inputs": [],
        "outputs": [output],
    }


def _start_of(registration: Mapping[str, Any]) -> dict[str, Any]:
    return {**registration, "eventType": "START", "outputs": []}


def is_commit_registration(event: Mapping[str, Any]) -> bool:
    """Whether a registration event is a commit-registration run's (not a repeat of the writing run's)."""
    return str((event.get("job") or {}).get("name", "")).startswith(REGISTRATION_JOB_PREFIX)


def keep_run_times(event: Mapping[str, Any], run_end_time: Callable[[str], str | None]) -> dict[str, Any]:
    """A registration that repeats the writing run's COMPLETE at the end time Marquez already has for it.

    ``run_end_time(run_id)`` answers Marquez's ``endedAt`` of that run (None when Marquez does not know
    the run or it has not ended); then the event keeps its own ``eventTime`` (the commit time).
    """
    if is_commit_registration(event) or event.get("eventType") != "COMPLETE":
        return dict(event)
    ended = run_end_time(str(event["run"]["runId"]))
    return {**event, "eventTime": ended} if ended else dict(event)


def registration_events(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Registration events to deliver right before ``event`` (a serialized RunEvent), in input order."""
    if "run" not in event:
        return []
    fallback_time = str(event.get("eventTime", ""))
    pins = {
        (str(pin.get("namespace")), str(pin.get("name"))): pin
        for pin in ((event["run"].get("facets") or {}).get(PINS_FACET) or {}).get("inputs") or []
        if isinstance(pin, Mapping)
    }
    events = []
    seen: set[tuple[str, str]] = set()
    for dataset in event.get("inputs") or []:
        registration = registration_event(dataset, fallback_time, pins.get((dataset["namespace"], dataset["name"])))
        if registration is None:
            continue
        key = (dataset["namespace"], dataset["name"])
        if key in seen:
            continue
        seen.add(key)
        if is_commit_registration(registration):
            events.append(_start_of(registration))
        events.append(registration)
    return events


def run_url(marquez_url: str, run_id: str) -> str:
    """Marquez API URL of one run (``GET /api/v1/jobs/runs/{id}``)."""
    return f"{marquez_url.rstrip('/')}/api/v1/jobs/runs/{run_id}"


__all__ = [
    "REGISTRATION_JOB_PREFIX",
    "is_commit_registration",
    "keep_run_times",
    "registration_event",
    "registration_events",
    "registration_run_id",
    "run_url",
]
