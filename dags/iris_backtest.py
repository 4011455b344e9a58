"""Iris backtest: how would a model have done on the input data of a past date range?

Params: ``model_version`` (the model to test: ``latest``, ``as_of`` or a commit id or tag of the models
repository) and the range ``start``/``end`` (default: the run's data interval, so a backfill over
past days backtests each day in its own run; a daily run at midnight backtests the day before).

For every input commit of the range (commits under ``batches/`` on the input branch, oldest first) the
inference container runs again, on its own branch ``backtest-<run>`` of the predictions repository,
never on ``main``: one mapped ``predict`` task per input commit, each pinned to that commit. Then the
``report`` task compares, per input commit, the backtested model's predictions with every prediction
``iris_inference`` committed on ``main`` for the same input commit, and commits
``backtest/report.json`` (metrics per model version, with the input, model and prediction commits
involved) to the backtest branch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task

from airflow_mlrepo.changes import PathFilter, commits_in_period
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator

REPO_PREFIX = os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")
BRANCH = os.environ.get("MLREPO_IRIS_BRANCH", "main")
INPUT_REPO = f"{REPO_PREFIX}-input"
MODELS_REPO = f"{REPO_PREFIX}-models"
PREDICTIONS_REPO = f"{REPO_PREFIX}-predictions"
IMAGE = "ghcr.io/airflow-mlrepo/iris:0.1.0"
#: How many input commits, newest first, the search for the range looks at.
INPUT_LOG_LIMIT = 1000
#: How many prediction commits on the predictions branch the search for earlier predictions looks at.
PREDICTIONS_LOG_LIMIT = 2000


def backtest_branch(run_id: str) -> str:
    """The branch of the predictions repository that holds one backtest run's outputs."""
    return "backtest-" + re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:200]


def backtest_range(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """``[start, end)`` from the params, else the run's data interval."""
    params = context["params"]
    start = params.get("start") or context.get("data_interval_start")
    end = params.get("end") or context.get("data_interval_end")
    if not start or not end:
        raise ValueError("iris_backtest needs a range: set the params start and end (ISO 8601), or backfill it")
    bounds = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in (start, end)]
    bounds = [b if b.tzinfo else b.replace(tzinfo=timezone.utc) for b in bounds]
    return bounds[0], bounds[1]


def input_commits(hook: LakeFSHook, start: datetime, end: datetime) -> list[str]:
    """Commits that reached the input branch in ``[start, end)`` and changed ``batches/``, parents first.

    See docs/concepts/detection-windows.md: commits merged into the branch in the range count, however
    old; the repository's first commit (no parent, no data) does not.
    """
    found = commits_in_period(
        hook, INPUT_REPO, BRANCH, start, end, PathFilter.build(["batches/"]), limit=INPUT_LOG_LIMIT
    )
    return [commit.id for commit in found]


def read_predictions(hook: LakeFSHook, ref: str, path: str) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(hook.read_object_bytes(PREDICTIONS_REPO, ref, path).decode()))
    return {row["id"]: row["species"] for row in rows}


def input_commit_of(metadata: dict[str, str]) -> str | None:
    """The input commit a prediction commit read (from its provenance), if it is one of ours."""
    if metadata.get("mlrepo.output_kind") != "predictions" or "mlrepo.input.input_data" not in metadata:
        return None
    return LakeFSLocation.parse(metadata["mlrepo.input.input_data"]).ref


