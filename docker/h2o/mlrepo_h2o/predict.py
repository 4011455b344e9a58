"""``python -m mlrepo_h2o.predict``: predict iris species with a pinned H2O POJO, through Java.

Downloads the POJO source and ``h2o-genmodel.jar`` from the pinned model location
(``MLREPO_MODEL``), compiles them with ``javac`` together with ``ScorePojo.java`` (shipped in this
package), writes the rows of every ``*.csv`` under input ``input_data`` to a features CSV and runs
``java ScorePojo``, which scores each row with the POJO. Uploads ``predictions.csv`` and
``summary.json`` to the output prefix, without committing. Python only moves data: the scoring
is Java. The same model and input commits give byte-identical outputs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, IrisDataError, format_number, write_csv
from mlrepo_iris.model_io import finish_inference, start_inference

from mlrepo_h2o.train import GENMODEL_JAR, POJO_CLASS, POJO_DIRECTORY

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_h2o.predict"
SCORER = "ScorePojo"
#: seconds for javac and for the scoring JVM.
JAVA_TIMEOUT = 600


def java_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise IrisDataError(f"{name} is not on PATH: scoring an H2O POJO needs a JDK (java and javac)")
    return found


def run_java(log: command.Progress, args: list[str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=JAVA_TIMEOUT, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip():
            log(f"{what}: {line}")
    if result.returncode != 0:
        raise IrisDataError(f"{what} failed with exit code {result.returncode}: {result.stderr.strip()[-2000:]}")


def predict(log: command.Progress) -> None:
    run = start_inference(log)
    for name in (f"{POJO_CLASS}.java", GENMODEL_JAR):
        run.model_file(f"{POJO_DIRECTORY}/{name}")
    classes: list[str] = []
    labels: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlrepo-h2o-") as workdir:
        root = run.write_model(Path(workdir) / "model")
        pojo = root / POJO_DIRECTORY
        scorer = Path(workdir) / f"{SCORER}.java"
        scorer.write_bytes(resources.files("mlrepo_h2o").joinpath(f"{SCORER}.java").read_bytes())
        classes_dir = Path(workdir) / "classes"
        jar = str(pojo / GENMODEL_JAR)
        run_java(
            log,
            [
                java_tool("javac"),
                "-J-Xmx1g",
                "-nowarn",
                "-cp",
                jar,
                "-d",
                str(classes_dir),
                str(pojo / f"{POJO_CLASS}.java"),
                str(scorer),
            ],
            "javac",
        )
        features = Path(workdir) / "features.csv"
        features.write_bytes(write_csv(FEATURES, ([format_number(v) for v in row] for row in run.data.features)))
        scored = Path(workdir) / "scored.csv"
        domain = Path(workdir) / "classes.txt"
        classpath = f"{classes_dir}:{jar}"
        run_java(
            log,
            [
                java_tool("java"),
                "-Xmx1g",
                "-cp",
                classpath,
                SCORER,
                POJO_CLASS,
                str(features),
                str(scored),
                str(domain),
            ],
            "java",
        )
        labels = scored.read_text(encoding="utf-8").splitlines()
        classes = domain.read_text(encoding="utf-8").splitlines()
    finish_inference(log, run, labels, classes)


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Predict iris species with the pinned H2O POJO through Java (container contract).", predict, argv)


if __name__ == "__main__":
    main()
