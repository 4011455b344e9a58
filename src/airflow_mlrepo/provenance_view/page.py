"""The provenance page of a task instance: which output it committed, rendered as HTML.

No Airflow import: :mod:`airflow_mlrepo.provenance_view.app` reads the task's ``return_value`` XCom
(what :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator` returns: ``{"output":
"lakefs://repo/<commit>/path", ...}``), traces the commit with
:func:`airflow_mlrepo.provenance_report.trace` and renders it here: the output commit, each pinned
input with its commit and pin rule, the model with its training data and run, and links to lakeFS
(commit, object, the changes the commit made), to the Airflow runs that produced each output and to
Marquez where ``[mlrepo] marquez_url`` is set.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
from airflow_mlrepo.locations import LakeFSLocation

if TYPE_CHECKING:
    from airflow_mlrepo.links.lakefs_ui import LakeFSUI
    from airflow_mlrepo.provenance_report import ProvenanceNode

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 14px;
       margin: 16px; color: #1a202c; background: #fff; }
h1 { font-size: 18px; margin: 0 0 12px 0; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 22px; border-left: 2px solid #e2e8f0; }
ul.tree { padding-left: 0; border-left: none; }
li.node { margin: 10px 0; }
.card { border: 1px solid #cbd5e0; border-radius: 6px; padding: 8px 12px; background: #f7fafc; }
.role { font-weight: 700; font-size: 15px; }
.kind { color: #4a5568; margin-left: 6px; }
.commit { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: #2f855a; }
.meta { color: #4a5568; margin-top: 3px; }
.links a { margin-right: 12px; }
.empty { color: #4a5568; }
.error { color: #c53030; }
"""


def output_location(return_value: Any) -> LakeFSLocation | None:
    """The output commit a task's ``return_value`` XCom names, or None when it names none."""
    if isinstance(return_value, str):
        try:
            return_value = json.loads(return_value)
        except ValueError:
            return None
    if not isinstance(return_value, dict):
        return None
    output = return_value.get("output")
    if not isinstance(output, str):
        return None
    try:
        return LakeFSLocation.parse(output)
    except InvalidLakeFSLocationError:
        return None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(url: str | None, text: str, *, top: bool = False) -> str:
    if not url:
        return ""
    target = "_top" if top else "_blank"
    return f'<a href="{_e(url)}" target="{target}" rel="noopener">{_e(text)}</a>'


def _node_html(node: ProvenanceNode, lakefs: LakeFSUI) -> str:
    kind = node.output_kind or node.kind
    parts = [
        '<li class="node"><div class="card">',
        f'<span class="role">{_e(node.role)}</span><span class="kind">({_e(kind)})</span> ',
        f"<code>{_e(node.location)}</code>",
        f'<div class="meta">commit <span class="commit">{_e(node.commit_id[:12])}</span> '
        f"· {_e(node.created_at)} · {_e(repr(node.message))} by {_e(node.committer or '?')}</div>",
    ]
    if node.pin_rule:
        pin = f"pinned by rule <b>{_e(node.pin_rule)}</b>"
        if node.pin_as_of:
            pin += f" as of {_e(node.pin_as_of)}"
        if node.pinned_from:
            pin += f" from {_e(node.pinned_from)}"
        parts.append(f'<div class="meta">{pin}</div>')
    if node.model_framework or node.model_format:
        parts.append(
            f'<div class="meta">model framework <b>{_e(node.model_framework or "?")}</b> · format '
            f"<b>{_e(node.model_format or '?')}</b></div>"
        )
    if node.model_policy:
        parts.append(f'<div class="meta">model chosen by policy <b>{_e(node.model_policy)}</b></div>')
    run = node.airflow
    if run is not None:
        parts.append(
            f'<div class="meta">Airflow: dag <b>{_e(run.dag_id)}</b> · run {_e(run.run_id)} · task '
            f"{_e(run.task_id)} · try {_e(run.try_number)}</div>"
        )
    if node.image or node.hyperparameters:
        code = f"image {_e(node.image or '(none)')}"
        if node.hyperparameters:
            code += f" · params {_e(json.dumps(node.hyperparameters, sort_keys=True))}"
        parts.append(f'<div class="meta">{code}</div>')
    links = [
        _link(node.commit_url, "lakeFS commit"),
        _link(lakefs.object(node.repository, node.commit_id, node.path), "lakeFS objects"),
        _link(lakefs.compare(node.repository, f"{node.commit_id}~1", node.commit_id), "lakeFS changes"),
    ]
    if run is not None:
        links.append(_link(run.run_url, "Airflow run", top=True))
        links.append(_link(run.task_url, "Airflow task", top=True))
        links.append(_link(run.marquez_run_url, "Marquez run"))
    parts.append(f'<div class="meta links">{"".join(link for link in links if link)}</div>')
    parts.append("</div>")
    if node.inputs:
        parts.append('<ul class="inputs">')
        parts.extend(_node_html(child, lakefs) for child in node.inputs)
        parts.append("</ul>")
    parts.append("</li>")
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def render_provenance(node: ProvenanceNode, lakefs: LakeFSUI) -> str:
    """The whole page for a task that committed ``node``."""
    heading = f"<h1>Provenance of <code>{_e(node.location)}</code></h1>"
    return _page(f"Provenance of {node.location}", f'{heading}<ul class="tree">{_node_html(node, lakefs)}</ul>')


def render_message(text: str, *, error: bool = False) -> str:
    """A page that says why there is no tree (no output recorded, lakeFS unreachable, ...)."""
    css = "error" if error else "empty"
    return _page("Provenance", f'<h1>Provenance</h1><p class="{css}">{_e(text)}</p>')


__all__ = ["output_location", "render_message", "render_provenance"]
