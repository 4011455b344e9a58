"""The container contract, read from the environment (docs/reference/container-contract.md).

Everything a container needs arrives as environment variables: its pinned inputs
(``MLREPO_INPUT_<NAME>``, ``MLREPO_INPUTS``, ``MLREPO_MODEL``), where to write
(``MLREPO_OUTPUT`` and its split form), hyperparameters (``MLREPO_PARAMS``), run identity
(``MLREPO_RUN``) and how to reach lakeFS (``LAKEFS_ENDPOINT``, ``LAKEFS_ACCESS_KEY_ID``,
``LAKEFS_SECRET_ACCESS_KEY``). :func:`read_contract` checks all of it before any I/O and
reports every missing or malformed variable by name in one :class:`ContractError`.

This module is the contract's one definition, both sides of it: the provider's operators write the
environment with :func:`container_environment` and :func:`credential_environment`, containers read
it with :func:`read_contract`. Credentials are kept apart from the rest: the local runner passes
them as process environment, the Kubernetes runner only through a Kubernetes Secret
(``secretKeyRef``), never as literal values in the pod spec.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

INPUTS = "MLREPO_INPUTS"
INPUT_PREFIX = "MLREPO_INPUT_"
MODEL = "MLREPO_MODEL"
OUTPUT = "MLREPO_OUTPUT"
OUTPUT_REPOSITORY = "MLREPO_OUTPUT_REPOSITORY"
OUTPUT_BRANCH = "MLREPO_OUTPUT_BRANCH"
OUTPUT_PATH = "MLREPO_OUTPUT_PATH"
PARAMS = "MLREPO_PARAMS"
RUN = "MLREPO_RUN"
#: Datum tasks only: the datums of this task, as JSON (``[{"id", "files": {input: [paths]}, "output"}]``).
DATUMS = "MLREPO_DATUMS"
LAKEFS_ENDPOINT = "LAKEFS_ENDPOINT"
LAKEFS_ACCESS_KEY_ID = "LAKEFS_ACCESS_KEY_ID"
LAKEFS_SECRET_ACCESS_KEY = "LAKEFS_SECRET_ACCESS_KEY"

#: lakectl's names for the same values, accepted when the ``LAKEFS_*`` ones are not set.
LAKECTL_ALIASES: dict[str, str] = {
    LAKEFS_ENDPOINT: "LAKECTL_SERVER_ENDPOINT_URL",
    LAKEFS_ACCESS_KEY_ID: "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    LAKEFS_SECRET_ACCESS_KEY: "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
}

#: Secret-bearing variables and the key each reads from the Kubernetes Secret.
CREDENTIAL_VARIABLES: dict[str, str] = {
    LAKEFS_ACCESS_KEY_ID: "access_key_id",
    LAKEFS_SECRET_ACCESS_KEY: "secret_access_key",
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID": "access_key_id",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
}

#: the name of the model among the inputs of an inference task (``MLREPO_INPUTS["model"]``).
MODEL_INPUT = "model"

_SCHEME = "lakefs://"
_COMMIT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_BRANCH_RE = re.compile(r"^\w[-\w]*$")

T = TypeVar("T")


class ContractError(Exception):
    """Contract variables are missing or malformed. The message names every such variable."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        if len(problems) == 1:
            message = problems[0]
        else:
            listing = "".join(f"\n  - {problem}" for problem in problems)
            message = f"{len(problems)} problems with the container environment:{listing}"
        super().__init__(message)


def input_variable(name: str) -> str:
    """``training_data`` → ``MLREPO_INPUT_TRAINING_DATA``."""
    return INPUT_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True)
