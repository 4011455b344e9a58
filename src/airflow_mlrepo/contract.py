"""The container contract: the environment a training or inference container is given.

See ``docs/reference/container-contract.md``. Credentials are kept apart from the rest:
the local runner passes them as process environment, the Kubernetes runner only through a
Kubernetes Secret (``secretKeyRef``), never as literal values in the pod spec.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_mlrepo.locations import LakeFSLocation
    from airflow_mlrepo.pinning import PinnedInput

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

#: Secret-bearing variables and the key each reads from the Kubernetes Secret.
CREDENTIAL_VARIABLES: dict[str, str] = {
    "LAKEFS_ACCESS_KEY_ID": "access_key_id",
    "LAKEFS_SECRET_ACCESS_KEY": "secret_access_key",
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID": "access_key_id",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
}


def input_variable(name: str) -> str:
    """``training_data`` → ``MLREPO_INPUT_TRAINING_DATA``."""
    return INPUT_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def container_environment(
    *,
    pins: Mapping[str, PinnedInput],
    output: LakeFSLocation,
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
        "LAKECTL_SERVER_ENDPOINT_URL": endpoint,
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
