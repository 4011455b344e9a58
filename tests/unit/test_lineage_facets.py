"""Lineage naming and facets against the OpenLineage client's own classes and our shipped JSON schemas."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.sdk import Asset
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, RunFacet
from openlineage.client.serde import Serde

from airflow_mlrepo.assets.lakefs import convert_asset_to_openlineage
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSConnectionSettings
from airflow_mlrepo.lineage import facets, naming, operator_lineage
from airflow_mlrepo.lineage.ids import TaskLineageIds
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.pod import LakeFSPodOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.pinning import PinnedInput

TRAIN_COMMIT = "1" * 64
INPUT_COMMIT = "2" * 64
MODEL_COMMIT = "3" * 64
OUTPUT_COMMIT = "4" * 64
COMMIT_TIME = 1_790_000_000
SECRET_KEY = "lineage/unit+secret/value/that/must/not/leak"
ACCESS_KEY = "AKIALINEAGEUNITTEST01"
TRAINING_RUN = TaskLineageIds(
    namespace="airflow-prod",
    job_name="iris_daily.train",
    run_id="01935b8e-0000-7000-8000-000000000001",
    parent_run_id="01935b8e-0000-7000-8000-000000000002",
    parent_job_name="iris_daily",
)


def _validate(facet_class: str, key: str, facet: Any) -> dict[str, Any]:
    document = {key: Serde.to_dict(facet)}
    jsonschema.validate(document, facets.load_schema(facet_class), format_checker=jsonschema.FormatChecker())
    return document[key]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("lakefs://iris-train/main/data/", "lakefs://iris-train", "main/data"),
        ("lakefs://iris-train/main/data/part-1.csv", "lakefs://iris-train", "main/data/part-1.csv"),
        ("lakefs://iris-train/main/", "lakefs://iris-train", "main"),
        ("lakefs://iris-train/main~3/data", "lakefs://iris-train", "main/data"),
        ("lakefs://iris-train/v1.2/data", "lakefs://iris-train", "v1.2/data"),
    ],
)
def test_identity_has_no_commit_id(uri: str, namespace: str, name: str) -> None:
    assert naming.identity(LakeFSLocation.parse(uri)) == (namespace, name)


def test_a_commit_id_never_becomes_part_of_a_name() -> None:
    location = LakeFSLocation.parse(f"lakefs://iris-train/{TRAIN_COMMIT}/data")
    with pytest.raises(ValueError, match="cannot name a dataset"):
        naming.identity(location)
    assert naming.identity(location, branch="main") == ("lakefs://iris-train", "main/data")
    assert naming.branch_of(f"{TRAIN_COMMIT}~1", "main") == "main"


def test_every_commit_is_a_version_of_one_dataset() -> None:
    source = LakeFSLocation.parse("lakefs://iris-train/main/data/")
    first = naming.input_dataset(source, commit_id=TRAIN_COMMIT)
    second = naming.input_dataset(source, commit_id=INPUT_COMMIT)
    assert (first.namespace, first.name) == (second.namespace, second.name)
    assert first.facets["version"].datasetVersion == TRAIN_COMMIT  # type: ignore[index,attr-defined]
    assert second.facets["version"].datasetVersion == INPUT_COMMIT  # type: ignore[index,attr-defined]


def test_lakefs_commit_facet_is_a_v2_dataset_facet_valid_against_the_shipped_schema() -> None:
    producer = naming.producer_from_metadata(TRAINING_RUN.commit_metadata())
    assert producer is not None
    facet = facets.LakeFSCommitDatasetFacet(
        repository="iris-models",
        branch="main",
        commitId=MODEL_COMMIT,
        path="model",
        uri=f"lakefs://iris-models/{MODEL_COMMIT}/model",
    )
    assert isinstance(facet, DatasetFacet)
    document = _validate("LakeFSCommitDatasetFacet", facets.LAKEFS_COMMIT_FACET, facet)
    assert document["_schemaURL"] == facets.schema_url("LakeFSCommitDatasetFacet")
    assert document["_producer"] == facets.PRODUCER
    pin = facets.LakeFSInputPin(
        namespace="lakefs://iris-models",
        name="main/model",
        commitId=MODEL_COMMIT,
        rule="as_of",
        ref="main",
        asOf="2026-11-01T00:00:00+00:00",
        commitTime="2026-11-01T00:00:05+00:00",
        producedBy=producer,
    )
    pins = facets.MlrepoPinsRunFacet(inputs=[pin])
    assert isinstance(pins, RunFacet)
    pins_document = _validate("MlrepoPinsRunFacet", facets.PINS_FACET, pins)
    assert pins_document["_producer"] == facets.PRODUCER
    (pin_document,) = pins_document["inputs"]
    assert pin_document["producedBy"] == {
        "runId": TRAINING_RUN.run_id,
        "jobNamespace": "airflow-prod",
        "jobName": "iris_daily.train",
        "parentRunId": TRAINING_RUN.parent_run_id,
        "parentJobNamespace": "airflow-prod",
        "parentJobName": "iris_daily",
    }


def test_schema_rejects_a_facet_without_a_commit_id() -> None:
    document = {"lakefs_commit": {"_producer": "x", "_schemaURL": "y", "repository": "iris", "branch": "main"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, facets.load_schema("LakeFSCommitDatasetFacet"))


def test_run_facets_are_v2_run_facets_valid_against_their_schemas() -> None:
    choice = facets.MlrepoModelChoiceRunFacet(
        policy="as_of", requested="as_of", model="lakefs://iris-models/main/model", commitId=MODEL_COMMIT
    )
    container = facets.MlrepoContainerRunFacet(image="ghcr.io/x/iris:1", runner="local", outputKind="model")
    assert isinstance(choice, RunFacet)
    assert isinstance(container, RunFacet)
    _validate("MlrepoModelChoiceRunFacet", facets.MODEL_CHOICE_FACET, choice)
    _validate("MlrepoContainerRunFacet", facets.CONTAINER_FACET, container)
    counts = facets.MlrepoDatumsRunFacet(
        mode="incremental", processed=1, skipped=100, deleted=0, total=101, tasks=1, reason="diff"
    )
    _validate("MlrepoDatumsRunFacet", facets.DATUMS_FACET, counts)


def test_schemas_ship_in_the_wheel(tmp_path: Path) -> None:
    import subprocess
    import sys

    project = Path(__file__).resolve().parents[2]
    uv = Path(sys.executable).with_name("uv")
    result = subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(tmp_path), str(project)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for facet_class in facets.FACET_CLASSES:
        assert f"airflow_mlrepo/lineage/schemas/{facets.FACET_SCHEMA_VERSION}/{facet_class}.json" in names


def test_asset_converter_gives_assets_the_operators_identity() -> None:
    dataset = convert_asset_to_openlineage(Asset(uri="lakefs://iris-input/main/batches"), None)
    assert (dataset.namespace, dataset.name) == ("lakefs://iris-input", "main/batches")
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    translated = translate_airflow_asset(Asset(uri="lakefs://iris-input/main/batches/"), None)
    assert translated is not None
    assert (translated.namespace, translated.name) == ("lakefs://iris-input", "main/batches")


# ------------------------------------------------------------------------------------ operators


def _training() -> LakeFSTrainingOperator:
    return LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": "lakefs://iris-train/main/data/"},
        output_location="lakefs://iris-models/main/model/",
        hyperparameters={"C": 0.5, "solver": "lbfgs"},
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        cmds=["python", "-m", "mlrepo_iris.train"],
        env_vars={"API_TOKEN": SECRET_KEY},
        runner="local",
    )


def _inference(model_version: str = "as_of") -> LakeFSInferenceOperator:
    return LakeFSInferenceOperator(
        task_id="predict",
        inputs={"input_data": "lakefs://iris-input/main/batches/"},
        model="lakefs://iris-models/main/model/",
        model_version=model_version,
        output_location="lakefs://iris-predictions/main/predictions/",
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        cmds=["python", "-m", "mlrepo_iris.predict"],
        runner="local",
    )


class _CommitsHook:
    """Stands in for lakeFS in unit tests: answers get_commit from a dict."""

    def __init__(self, commits: dict[str, LakeFSCommit]) -> None:
        self.commits = commits
        self.settings = LakeFSConnectionSettings(
            endpoint="http://lakefs:8000", access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY
        )

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        return self.commits[ref]


def _commit(commit_id: str, metadata: dict[str, str]) -> LakeFSCommit:
    return LakeFSCommit(commit_id, (), "someone", "msg", COMMIT_TIME, metadata)


def use_history_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lineage reads commits from a stand-in lakeFS: training data and input pushed by people, the
    model commit written by TRAINING_RUN (its provenance metadata)."""
    hook = _CommitsHook(
        {
            TRAIN_COMMIT: _commit(TRAIN_COMMIT, {}),
            INPUT_COMMIT: _commit(INPUT_COMMIT, {}),
            MODEL_COMMIT: _commit(MODEL_COMMIT, {"mlrepo.output_kind": "model", **TRAINING_RUN.commit_metadata()}),
        }
    )
    monkeypatch.setattr(operator_lineage, "_lineage_hook", lambda _op: hook)


