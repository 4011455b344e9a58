"""Fuzzing with Hypothesis: untrusted input gives a typed error from exceptions.py or a correct parse.

Each target runs 10,000 derandomized examples (the ``fuzz`` settings below: the same cases in CI and
on a laptop, no example database). Correctness is checked against oracles written character by
character from lakeFS's own rules (``pkg/validator``, ``pkg/graveler/validate.go``, with Go's
ASCII ``\\w``/``\\s`` and end-of-text ``$``), not against our regular expressions. The real-lakeFS
counterpart is ``tests/integration/test_name_validation.py``.
"""

from __future__ import annotations

import json
import os
import string
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError, InvalidWebhookEventError, MlRepoError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit
from airflow_mlrepo.locations import (
    LakeFSLocation,
    is_commit_id,
    validate_branch,
    validate_ref,
    validate_repository,
    validate_tag,
)
from airflow_mlrepo.provenance_report import ProvenanceNode, literal, render_text, trace
from airflow_mlrepo.webhooks.lakefs import SUPPORTED_EVENT_TYPES, parse_lakefs_event

FUZZ_EXAMPLES = int(os.environ.get("MLREPO_FUZZ_EXAMPLES", "10000"))
fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------------------ oracles
_REPO_CHARS = set(string.ascii_lowercase + string.digits + "-")
_WORD_CHARS = set(string.ascii_letters + string.digits + "_")
_GO_SPACE = set("\t\n\f\r ")


def repository_ok(name: str) -> bool:
    return 3 <= len(name) <= 63 and set(name) <= _REPO_CHARS and name[0] != "-"


def branch_ok(name: str) -> bool:
    return len(name) >= 1 and name[0] in _WORD_CHARS and set(name) <= _WORD_CHARS | {"-"}


def ref_ok(ref: str) -> bool:
    return len(ref) >= 1 and not (set(ref) & (_GO_SPACE | {"/"}))


def tag_ok(tag: str) -> bool:
    return (
        len(tag) >= 1
        and tag != "@"
        and not tag.endswith((".", ".lock"))
        and ".." not in tag
        and "/" not in tag
        and "@{" not in tag
        and not (set(tag) & set("^:?*[\\"))
        and all(ord(char) > 0x20 for char in tag)
    )


def path_ok(path: str) -> bool:
    return "\x00" not in path and not path.startswith("/")


# --------------------------------------------------------------------------------- strategies
#: characters that sit on the edges of the rules, mixed into otherwise arbitrary text
_EDGE = "abcz09AZ_-./~^@{}:?*[\\ \t\n\r\f\v\x00\x01\x1f\x7f\x85\xa0é\u2028\u3000"
names = st.one_of(
    st.text(alphabet=_EDGE, max_size=70),
    st.text(max_size=70),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=66),
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20),
    st.builds(
        lambda base, tail: base + tail,
        st.text(alphabet="abc09_-", min_size=1, max_size=10),
        st.sampled_from(["\n", " ", "\t", "é", "/", ".lock", ".", "~1", "^", "@", "@{", ".."]),
    ),
)  # fmt: skip
uris = st.one_of(
    st.text(max_size=120),
    st.builds(lambda r, f, p: f"lakefs://{r}/{f}/{p}", names, names, st.text(alphabet=_EDGE, max_size=30)),
    st.builds(lambda r, f: f"lakefs://{r}/{f}", names, names),
    st.builds(lambda r: f"lakefs://{r}", names),
    st.builds(lambda s, r: f"{s}://{r}/main/x", st.sampled_from(["LAKEFS", "lakefs:", "s3", "lakefs:/", ""]), names),
)  # fmt: skip


