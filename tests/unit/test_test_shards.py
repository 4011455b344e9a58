"""``make test`` splits the integration tier into shards by file (tests/conftest.py): every file in
exactly one shard, the same answer in every process, balanced on the measured seconds."""

from __future__ import annotations

from tests.conftest import shard_of_files


def test_every_file_lands_in_exactly_one_shard_and_the_answer_is_stable() -> None:
    files = [f"tests/integration/test_{i}.py" for i in range(17)]
    seconds = {name: float(i * 7 % 11 + 1) for i, name in enumerate(files)}
    chosen = shard_of_files(files, 2, seconds)
    assert set(chosen) == set(files)
    assert set(chosen.values()) == {0, 1}
    assert shard_of_files(list(reversed(files)), 2, seconds) == chosen  # order of collection does not matter


def test_the_longest_files_are_spread_and_the_shards_are_balanced() -> None:
    seconds = {"a.py": 600.0, "b.py": 500.0, "c.py": 100.0, "d.py": 100.0, "e.py": 90.0}
    chosen = shard_of_files(list(seconds), 2, seconds)
    assert chosen["a.py"] != chosen["b.py"]
    load = [sum(s for f, s in seconds.items() if chosen[f] == shard) for shard in (0, 1)]
    assert abs(load[0] - load[1]) <= 110.0


def test_an_unmeasured_file_counts_thirty_seconds() -> None:
    chosen = shard_of_files(["new.py", "old.py"], 2, {"old.py": 29.0})
    assert chosen == {"new.py": 0, "old.py": 1}
