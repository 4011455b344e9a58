"""The as-of search when data was committed with past dates into a new repository: the root commit
("Repository created", no parents) is newer than the data but counts as the oldest (lakeFS faked at
the get_commit boundary)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_mlrepo.exceptions import LakeFSNotFoundError, NoCommitAsOfError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook

CREATED = 10_000  # the repository was created "now"; the data below is dated in the past


class _BackdatedRepository(LakeFSHook):
    """main: data commits dated ``dates`` (newest first) on top of a root commit dated CREATED."""

    def __init__(self, dates: list[int]) -> None:
        super().__init__()
        self.chain = [*dates, CREATED]

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        base, _, n = ref.partition("~")
        depth = (int(base[1:]) if base.startswith("c") else 0) + int(n or 0)
        if depth >= len(self.chain):
            raise LakeFSNotFoundError("commit not found", repository=repository, ref=ref, status=404)
        is_root = depth == len(self.chain) - 1
        return LakeFSCommit(
            id=f"c{depth}",
            parents=() if is_root else (f"c{depth + 1}",),
            committer="",
            message="",
            creation_date=self.chain[depth],
            metadata={},
            generation=len(self.chain) - depth,
        )


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_backdated_data_is_found_whatever_the_history_length(count: int) -> None:
    dates = [1000 - 100 * i for i in range(count)]  # newest first, all before CREATED
    for depth, date in enumerate(dates):
        hook = _BackdatedRepository(dates)
        assert hook.branch_head_as_of("repo", "main", _utc(date + 50)).id == f"c{depth}"


def test_before_the_first_data_commit_there_is_no_commit_as_of() -> None:
    hook = _BackdatedRepository([1000, 900])
    with pytest.raises(NoCommitAsOfError):
        hook.branch_head_as_of("repo", "main", _utc(850))


def test_the_root_itself_is_found_when_it_is_not_newer() -> None:
    hook = _BackdatedRepository([])
    assert hook.branch_head_as_of("repo", "main", _utc(CREATED)).id == "c0"
    with pytest.raises(NoCommitAsOfError):
        hook.branch_head_as_of("repo", "main", _utc(CREATED - 1))
