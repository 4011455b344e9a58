"""The ``lakefs://`` Asset URI scheme: ``lakefs://<repository>/<branch or ref>/<path>``.

Registered under ``asset-uris`` in the provider info, so Airflow normalises lakeFS asset URIs
(without a handler ``Asset.normalized_uri`` is ``None``) and rejects malformed ones when the DAG is
parsed. The normal form is lakeFS's own URI: lower-case scheme, the repository as the host, then the
ref and the object path or prefix, no trailing slash, no query or fragment. An asset on a prefix
(``lakefs://repo/main/data``) stands for every object under it; ``lakefs://repo/main`` for the whole
branch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
from airflow_mlrepo.locations import SCHEME, LakeFSLocation

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

_SLASHES = re.compile(r"/{2,}")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Normalise a ``lakefs://`` URI (Airflow's ``asset-uris`` handler); ``ValueError`` when malformed.

    Airflow has already lower-cased the scheme, dropped user info, sorted the query and stripped
    trailing slashes. Here: the query and fragment go, repeated slashes in the path collapse, and
    the repository, ref and path must be valid lakeFS names.
    """
    if uri.port is not None or uri.username or uri.password:
        raise ValueError(f"A lakeFS asset URI has no port or user info: {uri.geturl()!r}")
    path = _SLASHES.sub("/", uri.path).rstrip("/")
    normalized = uri._replace(scheme=SCHEME, path=path, query="", fragment="")
    try:
        LakeFSLocation.parse(normalized.geturl())
    except InvalidLakeFSLocationError as exc:
        raise ValueError(str(exc)) from exc
    return normalized


def create_asset(*, repository: str, branch: str, path: str = "", **kwargs: Any) -> Asset:
    """An Asset for ``lakefs://repository/branch/path`` (``name`` defaults to the URI)."""
    from airflow.sdk import Asset

    location = LakeFSLocation(repository=repository, ref=branch, path=path.strip("/"))
    uri = location.uri.rstrip("/")
    return Asset(name=kwargs.pop("name", uri), uri=uri, **kwargs)


def parse_asset_uri(uri: str) -> LakeFSLocation:
    """The repository, ref and path of a (normalised) ``lakefs://`` asset URI."""
    return LakeFSLocation.parse(uri)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The OpenLineage dataset of a ``lakefs://`` Asset (``to_openlineage_converter`` in the provider info).

    Same identity as the operators' lineage (:mod:`airflow_mlrepo.lineage.naming`): namespace
    ``lakefs://<repository>``, name ``<branch>/<path>``. An asset on a bare commit id has no branch to
    name it by and is not converted (``ValueError``; the openlineage provider then skips it). Neither is
    the outlet of a training or inference task attempt that has not produced it (its START, or its FAIL:
    :func:`airflow_mlrepo.lineage.operator_lineage.outlet_not_produced`): None, which the provider skips.
    """
    from airflow_mlrepo.lineage.naming import plain_dataset
    from airflow_mlrepo.lineage.operator_lineage import outlet_not_produced

    if outlet_not_produced(asset.uri):
        return None
    return plain_dataset(parse_asset_uri(asset.uri))


__all__ = ["convert_asset_to_openlineage", "create_asset", "parse_asset_uri", "sanitize_uri"]
