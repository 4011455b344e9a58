"""Datums: Pachyderm's unit of work, cut from lakeFS inputs by a glob (docs/concepts/datums.md).

Pure logic, no I/O: what a glob makes of a path, how two inputs join, which datums a set of changed
paths touches, and how the datums to process are cut into batches for mapped tasks.

* **glob** (Pachyderm's ``pfs.glob``), matched against paths relative to the input's path:
  ``/`` is the whole input as one datum; ``/*`` makes each top-level file or directory a datum;
  ``/*/*`` each second-level entry; ``*``, ``?`` and ``[...]`` match within one path segment. A
  file belongs to the datum its first *k* segments name (*k* = the glob's segment count); files
  that do not match belong to no datum and are never processed.
* **join** (Pachyderm's ``join`` with ``join_on``): two inputs whose globs capture parts of the
  path with ``(...)``; datums of both sides with the same ``join_on`` value (``"$1"``, ``"$1-$2"``)
  form one datum. An inner join: a value present on one side only makes no datum.
* **cross**: inputs every datum sees whole (the model); they are not cut.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import MlRepoError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

REPROCESS_UNTIL_SUCCESS = "until_success"
REPROCESS_EVERY_JOB = "every_job"
REPROCESS_SPECS = (REPROCESS_UNTIL_SUCCESS, REPROCESS_EVERY_JOB)
#: Airflow's default ``[core] max_map_length``: batches are made larger rather than more numerous.
MAX_BATCHES = 1024
#: The id of the one datum of a ``/`` glob (it is written at the output prefix itself).
WHOLE_INPUT = ""


class DatumSpecError(MlRepoError, ValueError):
    """A glob, join or reprocess setting is malformed. The message names the setting."""


@dataclass(frozen=True)
class Glob:
    """A Pachyderm-style glob over paths relative to an input's path."""

    pattern: str
    segments: tuple[str, ...]
    regex: re.Pattern[str]
    captures: int

    @classmethod
    def parse(cls, pattern: str, *, what: str = "glob") -> Glob:
        text = pattern.strip()
        if not text.startswith("/"):
            text = "/" + text
        body = text.strip("/")
        segments = tuple(body.split("/")) if body else ()
        if any(not segment for segment in segments):
            raise DatumSpecError(f"{what} {pattern!r} has an empty path segment ('//')")
        if any("**" in segment for segment in segments):
            raise DatumSpecError(f"{what} {pattern!r}: '**' is not supported; use one '*' per path segment")
        regex, captures = _translate(segments, pattern, what)
        return cls(pattern=text, segments=segments, regex=regex, captures=captures)

    @property
    def depth(self) -> int:
        return len(self.segments)

    def datum_of(self, relative_path: str) -> tuple[str, tuple[str, ...]] | None:
        """``(datum key, captured groups)`` of a path relative to the input, or None if it is in no datum."""
        if not self.segments:
            return WHOLE_INPUT, ()
        parts = relative_path.split("/")
        if len(parts) < self.depth:
            return None
        key = "/".join(parts[: self.depth])
        match = self.regex.fullmatch(key)
        if match is None:
            return None
        return key, tuple(match.groups())

    def is_file_key(self, key: str, relative_path: str) -> bool:
        """Whether ``relative_path`` is the datum ``key`` itself (a file datum) rather than inside it."""
        return relative_path == key


