"""Detection windows (docs/concepts/detection-windows.md) against the real lakeFS.

The sensor is given the context Airflow gives a scheduled run (run type, data interval, the previous
successful run's interval end); lakeFS is real, with commits dated where the windows need them.
The trigger is driven by asyncio as the triggerer drives it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue

from airflow_mlrepo import changes
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor
from airflow_mlrepo.triggers.lakefs import LakeFSCommitTrigger
from tests.integration.commits import commit_file

HOUR = 3600


def _scheduled(start: datetime, end: datetime, prev_end_success: datetime | None) -> dict[str, Any]:
    return {
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_data_interval_end_success": prev_end_success,
        "dag_run": SimpleNamespace(run_type="scheduled", run_after=end),
        "task_state_store": None,
    }


def _seen(hook: LakeFSHook, repo: str, context: dict[str, Any]) -> list[str]:
    sensor = LakeFSCommitSensor(task_id="wait", repository=repo, branch="main", prefixes=["data/"])
    sensor._hook = lambda: hook  # type: ignore[method-assign]
    result = sensor.poke(context)  # type: ignore[arg-type]
    assert isinstance(result, PokeReturnValue), "the window held no commit"
    return [commit["id"] for commit in result.xcom_value]


def test_consecutive_scheduled_runs_never_see_the_same_commit_and_a_failed_runs_commits_come_again(
    hook: LakeFSHook, repo: str
) -> None:
    t0 = int(time.time()) - 10 * HOUR
    t1, t2, t3 = t0 + 3 * HOUR, t0 + 6 * HOUR, t0 + 9 * HOUR
    at = lambda ts: datetime.fromtimestamp(ts, tz=timezone.utc)  # noqa: E731
    commit_file(hook, repo, "main", "data/0.csv", "0", date=t0 - HOUR)
    in_first = commit_file(hook, repo, "main", "data/1.csv", "1", date=t0 + HOUR)
    # Committed after the first run's interval end, while (in today's Airflow) it could still be waiting.
    in_second = commit_file(hook, repo, "main", "data/2.csv", "2", date=t1 + HOUR)
    in_third = commit_file(hook, repo, "main", "data/3.csv", "3", date=t2 + HOUR)

    first = _seen(hook, repo, _scheduled(at(t0), at(t1), prev_end_success=at(t0)))
    second = _seen(hook, repo, _scheduled(at(t1), at(t2), prev_end_success=at(t1)))
    assert first == [in_first.id]
    assert second == [in_second.id]
    # The second run failed (say, training crashed): the next window starts at the last success's end.
    third = _seen(hook, repo, _scheduled(at(t2), at(t3), prev_end_success=at(t1)))
    assert third == [in_second.id, in_third.id]


def test_a_long_wait_moves_its_start_forward_and_never_hits_the_walk_limit(
    hook: LakeFSHook, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three bursts of non-matching commits, each under the walk limit, together well over it."""
    monkeypatch.setattr(changes, "MAX_WALK_COMMITS", 12)
    baseline = hook.get_branch_head(repo, "main")
    trigger = LakeFSCommitTrigger(
        repository=repo, branch="main", baseline_commit=baseline, prefixes=["data/"], poll_interval=0.3
    )
    progress: list[int] = []

    def bursts() -> None:
        for burst in range(3):
            for n in range(10):
                hook.commit(repo, "main", f"burst {burst} commit {n}", allow_empty=True)
            progress.append(burst)
            time.sleep(1.5)  # the trigger polls (and moves its start) between bursts
        progress.append(-1)

    async def scenario() -> tuple[dict[str, Any], str]:
        events = trigger.run()
        waiting = asyncio.ensure_future(events.__anext__())
        worker = threading.Thread(target=bursts, daemon=True)
        worker.start()
        while -1 not in progress:
            await asyncio.sleep(0.2)
            assert not waiting.done(), waiting.result().payload
        wanted = await asyncio.to_thread(commit_file, hook, repo, "main", "data/new.csv", "new")
        event = await asyncio.wait_for(waiting, 30)
        return event.payload, wanted.id

    payload, wanted = asyncio.run(scenario())
    assert payload["status"] == "success", payload
    assert [c["id"] for c in payload["commits"]] == [wanted]
    assert payload["baseline"] == baseline


def _next_second() -> float:
    """Sleep into the next wall-clock second and return it (lakeFS dates commits in whole seconds)."""
    time.sleep(1.02 - (time.time() % 1))
    return float(int(time.time()))


def test_the_backtest_window_sees_a_side_branch_merged_inside_it_however_old_its_commits(
    hook: LakeFSHook, repo: str
) -> None:
    commit_file(hook, repo, "main", "batches/0.csv", "0")
    hook.create_branch(repo, "late", "main")
    old = commit_file(hook, repo, "late", "batches/late.csv", "late")  # made before the window...
    before = commit_file(hook, repo, "main", "batches/1.csv", "1")
    start = datetime.fromtimestamp(_next_second(), tz=timezone.utc)
    merge_id = hook.merge(repo, "late", "main", message="merge late")  # ...merged inside it
    inside = commit_file(hook, repo, "main", "other/2.csv", "2")
    end = datetime.fromtimestamp(_next_second(), tz=timezone.utc)
    commit_file(hook, repo, "main", "batches/3.csv", "3")  # after the window

    found = changes.commits_in_period(hook, repo, "main", start, end, changes.PathFilter.build(["batches/"]), limit=100)

    # the side branch's commit and the merge that brought it; not `before`, not the commit after `end`,
    # and not `inside`, which changed no batch
    assert [c.id for c in found] == [old.id, merge_id]
    assert inside.id not in [c.id for c in found]
    assert before.id not in [c.id for c in found]
