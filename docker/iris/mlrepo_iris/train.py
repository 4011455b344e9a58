"""``python -m mlrepo_iris.train``: train an iris classifier on the pinned training data.

Reads every ``*.csv`` under input ``training_data`` (``MLREPO_INPUT_TRAINING_DATA``) in path
order, fits a scikit-learn ``LogisticRegression`` (hyperparameters from ``MLREPO_PARAMS``) and
uploads to the output prefix (``MLREPO_OUTPUT``), without committing:

* ``model.pkl``: the fitted estimator, pickled (protocol 5);
* ``metrics.json``: training accuracy, sample and class counts, the effective hyperparameters,
  the sha256 of the training data and of the model, library versions. Sorted keys, no times.

The same training data and hyperparameters in the same image give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import platform
from collections import Counter
from typing import TYPE_CHECKING, Any

from mlrepo_sdk.contract import PARAMS, ContractError

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, DataFile, IrisDataError, digest, read_training
from mlrepo_iris.model_io import json_bytes, open_contract

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sklearn.linear_model import LogisticRegression

PROG = "mlrepo_iris.train"
INPUT = "training_data"
MODEL_FILE = "model.pkl"
METRICS_FILE = "metrics.json"
PICKLE_PROTOCOL = 5
ALGORITHM = "sklearn.linear_model.LogisticRegression"

#: accepted hyperparameters: name -> (type, default). Anything else in MLREPO_PARAMS is an error.
HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "C": (float, 1.0),
    "max_iter": (int, 1000),
    "tol": (float, 1e-4),
    "fit_intercept": (bool, True),
    "random_state": (int, 0),
}


def hyperparameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The effective hyperparameters: defaults overridden by ``params``, checked."""
    unknown = sorted(set(params) - set(HYPERPARAMETERS))
    if unknown:
        raise ContractError(
            f"{PARAMS} has unknown hyperparameter(s) {', '.join(unknown)}; accepted: {', '.join(HYPERPARAMETERS)}"
        )
    effective: dict[str, Any] = {}
    for name, (kind, default) in HYPERPARAMETERS.items():
        value = params.get(name, default)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise ContractError(f"{PARAMS}[{name!r}] must be {kind.__name__}, got {value!r}")
        effective[name] = value
    for name in ("C", "tol"):
        if not effective[name] > 0:
            raise ContractError(f"{PARAMS}[{name!r}] must be > 0, got {effective[name]!r}")
    if effective["max_iter"] < 1:
        raise ContractError(f"{PARAMS}['max_iter'] must be >= 1, got {effective['max_iter']!r}")
    return effective


def fit(files: Sequence[DataFile], params: Mapping[str, Any]) -> tuple[LogisticRegression, bytes, dict[str, Any]]:
    """Fit on ``files`` (in order); return the model, its pickle and the metrics document."""
    training = read_training(files)
    if not training.labels:
        raise IrisDataError(f"no training data: the CSV file(s) {', '.join(f.name for f in files)} have no rows")
    classes = sorted(set(training.labels))
    if len(classes) < 2:
        raise IrisDataError(f"the training data has a single class ({classes[0]!r}): at least two are needed")
    # Imported here, not at the top: scikit-learn takes seconds to import, and a broken contract
    # or bad data should be reported at once.
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(training.features, dtype=np.float64)
    y = np.asarray(training.labels)
    model = LogisticRegression(**params)
    model.fit(X, y)
    model_bytes = model_pickle(model)
    metrics = {
        "accuracy": float(model.score(X, y)),
        "class_counts": dict(sorted(Counter(training.labels).items())),
        "classes": [str(c) for c in model.classes_],
        "features": list(FEATURES),
        "hyperparameters": dict(params),
        "model": {
            "algorithm": ALGORITHM,
            "file": MODEL_FILE,
            "n_iter": int(np.max(model.n_iter_)),
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
        },
        "n_features": len(FEATURES),
        "n_samples": len(training.labels),
        "training_data": {
            "files": [f.name for f in files],
            "sha256": digest(files),
        },
        "versions": {
            "numpy": np.__version__,
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
        },
    }
    return model, model_bytes, metrics


def model_pickle(model: object) -> bytes:
    """Pickle ``model`` so that equal models give equal bytes, whatever the process did before.

    A standard pickle's memo refers back to objects already written *by identity*, so whether two
    equal strings (say the attribute name ``'C'`` and numpy's ``'C'`` array order) are one object
    or two, which depends on the history of the process, changes the bytes. The pickler's fast
    mode keeps no memo: every value is written out in full, and the bytes depend only on the values.
    (A model has no reference cycles, which fast mode cannot write.)
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PICKLE_PROTOCOL)
    pickler.fast = True
    pickler.dump(model)
    return buffer.getvalue()


def train(log: command.Progress) -> None:
    contract, lakefs = open_contract(log, inputs=[INPUT])
    params = hyperparameters(contract.params)
    log(f"hyperparameters: {json.dumps(params, sort_keys=True)}")
    source = contract.inputs[INPUT]
    files = [DataFile(source.relative(path), content) for path, content in lakefs.read_all(source, suffix=".csv")]
    if not files:
        raise IrisDataError(f"no training data: no *.csv objects under {source.uri}")
    log(f"read {len(files)} CSV file(s), {sum(len(f.content) for f in files)} bytes, from {source.uri}")
    _, model_bytes, metrics = fit(files, params)
    log(
        f"trained {ALGORITHM} on {metrics['n_samples']} samples, classes {', '.join(metrics['classes'])}: "
        f"training accuracy {metrics['accuracy']:.4f}"
    )
    output = contract.output
    for name, data in ((MODEL_FILE, model_bytes), (METRICS_FILE, json_bytes(metrics))):
        lakefs.upload(output.repository, output.ref, output.join(name), data)
        log(f"wrote lakefs://{output.repository}/{output.ref}/{output.join(name)} ({len(data)} bytes)")


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Train the iris classifier on the pinned training data (container contract).", train, argv)


if __name__ == "__main__":
    main()
