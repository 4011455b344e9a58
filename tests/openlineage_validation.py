"""Validate OpenLineage events offline: the event against the OpenLineage 2-0-2 spec, and every facet
against the schema its ``_schemaURL`` names.

Schemas come from ``tests/openlineage_spec/`` (the OpenLineage project's published JSON schemas,
release 1.52.0, unchanged, Apache-2.0), the openlineage provider's own facet schemas (shipped in its
package) and ours (shipped in ``airflow_mlrepo/lineage/schemas``), all resolved by URL through a
``referencing`` registry: nothing is fetched. A facet whose ``_schemaURL`` no registered schema has
fails: its URL names no published schema.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from airflow_mlrepo.lineage import facets as our_facets

SPEC_DIR = Path(__file__).with_name("openlineage_spec")
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
OUR_SCHEMAS = "https://raw.githubusercontent.com/airflow-mlrepo/airflow-mlrepo/"
#: The openlineage provider's facets, by the file name their ``_schemaURL`` ends with.
_PROVIDER_FACETS_DIR = "airflow/providers/openlineage/facets"


def _provider_facet_dir() -> Path:
    import airflow.providers.openlineage

    return Path(airflow.providers.openlineage.__file__).parent / "facets"


@cache
def _registry() -> tuple[Registry[Any], dict[str, str]]:
    resources = []
    for path in [SPEC_DIR / "OpenLineage.json", *sorted((SPEC_DIR / "facets").glob("*.json"))]:
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
    for facet_class in our_facets.FACET_CLASSES:
        url = our_facets.schema_url(facet_class).split("#", 1)[0]
        resources.append((url, Resource.from_contents(our_facets.load_schema(facet_class))))
    provider = {path.name: path for path in _provider_facet_dir().glob("*.json")}
    by_name = {name: str(path) for name, path in provider.items()}
    return Registry().with_resources(resources), by_name


def _validate(document: Any, schema_url: str, where: str) -> None:
    registry, provider = _registry()
    base, _, fragment = schema_url.partition("#")
    if base not in registry:
        name = base.rsplit("/", 1)[-1]
        ours_or_core = base.startswith(("https://openlineage.io/", OUR_SCHEMAS))
        if ours_or_core and name not in provider:
            raise AssertionError(f"{where}: no published schema at {schema_url}")
        if name in provider:
            schema = json.loads(Path(provider[name]).read_text())
            registry = registry.with_resource(base, Resource.from_contents(schema))
        else:  # another integration's facet: its schema is not ours to check; it must still be a facet
            schema_url, fragment = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/BaseFacet", "x"
    validator = jsonschema.Draft202012Validator(
        {"$ref": schema_url if fragment else base}, registry=registry, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
    if errors:
        raise AssertionError(f"{where} does not validate against {schema_url}: {errors[0].message}")


def _facets_of(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    found += [(f"run facet {key}", facet) for key, facet in (event.get("run", {}).get("facets") or {}).items()]
    found += [(f"job facet {key}", facet) for key, facet in (event.get("job", {}).get("facets") or {}).items()]
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for dataset in event.get(side) or []:
            name = f"{dataset['namespace']} {dataset['name']}"
            for group in ("facets", extra):
                found += [(f"{side} {name} {group} {key}", facet) for key, facet in (dataset.get(group) or {}).items()]
    return found


def validate_event(event: dict[str, Any]) -> None:
    """Raise AssertionError naming the first part of ``event`` that does not follow its schema."""
    _validate(event, event.get("schemaURL") or RUN_EVENT, f"{event.get('eventType')} event of {event['job']['name']}")
    for where, facet in _facets_of(event):
        _validate(facet, facet["_schemaURL"], where)


__all__ = ["validate_event"]
