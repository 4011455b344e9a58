"""Refs and history of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook`.

Commits, the log, ancestry, the head as of a time, diffs, branches, commit, merge, revert and tags.
Which commits changed which paths is answered by :mod:`airflow_mlrepo.changes`; the hook's
``commits_since`` and ``commit_touches_paths`` delegate there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lakefs_sdk.models.branch_creation import BranchCreation
from lakefs_sdk.models.commit_creation import CommitCreation
from lakefs_sdk.models.merge import Merge
from lakefs_sdk.models.revert_creation import RevertCreation
from lakefs_sdk.models.tag_creation import TagCreation

from airflow_mlrepo.exceptions import (
    LakeFSBadInputError,
    LakeFSConflictError,
    LakeFSError,
    LakeFSNotFoundError,
    NoCommitAsOfError,
)
from airflow_mlrepo.hooks.lakefs.base import LakeFSHookBase
from airflow_mlrepo.locations import (
    validate_branch,
    validate_path,
    validate_ref,
    validate_repository,
    validate_tag,
)

MERGE_STRATEGIES = ("dest-wins", "source-wins")
#: Most new commits :meth:`LakeFSRefsMixin.commits_since` walks before it gives up.
DEFAULT_MAX_COMMITS = 10_000


@dataclass(frozen=True)
class LakeFSCommit:
    """A lakeFS commit, as plain data that serializes to JSON (XCom, trigger events)."""

    id: str
    parents: tuple[str, ...]
    committer: str
    message: str
    creation_date: int
    metadata: Mapping[str, str]
    generation: int | None = None

    @property
    def created_at(self) -> datetime:
        """Creation time as an aware UTC datetime (lakeFS keeps whole seconds)."""
        return datetime.fromtimestamp(self.creation_date, tz=timezone.utc)

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @classmethod
    def from_sdk(cls, commit: Any) -> LakeFSCommit:
        return cls(
            id=commit.id,
            parents=tuple(commit.parents or ()),
            committer=commit.committer or "",
            message=commit.message or "",
            creation_date=int(commit.creation_date),
            metadata=dict(commit.metadata or {}),
            generation=getattr(commit, "generation", None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": list(self.parents),
            "committer": self.committer,
            "message": self.message,
            "creation_date": self.creation_date,
            "metadata": dict(self.metadata),
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LakeFSCommit:
        return cls(
            id=data["id"],
            parents=tuple(data.get("parents") or ()),
            committer=data.get("committer", ""),
            message=data.get("message", ""),
            creation_date=int(data["creation_date"]),
            metadata=dict(data.get("metadata") or {}),
            generation=data.get("generation"),
        )


@dataclass(frozen=True)
class LakeFSDiffEntry:
    """One change of a diff: ``type`` is ``added``, ``removed``, ``changed`` or ``conflict``."""

    path: str
    type: str
    path_type: str = "object"


def validate_commit_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Check commit metadata before it reaches lakeFS: string keys and string values only.

    lakeFS stores metadata as ``map<string,string>``; anything else would be coerced
    unpredictably or rejected server-side after part of the work was done.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise LakeFSBadInputError(
            f"Commit metadata must be a mapping of strings to strings, got {type(metadata).__name__}"
        )
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip() or key != key.strip():
            raise LakeFSBadInputError(
                f"Invalid commit metadata key {key!r}: keys are non-empty strings without "
                "leading or trailing whitespace"
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise LakeFSBadInputError(f"Invalid commit metadata key {key!r}: control characters")
        if not isinstance(value, str):
            raise LakeFSBadInputError(
                f"Invalid commit metadata value for key {key!r}: lakeFS metadata values are strings, "
                f"got {type(value).__name__} {value!r}; convert it explicitly (e.g. json.dumps)"
            )
        if "\x00" in value:
            raise LakeFSBadInputError(f"Invalid commit metadata value for key {key!r}: contains NUL")
        checked[key] = value
    return checked


class LakeFSRefsMixin(LakeFSHookBase):
    """Refs, history, branches, merge, revert and tags of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook`."""

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        """The commit any ref or ref expression (``main``, ``main~3``, tag, commit prefix) points at."""
        validate_repository(repository)
        validate_ref(ref)
        commit = self._call(
            "resolve ref",
            self.client.commits_api.get_commit,
            repository,
            ref,
            repository=repository,
            ref=ref,
        )
        return LakeFSCommit.from_sdk(commit)

    def resolve_commit_id(self, repository: str, ref: str) -> str:
        """Resolve any ref or ref expression to a full, immutable commit id."""
        return self.get_commit(repository, ref).id

    def get_branch_head(self, repository: str, branch: str) -> str:
        """The commit id a branch points at (its committed head)."""
        validate_repository(repository)
        validate_branch(branch)
        ref = self._call(
            "read branch",
            self.client.branches_api.get_branch,
            repository,
            branch,
            repository=repository,
            ref=branch,
        )
        return str(ref.commit_id)

    def branch_exists(self, repository: str, branch: str) -> bool:
        try:
            self.get_branch_head(repository, branch)
        except LakeFSNotFoundError as exc:
            if exc.names_missing_repository:
                raise
            return False
        return True

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool:
        """Whether ``commit_id`` (full id or unique prefix) is in the history of ``branch``.

        One lakeFS call: the merge base of the commit and the branch is the commit itself exactly
        when it is an ancestor of (or equal to) the branch head.
        """
        validate_repository(repository)
        validate_ref(commit_id)
        validate_branch(branch)
        result = self._call(
            "find the merge base",
            self.client.refs_api.find_merge_base,
            repository,
            commit_id,
            branch,
            repository=repository,
            ref=branch,
        )
        return bool(result.base_commit_id and str(result.base_commit_id).startswith(commit_id))

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
    ) -> Iterator[LakeFSCommit]:
        """Commits reachable from ``ref``, newest first, paging through lakeFS's log.

        ``amount`` bounds how many are yielded in total (``None``: all).
        """
        validate_repository(repository)
        validate_ref(ref)
        for commit in self._paged(
            "log commits",
            self.client.refs_api.log_commits,
            repository,
            ref,
            limit=amount,
            prefixes=list(prefixes) if prefixes else None,
            objects=list(objects) if objects else None,
            first_parent=first_parent or None,
            since=since.astimezone(timezone.utc) if since else None,
            stop_at=stop_at,
            repository=repository,
            ref=ref,
        ):
            yield LakeFSCommit.from_sdk(commit)

    def commits_since(
        self,
        repository: str,
        branch: str,
        since_commit: str,
        *,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        first_parent: bool = False,
        max_commits: int = DEFAULT_MAX_COMMITS,
    ) -> list[LakeFSCommit]:
        """Commits on ``branch`` (or up to any ref) newer than ``since_commit``, **oldest first**.

        Delegates to :func:`airflow_mlrepo.changes.commits_after`, the one place that answers
        which commits changed which paths; see there.
        """
        from airflow_mlrepo.changes import PathFilter, commits_after

        return commits_after(
            self,
            repository,
            branch,
            since_commit,
            PathFilter.build(prefixes, objects),
            first_parent=first_parent,
            max_commits=max_commits,
        )

    def branch_head_as_of(self, repository: str, branch: str, when: datetime) -> LakeFSCommit:
        """The commit that was the head of ``branch`` at time ``when``.

        Walks the branch's first-parent history (the commits the branch itself pointed at) by
        binary search over ``<commit>~N`` ref expressions, using the head commit's
        ``generation`` as an upper bound of the history depth: ``ceil(log2(generation + 1)) + 1``
        lakeFS calls. Assumes creation dates do not increase going back along the first-parent
        chain (true unless commits were created with explicit past dates), except that the
        repository's root commit (no parents) is taken as the oldest, so data committed with past
        dates into a new repository is found; lakeFS keeps whole seconds, so a commit made during
        the second of ``when`` counts as before it.
        Raises :class:`NoCommitAsOfError` if the branch has no commit at or before ``when``.
        """
        if when.tzinfo is None:
            raise LakeFSBadInputError(
                f"branch_head_as_of needs a timezone-aware time, got naive {when.isoformat()}",
                repository=repository,
                ref=branch,
            )
        cutoff = int(when.timestamp())
        validate_repository(repository)
        validate_branch(branch)
        head = self.get_commit(repository, branch)
        if head.creation_date <= cutoff:
            return head
        if head.generation is None:
            raise LakeFSError(
                "lakeFS did not report commit generations; it is too old for as-of lookups",
                repository=repository,
                ref=branch,
            )
        # Invariant: branch~lo is newer than the cutoff; branch~hi is at/before it or beyond the
        # root (generation >= first-parent depth + 1, so branch~(generation+1) never exists).
        # Probes are relative to the commit at lo (``<id>~k``): lakeFS resolves ``~k`` by walking
        # k parents, so the server walks at most the history depth in total, not depth * log.
        lo, hi = 0, head.generation + 1
        at_lo, at_hi = head, None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            candidate = self._commit_or_none(repository, f"{at_lo.id}~{mid - lo}")
            # The repository's root commit ("Repository created") counts as older than everything:
            # data committed with explicit past dates after creation is then still found.
            if candidate is None or candidate.creation_date <= cutoff or not candidate.parents:
                hi, at_hi = mid, candidate
            else:
                lo, at_lo = mid, candidate
        if at_hi is None or at_hi.creation_date > cutoff:
            raise NoCommitAsOfError(
                f"Branch '{branch}' of repository '{repository}' has no commit at or before {when.isoformat()}",
                repository=repository,
                ref=branch,
            )
        return at_hi

    def commit_touches_paths(
        self,
        repository: str,
        commit_id: str,
        prefixes: Sequence[str] = (),
        objects: Sequence[str] = (),
        *,
        parent: str | None = None,
    ) -> bool:
        """Whether ``commit_id`` changed an object under one of ``prefixes`` or one of ``objects``.

        Delegates to :func:`airflow_mlrepo.changes.commit_changed`, the one place that answers
        which commits changed which paths; see there.
        """
        from airflow_mlrepo.changes import PathFilter, commit_changed

        return commit_changed(self, repository, commit_id, PathFilter.build(prefixes, objects), parent=parent)

    def diff_refs(
        self, repository: str, left_ref: str, right_ref: str, *, prefix: str = "", limit: int | None = None
    ) -> Iterator[LakeFSDiffEntry]:
        """The changes from ``left_ref`` to ``right_ref`` (a two-dot diff), in path order.

        ``prefix`` limits it to paths that start with it; ``limit`` bounds how many entries are
        yielded (and so the page size: ``limit=1`` is one small request).
        """
        validate_repository(repository)
        validate_ref(left_ref)
        validate_ref(right_ref)
        validate_path(prefix)
        for entry in self._paged(
            "diff commit against its parent",
            self.client.refs_api.diff_refs,
            repository,
            left_ref,
            right_ref,
            limit=limit,
            prefix=prefix or None,
            type="two_dot",
            repository=repository,
            ref=right_ref,
            path=prefix,
        ):
            yield LakeFSDiffEntry(path=entry.path, type=entry.type, path_type=entry.path_type)

    def _commit_or_none(self, repository: str, ref: str) -> LakeFSCommit | None:
        try:
            return self.get_commit(repository, ref)
        except LakeFSNotFoundError as exc:
            if exc.names_missing_repository:
                raise
            return None

    # --------------------------------------------------------------- branches

    def create_branch(self, repository: str, branch: str, source_ref: str) -> str:
        """Create ``branch`` at ``source_ref``; return its head commit id.

        Idempotent: if the branch already exists and points at the commit ``source_ref``
        resolves to, nothing is done. If it points elsewhere, :class:`LakeFSConflictError`.
        """
        validate_repository(repository)
        validate_branch(branch)
        validate_ref(source_ref)
        try:
            return str(
                self._call(
                    "create branch",
                    self.client.branches_api.create_branch,
                    repository,
                    BranchCreation.from_dict({"name": branch, "source": source_ref}),
                    repository=repository,
                    ref=branch,
                )
            ).strip()
        except LakeFSConflictError:
            head = self.get_branch_head(repository, branch)
            source_commit = self.resolve_commit_id(repository, source_ref)
            if head == source_commit:
                return head
            raise LakeFSConflictError(
                f"Cannot create branch '{branch}' in repository '{repository}' from '{source_ref}' "
                f"({source_commit}): it already exists at {head}",
                repository=repository,
                ref=branch,
            ) from None

    def list_branches(self, repository: str, prefix: str = "") -> list[str]:
        """Names of the branches of ``repository`` that start with ``prefix``."""
        validate_repository(repository)
        return [
            ref.id
            for ref in self._paged(
                "list branches",
                self.client.branches_api.list_branches,
                repository,
                prefix=prefix or None,
                repository=repository,
            )
        ]

    def delete_branch(self, repository: str, branch: str, *, missing_ok: bool = False) -> None:
        validate_repository(repository)
        validate_branch(branch)
        try:
            self._call(
                "delete branch",
                self.client.branches_api.delete_branch,
                repository,
                branch,
                repository=repository,
                ref=branch,
            )
        except LakeFSNotFoundError as exc:
            if not missing_ok or exc.names_missing_repository:
                raise

    def commit(
        self,
        repository: str,
        branch: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        allow_empty: bool = False,
        date: int | None = None,
    ) -> LakeFSCommit:
        """Commit the staged changes of ``branch`` with string ``metadata``; return the commit."""
        validate_repository(repository)
        validate_branch(branch)
        checked = validate_commit_metadata(metadata)
        if not isinstance(message, str) or not message.strip():
            raise LakeFSBadInputError(
                f"A commit to branch '{branch}' of repository '{repository}' needs a non-empty message",
                repository=repository,
                ref=branch,
            )
        commit = self._call(
            "commit",
            self.client.commits_api.commit,
            repository,
            branch,
            CommitCreation.from_dict(
                {"message": message, "metadata": checked, "allow_empty": allow_empty, "date": date}
            ),
            repository=repository,
            ref=branch,
        )
        return LakeFSCommit.from_sdk(commit)

    def merge(
        self,
        repository: str,
        source_ref: str,
        destination_branch: str,
        *,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
        strategy: str | None = None,
        allow_empty: bool = False,
    ) -> str:
        """Merge ``source_ref`` into ``destination_branch``; return the resulting commit id.

        ``strategy`` is ``None`` (a conflict raises :class:`LakeFSConflictError`), ``"dest-wins"``
        or ``"source-wins"``.
        """
        validate_repository(repository)
        validate_ref(source_ref)
        validate_branch(destination_branch)
        if strategy is not None and strategy not in MERGE_STRATEGIES:
            raise LakeFSBadInputError(
                f"Unknown merge strategy {strategy!r} for merging '{source_ref}' into "
                f"'{destination_branch}': use one of {', '.join(MERGE_STRATEGIES)} or None",
                repository=repository,
                ref=destination_branch,
            )
        checked = validate_commit_metadata(metadata)
        result = self._call(
            f"merge '{source_ref}' into branch",
            self.client.refs_api.merge_into_branch,
            repository,
            source_ref,
            destination_branch,
            merge=Merge.from_dict(
                {"message": message, "metadata": checked, "strategy": strategy, "allow_empty": allow_empty}
            ),
            repository=repository,
            ref=destination_branch,
        )
        return str(result.reference)

    def revert(
        self,
        repository: str,
        branch: str,
        ref: str,
        *,
        parent_number: int | None = None,
        allow_empty: bool = False,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> LakeFSCommit:
        """Revert the changes of commit ``ref`` on ``branch``; return the new head commit.

        A merge commit needs ``parent_number`` (1-based: the parent whose side is kept).
        ``message`` and ``metadata`` replace lakeFS's default message and metadata of the revert commit.
        """
        validate_repository(repository)
        validate_branch(branch)
        target = self.get_commit(repository, ref)
        if target.is_merge and parent_number is None:
            raise LakeFSBadInputError(
                f"Commit {target.id} ('{ref}') in repository '{repository}' is a merge commit: "
                "pass parent_number (1 = revert relative to its first parent)",
                repository=repository,
                ref=ref,
            )
        self._call(
            f"revert commit {target.id} on branch",
            self.client.branches_api.revert_branch,
            repository,
            branch,
            RevertCreation.from_dict(
                {
                    "ref": target.id,
                    "parent_number": parent_number or 0,
                    "allow_empty": allow_empty,
                    "commit_overrides": (
                        {"message": message, "metadata": validate_commit_metadata(metadata)}
                        if message or metadata
                        else None
                    ),
                }
            ),
            repository=repository,
            ref=branch,
        )
        return self.get_commit(repository, branch)

    def create_tag(self, repository: str, tag: str, ref: str) -> str:
        """Create tag ``tag`` at ``ref``; return its commit id. Idempotent for the same commit."""
        validate_repository(repository)
        validate_tag(tag)
        validate_ref(ref)
        try:
            result = self._call(
                "create tag",
                self.client.tags_api.create_tag,
                repository,
                TagCreation.from_dict({"id": tag, "ref": ref}),
                repository=repository,
                ref=tag,
            )
            return str(result.commit_id)
        except LakeFSConflictError:
            existing = self.resolve_commit_id(repository, tag)
            wanted = self.resolve_commit_id(repository, ref)
            if existing == wanted:
                return existing
            raise LakeFSConflictError(
                f"Cannot create tag '{tag}' in repository '{repository}' at '{ref}' ({wanted}): "
                f"it already exists at {existing}",
                repository=repository,
                ref=tag,
            ) from None


__all__ = [
    "DEFAULT_MAX_COMMITS",
    "MERGE_STRATEGIES",
    "LakeFSCommit",
    "LakeFSDiffEntry",
    "LakeFSRefsMixin",
    "validate_commit_metadata",
]
