"""The interface every notification route implements, what a delivery attempt reports, and
the config fields every route has.

The outbox (rules/alerting/outbox.py) owns durability, ordering and retries; a route only knows how to
put events on its wire and what its peer answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Annotated, ClassVar, Protocol, Self, Sequence
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.timecheck import ZoneName
from rules.model import FaultEvent, Severity


class QuietHours(Strict):
    """Quiet hours of a route (config `notify.routes[].quiet_hours`): from `start` to `end`
    local time in `timezone` (over midnight when end ≤ start, e.g. 22:00–07:00), on the ISO
    `weekdays` the quiet hours start on (1 = Monday); only faults at least `min_severity` go out
    meanwhile."""

    start: dt_time
    end: dt_time
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = [1, 2, 3, 4, 5, 6, 7]
    min_severity: Severity = Severity.CRITICAL
    timezone: ZoneName = "Asia/Shanghai"

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are equal: quiet hours need a length")
        return self

    def holds_back(self, severity: Severity, ts_ns: int) -> bool:
        """True when a fault of `severity` is held back at `ts_ns` (UTC ns)."""
        if severity.rank <= self.min_severity.rank:
            return False
        local = datetime.fromtimestamp(ts_ns / 1e9, UTC).astimezone(ZoneInfo(self.timezone))
        now = local.time()
        if self.start < self.end:
            return local.isoweekday() in self.weekdays and self.start <= now < self.end
        if now >= self.start:
            return local.isoweekday() in self.weekdays
        return now < self.end and (local - timedelta(days=1)).isoweekday() in self.weekdays


class RouteConfigBase(Strict):
    """What every route's config has (config `notify.routes[]`); each route type adds its own
    fields and `type: Literal[...]`.

    - name: unique route name (logs, API, `escalate_to`).
    - match: which faults go this way (region/site/kind/tags of the fault's device; region
      and site of group faults). Empty = all.
    - min_severity: only faults at least this severe.
    - remind_every_s: repeat a firing, unacknowledged fault this often (None = never).
    - escalate_after_s / escalate_to: after this long unacknowledged, also send it to the
      route named `escalate_to`.
    - quiet_hours: local hours in which this route only gets faults at least
      `quiet_hours.min_severity` (e.g. SMS at night only for critical ones); a fault held back
      that is still open when the quiet hours end is notified then. Escalations to the route
      are not held back: escalating is a deliberate choice of the route that escalates.
    """

    name: Annotated[str, Field(min_length=1, max_length=64)]
    match: SelectorConfig = SelectorConfig()
    min_severity: Severity = Severity.MINOR
    remind_every_s: Annotated[float, Field(ge=60)] | None = None
    escalate_after_s: Annotated[float, Field(ge=60)] | None = None
    escalate_to: str | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of one `deliver()` call.

    - delivered: ids of the events that reached the peer (a prefix of the events given, in
      order: a route never skips ahead, so order is kept).
    - retry_after_s: the rest should wait this long (rate limit, peer down); None = go on.
    - disabled: the route can never work as configured (WeCom errcode 93000: the robot key
      is invalid); the reason, for the local alarm. The outbox stops using the route.
    - error: what went wrong, for the log (None when everything was delivered).
    """

    delivered: tuple[int, ...]
    retry_after_s: float | None = None
    disabled: str | None = None
    error: str | None = None


Progress = Callable[[Sequence[int]], Awaitable[None]]
"""What a route calls, when given one, with the ids of the events of each message as soon as the
peer accepted it, before the next request goes out: the outbox records them at once, so that a
crash in the middle of a batch repeats at most the message that was in flight, not the batch."""


class Route(Protocol):
    """A notification route. One instance per configured route, used by one outbox worker at
    a time; holds its HTTP session / MQTT client between `__aenter__` and `__aexit__`.
    Constructed as `RouteClass(cfg, duty)` (duty: rules.alerting.duty.DutyRoster, for @mentions)."""

    type: ClassVar[str]  # "wecom" | "webhook" | "mqtt"
    name: str  # the configured route name

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """Deliver as many of `events` (oldest first) as the peer and the route's own limits
        allow now; may combine several into one message (digest). Never raises for a dead,
        slow or erroring peer: that is what Delivery says. Awaits `progress(ids)` after each
        message the peer accepted (Progress)."""
        ...
