"""Benchmark: "head of a branch as of time T" on a long history, binary search vs. linear log scan.

Builds a branch of N commits (default 10,000, one simulated minute apart) in a real lakeFS,
then for Q random times T resolves the head as of T two ways, in the same process, against
the same server:

- ``LakeFSHook.branch_head_as_of``: binary search over ``branch~N`` (O(log n) calls);
- a linear scan: page through ``logCommits`` (first parent, 1,000 per page, the largest page
  lakeFS serves) until the first commit at or before T, which is what a client without the
  binary search would do.

Both must return the same commit. Prints lakeFS calls and wall time per lookup (median and
max) and their ratios. Uses the ``lakefs_default`` connection if ``AIRFLOW_CONN_LAKEFS_DEFAULT``
is set, else the local stack (``mlrepo stack up``).

    python benchmarks/asof_lookup.py --commits 10000 --queries 50
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook


def _connect() -> LakeFSHook:
    if "AIRFLOW_CONN_LAKEFS_DEFAULT" not in os.environ:
        from mlrepo_devstack import stack

        stack.up(["lakefs"])
        os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack.read_env()["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    return LakeFSHook()


def _build_history(hook: LakeFSHook, repo: str, commits: int, t0: int) -> None:
    started = time.perf_counter()
    for i in range(commits):
        hook.commit(repo, "main", f"commit {i}", {"i": str(i)}, allow_empty=True, date=t0 + 60 * i)
        if (i + 1) % 1000 == 0:
            rate = (i + 1) / (time.perf_counter() - started)
            print(f"  built {i + 1}/{commits} commits ({rate:.0f} commits/s)", file=sys.stderr)


def _linear_scan(hook: LakeFSHook, repo: str, when: datetime) -> LakeFSCommit:
    cutoff = int(when.timestamp())
    for commit in hook.log_commits(repo, "main", first_parent=True):
        if commit.creation_date <= cutoff:
            return commit
    raise LookupError(when)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark repository")
    args = parser.parse_args(argv)

    hook = _connect()
    repo = f"bench-asof-{uuid.uuid4().hex[:8]}"
    t0 = int(time.time()) + 60
    hook.create_repository(repo, f"local://{repo}")
    try:
        print(f"lakeFS {hook.server_version()} at {hook.settings.endpoint}; building {args.commits} commits")
        _build_history(hook, repo, args.commits, t0)
        rng = random.Random(args.seed)
        rows = []
        for _ in range(args.queries):
            when = datetime.fromtimestamp(t0 + rng.randint(0, 60 * args.commits), tz=timezone.utc)

            calls = hook.api_calls
            start = time.perf_counter()
            fast = hook.branch_head_as_of(repo, "main", when)
            fast_s, fast_calls = time.perf_counter() - start, hook.api_calls - calls

            calls = hook.api_calls
            start = time.perf_counter()
            slow = _linear_scan(hook, repo, when)
            slow_s, slow_calls = time.perf_counter() - start, hook.api_calls - calls

            if fast.id != slow.id:
                print(f"MISMATCH at {when}: {fast.id} != {slow.id}", file=sys.stderr)
                return 1
            rows.append((fast_calls, fast_s, slow_calls, slow_s))
    finally:
        if not args.keep:
            hook.delete_repository(repo, missing_ok=True)

    bound = math.ceil(math.log2(args.commits)) + 2
    fast_calls_l, fast_s_l, slow_calls_l, slow_s_l = (list(col) for col in zip(*rows, strict=True))
    print(f"\nas-of lookups on a {args.commits}-commit branch, {args.queries} random times, same server:")
    print(f"{'method':<28}{'calls median':>14}{'calls max':>11}{'ms median':>11}{'ms max':>9}")
    for name, calls_col, secs_col in (
        ("binary search (<commit>~N)", fast_calls_l, fast_s_l),
        ("linear logCommits scan", slow_calls_l, slow_s_l),
    ):
        print(
            f"{name:<28}{statistics.median(calls_col):>14.1f}{max(calls_col):>11}"
            f"{1000 * statistics.median(secs_col):>11.1f}{1000 * max(secs_col):>9.1f}"
        )
    time_ratio = statistics.median(slow_s_l) / statistics.median(fast_s_l)
    print(f"\nwall-time ratio linear/binary (median): {time_ratio:.1f}x")
    print(f"max lakeFS calls per binary lookup: {max(fast_calls_l)} (bound ceil(log2 n) + 2 = {bound})")
    if max(fast_calls_l) > bound:
        print("FAIL: binary search exceeded its call bound", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
