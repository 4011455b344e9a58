"""The container read/write example the contract page shows (docs/examples/container/read_write.py),
run as a process with the contract's environment against the real lakeFS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.conftest import LakeFSServer

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "container" / "read_write.py"


def test_the_documented_container_reads_its_pinned_input_and_writes_its_output(
    hook: LakeFSHook, repo: str, lakefs_server: LakeFSServer
) -> None:
    hook.upload_object(repo, "main", "data/part-1.csv", b"a,b\n1,2\n3,4\n")
    pinned = hook.commit(repo, "main", "data", {}).id
    hook.create_branch(repo, "attempt-1", "main")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLREPO_", "LAKEFS_", "LAKECTL_"))},
        "MLREPO_INPUT_TRAINING_DATA": f"lakefs://{repo}/{pinned}/data/",
        "MLREPO_INPUTS": json.dumps({"training_data": {"uri": f"lakefs://{repo}/{pinned}/data/"}}),
        "MLREPO_OUTPUT": f"lakefs://{repo}/attempt-1/out/",
        "MLREPO_PARAMS": json.dumps({"C": 0.5}),
        "MLREPO_RUN": json.dumps({"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1, "map_index": -1}),
        "LAKEFS_ENDPOINT": lakefs_server.endpoint,
        "LAKEFS_ACCESS_KEY_ID": lakefs_server.access_key_id,
        "LAKEFS_SECRET_ACCESS_KEY": lakefs_server.secret_access_key,
    }
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(hook.read_object_bytes(repo, "attempt-1", "out/summary.json"))
    assert summary == {"rows": 3, "params": {"C": 0.5}, "input_commit": pinned}
    assert hook.get_branch_head(repo, "attempt-1") == pinned  # uploaded, not committed

    missing = subprocess.run(
        [sys.executable, str(EXAMPLE)], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "MLREPO_OUTPUT is not set" in missing.stderr
