"""Gathering a report's facts (facts.ReportFacts) from the state database, the work-order book and
InfluxDB, through the assessment (monitor.assess.assessment.Assessment) that the HTTP API and the
CLI answer with, so that a report cannot say other than they do:

- availability: monitor.assess.availability.availability() over the period on the assessment's
  database, point list, config and online basis, with the downtime of work orders with an
  excluded cause taken out (WorkOrderBook.excluded), as Assessment.availability computes it;
  the trend: the same call over each day (week, month: TREND_STEPS) of the period;
- the score: Assessment.score (the configured scheme through its MetricSource), for the
  report types whose period the scheme assesses;
- faults: rules.alerting.faults.faults_between; work orders: WorkOrderBook.orders, .events
  (folded up to the period's end for the orders still open then), .countdown, and the breaches
  as WorkOrderBook.breaches counts them (monitor.assess.sla.count_breaches on the orders read);
- offline points at the period's end: monitor.assess.offline.offline_at on the bases of the
  long-offline check (WorkOrderBook's config);
- line quality: monitor.metrics.results.InfluxResults.icmp_summary (daily and weekly reports),
  or why it could not be read.

Errors: PeriodError for a period that starts in the future (parse_period), AvailabilityError for
an empty point list, StateDBError; a period that has not ended is gathered up to now
(`period.clipped`) and the report says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, Sequence
from zoneinfo import ZoneInfo

from monitor.assess.assessment import Assessment, NoScheme
from monitor.assess.availability import ALL, AvailabilityReport, availability
from monitor.assess.model import Exclusion
from monitor.assess.offline import offline_at, probes_for
from monitor.assess.orders import fold
from monitor.assess.periods import NS, Period
from monitor.assess.score import EvaluatedScore
from monitor.assess.sla import count_breaches
from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from monitor.core.model import Basis, Kind
from monitor.metrics.results import IcmpSummary, ResultsUnavailable
from monitor.reports.content.facts import Links, ReportFacts, ScoreMissing, TrendStep
from rules.alerting.faults import faults_between

LOSS_LIMIT_PCT = 5.0
"""Mean loss above which a line is called lossy (the default link-loss rule's `above_pct`)."""

TREND_STEPS = {"daily": None, "weekly": "day", "monthly": "day", "quarterly": "week", "half-year": "week", "annual": "month"}
"""The step of each report type's trend (None: no trend). Each step is one availability() call
(about 0.1 s for 1,850 points, whatever its length): a quarter goes by weeks, not 92 days."""
LINK_REPORTS = ("daily", "weekly")
"""Report types that show line quality (InfluxDB)."""
SCORED = {"quarterly": "quarter", "half-year": "half_year", "annual": "year"}
"""Report types that can carry a score: the scheme period (scheme.period) each one fits."""


class IcmpSource(Protocol):
    """monitor.metrics.results.InfluxResults, as far as reports read it."""

    async def icmp_summary(self, start_ns: int, end_ns: int) -> dict[str, IcmpSummary]: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where a report's facts come from.

    - assessment: the state database (read-only is enough), the point list, config
      `assessment` and the work-order book, as the API and the CLI use them.
    - language: of the config (`language`).
    - icmp: InfluxDB's results (None: InfluxDB disabled in the config, said in the report).
    - rtt_limit_ms, loss_limit_pct: a line is slow or lossy beyond these.
    """

    assessment: Assessment
    language: str
    icmp: IcmpSource | None = None
    rtt_limit_ms: float = LINE_RTT_LIMIT_MS
    loss_limit_pct: float = LOSS_LIMIT_PCT


async def gather(kind: str, period: Period, src: Sources, *, now_ns: int | None = None) -> ReportFacts:
    """The facts of the `kind` report over `period` (see the module docstring). Raises
    AvailabilityError (nothing to report on), StateDBError."""
    now = time.time_ns() if now_ns is None else now_ns
    start, end = period.start_ns, period.end_ns
    a = src.assessment
    book = a.book
    orders = tuple(await book.orders(start, end))
    exclusions = tuple(await book.excluded(start, end, orders=orders))
    report = await _availability(a, period, exclusions)
    step = TREND_STEPS[kind]
    trend = tuple([await _step(a, p, exclusions) for p in steps(period, step)] if step else ())
    faults = tuple(await a.db.execute(lambda conn: faults_between(conn, start, end)))
    at_end, clocks = [], {}
    for order in orders:
        if order.reported_ns >= end or (order.closed_ns is not None and order.closed_ns < end):
            continue
        then = order if order.is_open and _all_before(order, end) else fold(
            [e for e in await book.events(order.ref) if e.ts_ns < end])
        if then.is_open:
            at_end.append(then)
            clocks[then.ref] = tuple(book.countdown(then, end))
    breaches = count_breaches(book.sla, orders, start, end, now)  # WorkOrderBook.breaches, on the orders read
    probes = probes_for(book.cfg.long_offline.bases)
    offline = await a.db.execute(lambda conn: offline_at(conn, probes, end))
    links = await _links(src, period) if kind in LINK_REPORTS else Links(None, None, src.rtt_limit_ms, src.loss_limit_pct)
    score, missing = await _score(kind, period, a)
    return ReportFacts(
        kind=kind, period=period, generated_ns=now, timezone=a.timezone, language=src.language,
        availability=report, exclusions=exclusions, trend=trend, faults=faults, orders=orders, at_end=tuple(at_end),
        clocks=clocks, breaches=breaches, offline=offline, long_offline_days=book.long_offline_days, links=links,
        target_pct=ONLINE_RATE_TARGET_PCT, score=score, score_missing=missing, trend_step=step or "day",
    )


def _all_before(order, end: int) -> bool:
    """Whether every stamp of the order is before `end` (then it stood at the end as it stands
    now, and its events need not be read again)."""
    stamps = [order.acknowledged_ns, order.arrived_ns, order.restored_ns, order.close_proposed_ns,
              order.escalated_ns, *(r.ts_ns for r in order.replacements), *(p.ts_ns for p in order.proposals),
              *(n.ts_ns for n in order.notes)]
    return all(s is None or s < end for s in stamps)


async def _availability(a: Assessment, period: Period, exclusions: Sequence[Exclusion]) -> AvailabilityReport:
    """availability() as Assessment.availability calls it, with the excluded time read once."""
    return await availability(a.db, a.inventory, period, a.cfg.availability, online_requires=a.online_requires,
                              exclusions=exclusions)


async def _step(a: Assessment, period: Period, exclusions: Sequence[Exclusion]) -> TrendStep:
    """The online rates of one step of the trend: availability() over it."""
    inside = [
        Exclusion(e.device_id, max(e.start_ns, period.start_ns), min(e.end_ns, period.end_ns), e.kind, e.reason)
        for e in exclusions if e.start_ns < period.end_ns and e.end_ns > period.start_ns
    ]
    report = await _availability(a, period, inside)
    rates = {}
    for g in report.groups:
        if g.scope in ("fleet", "region") and g.kind in (ALL, Kind.CAMERA.value) and Basis.ONLINE in g.figures:
            rates[(g.scope, g.group, g.kind)] = g.figures[Basis.ONLINE].rate_pct
    return TrendStep(period.label, period.start_ns, period.end_ns, rates)


def steps(period: Period, step: str) -> list[Period]:
    """The period cut at local midnights into days, ISO weeks (Monday to Sunday) or months, each
    clipped to the period; labels "07-01", "W27", "2026-07"."""
    zone = ZoneInfo(period.timezone)
    day = datetime.fromtimestamp(period.start_ns // NS, zone).date()
    out = []
    while True:
        if step == "day":
            after, label = day + timedelta(days=1), f"{day:%m-%d}"
        elif step == "week":
            after = day + timedelta(days=7 - day.weekday())
            label = f"W{day.isocalendar()[1]:02d}"
        else:
            after = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            label = f"{day:%Y-%m}"
        s = max(_ns(day, zone), period.start_ns)
        if s >= period.end_ns:
            return out
        e = min(_ns(after, zone), period.end_ns)
        out.append(Period(label, "custom", s, e, period.timezone))
        day = after


def _ns(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * NS


async def _links(src: Sources, period: Period) -> Links:
    if src.icmp is None:
        return Links(None, "InfluxDB is disabled in the config (influxdb.enabled: false)", src.rtt_limit_ms,
                     src.loss_limit_pct)
    try:
        stats = await src.icmp.icmp_summary(period.start_ns, period.end_ns)
    except ResultsUnavailable as exc:
        return Links(None, str(exc), src.rtt_limit_ms, src.loss_limit_pct)
    return Links(stats, None, src.rtt_limit_ms, src.loss_limit_pct)


async def _score(kind: str, period: Period, a: Assessment) -> tuple[EvaluatedScore | None, ScoreMissing | None]:
    """The score when the configured scheme assesses periods of this report's length, else why
    not."""
    fits = SCORED.get(kind)
    if fits is None:
        return None, None
    if a.cfg.score is None:
        return None, ScoreMissing("no_scheme")
    if a.cfg.score.scheme.period != fits:
        return None, ScoreMissing("other_period", a.cfg.score.scheme.period)
    try:
        return (await a.score(period)).score, None
    except NoScheme:
        return None, ScoreMissing("no_scheme")
    except LookupError as exc:  # a metric without value: one entered by hand, or nothing counted
        return None, ScoreMissing("no_value", str(exc))
