"""Extra link from a task to its OpenLineage run in Marquez.

The operator pushes the run's OpenLineage ids (namespace, job name, run id: the ones the
openlineage provider uses) to XCom when it starts; the link formats them with
``[mlrepo] marquez_url`` and ``[mlrepo] marquez_run_link_template``. Without ``marquez_url`` the
button stays empty.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

LINEAGE_IDS_XCOM_KEY = "mlrepo_openlineage_ids"
#: Attribute of an operator that records the ids it pushed (None: it failed before it knew them).
LINEAGE_IDS_ATTRIBUTE = "openlineage_ids"
#: Default: the run in Marquez's API (``GET /api/v1/jobs/runs/{id}``), exact for one attempt.
DEFAULT_RUN_LINK_TEMPLATE = "{marquez_url}/api/v1/jobs/runs/{run_id}"


def marquez_run_url(ids: Mapping[str, Any], marquez_url: str, template: str = DEFAULT_RUN_LINK_TEMPLATE) -> str:
    """Fill the link template; every id is percent-encoded (job names contain dots and slashes)."""
    quote = urllib.parse.quote
    return template.format(
        marquez_url=marquez_url.rstrip("/"),
        namespace=quote(str(ids.get("namespace", "")), safe=""),
        job=quote(str(ids.get("job_name", "")), safe=""),
        run_id=quote(str(ids.get("run_id", "")), safe=""),
    )


class MarquezRunLink(BaseOperatorLink):
    """Button "Marquez run": this task attempt's OpenLineage run in Marquez."""

    name = "Marquez run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.configuration import conf
        from airflow.sdk.execution_time.xcom import XCom

        marquez_url = conf.get("mlrepo", "marquez_url", fallback="") or ""
        if not marquez_url:
            return ""
        if hasattr(operator, LINEAGE_IDS_ATTRIBUTE):  # the operator that just ran (see links/lakefs.py)
            ids = getattr(operator, LINEAGE_IDS_ATTRIBUTE)
        else:
            ids = XCom.get_value(ti_key=ti_key, key=LINEAGE_IDS_XCOM_KEY)
        if not isinstance(ids, dict) or not ids.get("run_id"):
            return ""
        template = conf.get("mlrepo", "marquez_run_link_template", fallback="") or DEFAULT_RUN_LINK_TEMPLATE
        return marquez_run_url(ids, marquez_url, template)
