"""The containers' lakeFS client (``mlrepo_sdk.lakefs_io``) against the real lakeFS.

It speaks lakeFS's REST API on urllib3 (no ``lakefs_sdk``, whose import is most of a datum task's
fixed start-up cost): these tests check each call it makes, paging, awkward paths, and that every
failure names the operation and the ``lakefs://`` location and never the secret.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from mlrepo_sdk import lakefs_io
from mlrepo_sdk.contract import LakeFSAccess, LakeFSLocation
from mlrepo_sdk.lakefs_io import LakeFS, LakeFSError

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.conftest import LakeFSServer

#: paths a user's data may well have: spaces, a percent sign, '?', '#', '+', non-ASCII.
AWKWARD_PATHS = ["data/a b.csv", "data/100%.csv", "data/q?x=1&y#z.csv", "data/c++/ü€.csv", "data/plain.csv"]


@pytest.fixture
def lakefs(lakefs_server: LakeFSServer) -> LakeFS:
    return LakeFS(LakeFSAccess(lakefs_server.endpoint, lakefs_server.access_key_id, lakefs_server.secret_access_key))


def test_upload_commit_list_and_read_back_awkward_paths(hook: LakeFSHook, repo: str, lakefs: LakeFS) -> None:
    for n, path in enumerate(AWKWARD_PATHS):
        lakefs.upload(repo, "main", path, f"row {n}\n".encode())
    commit_id = lakefs.commit(repo, "main", "five files", {"mlrepo.kind": "test", "k": "ü"})

    commit = hook.get_commit(repo, commit_id)  # read back by the provider's own client
    assert commit.message == "five files"
    assert dict(commit.metadata) == {"mlrepo.kind": "test", "k": "ü"}
    listed = list(lakefs.list_objects(repo, commit_id, "data/"))
    assert [info.path for info in listed] == sorted(AWKWARD_PATHS)
    assert all(info.size_bytes == len(b"row 0\n") and info.checksum for info in listed)
    for n, path in enumerate(AWKWARD_PATHS):
        assert lakefs.read(repo, commit_id, path) == f"row {n}\n".encode()
        assert hook.read_object_bytes(repo, commit_id, path) == f"row {n}\n".encode()


def test_listing_pages_through_every_object(repo: str, lakefs: LakeFS, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [f"records/{n:03d}.csv" for n in range(23)] + ["other/x.csv"]
    for path in paths:
        lakefs.upload(repo, "main", path, b"1\n")
    lakefs.commit(repo, "main", "records")
    monkeypatch.setattr(lakefs_io, "PAGE_SIZE", 5)  # 5 pages for 23 objects

    assert [info.path for info in lakefs.list_objects(repo, "main", "records/")] == sorted(paths[:-1])
    location = LakeFSLocation(repository=repo, ref="main", path="records/")
    assert [path for path, _ in lakefs.read_all(location, suffix=".CSV")] == sorted(paths[:-1])


def test_a_zero_byte_marker_file_is_uploaded_only_when_allowed(repo: str, lakefs: LakeFS) -> None:
    with pytest.raises(ValueError, match=f"lakefs://{repo}/main/model/_SUCCESS"):
        lakefs.upload(repo, "main", "model/_SUCCESS", b"")
    lakefs.upload(repo, "main", "model/_SUCCESS", b"", allow_empty=True)
    lakefs.commit(repo, "main", "marker")
    assert lakefs.read(repo, "main", "model/_SUCCESS") == b""


def test_lakefs_errors_name_the_operation_the_location_and_the_servers_reason(repo: str, lakefs: LakeFS) -> None:
    with pytest.raises(LakeFSError) as missing_object:
        lakefs.read(repo, "main", "no/such.csv")
    assert missing_object.value.status == 404
    assert str(missing_object.value).startswith(f"lakeFS could not read lakefs://{repo}/main/no/such.csv: HTTP 404")
    assert "not found" in str(missing_object.value).lower()

    with pytest.raises(LakeFSError) as missing_branch:
        lakefs.upload(repo, "no-such-branch", "a.csv", b"1\n")
    assert missing_branch.value.status == 404
    assert f"upload lakefs://{repo}/no-such-branch/a.csv" in str(missing_branch.value)

    with pytest.raises(LakeFSError) as nothing_staged:
        lakefs.commit(repo, "main", "empty")
    assert nothing_staged.value.status == 400
    assert f"could not commit lakefs://{repo}/main/" in str(nothing_staged.value)
    assert "no changes" in str(nothing_staged.value).lower()

    with pytest.raises(LakeFSError) as missing_repo:
        list(lakefs.list_objects("no-such-repo-x1", "main", "data/"))
    assert "list objects under lakefs://no-such-repo-x1/main/data/" in str(missing_repo.value)


def test_wrong_credentials_fail_with_401_and_the_secret_appears_nowhere(repo: str, lakefs_server: LakeFSServer) -> None:
    secret = "wrong-secret-9f3a1c77e2"
    client = LakeFS(LakeFSAccess(lakefs_server.endpoint, lakefs_server.access_key_id, secret))
    with pytest.raises(LakeFSError) as failed:
        client.read(repo, "main", "a.csv")
    assert failed.value.status == 401
    assert f"lakefs://{repo}/main/a.csv" in str(failed.value)
    assert secret not in str(failed.value)
    assert secret not in repr(failed.value.__cause__)
    assert secret not in repr(failed.value.__context__)


def test_an_unreachable_lakefs_is_named_by_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(lakefs_io, "REQUEST_TIMEOUT", (2.0, 2.0))
    client = LakeFS(LakeFSAccess(endpoint, "AKIAEXAMPLE", "s3cr3t-never-shown"))
    with pytest.raises(
        LakeFSError, match=rf"cannot reach lakeFS at {endpoint} to read lakefs://r/main/a\.csv"
    ) as failed:
        client.read("r", "main", "a.csv")
    assert failed.value.status is None
    assert "s3cr3t-never-shown" not in str(failed.value)


def test_the_container_client_does_not_import_the_generated_lakefs_sdk() -> None:
    """Importing ``lakefs_sdk`` costs every container start 1-2 s (each datum task's fixed cost)."""
    probe = "import sys, mlrepo_iris.predict_datums, mlrepo_iris.train; print('lakefs_sdk' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False", result.stdout + result.stderr