# -------------------------------------------------------------------------------------- targets
@fuzz
@given(uris)
def test_lakefs_uris_parse_correctly_or_raise_a_typed_error(uri: str) -> None:
    try:
        location = LakeFSLocation.parse(uri)
    except InvalidLakeFSLocationError:
        rest = uri[len("lakefs://") :] if uri.startswith("lakefs://") else None
        if rest is not None and "/" in rest:
            repository, _, after = rest.partition("/")
            ref, _, path = after.partition("/")
            assert not (repository_ok(repository) and ref_ok(ref) and path_ok(path)), f"{uri!r} is valid"
        return
    assert uri.startswith("lakefs://")
    assert repository_ok(location.repository)
    assert ref_ok(location.ref)
    assert path_ok(location.path)
    expected = f"lakefs://{location.repository}/{location.ref}"
    assert uri in (expected, f"{expected}/{location.path}")
    assert LakeFSLocation.parse(location.uri) == location


@fuzz
@given(names)
def test_names_follow_lakefs_rules_exactly(name: str) -> None:
    for validate, oracle in (
        (validate_repository, repository_ok),
        (validate_branch, branch_ok),
        (validate_ref, lambda ref: ref_ok(ref)),
        (validate_tag, tag_ok),
    ):
        error: InvalidLakeFSLocationError | None = None
        try:
            assert validate(name) == name
        except InvalidLakeFSLocationError as exc:
            error = exc
        if error is not None:
            assert repr(name) in str(error)  # the error names the thing that is wrong
        assert (error is None) == oracle(name), (validate.__name__, name)
    assert is_commit_id(name) == (len(name) == 64 and set(name) <= set("0123456789abcdef"))


