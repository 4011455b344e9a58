"""What changed: the one answer to "which commits on a branch, after a baseline and up to a bound,
changed these paths?". Every detection path asks it here: the sensor, its trigger, the asset
watcher, the webhook receiver and the backtest.

**Which commits.** The commits reachable from the bound (``head``) and not from the ``baseline``
(git's ``baseline..head``). That includes the commits of a side branch that is merged after the
baseline even when they are *older* than it (lakeFS dates are creation times, and a side branch
can be days old when it is merged), and it includes the merge commit itself. With
``first_parent=True`` only the commits the branch itself pointed at count: the first-parent chain
from ``head`` down to ``baseline``.

**Which of them changed the paths.** A commit changed a path when its diff against its **first
parent** has an entry under one of ``prefixes`` or equal to one of ``objects``. So a merge commit
counts when it brought a change to the path into the branch, and the side-branch commits count by
their own diffs. A commit without parents (a repository's first commit) changed everything. With no
``prefixes`` and no ``objects`` every commit counts. An empty commit changes nothing.

**Cost.** Bounded by the commits found, not by the history: the log of ``head`` down to the
baseline is read in pages of 1,000 commits (one lakeFS call each); a side branch merged late costs
one more page, plus one merge-base call for each of its commits older (by generation) than the
baseline, until the walk meets the baseline's history. Commits whose generation is at least the
baseline's cannot be its ancestors, so a linear history costs no merge-base call at all. The path
check is one ``diff`` call (``amount=1``) per commit and path. A walk that finds more than
``max_commits`` commits stops with :class:`~airflow_mlrepo.exceptions.LakeFSBadInputError`;
pollers move their baseline forward as they go (see ``docs/concepts/detection-windows.md``), so
they never get near it.

A baseline that is not in ``head``'s history (the branch was reset or force-moved) raises
:class:`~airflow_mlrepo.exceptions.CommitNotAncestorError` at once, without walking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import CommitNotAncestorError, LakeFSBadInputError
from airflow_mlrepo.locations import validate_path, validate_ref, validate_repository

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook

#: The most commits one walk may find before it gives up (see the module docstring).
MAX_WALK_COMMITS = 10_000
#: Commits read per log page (lakeFS's maximum).
_PAGE = 1000


def commits_between(
    hook: LakeFSHook,
    repository: str,
    baseline: str,
    head: str,
    *,
    first_parent: bool = False,
    max_commits: int | None = None,
) -> list[LakeFSCommit]:
    """Commits reachable from ``head`` and not from ``baseline``, parents before children.

    ``baseline`` and ``head`` are any refs (commit ids, branches, tags). Ordered by generation,
    then creation date: every commit comes after its parents, and a linear history comes out
    oldest first.
    """
    validate_repository(repository)
    validate_ref(baseline)
    validate_ref(head)
    limit = MAX_WALK_COMMITS if max_commits is None else max_commits
    base = hook.get_commit(repository, baseline)
    tip = hook.get_commit(repository, head)
    if tip.id == base.id:
        return []
    if not hook.is_ancestor(repository, base.id, tip.id):
        raise CommitNotAncestorError(
            f"Commit {base.id} is not in the history of '{head}' ({tip.id}) in repository '{repository}': "
            "the branch was reset or force-moved",
            repository=repository,
            ref=head,
        )
    walk = _Walk(hook, repository, base, limit, where=f"'{head}' of repository '{repository}'")
    return walk.first_parent_chain(tip) if first_parent else walk.reachable(tip)


def commit_changed_paths(
    hook: LakeFSHook,
    repository: str,
    commit: LakeFSCommit,
    prefixes: Sequence[str] = (),
    objects: Sequence[str] = (),
) -> bool:
    """Whether ``commit`` changed something under ``prefixes`` or one of ``objects``, against its first parent."""
    if not prefixes and not objects:
        return True
    if not commit.parents:
        return True
    return hook.commit_touches_paths(repository, commit.id, prefixes, objects, parent=commit.parents[0])


def changed_commits(
    hook: LakeFSHook,
    repository: str,
    baseline: str,
    head: str,
    *,
    prefixes: Sequence[str] | None = None,
    objects: Sequence[str] | None = None,
    first_parent: bool = False,
    max_commits: int | None = None,
) -> list[LakeFSCommit]:
    """The commits of ``baseline..head`` that changed ``prefixes``/``objects``, parents before children.

    The answer every detection path uses; see the module docstring for what counts.
    """
    checked_prefixes = [validate_path(p) for p in prefixes or ()]
    checked_objects = [validate_path(o) for o in objects or ()]
    commits = commits_between(hook, repository, baseline, head, first_parent=first_parent, max_commits=max_commits)
    return [c for c in commits if commit_changed_paths(hook, repository, c, checked_prefixes, checked_objects)]


class _Walk:
    """One ``baseline..head`` walk: a commit cache filled by log pages, and ancestry answers."""

    def __init__(self, hook: LakeFSHook, repository: str, base: LakeFSCommit, limit: int, *, where: str) -> None:
        self.hook = hook
        self.repository = repository
        self.base = base
        self.limit = limit
        self.where = where
        self.cache: dict[str, LakeFSCommit] = {}
        self.ancestry: dict[str, bool] = {base.id: True}

    def commit(self, commit_id: str) -> LakeFSCommit:
        found = self.cache.get(commit_id)
        if found is None:
            # One page of the log from here: the rest of a side branch usually comes with it.
            for commit in self.hook.log_commits(self.repository, commit_id, amount=_PAGE):
                self.cache.setdefault(commit.id, commit)
            found = self.cache.get(commit_id) or self.hook.get_commit(self.repository, commit_id)
            self.cache[commit_id] = found
        return found

    def is_base_ancestor(self, commit: LakeFSCommit) -> bool:
        """Whether ``commit`` is in the baseline's history (the baseline itself included)."""
        known = self.ancestry.get(commit.id)
        if known is not None:
            return known
        base_generation = self.base.generation
        if commit.generation is not None and base_generation is not None and commit.generation >= base_generation:
            answer = False  # an ancestor's generation is always lower than its descendant's
        else:
            answer = self.hook.is_ancestor(self.repository, commit.id, self.base.id)
        self.ancestry[commit.id] = answer
        return answer

    def _count(self, found: int) -> None:
        if found > self.limit:
            raise LakeFSBadInputError(
                f"More than {self.limit} commits on {self.where} since {self.base.id}; move the baseline forward "
                "(detection windows do so as they go) or raise max_commits",
                repository=self.repository,
            )

    def _preload(self, tip: LakeFSCommit, *, first_parent: bool) -> None:
        self.cache[tip.id] = tip
        for commit in self.hook.log_commits(
            self.repository, tip.id, stop_at=self.base.id, first_parent=first_parent, amount=self.limit + 2
        ):
            self.cache.setdefault(commit.id, commit)
            if commit.id == self.base.id:
                break
            self._count(len(self.cache) - 1)

    def reachable(self, tip: LakeFSCommit) -> list[LakeFSCommit]:
        self._preload(tip, first_parent=False)
        found: dict[str, LakeFSCommit] = {}
        stack = [tip]
        while stack:
            commit = stack.pop()
            if commit.id in found:
                continue
            found[commit.id] = commit
            self._count(len(found))
            for parent_id in commit.parents:
                if parent_id in found or self.ancestry.get(parent_id):
                    continue
                parent = self.commit(parent_id)
                if not self.is_base_ancestor(parent):
                    stack.append(parent)
        return sorted(found.values(), key=_topological_key)

    def first_parent_chain(self, tip: LakeFSCommit) -> list[LakeFSCommit]:
        self._preload(tip, first_parent=True)
        chain: list[LakeFSCommit] = []
        commit = tip
        while commit.id != self.base.id:
            chain.append(commit)
            self._count(len(chain))
            below_base = (
                commit.generation is not None
                and self.base.generation is not None
                and commit.generation <= self.base.generation
            )
            if not commit.parents or below_base:
                raise CommitNotAncestorError(
                    f"Commit {self.base.id} is not on the first-parent history of {self.where}",
                    repository=self.repository,
                )
            commit = self.commit(commit.parents[0])
        chain.reverse()
        return chain


def _topological_key(commit: LakeFSCommit) -> tuple[int, int, str]:
    return (commit.generation or 0, commit.creation_date, commit.id)


__all__ = ["MAX_WALK_COMMITS", "changed_commits", "commit_changed_paths", "commits_between"]
