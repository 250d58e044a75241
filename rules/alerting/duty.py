"""The duty roster (值班表): who is on duty when, so that notifications @mention them.

Shifts are local times in the configured zone; a shift whose end is before its start runs
over midnight (20:00–08:00) and belongs to the day it starts on.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Annotated, Sequence
from zoneinfo import ZoneInfo

from pydantic import Field

from monitor.core.config_base import Strict


class DutyShift(Strict):
    """One engineer's shift. mobile: the number WeCom @mentions (mentioned_mobile_list)."""

    name: Annotated[str, Field(min_length=1)]
    mobile: Annotated[str, Field(pattern=r"^\+?[0-9]{5,20}$")]
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = [1, 2, 3, 4, 5, 6, 7]  # ISO: 1 = Monday
    start: time = time(0, 0)
    end: time = time(0, 0)  # equal to start = the whole day


class DutyRoster:
    def __init__(self, shifts: Sequence[DutyShift], tz: str = "Asia/Shanghai") -> None:
        self.shifts = tuple(shifts)
        self.tz = ZoneInfo(tz)

    def on_duty(self, ts_ns: int) -> list[DutyShift]:
        """Shifts covering the instant `ts_ns` (UTC ns since the epoch), in roster order."""
        local = datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).astimezone(self.tz)
        return [s for s in self.shifts if _covers(s, local)]


def _covers(shift: DutyShift, local: datetime) -> bool:
    now = local.time()
    if shift.start == shift.end:
        return local.isoweekday() in shift.weekdays
    if shift.start < shift.end:
        return local.isoweekday() in shift.weekdays and shift.start <= now < shift.end
    # Over midnight: the part after midnight belongs to the previous day's shift.
    if now >= shift.start:
        return local.isoweekday() in shift.weekdays
    return now < shift.end and (local - timedelta(days=1)).isoweekday() in shift.weekdays