def _event(lineage: OperatorLineage[Any, Any], state: RunState = RunState.COMPLETE) -> dict[str, Any]:
    event = RunEvent(
        eventType=state,
        eventTime="2026-11-01T00:10:00+00:00",
        run=Run(runId="01935b8e-0000-7000-8000-0000000000aa", facets=lineage.run_facets),
        job=Job(namespace="airflow-prod", name="iris_daily.predict"),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
        producer="https://github.com/airflow-mlrepo/airflow-mlrepo",
    )
    return json.loads(Serde.to_json(event))  # type: ignore[no-any-return]


def _pin(name: str, uri: str, commit: str, rule: str, as_of: str | None = None) -> PinnedInput:
    return PinnedInput(name, LakeFSLocation.parse(uri), commit, rule, as_of)


def test_start_reports_run_facets_and_no_unpinned_datasets() -> None:
    lineage = _training().get_openlineage_facets_on_start()
    assert lineage.inputs == []
    assert lineage.outputs == []
    params = {p.key: p.value for p in lineage.run_facets["executionParameters"].parameters}
    assert params == {"C": "0.5", "solver": "lbfgs"}
    assert lineage.run_facets["mlrepo_container"].image == "ghcr.io/airflow-mlrepo/iris:0.1.0"


def test_training_complete_reports_pinned_inputs_and_the_model_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    op = _training()
    op.pinned_inputs = {
        "training_data": _pin(
            "training_data", "lakefs://iris-train/main/data/", TRAIN_COMMIT, "as_of", "2026-11-01T00:00:00+00:00"
        )
    }
    op.output_commit_id = MODEL_COMMIT
    hook = _CommitsHook({TRAIN_COMMIT: _commit(TRAIN_COMMIT, {"source": "human"})})
    monkeypatch.setattr(operator_lineage, "_lineage_hook", lambda _op: hook)
    event = _event(op.get_openlineage_facets_on_complete(None))

    (training_data,) = event["inputs"]
    assert (training_data["namespace"], training_data["name"]) == ("lakefs://iris-train", "main/data")
    assert training_data["facets"]["version"]["datasetVersion"] == TRAIN_COMMIT
    commit = training_data["facets"]["lakefs_commit"]
    assert commit["commitId"] == TRAIN_COMMIT
    assert commit["repository"] == "iris-train"
    assert commit["branch"] == "main"
    assert not training_data.get("inputFacets")
    (pin,) = event["run"]["facets"]["mlrepo_pins"]["inputs"]
    assert (pin["namespace"], pin["name"], pin["commitId"]) == ("lakefs://iris-train", "main/data", TRAIN_COMMIT)
    assert pin["rule"] == "as_of"
    assert pin["asOf"] == "2026-11-01T00:00:00+00:00"
    assert pin["commitTime"] == datetime.fromtimestamp(COMMIT_TIME, tz=timezone.utc).isoformat()
    assert "producedBy" not in pin
    assert "datasetType" not in training_data["facets"]
    (model,) = event["outputs"]
    assert (model["namespace"], model["name"]) == ("lakefs://iris-models", "main/model")
    assert model["facets"]["version"]["datasetVersion"] == MODEL_COMMIT
    assert model["facets"]["datasetType"]["datasetType"] == "MODEL"
    jsonschema.validate({"lakefs_commit": commit}, facets.load_schema("LakeFSCommitDatasetFacet"))


