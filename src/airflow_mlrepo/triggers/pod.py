"""The deferrable pod operators' trigger: ``KubernetesPodTrigger`` that never fires at once.

Airflow 3.3.2 fails a deferred task whose trigger fires within a second or two of the deferral
(apache/airflow#72716, and its ``queued`` variant #67287): the worker that deferred exits with
"success", and when the scheduler drains that stale event only after the trigger has resumed the
task instance (``queued`` or ``running``), it takes it for a task that finished behind its back and
fails it. The resumed try never runs. A pod that finishes at once (a short inference step, a
cached one) hits this every time: seen here in the deferrable iris journeys, twice in a row on one
task with a retry.

:class:`LakeFSPodTrigger` holds an event back until the scheduler has had the deferring worker's
exit while the task instance is still ``deferred`` (the ordinary case):

* when the triggerer runs on the worker's host (the LocalExecutor; the stack) and the worker
  process that deferred is still there, until it has exited, plus :data:`AFTER_EXIT_SECONDS` for
  the executor's event to reach the scheduler. The worker can take seconds to exit after it
  deferred (seen here: 7 s);
* otherwise, until ``fire_not_before``: the deferral time plus :data:`DEFERRAL_SETTLE_SECONDS`.

A pod that runs longer than that is not delayed at all. Everything else is
``KubernetesPodTrigger``'s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent

#: seconds after the deferral before the trigger may fire, when it cannot see the worker's process.
DEFERRAL_SETTLE_SECONDS = 15.0
#: seconds after the deferring worker's process exited (the executor's event, a scheduler loop or two).
AFTER_EXIT_SECONDS = 3.0
#: longest wait for the deferring worker's process to exit.
WORKER_EXIT_TIMEOUT_SECONDS = 120.0


class LakeFSPodTrigger(KubernetesPodTrigger):
    """``KubernetesPodTrigger`` whose events wait until the deferring ``worker`` (``(hostname, pid)``)
    has exited when it runs on this host, else until ``fire_not_before`` (a Unix time)."""

    def __init__(
        self, *, fire_not_before: float | None = None, worker: tuple[str, int] | list[Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.fire_not_before = fire_not_before
        #: ``(hostname, pid)`` of the worker process that deferred
        self.worker = (str(worker[0]), int(worker[1])) if worker else None

    @classmethod
    def settled(cls, trigger: KubernetesPodTrigger, *, settle_seconds: float) -> LakeFSPodTrigger:
        """The same trigger, held for this process (the worker that defers) or ``settle_seconds`` from now."""
        _, kwargs = trigger.serialize()
        return cls(fire_not_before=time.time() + settle_seconds, worker=(socket.gethostname(), os.getpid()), **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**kwargs, "fire_not_before": self.fire_not_before, "worker": self.worker},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            await self._settle()
            yield event

    async def _settle(self) -> None:
        if self.worker is not None and self.worker[0] == socket.gethostname():
            pid = self.worker[1]
            deadline = time.monotonic() + WORKER_EXIT_TIMEOUT_SECONDS
            if _process_exists(pid):
                self.log.info("Holding the pod's event until the worker that deferred (pid %d) has exited", pid)
                while _process_exists(pid) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(AFTER_EXIT_SECONDS)
                return
            # gone already, but when it went is unknown: the time rule below
        wait = (self.fire_not_before or 0.0) - time.time()
        if wait > 0:
            self.log.info("Holding the pod's event %.1f s (apache/airflow#72716: not at once after deferral)", wait)
            await asyncio.sleep(wait)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True
