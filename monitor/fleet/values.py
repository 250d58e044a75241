"""Values of point-list cells and config keys that need more than a type: a line's contracted
bandwidth (签约带宽) and a date (到期日期). (The address of an HTTP check is checked by
monitor.core.config_base.check_http_url, which the probes share.)

Pure functions; each raises ValueError with a message made to follow "FILE:LINE: column: "
(the inventory) or a YAML path (the config), and never echoes a URL (it may carry a password).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

MAX_BANDWIDTH_BPS = 10**12
"""1 Tbit/s: anything above is a typo (a contracted line of 10–622 Mbit/s, CONTRACTS.md B)."""

_PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "兆": 10**6, "千兆": 10**9}
_BIT_SUFFIXES = {"", "b", "bps", "bit", "bits", "bit/s", "bits/s", "b/s"}
_BANDWIDTH = re.compile(r"(\d+(?:\.\d+)?)\s*(千兆|兆|[kKmMgG]?)\s*(.*)")


def parse_bandwidth(text: str) -> int:
    """A line rate as people write it, in bit/s: "10M", "50 Mbps", "622Mbit/s", "1G", "1.5G",
    "512k", "100兆", "1千兆". A bare number is Mbit/s (签约带宽 columns are written in M).
    Byte rates ("10MB", "10 MB/s", "10MBps") are refused rather than guessed: "10MB/S" in a tender
    usually means a 10 Mbit/s line, but 80 Mbit/s is what it says.

    Raises ValueError: not a rate, a byte rate, zero, or above MAX_BANDWIDTH_BPS."""
    written = text.strip()
    m = _BANDWIDTH.fullmatch(unicodedata.normalize("NFKC", written))
    if m is None:
        raise ValueError(f"{written!r} is not a bandwidth (write e.g. 10M, 50Mbps, 622M, 1G)")
    number, prefix, suffix = m[1], m[2], m[3].strip()
    if suffix[:1] == "B" and suffix != "BPS":  # MB, MB/s, MBps: bytes; MBPS (all capitals) is Mbps
        raise ValueError(
            f"{written!r} is a byte rate: write line rates in bit/s (10M for a 10 Mbit/s line, 80M for 10 MB/s)"
        )
    if suffix.lower() not in _BIT_SUFFIXES:
        raise ValueError(f"{written!r}: unknown unit {suffix!r} (write e.g. 10M, 50Mbps, 622M, 1G)")
    if not prefix and not suffix:
        prefix = "m"  # a bare number: Mbit/s
    bps = round(float(number) * _PREFIXES[prefix.lower()])
    if bps <= 0:
        raise ValueError(f"{written!r}: a contracted bandwidth must be above zero")
    if bps > MAX_BANDWIDTH_BPS:
        raise ValueError(f"{written!r} is above 1 Tbit/s: a typo?")
    return bps


_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def parse_date(text: str) -> dt.date:
    """A calendar date: 2027-03-31, 2027/3/31, 2027.03.31, 2027年3月31日, 20270331; a time
    after it (a spreadsheet's "2027-03-31 00:00:00") is ignored. Raises ValueError: not a
    date, or no such day (2027-02-30); a bare number is named as such (a spreadsheet date
    column stored as numbers)."""
    written = text.strip()
    normal = unicodedata.normalize("NFKC", written)
    m = _DATE.fullmatch(normal) or _COMPACT_DATE.fullmatch(normal)
    if m is None:
        if re.fullmatch(r"\d+(?:\.\d+)?", normal):
            raise ValueError(f"{written!r} is a number, not a date: format the column as a date or write 2027-03-31")
        raise ValueError(f"{written!r} is not a date (write 2027-03-31)")
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"{written!r} is not a day of the calendar") from None
