"""Notices that cannot wait in the outbox: "状态库写入失败" (the state database takes no writes)
and its recovery, sent straight through every configured route.

The outbox lives in the state database, so while writes fail it cannot queue anything. These
two notices are therefore best-effort: one delivery attempt per route, in the order they
happened (the failure before its recovery), nothing stored, nothing retried; a route that is
down or rate-limited at that moment misses them (its log line and /healthz's 503 remain). Every
route gets them whatever its `match` and `min_severity` (the notice is about fleetmon itself).

They are FaultEvents of a fault that exists only in memory: id "statedb", rule and kind
"statedb", severity critical; the event id is negative, so it can never be an outbox row's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from monitor.state.writes import WriteFailure
from rules.model import EventKind, Fault, FaultEvent, FaultState, Severity
from rules.alerting.notifiers.base import Route

log = logging.getLogger("fleetmon.alerting")

RULE = "statedb"
TITLE = {"zh": "状态库写入失败：{cause}", "en": "state database writes failing: {cause}"}
STOP_TIMEOUT_S = 5.0
"""How long stopping waits for a notice still being sent."""


class DirectNotices:
    """Sends the state DB's failure and recovery through `routes` ({name: entered Route}), the
    title in each route's `languages[name]` ("zh" | "en"; its own setting, else the daemon's).
    `statedb` is a WriteHealth listener; `close()` waits up to STOP_TIMEOUT_S for what is being
    sent."""

    def __init__(self, routes: Mapping[str, Route], languages: Mapping[str, str]) -> None:
        self._routes = dict(routes)
        self._languages = {name: lang if lang in TITLE else "zh" for name, lang in languages.items()}
        self._last: asyncio.Task[None] | None = None
        self._failure: WriteFailure | None = None
        self._sent = 0

    def statedb(self, failure: WriteFailure | None) -> None:
        """WriteHealth listener: a failure starts (WriteFailure) or ends (None)."""
        if failure is not None:
            self._failure = failure
            kind = EventKind.FIRING
        elif self._failure is not None:
            kind, failure, self._failure = EventKind.RESOLVED, self._failure, None
        else:
            return
        self._sent += 1
        now = time.time_ns()
        events = {name: self._event(kind, failure, now, self._languages.get(name, "zh")) for name in self._routes}
        # Chained: each notice waits for the one before, so the recovery never overtakes it.
        self._last = asyncio.get_running_loop().create_task(self._send(events, self._last), name="statedb-notice")

    async def close(self) -> None:
        if self._last is not None:
            try:
                await asyncio.wait_for(self._last, STOP_TIMEOUT_S)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("stopping while a state database notice was being sent: it may not arrive")

    def _event(self, kind: EventKind, failure: WriteFailure, now_ns: int, language: str) -> FaultEvent:
        resolved = kind is EventKind.RESOLVED
        fault = Fault(
            id=RULE, rule=RULE, kind=RULE, scope="fleetmon", severity=Severity.CRITICAL,
            state=FaultState.RESOLVED if resolved else FaultState.FIRING,
            title=TITLE[language].format(cause=failure.cause),
            first_seen_ns=failure.since_ns, last_seen_ns=now_ns, fired_ns=failure.since_ns,
            resolved_ns=now_ns if resolved else None,
        )
        return FaultEvent(-self._sent, kind, now_ns, fault)

    async def _send(self, events: Mapping[str, FaultEvent], before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        for name, route in self._routes.items():
            event = events[name]
            try:
                outcome = await route.deliver([event])
            except Exception:  # a bug in the route; the notice is best-effort
                log.exception("route %s raised sending the state database notice", name)
                continue
            if event.id not in outcome.delivered:
                log.warning("route %s did not take the state database notice (%s): it is not retried", name,
                            outcome.error or outcome.disabled or f"retry after {outcome.retry_after_s} s")
