"""The commit triggers against the real lakeFS: their ``run()`` driven by asyncio, as the triggerer does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mlrepo_devstack import stack

from airflow_mlrepo.hooks.lakefs import LakeFSAsyncHook, LakeFSHook
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger, LakeFSCommitTrigger
from tests.integration.commits import commit_file

POLL = 0.3


async def _next_event(events: AsyncIterator[Any], timeout: float) -> dict[str, Any]:
    event = await asyncio.wait_for(events.__anext__(), timeout)
    assert isinstance(event.payload, dict)
    return event.payload


def _later(delay: float, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in a thread after ``delay`` seconds (commits made while the trigger waits)."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _run(trigger: LakeFSCommitTrigger, timeout: float = 30.0) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        return await _next_event(trigger.run(), timeout)

    return asyncio.run(first())


def test_fires_once_with_every_commit_made_while_waiting(hook: LakeFSHook, repo: str) -> None:
    baseline = hook.get_branch_head(repo, "main")
    hook.create_branch(repo, "feature", "main")
    first = commit_file(hook, repo, "feature", "data/a.csv", "1\n")
    second = commit_file(hook, repo, "feature", "data/b.csv", "2\n")
    merged: list[str] = []
    # One head move on main brings three commits: the two feature commits and the merge commit.
    worker = _later(1.0, lambda: merged.append(hook.merge(repo, "feature", "main", message="merge feature")))
    trigger = LakeFSCommitTrigger(repository=repo, branch="main", baseline_commit=baseline, poll_interval=POLL)

    payload = _run(trigger)
    worker.join()

    assert payload["status"] == "success"
    assert (payload["repository"], payload["branch"], payload["baseline"]) == (repo, "main", baseline)
    assert payload["head"] == merged[0]
    assert [c["id"] for c in payload["commits"]] == [first.id, second.id, merged[0]]
    assert payload["commits"][0]["message"] == "write data/a.csv"
    assert isinstance(payload["commits"][0]["creation_date"], int)


def test_prefix_and_metadata_filters(hook: LakeFSHook, repo: str) -> None:
    baseline = hook.get_branch_head(repo, "main")
    trigger = LakeFSCommitTrigger(
        repository=repo,
        branch="main",
        baseline_commit=baseline,
        prefixes=["train/"],
        metadata={"stage": "train"},
        poll_interval=POLL,
    )

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        events = trigger.run()
        waiting = asyncio.ensure_future(_next_event(events, 60))
        made: list[str] = []
        # Commits the trigger must not fire on: wrong path, then right path without the metadata.
        made.append((await asyncio.to_thread(commit_file, hook, repo, "main", "other/x.csv", "x")).id)
        made.append(
            (await asyncio.to_thread(commit_file, hook, repo, "main", "train/x.csv", "x", metadata={"stage": "dev"})).id
        )
        await asyncio.sleep(POLL * 5)
        assert not waiting.done(), "fired on a commit outside the filters"
        made.append(
            (
                await asyncio.to_thread(
                    commit_file, hook, repo, "main", "train/y.csv", "y", metadata={"stage": "train"}
                )
            ).id
        )
        return await waiting, made

    payload, made = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [c["id"] for c in payload["commits"]] == [made[2]]
    assert payload["commits"][0]["metadata"] == {"stage": "train"}
    assert payload["head"] == made[2]


def test_reset_branch_is_an_error_event(hook: LakeFSHook, repo: str) -> None:
    start = hook.get_branch_head(repo, "main")
    baseline = commit_file(hook, repo, "main", "a.txt", "a").id

    def reset_and_commit() -> None:
        hook.client.experimental_api.hard_reset_branch(repo, "main", start)
        commit_file(hook, repo, "main", "b.txt", "b")

    worker = _later(1.0, reset_and_commit)
    trigger = LakeFSCommitTrigger(repository=repo, branch="main", baseline_commit=baseline, poll_interval=POLL)
    payload = _run(trigger)
    worker.join()
    assert payload["status"] == "error"
    assert payload["error_type"] == "CommitNotAncestorError"
    assert baseline in payload["message"]
    assert f"'{repo}'" in payload["message"]
    assert "'main'" in payload["message"]


def test_missing_repository_and_branch_are_error_events(hook: LakeFSHook, repo: str) -> None:
    baseline = hook.get_branch_head(repo, "main")
    missing_repo = _run(
        LakeFSCommitTrigger(repository="no-such-repo-here", branch="main", baseline_commit=baseline, poll_interval=POLL)
    )
    assert missing_repo["status"] == "error"
    assert missing_repo["error_type"] == "LakeFSNotFoundError"
    assert "no-such-repo-here" in missing_repo["message"]
    missing_branch = _run(
        LakeFSCommitTrigger(repository=repo, branch="no-such-branch", baseline_commit=baseline, poll_interval=POLL)
    )
    assert missing_branch["error_type"] == "LakeFSNotFoundError"
    assert "no-such-branch" in missing_branch["message"]


def test_one_lakefs_request_per_poll_and_branch_while_nothing_changes(hook: LakeFSHook, repo: str) -> None:
    hook.create_branch(repo, "dev", "main")
    baseline = hook.get_branch_head(repo, "main")
    interval = 0.5
    # Twenty sensors' triggers on main (different filters) and one on dev, in one event loop.
    triggers = [
        LakeFSCommitTrigger(
            repository=repo, branch="main", baseline_commit=baseline, prefixes=[f"p{i}/"], poll_interval=interval
        )
        for i in range(20)
    ] + [LakeFSCommitTrigger(repository=repo, branch="dev", baseline_commit=baseline, poll_interval=interval)]

    async def idle() -> tuple[int, float]:
        tasks = [asyncio.ensure_future(_next_event(t.run(), 60)) for t in triggers]
        await asyncio.sleep(1.2)  # connections read, first polls done
        before = LakeFSAsyncHook.requests_sent
        started = time.monotonic()
        await asyncio.sleep(5.0)
        intervals = (time.monotonic() - started) / interval
        sent = LakeFSAsyncHook.requests_sent - before
        for task in tasks:
            task.cancel()
        assert not any(task.done() and not task.cancelled() for task in tasks)
        return sent, intervals

    sent, intervals = asyncio.run(idle())
    per_branch_and_interval = sent / 2 / intervals
    assert 0.5 <= per_branch_and_interval <= 1.1, (sent, intervals)


@pytest.mark.lakefs_outage
def test_waits_through_a_lakefs_outage_without_firing(hook: LakeFSHook, repo: str) -> None:
    baseline = hook.get_branch_head(repo, "main")
    trigger = LakeFSCommitTrigger(repository=repo, branch="main", baseline_commit=baseline, poll_interval=0.5)

    async def scenario() -> tuple[dict[str, Any], str]:
        waiting = asyncio.ensure_future(_next_event(trigger.run(), 120))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stack.down, ["lakefs"])
        try:
            await asyncio.sleep(3.0)  # several failed polls, with backoff
            assert not waiting.done(), f"fired or failed while lakeFS was down: {waiting.result()}"
        finally:
            await asyncio.to_thread(stack.up, ["lakefs"])
        await asyncio.sleep(1.0)
        assert not waiting.done(), "fired after lakeFS came back although nothing was committed"
        made = await asyncio.to_thread(commit_file, hook, repo, "main", "after-outage.csv", "1")
        return await waiting, made.id

    payload, made = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [c["id"] for c in payload["commits"]] == [made]


def test_watcher_fires_once_per_batch_and_never_again_for_old_commits(hook: LakeFSHook, repo: str) -> None:
    trigger = LakeFSCommitEventTrigger(repository=repo, branch="main", prefixes=["data/"], poll_interval=POLL)

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        events = trigger.run()
        received: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in events:
                received.append(event.payload)

        collector = asyncio.ensure_future(collect())
        await asyncio.sleep(1.0)  # the watcher takes the current head as its starting point
        made = [(await asyncio.to_thread(commit_file, hook, repo, "main", "data/1.csv", "1")).id]
        await asyncio.sleep(POLL * 6)
        await asyncio.to_thread(commit_file, hook, repo, "main", "docs/readme.md", "not data")
        await asyncio.sleep(POLL * 6)
        made.append((await asyncio.to_thread(commit_file, hook, repo, "main", "data/2.csv", "2")).id)
        await asyncio.sleep(POLL * 6)
        collector.cancel()
        return received, made

    received, made = asyncio.run(scenario())
    facts = [payload["lakefs"] for payload in received]
    assert [f["commits"] for f in facts] == [[made[0]], [made[1]]]
    assert [f["commit_id"] for f in facts] == made
    assert all(f["source"] == "watcher" and f["repository"] == repo and f["branch"] == "main" for f in facts)
    assert facts[1]["previous_commit_id"] != made[0]  # the docs commit moved the watermark without firing


def test_watcher_fires_on_a_branch_reset_and_the_event_says_so(hook: LakeFSHook, repo: str) -> None:
    before = commit_file(hook, repo, "main", "data/1.csv", "1").id
    trigger = LakeFSCommitEventTrigger(repository=repo, branch="main", prefixes=["data/"], poll_interval=POLL)

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        received: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in trigger.run():
                received.append(event.payload)

        collector = asyncio.ensure_future(collect())
        await asyncio.sleep(1.0)  # the watcher takes the current head as its starting point
        bad = (await asyncio.to_thread(commit_file, hook, repo, "main", "data/2.csv", "bad data")).id
        await asyncio.sleep(POLL * 6)
        # The bad commit is taken back by a reset: no new commit, but the data changed.
        await asyncio.to_thread(hook.client.experimental_api.hard_reset_branch, repo, "main", before)
        await asyncio.sleep(POLL * 6)
        # A reset that leaves data/ as it is fires nothing.
        await asyncio.to_thread(commit_file, hook, repo, "main", "docs/x.md", "docs")
        await asyncio.sleep(POLL * 6)
        await asyncio.to_thread(hook.client.experimental_api.hard_reset_branch, repo, "main", before)
        await asyncio.sleep(POLL * 6)
        collector.cancel()
        return received, bad

    received, bad = asyncio.run(scenario())
    facts = [payload["lakefs"] for payload in received]
    assert [f["commits"] for f in facts[:2]] == [[bad], []]
    assert facts[1]["reset"] is True
    assert (facts[1]["previous_commit_id"], facts[1]["commit_id"]) == (bad, before)
    assert "reset" not in facts[0]
    assert len(facts) == 2, facts
