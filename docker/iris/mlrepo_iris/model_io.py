"""What every framework example's train and predict commands share, whatever the model format.

The framework examples (``docker/tensorflow``, ``docker/spark``, ``docker/pmml``, ``docker/h2o``)
train on the same iris CSVs as :mod:`mlrepo_iris.train` and write the same ``predictions.csv`` and
``summary.json`` as :mod:`mlrepo_iris.predict`; only the framework and the model's files differ.
A model is a set of files under the output prefix: one pickle, one ``.keras`` archive, a Spark ML
model directory of many files, a PMML document, a POJO's Java source and its runtime jar. This
module moves such a set between a local directory and lakeFS, checks hyperparameters, reads the
pinned inputs and writes the JSON documents, so that each framework module holds only the
framework's own code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlrepo_sdk.contract import PARAMS, Contract, ContractError, LakeFSLocation, read_contract
from mlrepo_sdk.lakefs_io import LakeFS, LakeFSError

from mlrepo_iris.dataset import (
    PREDICTIONS_HEADER,
    DataFile,
    InferenceSet,
    IrisDataError,
    TrainingSet,
    digest,
    read_inference,
    read_training,
    write_csv,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from mlrepo_iris.command import Progress

TRAINING_INPUT = "training_data"
INFERENCE_INPUT = "input_data"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"

#: A hyperparameter's type and default.
Spec = tuple[type, Any]


def hyperparameters(params: Mapping[str, Any], accepted: Mapping[str, Spec]) -> dict[str, Any]:
    """The effective hyperparameters: ``accepted`` defaults overridden by ``params``, type-checked.

    Unknown names and wrong types raise :class:`ContractError` naming ``MLREPO_PARAMS[name]``.
    Numbers given as strings (Airflow renders ``"{{ params.x }}"`` to text) are converted.
    """
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ContractError(
            f"{PARAMS} has unknown hyperparameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )
    effective: dict[str, Any] = {}
    for name, (kind, default) in accepted.items():
        value = params.get(name, default)
        effective[name] = _coerce(name, kind, value)
    return effective


def _coerce(name: str, kind: type, value: Any) -> Any:
    wrong = ContractError(f"{PARAMS}[{name!r}] must be {kind.__name__}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if isinstance(value, bool):
        raise wrong
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            raise wrong from None
    if kind is float and isinstance(value, int | float):
        return float(value)
    if kind is int and isinstance(value, int):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise wrong


@dataclass(frozen=True)
class TrainingRun:
    """A training command's contract, lakeFS client and the pinned training data, read."""

    contract: Contract
    lakefs: LakeFS
    files: list[DataFile]
    data: TrainingSet

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.data.labels))


def open_contract(log: Progress, *, inputs: Sequence[str], model: bool = False) -> tuple[Contract, LakeFS]:
    """Read and check the contract, log what it says (never the credentials) and connect to lakeFS."""
    contract = read_contract(os.environ, inputs=inputs, model=model)
    for line in contract.describe():
        log(line)
    for warning in contract.warnings():
        log.warn(warning)
    return contract, LakeFS(contract.lakefs)


def start_training(log: Progress, accepted: Mapping[str, Spec]) -> tuple[TrainingRun, dict[str, Any]]:
    """Read the contract and every ``*.csv`` of the pinned training data; check the hyperparameters."""
    contract, lakefs = open_contract(log, inputs=[TRAINING_INPUT])
    params = hyperparameters(contract.params, accepted)
    log(f"hyperparameters: {json.dumps(params, sort_keys=True)}")
    source = contract.inputs[TRAINING_INPUT]
    files = [DataFile(source.relative(path), content) for path, content in lakefs.read_all(source, suffix=".csv")]
    if not files:
        raise IrisDataError(f"no training data: no *.csv objects under {source.uri}")
    data = read_training(files)
    if not data.labels:
        raise IrisDataError(f"no training data: the CSV file(s) {', '.join(f.name for f in files)} have no rows")
    if len(set(data.labels)) < 2:
        raise IrisDataError(f"the training data has a single class ({data.labels[0]!r}): at least two are needed")
    log(f"read {len(files)} CSV file(s), {len(data.labels)} rows, from {source.uri}")
    return TrainingRun(contract, lakefs, files, data), params


