"""The api-server app behind the "Provenance" tab of a task instance.

Mounted by :class:`~airflow_mlrepo.provenance_view.plugin.ProvenanceViewPlugin` at ``/mlrepo-provenance``:

* ``GET /mlrepo-provenance/task?dag_id=&run_id=&task_id=&map_index=`` — the HTML page the Airflow UI
  shows in the tab (an external view, ``destination="task_instance"``);
* ``GET /mlrepo-provenance/api/task?...`` — the same tree as JSON (what ``mlrepo provenance --json``
  prints).

Both are authenticated and authorized like the UI's own task-instance pages: Airflow's
``requires_access_dag("GET", TASK_INSTANCE)`` dependency (the UI's JWT cookie or a bearer token).
The task's output commit comes from its ``return_value`` XCom in the metadata database; the tree is
read from lakeFS through the connection ``[mlrepo] provenance_lakefs_conn_id`` (default
``lakefs_default``). Links point at ``ui_url`` of that connection (else its endpoint), at
``[api] base_url`` for Airflow and at ``[mlrepo] marquez_url`` for Marquez.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import MlRepoError
from airflow_mlrepo.provenance_view.page import output_location, render_message, render_provenance

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.provenance_report import Links, ProvenanceNode

URL_PREFIX = "/mlrepo-provenance"
PAGE_ROUTE = "/task"
API_ROUTE = "/api/task"
CONFIG_SECTION = "mlrepo"
DEFAULT_LAKEFS_CONN_ID = "lakefs_default"


def read_return_value(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """What the task instance recorded about its output: the ``mlrepo_output_commit`` XCom
    (``lakefs://repo/<commit>/path``, pushed by every training/inference task), else its ``return_value``
    XCom (the operator's result, pushed with ``do_xcom_push``), from the metadata database; None if neither."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_mlrepo.links.lakefs import OUTPUT_COMMIT_XCOM_KEY

    found: dict[str, Any] = {}
    with create_session() as session:
        rows = session.execute(
            select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key.in_([OUTPUT_COMMIT_XCOM_KEY, "return_value"]),
            )
        ).all()
        for key, value in rows:
            found[key] = XComModel.deserialize_value(_Row(value))
    if isinstance(found.get(OUTPUT_COMMIT_XCOM_KEY), str):
        return {"output": found[OUTPUT_COMMIT_XCOM_KEY]}
    return found.get("return_value")


class _Row:
    """What :meth:`XComModel.deserialize_value` reads: an object with ``.value``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def configured_hook() -> LakeFSHook:
    from airflow.configuration import conf

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

    conn_id = conf.get(CONFIG_SECTION, "provenance_lakefs_conn_id", fallback="") or DEFAULT_LAKEFS_CONN_ID
    return LakeFSHook(lakefs_conn_id=conn_id)


def configured_links(hook: LakeFSHook) -> Links:
    from airflow.configuration import conf

    from airflow_mlrepo.provenance_report import Links

    return Links(
        lakefs_ui=hook.settings.browser_url,
        airflow_ui=conf.get("api", "base_url", fallback="") or None,
        marquez_api=conf.get(CONFIG_SECTION, "marquez_url", fallback="") or None,
    )


@dataclass(frozen=True)
class TaskProvenance:
    """The provenance tree of a task instance's output, or why there is none."""

    node: ProvenanceNode | None
    message: str = ""
    lakefs_ui: str = ""


def task_provenance(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    *,
    xcom_reader: Callable[[str, str, str, int], Any] = read_return_value,
    hook_factory: Callable[[], LakeFSHook] = configured_hook,
) -> TaskProvenance:
    """The provenance tree of the output the task instance committed, or None and why not."""
    from airflow_mlrepo.provenance_report import trace

    location = output_location(xcom_reader(dag_id, run_id, task_id, map_index))
    what = f"Task {task_id} of run {run_id} ({dag_id}"
    what += f", map index {map_index})" if map_index >= 0 else ")"
    if location is None:
        return TaskProvenance(
            None,
            f"{what} recorded no lakeFS output commit: only finished training and inference tasks "
            "(LakeFSTrainingOperator, LakeFSInferenceOperator) have provenance.",
        )
    hook = hook_factory()
    links = configured_links(hook)
    try:
        return TaskProvenance(trace(hook, location, links=links), lakefs_ui=links.lakefs_ui)
    except MlRepoError as exc:
        return TaskProvenance(None, f"{what} committed {location.uri}, but its provenance cannot be read: {exc}")


def parse_map_index(raw: str) -> int:
    """The map index the UI filled in; an unmapped task gets ``{MAP_INDEX}`` left as it is (Airflow 3.3), -1."""
    try:
        return int(raw)
    except ValueError:
        return -1


def create_app(
    *,
    xcom_reader: Callable[[str, str, str, int], Any] = read_return_value,
    hook_factory: Callable[[], LakeFSHook] = configured_hook,
    authorize: bool = True,
) -> FastAPI:
    """The app. ``xcom_reader``, ``hook_factory`` and ``authorize`` replace its boundaries in unit tests."""
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse

    from airflow_mlrepo.links.lakefs_ui import LakeFSUI

    dependencies: list[Any] = []
    if authorize:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag

        dependencies.append(Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE)))

    app = FastAPI(
        title="airflow-mlrepo provenance view",
        description="The provenance of a task instance's output commit.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=dependencies,
    )

    @app.get(PAGE_ROUTE, response_class=HTMLResponse)
    def page(
        dag_id: str = Query(...), run_id: str = Query(...), task_id: str = Query(...), map_index: str = Query("-1")
    ) -> HTMLResponse:
        try:
            found = task_provenance(
                dag_id, run_id, task_id, parse_map_index(map_index), xcom_reader=xcom_reader, hook_factory=hook_factory
            )
        except MlRepoError as exc:
            return HTMLResponse(render_message(str(exc), error=True), status_code=502)
        if found.node is None:
            return HTMLResponse(render_message(found.message))
        return HTMLResponse(render_provenance(found.node, LakeFSUI(found.lakefs_ui)))

    @app.get(API_ROUTE)
    def api(
        dag_id: str = Query(...), run_id: str = Query(...), task_id: str = Query(...), map_index: str = Query("-1")
    ) -> JSONResponse:
        try:
            found = task_provenance(
                dag_id, run_id, task_id, parse_map_index(map_index), xcom_reader=xcom_reader, hook_factory=hook_factory
            )
        except MlRepoError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=502)
        if found.node is None:
            return JSONResponse({"detail": found.message}, status_code=404)
        return JSONResponse(found.node.to_dict())

    return app


__all__ = ["API_ROUTE", "PAGE_ROUTE", "URL_PREFIX", "TaskProvenance", "create_app", "task_provenance"]