class LakeFSLocation:
    """``lakefs://repository/ref/path``: an object or a prefix at a ref."""

    repository: str
    ref: str
    path: str = ""

    @classmethod
    def parse(cls, uri: str, *, variable: str) -> LakeFSLocation:
        """Parse a ``lakefs://`` URI; a malformed one raises :class:`ContractError` naming ``variable``."""
        expected = f"expected lakefs://<repository>/<ref>/<path>, got {uri!r}"
        if not uri.startswith(_SCHEME):
            raise ContractError(f"{variable} is not a lakeFS URI: {expected}")
        repository, _, rest = uri[len(_SCHEME) :].partition("/")
        ref, _, path = rest.partition("/")
        if not repository or not ref:
            raise ContractError(f"{variable} names no {'repository' if not repository else 'ref'}: {expected}")
        if path.startswith("/") or "\x00" in path:
            raise ContractError(f"{variable} has an invalid object path {path!r}: {expected}")
        return cls(repository=repository, ref=ref, path=path)

    @property
    def uri(self) -> str:
        return f"{_SCHEME}{self.repository}/{self.ref}/{self.path}"

    @property
    def is_pinned(self) -> bool:
        """Whether the ref is a full commit id (what the operators always pass)."""
        return bool(_COMMIT_ID_RE.match(self.ref))

    def join(self, name: str) -> str:
        """The object path of ``name`` under this location taken as a prefix (``model/`` + ``x`` → ``model/x``)."""
        if not self.path:
            return name
        return f"{self.path.rstrip('/')}/{name}"

    def contains(self, path: str) -> bool:
        """Whether object ``path`` is this location or lies under it as a directory-like prefix.

        ``data/`` and ``data`` both contain ``data/a.csv`` but ``data`` does not contain ``data2/a.csv``.
        """
        if not self.path:
            return True
        if self.path.endswith("/"):
            return path.startswith(self.path)
        return path == self.path or path.startswith(self.path + "/")

    def relative(self, path: str) -> str:
        """``path`` relative to this location (the object's own name if the location is that object)."""
        if path == self.path:
            return path.rsplit("/", 1)[-1]
        prefix = self.path if not self.path or self.path.endswith("/") else self.path + "/"
        return path[len(prefix) :]


@dataclass(frozen=True)
class LakeFSAccess:
    """How to reach lakeFS. The secret never appears in ``repr``."""

    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def api_url(self) -> str:
        """The API base URL: ``http://lakefs:8000`` → ``http://lakefs:8000/api/v1``."""
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/api/v1") else f"{base}/api/v1"


@dataclass(frozen=True)
class Contract:
    """Everything one container run was told."""

    inputs: Mapping[str, LakeFSLocation]
    output: LakeFSLocation
    params: Mapping[str, Any]
    lakefs: LakeFSAccess
    model: LakeFSLocation | None = None
    run: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """Human-readable lines for the log (no credentials)."""
        lines = [f"input {name}: {location.uri}" for name, location in sorted(self.inputs.items())]
        if self.model is not None:
            lines.append(f"model: {self.model.uri}")
        lines.append(f"output: {self.output.uri}")
        lines.append(f"params: {json.dumps(dict(self.params), sort_keys=True)}")
        if self.run:
            lines.append("run: " + ", ".join(f"{key}={self.run[key]}" for key in sorted(self.run)))
        return lines

    def warnings(self) -> list[str]:
        """Inputs not pinned to a commit id: the output is then not reproducible."""
        pinned = dict(self.inputs)
        if self.model is not None:
            pinned[MODEL_INPUT] = self.model
        return [
            f"input {name} is read at ref {location.ref!r}, not at a commit id: "
            "the output is reproducible only for inputs pinned to commit ids"
            for name, location in sorted(pinned.items())
            if not location.is_pinned
        ]


def read_contract(
    environ: Mapping[str, str],
    *,
    inputs: Sequence[str],
    model: bool = False,
) -> Contract:
    """Read and check the whole contract for a container with ``inputs`` (and a model if ``model``).

    Raises one :class:`ContractError` listing every missing or malformed variable.
    """
    problems: list[str] = []

    def attempt(read: Callable[[], T]) -> T | None:
        try:
            return read()
        except ContractError as exc:
            problems.extend(exc.problems)
            return None

    declared = attempt(lambda: _declared_inputs(environ))
    locations: dict[str, LakeFSLocation] = {}
    for name in inputs:
        location = attempt(functools.partial(_input, environ, name, declared or {}))
        if location is not None:
            locations[name] = location
    model_location = attempt(functools.partial(_model, environ, declared or {})) if model else None
    output = attempt(lambda: read_output(environ))
    params = attempt(lambda: _json_object(environ, PARAMS))
    run = attempt(lambda: _json_object(environ, RUN))
    lakefs = attempt(lambda: read_lakefs_access(environ))
    if problems:
        raise ContractError(*problems)
    assert output is not None
    assert params is not None
    assert run is not None
    assert lakefs is not None
    return Contract(
        inputs=locations,
        output=output,
        params=params,
        lakefs=lakefs,
        model=model_location,
        run=run,
    )


