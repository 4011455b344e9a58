"""lakeFS hooks: :class:`LakeFSHook` (synchronous) and :class:`LakeFSAsyncHook` (for triggers).

``from airflow_mlrepo.hooks.lakefs import X`` gives every public name of the parts:
:mod:`.connection` (connection settings), :mod:`.refs` (refs and history), :mod:`.objects`
(object I/O and streaming) and :mod:`.async_hook` (the triggers' branch-head reads).
"""

from __future__ import annotations

from airflow_mlrepo.hooks.lakefs.async_hook import LakeFSAsyncHook
from airflow_mlrepo.hooks.lakefs.base import LOG_PAGE_SIZE
from airflow_mlrepo.hooks.lakefs.connection import LakeFSConnectionSettings
from airflow_mlrepo.hooks.lakefs.hook import LakeFSHook
from airflow_mlrepo.hooks.lakefs.objects import STREAM_CHUNK_BYTES, LakeFSObjectStat
from airflow_mlrepo.hooks.lakefs.refs import (
    MERGE_STRATEGIES,
    LakeFSCommit,
    LakeFSDiffEntry,
    validate_commit_metadata,
)

__all__ = [
    "LOG_PAGE_SIZE",
    "MERGE_STRATEGIES",
    "STREAM_CHUNK_BYTES",
    "LakeFSAsyncHook",
    "LakeFSCommit",
    "LakeFSConnectionSettings",
    "LakeFSDiffEntry",
    "LakeFSHook",
    "LakeFSObjectStat",
    "validate_commit_metadata",
]
