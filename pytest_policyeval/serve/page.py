"""The status page: every evaluation with its status, gate outcome and a link to its report."""

from __future__ import annotations

import html
import time
from typing import Any

from pytest_policyeval.redact import redact_uri

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}"
    ".done{color:#1a7f37}.error,.system_error{color:#cf222e}.running{color:#9a6700}"
)


def status_page(evaluations: list[Any]) -> str:
    rows = "".join(_row(e) for e in evaluations) or '<tr><td colspan="6">no evaluations yet</td></tr>'
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>policy evaluations</title>'
        f'<meta http-equiv="refresh" content="10"><style>{STYLE}</style></head><body>'
        "<h1>Policy evaluations</h1><table><thead><tr><th>id</th><th>policy</th><th>suites</th>"
        "<th>status</th><th>gate</th><th>report</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>"
    )


def _row(evaluation: Any) -> str:
    result = evaluation.result or {}
    passed = result.get("passed")
    gate = "-" if passed is None else ("pass" if passed else "fail")
    report = result.get("report_url")
    link = f'<a href="{html.escape(report, quote=True)}">report</a>' if _safe_link(report) else "-"
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(evaluation.created_at))
    cells = [
        f'<span title="{created}">{html.escape(evaluation.id[:12])}</span>',
        html.escape(redact_uri(evaluation.request.policy_uri)),
        html.escape(", ".join(evaluation.request.suites)),
        f'<span class="{evaluation.status}">{evaluation.status}</span>',
        gate,
        link,
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _safe_link(url: Any) -> bool:
    """Only web links and paths of this server: never javascript: or data: URLs from a result."""
    return isinstance(url, str) and url.startswith(("https://", "http://", "/")) and not url.startswith("//")
