"""`mlrepo provenance`: the walk back from an output to its commits and run, with lakeFS faked at the
hook boundary (commits held in memory, metadata built by the operators' own `build_provenance`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_mlrepo import cli
from airflow_mlrepo.exceptions import LakeFSNotFoundError, MlRepoError, NoProvenanceError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSConnectionSettings, LakeFSHook
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import PinnedInput
from airflow_mlrepo.provenance import MODEL_FORMAT_KEY, MODEL_FRAMEWORK_KEY, build_provenance
from airflow_mlrepo.provenance_report import Links, render_text, trace

TRAIN = "a" * 64
INPUT = "b" * 64
MODEL_ATTEMPT = "c" * 64
MODEL_MERGE = "d" * 64
PRED_ATTEMPT = "e" * 64
PRED_MERGE = "f" * 64
ROOT = "0" * 64
MODELS = "iris-models"
PREDICTIONS = "lakefs://iris-predictions/main/predictions/"


def _metadata(
    kind: str,
    pins: dict[str, PinnedInput],
    model_input: str | None,
    dag_id: str,
    task_id: str,
    *,
    output: str,
    run_id: str = "manual__2026-11-25T00:00:00+00:00",
) -> dict:
    when = datetime(2026, 11, 25, tzinfo=timezone.utc)
    return build_provenance(
        output_kind=kind,
        pins=pins,
        model_input=model_input,
        model_policy="latest" if model_input else None,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=-1,
        try_number=2,
        run_type="manual",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        command=["python", "-m", f"mlrepo_iris.{task_id}"],
        runner="local",
        hyperparameters={"C": 1.0} if kind == "model" else {},
        fingerprint_value="fp",
        airflow_url=f"http://airflow.example/dags/{dag_id}/runs/r/tasks/{task_id}",
        openlineage_run_id="01a2-ol-run",
        output=output,
    )


def _commit(commit_id: str, parents: Sequence[str], message: str, metadata: dict | None = None) -> LakeFSCommit:
    return LakeFSCommit(
        id=commit_id,
        parents=tuple(parents),
        committer="admin",
        message=message,
        creation_date=1_764_000_000,
        metadata=metadata or {},
    )


class FakeLakeFS(LakeFSHook):
    """Four repositories as the operators leave them: data commits, attempt commits merged into main."""

    def __init__(self) -> None:
        super().__init__()
        self.__dict__["settings"] = LakeFSConnectionSettings("http://lakefs.example:8000", "key", "secret")
        train = PinnedInput(
            "training_data", LakeFSLocation("iris-train", "main", "data/"), TRAIN, "as_of", as_of="2026-11-25"
        )
        model_meta = {
            **_metadata(
                "model",
                {"training_data": train},
                None,
                "iris_training",
                "train",
                output=f"lakefs://{MODELS}/main/model/",
            ),
            MODEL_FRAMEWORK_KEY: "scikit-learn",
            MODEL_FORMAT_KEY: "pickle",
        }
        batch = PinnedInput("input_data", LakeFSLocation("iris-input", "main", "batches/"), INPUT, "as_of")
        model = PinnedInput("model", LakeFSLocation("iris-models", "main", "model/"), MODEL_MERGE, "latest")
        pred_meta = _metadata(
            "predictions",
            {"input_data": batch, "model": model},
            "model",
            "iris_inference",
            "predict",
            output=PREDICTIONS,
        )
        self.commits: dict[str, dict[str, LakeFSCommit]] = {
            "iris-train": {TRAIN: _commit(TRAIN, [ROOT], "iris part 1"), "main": _commit(TRAIN, [ROOT], "iris part 1")},
            "iris-input": {INPUT: _commit(INPUT, [ROOT], "batch 1")},
            "iris-models": {
                MODEL_ATTEMPT: _commit(MODEL_ATTEMPT, [ROOT], "model", model_meta),
                MODEL_MERGE: _commit(MODEL_MERGE, [ROOT, MODEL_ATTEMPT], "model", model_meta),
            },
            "iris-predictions": {
                PRED_ATTEMPT: _commit(PRED_ATTEMPT, [ROOT], "predictions", pred_meta),
                PRED_MERGE: _commit(PRED_MERGE, [ROOT, PRED_ATTEMPT], "predictions", pred_meta),
                ROOT: _commit(ROOT, [], "Repository created"),
            },
        }
        self.commits["iris-predictions"]["main"] = self.commits["iris-predictions"][PRED_MERGE]
        self.commits["iris-models"]["main"] = self.commits["iris-models"][MODEL_MERGE]
        self.objects = {
            ("iris-predictions", "predictions/predictions.csv"),
            ("iris-models", "model/model.pkl"),
            ("iris-train", "data/iris-part-1.csv"),
        }

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        try:
            return self.commits[repository][ref]
        except KeyError:
            raise LakeFSNotFoundError("not found", repository=repository, ref=ref, status=404) from None

    def object_exists(self, repository: str, ref: str, path: str) -> bool:
        return (repository, path) in self.objects

    def log_commits(self, repository: str, ref: str, **kwargs: Any) -> Iterator[LakeFSCommit]:
        objects, prefixes = kwargs.get("objects") or [], kwargs.get("prefixes") or []
        if kwargs.get("first_parent"):
            commit = self.get_commit(repository, ref)
            yield commit
            while commit.parents:
                commit = self.commits[repository].get(commit.parents[0]) or _commit(commit.parents[0], [], "root")
                yield commit
            return
        touched = {p for r, p in self.objects if r == repository}
        if not any(o in touched for o in objects) and not any(t.startswith(tuple(prefixes)) for t in touched):
            return
        if repository == "iris-predictions":  # lakeFS answers with the attempt branch's commit
            yield self.commits[repository][PRED_ATTEMPT]
        else:
            yield self.get_commit(repository, ref)


@pytest.fixture
def lakefs() -> FakeLakeFS:
    return FakeLakeFS()


LINKS = Links(lakefs_ui="http://lakefs.example:8000", airflow_ui="http://airflow.example", marquez_api=None)


def test_a_prediction_object_walks_back_to_model_training_data_input_and_runs(lakefs: FakeLakeFS) -> None:
    node = trace(lakefs, "lakefs://iris-predictions/main/predictions/predictions.csv", links=LINKS)
    # the commit on main (the merge), not the attempt branch's commit lakeFS's object log names
    assert node.commit_id == PRED_MERGE
    assert node.role == "predictions"
    assert node.model_policy == "latest"
    assert node.airflow is not None
    assert node.airflow.dag_id == "iris_inference"
    assert node.airflow.try_number == "2"
    assert (
        node.airflow.run_url
        == "http://airflow.example/dags/iris_inference/runs/manual__2026-11-25T00%3A00%3A00%2B00%3A00"
    )
    assert node.image == "ghcr.io/airflow-mlrepo/iris:0.1.0"
    model, input_data = node.find("model"), node.find("input_data")
    assert model is not None
    assert input_data is not None
    assert model.commit_id == MODEL_MERGE
    assert model.kind == "output"
    assert model.pin_rule == "latest"
    assert model.airflow is not None
    assert model.airflow.dag_id == "iris_training"
    assert model.hyperparameters == {"C": 1.0}
    assert input_data.commit_id == INPUT
    assert input_data.kind == "data"
    training = node.find("training_data")
    assert training is not None
    assert training.commit_id == TRAIN
    assert training.pin_as_of == "2026-11-25"
    assert training.commit_url == f"http://lakefs.example:8000/repositories/iris-train/commits/{TRAIN}"


def test_json_form_holds_the_whole_chain(lakefs: FakeLakeFS) -> None:
    data = json.loads(json.dumps(trace(lakefs, f"lakefs://iris-predictions/{PRED_MERGE}", links=LINKS).to_dict()))
    assert data["commit_id"] == PRED_MERGE
    by_role = {child["role"]: child for child in data["inputs"]}
    assert set(by_role) == {"input_data", "model"}
    assert by_role["model"]["inputs"][0]["commit_id"] == TRAIN
    assert by_role["model"]["airflow"]["openlineage_run_id"] == "01a2-ol-run"
    assert "inputs" not in by_role["input_data"]  # a plain data commit is a leaf


def test_tree_rendering_names_every_commit_and_link(lakefs: FakeLakeFS) -> None:
    text = render_text(trace(lakefs, "lakefs://iris-models/main/model/", links=LINKS), width=400)
    assert MODEL_MERGE in text
    assert TRAIN in text
    assert "iris_training" in text
    assert "pinned by rule 'as_of' as of 2026-11-25" in text
    assert "http://airflow.example/dags/iris_training/runs/" in text


def test_data_without_provenance_is_a_clear_error_naming_repo_ref_path(lakefs: FakeLakeFS) -> None:
    with pytest.raises(NoProvenanceError) as caught:
        trace(lakefs, "lakefs://iris-train/main/data/iris-part-1.csv", links=LINKS)
    err = caught.value
    assert (err.repository, err.ref, err.path) == ("iris-train", "main", "data/iris-part-1.csv")
    assert "lakefs://iris-train/main/data/iris-part-1.csv carries no airflow-mlrepo provenance" in str(err)
    assert TRAIN in str(err)


def test_a_path_never_committed_is_not_found(lakefs: FakeLakeFS) -> None:
    with pytest.raises(LakeFSNotFoundError, match="no object or prefix with this path"):
        trace(lakefs, "lakefs://iris-predictions/main/nothing/here.csv", links=LINKS)


def test_inconsistent_metadata_that_loops_is_reported(lakefs: FakeLakeFS) -> None:
    looping = dict(lakefs.commits["iris-models"][MODEL_MERGE].metadata)
    looping["mlrepo.input.training_data"] = f"lakefs://iris-models/{MODEL_MERGE}/model/"
    lakefs.commits["iris-models"][MODEL_MERGE] = _commit(MODEL_MERGE, [ROOT, MODEL_ATTEMPT], "model", looping)
    lakefs.commits["iris-models"]["main"] = lakefs.commits["iris-models"][MODEL_MERGE]
    with pytest.raises(MlRepoError, match="loops"):
        trace(lakefs, "lakefs://iris-models/main", links=LINKS)


def test_cli_prints_json_and_fails_cleanly(
    lakefs: FakeLakeFS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_lakefs_hook_for_cli", lambda conn_id: lakefs)
    location = "lakefs://iris-predictions/main/predictions/predictions.csv"
    assert cli.main(["provenance", location, "--json", "--airflow-url", "http://airflow.example"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["airflow"]["run_url"].startswith("http://airflow.example/dags/iris_inference/runs/")
    assert cli.main(["provenance", location, "--airflow-url", "http://airflow.example"]) == cli.EXIT_OK
    assert PRED_MERGE[:12] in capsys.readouterr().out
    assert cli.main(["provenance", "lakefs://iris-train/main/data/iris-part-1.csv"]) == cli.EXIT_FAILED
    assert "carries no airflow-mlrepo provenance" in capsys.readouterr().err
    assert cli.main(["provenance", "not-a-location"]) == cli.EXIT_FAILED
    assert "Invalid lakeFS location" in capsys.readouterr().err


def test_the_model_s_framework_and_format_recorded_on_its_commit_are_shown(lakefs: FakeLakeFS) -> None:
    node = trace(lakefs, "lakefs://iris-predictions/main/predictions/predictions.csv", links=LINKS)
    model = node.find("model")
    assert model is not None
    assert (model.model_framework, model.model_format) == ("scikit-learn", "pickle")
    assert node.to_dict()["inputs"][1]["model_framework"] == "scikit-learn"
    assert "model framework scikit-learn  format pickle" in render_text(node)


RERUN_ATTEMPT = "9" * 64
RERUN_MERGE = "8" * 64
RERUN_ID = "asset_triggered__2026-11-26T00:00:00+00:00"


def test_a_run_that_committed_the_bytes_already_there_is_the_provenance_of_its_own_commit(
    lakefs: FakeLakeFS,
) -> None:
    # A second inference run with the same input and model: the same predictions, an empty commit
    # (allow_empty) merged into main. lakeFS's object log still names the first run's commit.
    repo = lakefs.commits["iris-predictions"]
    first = repo[PRED_MERGE].metadata
    rerun_meta = {**first, "mlrepo.run_id": RERUN_ID}
    repo[RERUN_ATTEMPT] = _commit(RERUN_ATTEMPT, [PRED_MERGE], "predictions", rerun_meta)
    repo[RERUN_MERGE] = repo["main"] = _commit(RERUN_MERGE, [PRED_MERGE, RERUN_ATTEMPT], "predictions", rerun_meta)

    # the commit the rerun's task instance recorded (its mlrepo_output_commit XCom), and main's head
    for location in (f"lakefs://iris-predictions/{RERUN_MERGE}/predictions/", f"{PREDICTIONS}predictions.csv"):
        node = trace(lakefs, location, links=LINKS)
        assert node.commit_id == RERUN_MERGE, location
        assert node.airflow is not None
        assert node.airflow.run_id == RERUN_ID
    # the first run's task instance still shows its own commit
    node = trace(lakefs, f"lakefs://iris-predictions/{PRED_MERGE}/predictions/", links=LINKS)
    assert node.commit_id == PRED_MERGE
    assert node.airflow is not None
    assert node.airflow.run_id == first["mlrepo.run_id"]


def test_a_later_commit_of_another_output_or_without_provenance_does_not_stand_for_the_object(
    lakefs: FakeLakeFS,
) -> None:
    # main moved on: a task wrote another path, then someone committed by hand; neither wrote predictions/
    repo = lakefs.commits["iris-predictions"]
    other = {**repo[PRED_MERGE].metadata, "mlrepo.output": "lakefs://iris-predictions/main/reports/"}
    repo["1" * 64] = _commit("1" * 64, [PRED_MERGE], "report", other)
    repo["2" * 64] = repo["main"] = _commit("2" * 64, ["1" * 64], "notes by hand")
    node = trace(lakefs, f"{PREDICTIONS}predictions.csv", links=LINKS)
    assert node.commit_id == PRED_MERGE
