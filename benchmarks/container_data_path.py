"""Benchmark: the container data path through lakeFS vs. local disk, and memory vs. object size.

For each size (default 16, 64 and 256 MiB) it writes a file of random bytes, then in this process:

- local baseline: copy the file to another local file (read + write, 1 MiB chunks);
- lakeFS write: ``LakeFSHook.upload_object`` from the file (streamed);
- lakeFS read: ``LakeFSHook.download_object`` to a file (streamed).

Prints MiB/s for each, lakeFS throughput as a ratio of the local copy, and the Python heap peak
(tracemalloc) of each lakeFS transfer: it must not grow with the object size.

    python benchmarks/container_data_path.py --sizes 16 64 256
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from airflow_mlrepo.hooks.lakefs import STREAM_CHUNK_BYTES, LakeFSHook

MIB = 1024 * 1024


def _connect() -> LakeFSHook:
    if "AIRFLOW_CONN_LAKEFS_DEFAULT" not in os.environ:
        from mlrepo_devstack import stack

        stack.up(["lakefs"])
        os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack.read_env()["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    return LakeFSHook()


def _local_copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(STREAM_CHUNK_BYTES):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def _timed(fn: object, *args: object) -> tuple[float, int]:
    tracemalloc.start()
    try:
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return elapsed, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256], help="object sizes in MiB")
    args = parser.parse_args(argv)
    hook = _connect()
    repo = f"bench-io-{uuid.uuid4().hex[:8]}"
    hook.create_repository(repo, f"local://{repo}")
    peaks: list[int] = []
    print(f"lakeFS {hook.server_version()} at {hook.settings.endpoint}, chunk {STREAM_CHUNK_BYTES // MIB} MiB")
    print(
        f"{'size':>8}{'local MiB/s':>13}{'write MiB/s':>13}{'read MiB/s':>12}{'write/local':>13}"
        f"{'read/local':>12}{'write peak':>12}{'read peak':>11}"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in args.sizes:
                source = Path(tmp) / f"src-{size}.bin"
                with open(source, "wb") as handle:
                    for _ in range(size):
                        handle.write(os.urandom(MIB))
                local_s, _ = _timed(_local_copy, source, Path(tmp) / "copy.bin")
                path = f"bench/{size}.bin"
                write_s, write_peak = _timed(hook.upload_object, repo, "main", path, source)
                read_s, read_peak = _timed(hook.download_object, repo, "main", path, Path(tmp) / "back.bin")
                if (Path(tmp) / "back.bin").stat().st_size != size * MIB:
                    print("FAIL: size mismatch", file=sys.stderr)
                    return 1
                local_rate, write_rate, read_rate = size / local_s, size / write_s, size / read_s
                peaks += [write_peak, read_peak]
                print(
                    f"{size:>6}Mi{local_rate:>13.0f}{write_rate:>13.0f}{read_rate:>12.0f}"
                    f"{write_rate / local_rate:>13.2f}{read_rate / local_rate:>12.2f}"
                    f"{write_peak / MIB:>10.2f}Mi{read_peak / MIB:>9.2f}Mi"
                )
                for leftover in Path(tmp).glob("*.bin"):
                    leftover.unlink()
    finally:
        hook.delete_repository(repo, missing_ok=True)
    print(f"\nmax heap peak of any transfer: {max(peaks) / MIB:.2f} MiB for objects up to {max(args.sizes)} MiB")
    if max(peaks) > 4 * STREAM_CHUNK_BYTES:
        print("FAIL: memory grew with object size", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
