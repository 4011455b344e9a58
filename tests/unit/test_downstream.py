"""Downstream impact of a commit, from provenance metadata, with lakeFS faked at the hook boundary:
in-memory repositories whose output commits carry the metadata the operators' `build_provenance` writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_mlrepo.downstream import downstream, recompute_plan, render_json, render_tree, runs_to_clear
from airflow_mlrepo.exceptions import LakeFSNotFoundError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSConnectionSettings, LakeFSHook
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import PinnedInput
from airflow_mlrepo.provenance import build_provenance
from airflow_mlrepo.provenance_report import Links

WHEN = datetime(2026, 11, 25, tzinfo=timezone.utc)


def _output(
    kind: str, pins: dict[str, PinnedInput], dag_id: str, run_id: str, task_id: str, output: str | None = None
) -> dict[str, str]:
    return build_provenance(
        output=output,
        output_kind=kind,
        pins=pins,
        model_input="model" if "model" in pins else None,
        model_policy="latest" if "model" in pins else None,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=-1,
        try_number=1,
        run_type="manual",
        logical_date=WHEN,
        data_interval_start=WHEN,
        data_interval_end=WHEN,
        image="iris:0.1",
        command=["python"],
        runner="local",
        hyperparameters={},
        fingerprint_value="fp",
        airflow_url="http://airflow.example/x",
        openlineage_run_id=None,
    )


class History(LakeFSHook):
    """Repositories of commits (one ``main`` branch each, newest first) held in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.__dict__["settings"] = LakeFSConnectionSettings("http://lakefs.example", "k", "s")
        self.commits: dict[tuple[str, str], LakeFSCommit] = {}
        self.branches: dict[str, list[str]] = {}
        self.clock = 1_764_000_000

    def add(self, repository: str, commit_id: str, message: str, metadata: dict[str, str] | None = None) -> str:
        line = self.branches.setdefault(repository, [])
        self.clock += 60
        parents = (line[0],) if line else ()
        self.commits[(repository, commit_id)] = LakeFSCommit(
            id=commit_id,
            parents=parents,
            committer="admin",
            message=message,
            creation_date=self.clock,
            metadata=metadata or {},
        )
        line.insert(0, commit_id)
        return commit_id

    def list_branches(self, repository: str, prefix: str = "") -> list[str]:
        return ["main"]

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        if ref == "main":
            ref = self.branches[repository][0]
        try:
            return self.commits[(repository, ref)]
        except KeyError:
            raise LakeFSNotFoundError("no such commit", repository=repository, ref=ref, status=404) from None

    def log_commits(self, repository: str, ref: str, **kwargs: Any) -> Iterator[LakeFSCommit]:
        commit: LakeFSCommit | None = self.get_commit(repository, ref)
        count = 0
        while commit is not None and count < (kwargs.get("amount") or 10**6):
            yield commit
            count += 1
            commit = self.commits[(repository, commit.parents[0])] if commit.parents else None


def _pin(name: str, repository: str, path: str, commit: str, rule: str) -> PinnedInput:
    return PinnedInput(name, LakeFSLocation(repository, "main", path), commit, rule)


@pytest.fixture
def lakefs() -> History:
    """Good data, bad data B, more data on top of B, then a revert of B; models and predictions of each."""
    h = History()
    h.add("train", "t0", "Repository created")
    h.add("train", "good", "training data part 1")
    h.add("train", "bad", "training data part 2 (bad)")
    h.add("train", "ontop", "training data part 3")
    h.add("train", "revert", "Revert bad")
    h.add("input", "batch", "inference batch")

    def model(commit: str, data: str, run: str) -> str:
        pins = {"training_data": _pin("training_data", "train", "data/", data, "as_of")}
        return h.add("models", commit, "model", _output("model", pins, "iris_training", run, "train"))

    def predict(commit: str, model_commit: str, run: str) -> str:
        pins = {
            "input_data": _pin("input_data", "input", "batches/", "batch", "as_of"),
            "model": _pin("model", "models", "model/", model_commit, "latest"),
        }
        metadata = _output("predictions", pins, "iris_inference", run, "predict")
        return h.add("predictions", commit, "predictions", metadata)

    h.add("models", "m0", "Repository created")
    h.add("predictions", "p0", "Repository created")
    model("m-good", "good", "train-1")
    model("m-bad", "bad", "train-2")
    predict("p-day1", "m-bad", "day-1")
    predict("p-day2", "m-bad", "day-2")
    model("m-ontop", "ontop", "train-3")
    model("m-fixed", "revert", "train-4")
    predict("p-day1-again", "m-fixed", "day-1")  # day-1 recomputed (its run cleared) with the fixed model
    return h


REPOS = ["train", "input", "models", "predictions"]
LINKS = Links(lakefs_ui="http://lakefs.example", airflow_ui="http://airflow.example")


def test_everything_derived_from_a_bad_data_commit_transitively(lakefs: History) -> None:
    report = downstream(lakefs, "lakefs://train/bad", REPOS, links=LINKS)
    found = {node.output.commit_id: node for node in report.all()}
    # the model trained on it and the one trained on data on top of it; the predictions of the first
    assert set(found) == {"m-bad", "m-ontop", "p-day1", "p-day2"}
    assert [child.output.commit_id for child in found["m-bad"].derived] == ["p-day1", "p-day2"]
    assert found["m-bad"].via == "training_data"
    assert found["p-day1"].via == "model"
    # the revert and the model retrained on it are not derived; day 1 was recomputed since
    assert found["p-day1"].superseded_by == "p-day1-again"
    assert found["p-day2"].current
    assert found["p-day2"].commit_url == "http://lakefs.example/repositories/predictions/commits/p-day2"
    assert found["p-day2"].run_url == "http://airflow.example/dags/iris_inference/runs/day-2"


