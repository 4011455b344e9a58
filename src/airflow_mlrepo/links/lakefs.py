"""Extra link from a task to the lakeFS commit it produced.

In Airflow 3 operator links are evaluated on the worker when the task finishes; the URL is read
from an XCom the operator pushed, so the api-server needs no lakeFS access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

OUTPUT_COMMIT_URL_XCOM_KEY = "mlrepo_output_commit_url"
#: XCom with the output commit as ``lakefs://repo/<commit>/path`` (read by the Provenance tab; KPO
#: subclasses push no ``return_value`` unless ``do_xcom_push``).
OUTPUT_COMMIT_XCOM_KEY = "mlrepo_output_commit"


class LakeFSOutputCommitLink(BaseOperatorLink):
    """Button "lakeFS commit": the output commit in the lakeFS web UI."""

    name = "lakeFS commit"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=OUTPUT_COMMIT_URL_XCOM_KEY)
        return str(value) if value else ""
