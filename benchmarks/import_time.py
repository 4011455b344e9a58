"""Benchmark: how long importing the provider's modules takes, idle and with the CPU under load.

Each measurement is a fresh interpreter running ``python -X importtime -c "import <module>"``
(Python's own per-module import timer), repeated ``--repeat`` times; the median wall time of the
whole import is reported with what the heaviest packages cost (cumulative microseconds of the
top-level packages Python reports). ``--load N`` runs N busy-loop processes during the measurement
(what a loaded two-core CI machine or a laptop building images looks like).

    python benchmarks/import_time.py                  # idle
    python benchmarks/import_time.py --load 4         # four CPU hogs beside it
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import statistics
import subprocess
import sys
import time

MODULES = (
    "airflow_mlrepo",
    "airflow_mlrepo.hooks.lakefs",
    "airflow_mlrepo.sensors.lakefs",
    "airflow_mlrepo.operators.training",
    "airflow_mlrepo.operators.inference",
    "airflow_mlrepo.provenance_view.plugin",
    "airflow_mlrepo.cli",
)
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)$")
#: Packages whose cumulative import time is reported (the first, outermost import of each).
TRACKED = (
    "airflow",
    "airflow.sdk",
    "airflow.providers.cncf.kubernetes.operators.pod",
    "kubernetes",
    "kubernetes_asyncio",
    "lakefs_sdk",
    "openlineage.client",
    "fastapi",
    "airflow_mlrepo.hooks.lakefs",
)


def _spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def measure(module: str) -> tuple[float, dict[str, int]]:
    """Wall seconds of ``import module`` in a fresh interpreter and cumulative µs per top-level package."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - started
    packages: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match and match.group(4) in TRACKED:
            # Python prints a package after its children, so the outermost import comes last.
            packages[match.group(4)] = max(packages.get(match.group(4), 0), int(match.group(2)))
    return seconds, packages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes to run meanwhile")
    parser.add_argument("--modules", nargs="*", default=list(MODULES))
    parser.add_argument("--top", type=int, default=6, help="heaviest packages to list per module")
    args = parser.parse_args()
    hogs: list[multiprocessing.Process] = []
    if args.load:
        stop_at = time.monotonic() + 3600
        hogs = [multiprocessing.Process(target=_spin, args=(stop_at,), daemon=True) for _ in range(args.load)]
        for hog in hogs:
            hog.start()
    try:
        print(f"python {sys.version.split()[0]}, load: {args.load} busy processes, repeat {args.repeat}")
        print(f"{'module':45} {'median s':>9} {'max s':>7}  tracked packages (cumulative s, last run)")
        for module in args.modules:
            runs = [measure(module) for _ in range(args.repeat)]
            walls = [seconds for seconds, _ in runs]
            heaviest = sorted(runs[-1][1].items(), key=lambda item: -item[1])[: args.top]
            parts = ", ".join(f"{name} {micros / 1e6:.2f}" for name, micros in heaviest)
            print(f"{module:45} {statistics.median(walls):9.2f} {max(walls):7.2f}  {parts}")
    finally:
        for hog in hogs:
            hog.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
