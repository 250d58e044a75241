"""The assessment (考核) of one fleet as people ask for it: availability over a period, the
score, a spot check, the long-offline points. One object over the state database, the point
list, the config section `assessment` and the work-order book, used alike by the daemon's HTTP
API (on its own database connection) and by the `fleetmon availability / score / spot-check /
long-offline` commands (on a read-only connection beside the running daemon), so both give the
same figures from the same code.

Every computation takes the downtime of work orders with an excluded cause out
(WorkOrderBook.excluded), as the contracts do ("市政、电力故障、人为破坏及不可抗力引起的故障均不在
考核范围内").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Collection, Mapping, Sequence

from monitor.assess.availability import AvailabilityReport, availability
from monitor.assess.config import AssessmentConfig
from monitor.assess.model import Exclusion
from monitor.assess.offline import LongOffline
from monitor.assess.periods import Period, parse_instant, parse_period
from monitor.assess.score import EvaluatedScore, evaluate
from monitor.assess.source import AssessmentSource, manual_values, system_of
from monitor.assess.spotcheck import ResultSource, SpotCheck, spot_check
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Basis, Selector
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB

_WEEK_NS = 7 * 86_400 * 10**9
_SCHEME_PERIODS = {"quarter": "quarter", "half_year": "half", "year": "year"}


class NoScheme(LookupError):
    """The config has no `assessment.score`: nothing to score with."""


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """The score of `period` (EvaluatedScore, every figure with its evidence) and notes for
    people: a period clipped to now, fleetmon not watching for a while, a period that is not
    the scheme's own length."""

    period: Period
    score: EvaluatedScore
    notes: tuple[str, ...]


class Assessment:
    """Answers for the fleet `inventory` from `db` (read-write or read-only) and `book`.

    - cfg: config section `assessment`; timezone, language: of the config;
    - online_requires: availability.online_requires (what "online" is, as for the live rates);
    - results: where raw probe results are read back for spot checks (InfluxDB), or None;
    - clock: UTC ns now.
    """

    def __init__(
        self,
        db: StateDB,
        inventory: Inventory,
        cfg: AssessmentConfig,
        book: WorkOrderBook,
        *,
        timezone: str,
        online_requires: Sequence[Basis],
        results: ResultSource | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.inventory = inventory
        self.cfg = cfg
        self.book = book
        self.timezone = timezone
        self.online_requires = tuple(online_requires)
        self._results = results
        self._clock = clock

    def period(self, text: str) -> Period:
        """The period written as `text` (monitor.assess.periods) in the config's zone. Raises
        PeriodError (unreadable, impossible, starting in the future)."""
        return parse_period(text, self.timezone, self._clock())

    def instant(self, text: str) -> int:
        """UTC ns of a local time people write ("2026-12-01 10:00"). Raises PeriodError."""
        return parse_instant(text, self.timezone)

    async def availability(
        self, period: Period, *, selector: Selector | None = None, device_ids: Collection[str] | None = None,
    ) -> AvailabilityReport:
        """Availability of the points (all, or those selected) over `period`, excluded causes
        taken out. Raises AvailabilityError (unknown device, nothing selected)."""
        return await self._availability(period, await self.book.excluded(period.start_ns, period.end_ns),
                                        selector, device_ids)

    async def _availability(
        self, period: Period, exclusions: Sequence[Exclusion], selector: Selector | None = None,
        device_ids: Collection[str] | None = None,
    ) -> AvailabilityReport:
        return await availability(
            self.db, self.inventory, period, self.cfg.availability, online_requires=self.online_requires,
            exclusions=exclusions, device_ids=device_ids, selector=selector,
        )

    async def score(self, period: Period, manual: Mapping[str, float] | None = None) -> ScoreReport:
        """The score of `period` under the configured scheme, with the values entered by hand
        (`manual`: {metric: value}, e.g. report_nonconformities). Raises NoScheme without
        `assessment.score`, ValueError for a bad manual value, LookupError when a metric has
        no value (a manual one not given, nothing counted), ScoreError."""
        score_cfg = self.cfg.score
        if score_cfg is None:
            raise NoScheme(
                "no assessment scheme in the config: set assessment.score.scheme (qionglai, zhangjiagang or one "
                "written inline) and assessment.score.fee_per_period_yuan"
            )
        entered = manual_values(manual or {})
        now = self._clock()
        # The orders of the period, read and folded once for both of their uses.
        orders = await self.book.orders(period.start_ns, period.end_ns)
        report = await self._availability(period, await self.book.excluded(period.start_ns, period.end_ns,
                                                                          orders=orders))
        facts = await self.book.facts(period.start_ns, period.end_ns, now, system_of=system_of(score_cfg.systems),
                                      orders=orders)
        source = AssessmentSource(report, facts, now, systems=score_cfg.systems, manual=entered)
        score = evaluate(score_cfg.scheme, source, period, Decimal(score_cfg.fee_per_period_yuan))
        notes = list(report.notes)
        own = _SCHEME_PERIODS[score_cfg.scheme.period]
        if period.kind != own:
            notes.append(
                f"the scheme {score_cfg.scheme.name} assesses a {score_cfg.scheme.period.replace('_', '-')}; "
                f"{period.label} is a {period.kind} period, scored against the fee of one "
                f"{score_cfg.scheme.period.replace('_', '-')}"
            )
        return ScoreReport(period, score, tuple(notes))

    async def spot_check(self, device_id: str, at_ns: int) -> SpotCheck:
        """The point `device_id` at `at_ns` (monitor.assess.spotcheck), excluded causes in
        force shown (as far as they reach within a week either side). Raises
        AvailabilityError (unknown device, a moment in the future)."""
        exclusions = await self.book.excluded(at_ns - _WEEK_NS, min(at_ns + _WEEK_NS, self._clock()) + 1)
        return await spot_check(
            self.db, self.inventory, device_id, at_ns, timezone=self.timezone,
            online_requires=self.online_requires, exclusions=exclusions, results=self._results,
            now_ns=self._clock(),
        )

    async def long_offline(self) -> list[LongOffline]:
        """Points offline at least the configured days now (WorkOrderBook.long_offline),
        longest first; those whose open order has an excluded cause are marked so."""
        return await self.book.long_offline(self._clock())
