"""A complete container: read every pinned input, write one output, with the container SDK.

Runs inside a training or inference container (or the local runner): everything it needs comes
from the environment the operator sets (docs/reference/container-contract.md). Install
``mlrepo-sdk`` in the image; it needs no Airflow. tests/integration/test_container_example.py
runs this file against the real lakeFS.
"""

from __future__ import annotations

import json
import os
import sys

from mlrepo_sdk.contract import ContractError, read_contract
from mlrepo_sdk.lakefs_io import LakeFS


def main() -> int:
    try:
        contract = read_contract(os.environ, inputs=["training_data"])
    except ContractError as exc:
        print(exc, file=sys.stderr)  # names every missing or malformed variable
        return 2
    lakefs = LakeFS(contract.lakefs)

    # Read: every object under the pinned input (its ref is a full commit id, never a branch).
    data = contract.inputs["training_data"]
    rows = 0
    for path, content in lakefs.read_all(data, suffix=".csv"):
        rows += content.count(b"\n")
        print(f"read lakefs://{data.repository}/{data.ref}/{path}")

    # Write: upload under MLREPO_OUTPUT (an attempt branch). Do not commit: the operator commits
    # with provenance and merges into the target branch after this process exits 0.
    out = contract.output
    summary = {"rows": rows, "params": dict(contract.params), "input_commit": data.ref}
    lakefs.upload(out.repository, out.ref, f"{out.path}summary.json", json.dumps(summary).encode())
    print(f"wrote lakefs://{out.repository}/{out.ref}/{out.path}summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
