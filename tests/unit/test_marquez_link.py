"""The "Marquez run" extra link: formatted from the run's OpenLineage ids and [mlrepo] marquez_url."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlrepo.links import marquez as marquez_link
from airflow_mlrepo.links.marquez import MarquezRunLink, marquez_run_url

IDS = {"namespace": "airflow prod", "job_name": "iris_daily.predict", "run_id": "01935b8e-0000-7000-8000-000000000001"}


def test_default_link_is_the_run_in_marquez_api() -> None:
    assert marquez_run_url(IDS, "http://marquez:5000/") == (
        "http://marquez:5000/api/v1/jobs/runs/01935b8e-0000-7000-8000-000000000001"
    )


def test_template_fields_are_percent_encoded() -> None:
    url = marquez_run_url(IDS, "http://web:3000", "{marquez_url}/lineage/job/{namespace}/{job}")
    assert url == "http://web:3000/lineage/job/airflow%20prod/iris_daily.predict"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [("", ""), ("http://marquez:5000", f"http://marquez:5000/api/v1/jobs/runs/{IDS['run_id']}")],
)
def test_link_reads_configuration_and_the_pushed_ids(
    monkeypatch: pytest.MonkeyPatch, configured: str, expected: str
) -> None:
    from airflow.sdk.execution_time import xcom

    monkeypatch.setenv("AIRFLOW__MLREPO__MARQUEZ_URL", configured)
    pushed: dict[str, Any] = {}

    def get_value(*, ti_key: Any, key: str) -> Any:
        pushed["key"] = key
        return IDS

    monkeypatch.setattr(xcom.XCom, "get_value", staticmethod(get_value))
    assert MarquezRunLink().get_link(None, ti_key=None) == expected  # type: ignore[arg-type]
    if configured:
        assert pushed["key"] == marquez_link.LINEAGE_IDS_XCOM_KEY
