"""The iris example containers (docker/iris) as real processes against the real lakeFS.

Each test plays the operator's part: it pins inputs to commit ids, creates an attempt branch,
sets the container contract's environment (docs/reference/container-contract.md), runs
``python -m mlrepo_iris.train`` / ``predict`` as a subprocess, and commits what it uploaded.
The containers import no Airflow; only this test does (for the lakeFS hook).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping

import pytest

# The example is installed by `make install` (pip install -e docker/iris); a missing install fails loudly.
from mlrepo_iris import dataset, seed, train
from mlrepo_sdk import contract

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.conftest import LakeFSServer

SPECIES = ["setosa", "versicolor", "virginica"]
#: what a local process inherits from the worker (as the local runner passes it on).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")
TIMEOUT_SECONDS = 120

RunContainer = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_container(lakefs_server: LakeFSServer) -> RunContainer:
    """Run ``python -m <module>`` with the contract environment; ``None`` values unset a variable."""

    def run(module: str, env: Mapping[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
        full = {name: os.environ[name] for name in INHERITED if name in os.environ}
        full.update(
            LAKEFS_ENDPOINT=lakefs_server.endpoint,
            LAKEFS_ACCESS_KEY_ID=lakefs_server.access_key_id,
            LAKEFS_SECRET_ACCESS_KEY=lakefs_server.secret_access_key,
            PYTHONUNBUFFERED="1",
        )
        for name, value in env.items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )

    return run


def commit_training_data(hook: LakeFSHook, repo: str, parts: tuple[int, ...] = (1, 2), of: int = 3) -> str:
    for part in parts:
        hook.upload_object(repo, "main", f"data/{seed.object_name(part)}", seed.training_csv(part, of))
    return hook.commit(repo, "main", f"iris parts {parts} of {of}").id


def training_env(repo: str, data_commit: str, attempt: str, **extra: str | None) -> dict[str, str | None]:
    uri = f"lakefs://{repo}/{data_commit}/data/"
    inputs = {"training_data": {"uri": uri, "repository": repo, "commit_id": data_commit, "path": "data/"}}
    env: dict[str, str | None] = {
        "MLREPO_INPUT_TRAINING_DATA": uri,
        "MLREPO_INPUTS": json.dumps(inputs, sort_keys=True),
        "MLREPO_OUTPUT": f"lakefs://{repo}/{attempt}/model/",
        "MLREPO_OUTPUT_REPOSITORY": repo,
        "MLREPO_OUTPUT_BRANCH": attempt,
        "MLREPO_OUTPUT_PATH": "model/",
        "MLREPO_PARAMS": json.dumps({"C": 0.5}),
        "MLREPO_RUN": json.dumps({"dag_id": "iris", "run_id": "r1", "task_id": "train", "try_number": 1}),
    }
    env.update(extra)
    return env


def staged_paths(hook: LakeFSHook, repo: str, branch: str, prefix: str) -> list[str]:
    return [obj.path for obj in hook.list_objects(repo, branch, prefix)]


def test_train_writes_model_and_metrics_without_committing(
    hook: LakeFSHook, repo: str, run_container: RunContainer
) -> None:
    data_commit = commit_training_data(hook, repo)
    attempt = "mlrepo-train-iris-try1"
    hook.create_branch(repo, attempt, data_commit)

    result = run_container("mlrepo_iris.train", training_env(repo, data_commit, attempt))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "[train] trained sklearn.linear_model.LogisticRegression on 100 samples" in result.stdout
    assert "warning" not in result.stderr  # inputs are pinned to commit ids
    assert hook.get_branch_head(repo, attempt) == data_commit  # the container never commits
    output_commit = hook.commit(repo, attempt, "train").id
    model_bytes = hook.read_object_bytes(repo, output_commit, "model/model.pkl")
    metrics_bytes = hook.read_object_bytes(repo, output_commit, "model/metrics.json")
    assert staged_paths(hook, repo, output_commit, "model/") == ["model/metrics.json", "model/model.pkl"]

    metrics = json.loads(metrics_bytes)
    files = [dataset.DataFile(seed.object_name(k), seed.training_csv(k, 3)) for k in (1, 2)]
    assert metrics["n_samples"] == 100
    assert metrics["classes"] == SPECIES
    assert metrics["hyperparameters"]["C"] == 0.5
    assert metrics["accuracy"] > 0.9
    assert metrics["training_data"] == {"files": [f.name for f in files], "sha256": dataset.digest(files)}
    assert metrics["model"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert metrics_bytes == json.dumps(metrics, sort_keys=True, indent=2).encode() + b"\n"
    model = pickle.loads(model_bytes)
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) == ["setosa", "virginica"]

    # Training again on the same pins, in a container of its own, gives byte-identical outputs. (A
    # fit inside this long-lived test process once differed in the last bits of the coefficients:
    # floating-point sums can depend on where numpy's buffers happen to lie. A container is a fresh
    # process every time, which is what the promise is about.)
    again_branch = "mlrepo-train-iris-try2"
    hook.create_branch(repo, again_branch, data_commit)
    again = run_container("mlrepo_iris.train", training_env(repo, data_commit, again_branch))
    assert again.returncode == 0, again.stdout + again.stderr
    assert hook.read_object_bytes(repo, again_branch, "model/model.pkl") == model_bytes
    assert hook.read_object_bytes(repo, again_branch, "model/metrics.json") == metrics_bytes
    # and the model this process fits predicts exactly as the container's does
    refit, _, _ = train.fit(files, train.hyperparameters({"C": 0.5}))
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]
    assert list(refit.predict(rows)) == list(model.predict(rows))


def test_predict_twice_with_the_same_pins_is_byte_identical(
    hook: LakeFSHook, repo: str, run_container: RunContainer
) -> None:
    files = [dataset.DataFile(seed.object_name(k), seed.training_csv(k, 3)) for k in (1, 2, 3)]
    _, model_bytes, _ = train.fit(files, train.hyperparameters({}))
    hook.upload_object(repo, "main", "models/iris/model.pkl", model_bytes)
    model_commit = hook.commit(repo, "main", "model").id
    for part in (1, 2):
        hook.upload_object(repo, "main", f"batch/{seed.object_name(part, inference=True)}", seed.inference_csv(part, 2))
    input_commit = hook.commit(repo, "main", "inference batch").id
    model_uri = f"lakefs://{repo}/{model_commit}/models/iris/"
    input_uri = f"lakefs://{repo}/{input_commit}/batch/"

    outputs = []
    for attempt, env in (
        ("mlrepo-predict-try1", {"MLREPO_MODEL": model_uri, "MLREPO_INPUT_INPUT_DATA": input_uri}),
        # the same pins, given only through MLREPO_INPUTS
        (
            "mlrepo-predict-try2",
            {"MLREPO_INPUTS": json.dumps({"model": {"uri": model_uri}, "input_data": {"uri": input_uri}})},
        ),
    ):
        hook.create_branch(repo, attempt, input_commit)
        result = run_container(
            "mlrepo_iris.predict", {**env, "MLREPO_OUTPUT": f"lakefs://{repo}/{attempt}/predictions/"}
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[predict] predicted 150 rows" in result.stdout
        output_commit = hook.commit(repo, attempt, "predict").id
        outputs.append(
            (
                hook.read_object_bytes(repo, output_commit, "predictions/predictions.csv"),
                hook.read_object_bytes(repo, output_commit, "predictions/summary.json"),
            )
        )

    assert outputs[0] == outputs[1]
    predictions, summary_bytes = outputs[0]
    lines = predictions.decode().splitlines()
    assert lines[0] == "id,species"
    rows = [line.split(",") for line in lines[1:]]
    # files in path order, rows in file order: part 1 holds the even rows, part 2 the odd ones
    assert [row_id for row_id, _ in rows] == [f"iris-{i:03d}" for i in [*range(0, 150, 2), *range(1, 150, 2)]]
    assert all(species == "setosa" for row_id, species in rows if int(row_id[5:]) < 50)
    summary = json.loads(summary_bytes)
    assert summary["n_predictions"] == 150
    assert sum(summary["counts"].values()) == 150
    assert sorted(summary["counts"]) == SPECIES
    assert summary["model"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert summary["predictions"]["sha256"] == hashlib.sha256(predictions).hexdigest()


@pytest.mark.parametrize(
    ("module", "variable"),
    [
        ("mlrepo_iris.train", "MLREPO_INPUT_TRAINING_DATA"),
        ("mlrepo_iris.train", "MLREPO_OUTPUT"),
        ("mlrepo_iris.train", "LAKEFS_ENDPOINT"),
        ("mlrepo_iris.predict", "MLREPO_MODEL"),
    ],
)
def test_a_missing_variable_fails_naming_it(
    hook: LakeFSHook, repo: str, run_container: RunContainer, module: str, variable: str
) -> None:
    data_commit = commit_training_data(hook, repo, parts=(1,))
    hook.create_branch(repo, "attempt", data_commit)
    env = training_env(repo, data_commit, "attempt", MLREPO_INPUTS=None, MLREPO_OUTPUT_REPOSITORY=None)
    env["MLREPO_INPUT_INPUT_DATA"] = env["MLREPO_INPUT_TRAINING_DATA"]
    env["MLREPO_MODEL"] = f"lakefs://{repo}/{data_commit}/model/"
    env[variable] = None

    result = run_container(module, env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert variable in result.stderr
    assert "error" in result.stderr
    assert "Traceback" not in result.stderr
    assert staged_paths(hook, repo, "attempt", "model/") == []


def test_malformed_params_fail_naming_the_variable(hook: LakeFSHook, repo: str, run_container: RunContainer) -> None:
    data_commit = commit_training_data(hook, repo, parts=(1,))
    hook.create_branch(repo, "attempt", data_commit)

    result = run_container(
        "mlrepo_iris.train", training_env(repo, data_commit, "attempt", MLREPO_PARAMS='{"C": "big"}')
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "MLREPO_PARAMS['C'] must be float, got 'big'" in result.stderr
    assert staged_paths(hook, repo, "attempt", "model/") == []


def test_no_training_data_fails(hook: LakeFSHook, repo: str, run_container: RunContainer) -> None:
    hook.upload_object(repo, "main", "data/README.md", b"no CSV here\n")
    data_commit = hook.commit(repo, "main", "no data yet").id
    hook.create_branch(repo, "attempt", data_commit)

    result = run_container("mlrepo_iris.train", training_env(repo, data_commit, "attempt"))

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no training data: no *.csv objects under lakefs://{repo}/{data_commit}/data/" in result.stderr
    assert "Traceback" not in result.stderr
    assert staged_paths(hook, repo, "attempt", "model/") == []


def test_seed_cli_commits_a_deterministic_slice(hook: LakeFSHook, repo: str, run_container: RunContainer) -> None:
    args = ("--repository", repo, "--branch", "main", "--path", "data/", "--part", "2", "--of", "3")
    result = run_container("mlrepo_iris.seed", {}, *args, "--commit", "iris part 2 of 3")

    assert result.returncode == 0, result.stdout + result.stderr
    commit_id = result.stdout.splitlines()[-1]
    assert commit_id == hook.get_branch_head(repo, "main")
    content = hook.read_object_bytes(repo, commit_id, "data/iris-part-2.csv")
    assert content == seed.training_csv(2, 3)
    lines = content.decode().splitlines()
    assert lines[0] == "sepal_length,sepal_width,petal_length,petal_width,species"
    assert len(lines) == 1 + 50
    assert lines[1] == "4.9,3.0,1.4,0.2,setosa"  # row 1 of load_iris()


def test_contract_parsing_and_errors() -> None:
    """The contract reader on its own: no lakeFS, no process."""
    base = {
        "MLREPO_INPUT_TRAINING_DATA": "lakefs://iris-train/" + "a" * 64 + "/data/",
        "MLREPO_OUTPUT_REPOSITORY": "iris-models",
        "MLREPO_OUTPUT_BRANCH": "mlrepo-train-try1",
        "MLREPO_OUTPUT_PATH": "model/",
        "LAKECTL_SERVER_ENDPOINT_URL": "http://lakefs:8000/",
        "LAKEFS_ACCESS_KEY_ID": "key",
        "LAKEFS_SECRET_ACCESS_KEY": "secret",
    }
    read = contract.read_contract(base, inputs=["training_data"])
    assert read.inputs["training_data"] == contract.LakeFSLocation("iris-train", "a" * 64, "data/")
    assert read.output.uri == "lakefs://iris-models/mlrepo-train-try1/model/"
    assert read.output.join("model.pkl") == "model/model.pkl"
    assert read.lakefs.api_url == "http://lakefs:8000/api/v1"
    assert "secret" not in repr(read)
    assert read.warnings() == []

    location = contract.LakeFSLocation.parse("lakefs://r/main/data", variable="X")
    assert location.contains("data/a.csv")
    assert not location.contains("data2/a.csv")
    assert location.relative("data/sub/a.csv") == "sub/a.csv"
    assert (
        "not at a commit id"
        in contract.read_contract(
            {**base, "MLREPO_INPUT_TRAINING_DATA": "lakefs://r/main/data/"}, inputs=["training_data"]
        ).warnings()[0]
    )

    with pytest.raises(contract.ContractError) as err:
        contract.read_contract(
            {**base, "MLREPO_INPUT_TRAINING_DATA": "s3://bucket/data/", "MLREPO_PARAMS": "[1]"},
            inputs=["training_data"],
            model=True,
        )
    message = str(err.value)
    assert "3 problems" in message
    assert "MLREPO_INPUT_TRAINING_DATA is not a lakeFS URI" in message
    assert "MLREPO_MODEL is not set" in message
    assert "MLREPO_PARAMS must be a JSON object" in message

    with pytest.raises(contract.ContractError, match="MLREPO_OUTPUT_BRANCH='other' disagrees with MLREPO_OUTPUT"):
        contract.read_contract(
            {**base, "MLREPO_OUTPUT": "lakefs://iris-models/mlrepo-train-try1/model/", "MLREPO_OUTPUT_BRANCH": "other"},
            inputs=["training_data"],
        )
    with pytest.raises(contract.ContractError, match="unknown hyperparameter"):
        train.hyperparameters({"C": 1.0, "penalty": "l1"})
    with pytest.raises(dataset.IrisDataError, match="no rows"):
        train.fit([dataset.DataFile("empty.csv", b"sepal_length,sepal_width,petal_length,petal_width,species\n")], {})
    with pytest.raises(dataset.IrisDataError, match=r"bad\.csv line 2: petal_width is not a number"):
        dataset.read_training(
            [dataset.DataFile("bad.csv", b"sepal_length,sepal_width,petal_length,petal_width,species\n1,2,3,x,a\n")]
        )
