"""What airflow-mlrepo registers with Airflow for commit detection: triggers, sensors, asset URIs, plugin."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

from airflow_mlrepo.get_provider_info import get_provider_info
from airflow_mlrepo.webhooks.lakefs import EVENTS_ROUTE, URL_PREFIX
from airflow_mlrepo.webhooks.plugin import LakeFSWebhookPlugin


def _import(path: str) -> object:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def test_declared_modules_and_handlers_import() -> None:
    info = get_provider_info()
    for section in ("triggers", "sensors"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    (asset_uris,) = info["asset-uris"]
    assert asset_uris["schemes"] == ["lakefs"]
    assert callable(_import(asset_uris["handler"]))
    assert callable(_import(asset_uris["factory"]))
    plugins = {plugin["name"]: _import(plugin["plugin-class"]) for plugin in info["plugins"]}
    assert plugins["airflow_mlrepo_lakefs_webhook"] is LakeFSWebhookPlugin
    assert all(issubclass(plugin, AirflowPlugin) for plugin in plugins.values())


def test_webhook_plugin_is_an_airflow_plugin_entry_point_mounting_the_receiver() -> None:
    ours = {ep.name: ep for ep in entry_points(group="airflow.plugins") if ep.value.startswith("airflow_mlrepo")}
    declared = {plugin["name"] for plugin in get_provider_info()["plugins"]}
    assert set(ours) == declared, "every provider-declared plugin is also an airflow.plugins entry point"
    assert ours["airflow_mlrepo_lakefs_webhook"].load() is LakeFSWebhookPlugin
    assert issubclass(LakeFSWebhookPlugin, AirflowPlugin)
    (app,) = LakeFSWebhookPlugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX == "/mlrepo"
    assert isinstance(app["app"], FastAPI)
    assert EVENTS_ROUTE in {route.path for route in app["app"].routes}  # type: ignore[attr-defined]


def test_webhook_settings_are_declared_config_with_the_secret_sensitive() -> None:
    options = get_provider_info()["config"]["mlrepo"]["options"]
    assert options["webhook_secret"]["sensitive"] is True
    assert options["webhook_secret_variable"]["default"] == "mlrepo_lakefs_webhook_secret"
    assert options["webhook_lakefs_conn_id"]["default"] == "lakefs_default"