@dataclass(frozen=True)
class Datum:
    """One datum of a datum pipeline's task: its files per cut input, and where its outputs go.

    ``files`` are object paths in the input's repository at the input's pinned commit
    (``MLREPO_INPUT_<NAME>``); the container writes this datum's outputs under ``output`` only.
    """

    id: str
    files: Mapping[str, Sequence[str]]
    output: LakeFSLocation


def read_datums(environ: Mapping[str, str]) -> list[Datum]:
    """The datums of this task (``MLREPO_DATUMS``), in order. Raises :class:`ContractError` if malformed."""
    raw = environ.get(DATUMS, "").strip()
    if not raw:
        raise ContractError(f"{DATUMS} is not set: this container is not running as a task of a datum pipeline")
    try:
        listed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{DATUMS} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(listed, list):
        raise ContractError(f"{DATUMS} must be a JSON list of datums, got {type(listed).__name__}")
    datums = []
    for index, item in enumerate(listed):
        where = f"{DATUMS}[{index}]"
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("files"), Mapping)
        ):
            raise ContractError(f"{where} must be an object with 'id', 'files' and 'output', got {item!r:.200}")
        output = LakeFSLocation.parse(str(item.get("output", "")), variable=f"{where}['output']")
        files = {str(name): [str(p) for p in paths] for name, paths in item["files"].items()}
        datums.append(Datum(id=item["id"], files=files, output=output))
    return datums


def read_output(environ: Mapping[str, str]) -> LakeFSLocation:
    """The attempt's output location: ``MLREPO_OUTPUT``, else the split ``MLREPO_OUTPUT_*`` variables."""
    split = {name: environ.get(name, "").strip() for name in (OUTPUT_REPOSITORY, OUTPUT_BRANCH, OUTPUT_PATH)}
    uri = environ.get(OUTPUT, "").strip()
    if uri:
        location = LakeFSLocation.parse(uri, variable=OUTPUT)
        parts = {OUTPUT_REPOSITORY: location.repository, OUTPUT_BRANCH: location.ref, OUTPUT_PATH: location.path}
        for name, value in split.items():
            if value and value != parts[name]:
                raise ContractError(f"{name}={value!r} disagrees with {OUTPUT}={uri!r}")
    elif split[OUTPUT_REPOSITORY] and split[OUTPUT_BRANCH]:
        location = LakeFSLocation(split[OUTPUT_REPOSITORY], split[OUTPUT_BRANCH], split[OUTPUT_PATH])
    else:
        raise ContractError(
            f"{OUTPUT} is not set: where to write, as lakefs://<repository>/<branch>/<path> "
            f"(or set {OUTPUT_REPOSITORY}, {OUTPUT_BRANCH} and {OUTPUT_PATH})"
        )
    if not _BRANCH_RE.match(location.ref):
        raise ContractError(f"{OUTPUT} must name a branch to upload to, got ref {location.ref!r}")
    return location


