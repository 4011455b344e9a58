"""Custom OpenLineage facets of airflow-mlrepo (openlineage-python v2 ``facet_v2`` classes).

Named by the OpenLineage custom-facet rules (``{Prefix}{Name}{Entity}Facet``, key ``{prefix}_{name}``):

=================================  ======================  =========================================
class                              key                     where
=================================  ======================  =========================================
``LakeFSCommitDatasetFacet``       ``lakefs_commit``       every lakeFS input and output dataset: the
                                                           commit itself, the same for its writer and
                                                           every reader
``MlrepoPinsRunFacet``             ``mlrepo_pins``         every run that reads lakeFS data: per input,
                                                           how this run chose the commit, who wrote it
``MlrepoModelChoiceRunFacet``      ``mlrepo_modelChoice``  inference runs (policy + resolved commit)
``MlrepoContainerRunFacet``        ``mlrepo_container``    training and inference runs (image)
``MlrepoDatumsRunFacet``           ``mlrepo_datums``       datum pipelines (processed, skipped, ...)
=================================  ======================  =========================================

What one reader chose (``mlrepo_pins``) is a *run* facet, not a dataset or input facet: Marquez 0.51
stores a run's input dataset facets **and** its input facets on the dataset version it links the input
to (``dataset_facets`` by version; the latest per facet name wins), so a reader's choice there would
show on the version as if it described the commit, and change with every new reader. Run facets stay
with the run. A version's facets (``version``, ``lakefs_commit``, ``datasetType``) describe the commit
only, identical from its writer and every reader.

Each facet's JSON schema ships inside the package (``airflow_mlrepo/lineage/schemas/<version>/``,
see :func:`schema_path`) and its ``_schemaURL`` is the immutable URL of that very file in the
project's repository at the commit that introduced it (:data:`SCHEMA_COMMITS`; the spec asks for a
tag or a sha, never a branch); ``tests/unit/test_lineage_schemas.py`` checks that the file at that
commit is byte for byte the one shipped. Every facet our code builds, standard or ours, carries our
:data:`PRODUCER`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import attr
from openlineage.client.facet_v2 import DatasetFacet, RunFacet

#: ``producer`` of our events and ``_producer`` of every facet our code builds.
PRODUCER = "https://github.com/airflow-mlrepo/airflow-mlrepo"
#: Version of our facet schemas (OpenLineage style, dashes) and the commit that introduced it.
FACET_SCHEMA_VERSION = "1-1-0"
SCHEMA_COMMIT = "6581d386d6c5a2d70b668d5167d489172dc9573c"
SCHEMA_REPOSITORY_PATH = f"src/airflow_mlrepo/lineage/schemas/{FACET_SCHEMA_VERSION}"
SCHEMA_REPOSITORY_URL = "https://raw.githubusercontent.com/airflow-mlrepo/airflow-mlrepo"
SCHEMA_DIR = Path(__file__).with_name("schemas") / FACET_SCHEMA_VERSION

LAKEFS_COMMIT_FACET = "lakefs_commit"
PINS_FACET = "mlrepo_pins"
#: Our facet classes, each with its schema ``<class>.json`` in :data:`SCHEMA_DIR`.
FACET_CLASSES = (
    "LakeFSCommitDatasetFacet",
    "MlrepoPinsRunFacet",
    "MlrepoModelChoiceRunFacet",
    "MlrepoContainerRunFacet",
    "MlrepoDatumsRunFacet",
)
MODEL_CHOICE_FACET = "mlrepo_modelChoice"
CONTAINER_FACET = "mlrepo_container"
DATUMS_FACET = "mlrepo_datums"


#: The commit that introduced each facet's schema file at :data:`SCHEMA_REPOSITORY_PATH` (a facet
#: added later names its own commit; a changed schema gets a new version, never a new commit here).
SCHEMA_COMMITS: dict[str, str] = {
    "LakeFSCommitDatasetFacet": SCHEMA_COMMIT,
    "MlrepoPinsRunFacet": "fb79ef0ea271c93bd2ad64f9164b4d60c7af95ca",
    "MlrepoModelChoiceRunFacet": SCHEMA_COMMIT,
    "MlrepoContainerRunFacet": SCHEMA_COMMIT,
    "MlrepoDatumsRunFacet": "2f92a320fe96ac3e35f640f7e14c9bba8a64f03e",
}


def schema_url(facet_class: str) -> str:
    commit = SCHEMA_COMMITS[facet_class]
    return f"{SCHEMA_REPOSITORY_URL}/{commit}/{SCHEMA_REPOSITORY_PATH}/{facet_class}.json#/$defs/{facet_class}"


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


class _OurFacet:
    """Mixin: ``_producer`` is airflow-mlrepo's unless given (the client would use the Airflow provider's)."""

    _producer: str

    def __attrs_post_init__(self) -> None:
        if not self._producer:
            self._producer = PRODUCER
        super().__attrs_post_init__()  # type: ignore[misc]


@attr.define
class LakeFSCommitDatasetFacet(_OurFacet, DatasetFacet):
    """The exact lakeFS commit of a dataset version: repository, branch (as in the dataset name), commit, path."""

    repository: str
    branch: str
    commitId: str
    path: str
    uri: str | None = attr.field(default=None)

    _additional_skip_redact: ClassVar[list[str]] = ["repository", "branch", "commitId", "path", "uri"]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("LakeFSCommitDatasetFacet")


@attr.define
class LakeFSInputPin:
    """One lakeFS input of a run: the dataset, the commit read, how the run chose it and who wrote it."""

    namespace: str
    name: str
    commitId: str
    rule: str
    ref: str | None = attr.field(default=None)
    asOf: str | None = attr.field(default=None)
    commitTime: str | None = attr.field(default=None)
    producedBy: LakeFSProducerRun | None = attr.field(default=None)


@attr.define
class MlrepoPinsRunFacet(_OurFacet, RunFacet):
    """How a run chose the commit of each lakeFS input it read (rule, declared ref, as-of) and who wrote it."""

    inputs: list[LakeFSInputPin] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MlrepoPinsRunFacet")

    def pin_of(self, namespace: str, name: str) -> LakeFSInputPin | None:
        for pin in self.inputs:
            if (pin.namespace, pin.name) == (namespace, name):
                return pin
        return None


@attr.define
class MlrepoModelChoiceRunFacet(_OurFacet, RunFacet):
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
class MlrepoContainerRunFacet(_OurFacet, RunFacet):
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
    "FACET_CLASSES",
    "LAKEFS_COMMIT_FACET",
    "MODEL_CHOICE_FACET",
    "PINS_FACET",
    "PRODUCER",
    "LakeFSCommitDatasetFacet",
    "LakeFSInputPin",
    "LakeFSProducerRun",
    "MlrepoContainerRunFacet",
    "MlrepoDatumsRunFacet",
    "MlrepoModelChoiceRunFacet",
    "MlrepoPinsRunFacet",
    "load_schema",
    "schema_path",
    "schema_url",
]
