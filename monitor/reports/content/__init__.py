"""The report contents: from a period's facts (facts.ReportFacts, gathered by gather.gather from
the state database, the work-order book and InfluxDB) to a document.Report, one builder per
report type, each a pure function:

    facts = await gather("monthly", period, sources)
    report = build(facts)          # build_daily, build_periodic, build_quarterly by facts.kind

Modules: facts (the inputs), gather, notes (what could not be seen), words (zh/en), the parts
(parts_availability, parts_faults, parts_orders, parts_score, advice), common (header, KPIs),
and the builders (daily, periodic, quarterly).
"""

from __future__ import annotations

from monitor.reports.content.daily import build_daily
from monitor.reports.content.facts import ReportFacts
from monitor.reports.content.periodic import build_periodic
from monitor.reports.content.quarterly import build_quarterly
from monitor.reports.document import Report


def build(facts: ReportFacts) -> Report:
    """The report of `facts.kind` (one of document.REPORT_TYPES)."""
    if facts.kind == "daily":
        return build_daily(facts)
    if facts.kind == "quarterly":
        return build_quarterly(facts)
    return build_periodic(facts)


__all__ = ["build", "build_daily", "build_periodic", "build_quarterly"]
