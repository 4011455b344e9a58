"""``LakeFSHook``: the one place airflow-mlrepo talks to lakeFS synchronously.

Built on the generated ``lakefs_sdk`` client, in parts by concern: :mod:`.base` (client, counted
and translated calls, repositories), :mod:`.refs` (refs, history, branches, merge, revert, tags)
and :mod:`.objects` (object I/O and streaming). Triggers use
:class:`~airflow_mlrepo.hooks.lakefs.LakeFSAsyncHook` instead.
"""

from __future__ import annotations

from airflow_mlrepo.hooks.lakefs.objects import LakeFSObjectsMixin
from airflow_mlrepo.hooks.lakefs.refs import LakeFSRefsMixin


class LakeFSHook(LakeFSRefsMixin, LakeFSObjectsMixin):
    """Interact with lakeFS through an Airflow connection of type ``lakefs``.

    :param lakefs_conn_id: the Airflow connection id (default ``lakefs_default``).
    """


__all__ = ["LakeFSHook"]
