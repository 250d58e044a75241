"""Checks for time values that come from people (config, CLI, API): zone names and the range of
instants fleetmon accepts.

Why bounds: everything stored is UTC nanoseconds in a signed 64-bit integer (SQLite INTEGER),
which ends in 2262; Python's datetime ends in 9999. A date beyond either crashed the daemon
(OverflowError) where it should have been a located error. The accepted range,
[EARLIEST, LATEST), is far wider than any maintenance window, period or work order needs.
"""

from __future__ import annotations

import re
from typing import Annotated
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""First instant accepted (inclusive)."""
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""First instant refused: dates must lie before 2100-01-01 00:00 UTC."""
EARLIEST_NS = int(EARLIEST.timestamp()) * 1_000_000_000
LATEST_NS = int(LATEST.timestamp()) * 1_000_000_000
RANGE_TEXT = "between 2000-01-01 and 2099-12-31 (UTC)"

MAX_ZONE_NAME = 64
"""Longer names are refused before the file system is asked (IANA names are at most ~30)."""
# IANA names: "UTC", "Asia/Shanghai", "America/Argentina/Buenos_Aires", "Etc/GMT+8".
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*)*")


def check_zone(name: str) -> str:
    """`name` when it is an IANA time zone that zoneinfo can load ("Asia/Shanghai", "UTC").

    Raises ValueError, never OSError: ZoneInfo("Asia") raises IsADirectoryError and a
    300-character name ENAMETOOLONG. The message shows at most 40 characters of the name.
    """
    shown = repr(name if len(name) <= 40 else name[:40] + "…")
    hint = "use an IANA name such as Asia/Shanghai (the tzdata package provides them)"
    if len(name) > MAX_ZONE_NAME:
        raise ValueError(f"time zone name too long ({len(name)} characters, at most {MAX_ZONE_NAME}): {hint}")
    if not _ZONE_NAME.fullmatch(name):
        raise ValueError(f"unknown time zone {shown}: {hint}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ("Asia"), unreadable
        raise ValueError(f"unknown time zone {shown}: {hint}") from None
    return name


def check_datetime(moment: datetime) -> datetime:
    """`moment` (aware) when it lies in [EARLIEST, LATEST); raises ValueError otherwise (and
    for a naive one). For pydantic AfterValidators of config and API fields."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-01T02:00:00+08:00")
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"{moment.date().isoformat()} is out of range: dates must lie {RANGE_TEXT}")
    return moment


def check_ns(ts_ns: int, what: str = "time") -> int:
    """`ts_ns` (UTC ns) when it lies in [EARLIEST_NS, LATEST_NS); raises ValueError otherwise."""
    if not EARLIEST_NS <= ts_ns < LATEST_NS:
        raise ValueError(f"{what} is out of range: dates must lie {RANGE_TEXT}")
    return ts_ns


ZoneName = Annotated[str, AfterValidator(check_zone)]
"""A config field holding an IANA time zone name, checked by `check_zone` (located ValueError)."""
