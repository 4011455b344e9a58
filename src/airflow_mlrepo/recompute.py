"""``mlrepo recompute --downstream``: clear the Airflow runs of outputs derived from a bad commit.

:func:`airflow_mlrepo.downstream.recompute_plan` says which current outputs a clear recomputes
without the bad commit; this module clears their DAG runs through Airflow's REST API
(``POST /api/v2/dags/{dag_id}/dagRuns/{run_id}/clear``: same run id, logical date, conf and pinned
inputs; the tasks run again) and, if asked, waits for them to finish.

Authentication: a bearer token (``$AIRFLOW_API_TOKEN``), or a user name and password exchanged for
one at ``POST /auth/token`` (``$AIRFLOW_API_USER`` / ``$AIRFLOW_API_PASSWORD``), or none (the local
stack makes every user an admin).
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import AirflowAPIError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

TERMINAL_STATES = ("success", "failed")


@dataclass
class AirflowREST:
    """A small client of Airflow 3's public REST API (``/api/v2``)."""

    base_url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            headers = {}
            token = self.token or self._login()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self._client = httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout)
        return self._client

    def _login(self) -> str | None:
        if not (self.user and self.password):
            return None
        import httpx

        answer = httpx.post(
            f"{self.base_url.rstrip('/')}/auth/token",
            json={"username": self.user, "password": self.password},
            timeout=self.timeout,
        )
        if answer.status_code >= 300:
            raise AirflowAPIError(
                f"Airflow at {self.base_url} refused the login of {self.user!r}: {answer.status_code}"
            )
        return str(answer.json()["access_token"])

    def _run_path(self, dag_id: str, run_id: str) -> str:
        quote = urllib.parse.quote
        return f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def clear_run(self, dag_id: str, run_id: str) -> list[str]:
        """Clear every task of the run (it is queued again); return the task ids cleared."""
        answer = self.client.post(f"{self._run_path(dag_id, run_id)}/clear", json={"dry_run": False})
        if answer.status_code >= 300:
            raise AirflowAPIError(
                f"Airflow at {self.base_url} did not clear run {run_id!r} of DAG {dag_id!r}: "
                f"{answer.status_code} {answer.text[:500]}"
            )
        body: Any = answer.json()
        instances = body.get("task_instances", []) if isinstance(body, dict) else []
        return [str(ti.get("task_id")) for ti in instances]

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = self.client.get(self._run_path(dag_id, run_id))
        if answer.status_code >= 300:
            raise AirflowAPIError(f"Airflow has no run {run_id!r} of DAG {dag_id!r}: {answer.status_code}")
        return str(answer.json()["state"])

    def wait(
        self, runs: Sequence[tuple[str, str]], timeout: float, interval: float = 2.0
    ) -> dict[tuple[str, str], str]:
        """Wait until every run is ``success`` or ``failed``; return their states."""
        deadline = time.monotonic() + timeout
        states: dict[tuple[str, str], str] = {}
        while True:
            states = {run: self.run_state(*run) for run in runs}
            if all(state in TERMINAL_STATES for state in states.values()):
                return states
            if time.monotonic() >= deadline:
                pending = ", ".join(f"{d}/{r} ({s})" for (d, r), s in states.items() if s not in TERMINAL_STATES)
                raise AirflowAPIError(f"runs still not finished after {timeout:.0f}s: {pending}")
            time.sleep(interval)


__all__ = ["AirflowAPIError", "AirflowREST"]
