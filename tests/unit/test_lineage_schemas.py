"""Every kind of event airflow-mlrepo emits validates against the OpenLineage spec (``tests/openlineage_spec``),
each facet against the schema its ``_schemaURL`` names; our schema URLs name the very files we ship."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from airflow_mlrepo.lineage import facets, marquez, operator_lineage
from airflow_mlrepo.lineage.outbox import OutboxConfig, OutboxTransport
from tests.openlineage_validation import validate_event
from tests.unit import test_lineage_facets as examples

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _run_event(lineage: OperatorLineage[Any, Any], state: RunState, job: str) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime="2026-11-01T00:10:00+00:00",
        run=Run(runId="01935b8e-0000-7000-8000-0000000000aa", facets=lineage.run_facets),
        job=Job(namespace="airflow-prod", name=job),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
        producer=facets.PRODUCER,
    )


def _emitted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """START, COMPLETE and FAIL of training and inference, the sensor's COMPLETE, and the Marquez
    registrations the outbox puts before them, exactly as the transport writes them."""
    train = examples._training()
    events = [_run_event(train.get_openlineage_facets_on_start(), RunState.START, "iris_daily.train")]
    train.pinned_inputs = {
        "training_data": examples._pin(
            "training_data",
            "lakefs://iris-train/main/data/",
            examples.TRAIN_COMMIT,
            "as_of",
            "2026-11-01T00:00:00+00:00",
        )
    }
    train.output_commit_id = examples.MODEL_COMMIT
    examples.use_history_commits(monkeypatch)
    events.append(_run_event(train.get_openlineage_facets_on_complete(None), RunState.COMPLETE, "iris_daily.train"))
    events.append(_run_event(train.get_openlineage_facets_on_failure(None), RunState.FAIL, "iris_daily.train"))
    predict = examples._inference("latest")
    predict.pinned_inputs = {
        "input_data": examples._pin(
            "input_data", "lakefs://iris-input/main/batches/", examples.INPUT_COMMIT, "asset_event"
        ),
        "model": examples._pin("model", "lakefs://iris-models/main/model/", examples.MODEL_COMMIT, "latest"),
    }
    predict.output_commit_id = examples.OUTPUT_COMMIT
    events.append(_run_event(predict.get_openlineage_facets_on_complete(None), RunState.COMPLETE, "iris_daily.predict"))
    sensor = type("Sensor", (), {"prefixes": ["data/"], "objects": None, "repository": "iris-train", "branch": "main"})
    sensed = operator_lineage.sensor_on_complete(sensor(), examples.TRAIN_COMMIT)
    events.append(_run_event(sensed, RunState.COMPLETE, "iris_daily.wait_for_data"))
    transport = OutboxTransport(OutboxConfig(outbox_dir=str(tmp_path), deliver_in_background=False, fsync=False))
    return [json.loads(line) for event in events for line in transport.entry_lines(event)]


def test_every_event_we_emit_and_every_facet_in_it_follows_its_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    documents = _emitted(monkeypatch, tmp_path)
    kinds = {(d["eventType"], marquez.is_commit_registration(d)) for d in documents}
    assert kinds == {("START", False), ("COMPLETE", False), ("FAIL", False), ("START", True), ("COMPLETE", True)}
    keys = set()
    for document in documents:
        validate_event(document)
        assert document["producer"] == facets.PRODUCER
        for dataset in document["inputs"] + document["outputs"]:
            keys |= set(dataset["facets"]) | set(dataset.get("inputFacets") or {})
        keys |= set(document["run"]["facets"]) | set(document["job"]["facets"])
    assert keys >= {"version", "datasetType", "lakefs_commit", "mlrepo_pins", "mlrepo_modelChoice", "mlrepo_container"}
    assert keys >= {"executionParameters", "parent", "jobType"}


def test_a_facet_with_a_wrong_schema_url_or_shape_fails_validation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (complete,) = [d for d in _emitted(monkeypatch, tmp_path) if d["job"]["name"] == "iris_daily.predict"]
    stale = json.loads(json.dumps(complete))
    commit = stale["inputs"][0]["facets"]["lakefs_commit"]
    commit["_schemaURL"] = commit["_schemaURL"].replace(facets.SCHEMA_COMMIT, "v0.1.0")
    with pytest.raises(AssertionError, match="no published schema"):
        validate_event(stale)
    broken = json.loads(json.dumps(complete))
    broken["inputs"][0]["facets"]["lakefs_commit"]["commitId"] = "not-a-commit"
    with pytest.raises(AssertionError, match="does not validate"):
        validate_event(broken)


def test_our_schema_urls_name_the_shipped_files_at_the_commit_that_introduced_them() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the schema commit cannot be looked up")
    assert set(facets.SCHEMA_COMMITS) == set(facets.FACET_CLASSES)
    for facet_class in facets.FACET_CLASSES:
        commit = facets.SCHEMA_COMMITS[facet_class]
        url = facets.schema_url(facet_class)
        assert url == (
            f"https://raw.githubusercontent.com/airflow-mlrepo/airflow-mlrepo/{commit}/"
            f"{facets.SCHEMA_REPOSITORY_PATH}/{facet_class}.json#/$defs/{facet_class}"
        )
        shown = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "show",
                f"{commit}:{facets.SCHEMA_REPOSITORY_PATH}/{facet_class}.json",
            ],
            capture_output=True,
            check=False,
        )
        if (shown.returncode != 0 and b"bad object" in shown.stderr) or b"invalid object" in shown.stderr:
            pytest.skip(f"commit {commit} is not in this clone (shallow?)")
        assert shown.returncode == 0, shown.stderr.decode()
        assert shown.stdout == facets.schema_path(facet_class).read_bytes(), (
            f"{facet_class}.json changed after {commit}: add a new schema version instead"
        )
