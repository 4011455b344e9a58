r"""``lakefs://repository/ref/path`` locations and lakeFS name rules.

The URI form is lakeFS's own (lakectl, lakefs-spec, the Spark FileSystem): the first
segment is the repository, the second the ref (branch, tag, commit id or ref expression
such as ``main~2``), the rest is the object path or prefix, which may be empty.

The name rules are lakeFS's (``pkg/validator`` and ``pkg/graveler/validate.go``), with Go's regexp
semantics: ``\w`` and ``\s`` are ASCII-only and ``$`` is the end of the text (never before a
trailing newline). Patterns here therefore use ``\Z`` and :data:`re.ASCII`. A name these rules
accept is one lakeFS accepts, and the reverse (checked against a real lakeFS in
``tests/integration/test_name_validation.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError

SCHEME = "lakefs"
_PREFIX = f"{SCHEME}://"

#: lakeFS repository ids (pkg/validator): lowercase letters, digits and '-', 3 to 63 characters.
REPOSITORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}\Z")
#: lakeFS branch ids (graveler ValidateBranchID): an ASCII word character, then those or '-'.
BRANCH_RE = re.compile(r"^\w[-\w]*\Z", re.ASCII)
#: lakeFS tag ids (graveler ValidateTagID): no control character, space, '/', or any of '^:?*[\\'.
TAG_RE = re.compile(r"^[^\x00-\x20/^:?*\[\\]+\Z")
#: a full lakeFS commit id.
COMMIT_ID_RE = re.compile(r"^[0-9a-f]{64}\Z")
#: refs and ref expressions (pkg/validator ReValidRef ``^[^\s]+$``, Go's ASCII ``\s``); also no '/',
#: which separates the ref from the path in a ``lakefs://`` URI.
_REF_RE = re.compile(r"^[^\t\n\f\r /]+\Z")


def validate_repository(repository: str) -> str:
    """Return ``repository`` if it is a valid lakeFS repository id, else raise with its name."""
    if not isinstance(repository, str) or not REPOSITORY_RE.match(repository):
        raise InvalidLakeFSLocationError(
            f"Invalid lakeFS repository name {repository!r}: use 3-63 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return repository


def validate_branch(branch: str) -> str:
    """Return ``branch`` if it is a valid lakeFS branch name, else raise with its name."""
    if not isinstance(branch, str) or not BRANCH_RE.match(branch):
        raise InvalidLakeFSLocationError(
            f"Invalid lakeFS branch name {branch!r}: use letters, digits, '_' or '-', "
            "starting with a letter, digit or '_'"
        )
    return branch


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid lakeFS tag name, else raise with its name."""
    if (
        not isinstance(tag, str)
        or not TAG_RE.match(tag)
        or tag == "@"
        or tag.endswith((".", ".lock"))
        or ".." in tag
        or "@{" in tag
    ):
        raise InvalidLakeFSLocationError(
            f"Invalid lakeFS tag name {tag!r}: no '/', space, control character, '..', '@{{' or any of "
            "'^:?*[\\', not '@' and not ending in '.' or '.lock'"
        )
    return tag


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it can be a lakeFS ref or ref expression, else raise with its name."""
    if not isinstance(ref, str) or not _REF_RE.match(ref):
        raise InvalidLakeFSLocationError(
            f"Invalid lakeFS ref {ref!r}: a ref is a branch, tag, commit id or expression such as "
            "'main~2', without '/' or whitespace"
        )
    return ref


def validate_path(path: str) -> str:
    """Return ``path`` if it is a usable object path (may be empty), else raise with its name."""
    if not isinstance(path, str) or "\x00" in path or path.startswith("/"):
        raise InvalidLakeFSLocationError(
            f"Invalid lakeFS object path {path!r}: paths are relative to the ref (no leading '/') and contain no NUL"
        )
    return path


def is_commit_id(ref: str) -> bool:
    """Whether ``ref`` is a full (64 hex digit) lakeFS commit id."""
    return bool(COMMIT_ID_RE.match(ref))


@dataclass(frozen=True)
class LakeFSLocation:
    """An object or prefix in lakeFS: ``lakefs://repository/ref/path``."""

    repository: str
    ref: str
    path: str = ""

    def __post_init__(self) -> None:
        validate_repository(self.repository)
        validate_ref(self.ref)
        validate_path(self.path)

    @classmethod
    def parse(cls, uri: str) -> LakeFSLocation:
        """Parse ``lakefs://repository/ref[/path]``; raise :class:`InvalidLakeFSLocationError`."""
        if not isinstance(uri, str):
            raise InvalidLakeFSLocationError(f"A lakeFS location must be a string, got {type(uri).__name__}")
        if not uri.startswith(_PREFIX):
            raise InvalidLakeFSLocationError(
                f"Invalid lakeFS location {uri!r}: expected 'lakefs://<repository>/<ref>/<path>'"
            )
        rest = uri[len(_PREFIX) :]
        repository, sep, after_repo = rest.partition("/")
        ref, _, path = after_repo.partition("/")
        if not sep or not ref:
            raise InvalidLakeFSLocationError(
                f"Invalid lakeFS location {uri!r}: it names no ref; expected 'lakefs://<repository>/<ref>/<path>'"
            )
        try:
            return cls(repository=repository, ref=ref, path=path)
        except InvalidLakeFSLocationError as exc:
            raise InvalidLakeFSLocationError(f"Invalid lakeFS location {uri!r}: {exc}") from exc

    @property
    def uri(self) -> str:
        """The ``lakefs://`` URI of this location."""
        return f"{_PREFIX}{self.repository}/{self.ref}/{self.path}"

    def with_ref(self, ref: str) -> LakeFSLocation:
        """The same repository and path at another ref (e.g. pinned to a commit id)."""
        return replace(self, ref=ref)

    def __str__(self) -> str:
        return self.uri
