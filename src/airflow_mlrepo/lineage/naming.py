"""OpenLineage identity of lakeFS data (DESIGN §3, ``docs/concepts/lineage.md``).

A lakeFS object or prefix is the dataset

* namespace ``lakefs://<repository>``
* name ``<branch>/<path>`` (no trailing slash; just ``<branch>`` for a whole branch)

so the identity never contains a commit id: every commit of ``lakefs://iris-train/main/data/`` is a
*version* of the one dataset ``lakefs://iris-train`` / ``main/data``. The commit id goes into the
standard ``version`` facet and into our ``lakefs_commit`` facet, which are the same on the output
that wrote the commit and on every input that read it; how a run chose the commit (and who wrote
it) is that input's entry in the run's ``mlrepo_pins`` run facet (:func:`input_pin`,
:func:`pins_facet`). The Asset converter (:mod:`airflow_mlrepo.assets.lakefs`) gives Airflow Assets
the same identity.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from openlineage.client.event_v2 import Dataset, InputDataset, OutputDataset
from openlineage.client.facet_v2 import DatasetFacet, RunFacet, dataset_type_dataset, dataset_version_dataset

from airflow_mlrepo.lineage.facets import (
    LAKEFS_COMMIT_FACET,
    PINS_FACET,
    PRODUCER,
    LakeFSCommitDatasetFacet,
    LakeFSInputPin,
    LakeFSProducerRun,
    MlrepoPinsRunFacet,
)
from airflow_mlrepo.locations import SCHEME, LakeFSLocation, is_commit_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

VERSION_FACET = "version"
DATASET_TYPE_FACET = "datasetType"
MODEL = "MODEL"
#: A ref expression's base (``main~2`` -> ``main``, ``main@`` -> ``main``).
_REF_BASE = re.compile(r"^([^~^@$]+)")


def dataset_namespace(repository: str) -> str:
    """``lakefs://<repository>``."""
    return f"{SCHEME}://{repository}"


def dataset_name(branch: str, path: str) -> str:
    """``<branch>/<path>`` without a trailing slash (``<branch>`` when the path is empty)."""
    path = path.strip("/")
    return f"{branch}/{path}" if path else branch


def branch_of(ref: str, fallback: str | None = None) -> str:
    """The branch a dataset name uses for a declared ref.

    A branch is itself; a ref expression uses its base (``main~2`` -> ``main``); a tag keeps its name
    (tags are stable names too); a commit id cannot name a dataset, so ``fallback`` (the branch the
    caller knows the commit belongs to) is used.
    """
    match = _REF_BASE.match(ref)
    base = match.group(1) if match else ref
    if is_commit_id(base):
        if fallback is None:
            raise ValueError(f"A commit id ({ref}) cannot name a dataset: give the branch it belongs to")
        return fallback
    return base


def identity(location: LakeFSLocation, *, branch: str | None = None) -> tuple[str, str]:
    """(namespace, name) of a lakeFS location; ``branch`` overrides the one derived from its ref."""
    return dataset_namespace(location.repository), dataset_name(branch or branch_of(location.ref), location.path)


def _iso_utc(epoch_seconds: int | None) -> str | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat()


def dataset_facets(
    location: LakeFSLocation, *, commit_id: str | None, branch: str | None = None, model: bool = False
) -> dict[str, DatasetFacet]:
    """``version`` + ``lakefs_commit`` (when the commit is known) and ``datasetType`` MODEL for models.

    Only what identifies the commit: the same for the output that wrote it and every input that reads it.
    """
    facets: dict[str, DatasetFacet] = {}
    if commit_id:
        name_branch = branch or branch_of(location.ref)
        facets[VERSION_FACET] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=commit_id, producer=PRODUCER
        )
        facets[LAKEFS_COMMIT_FACET] = LakeFSCommitDatasetFacet(
            repository=location.repository,
            branch=name_branch,
            commitId=commit_id,
            path=location.path.strip("/"),
            uri=location.with_ref(commit_id).uri,
        )
    if model:
        facets[DATASET_TYPE_FACET] = dataset_type_dataset.DatasetTypeDatasetFacet(datasetType=MODEL, producer=PRODUCER)
    return facets


