"""commits_since and branch_head_as_of against real lakeFS histories."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime, timezone

import pytest

from airflow_mlrepo.exceptions import CommitNotAncestorError, LakeFSBadInputError, NoCommitAsOfError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from tests.integration.commits import commit_file


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def test_commits_since_returns_new_commits_oldest_first(hook: LakeFSHook, repo: str) -> None:
    base = commit_file(hook, repo, "main", "data/a.csv", "a")
    new = [commit_file(hook, repo, "main", f"data/{i}.csv", str(i), metadata={"n": str(i)}) for i in range(3)]

    got = hook.commits_since(repo, "main", base.id)

    assert [c.id for c in got] == [c.id for c in new]
    assert [c.metadata["n"] for c in got] == ["0", "1", "2"]
    assert hook.commits_since(repo, "main", new[-1].id) == []
    # a ref expression works as the baseline too
    assert [c.id for c in hook.commits_since(repo, "main", "main~1")] == [new[-1].id]


def test_commits_since_filters_by_prefix_and_object(hook: LakeFSHook, repo: str) -> None:
    base = commit_file(hook, repo, "main", "train/old.csv", "old")
    # an older commit that touches the prefix must never be reported as new
    t1 = commit_file(hook, repo, "main", "train/1.csv", "1")
    o1 = commit_file(hook, repo, "main", "other/1.csv", "1")
    t2 = commit_file(hook, repo, "main", "train/2.csv", "2")
    o2 = commit_file(hook, repo, "main", "other/2.csv", "2")

    assert [c.id for c in hook.commits_since(repo, "main", t1.id, prefixes=["train/"])] == [t2.id]
    assert [c.id for c in hook.commits_since(repo, "main", base.id, prefixes=["train/"])] == [t1.id, t2.id]
    assert [c.id for c in hook.commits_since(repo, "main", base.id, prefixes=["other/"])] == [o1.id, o2.id]
    assert [c.id for c in hook.commits_since(repo, "main", base.id, objects=["train/2.csv"])] == [t2.id]
    assert hook.commits_since(repo, "main", o2.id, prefixes=["train/"]) == []
    assert hook.commits_since(repo, "main", base.id, prefixes=["nothing-here/"]) == []


def test_commits_since_sees_commits_brought_in_by_a_merge(hook: LakeFSHook, repo: str) -> None:
    base = commit_file(hook, repo, "main", "a", "a")
    hook.create_branch(repo, "feature", "main")
    f1 = commit_file(hook, repo, "feature", "feature/1", "1")
    m1 = commit_file(hook, repo, "main", "main/1", "1")
    merge_id = hook.merge(repo, "feature", "main", message="merge feature")

    all_new = hook.commits_since(repo, "main", base.id)
    assert {c.id for c in all_new} == {f1.id, m1.id, merge_id}
    assert all_new[-1].id == merge_id
    first_parent = hook.commits_since(repo, "main", base.id, first_parent=True)
    assert [c.id for c in first_parent] == [m1.id, merge_id]
    # the commit a merge brings in changed the path, and so did the merge, against its first parent
    # (docs/concepts/detection-windows.md); the commit made on main itself did not
    assert [c.id for c in hook.commits_since(repo, "main", base.id, prefixes=["feature/"])] == [f1.id, merge_id]
    assert [c.id for c in hook.commits_since(repo, "main", base.id, prefixes=["main/"])] == [m1.id]
    assert [c.id for c in hook.commits_since(repo, "main", base.id, prefixes=["feature/"], first_parent=True)] == [
        merge_id
    ]


def test_reset_branch_is_detected_without_walking_history(hook: LakeFSHook, repo: str) -> None:
    for i in range(5):
        commit_file(hook, repo, "main", f"f{i}", str(i))
    pinned = hook.get_branch_head(repo, "main")
    # force-move the branch to an older commit, as `lakectl branch reset --hard` would
    hook.client.experimental_api.hard_reset_branch(repo, "main", "main~3")
    commit_file(hook, repo, "main", "after-reset", "x")

    before = hook.api_calls
    with pytest.raises(CommitNotAncestorError) as err:
        hook.commits_since(repo, "main", pinned)
    assert hook.api_calls - before <= 2
    assert pinned in str(err.value)
    assert "main" in str(err.value)
    assert repo in str(err.value)


def test_head_as_of_on_linear_history_with_equal_timestamps(hook: LakeFSHook, repo: str) -> None:
    t0 = int(time.time()) + 10
    dates = [t0, t0 + 100, t0 + 100, t0 + 200, t0 + 300]
    commits = [commit_file(hook, repo, "main", "x", str(i), date=d) for i, d in enumerate(dates)]
    created = hook.get_commit(repo, "main~5")

    assert hook.branch_head_as_of(repo, "main", _utc(t0 + 1000)).id == commits[-1].id
    assert hook.branch_head_as_of(repo, "main", _utc(t0 + 300)).id == commits[4].id
    assert hook.branch_head_as_of(repo, "main", _utc(t0 + 299)).id == commits[3].id
    # two commits in the same second: the newer one was the head at that time
    assert hook.branch_head_as_of(repo, "main", _utc(t0 + 150)).id == commits[2].id
    assert hook.branch_head_as_of(repo, "main", _utc(t0 + 100)).id == commits[2].id
    assert hook.branch_head_as_of(repo, "main", _utc(t0)).id == commits[0].id
    assert hook.branch_head_as_of(repo, "main", _utc(created.creation_date)).id == created.id
    with pytest.raises(NoCommitAsOfError, match=repo):
        hook.branch_head_as_of(repo, "main", _utc(created.creation_date - 1))
    with pytest.raises(LakeFSBadInputError, match="timezone"):
        hook.branch_head_as_of(repo, "main", datetime(2030, 1, 1))


def _next_second() -> None:
    """Sleep into the next wall-clock second, so the next commit gets a later creation date."""
    time.sleep(1.02 - (time.time() % 1))


def test_head_as_of_follows_first_parents_through_merges(hook: LakeFSHook, repo: str) -> None:
    # merges cannot be back-dated, so this history is made in real time, one second apart
    m0 = commit_file(hook, repo, "main", "m0", "0")
    hook.create_branch(repo, "feature", "main")
    _next_second()
    feature_commit = commit_file(hook, repo, "feature", "f1", "1")
    _next_second()
    main_commit = commit_file(hook, repo, "main", "m1", "1")
    _next_second()
    merge_id = hook.merge(repo, "feature", "main", message="merge")
    merge = hook.get_commit(repo, merge_id)

    # when the feature commit was made it was not on main: main was still at m0
    assert hook.branch_head_as_of(repo, "main", _utc(feature_commit.creation_date)).id == m0.id
    assert hook.branch_head_as_of(repo, "main", _utc(main_commit.creation_date)).id == main_commit.id
    assert hook.branch_head_as_of(repo, "main", _utc(merge.creation_date)).id == merge_id
    assert merge.parents[0] == main_commit.id


def test_head_as_of_matches_a_linear_scan_on_random_histories(hook: LakeFSHook, repo: str) -> None:
    rng = random.Random(20261125)
    for i in range(40):
        if rng.random() < 0.25:
            _next_second()
        if rng.random() < 0.2:
            hook.create_branch(repo, f"side-{i}", "main")
            commit_file(hook, repo, f"side-{i}", f"side/{i}", str(i))
            hook.merge(repo, f"side-{i}", "main", message=f"merge {i}")
        else:
            commit_file(hook, repo, "main", f"main/{i}", str(i))
    chain: list[LakeFSCommit] = list(hook.log_commits(repo, "main", first_parent=True))
    depth = len(chain)
    instants = sorted({c.creation_date for c in chain})
    probes = instants + [t - 1 for t in instants[1:]] + [instants[-1] + 5]

    for when in probes:
        expected = next(c for c in chain if c.creation_date <= when)
        before = hook.api_calls
        got = hook.branch_head_as_of(repo, "main", _utc(when))
        assert got.id == expected.id, when
        assert hook.api_calls - before <= math.ceil(math.log2(depth)) + 2
