"""``mlrepo lineage status`` and ``mlrepo lineage replay``: look at and deliver the lineage outbox by hand.

Both find the outbox and the HTTP endpoint the way the transport does: ``--outbox`` / ``--url``
win; otherwise the ``[openlineage] transport`` of the Airflow configuration, when it is the
:class:`~airflow_mlrepo.lineage.outbox.OutboxTransport`; otherwise ``$MLREPO_LINEAGE_OUTBOX`` or
``$AIRFLOW_HOME/mlrepo-lineage-outbox``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.lineage.outbox import QUARANTINE, HttpSender, Outbox, default_outbox_dir, deliver, redact_url

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_FAILED = 1
TRANSPORT_CLASS = "airflow_mlrepo.lineage.outbox.OutboxTransport"


def configured_transport() -> dict[str, Any]:
    """``[openlineage] transport`` when it is our outbox transport, else ``{}``."""
    try:
        from airflow.configuration import conf

        transport = conf.getjson("openlineage", "transport", fallback={})
    except Exception:
        return {}
    if isinstance(transport, dict) and transport.get("type") in (TRANSPORT_CLASS, "mlrepo_outbox"):
        return transport
    return {}


def resolve_outbox(explicit: str | None) -> Outbox:
    if explicit:
        return Outbox(Path(explicit).expanduser())
    configured = configured_transport().get("outbox_dir")
    return Outbox(Path(configured).expanduser() if configured else default_outbox_dir())


def resolve_http(url: str | None, endpoint: str | None) -> dict[str, Any] | None:
    if url:
        return {"url": url, "endpoint": endpoint or "api/v1/lineage"}
    http = configured_transport().get("http")
    if isinstance(http, str):
        http = json.loads(http)
    if isinstance(http, dict) and http.get("url"):
        return {**http, **({"endpoint": endpoint} if endpoint else {})}
    return None


def lineage_status(args: argparse.Namespace) -> int:
    outbox = resolve_outbox(args.outbox)
    status = outbox.status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return EXIT_OK
    state = status["deliverer"]
    print(f"outbox:            {status['outbox']}")
    print(f"pending:           {status['pending_events']} events in {status['pending_entries']} entries")
    if status["oldest_pending_age_seconds"] is not None:
        print(f"oldest pending:    {status['oldest_pending_age_seconds']:.1f} s ago")
    print(f"rejected entries:  {status['rejected_entries']}")
    print(f"quarantined:       {status['quarantined_entries']} entries (unreadable; see {QUARANTINE}/*.reason)")
    print(f"deliverer:         {'running' if status['deliverer_running'] else 'not running'}")
    if state.get("last_success_at"):
        print(f"last delivery:     {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(state['last_success_at']))}")
    if state.get("last_error") and state.get("consecutive_failures"):
        print(f"last error:        {state['last_error']} ({state['consecutive_failures']} failures in a row)")
    return EXIT_OK


def lineage_replay(args: argparse.Namespace) -> int:
    outbox = resolve_outbox(args.outbox)
    http = resolve_http(args.url, args.endpoint)
    if http is None:
        print(
            "mlrepo lineage replay: error: no endpoint; give --url (e.g. http://marquez:5000) or configure "
            f'[openlineage] transport = {{"type": "{TRANSPORT_CLASS}", "http": {{"url": ...}}}}',
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.include_rejected:
        moved = outbox.requeue_rejected()
        print(f"{moved} rejected entries queued again")
    send = HttpSender(http)
    with outbox.delivery_lock(wait=args.wait) as acquired:
        if not acquired:
            print(
                f"mlrepo lineage replay: error: another deliverer is still working on {outbox.path} after "
                f"{args.wait:.0f} s; see `mlrepo lineage status`",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"Delivering {outbox.path} to {redact_url(str(http['url']))} ...")
        report = deliver(outbox, send, idle_exit=0.0, give_up_after=args.give_up_after, max_backoff=5.0)
    print(
        f"delivered {report.delivered_events} events ({report.delivered_entries} entries); "
        f"rejected {report.rejected_entries} entries; quarantined {report.quarantined_entries} unreadable "
        f"entries; {report.remaining_entries} entries left"
    )
    for error in report.errors:
        print(f"  set aside: {error}", file=sys.stderr)
    if report.remaining_entries:
        print(f"mlrepo lineage replay: error: endpoint still failing: {report.last_error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if not (report.rejected_entries or report.quarantined_entries) else EXIT_FAILED


def add_lineage_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "lineage",
        help="the on-disk OpenLineage outbox (status, deliver by hand)",
        description="Inspect and deliver the lineage outbox of airflow_mlrepo.lineage.outbox.OutboxTransport.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    outbox_help = "outbox directory (default: from [openlineage] transport, else $AIRFLOW_HOME/mlrepo-lineage-outbox)"

    status = commands.add_parser("status", help="pending and rejected events, deliverer state")
    status.add_argument("--outbox", default=None, help=outbox_help)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=lineage_status)

    replay = commands.add_parser("replay", help="deliver every pending event now, in order, and report")
    replay.add_argument("--outbox", default=None, help=outbox_help)
    replay.add_argument("--url", default=None, help="Marquez base URL (default: the transport's http.url)")
    replay.add_argument("--endpoint", default=None, help="endpoint path (default api/v1/lineage)")
    replay.add_argument("--include-rejected", action="store_true", help="also retry entries the endpoint rejected")
    replay.add_argument(
        "--give-up-after", type=float, default=30.0, help="stop after the endpoint failed this long (seconds)"
    )
    replay.add_argument("--wait", type=float, default=10.0, help="wait this long for a running deliverer (seconds)")
    replay.set_defaults(handler=lineage_replay)


__all__ = ["add_lineage_commands", "lineage_replay", "lineage_status"]
