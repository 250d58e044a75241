"""Ranges written the way the tenders write them ("90 ≤ r < 95", "r ≥ 95", "r < 80", "r = 100"),
and the check that a list of them (an item's tiers, a scheme's grades) covers its domain once:
no gap, no overlap, nothing outside it.

Bounds are Decimals, so "95" means exactly 95; a value is compared as it is (float or Decimal,
Python compares the two exactly). Source of the notation: the Qionglai score table in
../shared/CONTRACTS.md ("90 ≤ r < 95"; "80–100" for arrival means 80 ≤ r < 100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

_NUM = r"-?\d+(?:\.\d+)?"
_VAR = r"[A-Za-z_]\w*"
_OP = r"<=|>=|==|<|>|=|≤|≥"
_BETWEEN = re.compile(rf"\s*({_NUM})\s*(<=|<|≤)\s*({_VAR})\s*(<=|<|≤)\s*({_NUM})\s*")
_ONE_SIDE = re.compile(rf"\s*({_VAR})\s*({_OP})\s*({_NUM})\s*")
_FORMS = '"90 <= r < 95", "r >= 95", "r < 80", "r = 100" (also ≤ ≥)'


@dataclass(frozen=True, slots=True)
class Range:
    """An interval of one variable: `low`/`high` None = unbounded on that side; `*_closed` says
    whether the bound itself belongs to the range. `text` is the canonical form, e.g.
    "90 ≤ r < 95", which results and messages show."""

    low: Decimal | None
    low_closed: bool
    high: Decimal | None
    high_closed: bool
    text: str

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float, Decimal)):
            return False
        if self.low is not None and (value < self.low or (value == self.low and not self.low_closed)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_closed)):
            return False
        return True

    def __str__(self) -> str:
        return self.text


def parse_range(text: object) -> Range:
    """Parse one of the forms "A <= x < B" (either operator < or <=), "x >= A", "x > A",
    "x <= B", "x < B", "x = A" (also == ≤ ≥). Raises ValueError naming the accepted forms, or
    when a two-sided range is empty (A > B, or A = B without both ends closed)."""
    if isinstance(text, Range):
        return text
    if not isinstance(text, str):
        raise ValueError(f"a range must be text such as {_FORMS}")
    if m := _BETWEEN.fullmatch(text):
        low, op1, var, op2, high = m.groups()
        lo, hi = Decimal(low), Decimal(high)
        lo_closed, hi_closed = op1 != "<", op2 != "<"
        if lo > hi or (lo == hi and not (lo_closed and hi_closed)):
            raise ValueError(f"range {text.strip()!r} is empty")
        return Range(lo, lo_closed, hi, hi_closed, f"{_num(lo)} {_sym(op1)} {var} {_sym(op2)} {_num(hi)}")
    if m := _ONE_SIDE.fullmatch(text):
        var, op, number = m.groups()
        bound = Decimal(number)
        canon = f"{var} {_sym(op)} {_num(bound)}"
        if op in ("=", "=="):
            return Range(bound, True, bound, True, canon)
        if op in (">", ">=", "≥"):
            return Range(bound, op != ">", None, False, canon)
        return Range(None, False, bound, op != "<", canon)
    raise ValueError(f"cannot read range {text!r}: write it as {_FORMS}")


def check_cover(
    ranges: Sequence[Range], low: Decimal, high: Decimal | None, what: str, unit: str = ""
) -> None:
    """Check that `ranges` cover the closed domain [low, high] (high None = no upper end) exactly
    once. `what` names the list in messages ("tiers", "levels"): entries are called
    "tiers[2] (85 ≤ r < 90)". Raises ValueError for the first problem found: a bound outside the
    domain, an entry that covers nothing of it, an overlap, or a gap (the uncovered interval is
    named)."""
    domain = f"{_num(low)}–{_num(high)}{unit}" if high is not None else f"≥ {_num(low)}{unit}"
    var = _variable(ranges[0]) if ranges else "r"
    clipped: list[tuple[Decimal, bool, Decimal | None, bool, int]] = []
    for i, r in enumerate(ranges):
        name = f"{what}[{i}] ({r.text})"
        for bound in (r.low, r.high):
            if bound is not None and (bound < low or (high is not None and bound > high)):
                raise ValueError(f"{name} reaches outside {domain}")
        lo, lo_closed = (low, True) if r.low is None else (r.low, r.low_closed)
        hi, hi_closed = (high, True) if r.high is None else (r.high, r.high_closed)
        if hi is not None and (lo > hi or (lo == hi and not (lo_closed and hi_closed))):
            raise ValueError(f"{name} covers nothing of {domain}")
        clipped.append((lo, lo_closed, hi, hi_closed, i))
    clipped.sort(key=lambda c: (c[0], not c[1]))

    # Walk up from the domain's low end: everything below `reach` is covered, `reach` itself
    # too when `reach_closed`; `last` is the entry that reached it.
    reach, reach_closed, last = low, False, -1
    for lo, lo_closed, hi, hi_closed, i in clipped:
        if reach is None or lo < reach or (lo == reach and lo_closed and reach_closed):
            raise ValueError(f"{what}[{last}] ({ranges[last].text}) and {what}[{i}] ({ranges[i].text}) overlap")
        if lo > reach or (lo == reach and not lo_closed and not reach_closed):
            gap = _gap_text(var, reach, not reach_closed, lo, not lo_closed)
            raise ValueError(f"{what} leave a gap: {gap} is in none of them")
        reach, reach_closed, last = hi, hi_closed, i
    if reach is not None and (high is None or reach < high or (reach == high and not reach_closed)):
        raise ValueError(f"{what} leave a gap: {_gap_text(var, reach, not reach_closed, high, True)} is in none of them")


def _gap_text(var: str, lo: Decimal, lo_closed: bool, hi: Decimal | None, hi_closed: bool) -> str:
    if hi is None:
        return f"{var} {'≥' if lo_closed else '>'} {_num(lo)}"
    if lo == hi:
        return f"{var} = {_num(lo)}"
    return f"{_num(lo)} {'≤' if lo_closed else '<'} {var} {'≤' if hi_closed else '<'} {_num(hi)}"


def _variable(r: Range) -> str:
    match = re.search(_VAR, r.text)
    return match.group(0) if match else "r"


def _sym(op: str) -> str:
    return {"<=": "≤", ">=": "≥", "==": "=", "≤": "≤", "≥": "≥"}.get(op, op)


def _num(d: Decimal) -> str:
    """95 for Decimal("95.0"), 99.9 for Decimal("99.90"): the figure as people write it."""
    text = format(d.normalize(), "f")
    return "0" if text == "-0" else text
