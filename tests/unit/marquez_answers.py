"""Recorded Marquez 0.51.1 answers of one train -> predict history, for the lineage walk's unit tests.

Shapes follow ``../shared/marquez-api/openapi.yml`` and what a real Marquez 0.51.1 answered:
``/runlineage/upstream`` lists runs with inputs ``{namespace, name, version, producedByRunId}``; a
run's ``inputDatasetVersions`` are ``{"datasetVersionId": {namespace, name, version}, "facets": {}}``;
the ``version`` a run lists is a name-based hash, while the version list's ``version`` is the row's
uuid (and ``…/versions/{hash}`` answers 404, Marquez issue #1977), so the walk must match each
dataset's version list on ``createdByRun.id``. Checked against a real Marquez 0.51.1.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

PREDICT_RUN = "0193a1b2-0000-7000-8000-00000000000a"
TRAIN_RUN = "0193a1b2-0000-7000-8000-00000000000b"
NEWER_TRAIN_RUN = "0193a1b2-0000-7000-8000-00000000000c"
INPUT_REGISTRATION = "5c1f63b0-2f43-5b45-9b1e-4d4a1c0b7a01"
DATA_REGISTRATION = "5c1f63b0-2f43-5b45-9b1e-4d4a1c0b7a02"
MODEL_COMMIT = "a" * 64
NEWER_MODEL_COMMIT = "b" * 64
INPUT_COMMIT = "c" * 64
DATA_COMMIT = "d" * 64
MODELS = ("lakefs://iris-models", "main/model")
BATCHES = ("lakefs://iris-input", "main/batches")
DATA = ("lakefs://iris-train", "main/data")
NAMESPACE = "mlrepo-demo"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _run(run_id: str, state: str = "COMPLETED") -> dict[str, Any]:
    return {
        "id": run_id,
        "createdAt": "2026-12-01T08:20:00.100Z",
        "updatedAt": "2026-12-01T08:20:04.300Z",
        "nominalStartTime": None,
        "nominalEndTime": None,
        "state": state,
        "startedAt": "2026-12-01T08:20:00.100Z",
        "endedAt": "2026-12-01T08:20:04.300Z",
        "durationMs": 4200,
        "args": {},
        "jobVersion": {"namespace": NAMESPACE, "name": "job", "version": "6a0b3f7e-61c5-3b6b-a0d6-2d3f0f1f0a11"},
        "inputDatasetVersions": [],
        "outputDatasetVersions": [],
        "facets": {},
    }


def _dataset_fields(dataset: tuple[str, str]) -> dict[str, Any]:
    """What a dataset item and a dataset-version item of Marquez 0.51.1 have in common."""
    namespace, name = dataset
    return {
        "id": {"namespace": namespace, "name": name},
        "type": "DB_TABLE",
        "name": name,
        "physicalName": name,
        "createdAt": "2026-12-01T08:20:04.300Z",
        "namespace": namespace,
        "sourceName": "default",
        "fields": [],
        "tags": [],
        "description": None,
    }


def _version(dataset: tuple[str, str], commit: str, created_by: str, hash_: str) -> dict[str, Any]:
    """A version-list item: its ``version`` is the row's uuid, not the hash runs list (``hash_``)."""
    namespace, name = dataset
    repository = namespace.removeprefix("lakefs://")
    branch, _, path = name.partition("/")
    return {
        **_dataset_fields(dataset),
        "version": "24e4cd51-9049-4248-" + hash_[-17:],
        "lifecycleState": "",
        "currentSchemaVersion": "fc693c59-2d0b-4f57-9a7e-1d3f5a0c4e21",
        "createdByRun": _run(created_by),
        "facets": {
            "version": {
                "_producer": "https://github.com/airflow-mlrepo/airflow-mlrepo",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
                "datasetVersion": commit,
            },
            "lakefs_commit": {
                "repository": repository,
                "branch": branch,
                "commitId": commit,
                "path": path,
                "uri": f"lakefs://{repository}/{commit}/{path}",
            },
        },
    }


def _upstream_run(run_id: str, job: str, inputs: list[tuple[tuple[str, str], str, str]]) -> dict[str, Any]:
    return {
        "job": {"namespace": NAMESPACE, "name": job, "version": "6a0b3f7e-61c5-3b6b-a0d6-2d3f0f1f0a11"},
        "run": {
            "id": run_id,
            "start": "2026-12-01T08:20:00.100Z",
            "end": "2026-12-01T08:20:04.300Z",
            "status": "COMPLETED",
        },
        "inputs": [
            {"namespace": ds[0], "name": ds[1], "version": hash_, "producedByRunId": producer}
            for ds, hash_, producer in inputs
        ],
    }


