"""Custom OpenLineage facets of airflow-mlrepo (openlineage-python v2 ``facet_v2`` classes).

Named by the OpenLineage custom-facet rules (``{Prefix}{Name}{Entity}Facet``, key ``{prefix}_{name}``):

=================================  ======================  =========================================
class                              key                     where
=================================  ======================  =========================================
``LakeFSCommitDatasetFacet``       ``lakefs_commit``       every lakeFS input and output dataset
``MlrepoModelChoiceRunFacet``      ``mlrepo_modelChoice``  inference runs (policy + resolved commit)
``MlrepoContainerRunFacet``        ``mlrepo_container``    training and inference runs (image)
``MlrepoDatumsRunFacet``           ``mlrepo_datums``       datum pipelines (processed, skipped, ...)
=================================  ======================  =========================================

Each facet's JSON schema ships inside the package (``airflow_mlrepo/lineage/schemas/<version>/``,
see :func:`schema_path`) and its ``_schemaURL`` is the immutable URL of that file at the release tag
that introduced the schema version (``SCHEMA_URL_BASE``): a tag, never a branch, as the spec asks.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import attr
from openlineage.client.facet_v2 import DatasetFacet, RunFacet

#: Version of our facet schemas (OpenLineage style, dashes) and the release tag that introduced it.
FACET_SCHEMA_VERSION = "1-0-0"
SCHEMA_RELEASE_TAG = "v0.1.0"
SCHEMA_URL_BASE = (
    f"https://raw.githubusercontent.com/airflow-mlrepo/airflow-mlrepo/{SCHEMA_RELEASE_TAG}/"
    f"airflow_mlrepo/lineage/schemas/{FACET_SCHEMA_VERSION}"
)
SCHEMA_DIR = Path(__file__).with_name("schemas") / FACET_SCHEMA_VERSION

LAKEFS_COMMIT_FACET = "lakefs_commit"
MODEL_CHOICE_FACET = "mlrepo_modelChoice"
CONTAINER_FACET = "mlrepo_container"
DATUMS_FACET = "mlrepo_datums"


def schema_url(facet_class: str) -> str:
    return f"{SCHEMA_URL_BASE}/{facet_class}.json#/$defs/{facet_class}"


def schema_path(facet_class: str) -> Path:
    """The packaged JSON schema of one of our facets."""
    return SCHEMA_DIR / f"{facet_class}.json"


@cache
def load_schema(facet_class: str) -> dict[str, Any]:
    return json.loads(schema_path(facet_class).read_text())  # type: ignore[no-any-return]


@attr.define
class LakeFSProducerRun:
    """The OpenLineage run (and its Airflow DAG-run parent) that wrote a lakeFS commit."""

    runId: str
    jobNamespace: str
    jobName: str
    parentRunId: str | None = attr.field(default=None)
    parentJobNamespace: str | None = attr.field(default=None)
    parentJobName: str | None = attr.field(default=None)


@attr.define
class LakeFSCommitDatasetFacet(DatasetFacet):
    """The exact lakeFS commit of a dataset: repository, branch (as in the dataset name), declared ref, commit."""

    repository: str
    branch: str
    commitId: str
    path: str
    ref: str | None = attr.field(default=None)
    uri: str | None = attr.field(default=None)
    pinRule: str | None = attr.field(default=None)
    asOf: str | None = attr.field(default=None)
    commitTime: str | None = attr.field(default=None)
    producedBy: LakeFSProducerRun | None = attr.field(default=None)

    _additional_skip_redact: ClassVar[list[str]] = ["repository", "branch", "commitId", "path", "ref", "uri"]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("LakeFSCommitDatasetFacet")


@attr.define
class MlrepoModelChoiceRunFacet(RunFacet):
    """How an inference run chose its model (``latest``, ``as_of`` or ``explicit``) and what it resolved to."""

    policy: str
    requested: str
    model: str
    commitId: str | None = attr.field(default=None)
    asOf: str | None = attr.field(default=None)

    _additional_skip_redact: ClassVar[list[str]] = ["policy", "requested", "model", "commitId"]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MlrepoModelChoiceRunFacet")


@attr.define
class MlrepoContainerRunFacet(RunFacet):
    """The container image (and runner) that did the work. No command line, no environment: no secrets."""

    image: str
    runner: str
    outputKind: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MlrepoContainerRunFacet")


@attr.define
class MlrepoDatumsRunFacet(RunFacet):
    """What a datum pipeline's run did: datums processed, skipped, deleted, of how many, in how many tasks."""

    mode: str
    processed: int
    skipped: int
    deleted: int
    total: int
    tasks: int
    reason: str | None = attr.field(default=None)

    _additional_skip_redact: ClassVar[list[str]] = ["mode", "reason"]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MlrepoDatumsRunFacet")


__all__ = [
    "CONTAINER_FACET",
    "DATUMS_FACET",
    "LAKEFS_COMMIT_FACET",
    "MODEL_CHOICE_FACET",
    "LakeFSCommitDatasetFacet",
    "LakeFSProducerRun",
    "MlrepoContainerRunFacet",
    "MlrepoDatumsRunFacet",
    "MlrepoModelChoiceRunFacet",
    "load_schema",
    "schema_path",
    "schema_url",
]
