"""Provenance metadata written on every output commit (lakeFS metadata values are strings).

Keys under ``mlrepo.`` are ours; keys under ``::lakefs::Airflow::`` follow lakeFS's own Airflow
convention (treeverse/lakeFS ``design/accepted/commit-metadata/airflow.md``), so the lakeFS UI
shows the Airflow run as a button. No credential ever enters this metadata.
"""

from __future__ import annotations

import enum
import hashlib
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from airflow_mlrepo.locations import LakeFSLocation
    from airflow_mlrepo.pinning import PinnedInput

PREFIX = "mlrepo."
FORMAT_VERSION = "1"
FINGERPRINT = "mlrepo.fingerprint"
#: Where the output was written: ``lakefs://repository/branch/path`` (the declared, not the attempt, branch).
OUTPUT = "mlrepo.output"
LAKEFS_AIRFLOW = "::lakefs::Airflow::"
#: Model commit metadata: the framework that trained the model and the format of its files.
MODEL_FRAMEWORK_KEY = "mlrepo.model.framework"
MODEL_FORMAT_KEY = "mlrepo.model.format"


def fingerprint(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int,
    pins: Mapping[str, PinnedInput],
    output: LakeFSLocation,
    image: str | None,
    command: Sequence[str],
    hyperparameters: Mapping[str, Any],
) -> str:
    """Identity of one task's work: same run, task, pinned inputs, code and output → same output commit."""
    document = {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "map_index": map_index,
        "inputs": {name: pin.location.uri for name, pin in sorted(pins.items())},
        "output": output.uri,
        "image": image,
        "command": list(command),
        "hyperparameters": hyperparameters,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def airflow_task_url(base_url: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """Link to the task instance in the Airflow 3 UI."""
    quote = urllib.parse.quote
    url = (
        f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}"
    )
    if map_index >= 0:
        url += f"/mapped/{map_index}"
    return url


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plain_value(value: Any) -> str | None:
    """A value as the string to record: an enum by its value (``manual``, not ``DagRunType.MANUAL``).

    Airflow's enums (``DagRunType``, ``DagRunState``...) are ``str`` subclasses whose ``str()`` is
    the member's name; everything recorded in metadata, lineage or the CLI's JSON goes through here.
    """
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    text = str(value)
    return text or None


def recorded_run_type(value: str | None) -> str | None:
    """A run type read from commit metadata, by value: commits written before 0.2 hold the enum's
    repr (``DagRunType.MANUAL``), which is reported as ``manual``."""
    if value and value.startswith("DagRunType."):
        return value.removeprefix("DagRunType.").lower()
    return value


def build_provenance(
    *,
    output_kind: str,
    pins: Mapping[str, PinnedInput],
    model_input: str | None,
    model_policy: str | None,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
    run_type: str | enum.Enum | None,
    logical_date: datetime | None,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    image: str | None,
    command: Sequence[str],
    runner: str,
    hyperparameters: Mapping[str, Any],
    fingerprint_value: str,
    airflow_url: str,
    openlineage_run_id: str | None,
    output: str | None = None,
) -> dict[str, str]:
    """The metadata of an output commit: inputs, model, code, Airflow run, lineage ids, where it was written."""
    metadata: dict[str, str] = {
        "mlrepo.format": FORMAT_VERSION,
        "mlrepo.output_kind": output_kind,
        "mlrepo.dag_id": dag_id,
        "mlrepo.run_id": run_id,
        "mlrepo.task_id": task_id,
        "mlrepo.map_index": str(map_index),
        "mlrepo.try_number": str(try_number),
        "mlrepo.image": image or "",
        "mlrepo.command": json.dumps(list(command)),
        "mlrepo.runner": runner,
        "mlrepo.hyperparameters": json.dumps(dict(hyperparameters), sort_keys=True),
        FINGERPRINT: fingerprint_value,
        "mlrepo.inputs": ",".join(sorted(pins)),
    }
    for name, pin in sorted(pins.items()):
        key = f"mlrepo.input.{name}"
        metadata[key] = pin.location.uri
        metadata[f"{key}.source"] = pin.source.uri
        metadata[f"{key}.rule"] = pin.rule
        if pin.as_of:
            metadata[f"{key}.as_of"] = pin.as_of
    if model_input is not None:
        metadata["mlrepo.model"] = pins[model_input].location.uri
        metadata["mlrepo.model.commit_id"] = pins[model_input].commit_id
        metadata["mlrepo.model.policy"] = model_policy or ""
    if openlineage_run_id:
        metadata["mlrepo.openlineage_run_id"] = openlineage_run_id
    if output:
        metadata[OUTPUT] = output
    lakefs_airflow = {
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "task_id": task_id,
        "run_type": plain_value(run_type),
        "logical_date[iso8601]": _iso(logical_date),
        "data_interval_start[iso8601]": _iso(data_interval_start),
        "data_interval_end[iso8601]": _iso(data_interval_end),
        "url[url:ui]": airflow_url,
    }
    for key, value in lakefs_airflow.items():
        if value is not None:
            metadata[LAKEFS_AIRFLOW + key] = value
    return metadata


def input_commits(metadata: Mapping[str, str]) -> dict[str, str]:
    """The pinned input locations recorded in an output commit's metadata, by input name."""
    names = [n for n in metadata.get("mlrepo.inputs", "").split(",") if n]
    return {name: metadata[f"mlrepo.input.{name}"] for name in names if f"mlrepo.input.{name}" in metadata}