def _translate(segments: Sequence[str], pattern: str, what: str) -> tuple[re.Pattern[str], int]:
    out: list[str] = []
    depth = 0
    captures = 0
    for index, segment in enumerate(segments):
        if index:
            out.append("/")
        i = 0
        while i < len(segment):
            char = segment[i]
            if char == "*":
                out.append("[^/]*")
            elif char == "?":
                out.append("[^/]")
            elif char == "[":
                end = segment.find("]", i + 1)
                if end < 0:
                    raise DatumSpecError(f"{what} {pattern!r}: unclosed '['")
                body = segment[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
            elif char == "(":
                depth += 1
                captures += 1
                out.append("(")
            elif char == ")":
                if depth == 0:
                    raise DatumSpecError(f"{what} {pattern!r}: ')' without '('")
                depth -= 1
                out.append(")")
            else:
                out.append(re.escape(char))
            i += 1
        if depth:
            raise DatumSpecError(f"{what} {pattern!r}: a capture '(' is not closed within its path segment")
    return re.compile("".join(out)), captures


_JOIN_REF_RE = re.compile(r"\$(\d+)")


def join_value(join_on: str, groups: Sequence[str], *, what: str) -> str:
    """``join_on`` (``"$1"``) with the captured groups substituted."""

    def group(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number < 1 or number > len(groups):
            raise DatumSpecError(f"{what}: join_on {join_on!r} refers to ${number}, the glob captures {len(groups)}")
        return groups[number - 1]

    return _JOIN_REF_RE.sub(group, join_on)


@dataclass(frozen=True)
class DatumInput:
    """One cut input: its name, its location (``lakefs://repo/ref/path``) and its glob."""

    name: str
    location: str
    glob: str
    join_on: str | None = None


@dataclass(frozen=True)
class DatumSpec:
    """How a task's inputs become datums: one globbed input, or a join of two; plus cross inputs.

    Checked in the constructor (no I/O), so a malformed spec fails when the DAG is parsed.
    """

    inputs: tuple[DatumInput, ...]
    cross: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.inputs) not in (1, 2):
            raise DatumSpecError("a datum spec cuts one input (glob) or joins two (join)")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise DatumSpecError(f"the joined inputs need distinct names, got {names}")
        globs = [Glob.parse(i.glob, what=f"input '{i.name}' glob") for i in self.inputs]
        if self.is_join:
            for datum_input, glob in zip(self.inputs, globs, strict=True):
                if not datum_input.join_on:
                    raise DatumSpecError(f"join: input '{datum_input.name}' needs join_on (e.g. '$1')")
                if glob.captures == 0:
                    raise DatumSpecError(
                        f"join: the glob {datum_input.glob!r} of input '{datum_input.name}' captures nothing; "
                        "mark the part to join on with parentheses, e.g. '/(*).csv'"
                    )
                join_value(datum_input.join_on, ("",) * glob.captures, what=f"input '{datum_input.name}'")
        elif self.inputs[0].join_on:
            raise DatumSpecError(f"input '{self.inputs[0].name}' has join_on but nothing to join with")

    @property
    def is_join(self) -> bool:
        return len(self.inputs) == 2

    def glob(self, name: str) -> Glob:
        for datum_input in self.inputs:
            if datum_input.name == name:
                return Glob.parse(datum_input.glob)
        raise KeyError(name)

    def describe(self) -> dict[str, Any]:
        """The spec as recorded in provenance (no commit ids: those are the pins)."""
        return {
            "inputs": [
                {"name": i.name, "glob": Glob.parse(i.glob).pattern, **({"join_on": i.join_on} if i.join_on else {})}
                for i in self.inputs
            ],
            "cross": sorted(self.cross),
        }

    def datum_id(self, name: str, key: str, groups: Sequence[str]) -> str:
        """The id a datum of input ``name`` with ``key`` has: its key, or for a join its join value."""
        if not self.is_join:
            return key
        datum_input = next(i for i in self.inputs if i.name == name)
        assert datum_input.join_on is not None
        return join_value(datum_input.join_on, groups, what=f"input '{name}'")


@dataclass
class Datum:
    """One datum: its id and, per cut input, the object paths it holds (full paths, sorted)."""

    id: str
    files: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "files": {name: sorted(paths) for name, paths in sorted(self.files.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Datum:
        return cls(id=str(data["id"]), files={str(k): [str(p) for p in v] for k, v in dict(data["files"]).items()})


def relative_to(prefix: str, path: str) -> str | None:
    """``path`` relative to the input's ``prefix`` (a directory-like prefix), or None if outside it."""
    if not prefix:
        return path
    base = prefix if prefix.endswith("/") else prefix + "/"
    if path.startswith(base):
        return path[len(base) :]
    return None


def group_datums(spec: DatumSpec, listed: Mapping[str, tuple[str, Iterable[str]]]) -> dict[str, Datum]:
    """Cut listed objects into datums: ``listed`` maps input name to ``(input path, object paths)``.

    For a join, only ids present on both sides make a datum.
    """
    by_input: dict[str, dict[str, list[str]]] = {}
    for datum_input in spec.inputs:
        prefix, paths = listed[datum_input.name]
        glob = Glob.parse(datum_input.glob)
        found: dict[str, list[str]] = {}
        for path in paths:
            relative = relative_to(prefix, path)
            if relative is None:
                continue
            hit = glob.datum_of(relative)
            if hit is None:
                continue
            datum_id = spec.datum_id(datum_input.name, hit[0], hit[1])
            found.setdefault(datum_id, []).append(path)
        by_input[datum_input.name] = found
    ids: set[str] = set.intersection(*(set(found) for found in by_input.values()))
    return {
        datum_id: Datum(datum_id, {name: sorted(found[datum_id]) for name, found in by_input.items()})
        for datum_id in sorted(ids)
    }


def touched_ids(spec: DatumSpec, name: str, prefix: str, paths: Iterable[str]) -> set[str]:
    """Ids of the datums of input ``name`` that the changed ``paths`` fall in."""
    glob = spec.glob(name)
    touched: set[str] = set()
    for path in paths:
        relative = relative_to(prefix, path)
        if relative is None:
            continue
        hit = glob.datum_of(relative)
        if hit is not None:
            touched.add(spec.datum_id(name, hit[0], hit[1]))
    return touched


def datum_output_prefix(output_path: str, datum_id: str) -> str:
    """Where a datum's outputs live: ``<output path>/<datum id>/`` (the output path itself for ``/``)."""
    if datum_id == WHOLE_INPUT:
        return output_path
    base = output_path if not output_path or output_path.endswith("/") else output_path + "/"
    return f"{base}{datum_id}/"


def batches(datums: Sequence[Datum], datums_per_task: int, *, max_batches: int = MAX_BATCHES) -> list[list[Datum]]:
    """Cut ``datums`` into batches of ``datums_per_task`` (more per batch if that would exceed ``max_batches``)."""
    if datums_per_task < 1:
        raise DatumSpecError(f"datums_per_task must be at least 1, got {datums_per_task}")
    if not datums:
        return []
    size = max(datums_per_task, math.ceil(len(datums) / max_batches))
    return [list(datums[start : start + size]) for start in range(0, len(datums), size)]


def check_reprocess(value: str) -> str:
    spec = (value or REPROCESS_UNTIL_SUCCESS).strip()
    if spec not in REPROCESS_SPECS:
        raise DatumSpecError(f"reprocess_spec {value!r}: use one of {', '.join(REPROCESS_SPECS)}")
    return spec


def config_fingerprint(
    *,
    spec: DatumSpec,
    cross_commits: Mapping[str, str],
    output: str,
    image: str | None,
    command: Sequence[str],
    hyperparameters: Mapping[str, Any],
) -> str:
    """Everything but the cut inputs that decides a datum's output: when it changes, every datum is redone."""
    document = {
        "spec": spec.describe(),
        "cross": dict(sorted(cross_commits.items())),
        "output": output,
        "image": image,
        "command": list(command),
        "hyperparameters": hyperparameters,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
