"""Property tests of "what changed" (:mod:`airflow_mlrepo.changes`) on generated commit graphs in the real lakeFS.

Hypothesis builds a history on a branch (commits on and off the watched paths, empty commits, side
branches forked from old or recent points and merged late, with commits dated before the baseline,
force-moves of the branch), then picks a baseline among the heads the branch had and a path filter.
The answer of :func:`changed_commits` must equal a brute-force oracle's: the set difference of the
two full commit logs, each commit diffed in full against its first parent, paths matched here.

Lean for CI: ``MLREPO_CHANGE_EXAMPLES`` graphs (default 24), each in a repository of its own.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_mlrepo.changes import changed_commits
from airflow_mlrepo.exceptions import CommitNotAncestorError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from tests.integration.conftest import LakeFSServer

EXAMPLES = int(os.environ.get("MLREPO_CHANGE_EXAMPLES", "24"))
BRANCH = "feed"
#: What a generated commit writes: under data/, under docs/, the one object data/a.csv, or nothing.
KINDS = ("data", "docs", "object", "empty")
FILTERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "data/": (("data/",), ()),
    "docs/": (("docs/",), ()),
    "data/a.csv": ((), ("data/a.csv",)),
    "data/ or docs/": (("data/", "docs/"), ()),
    "any": ((), ()),
}
DAY = 86_400

operation = st.one_of(
    st.tuples(st.just("commit"), st.sampled_from(KINDS), st.booleans()),  # on the branch; old date?
    st.tuples(st.just("fork"), st.integers(0, 6)),  # side branch from BRANCH~n
    st.tuples(st.just("side"), st.integers(0, 3), st.sampled_from(KINDS)),  # commit on a side branch (old date)
    st.tuples(st.just("merge"), st.integers(0, 3)),  # merge a side branch into BRANCH
    st.tuples(st.just("reset"), st.integers(1, 3)),  # force-move BRANCH back to BRANCH~n
)


@dataclass
class Graph:
    hook: LakeFSHook
    repo: str
    heads: list[str] = field(default_factory=list)  # every head BRANCH had, in order
    sides: list[str] = field(default_factory=list)
    counter: int = 0

    def write(self, branch: str, kind: str, date: int | None) -> None:
        self.counter += 1
        path = {
            "data": f"data/part-{self.counter}.csv",
            "docs": f"docs/page-{self.counter}.md",
            "object": "data/a.csv",
        }.get(kind)
        if path is not None:
            self.hook.upload_object(self.repo, branch, path, f"{kind} {self.counter}".encode())
        self.hook.commit(self.repo, branch, f"{kind} {self.counter}", date=date, allow_empty=path is None)

    def head(self) -> str:
        return self.hook.get_branch_head(self.repo, BRANCH)

    def apply(self, op: tuple[Any, ...], now: int) -> None:
        kind = op[0]
        if kind == "commit":
            self.write(BRANCH, op[1], now - 30 * DAY - self.counter if op[2] else None)
        elif kind == "fork":
            source = self._back(op[1])
            name = f"side-{len(self.sides)}"
            self.hook.create_branch(self.repo, name, source)
            self.sides.append(name)
        elif kind == "side" and self.sides:
            # Side work is dated long ago: older than any baseline picked from BRANCH's heads.
            self.write(self.sides[op[1] % len(self.sides)], op[2], now - 60 * DAY - self.counter)
        elif kind == "merge" and self.sides:
            side = self.sides[op[1] % len(self.sides)]
            self.hook.merge(self.repo, side, BRANCH, message=f"merge {side}", strategy="source-wins", allow_empty=True)
        elif kind == "reset":
            target = self._back(op[1])
            self.hook.delete_branch(self.repo, BRANCH)
            self.hook.create_branch(self.repo, BRANCH, target)
        else:
            return
        head = self.head()
        if not self.heads or self.heads[-1] != head:
            self.heads.append(head)

    def _back(self, steps: int) -> str:
        commit = self.hook.get_commit(self.repo, BRANCH)
        for _ in range(steps):
            if not commit.parents:
                break
            commit = self.hook.get_commit(self.repo, commit.parents[0])
        return commit.id


def oracle_changed_paths(hook: LakeFSHook, repo: str, commit: LakeFSCommit) -> set[str] | None:
    """Every path ``commit`` changed against its first parent (None: no parent, i.e. everything)."""
    if not commit.parents:
        return None
    paths: set[str] = set()
    after = ""
    while True:
        page = hook.client.refs_api.diff_refs(
            repo, commit.parents[0], commit.id, after=after, amount=1000, type="two_dot"
        )
        paths.update(entry.path for entry in page.results)
        if not page.pagination.has_more:
            return paths
        after = page.pagination.next_offset


def oracle(
    hook: LakeFSHook,
    repo: str,
    baseline: str,
    head: str,
    prefixes: tuple[str, ...],
    objects: tuple[str, ...],
    first_parent: bool,
) -> list[str] | None:
    """Brute force: full logs of both ends, every commit diffed in full. None: baseline not an ancestor."""
    everything = {c.id: c for c in hook.log_commits(repo, head)}
    if baseline not in everything:
        return None
    excluded = {c.id for c in hook.log_commits(repo, baseline)}
    if first_parent:
        chain, commit = [], everything[head]
        while commit.id != baseline:
            chain.append(commit)
            if not commit.parents:
                return None
            commit = everything[commit.parents[0]]
        candidates = chain
    else:
        candidates = [c for c in everything.values() if c.id not in excluded]
    found = []
    for commit in candidates:
        changed = oracle_changed_paths(hook, repo, commit)
        if (
            (not prefixes and not objects)
            or changed is None
            or any(p.startswith(prefix) for p in changed for prefix in prefixes)
            or any(obj in changed for obj in objects)
        ):
            found.append(commit.id)
    return sorted(found)


@pytest.fixture(scope="module")
def graph_hook(lakefs_server: LakeFSServer) -> LakeFSHook:
    return LakeFSHook()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(operation, min_size=3, max_size=14),
    pick=st.integers(0, 1000),
    filter_name=st.sampled_from(sorted(FILTERS)),
    first_parent=st.booleans(),
)
def test_changed_commits_equals_the_brute_force_oracle(
    graph_hook: LakeFSHook, ops: list[tuple[Any, ...]], pick: int, filter_name: str, first_parent: bool
) -> None:
    hook = graph_hook
    repo = f"g-{uuid.uuid4().hex[:12]}"
    hook.create_repository(repo, f"local://{repo}")
    try:
        hook.create_branch(repo, BRANCH, "main")
        graph = Graph(hook, repo, heads=[hook.get_branch_head(repo, BRANCH)])
        now = int(time.time())
        for op in ops:
            graph.apply(op, now)
        baseline = graph.heads[pick % len(graph.heads)]
        head = graph.head()
        prefixes, objects = FILTERS[filter_name]
        expected = oracle(hook, repo, baseline, head, prefixes, objects, first_parent)
        if expected is None:
            with pytest.raises(CommitNotAncestorError):
                changed_commits(
                    hook, repo, baseline, head, prefixes=prefixes, objects=objects, first_parent=first_parent
                )
            return
        answer = changed_commits(
            hook, repo, baseline, head, prefixes=prefixes, objects=objects, first_parent=first_parent
        )
        assert sorted(c.id for c in answer) == expected, (ops, baseline, filter_name, first_parent)
        # parents before children
        position = {c.id: i for i, c in enumerate(answer)}
        for commit in answer:
            assert all(position[p] < position[commit.id] for p in commit.parents if p in position)
    finally:
        hook.delete_repository(repo, missing_ok=True)


def test_a_side_branch_older_than_the_baseline_merged_later_counts(hook: LakeFSHook, repo: str) -> None:
    """The case of issue 17: data on a branch older than the baseline, merged after it, fires (it did not)."""
    now = int(time.time())
    hook.create_branch(repo, "side", "main")
    hook.upload_object(repo, "side", "data/late.csv", b"late")
    side = hook.commit(repo, "side", "old data", date=now - 10 * DAY)
    hook.upload_object(repo, "main", "docs/x.md", b"x")
    baseline = hook.commit(repo, "main", "docs after the fork").id
    merge = hook.merge(repo, "side", "main", message="merge old data")

    found = [c.id for c in changed_commits(hook, repo, baseline, "main", prefixes=["data/"])]
    assert found == [side.id, merge]
    # The branch's own history: the merge brought data/ in, by its diff against the first parent.
    assert [c.id for c in changed_commits(hook, repo, baseline, "main", prefixes=["data/"], first_parent=True)] == [
        merge
    ]
