"""The ``lakefs://`` Asset URI handler, through Airflow's own Asset class and provider discovery."""

from __future__ import annotations

import urllib.parse

import pytest
from airflow.sdk import Asset

from airflow_mlrepo.assets.lakefs import create_asset, parse_asset_uri, sanitize_uri


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("lakefs://data/main/train", "lakefs://data/main/train"),
        ("lakefs://data/main/train/", "lakefs://data/main/train"),
        ("LAKEFS://data/main//train///x.csv", "lakefs://data/main/train/x.csv"),
        ("lakefs://data/main", "lakefs://data/main"),
        ("lakefs://data/main/train?b=2&a=1#frag", "lakefs://data/main/train"),
    ],
)
def test_assets_normalise_through_the_registered_handler(written: str, normalized: str) -> None:
    asset = Asset(written)
    assert asset.uri == normalized
    assert asset.normalized_uri == normalized


@pytest.mark.parametrize(
    "uri",
    [
        "lakefs://Data/main/x",
        "lakefs://data",
        "lakefs://data:8000/main/x",
        "lakefs://ab/main/x",
        "lakefs://data/ma in/x",
    ],
)
def test_malformed_lakefs_uris_are_refused_when_the_asset_is_declared(uri: str) -> None:
    with pytest.raises(ValueError, match="lakeFS"):
        Asset(uri)


def test_handler_alone() -> None:
    parts = sanitize_uri(urllib.parse.urlsplit("lakefs://data/main/a//b?x=1"))
    assert urllib.parse.urlunsplit(parts) == "lakefs://data/main/a/b"


def test_factory_and_parser() -> None:
    asset = create_asset(repository="data", branch="main", path="/train/")
    assert asset.uri == "lakefs://data/main/train"
    assert asset.name == "lakefs://data/main/train"
    location = parse_asset_uri(asset.uri)
    assert (location.repository, location.ref, location.path) == ("data", "main", "train")
    assert create_asset(repository="data", branch="main", name="training data").name == "training data"
