"""The iris CSV formats: training rows (features + ``species``) and inference rows (``id`` + features).

Parsing is strict and its errors name the object and line, so that a bad commit in the data
repository is easy to find. Content hashes are over bytes, so equal data hashes equal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

FEATURES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"
ID = "id"
TRAINING_HEADER: tuple[str, ...] = (*FEATURES, LABEL)
INFERENCE_HEADER: tuple[str, ...] = (ID, *FEATURES)
PREDICTIONS_HEADER: tuple[str, ...] = (ID, LABEL)


class IrisDataError(Exception):
    """The data is missing or not in the expected CSV format."""


@dataclass(frozen=True)
class DataFile:
    """One CSV object read from lakeFS: its name relative to the input location, and its bytes."""

    name: str
    content: bytes


@dataclass(frozen=True)
class TrainingSet:
    features: list[list[float]]
    labels: list[str]


@dataclass(frozen=True)
class InferenceSet:
    ids: list[str]
    features: list[list[float]]


def digest(files: Sequence[DataFile]) -> str:
    """sha256 of a set of files: of the ``sha256sum``-style listing ``<sha256>  <name>\\n`` sorted by name."""
    listing = "".join(
        f"{hashlib.sha256(item.content).hexdigest()}  {item.name}\n" for item in sorted(files, key=lambda f: f.name)
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def read_training(files: Sequence[DataFile]) -> TrainingSet:
    """All rows of all ``files``, in the given order (callers sort by path)."""
    features: list[list[float]] = []
    labels: list[str] = []
    for item in files:
        for line, row in _rows(item, required=TRAINING_HEADER):
            features.append(_features(item, line, row))
            label = row[LABEL].strip()
            if not label:
                raise IrisDataError(f"{item.name} line {line}: empty {LABEL!r}")
            labels.append(label)
    return TrainingSet(features=features, labels=labels)


def read_inference(files: Sequence[DataFile]) -> InferenceSet:
    """All rows of all ``files`` in the given order; ``id`` values must be unique across files."""
    ids: list[str] = []
    features: list[list[float]] = []
    seen: dict[str, str] = {}
    for item in files:
        for line, row in _rows(item, required=INFERENCE_HEADER):
            row_id = row[ID].strip()
            if not row_id:
                raise IrisDataError(f"{item.name} line {line}: empty {ID!r}")
            where = f"{item.name} line {line}"
            if row_id in seen:
                raise IrisDataError(f"{where}: duplicate {ID} {row_id!r} (first at {seen[row_id]})")
            seen[row_id] = where
            ids.append(row_id)
            features.append(_features(item, line, row))
    return InferenceSet(ids=ids, features=features)


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """CSV bytes with ``\\n`` line ends: the same rows always give the same bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def format_number(value: float) -> str:
    """The shortest text that reads back as the same float (``5.1``, not ``5.0999999``)."""
    return repr(float(value))


def _rows(item: DataFile, *, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = item.content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IrisDataError(f"{item.name} is not UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise IrisDataError(
            f"{item.name}: missing column(s) {', '.join(missing)} (header is {','.join(header) or 'empty'}; "
            f"expected {','.join(required)})"
        )
    reader.fieldnames = header
    for row in reader:
        if None in row:
            raise IrisDataError(f"{item.name} line {reader.line_num}: more values than columns")
        if any(value is None for value in row.values()):
            raise IrisDataError(f"{item.name} line {reader.line_num}: fewer values than columns")
        yield reader.line_num, row


def _features(item: DataFile, line: int, row: dict[str, str]) -> list[float]:
    values: list[float] = []
    for name in FEATURES:
        text = row[name].strip()
        try:
            value = float(text)
        except ValueError:
            raise IrisDataError(f"{item.name} line {line}: {name} is not a number: {text!r}") from None
        if not math.isfinite(value):
            raise IrisDataError(f"{item.name} line {line}: {name} is not a finite number: {text!r}")
        values.append(value)
    return values
