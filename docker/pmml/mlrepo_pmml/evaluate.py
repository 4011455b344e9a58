"""Score a PMML document with JPMML-Evaluator (``jpmml_evaluator``, in a JVM started through JPype)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlrepo_iris.dataset import FEATURES, LABEL, IrisDataError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

BACKEND = "jpype"


def predict_labels(document: Path, features: Sequence[Sequence[float]], *, where: str | None = None) -> list[str]:
    """The PMML model's ``species`` for each row of ``features`` (in order)."""
    import pandas as pd
    from jpmml_evaluator import make_evaluator

    try:
        evaluator = make_evaluator(str(document), backend=BACKEND).verify()
    except Exception as exc:
        raise IrisDataError(f"{where or document} is not a PMML model JPMML-Evaluator can load: {exc}") from None
    inputs = [field.getName() for field in evaluator.getInputFields()]
    missing = sorted(set(inputs) - set(FEATURES))
    if missing:
        raise IrisDataError(f"{where or document} needs input field(s) {', '.join(missing)}, not in the iris data")
    if not features:
        return []
    results = evaluator.evaluateAll(pd.DataFrame(list(features), columns=list(FEATURES), dtype="float64"))
    return [str(value) for value in results[LABEL]]


def class_names(document: bytes) -> list[str]:
    """The target's categories as the PMML ``DataDictionary`` lists them."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(document)
    for field in root.iter():
        if field.tag.endswith("DataField") and field.get("name") == LABEL:
            return [value.get("value", "") for value in field if value.tag.endswith("Value")]
    return []
