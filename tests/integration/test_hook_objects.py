"""Object streaming against the real lakeFS: constant memory whatever the size."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_mlrepo.exceptions import LakeFSNotFoundError
from airflow_mlrepo.hooks.lakefs import STREAM_CHUNK_BYTES, LakeFSHook

SIZE = 48 * 1024 * 1024


class _UnsizedReader(io.RawIOBase):
    """A non-seekable stream of known content (like a pipe) to exercise chunked uploads."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = bytes(range(256)) * 4096

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, len(self._block))
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def _digest(chunks: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def test_upload_and_download_stream_in_constant_memory(hook: LakeFSHook, repo: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(SIZE // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    tracemalloc.start()
    try:
        stat = hook.upload_object(repo, "main", "data/big.bin", source)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        target = tmp_path / "back.bin"
        written = hook.download_object(repo, "main", "data/big.bin", target)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stat.size_bytes == SIZE
    assert written == SIZE
    assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
    print(
        f"\n[streaming] {SIZE >> 20} MiB: upload peak {upload_peak >> 10} KiB, download peak {download_peak >> 10} KiB"
    )
    assert upload_peak < 4 * STREAM_CHUNK_BYTES
    assert download_peak < 4 * STREAM_CHUNK_BYTES


def test_upload_from_unsized_stream_and_file_object(hook: LakeFSHook, repo: str) -> None:
    size = 5 * 1024 * 1024 + 123
    stat = hook.upload_object(repo, "main", "pipe.bin", io.BufferedReader(_UnsizedReader(size)))
    assert stat.size_bytes == size
    expected = _digest(iter([io.BufferedReader(_UnsizedReader(size)).read()]))
    assert _digest(hook.read_object(repo, "main", "pipe.bin")) == expected

    hook.upload_object(
        repo,
        "main",
        "obj.json",
        io.BytesIO(b'{"a": 1}'),
        content_type="application/json",
        metadata={"origin": "test"},
    )
    stat = hook.stat_object(repo, "main", "obj.json")
    assert stat.content_type == "application/json"
    assert stat.metadata == {"origin": "test"}
    assert stat.size_bytes == 8


def test_stat_exists_and_list(hook: LakeFSHook, repo: str) -> None:
    for name in ("p/a", "p/b", "q/c"):
        hook.upload_object(repo, "main", name, name.encode())
    assert hook.object_exists(repo, "main", "p/a")
    assert not hook.object_exists(repo, "main", "p/zzz")
    assert [o.path for o in hook.list_objects(repo, "main", "p/")] == ["p/a", "p/b"]
    with pytest.raises(LakeFSNotFoundError) as err:
        hook.stat_object(repo, "main", "p/zzz")
    assert f"lakefs://{repo}/main/p/zzz" in str(err.value)
    with pytest.raises(LakeFSNotFoundError, match="p/zzz"):
        hook.read_object_bytes(repo, "main", "p/zzz")


def test_download_of_missing_object_leaves_no_partial_file(hook: LakeFSHook, repo: str, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(LakeFSNotFoundError):
        hook.download_object(repo, "main", "missing.bin", target)
    assert not target.exists()
    assert not (tmp_path / "out.bin.part").exists()
