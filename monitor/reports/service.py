"""Scheduled reports in the daemon (config `reports.schedule`): `ReportService`, an async context
on the daemon's AsyncExitStack, wakes every minute (and at once when it starts, for the
catch-up), asks `schedule.due` what is due, makes each report through `make` (gather and
build, monitor.reports.content), publishes it (publish.py: rendered in child processes, kept in
the reports directory, delivered to the WeCom groups and by e-mail unless the entry says
`deliver: false`), marks its period done (ReportStore.mark_done) and prunes old files.

Failures: a report that cannot be made, rendered or stored is logged and tried again after
`retry_s` (the period stays not done, so a daemon restarted meanwhile makes it too); a reports
directory whose record of runs cannot be read makes nothing (what is done is unknown) and is
logged once, again after `retry_s` if it stays so; a delivery
that fails is logged with the target's reason, and the period is done all the same: the files
are in the reports directory (a group that missed one gets it from there, not from a storm of
retries). Nothing here blocks the event loop: the reading is the state database's thread and a
worker thread, the rendering child processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Self

from monitor.assess.periods import Period, parse_period
from monitor.core.periodic import PeriodicTask
from monitor.reports.config import ReportsConfig
from monitor.reports.document import Report
from monitor.reports.publish import Published, publish
from monitor.reports.schedule import Due, due
from monitor.reports.store import ReportStore, StoreError
from rules.alerting.notifiers.wecom import WeComConfig

log = logging.getLogger("fleetmon.reports")

MakeReport = Callable[[str, Period], Awaitable[Report]]
"""(report type, period) → the report document (gather + build)."""

WAKE_S = 60.0
RETRY_S = 900.0


class ReportService:
    """`async with ReportService(cfg, timezone, make, wecom=routes) as service:` makes the
    scheduled reports of `cfg` while inside. `wecom`: the route configs of
    `cfg.delivery.wecom` (config.wecom_routes); `clock`: UTC ns now (tests drive it);
    `published`: called with (due, Published) after each report (the daemon logs; tests
    watch)."""

    def __init__(
        self,
        cfg: ReportsConfig,
        timezone: str,
        make: MakeReport,
        *,
        wecom: Sequence[WeComConfig] = (),
        clock: Callable[[], int] = time.time_ns,
        wake_s: float = WAKE_S,
        retry_s: float = RETRY_S,
        published: Callable[[Due, Published], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = ReportStore(cfg.directory, cfg.keep_days)
        self._timezone = timezone
        self._make = make
        self._wecom = tuple(wecom)
        self._clock = clock
        self._retry_s = retry_s
        self._published = published
        self._failed: dict[tuple[str, str], float] = {}  # (type, label) → monotonic time it may be tried again
        self._said: tuple[str, float] | None = None  # the last directory error logged, and when
        # A failed round (a bug, or the reports directory unreadable) is logged and tried again.
        self._loop = PeriodicTask(self.run_due, lambda: wake_s, name="reports", log=log, what="scheduled reports")

    async def __aenter__(self) -> Self:
        await self._loop.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._loop.__aexit__(*exc_info)

    async def run_due(self) -> list[tuple[Due, Published]]:
        """Make every report due now (oldest first); returns what was published. A report that
        fails is logged and left for a later try (after `retry_s`)."""
        now = self._clock()
        try:
            runs = await asyncio.to_thread(self.store.last_runs)
        except StoreError as exc:
            self._say_once(f"scheduled reports not made: {exc}")
            return []
        self._said = None
        done = []
        for job in due(now, runs, self.cfg.schedule, self._timezone, self.cfg.catch_up):
            key = (job.report, job.label)
            if self._failed.get(key, 0.0) > time.monotonic():
                continue
            try:
                published = await self._one(job, now)
            except Exception as exc:  # noqa: BLE001 - logged with its reason, retried later
                self._failed[key] = time.monotonic() + self._retry_s
                log.error("report %s %s not made (next try in %.0f min): %s", job.report, job.label,
                          self._retry_s / 60, exc, exc_info=not isinstance(exc, (OSError, ValueError, RuntimeError)))
                continue
            self._failed.pop(key, None)
            done.append((job, published))
            if self._published is not None:
                self._published(job, published)
        if done:
            removed = await asyncio.to_thread(self.store.prune, now)
            if removed:
                log.info("reports older than %d days deleted: %d file(s)", self.store.keep_days, len(removed))
        return done

    def _say_once(self, message: str) -> None:
        """Log `message` when it is new, or `retry_s` after it was last logged: a directory that
        stays broken is not a line every minute."""
        now = time.monotonic()
        if self._said is None or self._said[0] != message or now - self._said[1] >= self._retry_s:
            log.error("%s", message)
            self._said = (message, now)

    async def _one(self, job: Due, now: int) -> Published:
        entry = next(e for e in self.cfg.schedule if e.report == job.report)
        period = parse_period(job.label, self._timezone, now)
        report = await self._make(job.report, period)
        delivery = self.cfg.delivery
        published = await publish(
            report, self.store, self.cfg.formats_for(job.report),
            wecom=self._wecom if entry.deliver else (), email=delivery.email if entry.deliver else None,
            pdf_max_rows=self.cfg.pdf_max_rows,
        )
        await asyncio.to_thread(self.store.mark_done, job.report, job.label)
        names = ", ".join(p.name for p in published.files)
        log.info("report %s %s made: %s%s", job.report, job.label, names,
                 f", delivered to {', '.join(published.delivered)}" if published.delivered else "")
        for error in published.errors:
            log.warning("report %s %s not delivered: %s (kept at %s)", job.report, job.label, error, names)
        return published