def input_pin(
    location: LakeFSLocation,
    *,
    commit_id: str | None,
    branch: str | None = None,
    pin_rule: str | None,
    as_of: str | None = None,
    commit_time: int | None = None,
    produced_by: LakeFSProducerRun | None = None,
) -> LakeFSInputPin | None:
    """How this run chose the commit of one input (declared ref, rule, as-of) and who wrote it (None if unpinned)."""
    if not (pin_rule and commit_id):
        return None
    namespace, name = identity(location, branch=branch)
    return LakeFSInputPin(
        namespace=namespace,
        name=name,
        commitId=commit_id,
        rule=pin_rule,
        ref=location.ref,
        asOf=as_of,
        commitTime=_iso_utc(commit_time),
        producedBy=produced_by,
    )


def pins_facet(pins: Iterable[LakeFSInputPin | None]) -> dict[str, RunFacet]:
    """The ``mlrepo_pins`` run facet of a run's pinned inputs (``{}`` when none is pinned).

    A run facet, never an input or dataset facet: Marquez stores both of those on the dataset version,
    where the latest reader's choice would show as if it described the commit.
    """
    pinned = [pin for pin in pins if pin is not None]
    return {PINS_FACET: MlrepoPinsRunFacet(inputs=pinned)} if pinned else {}


def input_dataset(
    location: LakeFSLocation, *, commit_id: str | None, branch: str | None = None, model: bool = False
) -> InputDataset:
    """An input at its commit: only the facets that describe the commit (how the run chose it: :func:`input_pin`)."""
    namespace, name = identity(location, branch=branch)
    return InputDataset(
        namespace=namespace,
        name=name,
        facets=dataset_facets(location, commit_id=commit_id, branch=branch, model=model),
    )


def output_dataset(location: LakeFSLocation, *, commit_id: str | None, model: bool = False) -> OutputDataset:
    namespace, name = identity(location)
    return OutputDataset(
        namespace=namespace, name=name, facets=dataset_facets(location, commit_id=commit_id, model=model)
    )


def plain_dataset(location: LakeFSLocation, *, branch: str | None = None) -> Dataset:
    """The dataset without version facets (the Asset converter and the sensor use it)."""
    namespace, name = identity(location, branch=branch)
    return Dataset(namespace=namespace, name=name)


def producer_from_metadata(metadata: Mapping[str, str]) -> LakeFSProducerRun | None:
    """The OpenLineage run an airflow-mlrepo output commit records in its provenance metadata, if any."""
    from airflow_mlrepo.lineage.ids import (
        JOB_NAME_KEY,
        JOB_NAMESPACE_KEY,
        PARENT_JOB_NAME_KEY,
        PARENT_JOB_NAMESPACE_KEY,
        PARENT_RUN_ID_KEY,
        RUN_ID_KEY,
    )

    run_id = metadata.get(RUN_ID_KEY)
    namespace = metadata.get(JOB_NAMESPACE_KEY)
    job_name = metadata.get(JOB_NAME_KEY)
    if not (run_id and namespace and job_name):
        return None
    return LakeFSProducerRun(
        runId=run_id,
        jobNamespace=namespace,
        jobName=job_name,
        parentRunId=metadata.get(PARENT_RUN_ID_KEY) or None,
        parentJobNamespace=metadata.get(PARENT_JOB_NAMESPACE_KEY) or None,
        parentJobName=metadata.get(PARENT_JOB_NAME_KEY) or None,
    )


__all__ = [
    "DATASET_TYPE_FACET",
    "MODEL",
    "VERSION_FACET",
    "branch_of",
    "dataset_facets",
    "dataset_name",
    "dataset_namespace",
    "identity",
    "input_dataset",
    "input_pin",
    "output_dataset",
    "pins_facet",
    "plain_dataset",
    "producer_from_metadata",
]
