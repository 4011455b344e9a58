"""Extra link from a task to the lakeFS commit it produced.

In Airflow 3 operator links are evaluated on the worker when the task finishes (the task runner's
``finalize``, on success and on failure alike) and stored as an XCom the api-server reads. The
operator records the URL with :func:`record_output_commit_url`: on the operator (the link reads it
there, so a failed attempt, which made no commit, reads no XCom and logs no "XCom not found") and as
an XCom (for the Provenance tab and for readers of other attempts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

OUTPUT_COMMIT_URL_XCOM_KEY = "mlrepo_output_commit_url"
#: XCom with the output commit as ``lakefs://repo/<commit>/path`` (read by the Provenance tab; KPO
#: subclasses push no ``return_value`` unless ``do_xcom_push``).
OUTPUT_COMMIT_XCOM_KEY = "mlrepo_output_commit"
#: Attribute of an operator that records its output commit's URL (None: this attempt made no commit).
OUTPUT_COMMIT_URL_ATTRIBUTE = "output_commit_url"


def record_output_commit_url(operator: Any, ti: Any, url: str) -> None:
    """Keep ``url`` on the operator (for the link) and push it as the ``mlrepo_output_commit_url`` XCom."""
    setattr(operator, OUTPUT_COMMIT_URL_ATTRIBUTE, url)
    ti.xcom_push(key=OUTPUT_COMMIT_URL_XCOM_KEY, value=url)


class LakeFSOutputCommitLink(BaseOperatorLink):
    """Button "lakeFS commit": the output commit in the lakeFS web UI."""

    name = "lakeFS commit"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if hasattr(operator, OUTPUT_COMMIT_URL_ATTRIBUTE):
            # the operator that just ran: it knows whether it made a commit (a failed attempt did not)
            return str(getattr(operator, OUTPUT_COMMIT_URL_ATTRIBUTE) or "")
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=OUTPUT_COMMIT_URL_XCOM_KEY)
        return str(value) if value else ""