with DAG(
    dag_id="iris_backtest",
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=2,
    params={
        "model_version": Param("latest", type="string", description="latest, as_of, or a commit id or tag"),
        "start": Param(None, type=["null", "string"], format="date-time", description="default: interval start"),
        "end": Param(None, type=["null", "string"], format="date-time", description="default: interval end"),
    },
    tags=["mlrepo", "iris"],
) as dag:

    @task
    def plan() -> list[dict[str, Any]]:
        """Find the range's input commits and open the backtest branch; one predict task per commit."""
        context = get_current_context()
        start, end = backtest_range(dict(context))
        hook = LakeFSHook()
        commits = input_commits(hook, start, end)
        branch = backtest_branch(context["run_id"])
        if not hook.branch_exists(PREDICTIONS_REPO, branch):
            hook.create_branch(PREDICTIONS_REPO, branch, BRANCH)
        print(f"{len(commits)} input commit(s) in [{start.isoformat()}, {end.isoformat()}); outputs on {branch}")
        return [
            {
                "inputs": {"input_data": f"lakefs://{INPUT_REPO}/{commit_id}/batches/"},
                "output_location": f"lakefs://{PREDICTIONS_REPO}/{branch}/backtest/{commit_id}/",
            }
            for commit_id in commits
        ]

    predict = LakeFSInferenceOperator.partial(
        task_id="predict",
        model=f"lakefs://{MODELS_REPO}/{BRANCH}/model/",
        model_version="{{ params.model_version }}",
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.predict"],
        namespace="ml",
        # The output location already is this run's own backtest branch: publish there, backfill or not.
        publish_to="target",
    ).expand_kwargs(plan())

    @task(trigger_rule="none_failed")
    def report() -> dict[str, Any]:
        """Compare the backtest with what ran on the predictions branch; commit backtest/report.json."""
        context = get_current_context()
        run_id, start, end = context["run_id"], *backtest_range(dict(context))
        hook, branch = LakeFSHook(), backtest_branch(context["run_id"])
        tested: dict[str, Any] = {}  # input commit -> this run's backtest prediction commit
        for commit in hook.log_commits(PREDICTIONS_REPO, branch, amount=PREDICTIONS_LOG_LIMIT, first_parent=True):
            meta = dict(commit.metadata)
            input_commit = input_commit_of(meta)
            if input_commit and (meta.get("mlrepo.dag_id"), meta.get("mlrepo.run_id")) == (dag.dag_id, run_id):
                tested.setdefault(input_commit, commit)
        earlier: dict[str, list[Any]] = {commit_id: [] for commit_id in tested}
        for commit in hook.log_commits(PREDICTIONS_REPO, BRANCH, amount=PREDICTIONS_LOG_LIMIT, first_parent=True):
            input_commit = input_commit_of(dict(commit.metadata))
            if input_commit in earlier:
                earlier[input_commit].append(commit)

        models: dict[str, dict[str, Any]] = {}
        inputs = []
        for input_commit in [c for c in input_commits(hook, start, end) if c in tested]:
            test_commit = tested[input_commit]
            baseline = read_predictions(hook, test_commit.id, f"backtest/{input_commit}/predictions.csv")
            runs = [(test_commit, baseline, "backtested")]
            runs += [
                (c, read_predictions(hook, c.id, "predictions/predictions.csv"), "earlier")
                for c in earlier[input_commit]
            ]
            entry: dict[str, Any] = {"input_commit": input_commit, "predictions": []}
            for commit, predicted, role in runs:
                model_commit = commit.metadata["mlrepo.model.commit_id"]
                agree = sum(predicted.get(key) == species for key, species in baseline.items())
                stats = models.setdefault(
                    model_commit,
                    {"roles": [], "input_commits": [], "prediction_commits": [], "rows": 0, "agreeing_rows": 0},
                )
                stats["roles"] = sorted({*stats["roles"], role})
                stats["input_commits"] = sorted({*stats["input_commits"], input_commit})
                stats["prediction_commits"].append(commit.id)
                stats["rows"] += len(predicted)
                stats["agreeing_rows"] += agree
                entry["predictions"].append(
                    {
                        "role": role,
                        "prediction_commit": commit.id,
                        "model_commit": model_commit,
                        "model_policy": commit.metadata.get("mlrepo.model.policy"),
                        "airflow_run": f"{commit.metadata.get('mlrepo.dag_id')}/{commit.metadata.get('mlrepo.run_id')}",
                        "rows": len(predicted),
                        "agreement_with_backtested_model": agree / len(baseline) if baseline else None,
                    }
                )
            inputs.append(entry)
        for model_commit, stats in models.items():
            stats["agreement_with_backtested_model"] = stats["agreeing_rows"] / stats["rows"] if stats["rows"] else None
            metrics = json.loads(hook.read_object_bytes(MODELS_REPO, model_commit, "model/metrics.json"))
            stats["training_accuracy"] = metrics["accuracy"]
            stats["training_samples"] = metrics["n_samples"]

        document = {
            "dag_id": dag.dag_id,
            "run_id": run_id,
            "model_version": context["params"]["model_version"],
            "range": {"start": start.isoformat(), "end": end.isoformat()},
            "input_repository": f"{INPUT_REPO}/{BRANCH}",
            "inputs": inputs,
            "models": models,
        }
        data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
        hook.upload_object(PREDICTIONS_REPO, branch, "backtest/report.json", data)
        backtested = sorted(m for m, s in models.items() if "backtested" in s["roles"])
        commit = hook.commit(
            PREDICTIONS_REPO,
            branch,
            f"backtest report: {len(inputs)} input commit(s), {len(models)} model version(s)",
            {
                "mlrepo.output_kind": "backtest_report",
                "mlrepo.dag_id": dag.dag_id,
                "mlrepo.run_id": run_id,
                "mlrepo.task_id": "report",
                "mlrepo.backtest.model_version": str(context["params"]["model_version"]),
                "mlrepo.backtest.model_commit_ids": ",".join(backtested),
                "mlrepo.backtest.input_commits": ",".join(e["input_commit"] for e in inputs),
                "mlrepo.backtest.start": start.isoformat(),
                "mlrepo.backtest.end": end.isoformat(),
            },
            allow_empty=True,
        )
        return {"branch": branch, "commit_id": commit.id, "path": "backtest/report.json", "inputs": len(inputs)}

    predict >> report()
