"""Alerting as one component of the daemon: rules engine, fault lifecycle, maintenance,
notification routes and their outbox, started and stopped together.

The daemon feeds it results and transitions as they come and a View at the end of every
cycle; evaluation and the fault lifecycle run on one task, cycle after cycle, so faults
change in cycle order and the event loop's callbacks never wait on SQLite.

Time: it reads both clocks of `clock` (monitor/core/clock.py): the wall clock stamps faults,
the monotonic clock measures hold times, reminders, escalation and the flapping window (a
transition is placed on it by its wall-clock age when it arrives, a probe's duration at most).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Callable, Iterable, Self, Sequence

from monitor.core.clock import SYSTEM_CLOCK, Clock, place
from monitor.fleet.inventory import Inventory
from monitor.state.tracker import Transition
from monitor.state.db import StateDB
from probes.base import ProbeResult
from rules.alerting.config import MaintenanceWindowConfig, NotifyConfig
from rules.config import RESERVED_RULE_NAMES, FlappingConfig, Rule
from rules.alerting.duty import DutyRoster
from rules.base import Condition, View
from rules.engine import RulesEngine
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.model import Severity
from rules.alerting.notifiers import ROUTE_TYPES
from rules.alerting.outbox import OutboxWorker
from rules.alerting.direct import DirectNotices

if TYPE_CHECKING:
    from probes.traps import TrapEvent

log = logging.getLogger("fleetmon.alerting")

NOTIFIER_RULE = RESERVED_RULE_NAMES[1]


class Alerting:
    """Use as `async with Alerting(inventory, db, rules=…, …) as alerting`: the config sections
    `rules`, `flapping`, `maintenance` and `notify`, and the language and time zone of texts;
    `clock`: the machine's clocks (tests drive their own)."""

    def __init__(
        self,
        inventory: Inventory,
        db: StateDB,
        *,
        rules: Sequence[Rule],
        flapping: FlappingConfig,
        maintenance: Sequence[MaintenanceWindowConfig],
        notify: NotifyConfig,
        language: str,
        timezone: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.inventory = inventory
        self._clock = clock
        self._db = db
        self._language = language
        self._timezone = timezone
        self._maintenance_cfg = maintenance
        self._notify = notify
        self.engine = RulesEngine(inventory, rules, flapping, language=language, timezone=timezone)
        self._duty = DutyRoster(notify.duty, timezone)
        self._views: asyncio.Queue[View | None] = asyncio.Queue()
        self.sources: list[Callable[[], Iterable[Condition]]] = []
        """Faults fleetmon raises itself beside the rules (e.g. a silent probe agent,
        monitor.app.agent_hub): called on the alerting task at each evaluation, must not block."""
        self._stack = AsyncExitStack()
        self.faults: FaultBook
        self.maintenance: MaintenanceBook
        self.outbox: OutboxWorker

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            self.maintenance = await MaintenanceBook.load(
                self._db, self.inventory, self._maintenance_cfg, self._timezone
            )
            self.faults = await FaultBook.load(self._db, self.inventory, self._notify.routes, self.maintenance)
            routes = {}
            for route_cfg in self._notify.routes:
                route_cls = ROUTE_TYPES[route_cfg.type][1]
                routes[route_cfg.name] = await stack.enter_async_context(route_cls(route_cfg, self._duty))
            # A disabled route becomes a local alarm through _route_alarms, each cycle.
            self.outbox = await stack.enter_async_context(OutboxWorker(self._db, routes))
            # The state DB's failures go to people straight through the routes: its outbox is
            # in the failing database.
            languages = {cfg.name: getattr(cfg, "language", self._language) for cfg in self._notify.routes}
            self._direct = DirectNotices(routes, languages)
            self._db.health.listeners.append(self._direct.statedb)
            stack.push_async_callback(self._direct.close)
            worker = asyncio.create_task(self._work(), name="alerting")
            stack.push_async_callback(self._stop_worker, worker)
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    # -- inputs from the daemon (event loop callbacks, never block) ------------------------------

    def observe(self, result: ProbeResult) -> None:
        self.engine.observe(result)

    def observe_transition(self, t: Transition) -> None:
        self.engine.observe_transition(t, place(t.ts_ns, self._clock.wall_ns(), self._clock.mono_ns()))

    def observe_trap(self, event: "TrapEvent") -> None:
        self.engine.observe_trap(event)

    def cycle(self, view: View) -> None:
        self._views.put_nowait(view)

    # -- the worker ---------------------------------------------------------------------------------

    async def _work(self) -> None:
        while (view := await self._views.get()) is not None:
            try:
                conditions = self.engine.evaluate(view, self.faults.firing_keys())
                for c in self._route_alarms():
                    conditions[c.key] = c
                for source in self.sources:
                    for c in source():
                        conditions[c.key] = c
                # A failing state DB is not an error here: the book keeps its changes in order
                # and stores them on a later cycle (WriteHealth says so, once).
                if await self.faults.apply(conditions, self._clock.wall_ns(), self._clock.mono_ns()):
                    self.outbox.wake()
            except Exception:  # a bug: say so, and keep alerting on the next cycle
                log.exception("rules evaluation failed (a bug)")
            # Not held while waiting for the next: its tables of every device would live on
            # beside the next evaluation's (a generation more: ~16 MB at 100,000 devices).
            del view

    async def _stop_worker(self, worker: asyncio.Task[None]) -> None:
        self._views.put_nowait(None)
        await worker
        # One last try for changes the database did not take; lost if it still fails.
        try:
            if await self.faults.flush():
                self.outbox.wake()
        except Exception:
            log.exception("storing the last fault changes failed (a bug)")
        if self.faults.unstored:
            log.error("stopping with %d fault changes not stored: the state database still fails",
                      self.faults.unstored)

    def _route_alarms(self) -> list[Condition]:
        """A local alarm (a fault of its own, notified through the other routes) for every
        route the outbox had to disable, e.g. a WeCom robot whose key was removed (93000)."""
        title = "通知通道{route}失效：{reason}" if self._language == "zh" else "notification route {route} disabled: {reason}"
        return [
            Condition(
                NOTIFIER_RULE, "notifier", f"route:{route}", Severity.CRITICAL,
                title.format(route=route, reason=reason), 0.0, 0.0, details={"route": route},
            )
            for route, reason in self.outbox.disabled().items()
        ]
