"""What changed on lakeFS: the one place that answers which commits changed which paths.

Two questions, asked by every detection path (the commit sensor, its trigger, the asset watcher,
the webhook receiver and the backtest DAG):

* **Which commits** on a branch, after a baseline commit and up to a head, changed paths P?
  :func:`commits_after` (paths only) and :func:`matching_commits` (paths, first-parent and commit
  metadata: a :class:`CommitFilter`). :func:`commits_in_period` is the same question with the
  baseline and the bound found by time (the branch heads as of the window's start and end).
* **Did paths P change** in a commit, compared with its parent (or any other commit)?
  :func:`commit_changed`, and :func:`changed_locations` for the paths of several asset locations.

Paths are a :class:`PathFilter`: prefixes and exact object paths. An empty filter means any path.

Every function takes the synchronous :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook` first and
uses only its public reads (:class:`HistoryReader`: ``resolve_commit_id``, ``get_commit``,
``is_ancestor``, ``log_commits``, ``diff_refs``), so a different algorithm can replace the bodies
here without touching a caller.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from airflow_mlrepo.exceptions import CommitNotAncestorError, LakeFSBadInputError
from airflow_mlrepo.hooks.lakefs.refs import DEFAULT_MAX_COMMITS, LakeFSCommit, LakeFSDiffEntry
from airflow_mlrepo.locations import is_commit_id, validate_path, validate_ref, validate_repository

if TYPE_CHECKING:
    from datetime import datetime


class HistoryReader(Protocol):
    """The reads of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook` this module uses (and only those)."""

    def resolve_commit_id(self, repository: str, ref: str) -> str: ...

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit: ...

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool: ...

    def log_commits(
        self,
        repository: str,
        ref: str,
        *,
        amount: int | None = None,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        first_parent: bool = False,
        since: datetime | None = None,
        stop_at: str | None = None,
    ) -> Iterator[LakeFSCommit]: ...

    def diff_refs(
        self, repository: str, left_ref: str, right_ref: str, *, prefix: str = "", limit: int | None = None
    ) -> Iterator[LakeFSDiffEntry]: ...


#: ``(repository, commit_id, location path) -> changed?``: see :func:`location_changed`.
LocationCheck = Callable[[str, str, str], bool]


@dataclass(frozen=True)
class PathFilter:
    """Which paths count: anything under one of ``prefixes``, or exactly one of ``objects``.

    Both empty (the default) means any path.
    """

    prefixes: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()

    @classmethod
    def build(cls, prefixes: Iterable[str] | None = None, objects: Iterable[str] | None = None) -> PathFilter:
        """Validate the paths (``LakeFSBadInputError`` / ``InvalidLakeFSLocationError``)."""
        if isinstance(prefixes, str) or isinstance(objects, str):
            raise LakeFSBadInputError("prefixes and objects are lists of paths, not a single string")
        return cls(tuple(validate_path(p) for p in prefixes or ()), tuple(validate_path(o) for o in objects or ()))

    @classmethod
    def location(cls, path: str) -> PathFilter:
        """The paths of an asset location: the object ``path`` or anything under ``path/``.

        The empty path (a whole ref) is any path.
        """
        return cls.build([f"{path}/"], [path]) if path else cls()

    @property
    def any_path(self) -> bool:
        return not self.prefixes and not self.objects


ANY_PATH = PathFilter()


@dataclass(frozen=True)
class CommitFilter:
    """Which new commits count: path prefixes / objects touched, and commit metadata values.

    Empty ``prefixes`` and ``objects`` mean any path. ``metadata`` keys must be present on the
    commit with exactly these string values. ``first_parent`` follows only first parents at merge
    commits (the commits the branch itself pointed at).
    """

    prefixes: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    first_parent: bool = False

    @classmethod
    def build(
        cls,
        prefixes: Iterable[str] | None = None,
        objects: Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        first_parent: bool = False,
    ) -> CommitFilter:
        """Validate the parts (raising :class:`LakeFSBadInputError` / ``InvalidLakeFSLocationError``)."""
        paths = PathFilter.build(prefixes, objects)
        checked_metadata: dict[str, str] = {}
        for key, value in (metadata or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise LakeFSBadInputError(
                    f"Commit metadata filter {key!r}: {value!r} must map strings to strings "
                    "(lakeFS metadata values are strings)"
                )
            checked_metadata[key] = value
        return cls(paths.prefixes, paths.objects, checked_metadata, bool(first_parent))

    @property
    def paths(self) -> PathFilter:
        return PathFilter(self.prefixes, self.objects)

    def matches_metadata(self, commit: LakeFSCommit) -> bool:
        return all(commit.metadata.get(key) == value for key, value in self.metadata.items())

    @property
    def digest(self) -> str:
        """A short stable fingerprint, used to tell watermarks and sensor records apart."""
        raw = json.dumps(
            [list(self.prefixes), list(self.objects), sorted(self.metadata.items()), self.first_parent],
            separators=(",", ":"),
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def commits_after(
    hook: HistoryReader,
    repository: str,
    head: str,
    baseline: str,
    paths: PathFilter = ANY_PATH,
    *,
    first_parent: bool = False,
    max_commits: int | None = None,
) -> list[LakeFSCommit]:
    """The commits of ``baseline..head`` that changed ``paths``, parents before children (oldest first).

    ``head`` is a branch name or a commit id (walking from a commit id just read bounds the
    answer: commits made meanwhile are left out). ``baseline`` is any ref; it is not included.
    What counts is :func:`changed_commits`' rule (see ``docs/concepts/detection-windows.md``):
    commits reachable from ``head`` and not from ``baseline`` (a side branch merged late counts,
    however old its commits), each judged by its diff against its first parent (a merge counts
    when it brought a change to ``paths``). Raises :class:`CommitNotAncestorError` at once when
    ``baseline`` is no longer an ancestor of ``head`` (a reset or force-moved branch), and
    :class:`LakeFSBadInputError` beyond ``max_commits`` new commits.
    """
    return changed_commits(
        hook,
        repository,
        baseline,
        head,
        prefixes=paths.prefixes,
        objects=paths.objects,
        first_parent=first_parent,
        max_commits=max_commits,
    )


def matching_commits(
    hook: HistoryReader,
    repository: str,
    head: str,
    baseline: str,
    commit_filter: CommitFilter,
    *,
    max_commits: int | None = None,
) -> list[LakeFSCommit]:
    """:func:`commits_after` with a whole :class:`CommitFilter`: paths, first parent and metadata."""
    commits = commits_after(
        hook,
        repository,
        head,
        baseline,
        commit_filter.paths,
        first_parent=commit_filter.first_parent,
        max_commits=max_commits,
    )
    return [commit for commit in commits if commit_filter.matches_metadata(commit)]


def commit_changed(
    hook: HistoryReader,
    repository: str,
    commit_id: str,
    paths: PathFilter = ANY_PATH,
    *,
    parent: str | None = None,
) -> bool:
    """Whether ``commit_id`` changed an object under one of the prefixes or one of the objects.

    Compared with ``parent``, by default the commit's first parent, so a merge commit counts as
    touching a path when it brought changes to it into the branch. A commit without parents
    (the repository's first commit) touches everything, and so does any commit when ``paths`` is
    empty. At most one small ``diff`` request per prefix and object.
    """
    validate_repository(repository)
    validate_ref(commit_id)
    if paths.any_path:
        return True
    if parent is None:
        commit = hook.get_commit(repository, commit_id)
        if not commit.parents:
            return True
        parent = commit.parents[0]
    checks = [(prefix, False) for prefix in paths.prefixes] + [(obj, True) for obj in paths.objects]
    for path, exact in checks:
        first = next(hook.diff_refs(repository, parent, commit_id, prefix=path, limit=1), None)
        # Diff entries come in path order: an object sorts before every longer path it prefixes.
        if first is not None and (not exact or first.path == path):
            return True
    return False


def location_changed(hook: HistoryReader, repository: str, commit_id: str, path: str) -> bool:
    """Whether ``commit_id`` changed the asset location ``path`` (:meth:`PathFilter.location`)."""
    return commit_changed(hook, repository, commit_id, PathFilter.location(path))


def changed_locations(
    repository: str, commit_id: str, paths: Iterable[str], check: Callable[[], LocationCheck]
) -> set[str]:
    """Which of the asset location ``paths`` ``commit_id`` changed; the empty path always counts.

    ``check`` makes the per-path check (by default :func:`location_changed` on a hook); it is
    only made, and asked once per distinct path, when there is a non-empty path.
    """
    distinct = set(paths)
    named = sorted(path for path in distinct if path)
    changed: set[str] = {path for path in distinct if not path}
    if named:
        checker = check()
        changed.update(path for path in named if checker(repository, commit_id, path))
    return changed


def commits_in_period(
    hook: HistoryReader,
    repository: str,
    branch: str,
    start: datetime,
    end: datetime,
    paths: PathFilter = ANY_PATH,
    *,
    limit: int,
) -> list[LakeFSCommit]:
    """The commits that reached ``branch`` in ``[start, end)`` and changed ``paths``, parents first.

    The same question as :func:`commits_after`, with the baseline and the bound found by time: the
    branch head as of just before ``start`` and as of just before ``end`` (the first-parent commit
    the branch pointed at then; lakeFS keeps whole seconds). So a side branch merged inside the window
    brings its commits however old they are, and a merge counts by its diff against its first
    parent. Looks at the newest ``limit`` first-parent commits to find the two heads: a window older
    than those starts at the oldest one looked at. The repository's first commit (no parent, no
    data) never counts.
    """
    # The last whole second before each bound (lakeFS creation dates are whole seconds).
    before_start, before_end = math.ceil(start.timestamp()) - 1, math.ceil(end.timestamp()) - 1
    horizon: LakeFSCommit | None = None
    baseline: str | None = None
    oldest: LakeFSCommit | None = None
    for commit in hook.log_commits(repository, branch, amount=limit, first_parent=True):
        oldest = commit
        if horizon is None and _made_by(commit, before_end):
            horizon = commit
        if horizon is not None and _made_by(commit, before_start):
            baseline = commit.id
            break
    if horizon is None or not horizon.parents:
        return []
    if baseline is None:
        assert oldest is not None
        if not oldest.parents:
            return []
        baseline = oldest.parents[0]
    return commits_after(hook, repository, horizon.id, baseline, paths, max_commits=MAX_WALK_COMMITS)


def _made_by(commit: LakeFSCommit, cutoff: int) -> bool:
    """Whether ``commit`` was made by ``cutoff``; the repository's first commit is older than everything
    (data may be committed with past dates into a new repository)."""
    return not commit.parents or commit.creation_date <= cutoff


#: The most commits one walk may find before it gives up (see the module docstring).
MAX_WALK_COMMITS = DEFAULT_MAX_COMMITS
#: Commits read per log page (lakeFS's maximum).
_PAGE = 1000


def commits_between(
    hook: HistoryReader,
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
    tip = hook.get_commit(repository, head)
    # A full commit id needs no lookup before the ancestry check: a reset branch costs two calls.
    base_id = baseline if is_commit_id(baseline) else hook.resolve_commit_id(repository, baseline)
    if tip.id == base_id:
        return []
    if not hook.is_ancestor(repository, base_id, tip.id):
        raise CommitNotAncestorError(
            f"Commit {base_id} is not in the history of '{head}' ({tip.id}) in repository '{repository}': "
            "the branch was reset or force-moved",
            repository=repository,
            ref=head,
        )
    base = hook.get_commit(repository, base_id)
    walk = _Walk(hook, repository, base, limit, where=f"'{head}' of repository '{repository}'")
    return walk.first_parent_chain(tip) if first_parent else walk.reachable(tip)


def commit_changed_paths(
    hook: HistoryReader,
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
    return commit_changed(
        hook, repository, commit.id, PathFilter(tuple(prefixes), tuple(objects)), parent=commit.parents[0]
    )


def changed_commits(
    hook: HistoryReader,
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

    def __init__(self, hook: HistoryReader, repository: str, base: LakeFSCommit, limit: int, *, where: str) -> None:
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


__all__ = [
    "ANY_PATH",
    "MAX_WALK_COMMITS",
    "CommitFilter",
    "HistoryReader",
    "LocationCheck",
    "PathFilter",
    "changed_commits",
    "changed_locations",
    "commit_changed",
    "commit_changed_paths",
    "commits_after",
    "commits_between",
    "commits_in_period",
    "location_changed",
    "matching_commits",
]


#: Diff entry types (``LakeFSDiffEntry.type``).
ADDED = "added"
REMOVED = "removed"


def changed_paths(
    hook: HistoryReader, repository: str, left: str, right: str, prefix: str = ""
) -> Iterator[LakeFSDiffEntry]:
    """Every object under ``prefix`` that differs from ``left`` to ``right``, in path order (datum pipelines).

    A two-dot diff of the two commits' trees, paged: the cost is one request per 1,000 changed paths,
    it follows the change, not the size of the tree. ``left == right`` costs nothing.
    """
    if left == right:
        return
    for entry in hook.diff_refs(repository, left, right, prefix=prefix):
        if entry.path_type == "object":
            yield entry