@pytest.mark.parametrize("value", [None, 3, b"main", ["main"]])
def test_names_that_are_not_strings_are_typed_errors(value: Any) -> None:
    for validate in (validate_repository, validate_branch, validate_ref, validate_tag):
        with pytest.raises(InvalidLakeFSLocationError):
            validate(value)
    with pytest.raises(InvalidLakeFSLocationError):
        LakeFSLocation.parse(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet=_EDGE, max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=6,
)
_EVENT_FIELDS = {
    "event_type": st.sampled_from([*SUPPORTED_EVENT_TYPES, "pre-commit", "", "POST-COMMIT"]) | json_values,
    "repository_id": names | json_values,
    "branch_id": names | json_values,
    "commit_id": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64) | names | json_values,
    "commit_metadata": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3) | json_values,
    "committer": json_values,
    "source_ref": names | json_values,
}
events = st.fixed_dictionaries({}, optional=_EVENT_FIELDS).flatmap(
    lambda event: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda extra: {**extra, **event})
)
bodies = st.one_of(
    st.binary(max_size=200),
    events.map(lambda event: json.dumps(event).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"event_type": ' + b"[" * depth + b"]" * depth + b"}"),
)


@fuzz
@given(bodies)
def test_webhook_payloads_parse_correctly_or_raise_a_typed_error(body: bytes) -> None:
    try:
        event = parse_lakefs_event(body)
    except InvalidWebhookEventError as exc:
        status = exc.status
    else:
        status = 200
        assert event.event_type in SUPPORTED_EVENT_TYPES
        assert repository_ok(event.repository_id)
        assert branch_ok(event.branch_id or "")
        assert ref_ok(event.commit_id or "")
        json.dumps(event.asset_event_facts())
    assert status in (200, 400, 422)


# --------------------------------------------------------------------------- commit metadata
_COMMIT = "f" * 64
_KNOWN_KEYS = [
    "mlrepo.format", "mlrepo.output_kind", "mlrepo.inputs", "mlrepo.command", "mlrepo.hyperparameters",
    "mlrepo.dag_id", "mlrepo.run_id", "mlrepo.task_id", "mlrepo.try_number", "mlrepo.map_index", "mlrepo.image",
    "mlrepo.runner", "mlrepo.model.policy", "mlrepo.openlineage_run_id", "::lakefs::Airflow::url[url:ui]",
    "mlrepo.input.data", "mlrepo.input.data.rule", "mlrepo.input.data.as_of", "mlrepo.input.model",
]  # fmt: skip
metadata_values = st.one_of(
    st.text(alphabet=_EDGE + "[]/#", max_size=40),
    st.text(max_size=40),
    uris,
    json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.sampled_from(["data", "data,model", ",", "data,data", "lakefs://repo/" + _COMMIT + "/x", "[bold]x[/]"]),
)
metadata = st.dictionaries(st.sampled_from(_KNOWN_KEYS) | st.text(max_size=12), metadata_values, max_size=12)


class MetadataHook:
    """A lakeFS hook whose commits carry the generated metadata (the boundary faked here)."""

    def __init__(self, root: dict[str, str], inputs: dict[str, str]) -> None:
        self.root = root
        self.inputs = inputs
        self.settings = SimpleNamespace(browser_url="http://lakefs.example")

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        meta = self.root if ref == _COMMIT else self.inputs
        return LakeFSCommit(
            id=ref if len(ref) == 64 else _COMMIT, parents=(), committer="[red]c", message="m[/]",
            creation_date=1_700_000_000, metadata=meta,
        )  # fmt: skip


@fuzz
@given(metadata, metadata)
def test_commit_metadata_traces_and_renders_or_raises_a_typed_error(
    root: dict[str, str], inputs: dict[str, str]
) -> None:
    hook = MetadataHook(root, inputs)
    try:
        node = trace(hook, f"lakefs://repo/{_COMMIT}")  # type: ignore[arg-type]
    except MlRepoError:
        return  # a typed error (no provenance, an inconsistent chain, an input that is not a location)
    assert isinstance(node, ProvenanceNode)
    json.dumps(node.to_dict())
    assert node.commit_id in render_text(node)


def test_metadata_values_that_form_a_markup_tag_together_render_as_text() -> None:
    """A run id ``[/`` and a task id ``]``, each escaped alone, once made the closing tag ``[/  task ]``
    (rich.errors.MarkupError out of ``mlrepo provenance``): found by the fuzz test above."""
    root = {
        "mlrepo.format": "1",
        "mlrepo.output": "lakefs://repo/main/out/",
        "mlrepo.dag_id": "d",
        "mlrepo.run_id": "[/",
        "mlrepo.task_id": "]",
        "mlrepo.try_number": "1\\",
        "mlrepo.image": "[bold]x",
    }
    text = render_text(trace(MetadataHook(root, {}), f"lakefs://repo/{_COMMIT}"))  # type: ignore[arg-type]
    assert "run [/  task ]" in text
    assert "image [bold]x" in text


@fuzz
@given(st.lists(st.text(alphabet="[]/\\ab#@=", max_size=8), min_size=1, max_size=4))
def test_literal_text_side_by_side_keeps_the_markup_around_it(pieces: list[str]) -> None:
    """Any values made literal and put between tags: the tags hold, the text shows (backslashes aside)."""
    from rich.text import Text

    markup = "".join(f"[bold]{literal(piece)}[/bold] " for piece in pieces)
    plain = Text.from_markup(markup).plain
    assert plain.replace("\\", "") == "".join(f"{piece} " for piece in pieces).replace("\\", "")


# ------------------------------------------------------------------------ connection fields and extras
_EXTRA_KEYS = ["verify_ssl", "request_timeout", "ui_url", "extra__lakefs__verify_ssl", "extra__lakefs__request_timeout"]
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=_EDGE + "0123456789eE+-.nafiNI", max_size=12),
    st.sampled_from(["0", "false", "off", "1e400", "-1", "nan", "inf", "http://ui:3000", "ftp://x", "ui"]),
)
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=4)
extras = st.one_of(
    st.none(),
    st.text(max_size=40),  # anything, mostly not JSON
    st.builds(json.dumps, st.dictionaries(st.sampled_from(_EXTRA_KEYS), _json_values, max_size=4)),
    st.builds(json.dumps, st.one_of(_json_values, st.dictionaries(st.text(max_size=5), _json_scalars, max_size=2))),
)
hosts = st.one_of(
    st.text(alphabet=_EDGE + "[]%#", max_size=40),
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["http://", "https://", "ftp://", "HTTP://", "", "//", "http:"]),
        st.text(alphabet="lakefs0189.:[]@/%#?-", max_size=30),
    ),
)  # fmt: skip


