"""Read lineage back from Marquez the way Marquez 0.51 answers, down to the exact lakeFS commits.

The route that works (``docs/concepts/lineage.md``, "Reading it back"):

1. ``GET /api/v1/runlineage/upstream?runId=<run>`` lists the run and every run upstream of it,
   each with its inputs as ``{namespace, name, version, producedByRunId}``;
2. for each input, ``GET /api/v1/namespaces/{ns}/datasets/{name}/versions`` and the version whose
   ``createdByRun.id`` is that ``producedByRunId``: its ``version`` facet (``datasetVersion``) and
   ``lakefs_commit`` facet are the exact commit the run read;
3. the producing run is itself in the upstream list: a model's producer is the training run, whose
   inputs give the training-data commit, and so on.

What does not work: ``GET …/versions/{version}`` with the ``version`` a run lists (it is a hash of
the dataset and the run; that route looks versions up by another id: Marquez issue #1977), and
``GET /api/v1/lineage?nodeId=`` (job-dataset edges only, ``currentVersion`` null).

:func:`trace` does the walk; :func:`render` prints it (``mlrepo lineage show``). To start from a
lakeFS location instead of a run, :func:`writer_of` finds the version of that commit (or the newest
version of a branch's dataset) in the dataset's version list and the run that wrote it
(``createdByRun.id``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import MarquezReadError
from airflow_mlrepo.lineage.facets import LAKEFS_COMMIT_FACET
from airflow_mlrepo.lineage.marquez import REGISTRATION_JOB_PREFIX

if TYPE_CHECKING:
    from airflow_mlrepo.locations import LakeFSLocation

#: Page size of ``GET …/datasets/{name}/versions`` (Marquez's own maximum is larger).
VERSIONS_PAGE = 100
DEFAULT_DEPTH = 20


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class MarquezReader:
    """GETs against Marquez's API (``/api/v1``), with ``Authorization: Bearer <api_key>`` if given."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def get(self, path: str, **params: Any) -> Any:
        """The JSON answer of ``GET <url><path>``; :class:`MarquezReadError` naming what failed otherwise."""
        import requests

        target = f"{self.url}{path}"
        try:
            answer = self.session.get(target, params=params or None, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MarquezReadError(f"Marquez at {self.url} did not answer GET {path}: {type(exc).__name__}") from exc
        if answer.status_code in (401, 403):
            raise MarquezReadError(
                f"Marquez at {self.url} refused GET {path} (HTTP {answer.status_code}): check the API key"
            )
        if answer.status_code == 404:
            raise MarquezReadError(f"Marquez at {self.url} has no {path} (HTTP 404)")
        if answer.status_code >= 300:
            raise MarquezReadError(f"Marquez at {self.url} answered GET {path} with HTTP {answer.status_code}")
        try:
            return answer.json()
        except ValueError as exc:
            raise MarquezReadError(
                f"Marquez at {self.url} answered GET {path} with something that is not JSON"
            ) from exc

    def run(self, run_id: str) -> dict[str, Any]:
        """``GET /api/v1/jobs/runs/{id}``."""
        document: dict[str, Any] = self.get(f"/api/v1/jobs/runs/{_quote(run_id)}")
        return document

    def upstream(self, run_id: str, depth: int = DEFAULT_DEPTH) -> list[dict[str, Any]]:
        """``GET /api/v1/runlineage/upstream``: the run and the runs upstream of it."""
        document = self.get("/api/v1/runlineage/upstream", runId=run_id, depth=depth)
        runs: list[dict[str, Any]] = document.get("runs") or []
        return runs

    def dataset_versions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Every version of one dataset (``GET …/datasets/{name}/versions``, all pages), newest first."""
        path = f"/api/v1/namespaces/{_quote(namespace)}/datasets/{_quote(name)}/versions"
        versions: list[dict[str, Any]] = []
        while True:
            document = self.get(path, limit=VERSIONS_PAGE, offset=len(versions))
            page = document.get("versions") or []
            versions.extend(page)
            total = document.get("totalCount")
            if len(page) < VERSIONS_PAGE or (isinstance(total, int) and len(versions) >= total):
                return versions

    def dataset_names(self, namespace: str) -> list[str]:
        """Names of every dataset in a namespace (``GET /api/v1/namespaces/{ns}/datasets``, all pages)."""
        path = f"/api/v1/namespaces/{_quote(namespace)}/datasets"
        names: list[str] = []
        while True:
            document = self.get(path, limit=VERSIONS_PAGE, offset=len(names))
            page = document.get("datasets") or []
            names.extend(str(item.get("name", "")) for item in page)
            total = document.get("totalCount")
            if len(page) < VERSIONS_PAGE or (isinstance(total, int) and len(names) >= total):
                return names

    def version_created_by(self, namespace: str, name: str, run_id: str) -> dict[str, Any] | None:
        """The version of a dataset that ``run_id`` wrote (matched on ``createdByRun.id``)."""
        for version in self.dataset_versions(namespace, name):
            if (version.get("createdByRun") or {}).get("id") == run_id:
                return version
        return None


@dataclass(frozen=True)
class DatasetVersion:
    """One dataset version a run read: the lakeFS commit and the run that wrote it."""

    namespace: str
    name: str
    commit_id: str | None
    uri: str | None
    produced_by_run_id: str | None
    producer: RunLineage | None = None

    @property
    def registered_commit(self) -> bool:
        """Whether the version was written by a commit registration (data from outside airflow-mlrepo)."""
        return self.producer is not None and self.producer.job_name.startswith(REGISTRATION_JOB_PREFIX)


@dataclass(frozen=True)
class RunLineage:
    """A run, what it read (each input's commit, and recursively the run that wrote it)."""

    run_id: str
    job_namespace: str
    job_name: str
    state: str | None
    inputs: list[DatasetVersion] = field(default_factory=list)

    def input(self, namespace: str, name: str) -> DatasetVersion:
        for item in self.inputs:
            if (item.namespace, item.name) == (namespace, name):
                return item
        raise KeyError(f"run {self.run_id} read no {namespace} {name}")


def commit_of(version: dict[str, Any]) -> str | None:
    """The lakeFS commit of a Marquez dataset version (its ``version`` facet, else ``lakefs_commit``)."""
    facets = version.get("facets") or {}
    declared = (facets.get("version") or {}).get("datasetVersion")
    if declared:
        return str(declared)
    commit = (facets.get(LAKEFS_COMMIT_FACET) or {}).get("commitId")
    return str(commit) if commit else None


def _uri_of(version: dict[str, Any]) -> str | None:
    uri = ((version.get("facets") or {}).get(LAKEFS_COMMIT_FACET) or {}).get("uri")
    return str(uri) if uri else None


@dataclass(frozen=True)
class WrittenVersion:
    """The Marquez dataset version of one lakeFS commit and the run that wrote it."""

    namespace: str
    name: str
    commit_id: str | None
    run_id: str
    job_name: str


def writer_of(reader: MarquezReader, location: LakeFSLocation) -> WrittenVersion:
    """The dataset version of a lakeFS location in Marquez and the run that wrote it.

    A commit-id ref (``lakefs://repo/<commit>/path``) is looked up among the namespace's datasets named
    ``<branch>/<path>``; a branch or tag ref takes that dataset's newest version (the last commit
    Marquez saw written there). :class:`MarquezReadError` names what Marquez does not have.
    """
    from airflow_mlrepo.lineage.naming import dataset_name, dataset_namespace
    from airflow_mlrepo.locations import is_commit_id

    namespace = dataset_namespace(location.repository)
    path = location.path.strip("/")
    if is_commit_id(location.ref):
        names = [
            name
            for name in reader.dataset_names(namespace)
            if name.partition("/")[2] == path or (not path and "/" not in name)
        ]
    else:
        names = [dataset_name(location.ref, path)]
    for name in names:
        for version in reader.dataset_versions(namespace, name):
            commit = commit_of(version)
            if is_commit_id(location.ref) and commit != location.ref:
                continue
            created_by = version.get("createdByRun") or {}
            if not created_by.get("id"):
                continue
            return WrittenVersion(
                namespace=namespace,
                name=name,
                commit_id=commit,
                run_id=str(created_by["id"]),
                job_name=str((created_by.get("jobVersion") or {}).get("name", "")),
            )
    if is_commit_id(location.ref):
        where = f"no dataset <branch>/{path} of namespace {namespace} has a version at commit {location.ref}"
    else:
        where = f"dataset {names[0]} of namespace {namespace} has no version written by a run"
    raise MarquezReadError(f"Marquez at {reader.url} knows no writer of {location.uri}: {where}")


def trace(reader: MarquezReader, run_id: str, depth: int = DEFAULT_DEPTH) -> RunLineage:
    """Walk from ``run_id`` to the exact commits it read and the runs that wrote them (module docstring)."""
    runs = {str(item["run"]["id"]): item for item in reader.upstream(run_id, depth)}
    if run_id not in runs:
        raise MarquezReadError(f"Marquez's run lineage of {run_id} does not contain the run itself")
    versions: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def versions_of(namespace: str, name: str) -> list[dict[str, Any]]:
        if (namespace, name) not in versions:
            versions[(namespace, name)] = reader.dataset_versions(namespace, name)
        return versions[(namespace, name)]

    def walk(current: str, seen: frozenset[str]) -> RunLineage:
        item = runs[current]
        inputs = []
        for read in item.get("inputs") or []:
            namespace, name = str(read["namespace"]), str(read["name"])
            producer_id = read.get("producedByRunId")
            match = None
            for version in versions_of(namespace, name):
                created_by = (version.get("createdByRun") or {}).get("id")
                if (producer_id and created_by == producer_id) or (not producer_id and created_by is None):
                    match = version
                    break
            producer = None
            if producer_id and producer_id in runs and producer_id not in seen:
                producer = walk(str(producer_id), seen | {producer_id})
            inputs.append(
                DatasetVersion(
                    namespace=namespace,
                    name=name,
                    commit_id=commit_of(match) if match else None,
                    uri=_uri_of(match) if match else None,
                    produced_by_run_id=str(producer_id) if producer_id else None,
                    producer=producer,
                )
            )
        job = item.get("job") or {}
        return RunLineage(
            run_id=current,
            job_namespace=str(job.get("namespace", "")),
            job_name=str(job.get("name", "")),
            state=(item.get("run") or {}).get("status"),
            inputs=sorted(inputs, key=lambda version: (version.namespace, version.name)),
        )

    return walk(run_id, frozenset({run_id}))


def render(lineage: RunLineage, indent: str = "") -> list[str]:
    """The walk as indented text lines, one per run and one per input."""
    lines = [
        f"{indent}run {lineage.run_id}  {lineage.job_namespace}/{lineage.job_name}  {lineage.state or ''}".rstrip()
    ]
    for item in lineage.inputs:
        where = item.uri or f"{item.namespace} {item.name}"
        commit = f"commit {item.commit_id}" if item.commit_id else "commit unknown to Marquez"
        line = f"{indent}  read {where}  {commit}"
        if item.registered_commit:
            line += "  (committed outside airflow-mlrepo)"
        elif item.produced_by_run_id and item.producer is None:
            line += f"  written by run {item.produced_by_run_id}"
        lines.append(line)
        if item.producer is not None and not item.registered_commit:
            lines.extend(render(item.producer, indent + "    "))
    return lines


def to_dict(lineage: RunLineage) -> dict[str, Any]:
    """The walk as JSON-ready data (``mlrepo lineage show --json``)."""
    return {
        "runId": lineage.run_id,
        "job": {"namespace": lineage.job_namespace, "name": lineage.job_name},
        "state": lineage.state,
        "inputs": [
            {
                "namespace": item.namespace,
                "name": item.name,
                "commitId": item.commit_id,
                "uri": item.uri,
                "producedByRunId": item.produced_by_run_id,
                "producer": to_dict(item.producer) if item.producer is not None else None,
            }
            for item in lineage.inputs
        ],
    }


__all__ = [
    "DatasetVersion",
    "MarquezReader",
    "RunLineage",
    "WrittenVersion",
    "commit_of",
    "render",
    "to_dict",
    "trace",
    "writer_of",
]
