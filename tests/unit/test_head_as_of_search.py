"""The as-of binary search, with lakeFS faked at the get_commit boundary (unit tier)."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mlrepo.exceptions import LakeFSNotFoundError, NoCommitAsOfError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook


class _ChainHook(LakeFSHook):
    """A hook whose lakeFS is a first-parent chain held in memory: dates[0] is the head."""

    def __init__(self, dates: list[int], extra_generations: int = 0) -> None:
        super().__init__()
        self.dates = dates
        self.extra_generations = extra_generations

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        self.api_calls += 1
        base, _, n = ref.partition("~")
        # refs are "main", "main~N" or "<commit id>~N" (relative to a commit of the chain)
        depth = (int(base[1:]) if base.startswith("c") else 0) + int(n or 0)
        if depth >= len(self.dates):
            raise LakeFSNotFoundError("commit not found", repository=repository, ref=ref, status=404)
        return LakeFSCommit(
            id=f"c{depth}",
            parents=(f"c{depth + 1}",),
            committer="",
            message="",
            creation_date=self.dates[depth],
            metadata={},
            generation=len(self.dates) - depth + self.extra_generations,
        )


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=200),
    st.integers(-3, 600),
    st.integers(0, 300),
)
def test_finds_the_newest_commit_at_or_before_t(gaps: list[int], offset: int, extra: int) -> None:
    oldest_first = []
    t = 1000
    for gap in gaps:
        t += gap
        oldest_first.append(t)
    dates = list(reversed(oldest_first))
    hook = _ChainHook(dates, extra_generations=extra)
    when = 1000 + offset
    expected = next((i for i, d in enumerate(dates) if d <= when), None)
    if expected is None:
        with pytest.raises(NoCommitAsOfError):
            hook.branch_head_as_of("repo", "main", _utc(when))
    else:
        assert hook.branch_head_as_of("repo", "main", _utc(when)).id == f"c{expected}"
    generation = len(dates) + extra
    assert hook.api_calls <= math.ceil(math.log2(generation + 1)) + 1


def test_call_bound_for_ten_thousand_commits() -> None:
    n = 10_000
    dates = [2 * (n - i) for i in range(n)]
    worst = 0
    for when in range(0, 2 * n + 5, 97):
        hook = _ChainHook(dates)
        with contextlib.suppress(NoCommitAsOfError):
            hook.branch_head_as_of("repo", "main", _utc(when))
        worst = max(worst, hook.api_calls)
    assert worst <= math.ceil(math.log2(n)) + 2
