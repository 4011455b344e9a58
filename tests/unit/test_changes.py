"""airflow_mlrepo.changes on a fake history: the API every detection path calls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_mlrepo import changes
from airflow_mlrepo.changes import CommitFilter, PathFilter
from airflow_mlrepo.exceptions import CommitNotAncestorError, InvalidLakeFSLocationError, LakeFSBadInputError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSDiffEntry

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _id(n: int) -> str:
    return f"{n:064x}"


class LinearHistory:
    """Commit n changes the paths in ``changed[n]``; commit 0 is the repository's first commit."""

    def __init__(self, changed: list[list[str]], metadata: list[dict[str, str]] | None = None) -> None:
        self.changed = changed
        self.commits = [
            LakeFSCommit(
                id=_id(n),
                parents=(_id(n - 1),) if n else (),
                committer="me",
                message=f"commit {n}",
                creation_date=int((T0 + timedelta(hours=n)).timestamp()),
                metadata=(metadata or [{}] * len(changed))[n],
            )
            for n in range(len(changed))
        ]
        self.diffs: list[tuple[str, str, str]] = []

    def _index(self, ref: str) -> int:
        return len(self.commits) - 1 if ref == "main" else [c.id for c in self.commits].index(ref)

    def resolve_commit_id(self, repository: str, ref: str) -> str:
        return self.commits[self._index(ref)].id

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        return self.commits[self._index(ref)]

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool:
        return self._index(commit_id) <= self._index(branch)

    def log_commits(self, repository: str, ref: str, **kwargs: Any) -> Iterator[LakeFSCommit]:
        prefixes, objects, amount = kwargs.get("prefixes"), kwargs.get("objects"), kwargs.get("amount")
        found = 0
        for commit in reversed(self.commits[: self._index(ref) + 1]):
            if prefixes or objects:
                paths = self.changed[self._index(commit.id)]
                if not any(p.startswith(tuple(prefixes or ())) or p in (objects or ()) for p in paths):
                    continue
            yield commit
            found += 1
            if amount is not None and found >= amount:
                return

    def diff_refs(
        self, repository: str, left_ref: str, right_ref: str, *, prefix: str = "", limit: int | None = None
    ) -> Iterator[LakeFSDiffEntry]:
        self.diffs.append((left_ref, right_ref, prefix))
        lo, hi = self._index(left_ref), self._index(right_ref)
        paths = sorted({p for n in range(lo + 1, hi + 1) for p in self.changed[n] if p.startswith(prefix)})
        for path in paths[:limit]:
            yield LakeFSDiffEntry(path=path, type="added")


HISTORY = [[], ["train/1.csv"], ["eval/1.csv"], ["train/2.csv"], ["train"]]


def test_path_filter_validates_and_names_asset_locations() -> None:
    assert PathFilter.build().any_path
    assert PathFilter.location("") == PathFilter()
    assert PathFilter.location("data") == PathFilter(("data/",), ("data",))
    with pytest.raises(LakeFSBadInputError, match="not a single string"):
        PathFilter.build("train/")
    with pytest.raises(InvalidLakeFSLocationError):
        PathFilter.build(["/abs"])


def test_commits_after_is_oldest_first_and_filters_paths() -> None:
    history = LinearHistory(HISTORY)
    all_new = changes.commits_after(history, "repo", "main", _id(1))
    assert [c.id for c in all_new] == [_id(2), _id(3), _id(4)]
    train = changes.commits_after(history, "repo", "main", _id(0), PathFilter.build(["train/"]))
    assert [c.id for c in train] == [_id(1), _id(3)]
    assert changes.commits_after(history, "repo", _id(2), _id(2)) == []


def test_commits_after_refuses_a_baseline_outside_the_history_and_too_many_commits() -> None:
    history = LinearHistory(HISTORY)
    with pytest.raises(CommitNotAncestorError, match="reset or force-moved"):
        changes.commits_after(history, "repo", _id(1), _id(3))
    with pytest.raises(LakeFSBadInputError, match="More than 2 commits"):
        changes.commits_after(history, "repo", "main", _id(0), max_commits=2)


def test_matching_commits_applies_the_metadata_filter() -> None:
    metadata = [{}, {"stage": "a"}, {"stage": "b"}, {"stage": "a"}, {}]
    history = LinearHistory(HISTORY, metadata)
    got = changes.matching_commits(history, "repo", "main", _id(0), CommitFilter.build(metadata={"stage": "a"}))
    assert [c.id for c in got] == [_id(1), _id(3)]


def test_commit_changed_diffs_against_the_first_parent() -> None:
    history = LinearHistory(HISTORY)
    assert changes.commit_changed(history, "repo", _id(3), PathFilter.build(["train/"]))
    assert history.diffs == [(_id(2), _id(3), "train/")]
    assert not changes.commit_changed(history, "repo", _id(2), PathFilter.build(["train/"]))
    # exact objects: 'train' (commit 4) is an object; 'train/2.csv' is not the object 'train'
    assert changes.commit_changed(history, "repo", _id(4), PathFilter.build(objects=["train"]))
    assert not changes.commit_changed(history, "repo", _id(3), PathFilter.build(objects=["train"]))
    # the first commit and an empty filter touch everything, without a diff
    history.diffs.clear()
    assert changes.commit_changed(history, "repo", _id(0), PathFilter.build(["train/"]))
    assert changes.commit_changed(history, "repo", _id(2))
    assert history.diffs == []


def test_changed_locations_asks_once_per_distinct_path_and_only_when_needed() -> None:
    asked: list[str] = []

    def check() -> changes.LocationCheck:
        def changed(repository: str, commit_id: str, path: str) -> bool:
            asked.append(path)
            return path == "train"

        return changed

    assert changes.changed_locations("repo", _id(1), ["", "train", "eval", "train"], check) == {"", "train"}
    assert asked == ["eval", "train"]
    asked.clear()
    assert changes.changed_locations("repo", _id(1), [""], lambda: pytest.fail("no check needed")) == {""}


def test_commits_in_period_keeps_the_window_and_skips_the_first_commit() -> None:
    history = LinearHistory(HISTORY)
    start, end = T0, T0 + timedelta(hours=4)
    got = changes.commits_in_period(history, "repo", "main", start, end, PathFilter.build(["train/"]), limit=100)
    assert [c.id for c in got] == [_id(1), _id(3)]
    # only the newest `limit` commits are looked at: commit 4 (at `end`, outside) and commit 3
    assert [c.id for c in changes.commits_in_period(history, "repo", "main", start, end, limit=2)] == [_id(3)]
