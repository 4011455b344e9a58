"""``python -m mlrepo_h2o.train``: train an H2O GBM on the pinned training data and export it as a POJO.

Starts H2O-3 in a local JVM (one thread, loopback only, a free port, its files under a temporary
directory), fits an ``H2OGradientBoostingEstimator`` with a fixed seed on every ``*.csv`` under input
``training_data`` (path order), and uploads to the output prefix, without committing:

* ``pojo/iris_gbm.java``: the POJO, the model as plain Java source (H2O writes its generation time
  and a model UUID into it, so the source differs between trainings; its predictions do not);
* ``pojo/h2o-genmodel.jar``: the runtime the POJO compiles and runs against, served by the local
  H2O server (the same H2O version that wrote the POJO);
* ``metrics.json``: training accuracy, counts, hyperparameters, the POJO class, versions.

The H2O server is shut down before the command exits, also when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrepo_iris import command
from mlrepo_iris.dataset import FEATURES, LABEL, IrisDataError
from mlrepo_iris.model_io import (
    METRICS_FILE,
    json_bytes,
    read_directory,
    start_training,
    training_metrics,
    upload_files,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import FrameType

PROG = "mlrepo_h2o.train"
POJO_DIRECTORY = "pojo"
POJO_CLASS = "iris_gbm"
GENMODEL_JAR = "h2o-genmodel.jar"
FRAMEWORK = "h2o"
MODEL_FORMAT = "h2o-pojo"
ALGORITHM = "h2o.estimators.H2OGradientBoostingEstimator"
HYPERPARAMETERS: dict[str, tuple[type, Any]] = {
    "ntrees": (int, 30),
    "max_depth": (int, 3),
    "learn_rate": (float, 0.1),
    "seed": (int, 0),
}


def free_port() -> int:
    """A free even port on loopback (H2O also takes the next one)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1]) & ~1
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 1):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise OSError("no free pair of ports on 127.0.0.1 for the local H2O server")


@contextlib.contextmanager
def local_h2o(workdir: Path) -> Iterator[Any]:
    """A private H2O-3 server in a local JVM (its files under ``workdir``), stopped on exit.

    H2O starts its JVM in a session of its own, so killing this command's process group (a task
    timeout or kill under the local runner, a pod's SIGTERM) would not reach it. SIGTERM is turned
    into a normal exit, and on the way out the server is asked to shut down and then every process
    whose command line holds ``workdir`` (the server's ``-ice_root``) is killed, also when the
    signal arrived while ``h2o.init`` was still starting it.
    """
    import h2o

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        h2o.init(
            ip="127.0.0.1",
            port=free_port(),
            nthreads=1,
            max_mem_size="1G",
            bind_to_localhost=True,
            ice_root=str(workdir),
            log_dir=str(workdir / "logs"),
            verbose=False,
            strict_version_check=True,
        )
        h2o.no_progress()
        yield h2o
    finally:
        with contextlib.suppress(Exception):
            h2o.cluster().shutdown()
        kill_processes_mentioning(str(workdir))


def kill_processes_mentioning(marker: str) -> None:
    """SIGKILL every process of ours whose command line contains ``marker`` (Linux ``/proc``)."""
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if int(entry.name) != os.getpid() and marker.encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def train(log: command.Progress) -> None:
    run, params = start_training(log, HYPERPARAMETERS)
    with tempfile.TemporaryDirectory(prefix="mlrepo-h2o-") as workdir, local_h2o(Path(workdir)) as h2o:
        from h2o.estimators import H2OGradientBoostingEstimator

        frame = h2o.H2OFrame(
            python_obj=[[*features, label] for features, label in zip(run.data.features, run.data.labels, strict=True)],
            column_names=[*FEATURES, LABEL],
            column_types=[*(["real"] * len(FEATURES)), "enum"],
        )
        model = H2OGradientBoostingEstimator(model_id=POJO_CLASS, distribution="multinomial", **params)
        model.train(x=list(FEATURES), y=LABEL, training_frame=frame)
        predicted = model.predict(frame)["predict"].as_data_frame(use_pandas=False, header=False)
        accuracy = sum(row[0] == label for row, label in zip(predicted, run.data.labels, strict=True)) / len(
            run.data.labels
        )
        target = Path(workdir) / POJO_DIRECTORY
        target.mkdir()
        model.download_pojo(path=str(target), get_genmodel_jar=True, genmodel_name=GENMODEL_JAR)
        found = read_directory(target)
        if f"{POJO_CLASS}.java" not in found or GENMODEL_JAR not in found:
            raise IrisDataError(f"H2O wrote {', '.join(sorted(found)) or 'nothing'} instead of the POJO and its jar")
        files = {f"{POJO_DIRECTORY}/{name}": data for name, data in found.items()}
        version = h2o.__version__
    log(f"trained {ALGORITHM} on {len(run.data.labels)} samples: training accuracy {accuracy:.4f}; exported a POJO")
    metrics = training_metrics(
        run,
        framework=FRAMEWORK,
        model_format=MODEL_FORMAT,
        algorithm=ALGORITHM,
        model_files=files,
        params=params,
        accuracy=accuracy,
        versions={"h2o": version},
        extra={"pojo_class": POJO_CLASS, "directory": POJO_DIRECTORY, "runtime_jar": GENMODEL_JAR},
    )
    upload_files(log, run.lakefs, run.contract.output, {**files, METRICS_FILE: json_bytes(metrics)})


def main(argv: Sequence[str] | None = None) -> None:
    command.run(PROG, "Train an H2O GBM and export it as a POJO (container contract).", train, argv)


if __name__ == "__main__":
    main()
