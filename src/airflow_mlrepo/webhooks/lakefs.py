"""Receive lakeFS action webhooks in the Airflow api-server and turn them into asset events.

lakeFS runs a ``webhook`` hook of an action (``_lakefs_actions/*.yaml`` in the repository) after a
commit or merge and POSTs the event as JSON. This FastAPI app, mounted in the api-server by
:class:`~airflow_mlrepo.webhooks.plugin.LakeFSWebhookPlugin` under ``/mlrepo``, answers
``POST /mlrepo/lakefs/events``:

1. **Authenticate** from the headers alone, before any of the body is read: header
   ``X-Mlrepo-Webhook-Secret`` must equal the shared secret
   (``hmac.compare_digest``). The secret comes from ``[mlrepo] webhook_secret``
   (``AIRFLOW__MLREPO__WEBHOOK_SECRET``), else from the Airflow Variable named by
   ``[mlrepo] webhook_secret_variable`` (default ``mlrepo_lakefs_webhook_secret``). lakeFS fills the
   header from ``{{ ENV.LAKEFSACTION_MLREPO_WEBHOOK_SECRET }}``. The secret is never logged.
   Missing or wrong: **401**. No secret configured: **503** (the receiver refuses everything).
   Then the body is read as a stream capped at :data:`MAX_BODY_BYTES`: a ``Content-Length`` over it
   is refused with **413** before reading, a chunked body as soon as it passes the cap (**413**).
2. **Validate**: a JSON object (else **400**) with lakeFS's event fields; ``event_type`` must be
   ``post-commit`` or ``post-merge`` and ``branch_id`` and ``commit_id`` present (else **422**).
3. **Map**: the active assets with a ``lakefs://<repository>/...`` URI that at least one DAG is
   scheduled on. None for the repository: **404**. Of those, the assets on the event's branch
   whose path the commit touched (asset ``lakefs://repo/main/data`` matches changes to the object
   ``data`` or under ``data/``, checked with one lakeFS diff per distinct path through the connection
   ``[mlrepo] webhook_lakefs_conn_id``, default ``lakefs_default``; an asset without a path matches
   every commit of its branch). lakeFS unreachable for that check: **503**.
4. **Record** one asset event per matched asset with ``extra = {"lakefs": {"repository", "branch",
   "commit_id", "commits": [commit_id], "source": "webhook", ...}}``, the shape
   :func:`airflow_mlrepo.pinning.asset_event_commits` reads. A retry of the same commit finds the
   event already there and records nothing (**dedupe by asset + commit id**, serialised per asset
   with a row lock on the asset). Answer **200** with what was recorded.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from airflow_mlrepo import changes
from airflow_mlrepo.assets import seen_commits
from airflow_mlrepo.exceptions import (
    InvalidLakeFSLocationError,
    InvalidWebhookEventError,
    LakeFSError,
    LakeFSUnavailableError,
)
from airflow_mlrepo.locations import LakeFSLocation, validate_branch, validate_ref, validate_repository
from airflow_mlrepo.pinning import ASSET_EVENT_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

#: Where the plugin mounts this app in the api-server, and the route inside it.
URL_PREFIX = "/mlrepo"
EVENTS_ROUTE = "/lakefs/events"
SECRET_HEADER = "X-Mlrepo-Webhook-Secret"
SUPPORTED_EVENT_TYPES = ("post-commit", "post-merge")
SOURCE_WEBHOOK = "webhook"

CONFIG_SECTION = "mlrepo"
DEFAULT_SECRET_VARIABLE = "mlrepo_lakefs_webhook_secret"
DEFAULT_LAKEFS_CONN_ID = "lakefs_default"
#: Largest request body accepted (lakeFS events are a few hundred bytes plus commit metadata).
MAX_BODY_BYTES = 1024 * 1024


class LakeFSActionEvent(BaseModel):
    """The JSON body of a lakeFS ``webhook`` hook (lakeFS ``pkg/actions/event.go`` ``EventInfo``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    event_type: str
    repository_id: str
    branch_id: str | None = None
    commit_id: str | None = None
    event_time: str | None = None
    action_name: str | None = None
    hook_id: str | None = None
    source_ref: str | None = None
    commit_message: str | None = None
    committer: str | None = None
    commit_metadata: dict[str, str] | None = None
    merge_source: str | None = None

    @field_validator("repository_id")
    @classmethod
    def _repository(cls, value: str) -> str:
        try:
            return validate_repository(value)
        except InvalidLakeFSLocationError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _commit_event(self) -> LakeFSActionEvent:
        if self.event_type not in SUPPORTED_EVENT_TYPES:
            raise ValueError(
                f"unsupported lakeFS event_type {self.event_type!r}: this receiver handles "
                f"{' and '.join(SUPPORTED_EVENT_TYPES)} (set `on:` in the action file accordingly)"
            )
        if not self.branch_id or not self.commit_id:
            raise ValueError(f"a {self.event_type} event needs branch_id and commit_id")
        try:
            validate_branch(self.branch_id)
            validate_ref(self.commit_id)
        except InvalidLakeFSLocationError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def asset_event_facts(self) -> dict[str, Any]:
        """What goes under ``extra["lakefs"]`` of the recorded asset event."""
        facts: dict[str, Any] = {
            "repository": self.repository_id,
            "branch": self.branch_id,
            "commit_id": self.commit_id,
            "commits": [self.commit_id],
            "source": SOURCE_WEBHOOK,
            "event_type": self.event_type,
        }
        optional = {
            "event_time": self.event_time,
            "action_name": self.action_name,
            "hook_id": self.hook_id,
            "committer": self.committer,
            "commit_message": self.commit_message,
            "merge_source": self.merge_source,
            "source_ref": self.source_ref if self.event_type == "post-merge" else None,
        }
        facts.update({key: value for key, value in optional.items() if value})
        return facts


def parse_lakefs_event(body: bytes) -> LakeFSActionEvent:
    """The lakeFS event in a webhook body; :class:`InvalidWebhookEventError` (400 or 422) otherwise."""
    try:
        raw = json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise InvalidWebhookEventError("the body is not JSON", status=400) from None
    if not isinstance(raw, dict):
        raise InvalidWebhookEventError("the body must be a JSON object (a lakeFS action event)", status=400)
    try:
        return LakeFSActionEvent.model_validate(raw)
    except (ValidationError, RecursionError) as exc:
        errors = (
            [
                {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
                for error in exc.errors(include_url=False, include_input=False)
            ]
            if isinstance(exc, ValidationError)
            else [{"field": "", "message": "nested too deeply"}]
        )
        raise InvalidWebhookEventError("not a lakeFS post-commit/post-merge event", status=422, errors=errors) from None


@dataclass(frozen=True)
class ScheduledAsset:
    """An active ``lakefs://`` asset at least one DAG is scheduled on."""

    asset_id: int
    name: str
    uri: str

    @property
    def location(self) -> LakeFSLocation:
        return LakeFSLocation.parse(self.uri)


@dataclass(frozen=True)
class RecordedEvent:
    asset: ScheduledAsset
    #: None: a duplicate of an event a watcher recorded (it does not know the event's id)
    asset_event_id: int | None
    duplicate: bool
    recorded_by: str = SOURCE_WEBHOOK

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset.asset_id,
            "asset_name": self.asset.name,
            "asset_uri": self.asset.uri,
            "asset_event_id": self.asset_event_id,
            "duplicate": self.duplicate,
            "recorded_by": self.recorded_by,
        }


class AssetEventRecorder(Protocol):
    """The boundary between the receiver and Airflow's metadata DB (faked in unit tests)."""

    def scheduled_assets(self, repository: str) -> list[ScheduledAsset]: ...

    def record(self, asset: ScheduledAsset, facts: Mapping[str, Any]) -> RecordedEvent: ...


#: Answers whether a commit changed an asset's path (a lakeFS diff; faked in unit tests).
PathChecker = changes.LocationCheck


class MetadataDBAssetEventRecorder:
    """Reads assets and records asset events in Airflow's metadata DB, inside the api-server.

    Events are created with ``asset_manager.register_asset_change(..., source_is_api=True)``, the
    call behind ``POST /api/v2/assets/events``: it stores the event, queues the DAGs scheduled on
    the asset and notifies listeners.
    """

    def scheduled_assets(self, repository: str) -> list[ScheduledAsset]:
        from airflow.models.asset import AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import or_, select

        with create_session() as session:
            rows = session.execute(
                select(AssetModel.id, AssetModel.name, AssetModel.uri).where(
                    or_(
                        AssetModel.uri.startswith(f"lakefs://{repository}/"), AssetModel.uri == f"lakefs://{repository}"
                    ),
                    AssetModel.active.has(),
                    AssetModel.scheduled_dags.any(),
                )
            ).all()
        found = []
        for asset_id, name, uri in rows:
            try:
                LakeFSLocation.parse(uri)
            except InvalidLakeFSLocationError:
                log.warning("Ignoring asset %r: %r is not a lakeFS location", name, uri)
                continue
            found.append(ScheduledAsset(asset_id=int(asset_id), name=str(name), uri=str(uri)))
        return found

    def record(self, asset: ScheduledAsset, facts: Mapping[str, Any]) -> RecordedEvent:
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        repository = str(facts["repository"])
        commit_id = str(facts["commit_id"])
        with create_session() as session:
            # Serialise concurrent deliveries for this asset, so check-then-insert cannot race.
            model = session.scalar(select(AssetModel).where(AssetModel.id == asset.asset_id).with_for_update())
            if model is None:
                raise LookupError(f"asset {asset.uri!r} (id {asset.asset_id}) disappeared")
            # (asset, repository, commit) marks, shared with the watchers: one primary-key lookup
            mark = seen_commits.recorded_mark(session, asset.asset_id, repository, commit_id)
            if mark is not None:
                event_id = mark.get("asset_event_id")
                return RecordedEvent(
                    asset,
                    int(event_id) if isinstance(event_id, int) else None,
                    duplicate=True,
                    recorded_by=str(mark.get("source") or "unknown"),
                )
            event = asset_manager.register_asset_change(
                asset=model, extra={ASSET_EVENT_KEY: dict(facts)}, source_is_api=True, session=session
            )
            if event is None:
                raise LookupError(f"Airflow did not record an event for asset {asset.uri!r}")
            session.flush()
            seen_commits.mark_recorded(
                session, asset.asset_id, repository, commit_id, source=SOURCE_WEBHOOK, asset_event_id=int(event.id)
            )
            seen_commits.prune_marks(session, asset.asset_id)
            return RecordedEvent(asset, int(event.id), duplicate=False)


def configured_secret() -> str | None:
    """The shared secret: ``[mlrepo] webhook_secret``, else the Airflow Variable it names."""
    from airflow.configuration import conf

    secret = conf.get(CONFIG_SECTION, "webhook_secret", fallback="") or ""
    if secret:
        return str(secret)
    variable = conf.get(CONFIG_SECTION, "webhook_secret_variable", fallback=DEFAULT_SECRET_VARIABLE)
    if not variable:
        return None
    from airflow.models.variable import Variable

    value = Variable.get(variable, default_var=None)
    return str(value) if value else None


def lakefs_path_checker() -> PathChecker:
    """Check paths through the lakeFS connection ``[mlrepo] webhook_lakefs_conn_id``."""
    from airflow.configuration import conf

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

    conn_id = conf.get(CONFIG_SECTION, "webhook_lakefs_conn_id", fallback=DEFAULT_LAKEFS_CONN_ID)

    def touches(repository: str, commit_id: str, path: str) -> bool:
        return changes.location_changed(LakeFSHook(conn_id or DEFAULT_LAKEFS_CONN_ID), repository, commit_id, path)

    return touches


def _problem(status: int, message: str, *, close: bool = False, **facts: Any) -> JSONResponse:
    # ``close``: the answer comes before the body was read, so the connection cannot be reused
    headers = {"Connection": "close"} if close else None
    return JSONResponse(status_code=status, content={"detail": message, **facts}, headers=headers)


async def read_capped_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The request body, read as a stream of at most ``limit`` bytes; a 400/413 answer otherwise.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body without
    one (chunked transfer encoding) or one longer than it declared is refused as soon as it passes
    the limit, so the receiver never holds more than ``limit`` bytes of a request.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            return _problem(400, f"invalid Content-Length header {declared[:40]!r}", close=True)
        if length > limit:
            return _problem(413, f"body of {length} bytes is larger than {limit} bytes", close=True)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            return _problem(413, f"body larger than {limit} bytes", close=True)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    *,
    recorder: AssetEventRecorder | None = None,
    secret_provider: Callable[[], str | None] = configured_secret,
    path_checker_factory: Callable[[], PathChecker] = lakefs_path_checker,
) -> FastAPI:
    """The receiver app. The keyword arguments replace its boundaries in unit tests."""
    app = FastAPI(
        title="airflow-mlrepo lakeFS webhook receiver",
        description="Receives lakeFS post-commit/post-merge webhooks and records Airflow asset events.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    event_recorder: AssetEventRecorder = recorder or MetadataDBAssetEventRecorder()

    @app.post(EVENTS_ROUTE)
    async def receive_lakefs_event(request: Request) -> JSONResponse:
        # The secret may come from the metadata DB (a Variable) and recording writes to it:
        # blocking work runs in the thread pool, not on the event loop.
        refused = await run_in_threadpool(_authenticate, request)
        if refused is not None:
            return refused
        body = await read_capped_body(request, MAX_BODY_BYTES)
        if isinstance(body, JSONResponse):
            return body
        return await run_in_threadpool(_handle, body)

    def _authenticate(request: Request) -> JSONResponse | None:
        """Check the shared secret from the headers alone: nothing of the body is read before this."""
        try:
            secret = secret_provider()
        except Exception as exc:
            log.error("lakeFS webhook receiver cannot read its secret: %s", type(exc).__name__)
            return _problem(503, "the webhook receiver cannot read its shared secret", close=True)
        if not secret:
            return _problem(
                503,
                "the webhook receiver has no shared secret: set [mlrepo] webhook_secret or the Airflow "
                f"Variable '{DEFAULT_SECRET_VARIABLE}'",
                close=True,
            )
        offered = request.headers.get(SECRET_HEADER, "")
        if not offered or not hmac.compare_digest(offered.encode(), secret.encode()):
            log.warning("Rejected a lakeFS webhook call from %s: missing or wrong secret", _client(request))
            return _problem(401, f"missing or wrong {SECRET_HEADER} header", close=True)
        return None

    def _handle(body: bytes) -> JSONResponse:
        try:
            event = parse_lakefs_event(body)
        except InvalidWebhookEventError as exc:
            if exc.errors:
                return _problem(exc.status, str(exc), errors=exc.errors)
            return _problem(exc.status, str(exc))
        assert event.branch_id is not None
        assert event.commit_id is not None
        facts = event.asset_event_facts()
        where = f"lakefs://{event.repository_id}/{event.branch_id} at {event.commit_id}"
        assets = event_recorder.scheduled_assets(event.repository_id)
        if not assets:
            log.warning("lakeFS %s event for %s: no DAG is scheduled on that repository", event.event_type, where)
            return _problem(
                404,
                f"no Airflow DAG is scheduled on an asset of lakeFS repository '{event.repository_id}' "
                f"(expected an active Asset with URI lakefs://{event.repository_id}/<branch>/<path>)",
                repository=event.repository_id,
            )
        on_branch = [asset for asset in assets if asset.location.ref == event.branch_id]
        try:
            matched = _touched(on_branch, event, path_checker_factory)
        except LakeFSUnavailableError as exc:
            log.error("lakeFS webhook for %s: cannot check paths: %s", where, exc)
            return _problem(503, f"cannot check which paths commit {event.commit_id} changed: {exc}")
        except LakeFSError as exc:
            log.error("lakeFS webhook for %s: cannot check paths: %s", where, exc)
            return _problem(502, f"cannot check which paths commit {event.commit_id} changed: {exc}")
        recorded = [event_recorder.record(asset, facts) for asset in matched]
        for item in recorded:
            log.info(
                "lakeFS %s %s -> asset %s: %s event %d",
                event.event_type,
                where,
                item.asset.uri,
                f"already recorded by the {item.recorded_by}" if item.duplicate else "new",
                item.asset_event_id if item.asset_event_id is not None else -1,
            )
        if not matched:
            log.info("lakeFS %s event for %s matched no scheduled asset", event.event_type, where)
        return JSONResponse(
            status_code=200,
            content={
                "repository": event.repository_id,
                "branch": event.branch_id,
                "commit_id": event.commit_id,
                "events": [item.to_dict() for item in recorded],
            },
        )

    return app


def _touched(
    assets: Sequence[ScheduledAsset], event: LakeFSActionEvent, path_checker_factory: Callable[[], PathChecker]
) -> list[ScheduledAsset]:
    assert event.commit_id is not None
    changed = changes.changed_locations(
        event.repository_id, event.commit_id, [asset.location.path for asset in assets], path_checker_factory
    )
    return [asset for asset in assets if asset.location.path in changed]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown client"


__all__ = [
    "EVENTS_ROUTE",
    "SECRET_HEADER",
    "SUPPORTED_EVENT_TYPES",
    "URL_PREFIX",
    "AssetEventRecorder",
    "LakeFSActionEvent",
    "MetadataDBAssetEventRecorder",
    "ScheduledAsset",
    "create_app",
    "parse_lakefs_event",
    "read_capped_body",
]
