"""From a report document to files kept and delivered: render each format, keep the files in the
reports directory, deliver them. What the scheduler and the CLI call.

Rendering a PDF is CPU work of seconds to minutes and, for long tables, of gigabytes (see
pdf.py), so `publish` renders in child processes by default (`isolate`, render.py): the
daemon's event loop keeps running, and the memory goes back to the system when they end.

Order and failure: every format is rendered and stored first; a render or store failure
(render.RenderError, or in-process ReportError and charts.FontMissing; store.StoreError)
raises before anything is delivered. Then
each target (every WeCom route, then e-mail) is tried independently: a target that fails does
not stop the others, and its DeliveryError is returned in `Published.errors` — the files stay
in the reports directory in any case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.reports.config import EmailConfig
from monitor.reports.delivery import DeliveryError, send_email, send_wecom
from monitor.reports.document import Report
from monitor.reports.render import render, render_isolated
from monitor.reports.store import ReportStore
from rules.alerting.notifiers.wecom import WeComConfig


@dataclass(frozen=True, slots=True)
class Published:
    """What `publish` did: the files written (in the order of the formats), the targets that
    got the report ("wecom:<route>", "email"), and the delivery failures."""

    files: tuple[Path, ...]
    delivered: tuple[str, ...]
    errors: tuple[DeliveryError, ...]


async def publish(
    report: Report,
    store: ReportStore,
    formats: Sequence[str],
    *,
    wecom: Sequence[WeComConfig] = (),
    email: EmailConfig | None = None,
    pdf_max_rows: int | None = None,
    isolate: bool = True,
) -> Published:
    """Render `report` in each of `formats`, store the files as `report.kind` of period
    `report.period.label`, and deliver them to each WeCom route and by e-mail. See the module
    docstring for failures."""
    if not formats:
        raise ValueError("no format to render")
    if isolate:
        rendered = await render_isolated(report, formats, pdf_max_rows=pdf_max_rows)
    else:
        rendered = {fmt: render(report, fmt, pdf_max_rows=pdf_max_rows) for fmt in formats}
    files = []
    for fmt in formats:
        files.append(await asyncio.to_thread(store.save, report.kind, report.period.label, fmt, rendered[fmt]))
    delivered, errors = [], []
    for route in wecom:
        try:
            await send_wecom(route, report, files)
            delivered.append(f"wecom:{route.name}")
        except DeliveryError as exc:
            errors.append(exc)
    if email is not None:
        try:
            await send_email(email, report, files)
            delivered.append("email")
        except DeliveryError as exc:
            errors.append(exc)
    return Published(tuple(files), tuple(delivered), tuple(errors))
