"""``mlrepo lineage status|replay|show``: the lineage outbox by hand, and a run's lineage read back from Marquez.

``status`` and ``replay`` find the outbox and the HTTP endpoint the way the transport does: ``--outbox`` / ``--url``
win; otherwise the ``[openlineage] transport`` of the Airflow configuration, when it is the
:class:`~airflow_mlrepo.lineage.outbox.OutboxTransport`; otherwise ``$MLREPO_LINEAGE_OUTBOX`` or
``$AIRFLOW_HOME/mlrepo-lineage-outbox``.

``show`` walks from a run (its OpenLineage run id, e.g. a commit's ``mlrepo.openlineage_run_id``) or
from a lakeFS location (the run that wrote that commit) to the exact commits it read and on to the
runs that wrote those (:mod:`airflow_mlrepo.lineage.marquez_reader`). The Marquez is ``--url``, else
``$MARQUEZ_URL`` (``stack.env``) or ``$MLREPO_MARQUEZ_URL``, else ``[mlrepo] marquez_url``, else the
outbox transport's ``http.url``; the API key (if Marquez sits behind one) is ``$MARQUEZ_API_KEY`` or
``$MLREPO_MARQUEZ_API_KEY``, else the transport's ``auth.apiKey``: never a command-line argument.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
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


def _configured_marquez_url() -> str | None:
    try:
        from airflow.configuration import conf

        return str(conf.get("mlrepo", "marquez_url", fallback="") or "") or None
    except Exception:
        return None


def resolve_marquez(url: str | None) -> tuple[str, str | None] | None:
    """(Marquez base URL, API key or None) for ``mlrepo lineage show`` (module docstring), or None."""
    http = resolve_http(None, None) or {}
    configured_auth = http.get("auth")
    auth: dict[str, Any] = configured_auth if isinstance(configured_auth, dict) else {}
    key = os.environ.get("MARQUEZ_API_KEY") or os.environ.get("MLREPO_MARQUEZ_API_KEY") or auth.get("apiKey")
    found = (
        url
        or os.environ.get("MARQUEZ_URL")
        or os.environ.get("MLREPO_MARQUEZ_URL")
        or _configured_marquez_url()
        or http.get("url")
    )
    return (str(found), str(key) if key else None) if found else None


def lineage_show(args: argparse.Namespace) -> int:
    from airflow_mlrepo.exceptions import MarquezReadError, MlRepoError
    from airflow_mlrepo.lineage.marquez_reader import MarquezReader, render, to_dict, trace, writer_of
    from airflow_mlrepo.locations import LakeFSLocation

    marquez = resolve_marquez(args.url)
    if marquez is None:
        print(
            "mlrepo lineage show: error: no Marquez; give --url (e.g. http://marquez:5000), set MARQUEZ_URL "
            '(eval "$(mlrepo stack env)") or [mlrepo] marquez_url',
            file=sys.stderr,
        )
        return EXIT_FAILED
    reader = MarquezReader(marquez[0], marquez[1])
    target = str(args.target).strip()
    try:
        written = None
        if target.startswith("lakefs://"):
            written = writer_of(reader, LakeFSLocation.parse(target))
            run_id = written.run_id
        else:
            try:
                run_id = str(uuid.UUID(target))
            except ValueError:
                print(
                    f"mlrepo lineage show: error: {target!r} is neither an OpenLineage run id (a UUID) nor a "
                    "lakeFS location (lakefs://<repository>/<ref>/<path>)",
                    file=sys.stderr,
                )
                return EXIT_FAILED
        lineage = trace(reader, run_id, depth=args.depth)
    except MarquezReadError as exc:
        print(f"mlrepo lineage show: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except MlRepoError as exc:  # a malformed lakeFS location
        print(f"mlrepo lineage show: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        document = to_dict(lineage)
        if written is not None:
            document = {"location": target, "commitId": written.commit_id, "writtenBy": document}
        print(json.dumps(document, indent=2, sort_keys=True))
        return EXIT_OK
    if written is not None:
        print(f"{target}  commit {written.commit_id or 'unknown to Marquez'}  written by")
    for line in render(lineage, "  " if written is not None else ""):
        print(line)
    return EXIT_OK


def add_lineage_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "lineage",
        help="the on-disk OpenLineage outbox (status, deliver by hand) and lineage read back from Marquez",
        description=(
            "Inspect and deliver the lineage outbox of airflow_mlrepo.lineage.outbox.OutboxTransport; "
            "show a run's lineage as Marquez has it."
        ),
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

    show = commands.add_parser(
        "show",
        help="from a run or a lakeFS commit to the exact commits it read and the runs that wrote them (Marquez)",
    )
    show.add_argument(
        "target",
        metavar="RUN_ID|LAKEFS_URI",
        help="an OpenLineage run id (a commit's mlrepo.openlineage_run_id) or lakefs://<repository>/<ref>/<path>",
    )
    show.add_argument(
        "--url",
        default=None,
        help="Marquez base URL (default: $MARQUEZ_URL, $MLREPO_MARQUEZ_URL, [mlrepo] marquez_url)",
    )
    show.add_argument("--depth", type=int, default=20, help="how many runs upstream to follow (default 20)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=lineage_show)


__all__ = ["add_lineage_commands", "lineage_replay", "lineage_show", "lineage_status", "resolve_marquez"]
