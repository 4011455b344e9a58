"""What changed on lakeFS: the one place that answers which commits changed which paths.

Two questions, asked by every detection path (the commit sensor, its trigger, the asset watcher,
the webhook receiver and the backtest DAG):

* **Which commits** on a branch, after a baseline commit and up to a head, changed paths P?
  :func:`commits_after` (paths only) and :func:`matching_commits` (paths, first-parent and commit
  metadata: a :class:`CommitFilter`). :func:`commits_in_period` is the same question bounded by
  creation time instead of commits.
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from airflow_mlrepo.exceptions import CommitNotAncestorError, LakeFSBadInputError
from airflow_mlrepo.hooks.lakefs.refs import DEFAULT_MAX_COMMITS, LakeFSCommit, LakeFSDiffEntry
from airflow_mlrepo.locations import validate_branch, validate_path, validate_ref, validate_repository


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
    max_commits: int = DEFAULT_MAX_COMMITS,
) -> list[LakeFSCommit]:
    """Commits after ``baseline`` up to and including ``head``, **oldest first**, that changed ``paths``.

    ``head`` is a branch name or a commit id (walking from a commit id just read bounds the
    answer: commits made meanwhile are left out). ``baseline`` is any ref; it is not included.
    With path filters only commits that touch them are returned (merge commits are never path
    matches; the commits they bring in are). Raises :class:`CommitNotAncestorError` at once,
    without walking the history, when ``baseline`` is no longer an ancestor of ``head`` (a reset
    or force-moved branch), and :class:`LakeFSBadInputError` beyond ``max_commits`` new commits.
    """
    validate_repository(repository)
    validate_branch(head)
    baseline_id = hook.resolve_commit_id(repository, baseline)
    if not hook.is_ancestor(repository, baseline_id, head):
        raise CommitNotAncestorError(
            f"Commit {baseline_id} is no longer in the history of branch '{head}' of repository "
            f"'{repository}': the branch was reset or force-moved",
            repository=repository,
            ref=head,
        )
    new: list[LakeFSCommit] = []
    for commit in hook.log_commits(repository, head, stop_at=baseline_id, first_parent=first_parent):
        if commit.id == baseline_id:
            break
        new.append(commit)
        if len(new) > max_commits:
            raise LakeFSBadInputError(
                f"More than {max_commits} commits on branch '{head}' of repository '{repository}' "
                f"since {baseline_id}; raise max_commits or move the baseline forward",
                repository=repository,
                ref=head,
            )
    else:
        if first_parent and new:
            raise CommitNotAncestorError(
                f"Commit {baseline_id} is not on the first-parent history of branch '{head}' of "
                f"repository '{repository}'",
                repository=repository,
                ref=head,
            )
    if new and not paths.any_path:
        # lakeFS's path-filtered log does not stop at stop_at unless that commit itself
        # matches; bound the walk by time instead and keep only the commits found above.
        new_ids = {c.id for c in new}
        oldest = min(c.creation_date for c in new)
        matching = {
            c.id
            for c in hook.log_commits(
                repository,
                head,
                prefixes=paths.prefixes or None,
                objects=paths.objects or None,
                first_parent=first_parent,
                since=datetime.fromtimestamp(oldest, tz=timezone.utc),
            )
            if c.id in new_ids
        }
        new = [c for c in new if c.id in matching]
    new.reverse()
    return new


def matching_commits(
    hook: HistoryReader,
    repository: str,
    head: str,
    baseline: str,
    commit_filter: CommitFilter,
    *,
    max_commits: int = DEFAULT_MAX_COMMITS,
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
    """First-parent commits of ``branch`` created in ``[start, end)`` that changed ``paths``, oldest first.

    Looks at the newest ``limit`` first-parent commits. The repository's first commit (no parent,
    no data) does not count.
    """
    commits = hook.log_commits(repository, branch, amount=limit, first_parent=True)
    found = [
        c
        for c in commits
        if c.parents and start <= c.created_at < end and commit_changed(hook, repository, c.id, paths)
    ]
    return found[::-1]


__all__ = [
    "ANY_PATH",
    "CommitFilter",
    "HistoryReader",
    "LocationCheck",
    "PathFilter",
    "changed_locations",
    "commit_changed",
    "commits_after",
    "commits_in_period",
    "location_changed",
    "matching_commits",
]
