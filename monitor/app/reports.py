"""Reports made from the config: the glue between FleetmonConfig and monitor.reports (the content
builders over the assessment, the renderers, the reports directory), used alike by the daemon
(ReportService's `make`, GET /api/v1/reports/{kind}) and by `fleetmon report` (over a
read-only state database beside the running daemon), so every way to a report gives the same
one.

    maker = ReportMaker(cfg, assessment)
    period = maker.period("monthly", None)            # the month before this one
    report = await maker.make("monthly", period)       # monitor.reports.document.Report

Line limits (the daily and weekly line quality): the first `latency` rule's above_ms and the
first `loss` rule's above_pct of config `rules`, else the contract's 200 ms and 5 %.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from monitor.app.config import FleetmonConfig
from monitor.assess.assessment import Assessment
from monitor.assess.periods import Period, parse_period
from monitor.metrics.results import InfluxResults
from monitor.reports.content import build
from monitor.reports.content.gather import LOSS_LIMIT_PCT, Sources, gather
from monitor.reports.document import REPORT_TYPES, Report
from monitor.core.contract import LINE_RTT_LIMIT_MS
from monitor.reports.schedule import last_period


def report_period(timezone: str, kind: str, text: str | None, now_ns: int) -> Period:
    """The period written as `text` (2026-12-03, 2026-W49, 2026-12, 2026Q4, 2026H2, 2026, A..B) in
    `timezone`, or without one the last whole period of the report's type before `now_ns`
    (yesterday, the week before …). Raises ValueError for an unknown type, PeriodError for a
    period that cannot be read or starts in the future (one not over yet is counted up to now,
    and the report says so)."""
    if kind not in REPORT_TYPES:
        raise ValueError(f"unknown report type {kind!r} (one of {', '.join(REPORT_TYPES)})")
    return parse_period(text if text is not None else last_period(kind, now_ns, timezone), timezone, now_ns)


class ReportMaker:
    """Makes the reports of `cfg` from `assessment` (the daemon's, or the CLI's read-only one)."""

    def __init__(self, cfg: FleetmonConfig, assessment: Assessment, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        self._clock = clock
        rtt = next((r.above_ms for r in cfg.rules if r.type == "latency"), LINE_RTT_LIMIT_MS)
        loss = next((r.above_pct for r in cfg.rules if r.type == "loss"), LOSS_LIMIT_PCT)
        icmp = InfluxResults(cfg.influxdb) if cfg.influxdb.enabled else None
        self.sources = Sources(assessment, cfg.language, icmp=icmp, rtt_limit_ms=rtt, loss_limit_pct=loss)

    def period(self, kind: str, text: str | None) -> Period:
        """report_period in the config's zone, now."""
        return report_period(self.cfg.timezone, kind, text, self._clock())

    async def make(self, kind: str, period: Period, *, language: str | None = None) -> Report:
        """The report of type `kind` over `period` (gathered now, built, not rendered), in
        `language` ("zh" | "en"; default the config's)."""
        sources = self.sources if language is None else dataclasses.replace(self.sources, language=language)
        return build(await gather(kind, period, sources, now_ns=self._clock()))
