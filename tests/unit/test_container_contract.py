"""The container contract's two sides, written by the operators and read by the images, agree.

Both live in one module (``mlrepo_sdk.contract``): what the provider writes for a pinned run is read
back, variable by variable, by the reader every example image uses.
"""

from __future__ import annotations

import pytest
from mlrepo_sdk import contract

from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import PinnedInput

COMMIT_A = "a" * 64
COMMIT_M = "b" * 64


def _pins() -> dict[str, PinnedInput]:
    return {
        "training_data": PinnedInput(
            "training_data", LakeFSLocation("iris-train", "main", "data/"), COMMIT_A, "branch_head"
        ),
        contract.MODEL_INPUT: PinnedInput(
            contract.MODEL_INPUT, LakeFSLocation("iris-models", "main", "models/iris/"), COMMIT_M, "model_latest"
        ),
    }


def test_what_the_operators_write_the_images_read_back() -> None:
    output = LakeFSLocation("iris-predictions", "mlrepo-attempt-abc", "predictions/")
    environ = {
        **contract.container_environment(
            pins=_pins(),
            output=output,
            endpoint="http://lakefs:8000",
            hyperparameters={"C": 1.0},
            run={"dag_id": "iris_inference", "run_id": "r1"},
            model_input=contract.MODEL_INPUT,
        ),
        **contract.credential_environment("AKIAEXAMPLE", "secret-value"),
    }

    read = contract.read_contract(environ, inputs=["training_data"], model=True)

    assert read.inputs["training_data"].uri == f"lakefs://iris-train/{COMMIT_A}/data/"
    assert read.inputs["training_data"].is_pinned
    assert read.model is not None
    assert read.model.uri == f"lakefs://iris-models/{COMMIT_M}/models/iris/"
    assert (read.output.repository, read.output.ref, read.output.path) == (
        "iris-predictions",
        "mlrepo-attempt-abc",
        "predictions/",
    )
    assert read.params == {"C": 1.0}
    assert read.run == {"dag_id": "iris_inference", "run_id": "r1"}
    assert read.lakefs.endpoint == "http://lakefs:8000"
    assert (read.lakefs.access_key_id, read.lakefs.secret_access_key) == ("AKIAEXAMPLE", "secret-value")
    assert "secret-value" not in "\n".join(read.describe())


def test_every_credential_variable_is_kept_out_of_the_plain_environment() -> None:
    plain = contract.container_environment(
        pins=_pins(),
        output=LakeFSLocation("iris-models", "b", "models/"),
        endpoint="http://lakefs:8000",
        hyperparameters={},
        run={},
    )
    assert not set(plain) & set(contract.CREDENTIAL_VARIABLES)
    assert set(contract.credential_environment("k", "s")) == set(contract.CREDENTIAL_VARIABLES)


def test_a_reader_without_credentials_names_the_missing_variables() -> None:
    plain = contract.container_environment(
        pins=_pins(),
        output=LakeFSLocation("iris-out", "b", "p/"),
        endpoint="http://lakefs:8000",
        hyperparameters={},
        run={},
    )
    with pytest.raises(contract.ContractError, match=contract.LAKEFS_ACCESS_KEY_ID):
        contract.read_contract(plain, inputs=["training_data"])
