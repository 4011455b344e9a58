"""Small helpers that build lakeFS histories for tests (real lakeFS calls through the hook)."""

from __future__ import annotations

from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook


def commit_file(
    hook: LakeFSHook,
    repo: str,
    branch: str,
    path: str,
    data: bytes | str,
    *,
    message: str | None = None,
    date: int | None = None,
    metadata: dict[str, str] | None = None,
) -> LakeFSCommit:
    """Upload one object and commit it."""
    payload = data.encode() if isinstance(data, str) else data
    hook.upload_object(repo, branch, path, payload)
    return hook.commit(repo, branch, message or f"write {path}", metadata, date=date)
