"""URLs of pages in the lakeFS web UI: one place, checked against the routes lakeFS's UI declares.

lakeFS v1.86's ``webui/src/pages/index.jsx`` routes, under ``/repositories/:repoId``:
``commits/:commitId`` (a commit with its metadata and changes), ``object?ref=&path=`` (one object's
viewer), ``objects?ref=&path=`` (a prefix's listing) and ``compare?ref=<base>&compare=<other>``
(what ``other`` changed relative to ``base``; refs may be commit ids). No Airflow import: the CLI,
the operators and the api-server plugin all use it.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


@dataclass(frozen=True)
class LakeFSUI:
    """The lakeFS web UI at ``base_url`` (a connection's ``ui_url`` extra, else its endpoint)."""

    base_url: str

    def repository(self, repository: str) -> str:
        return f"{self.base_url.rstrip('/')}/repositories/{_quote(repository)}"

    def commit(self, repository: str, commit_id: str) -> str:
        """The commit page: message, metadata (the provenance) and the changes it made."""
        return f"{self.repository(repository)}/commits/{_quote(commit_id)}"

    def object(self, repository: str, ref: str, path: str) -> str:
        """One object's viewer for an object path; the listing for a prefix (``""`` or ending in ``/``)."""
        query = urllib.parse.urlencode({"ref": ref, "path": path})
        page = "objects" if not path or path.endswith("/") else "object"
        return f"{self.repository(repository)}/{page}?{query}"

    def compare(self, repository: str, base: str, other: str) -> str:
        """The changes of ``other`` relative to ``base`` (branches, tags or commit ids)."""
        query = urllib.parse.urlencode({"ref": base, "compare": other})
        return f"{self.repository(repository)}/compare?{query}"


__all__ = ["LakeFSUI"]
