"""Reliability: kill the lineage outbox deliverer at random points and count what arrived.

Runs :func:`tests.outbox_faults.run_trials` (the harness of ``tests/unit/test_outbox_faults.py``):
per trial a fresh outbox with three runs' events interleaved, the deliverer forked and SIGKILLed
after a random delay one to four times, then left to finish; a recording HTTP endpoint on loopback
answers 10 % of requests with HTTP 500. Prints events, arrivals, duplicates, kills, lost events,
runs out of order and entries left over.

    python benchmarks/outbox_faults.py --trials 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.outbox_faults import run_trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlrepo-outbox-faults-") as workdir:
        figures = run_trials(Path(workdir), trials=args.trials, seed=args.seed, fail_rate=args.fail_rate)
    print(json.dumps(asdict(figures), indent=2))
    return 0 if not figures.failures else 1


if __name__ == "__main__":
    sys.exit(main())
