"""A tiny container for operator tests: follows the container contract with nothing but lakefs-sdk.

    python copy_job.py [--fail-after-write] [--sleep SECONDS] [--write-nothing]

Reads every object under each pinned input, writes ``<input name>.txt`` under MLREPO_OUTPUT with
the concatenated bytes (upper-cased), plus ``run.json`` with MLREPO_RUN. Prints progress lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from lakefs_sdk import Configuration
from lakefs_sdk.client import LakeFSClient


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-after-write", action="store_true")
    parser.add_argument("--write-nothing", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=1, help="write the output in this many objects, slowly")
    parser.add_argument("--tag", default="", help="ignored: lets tests find this process")
    args = parser.parse_args()

    client = LakeFSClient(
        Configuration(
            host=os.environ["LAKEFS_ENDPOINT"] + "/api/v1",
            username=os.environ["LAKEFS_ACCESS_KEY_ID"],
            password=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
        )
    )
    inputs = json.loads(os.environ["MLREPO_INPUTS"])
    repository = os.environ["MLREPO_OUTPUT_REPOSITORY"]
    branch = os.environ["MLREPO_OUTPUT_BRANCH"]
    prefix = os.environ["MLREPO_OUTPUT_PATH"]
    print(f"copy_job: {len(inputs)} inputs -> lakefs://{repository}/{branch}/{prefix}", flush=True)
    if args.sleep:
        time.sleep(args.sleep)
    if args.write_nothing:
        print("copy_job: writing nothing", flush=True)
        return 0
    for name, pin in sorted(inputs.items()):
        listing = client.objects_api.list_objects(pin["repository"], pin["commit_id"], prefix=pin["path"])
        data = b"".join(
            bytes(client.objects_api.get_object(pin["repository"], pin["commit_id"], obj.path))
            for obj in sorted(listing.results, key=lambda o: o.path)
        )
        for part in range(args.chunks):
            client.objects_api.upload_object(repository, branch, f"{prefix}{name}-{part}.txt", content=data.upper())
            print(f"copy_job: wrote {name}-{part}.txt ({len(data)} bytes)", flush=True)
            if args.chunks > 1:
                time.sleep(0.2)
    client.objects_api.upload_object(repository, branch, f"{prefix}run.json", content=os.environ["MLREPO_RUN"].encode())
    if args.fail_after_write:
        print("copy_job: failing on purpose after writing", file=sys.stderr, flush=True)
        return 3
    print("copy_job: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