def test_a_later_run_that_wrote_the_same_output_location_replaces_an_output() -> None:
    """Outputs that record where they were written: a newer commit of any run at the same location
    replaces the older one (the pipeline recomputed it); other locations stay current."""
    h = History()
    h.add("train", "t0", "Repository created")
    h.add("train", "bad", "bad data")
    h.add("input", "batch", "inference batch")
    h.add("models", "m0", "Repository created")
    h.add("predictions", "p0", "Repository created")
    h.add(
        "models",
        "m-bad",
        "model",
        _output(
            "model",
            {"training_data": _pin("training_data", "train", "data/", "bad", "asset_event")},
            "iris_training",
            "train-1",
            "train",
            output="lakefs://models/main/model/",
        ),
    )

    def predict(commit: str, model_commit: str, run: str, output: str) -> None:
        pins = {
            "input_data": _pin("input_data", "input", "batches/", "batch", "asset_event"),
            "model": _pin("model", "models", "model/", model_commit, "latest"),
        }
        h.add(
            "predictions", commit, "predictions", _output("predictions", pins, "iris_inference", run, "predict", output)
        )

    predict("p-bad", "m-bad", "run-1", "lakefs://predictions/main/predictions/")
    predict("p-daily", "m-bad", "run-2", "lakefs://predictions/main/daily/2026-11-25/")
    h.add(
        "models",
        "m-fixed",
        "model",
        _output("model", {}, "iris_training", "train-2", "train", "lakefs://models/main/model/"),
    )
    predict("p-fixed", "m-fixed", "run-3", "lakefs://predictions/main/predictions/")

    found = {n.output.commit_id: n for n in downstream(h, "lakefs://train/bad", REPOS, links=LINKS).all()}
    assert found["m-bad"].superseded_by == "m-fixed"
    assert found["p-bad"].superseded_by == "p-fixed"  # another run, the same location
    assert found["p-daily"].current  # its own location: nothing replaced it
    plan = recompute_plan(downstream(h, "lakefs://train/bad", REPOS, links=LINKS))
    assert [(item.output.commit_id, item.clearable) for item in plan] == [("p-daily", True)]


def test_downstream_of_a_model_commit_is_its_predictions_only(lakefs: History) -> None:
    report = downstream(lakefs, "lakefs://models/m-bad", REPOS, links=LINKS)
    assert report.is_output
    assert [n.output.commit_id for n in report.all()] == ["p-day1", "p-day2"]


def test_a_good_commit_before_the_bad_one_derives_everything_trained_on_its_descendants(lakefs: History) -> None:
    # "good" is in the history of bad and ontop too (never reverted): all their models derive from it
    report = downstream(lakefs, "lakefs://train/good", REPOS, links=LINKS)
    models = {n.output.commit_id for n in report.all() if n.output.output_kind == "model"}
    assert models == {"m-good", "m-bad", "m-ontop", "m-fixed"}


def test_recompute_clears_only_runs_a_clear_fixes(lakefs: History) -> None:
    report = downstream(lakefs, "lakefs://train/bad", REPOS, links=LINKS)
    plan = {item.output.commit_id: item for item in recompute_plan(report)}
    assert set(plan) == {"m-bad", "m-ontop", "p-day2"}  # p-day1 is superseded already
    assert plan["p-day2"].clearable
    assert not plan["m-bad"].clearable
    assert "pinned to bad" in plan["m-bad"].reason
    assert runs_to_clear(plan.values()) == [("iris_inference", "day-2")]


def test_json_and_tree_forms(lakefs: History) -> None:
    report = downstream(lakefs, "lakefs://train/bad", REPOS, links=LINKS)
    data = json.loads(render_json(report))
    assert data["kind"] == "data"
    assert data["counts"] == {"models": 2, "predictions": 2, "current": 3}
    assert data["derived"][0]["derived"][0]["superseded_by"] == "p-day1-again"
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        console.print(render_tree(report))
    text = captured.get()
    assert "downstream of lakefs://train/bad" in text
    assert "superseded by p-day1-again" in text


def test_an_unknown_commit_is_a_clear_error(lakefs: History) -> None:
    with pytest.raises(LakeFSNotFoundError):
        downstream(lakefs, "lakefs://train/nope", REPOS, links=LINKS)


def test_the_cli_knows_provenance_downstream_and_recompute() -> None:
    from airflow_mlrepo import cli

    parser = cli.build_parser()
    args = parser.parse_args(["provenance", "--downstream", "lakefs://train/bad", "--json", "--repository", "models"])
    assert (args.downstream, args.json, args.repository) == (True, True, ["models"])
    args = parser.parse_args(["recompute", "--downstream", "lakefs://train/bad", "--dry-run", "--wait"])
    assert args.handler is cli._recompute
    assert (args.downstream, args.dry_run, args.wait, args.airflow_api) == ("lakefs://train/bad", True, True, None)
