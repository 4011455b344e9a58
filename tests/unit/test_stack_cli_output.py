"""`mlrepo stack up` says where the credentials are but never prints the secret (CI logs keep stdout)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from mlrepo_devstack import cli, stack
from mlrepo_devstack.stack.status import ComponentStatus, StackStatus


def test_stack_up_prints_the_access_key_id_but_not_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = "Zq9secretSECRETsecret0123456789abcdefXYZ"
    env = {
        "LAKEFS_ENDPOINT": "http://127.0.0.1:8000",
        "LAKEFS_ACCESS_KEY_ID": "AKIAEXAMPLEID",
        "LAKEFS_SECRET_ACCESS_KEY": secret,
    }
    marquez = ComponentStatus(stack.MARQUEZ, "running", "http://127.0.0.1:5000")
    status = StackStatus(components={stack.MARQUEZ: marquez}, env_file=tmp_path / "stack.env")
    monkeypatch.setattr(stack, "up", lambda only=None: status)
    monkeypatch.setattr(stack, "read_env", lambda: env)
    cli._stack_up(argparse.Namespace(only=None))
    printed = capsys.readouterr()
    assert "AKIAEXAMPLEID" in printed.out
    assert secret not in printed.out + printed.err
    assert "LAKEFS_SECRET_ACCESS_KEY" in printed.out  # where to find it