def _dataset(dataset: tuple[str, str], current_version: str) -> dict[str, Any]:
    """A ``GET /api/v1/namespaces/{ns}/datasets`` item (Dataset in openapi.yml, as 0.51.1 answers)."""
    return {
        **_dataset_fields(dataset),
        "updatedAt": "2026-12-01T08:30:04.300Z",
        "lastModifiedAt": None,
        "lastLifecycleState": "",
        "currentVersion": current_version,
        "columnLineage": None,
        "facets": {},
        "deleted": False,
    }


def _versions_route(dataset: tuple[str, str]) -> str:
    return f"GET /api/v1/namespaces/{_q(dataset[0])}/datasets/{_q(dataset[1])}/versions?limit=100&offset=0"


def answers() -> dict[str, tuple[int, Any]]:
    """Route -> (status, body): a prediction that read model commit a…a (trained by TRAIN_RUN on data
    commit d…d) and input commit c…c, while a newer model b…b (NEWER_TRAIN_RUN) is the current version."""
    model_hash, input_hash, data_hash = (
        "3f1c4f8e-6f0d-3a4b-9d43-0b8b0f0e1a01",
        "3f1c4f8e-6f0d-3a4b-9d43-0b8b0f0e1a02",
        "3f1c4f8e-6f0d-3a4b-9d43-0b8b0f0e1a03",
    )
    upstream = {
        "runs": [
            _upstream_run(
                PREDICT_RUN,
                "iris_inference.predict",
                [(MODELS, model_hash, TRAIN_RUN), (BATCHES, input_hash, INPUT_REGISTRATION)],
            ),
            _upstream_run(TRAIN_RUN, "iris_training.train", [(DATA, data_hash, DATA_REGISTRATION)]),
            _upstream_run(INPUT_REGISTRATION, "lakefs_commit/main/batches", []),
            _upstream_run(DATA_REGISTRATION, "lakefs_commit/main/data", []),
        ]
    }
    model_versions = [
        _version(MODELS, NEWER_MODEL_COMMIT, NEWER_TRAIN_RUN, "3f1c4f8e-6f0d-3a4b-9d43-0b8b0f0e1a09"),
        _version(MODELS, MODEL_COMMIT, TRAIN_RUN, model_hash),
    ]
    training = _upstream_run(TRAIN_RUN, "iris_training.train", [(DATA, data_hash, DATA_REGISTRATION)])
    registration = _upstream_run(DATA_REGISTRATION, "lakefs_commit/main/data", [])
    newer_training = _upstream_run(NEWER_TRAIN_RUN, "iris_training.train", [(DATA, data_hash, DATA_REGISTRATION)])
    models_namespace = f"GET /api/v1/namespaces/{_q(MODELS[0])}/datasets?limit=100&offset=0"
    return {
        f"GET /api/v1/runlineage/upstream?runId={PREDICT_RUN}&depth=20": (200, upstream),
        f"GET /api/v1/runlineage/upstream?runId={TRAIN_RUN}&depth=20": (200, {"runs": [training, registration]}),
        f"GET /api/v1/runlineage/upstream?runId={NEWER_TRAIN_RUN}&depth=20": (
            200,
            {"runs": [newer_training, registration]},
        ),
        _versions_route(("lakefs://iris-models", "backtest-1/model")): (200, {"totalCount": 0, "versions": []}),
        models_namespace: (
            200,
            {
                "totalCount": 2,
                "datasets": [
                    _dataset(("lakefs://iris-models", "backtest-1/model"), "0b6e0e1c-5f59-4a53-8a1e-6b7c1c0f9d10"),
                    _dataset(MODELS, model_versions[0]["version"]),
                ],
            },
        ),
        _versions_route(MODELS): (200, {"totalCount": 2, "versions": model_versions}),
        _versions_route(BATCHES): (
            200,
            {"totalCount": 1, "versions": [_version(BATCHES, INPUT_COMMIT, INPUT_REGISTRATION, input_hash)]},
        ),
        _versions_route(DATA): (
            200,
            {"totalCount": 1, "versions": [_version(DATA, DATA_COMMIT, DATA_REGISTRATION, data_hash)]},
        ),
    }
