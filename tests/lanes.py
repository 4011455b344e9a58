"""Run test tiers side by side: ``python tests/lanes.py "unit=pytest tests/unit" "integration=pytest ..."``.

``make test`` runs the tiers in two steps of two lanes each (unit beside integration, then e2e beside
the framework examples): the tiers that wait on services leave a core idle most of the time, and no
lane stops a service another lane of its step uses (the integration tier restarts lakeFS; the unit
tier uses no service; neither the e2e nor the frameworks tier stops one). Each output line is
prefixed with its lane's name; the exit status is the first failing lane's, after every lane ended.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time


def _run_lane(name: str, command: list[str], width: int, lock: threading.Lock, result: dict[str, float]) -> None:
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    for line in process.stdout:
        with lock:
            sys.stdout.write(f"[{name:<{width}}] {line}")
            sys.stdout.flush()
    result["code"] = process.wait()
    result["seconds"] = time.monotonic() - started


def main(argv: list[str]) -> int:
    lanes = []
    for spec in argv:
        name, sep, command = spec.partition("=")
        if not sep or not name or not command.strip():
            print(f"lanes.py: a lane is NAME=COMMAND, got {spec!r}", file=sys.stderr)
            return 2
        lanes.append((name, shlex.split(command)))
    width = max((len(name) for name, _ in lanes), default=0)
    lock = threading.Lock()
    started = time.monotonic()
    results: list[dict[str, float]] = [{} for _ in lanes]
    threads = [
        threading.Thread(target=_run_lane, args=(name, command, width, lock, result))
        for (name, command), result in zip(lanes, results, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = [
        f"{name}: exit {int(result['code'])} after {result['seconds']:.0f} s"
        for (name, _), result in zip(lanes, results, strict=True)
    ]
    print(f"lanes ({time.monotonic() - started:.0f} s): " + "; ".join(summary), flush=True)
    return next((int(result["code"]) for result in results if result["code"]), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
