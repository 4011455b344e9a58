"""``python -m mlrepo_iris.predict``: predict iris species with a pinned model.

Loads ``model.pkl`` from the pinned model location (``MLREPO_MODEL``, a prefix, or the
``.pkl`` object itself), reads every ``*.csv`` under input ``input_data``
(``MLREPO_INPUT_INPUT_DATA``; columns ``id`` and the four features) in path order, and uploads to
the output prefix (``MLREPO_OUTPUT``), without committing:

* ``predictions.csv``: ``id,species``, one row per input row, in input order (files by path,
  then rows as in the file);
* ``summary.json``: counts per class, the sha256 of the model and of the input data. Sorted keys,
  no times.

The same model and input commits give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import Counter
from typing import TYPE_CHECKING, Any

from mlrepo_iris import command
from mlrepo_iris.dataset import (
    FEATURES,
    PREDICTIONS_HEADER,
    DataFile,
    IrisDataError,
    digest,
    read_inference,
    write_csv,
)
from mlrepo_iris.model_io import json_bytes, open_contract
from mlrepo_iris.train import MODEL_FILE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlrepo_sdk.contract import LakeFSLocation

PROG = "mlrepo_iris.predict"
INPUT = "input_data"
PREDICTIONS_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"


def model_path(location: LakeFSLocation) -> str:
    """The model object: the location itself if it names a ``.pkl``, else ``model.pkl`` under it."""
    return location.path if location.path.endswith(".pkl") else location.join(MODEL_FILE)


def load_model(data: bytes, where: str) -> Any:
    """Unpickle and check a model. Only load models from a repository you trust: pickle runs code."""
    try:
        model = pickle.loads(data)  # our own model, read from a pinned commit
    except Exception as exc:
        raise IrisDataError(f"{where} is not a readable pickled model: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(model, "predict", None)) or not hasattr(model, "classes_"):
        raise IrisDataError(f"{where} holds a {type(model).__name__}, not a fitted scikit-learn classifier")
    n_features = getattr(model, "n_features_in_", len(FEATURES))
    if n_features != len(FEATURES):
        raise IrisDataError(f"{where} expects {n_features} features, the iris data has {len(FEATURES)}")
    return model


def predict_files(model: Any, model_bytes: bytes, files: Sequence[DataFile]) -> tuple[bytes, dict[str, Any]]:
    """``predictions.csv`` bytes and the summary document for ``files`` (in order)."""
    import numpy as np  # here, like scikit-learn in train.fit: a broken contract fails fast

    batch = read_inference(files)
    labels: list[str] = []
    if batch.ids:
        labels = [str(label) for label in model.predict(np.asarray(batch.features, dtype=np.float64))]
    predictions = write_csv(PREDICTIONS_HEADER, zip(batch.ids, labels, strict=True))
    counts = Counter(labels)
    classes = [str(c) for c in model.classes_]
    summary = {
        "classes": classes,
        "counts": {name: counts.get(name, 0) for name in classes},
        "input_data": {"files": [f.name for f in files], "sha256": digest(files)},
        "model": {"file": MODEL_FILE, "sha256": hashlib.sha256(model_bytes).hexdigest()},
        "n_predictions": len(labels),
        "predictions": {"file": PREDICTIONS_FILE, "sha256": hashlib.sha256(predictions).hexdigest()},
    }
    return predictions, summary


def predict(log: command.Progress) -> None:
    contract, lakefs = open_contract(log, inputs=[INPUT], model=True)
    assert contract.model is not None
    location = contract.model
    path = model_path(location)
    model_uri = f"lakefs://{location.repository}/{location.ref}/{path}"
    model_bytes = lakefs.read(location.repository, location.ref, path)
    model = load_model(model_bytes, model_uri)
    log(f"loaded {type(model).__name__} from {model_uri} (sha256 {hashlib.sha256(model_bytes).hexdigest()})")
    source = contract.inputs[INPUT]
    files = [DataFile(source.relative(p), content) for p, content in lakefs.read_all(source, suffix=".csv")]
    if not files:
        raise IrisDataError(f"no input data: no *.csv objects under {source.uri}")
    log(f"read {len(files)} CSV file(s), {sum(len(f.content) for f in files)} bytes, from {source.uri}")
    predictions, summary = predict_files(model, model_bytes, files)
    log(f"predicted {summary['n_predictions']} rows: {json.dumps(summary['counts'], sort_keys=True)}")
    output = contract.output
    for name, data in ((PREDICTIONS_FILE, predictions), (SUMMARY_FILE, json_bytes(summary))):
        lakefs.upload(output.repository, output.ref, output.join(name), data)
        log(f"wrote lakefs://{output.repository}/{output.ref}/{output.join(name)} ({len(data)} bytes)")


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species with the pinned model (see the container contract).", predict, argv)


if __name__ == "__main__":
    main()
