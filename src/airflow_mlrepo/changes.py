"""What changed between two commits, for paths under a prefix: lakeFS's diff, paged.

One diff walker for the provider. ``two_dot`` compares the two commits' trees directly (no merge
base), so the answer is exactly "what a reader of ``right`` sees differently from ``left``", and the
cost is one request per 1,000 changed paths: it follows the change, not the size of the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlrepo.locations import validate_path, validate_ref, validate_repository

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

#: Diff entries per request (lakeFS's maximum page size).
DIFF_PAGE_SIZE = 1000

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
CONFLICT = "conflict"
PREFIX_CHANGED = "prefix_changed"


@dataclass(frozen=True)
class Change:
    """One path that differs between two refs, and how (``added``, ``removed``, ``changed``)."""

    path: str
    type: str

    @property
    def removed(self) -> bool:
        return self.type == REMOVED


def changed_paths(hook: LakeFSHook, repository: str, left: str, right: str, prefix: str = "") -> Iterator[Change]:
    """Every object under ``prefix`` that differs from ``left`` to ``right``, in path order.

    ``left == right`` costs nothing. Objects only (no delimiter), so a change deep in a directory is
    reported with its full path.
    """
    validate_repository(repository)
    validate_ref(left)
    validate_ref(right)
    validate_path(prefix)
    if left == right:
        return
    after = ""
    while True:
        page = hook._call(
            "diff refs",
            hook.client.refs_api.diff_refs,
            repository,
            left,
            right,
            after=after or None,
            amount=DIFF_PAGE_SIZE,
            prefix=prefix or None,
            type="two_dot",
            repository=repository,
            ref=f"{left}..{right}",
            path=prefix,
        )
        for entry in page.results:
            if entry.path_type == "object":
                yield Change(path=str(entry.path), type=str(entry.type))
        if not page.pagination.has_more:
            return
        after = page.pagination.next_offset