def _finite_positive(value: float) -> bool:
    return value > 0 and value != float("inf")


@fuzz
@given(
    host=st.one_of(st.none(), hosts),
    schema=st.one_of(st.none(), st.sampled_from(["http", "https", "", "ftp", " https "]), st.text(max_size=8)),
    port=st.one_of(st.none(), st.integers(min_value=-5, max_value=70_000)),
    login=st.one_of(st.none(), st.sampled_from(["", "AKIA"]), st.text(max_size=10)),
    password=st.one_of(st.none(), st.sampled_from(["", "s3cr3t"]), st.text(max_size=10)),
    extra=extras,
)
@example(host=None, schema=None, port=None, login=None, password="pass", extra=None)  # "pass" is in "password"
@example(host="0", schema=None, port=None, login="AKIA", password="s3cr3t", extra="\r")  # a blank extra
def test_connection_fields_and_extras_parse_correctly_or_raise_a_typed_error(
    host: str | None, schema: str | None, port: int | None, login: str | None, password: str | None, extra: str | None
) -> None:
    import math
    import urllib.parse

    from airflow.sdk import Connection

    from airflow_mlrepo.exceptions import LakeFSConnectionConfigError
    from airflow_mlrepo.hooks.lakefs import LakeFSConnectionSettings

    def connection(secret: str | None) -> Connection:
        return Connection(
            conn_id="fuzzed", conn_type="lakefs", host=host, schema=schema, port=port, login=login, password=secret,
            extra=extra,
        )  # fmt: skip

    conn = connection(password)
    try:
        settings = LakeFSConnectionSettings.from_connection(conn)
    except LakeFSConnectionConfigError as err:
        refused = str(err)
    else:
        refused = ""
    if refused:
        assert "'fuzzed'" in refused  # the message names the connection
        if password and len(password) > 3 and password not in f"{host}{schema}{extra}":
            # never the secret: compared with the message for another secret, so that a secret that is
            # a word of the message itself ("pass" in "password") does not count
            try:
                LakeFSConnectionSettings.from_connection(connection("\u2063" * len(password)))
                template = ""
            except LakeFSConnectionConfigError as err:
                template = str(err)
            if password not in template:
                assert password not in refused  # and never the secret
        return
    # a correct parse: an http(s) URL of a host, credentials as given, usable options
    endpoint = urllib.parse.urlsplit(settings.endpoint)
    assert endpoint.scheme in ("http", "https")
    assert endpoint.hostname
    assert endpoint.port is None or 0 < endpoint.port < 65536
    assert not endpoint.query
    assert not endpoint.fragment
    assert not settings.endpoint.endswith("/")
    assert (settings.access_key_id, settings.secret_access_key) == (login, password)
    assert login
    assert password
    assert isinstance(settings.verify_ssl, bool)
    assert isinstance(settings.request_timeout, float)
    assert math.isfinite(settings.request_timeout)
    assert _finite_positive(settings.request_timeout)
    if settings.ui_url is not None:
        assert isinstance(settings.ui_url, str)
        assert urllib.parse.urlsplit(settings.ui_url).scheme in ("http", "https")
    assert settings.browser_url
    decoded = json.loads(extra) if extra and extra.strip() else {}  # a blank extra is no extra (as Airflow's)
    if isinstance(decoded, dict) and "verify_ssl" in decoded and decoded["verify_ssl"] in (False, "false", "0", "off"):
        assert settings.verify_ssl is False
