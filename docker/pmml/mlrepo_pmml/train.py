"""``python -m mlrepo_pmml.train``: fit a scikit-learn pipeline and export it as PMML.

Reads every ``*.csv`` under input ``training_data`` in path order, fits a
``sklearn2pmml.pipeline.PMMLPipeline`` (``StandardScaler`` -> ``LogisticRegression``) and converts
it with ``sklearn2pmml`` (JPMML-SkLearn, run on the local Java runtime). Uploads to the output
prefix, without committing:

* ``model.pmml``: the PMML 4.4 XML document. Its ``Header/Timestamp`` is removed so that equal
  pipelines give byte-identical documents;
* ``metrics.json``: training accuracy of the PMML document itself (scored with JPMML-Evaluator),
  counts, hyperparameters, versions.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, LABEL, IrisDataError
from mlrepo_iris.model_io import METRICS_FILE, json_bytes, start_training, training_metrics, upload_files

from mlrepo_pmml.evaluate import predict_labels

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_pmml.train"
MODEL_FILE = "model.pmml"
FRAMEWORK = "scikit-learn+sklearn2pmml"
MODEL_FORMAT = "pmml"
ALGORITHM = "sklearn.linear_model.LogisticRegression (PMML RegressionModel)"
HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "C": (float, 1.0),
    "max_iter": (int, 1000),
}
_TIMESTAMP = re.compile(rb"\s*<Timestamp>.*?</Timestamp>", re.S)


def without_timestamp(document: bytes) -> bytes:
    """The PMML document without its export time (``Header/Timestamp`` is optional in PMML)."""
    return _TIMESTAMP.sub(b"", document, count=1)


def train(log: command.Progress) -> None:
    run, params = start_training(log, HYPERPARAMETERS)
    import pandas as pd
    import sklearn
    import sklearn2pmml
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn2pmml.pipeline import PMMLPipeline

    X = pd.DataFrame(run.data.features, columns=list(FEATURES), dtype="float64")
    # object dtype: JPMML-SkLearn cannot read pandas 3's "str" dtype; the name becomes the PMML target.
    y = pd.Series(run.data.labels, name=LABEL, dtype=object)
    pipeline = PMMLPipeline(
        [
            ("scaler", StandardScaler()),
            ("classifier", LogisticRegression(C=params["C"], max_iter=params["max_iter"])),
        ]
    )
    pipeline.fit(X, y)
    with tempfile.TemporaryDirectory(prefix="mlrepo-pmml-") as workdir:
        path = Path(workdir) / MODEL_FILE
        try:
            sklearn2pmml.sklearn2pmml(pipeline, str(path))
        except RuntimeError as exc:
            raise IrisDataError(f"sklearn2pmml could not convert the pipeline to PMML: {exc}") from None
        document = without_timestamp(path.read_bytes())
        path.write_bytes(document)
        predicted = predict_labels(path, run.data.features)
    accuracy = sum(p == t for p, t in zip(predicted, run.data.labels, strict=True)) / len(run.data.labels)
    log(f"exported {ALGORITHM} to PMML ({len(document)} bytes): training accuracy of the PMML {accuracy:.4f}")
    metrics = training_metrics(
        run,
        framework=FRAMEWORK,
        model_format=MODEL_FORMAT,
        algorithm=ALGORITHM,
        model_files={MODEL_FILE: document},
        params=params,
        accuracy=accuracy,
        versions={"scikit-learn": sklearn.__version__, "sklearn2pmml": sklearn2pmml.__version__},
    )
    upload_files(log, run.lakefs, run.contract.output, {MODEL_FILE: document, METRICS_FILE: json_bytes(metrics)})


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Fit a scikit-learn pipeline and export it as PMML (container contract).", train, argv)


if __name__ == "__main__":
    main()
