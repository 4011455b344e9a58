"""Secret scan: the stack's secrets must appear in no task log, pod spec, commit metadata, lineage event
or stack log (issue 18, item 5).

The scan looks for each secret as written, URL-quoted and base64-encoded (the forms a secret takes in a
connection URI or a Kubernetes object). A hit names the secret and where it was found, never its
value. The e2e and fault runs collect hits as they go (a test repository is scanned just before it is
deleted) and fail at the end if there is any.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The secrets of ``secrets.env`` that must never leave their files. The access key *id* is not secret.
SCANNED_SECRETS = (
    "LAKEFS_SECRET_ACCESS_KEY",
    "LAKEFS_AUTH_ENCRYPT_SECRET_KEY",
    "LAKEFS_BLOCKSTORE_SIGNING_SECRET_KEY",
    "POSTGRES_AIRFLOW_PASSWORD",
    "POSTGRES_MARQUEZ_PASSWORD",
    "MLREPO_WEBHOOK_SECRET",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
)
#: Files that hold secrets on purpose (configuration), not output: never scanned.
CONFIGURATION_FILES = frozenset({"airflow.cfg", "secrets.env", "stack.env", "webserver_config.py"})
#: Shorter values would match by chance (none of the stack's secrets is this short).
MINIMUM_LENGTH = 12


@dataclass(frozen=True)
class SecretHit:
    secret: str  # the secret's name
    where: str

    def __str__(self) -> str:
        return f"{self.secret} in {self.where}"


def _forms(value: str) -> set[bytes]:
    raw = value.encode()
    return {
        raw,
        urllib.parse.quote(value, safe="").encode(),
        urllib.parse.quote_plus(value).encode(),
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    }


@dataclass
class SecretScan:
    """The secrets to look for (name -> value) and the hits found so far."""

    secrets: Mapping[str, str]
    hits: list[SecretHit] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)  # kind of source -> how many were read

    def __post_init__(self) -> None:
        self._forms = {name: _forms(value) for name, value in self.secrets.items() if len(value) >= MINIMUM_LENGTH}

    @classmethod
    def of_stack(cls, secrets_env: Mapping[str, str]) -> SecretScan:
        return cls({name: secrets_env[name] for name in SCANNED_SECRETS if secrets_env.get(name)})

    def _count(self, kind: str) -> None:
        self.scanned[kind] = self.scanned.get(kind, 0) + 1

    def text(self, kind: str, where: str, content: bytes | str) -> None:
        """Scan one piece of content (``kind`` counts it, ``where`` names it in a hit)."""
        data = content.encode() if isinstance(content, str) else content
        self._count(kind)
        for name, forms in self._forms.items():
            if any(form in data for form in forms):
                self.hits.append(SecretHit(name, where))

    def files(self, kind: str, roots: Iterable[Path]) -> None:
        """Every file under ``roots`` except configuration files."""
        for path in _walk(roots):
            try:
                data = path.read_bytes()
            except OSError:  # removed while we walked (rotated log, delivered outbox entry)
                continue
            self.text(kind, str(path), data)

    def commits(self, hook: Any, repository: str) -> None:
        """Message and metadata of every commit on every branch of a lakeFS repository."""
        seen: set[str] = set()
        for branch in hook.list_branches(repository):
            for commit in hook.log_commits(repository, branch):
                if commit.id in seen:
                    continue
                seen.add(commit.id)
                body = json.dumps({"message": commit.message, "metadata": dict(commit.metadata)})
                self.text("commit", f"lakefs://{repository}@{commit.id[:12]} (metadata)", body)

    def pods(self, kube: Any) -> None:
        """Every pod object on a Kubernetes cluster (``kube``: a ``CoreV1Api``), spec and status."""
        for pod in kube.list_pod_for_all_namespaces().items:
            self.json("pod spec", f"pod {pod.metadata.namespace}/{pod.metadata.name}", pod.to_dict())

    def json(self, kind: str, where: str, value: Any) -> None:
        self.text(kind, where, json.dumps(value, default=str))

    def report(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.scanned.items()))
        if not self.hits:
            return f"secret scan: {len(self._forms)} secrets, 0 hits over {counts}"
        listed = "\n  ".join(str(hit) for hit in dict.fromkeys(self.hits))
        return f"secret scan: {len(self.hits)} hits over {counts}:\n  {listed}"


def _walk(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            if root.name not in CONFIGURATION_FILES:
                yield root
            continue
        for directory, _, names in os.walk(root):
            for name in sorted(names):
                if name not in CONFIGURATION_FILES:
                    yield Path(directory) / name


def scan_of_local_stack() -> SecretScan:
    """A scan for the secrets of the local stack (``mlrepo stack up``; ``MLREPO_HOME`` selects it)."""
    from mlrepo_devstack.stack.state import StackSettings, read_secrets

    return SecretScan.of_stack(read_secrets(StackSettings.from_environ()))


def local_stack_logs_dir() -> Path:
    """The local stack's service logs (lakeFS, PostgreSQL, Airflow's services, Kubernetes)."""
    from mlrepo_devstack.stack.state import StackSettings

    return StackSettings.from_environ().logs_dir