def read_lakefs_access(environ: Mapping[str, str]) -> LakeFSAccess:
    """``LAKEFS_ENDPOINT`` and credentials (lakectl's variable names are accepted as well)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, alias in LAKECTL_ALIASES.items():
        value = environ.get(name, "").strip() or environ.get(alias, "").strip()
        if value:
            values[name] = value
        else:
            missing.append(f"{name} is not set (nor {alias})")
    if missing:
        raise ContractError(*missing)
    endpoint = values[LAKEFS_ENDPOINT]
    if not re.match(r"^https?://[^/\s]+", endpoint):
        raise ContractError(f"{LAKEFS_ENDPOINT} must be an http(s) URL such as http://lakefs:8000, got {endpoint!r}")
    return LakeFSAccess(endpoint, values[LAKEFS_ACCESS_KEY_ID], values[LAKEFS_SECRET_ACCESS_KEY])


def _declared_inputs(environ: Mapping[str, str]) -> dict[str, Any]:
    """``MLREPO_INPUTS`` as a dict of input name → description (empty if the variable is not set)."""
    inputs = _json_object(environ, INPUTS)
    for name, value in inputs.items():
        if not isinstance(value, Mapping) or not isinstance(value.get("uri"), str):
            raise ContractError(f"{INPUTS}[{name!r}] must be an object with a 'uri' string, got {value!r}")
    return inputs


def _input(environ: Mapping[str, str], name: str, declared: Mapping[str, Any]) -> LakeFSLocation:
    variable = input_variable(name)
    uri = environ.get(variable, "").strip()
    listed = declared[name]["uri"] if name in declared else None
    if uri and listed and uri != listed:
        raise ContractError(f"{variable}={uri!r} disagrees with {INPUTS}[{name!r}]['uri']={listed!r}")
    if not uri and not listed:
        raise ContractError(
            f"{variable} is not set: the pinned location of input {name!r}, "
            f"as lakefs://<repository>/<commit id>/<path> (nor is {name!r} in {INPUTS})"
        )
    return LakeFSLocation.parse(uri or str(listed), variable=variable if uri else f"{INPUTS}[{name!r}]")


def _model(environ: Mapping[str, str], declared: Mapping[str, Any]) -> LakeFSLocation:
    uri = environ.get(MODEL, "").strip()
    listed = declared[MODEL_INPUT]["uri"] if MODEL_INPUT in declared else None
    if uri and listed and uri != listed:
        raise ContractError(f"{MODEL}={uri!r} disagrees with {INPUTS}[{MODEL_INPUT!r}]['uri']={listed!r}")
    if not uri and not listed:
        raise ContractError(
            f"{MODEL} is not set: the pinned model location, as lakefs://<repository>/<commit id>/<path> "
            f"(nor is {MODEL_INPUT!r} in {INPUTS})"
        )
    return LakeFSLocation.parse(uri or str(listed), variable=MODEL if uri else f"{INPUTS}[{MODEL_INPUT!r}]")


def _json_object(environ: Mapping[str, str], variable: str) -> dict[str, Any]:
    raw = environ.get(variable, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{variable} is not valid JSON ({exc.msg} at character {exc.pos}): {raw[:200]!r}") from None
    if not isinstance(value, dict):
        raise ContractError(f"{variable} must be a JSON object, got {type(value).__name__}: {raw[:200]!r}")
    return value


# --- the writer side: what the provider's operators put in a container's environment ---------------


class OutputLocation(Protocol):
    """Where an attempt writes: a lakeFS location (the provider's ``LakeFSLocation`` or this module's)."""

    @property
    def uri(self) -> str: ...
    @property
    def repository(self) -> str: ...
    @property
    def ref(self) -> str: ...
    @property
    def path(self) -> str: ...


class PinnedLocation(Protocol):
    """A pinned input as the provider hands it over (``airflow_mlrepo.pinning.PinnedInput``)."""

    @property
    def location(self) -> OutputLocation: ...
    def to_dict(self) -> dict[str, Any]: ...


def container_environment(
    *,
    pins: Mapping[str, PinnedLocation],
    output: OutputLocation,
    endpoint: str,
    hyperparameters: Mapping[str, Any],
    run: Mapping[str, Any],
    model_input: str | None = None,
) -> dict[str, str]:
    """Every non-secret variable of the contract, for pinned ``pins`` and the attempt's ``output``."""
    env = {
        INPUTS: json.dumps({name: pin.to_dict() for name, pin in sorted(pins.items())}, sort_keys=True),
        OUTPUT: output.uri,
        OUTPUT_REPOSITORY: output.repository,
        OUTPUT_BRANCH: output.ref,
        OUTPUT_PATH: output.path,
        PARAMS: json.dumps(dict(hyperparameters), sort_keys=True),
        RUN: json.dumps(dict(run), sort_keys=True),
        LAKEFS_ENDPOINT: endpoint,
        LAKECTL_ALIASES[LAKEFS_ENDPOINT]: endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
    }
    for name, pin in pins.items():
        env[input_variable(name)] = pin.location.uri
    if model_input is not None:
        env[MODEL] = pins[model_input].location.uri
    return env


def credential_environment(access_key_id: str, secret_access_key: str) -> dict[str, str]:
    """The secret variables with their values (local runner only)."""
    values = {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
    return {variable: values[key] for variable, key in CREDENTIAL_VARIABLES.items()}