def training_metrics(
    run: TrainingRun,
    *,
    framework: str,
    model_format: str,
    algorithm: str,
    model_files: Mapping[str, bytes],
    params: Mapping[str, Any],
    accuracy: float,
    versions: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` document every framework example writes next to its model."""
    return {
        "accuracy": accuracy,
        "class_counts": dict(sorted(Counter(run.data.labels).items())),
        "classes": run.classes,
        "framework": framework,
        "hyperparameters": dict(params),
        "model": {
            "algorithm": algorithm,
            "files": sorted(model_files),
            "format": model_format,
            "sha256": files_digest(model_files),
            **dict(extra or {}),
        },
        "n_samples": len(run.data.labels),
        "training_data": {"files": [f.name for f in run.files], "sha256": digest(run.files)},
        "versions": {"python": platform.python_version(), **dict(versions)},
    }


def files_digest(files: Mapping[str, bytes]) -> str:
    """sha256 of a set of files (``sha256sum``-style listing by name), as :func:`mlrepo_iris.dataset.digest`."""
    return digest([DataFile(name, content) for name, content in files.items()])


def read_directory(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (recursively), by ``/``-separated path relative to ``root``."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def upload_files(log: Progress, lakefs: LakeFS, output: LakeFSLocation, files: Mapping[str, bytes]) -> None:
    """Upload ``files`` (relative path -> bytes) under the output prefix, in path order; never commits.

    Empty files (Spark's ``_SUCCESS`` markers) are uploaded as zero-byte objects.
    """
    for name in sorted(files):
        path = output.join(name)
        lakefs.upload(output.repository, output.ref, path, files[name], allow_empty=True)
        log(f"wrote lakefs://{output.repository}/{output.ref}/{path} ({len(files[name])} bytes)")


def json_bytes(document: Mapping[str, Any]) -> bytes:
    """Sorted keys, two-space indent, trailing newline: equal documents give equal bytes."""
    return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()


@dataclass(frozen=True)
class InferenceRun:
    """A predict command's contract, lakeFS client, the pinned model's files and the pinned input."""

    contract: Contract
    lakefs: LakeFS
    model_uri: str
    model_files: dict[str, bytes]
    input_files: list[DataFile]
    data: InferenceSet

    def write_model(self, root: Path) -> Path:
        """Write the model's files under ``root`` (keeping their relative paths); return ``root``."""
        for name, content in self.model_files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return root

    def model_file(self, name: str) -> bytes:
        try:
            return self.model_files[name]
        except KeyError:
            raise IrisDataError(
                f"the model at {self.model_uri} has no {name!r} (it has: {', '.join(sorted(self.model_files))})"
            ) from None


def start_inference(log: Progress) -> InferenceRun:
    """Read the contract, every object of the pinned model prefix and every ``*.csv`` of the input."""
    contract, lakefs = open_contract(log, inputs=[INFERENCE_INPUT], model=True)
    assert contract.model is not None
    model = contract.model
    model_files = {
        model.relative(path): content
        for path, content in lakefs.read_all(model, suffix="")
        if model.relative(path) != METRICS_FILE
    }
    if not model_files:
        raise IrisDataError(f"no model: no objects under {model.uri}")
    log(f"read model {model.uri}: {len(model_files)} file(s), sha256 {files_digest(model_files)}")
    source = contract.inputs[INFERENCE_INPUT]
    files = [DataFile(source.relative(p), content) for p, content in lakefs.read_all(source, suffix=".csv")]
    if not files:
        raise IrisDataError(f"no input data: no *.csv objects under {source.uri}")
    data = read_inference(files)
    log(f"read {len(files)} CSV file(s), {len(data.ids)} rows, from {source.uri}")
    return InferenceRun(contract, lakefs, model.uri, model_files, files, data)


def finish_inference(log: Progress, run: InferenceRun, labels: Sequence[str], classes: Sequence[str]) -> None:
    """Write ``predictions.csv`` (``id,species`` in input order) and ``summary.json``; never commits."""
    if len(labels) != len(run.data.ids):
        raise IrisDataError(f"the model gave {len(labels)} predictions for {len(run.data.ids)} input rows")
    predictions = write_csv(PREDICTIONS_HEADER, zip(run.data.ids, labels, strict=True))
    counts = Counter(labels)
    summary = {
        "classes": list(classes),
        "counts": {name: counts.get(name, 0) for name in classes},
        "input_data": {"files": [f.name for f in run.input_files], "sha256": digest(run.input_files)},
        "model": {"files": sorted(run.model_files), "sha256": files_digest(run.model_files)},
        "n_predictions": len(labels),
        "predictions": {"file": PREDICTIONS_FILE, "sha256": hashlib.sha256(predictions).hexdigest()},
    }
    log(f"predicted {len(labels)} rows: {json.dumps(summary['counts'], sort_keys=True)}")
    output = run.contract.output
    upload_files(log, run.lakefs, output, {PREDICTIONS_FILE: predictions, SUMMARY_FILE: json_bytes(summary)})


__all__ = [
    "INFERENCE_INPUT",
    "METRICS_FILE",
    "TRAINING_INPUT",
    "InferenceRun",
    "LakeFSError",
    "TrainingRun",
    "files_digest",
    "finish_inference",
    "hyperparameters",
    "json_bytes",
    "read_directory",
    "start_inference",
    "start_training",
    "training_metrics",
    "upload_files",
]