@pytest.mark.parametrize(("model_version", "policy"), [("latest", "latest"), ("as_of", "as_of"), ("v1", "explicit")])
def test_inference_reports_model_choice_and_the_training_run_behind_the_model(
    monkeypatch: pytest.MonkeyPatch, model_version: str, policy: str
) -> None:
    op = _inference(model_version)
    model_source = "lakefs://iris-models/main/model/" if policy != "explicit" else "lakefs://iris-models/v1/model/"
    op.pinned_inputs = {
        "input_data": _pin("input_data", "lakefs://iris-input/main/batches/", INPUT_COMMIT, "asset_event"),
        "model": _pin("model", model_source, MODEL_COMMIT, policy if policy != "as_of" else "as_of"),
    }
    op.output_commit_id = OUTPUT_COMMIT
    hook = _CommitsHook(
        {
            INPUT_COMMIT: _commit(INPUT_COMMIT, {}),
            MODEL_COMMIT: _commit(MODEL_COMMIT, {"mlrepo.output_kind": "model", **TRAINING_RUN.commit_metadata()}),
        }
    )
    monkeypatch.setattr(operator_lineage, "_lineage_hook", lambda _op: hook)
    event = _event(op.get_openlineage_facets_on_complete(None))

    inputs = {d["name"]: d for d in event["inputs"]}
    model = inputs["main/model"]  # an explicit tag is still a version of the model branch's dataset
    assert model["namespace"] == "lakefs://iris-models"
    assert model["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert model["facets"]["version"]["datasetVersion"] == MODEL_COMMIT
    pins = {pin["name"]: pin for pin in event["run"]["facets"]["mlrepo_pins"]["inputs"]}
    assert pins["main/model"]["producedBy"]["runId"] == TRAINING_RUN.run_id
    assert pins["main/model"]["producedBy"]["jobName"] == "iris_daily.train"
    assert pins["main/model"]["ref"] == "main"
    assert pins["main/batches"]["rule"] == "asset_event"
    assert inputs["main/batches"]["facets"]["version"]["datasetVersion"] == INPUT_COMMIT
    choice = event["run"]["facets"]["mlrepo_modelChoice"]
    assert (choice["policy"], choice["requested"], choice["commitId"]) == (policy, model_version, MODEL_COMMIT)
    assert choice["model"] == "lakefs://iris-models/main/model/"
    (predictions,) = event["outputs"]
    assert predictions["name"] == "main/predictions"
    assert "datasetType" not in predictions["facets"]
    jsonschema.validate({"mlrepo_modelChoice": choice}, facets.load_schema("MlrepoModelChoiceRunFacet"))


def test_failure_reports_inputs_but_no_output() -> None:
    op = _inference()
    op.pinned_inputs = {"input_data": _pin("input_data", "lakefs://iris-input/main/batches/", INPUT_COMMIT, "as_of")}
    lineage = op.get_openlineage_facets_on_failure(None)
    assert [d.name for d in lineage.inputs] == ["main/batches"]
    assert lineage.outputs == []


def test_lineage_events_carry_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    op = _training()
    op.pinned_inputs = {"training_data": _pin("training_data", "lakefs://iris-train/main/data/", TRAIN_COMMIT, "as_of")}
    op.output_commit_id = MODEL_COMMIT
    hook = _CommitsHook({TRAIN_COMMIT: _commit(TRAIN_COMMIT, {})})
    monkeypatch.setattr(operator_lineage, "_lineage_hook", lambda _op: hook)
    for lineage in (
        op.get_openlineage_facets_on_start(),
        op.get_openlineage_facets_on_complete(None),
        op.get_openlineage_facets_on_failure(None),
    ):
        text = json.dumps(_event(lineage))
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text
        assert "API_TOKEN" not in text
        assert "mlrepo_iris.train" not in text  # the command line is not reported (it may hold secrets)


def test_operators_expose_the_marquez_link_and_lineage_methods() -> None:
    op: LakeFSPodOperator = _training()
    assert "Marquez run" in {link.name for link in op.operator_extra_links}
    ti = SimpleNamespace(dag_id="iris_daily", task_id="train")
    assert op.get_openlineage_facets_on_complete(ti).outputs == []  # nothing produced yet


def test_sensor_reports_what_it_watched_at_the_detected_head() -> None:
    from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor

    sensor = LakeFSCommitSensor(task_id="wait", repository="iris-train", branch="main", prefixes=["data/", "labels/"])
    assert [d.facets for d in sensor.get_openlineage_facets_on_complete(None).inputs] == [{}, {}]
    sensor.detected_head = TRAIN_COMMIT
    event = _event(sensor.get_openlineage_facets_on_complete(None))
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        ("lakefs://iris-train", "main/data"),
        ("lakefs://iris-train", "main/labels"),
    ]
    assert {d["facets"]["version"]["datasetVersion"] for d in event["inputs"]} == {TRAIN_COMMIT}
    assert [pin["rule"] for pin in event["run"]["facets"]["mlrepo_pins"]["inputs"]] == ["detected", "detected"]


