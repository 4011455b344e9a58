"""The datum pipeline journey (``tests/integration/datums_journey.py``) with the local runner: each
mapped task runs its container as a subprocess of the worker."""

from __future__ import annotations

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.datums_journey import datums_journey, scoring_repositories


@pytest.mark.timeout(2700)  # five `airflow dags test` runs: 4-5 minutes each at load average 20
def test_only_changed_datums_are_processed_in_mapped_tasks_and_published_in_one_commit(
    hook: LakeFSHook, airflow_metadata_db: str
) -> None:
    with scoring_repositories(hook) as prefix:
        batches = datums_journey(hook, prefix, runner="local")
    assert {batch.metadata["mlrepo.runner"] for batch in batches} == {"local"}
