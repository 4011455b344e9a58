"""The extra links: "Marquez run" from the OpenLineage ids and [mlrepo] marquez_url; both read the operator that ran."""

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


def test_links_of_the_operator_that_ran_read_no_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed attempt made no commit: its links are empty, and no XCom is read (no "XCom not found")."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time import xcom

    from airflow_mlrepo.links.lakefs import LakeFSOutputCommitLink

    def no_xcom(**kwargs: Any) -> Any:
        raise AssertionError(f"read an XCom: {kwargs}")

    monkeypatch.setattr(xcom.XCom, "get_value", staticmethod(no_xcom))
    monkeypatch.setenv("AIRFLOW__MLREPO__MARQUEZ_URL", "http://marquez:5000")
    failed = SimpleNamespace(output_commit_url=None, openlineage_ids=None)
    assert LakeFSOutputCommitLink().get_link(failed, ti_key=None) == ""  # type: ignore[arg-type]
    assert MarquezRunLink().get_link(failed, ti_key=None) == ""  # type: ignore[arg-type]
    done = SimpleNamespace(output_commit_url="http://lakefs/repositories/r/commits/c1", openlineage_ids=IDS)
    assert LakeFSOutputCommitLink().get_link(done, ti_key=None) == done.output_commit_url  # type: ignore[arg-type]
    assert MarquezRunLink().get_link(done, ti_key=None).endswith(IDS["run_id"])  # type: ignore[arg-type]