def _provider_lineage(op: LakeFSPodOperator, state: Any) -> OperatorLineage[Any, Any]:
    """What the openlineage provider's listener reports for ``op`` (its extractor manager, outlet fallback included)."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    ti = SimpleNamespace(task=op, dag_id="iris_daily", task_id=op.task_id, try_number=1, map_index=-1)
    dagrun = SimpleNamespace(run_id="manual__2026-11-01T00:00:00+00:00")
    return ExtractorManager().extract_metadata(dagrun=dagrun, task=op, task_instance_state=state, task_instance=ti)


def test_start_and_an_early_failure_report_no_outlet_as_output_but_complete_reports_the_commit() -> None:
    from airflow.utils.state import TaskInstanceState

    model = Asset(uri="lakefs://iris-models/main/model/")
    op = LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": "lakefs://iris-train/main/data/"},
        output_location="lakefs://iris-models/main/model/",
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        cmds=["python", "-m", "mlrepo_iris.train"],
        runner="local",
        outlets=[model],
    )
    started = _provider_lineage(op, TaskInstanceState.RUNNING)
    assert started.outputs == []  # the provider would add the outlet as an output with no facets
    assert started.inputs == []
    failed = _provider_lineage(op, TaskInstanceState.FAILED)  # failed before pinning: nothing read, nothing written
    assert failed.outputs == []
    op.pinned_inputs = {"training_data": _pin("training_data", "lakefs://iris-train/main/data/", TRAIN_COMMIT, "as_of")}
    op.output_commit_id = MODEL_COMMIT
    completed = _provider_lineage(op, TaskInstanceState.SUCCESS)
    (output,) = completed.outputs
    assert output.facets["version"].datasetVersion == MODEL_COMMIT  # type: ignore[attr-defined]
    # once the attempt is over, the Asset converts again (DAG-level lineage, other tasks)
    assert convert_asset_to_openlineage(model, None).name == "main/model"
