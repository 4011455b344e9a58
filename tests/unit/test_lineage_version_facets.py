"""A dataset version's facets in Marquez describe the commit only, never the latest reader's choice
(issue 14, defect 7): the facts of one reading (pin rule, as-of, declared ref) travel in that run's
``mlrepo_pins`` run facet.

Marquez 0.51 stores, for every input and output of an event, the dataset facets **and** the input /
output facets against the dataset version the dataset links to (``OpenLineageDao`` ->
``DatasetFacetsDao.insertInputDatasetFacetsFor``), and a version's ``facets`` in
``GET …/datasets/{name}/versions`` are the latest per facet name: seen on a real 0.51.1, where a
reader's input facet ``mlrepo_pin`` (rule ``as_of``, its ``asOf``) showed on the model version.
:func:`stored_version_facets` applies that rule to the events we emit (registrations included, as the
outbox writes them), and the answer is shaped like the recorded version list
(``tests/unit/marquez_answers.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from airflow_mlrepo.lineage import facets
from airflow_mlrepo.lineage.marquez_reader import commit_of
from airflow_mlrepo.lineage.outbox import OutboxConfig, OutboxTransport
from tests.openlineage_validation import validate_event
from tests.unit import marquez_answers as recorded
from tests.unit import test_lineage_facets as examples

pytestmark = pytest.mark.unit
MODELS = ("lakefs://iris-models", "main/model")
AS_OF = "2026-11-01T00:00:00+00:00"
READER_RUNS = ("01935b8e-0000-7000-8000-0000000000a1", "01935b8e-0000-7000-8000-0000000000a2")


def _delivered(lineage: Any, run_id: str, job: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The events one COMPLETE becomes in the outbox (registrations first), each valid OpenLineage."""
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-01T00:10:00+00:00",
        run=Run(runId=run_id, facets=lineage.run_facets),
        job=Job(namespace="airflow-prod", name=job),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
        producer=facets.PRODUCER,
    )
    transport = OutboxTransport(OutboxConfig(outbox_dir=str(tmp_path), deliver_in_background=False, fsync=False))
    documents = [json.loads(line) for line in transport.entry_lines(event)]
    for document in documents:
        validate_event(document)
    return documents


def stored_version_facets(events: list[dict[str, Any]], dataset: tuple[str, str], commit: str) -> dict[str, Any]:
    """The ``facets`` Marquez 0.51 shows on the version of ``dataset`` at ``commit`` after ``events``."""
    stored: dict[str, Any] = {}
    for event in events:
        for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
            for item in event.get(side) or []:
                if (item["namespace"], item["name"]) != dataset:
                    continue
                if (item.get("facets") or {}).get("version", {}).get("datasetVersion") != commit:
                    continue
                stored.update(item.get("facets") or {})
                stored.update(item.get(extra) or {})
    return stored


def _history(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train model commit 3…3, then two predictions read it: one at ``latest``, one ``as_of`` an instant."""
    examples.use_history_commits(monkeypatch)
    train = examples._training()
    train.pinned_inputs = {
        "training_data": examples._pin(
            "training_data", "lakefs://iris-train/main/data/", examples.TRAIN_COMMIT, "as_of", AS_OF
        )
    }
    train.output_commit_id = examples.MODEL_COMMIT
    written = _delivered(
        train.get_openlineage_facets_on_complete(None), examples.TRAINING_RUN.run_id, "iris_daily.train", tmp_path
    )
    (model_output,) = [d for d in written[-1]["outputs"] if (d["namespace"], d["name"]) == MODELS]
    events = list(written)
    for run_id, (rule, as_of) in zip(READER_RUNS, (("latest", None), ("as_of", AS_OF)), strict=True):
        predict = examples._inference(rule)
        predict.pinned_inputs = {
            "input_data": examples._pin(
                "input_data", "lakefs://iris-input/main/batches/", examples.INPUT_COMMIT, "asset_event"
            ),
            "model": examples._pin("model", "lakefs://iris-models/main/model/", examples.MODEL_COMMIT, rule, as_of),
        }
        predict.output_commit_id = examples.OUTPUT_COMMIT
        events += _delivered(predict.get_openlineage_facets_on_complete(None), run_id, "iris_daily.predict", tmp_path)
    return events, model_output


def test_a_model_versions_facets_stay_the_writers_whatever_its_readers_chose(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    events, model_output = _history(monkeypatch, tmp_path)
    version = recorded._version(
        MODELS, examples.MODEL_COMMIT, examples.TRAINING_RUN.run_id, "3f1c4f8e-6f0d-3a4b-9d43-0b8b0f0e1a01"
    )
    version["facets"] = stored_version_facets(events, MODELS, examples.MODEL_COMMIT)
    # the version list item shows exactly what the training run reported for its output: the commit
    assert version["facets"] == model_output["facets"]
    assert set(version["facets"]) == {"version", "lakefs_commit", "datasetType"}
    assert commit_of(version) == examples.MODEL_COMMIT
    text = json.dumps(version["facets"])
    assert AS_OF not in text
    assert '"rule"' not in text
    assert "latest" not in text


def test_each_reader_keeps_its_own_pin_in_its_run_facets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    events, _ = _history(monkeypatch, tmp_path)
    readings = {event["run"]["runId"]: event for event in events if event["run"]["runId"] in READER_RUNS}
    pins = {}
    for run_id, event in readings.items():
        # what Marquez shows per run as inputDatasetVersions[i].facets (the input facets) stays empty:
        # those land on the version as well
        assert all(not item.get("inputFacets") for item in event["inputs"])
        (model_pin,) = [
            pin
            for pin in event["run"]["facets"][facets.PINS_FACET]["inputs"]
            if (pin["namespace"], pin["name"]) == MODELS
        ]
        pins[run_id] = model_pin
    latest, as_of = (pins[run_id] for run_id in READER_RUNS)
    assert (latest["rule"], latest.get("asOf")) == ("latest", None)
    assert (as_of["rule"], as_of["asOf"]) == ("as_of", AS_OF)
    for pin in (latest, as_of):
        assert pin["commitId"] == examples.MODEL_COMMIT
        assert pin["ref"] == "main"
        assert pin["producedBy"]["runId"] == examples.TRAINING_RUN.run_id
    # and the registration before each reading still repeats the training run's COMPLETE
    registrations = [e for e in events if e["run"]["runId"] == examples.TRAINING_RUN.run_id]
    assert len(registrations) == 1 + len(READER_RUNS)
