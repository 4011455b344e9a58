"""`mlrepo demo` end to end, twice in a row, against the real lakeFS and a real Airflow (``dag.test()``
in the demo's own SQLite Airflow home, local runner): its outcome is read back from lakeFS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.demo import DAG_IDS
from mlrepo_devstack.stack import airflow_services
from mlrepo_devstack.stack.state import StackSettings

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage.outbox import Outbox
from airflow_mlrepo.provenance_report import trace

MLREPO = str(Path(sys.executable).with_name("mlrepo"))
ROLES = ("train", "input", "models", "predictions")


@pytest.fixture
def stack_airflow_stopped_after() -> Iterator[None]:
    """The demo leaves the stack's Airflow up for its user; the test stops it again if it started it
    (its scheduler and dag-processor would otherwise take CPU from the rest of the tier)."""
    was_running = airflow_services.status(StackSettings.from_environ()).state == "running"
    yield
    if not was_running:
        stack.down([stack.AIRFLOW])


@pytest.fixture
def demo_names(hook: LakeFSHook, stack_airflow_stopped_after: None) -> Iterator[tuple[str, dict[str, str]]]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"iris-{suffix}-{role}" for role in ROLES}
    yield suffix, names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


def _run_demo(suffix: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLREPO, "demo", "--suffix", suffix, "--home", str(home)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _stack_airflow_url() -> str:
    return airflow_services.api_endpoint(StackSettings.from_environ())


def _paused(dag_ids: tuple[str, ...] | list[str]) -> dict[str, bool]:
    with httpx.Client(base_url=_stack_airflow_url(), timeout=10.0) as client:
        return {dag_id: bool(client.get(f"/api/v2/dags/{dag_id}").json()["is_paused"]) for dag_id in dag_ids}


def _set_paused(dag_ids: tuple[str, ...] | list[str], *, paused: bool) -> None:
    with httpx.Client(base_url=_stack_airflow_url(), timeout=10.0) as client:
        for dag_id in dag_ids:
            client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": paused}).raise_for_status()


def _prediction_commits(hook: LakeFSHook, repository: str) -> list:
    return [
        c
        for c in hook.log_commits(repository, "main", first_parent=True)
        if c.metadata.get("mlrepo.output_kind") == "predictions"
    ]


def test_demo_runs_twice_and_its_provenance_matches_lakefs(
    hook: LakeFSHook, demo_names: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    suffix, names = demo_names
    heads: list[str] = []
    for attempt in (1, 2):
        if attempt == 2:
            # A user (or the e2e tier) unpaused the example DAGs in the stack's Airflow, which the first
            # run left up: the demo pauses them again, so its runs do not race their asset-triggered ones.
            _set_paused(DAG_IDS, paused=False)
        result = _run_demo(suffix, tmp_path / "demo")
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "the provenance above matches the lakeFS commits this demo created" in result.stdout
        # Marquez cannot run here: the lineage of every task attempt is kept in the demo's outbox.
        outbox = Outbox(tmp_path / "demo" / "lineage" / "outbox").status()
        assert outbox["pending_events"] >= 10  # START + COMPLETE of 5 task runs at least
        assert f"{outbox['pending_events']} OpenLineage events are kept in the outbox" in result.stdout
        seconds = re.search(r"demo finished in (\d+)s", result.stdout)
        assert seconds is not None
        print(f"demo run {attempt}: {seconds.group(1)} s")

        # Three prediction commits: day 3, today, and the cleared day-3 run again (newest).
        predictions = _prediction_commits(hook, names["predictions"])
        assert len(predictions) == 3
        backtest, today, first = predictions
        assert backtest.metadata["mlrepo.run_id"] == first.metadata["mlrepo.run_id"]  # the same run, again
        assert backtest.metadata["mlrepo.input.input_data"] == first.metadata["mlrepo.input.input_data"]
        assert backtest.metadata["mlrepo.model.commit_id"] != first.metadata["mlrepo.model.commit_id"]
        assert backtest.metadata["mlrepo.model.commit_id"] == today.metadata["mlrepo.model.commit_id"]
        assert backtest.metadata["mlrepo.model.policy"] == "latest"

        # The closing provenance is the lakeFS truth: newest model, newest training data, pinned input.
        node = trace(hook, f"lakefs://{names['predictions']}/main/predictions/predictions.csv")
        model, training, input_data = (node.find(r) for r in ("model", "training_data", "input_data"))
        assert node.commit_id == backtest.id == hook.get_branch_head(names["predictions"], "main")
        assert model is not None
        assert model.commit_id == hook.get_branch_head(names["models"], "main")
        assert training is not None
        assert training.commit_id == hook.get_branch_head(names["train"], "main")
        assert hook.get_commit(names["train"], training.commit_id).message == "iris training data, part 3 of 3"
        assert input_data is not None
        assert input_data.commit_id == first.metadata["mlrepo.input.input_data"].split("/")[3]
        assert input_data.commit_id != hook.get_branch_head(names["input"], "main")  # the old input, not today's
        for commit_id in (node.commit_id, model.commit_id, training.commit_id):
            assert commit_id[:12] in result.stdout
        heads.append(node.commit_id)
        assert _paused(DAG_IDS) == dict.fromkeys(DAG_IDS, True)
        if attempt == 2:
            assert f"paused again: {', '.join(DAG_IDS)}" in result.stdout
    # the second run recreated the repositories: new commits, same shape
    assert heads[0] != heads[1]
