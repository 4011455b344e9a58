"""``python -m mlrepo_iris.predict_datums``: predict iris species for each datum of a datum pipeline task.

The task's datums come in ``MLREPO_DATUMS`` (docs/concepts/datums.md): each names its CSV files in
input ``input_data`` (at the pinned commit of ``MLREPO_INPUT_INPUT_DATA``) and its own output
prefix. The model (``MLREPO_MODEL``, the cross input every datum sees whole) is loaded once. Each
datum gets ``predictions.csv`` (``id,species``) under its output prefix, computed from that datum's
files alone, so a datum's output is the same bytes whether it is processed with all the others or
alone.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from mlrepo_sdk.contract import read_contract, read_datums
from mlrepo_sdk.lakefs_io import LakeFS

from mlrepo_iris import command
from mlrepo_iris.dataset import DataFile, IrisDataError
from mlrepo_iris.predict import INPUT, PREDICTIONS_FILE, load_model, model_path, predict_files

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_iris.predict_datums"


def predict_datums(log: command.Progress) -> None:
    contract = read_contract(os.environ, inputs=[INPUT], model=True)
    datums = read_datums(os.environ)
    for line in contract.describe():
        log(line)
    lakefs = LakeFS(contract.lakefs)
    assert contract.model is not None
    location = contract.model
    path = model_path(location)
    model_bytes = lakefs.read(location.repository, location.ref, path)
    model = load_model(model_bytes, f"lakefs://{location.repository}/{location.ref}/{path}")
    log(f"loaded {type(model).__name__} (sha256 {hashlib.sha256(model_bytes).hexdigest()}); {len(datums)} datum(s)")
    source = contract.inputs[INPUT]
    for datum in datums:
        paths = [p for p in datum.files.get(INPUT, []) if p.lower().endswith(".csv")]
        if not paths:
            raise IrisDataError(f"datum {datum.id!r} holds no *.csv file of input {INPUT}")
        files = [DataFile(source.relative(p), lakefs.read(source.repository, source.ref, p)) for p in paths]
        predictions, summary = predict_files(model, model_bytes, files)
        out = datum.output
        lakefs.upload(out.repository, out.ref, out.join(PREDICTIONS_FILE), predictions)
        log(f"datum {datum.id}: {summary['n_predictions']} predictions -> {out.uri}{PREDICTIONS_FILE}")


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species for each datum of a datum pipeline task.", predict_datums, argv)


if __name__ == "__main__":
    main()
