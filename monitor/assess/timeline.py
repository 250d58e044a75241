"""One point's time, segment by segment: its probes' stored states, whether fleetmon was
watching, and whether the time is excluded, combined into the bases and tallied.

The bases are combined by monitor.state.availability.combine itself (the live rules), once for
every combination of probe states, into a lookup table: the period's figures and the live
online rate cannot drift apart. Everything else is integer arithmetic on UTC ns.

Codes used in the tables:
- a probe's code for a device at a moment (the picture tracker, monitor.state.availability.
  PICTURE, is a probe here: its transitions and cycles are stored alike, history.PROBE_ORDER):
  UNKNOWN, UP, DOWN, UNREACHABLE (its stored state),
  NA (it has not judged the device yet, or it was not running in that session: its basis does
  not apply), SILENT (stored UNKNOWN because the probe agent watching it went silent:
  monitor.assess.history.SILENT), BLIND (it applies but nobody was watching: no session, or
  the probe stalled);
- a basis' class: the same seven (NA: the basis does not apply to the device then); an unknown
  basis is BLIND when one of its probes is, else SILENT when one of its probes is;
- the exclusion layer (the highest applies): NONE, CAUSE (a work order's excluded cause),
  MAINTENANCE, STATUS (延建/拆除), OUTSIDE (before the point's first evidence: not a point yet).
"""

from __future__ import annotations

import itertools
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from monitor.assess.config import UnknownPolicy
from monitor.assess.history import NO_VERDICT, PROBE_ORDER, History
from monitor.assess.history import SILENT as _STORED_SILENT
from monitor.assess.model import Exclusion
from monitor.core.model import Basis, Device, Kind, Selector, Status
from monitor.state.availability import PICTURE, combine
from monitor.state.tracker import State
from probes import probes_of
from rules.alerting.maintenance import MaintenanceWindow

UNKNOWN, UP, DOWN, UNREACHABLE, NA, SILENT, BLIND = range(7)
_CODES = 7
"""Probe codes; the stored ones (history.STATE_CODE, NO_VERDICT, SILENT) are the first six."""
assert (NA, SILENT) == (NO_VERDICT, _STORED_SILENT)
_STATES = (State.UNKNOWN, State.UP, State.DOWN, State.UNREACHABLE)
BASES: tuple[Basis, ...] = (Basis.NETWORK, Basis.SERVICE, Basis.VIDEO, Basis.PICTURE, Basis.ONLINE)
_MEASURED = BASES[:-1]
"""The bases the probes (and the picture tracker) make; online is combined from them."""

COV_BLIND, COV_OFF, COV_RUN = range(3)
"""Coverage of a probe at a moment, lowest priority first: not watched, not running, watched."""

EX_NONE, EX_CAUSE, EX_MAINTENANCE, EX_STATUS, EX_OUTSIDE = range(5)
_EX_CODES = 5
EXCLUSION_KINDS = {"cause": EX_CAUSE, "maintenance": EX_MAINTENANCE, "status": EX_STATUS}
"""Kinds of `Exclusion` taken from callers (work orders give "cause") and their layer."""
_FOREVER = 2**62

B_UP, B_DOWN, B_UNREACHABLE, B_UNDECIDED, B_BLIND, B_STATUS, B_MAINTENANCE, B_CAUSE, B_SILENT = range(9)
BUCKETS = 9
"""Time buckets per basis; flat index = basis index × BUCKETS + bucket."""
_CLASS_BUCKET = {UP: B_UP, DOWN: B_DOWN, UNREACHABLE: B_UNREACHABLE, UNKNOWN: B_UNDECIDED, BLIND: B_BLIND,
                 SILENT: B_SILENT}
_EX_BUCKET = {EX_CAUSE: B_CAUSE, EX_MAINTENANCE: B_MAINTENANCE, EX_STATUS: B_STATUS}

C_UP, C_OFFLINE, C_UNKNOWN, C_EXCLUDED = range(4)
CHECK_BUCKETS = 4
"""Daily-check buckets per basis; flat index = basis index × CHECK_BUCKETS + bucket."""


@dataclass(frozen=True, slots=True)
class Tables:
    """Lookup tables of one `online_requires` and unknown policy. A segment's code is
    key × 5 + exclusion, key = Σ probe code × weight. `add`, `offline`, `checks` and `ratio` are
    indexed by code and filled on first use (see `_Rows`)."""

    weights: tuple[int, ...]
    eff: tuple[tuple[int, ...], ...]  # [coverage][stored state or NA] → probe code
    add: Mapping[int, tuple[int, ...]]  # [code] → flat time buckets to add the segment's length to
    offline: Mapping[int, tuple[tuple[int, int], ...]]  # [code] → (basis index, DOWN|UNREACHABLE) counted offline
    checks: Mapping[int, tuple[int, ...]]  # [code] → flat check buckets of a check in the segment
    ratio: Mapping[int, tuple[int, ...]]  # [code] → ratio slots (basis × 2 + 0 numerator / 1 denominator), interned


class _Rows(dict):
    """One table of `Tables`, code → entry, filled key by key on first use: the keys a fleet's
    history goes through are a handful of the 7^8 × 5 possible codes (8 probes, the picture's included), and building every row
    up front (`combine` once per combination) took ~9 CPU-s per process, paid by every
    `fleetmon availability` / `score` / `spot-check` run. A missing code fills the rows of its
    key in all four tables at once (`_TableBuilder.fill`); a present one is a plain dict lookup."""

    __slots__ = ("_builder",)

    def __init__(self, builder: _TableBuilder) -> None:
        super().__init__()
        self._builder = builder

    def __missing__(self, code: int) -> tuple:
        if not 0 <= code < self._builder.size:
            raise KeyError(code)
        self._builder.fill(code // _EX_CODES)
        return dict.__getitem__(self, code)


class _TableBuilder:
    """Computes the rows of one key (one combination of probe codes) for all four tables; safe
    from several threads (the assessment runs on the state database's thread, spot checks on
    the event loop's): a lock keeps the interned ratio tuples one object per value."""

    def __init__(self, online_requires: tuple[Basis, ...], policy: UnknownPolicy, n: int) -> None:
        self.online_requires, self.policy, self.n = online_requires, policy, n
        self.size = _CODES**n * _EX_CODES
        self.add, self.offline, self.checks, self.ratio = (_Rows(self) for _ in range(4))
        self._interned: dict[tuple[int, ...], tuple[int, ...]] = {}  # equal ratio tuples are one object: `is` compares
        self._lock = threading.Lock()

    def fill(self, key: int) -> None:
        codes = [0] * self.n  # the key's digits in base _CODES, most significant first (the weights' order)
        rest = key
        for i in range(self.n - 1, -1, -1):
            rest, codes[i] = divmod(rest, _CODES)
        classes = _classify(codes, self.online_requires)
        policy = self.policy
        with self._lock:
            if key * _EX_CODES in self.add:
                return  # another thread filled it meanwhile
            for ex in range(_EX_CODES):
                code = key * _EX_CODES + ex
                chk, rat = [], []
                for b, c in enumerate(classes):
                    if c == NA or ex == EX_OUTSIDE:
                        continue
                    if ex != EX_NONE:
                        chk.append(b * CHECK_BUCKETS + C_EXCLUDED)
                        continue
                    bucket = C_UP if c == UP else C_OFFLINE if c in (DOWN, UNREACHABLE) else C_UNKNOWN
                    chk.append(b * CHECK_BUCKETS + bucket)
                    up = bucket == C_UP or (bucket == C_UNKNOWN and policy is UnknownPolicy.COUNT_AS_UP)
                    counted = bucket != C_UNKNOWN or policy is not UnknownPolicy.EXCLUDE
                    rat += ([2 * b] if up else []) + ([2 * b + 1] if counted else [])
                self.offline[code] = tuple(
                    (b, c) for b, c in enumerate(classes) if c in (DOWN, UNREACHABLE) and ex == EX_NONE)
                self.checks[code] = tuple(chk)
                self.ratio[code] = self._interned.setdefault(tuple(rat), tuple(rat))
                # `add` last: its presence tells other threads the key is complete.
                self.add[code] = tuple(
                    b * BUCKETS + (_CLASS_BUCKET[c] if ex == EX_NONE else _EX_BUCKET[ex])
                    for b, c in enumerate(classes) if c != NA and ex != EX_OUTSIDE
                )


@lru_cache(maxsize=16)
def tables(online_requires: tuple[Basis, ...], policy: UnknownPolicy) -> Tables:
    n = len(PROBE_ORDER)
    weights = tuple(_CODES ** (n - 1 - i) for i in range(n))
    stored = BLIND  # the stored codes: 0 … SILENT
    eff = (
        tuple(NA if s == NA else BLIND for s in range(stored)),  # COV_BLIND: nobody watched, agent or not
        (NA,) * stored,  # COV_OFF
        tuple(range(stored)),  # COV_RUN: the stored state (or NA, or SILENT)
    )
    rows = _TableBuilder(online_requires, policy, n)
    return Tables(weights, eff, rows.add, rows.offline, rows.checks, rows.ratio)


_PROBE_DEVICE = Device("x", "x", Kind.CAMERA, None, "-", "-")


def _classify(codes: Sequence[int], online_requires: tuple[Basis, ...]) -> tuple[int, ...]:
    """Class of each basis (BASES order) for one combination of probe codes, by the live rules."""
    judged = {p: c for p, c in zip(PROBE_ORDER, codes) if c != NA}
    trackers = {p: {"x": _STATES[UNKNOWN if c in (BLIND, SILENT) else c]} for p, c in judged.items()}
    polled = {p: frozenset({"x"}) for p in judged}
    combined = combine([_PROBE_DEVICE], trackers, polled, online_requires)
    classes: dict[Basis, int] = {}
    for basis in _MEASURED:
        state = combined[basis].get("x")
        cls = NA if state is None else _STATES.index(state)
        if cls == UNKNOWN:
            feeds = (PICTURE,) if basis is Basis.PICTURE else probes_of(basis)
            cls = _unknown_class([judged.get(p) for p in feeds], cls)
        classes[basis] = cls
    state = combined[Basis.ONLINE].get("x")
    # A point none of whose probes has judged it yet is in the fleet but undecided.
    online = UNKNOWN if state is None else _STATES.index(state)
    measured = [b for b in _MEASURED if classes[b] != NA]
    used = [b for b in online_requires if b in measured] or measured
    if online == UNKNOWN:
        online = _unknown_class([classes[b] for b in used], online)
    return tuple(classes[b] for b in _MEASURED) + (online,)


def _unknown_class(parts: Sequence[int | None], default: int) -> int:
    """An unknown basis: BLIND when one of `parts` (its probes' codes, or the bases online
    uses) is (nobody watched), else SILENT when one is (its agent was silent), else `default`."""
    if BLIND in parts:
        return BLIND
    return SILENT if SILENT in parts else default


def paint(start_ns: int, end_ns: int, pieces: Iterable[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Change list [(ts_ns, code)] over [start_ns, end_ns) of pieces (start, end, code): at
    each moment the highest code of the pieces covering it, 0 where none does. The first
    entry is at start_ns; consecutive entries differ."""
    bounds = []
    for a, b, code in pieces:
        a, b = max(a, start_ns), min(b, end_ns)
        if a < b:
            bounds += ((a, 1, code), (b, -1, code))
    bounds.sort()
    cover: dict[int, int] = {}
    out = [(start_ns, 0)]
    for ts, group in itertools.groupby(bounds, key=lambda x: x[0]):
        for _, delta, code in group:
            cover[code] = cover.get(code, 0) + delta
        top = max((c for c, k in cover.items() if k > 0), default=0)
        if top != out[-1][1]:
            if out[-1][0] == ts:  # only at start_ns
                out[-1] = (ts, top)
            else:
                out.append((ts, top))
    return out


@dataclass(slots=True)
class Tally:
    """What a sweep of one point found: time per flat bucket (ns), daily checks per flat check
    bucket, and per basis its counted offline intervals, flat: start, end, class, start, …
    (an array, not objects: a quarter of a large fleet has hundreds of thousands)."""

    time: list[int]
    checks: list[int]
    offline: tuple[array, ...]


def sweep(
    start_ns: int,
    end_ns: int,
    states: list[int],
    epoch: int,
    excluded: int,
    events: list[tuple[str | None, int, int, int]],
    t: Tables,
    epochs: Sequence[tuple[int, ...]],
    instants: Sequence[int],
    ratio_diff: list[list[int]] | None,
) -> Tally:
    """Walk one point over [start_ns, end_ns).

    - `states`: per probe slot (PROBE_ORDER) its stored code at start_ns;
    - `epochs`: every combination of probe coverages (COV_* per slot) the period goes through;
      `epoch`: the index of the one in force at start_ns;
    - `excluded`: the exclusion code at start_ns;
    - `events`: (any, ts_ns, slot, value) in time order, the first item ignored (stored
      transitions come as read, with their device id); slot < n: a probe's stored state,
      slot n: the epoch index, slot n + 1: the exclusion code;
    - `instants`: the daily check instants; `ratio_diff` (daily_snapshot): difference arrays
      over the instants, one per ratio slot, that get +1 where the point starts counting in a
      slot and −1 where it stops (for the groups' per-instant rates).
    The work per segment is kept small (the segments of a large fleet's quarter number in the
    hundreds of thousands): time and checks are summed per code, spread to buckets at the end."""
    n = len(states)
    states = list(states)
    eff, weights, offline_of, ratio_of = t.eff, t.weights, t.offline, t.ratio
    covers = epochs[epoch]
    # The key (Σ probe code × weight) is kept up to date as probes change, not recomputed.
    probe_codes = [eff[c][s] for c, s in zip(covers, states)]
    key = sum(c * w for c, w in zip(probe_codes, weights))
    time_by_code: dict[int, int] = {}
    checks_by_code: dict[int, int] = {}
    offline = tuple(array("q") for _ in BASES)
    k, kmax = bisect_left(instants, start_ns), len(instants)
    current, seg = key * _EX_CODES + excluded, start_ns
    if ratio_diff is not None:
        for j in ratio_of[current]:
            ratio_diff[j][k] += 1
    i, count = 0, len(events)
    while True:
        if i < count:
            ts = events[i][1]
            while i < count and events[i][1] == ts:
                _, _, slot, value = events[i]
                if slot < n:
                    states[slot] = value
                    code = eff[covers[slot]][value]
                    key += (code - probe_codes[slot]) * weights[slot]
                    probe_codes[slot] = code
                elif slot == n:
                    covers, key = epochs[value], 0
                    for j in range(n):
                        code = eff[covers[j]][states[j]]
                        probe_codes[j] = code
                        key += code * weights[j]
                else:
                    excluded = value
                i += 1
            new = key * _EX_CODES + excluded
            if new == current:
                continue
        else:
            ts, new = end_ns, -1
        if ts > seg:  # close the segment [seg, ts)
            time_by_code[current] = time_by_code.get(current, 0) + ts - seg
            for b, cls in offline_of[current]:
                spans = offline[b]
                if spans and spans[-2] == seg and spans[-1] == cls:
                    spans[-2] = ts
                else:
                    spans.extend((seg, ts, cls))
            if k < kmax and instants[k] < ts:
                k1 = bisect_left(instants, ts, k)
                checks_by_code[current] = checks_by_code.get(current, 0) + k1 - k
                k = k1
        if new < 0:
            break
        if ratio_diff is not None and ratio_of[new] is not ratio_of[current]:
            for j in ratio_of[current]:
                ratio_diff[j][k] -= 1
            for j in ratio_of[new]:
                ratio_diff[j][k] += 1
        seg, current = ts, new
    if ratio_diff is not None:
        for j in ratio_of[current]:
            ratio_diff[j][kmax] -= 1
    time_acc = [0] * (len(BASES) * BUCKETS)
    for code, length in time_by_code.items():
        for j in t.add[code]:
            time_acc[j] += length
    check_acc = [0] * (len(BASES) * CHECK_BUCKETS)
    for code, checks in checks_by_code.items():
        for j in t.checks[code]:
            check_acc[j] += checks
    return Tally(time_acc, check_acc, offline)


def exclusion_layer(
    device: Device,
    history: History,
    start: int,
    end: int,
    windows: Iterable[tuple[MaintenanceWindow, Selector]],
    given: Iterable[Exclusion],
) -> tuple[list[tuple[int, int, int]], list[Exclusion]]:
    """The exclusion layer of one point over [start, end): its pieces (start, end, EX_* code) for
    `paint`, and the exclusions as evidence, clipped to the point's time in the period.

    Layers: not a point yet (before its first stored evidence), status (延建/拆除, from the
    point_status history; before its first stored status the point had that status, since the
    history began with it; with none stored, the inventory's), maintenance windows matching it
    (`windows`: window and its selector), the caller's exclusions (`given`)."""
    first = history.first_seen[device.id]
    joined = end if first is None else max(first, start)
    pieces: list[tuple[int, int, int]] = [(start, joined, EX_OUTSIDE)] if joined > start else []
    evidence: list[Exclusion] = []

    def add(a: int, b: int, code: int, kind: str, reason: str) -> None:
        pieces.append((a, b, code))
        a, b = max(a, joined), min(b, end)
        if a < b:
            evidence.append(Exclusion(device.id, a, b, kind, reason))

    # Before its first stored status the point had that status (the history began with it).
    rows = history.statuses.get(device.id) or [(-_FOREVER, device.status)]
    for i, (since, status) in enumerate(rows):
        until = rows[i + 1][0] if i + 1 < len(rows) else _FOREVER
        if status is not Status.ACTIVE:
            add(-_FOREVER if i == 0 else since, until, EX_STATUS, "status", status.value)
    for w, selector in windows:
        if selector.matches(device):
            add(w.start_ns, w.end_ns, EX_MAINTENANCE, "maintenance", f"{w.reason} (maintenance #{w.id})")
    for e in given:
        add(e.start_ns, e.end_ns, EXCLUSION_KINDS[e.kind], e.kind, e.reason)
    evidence.sort(key=lambda e: (e.start_ns, e.end_ns, e.kind))
    return pieces, evidence


def coverage(history: History, start: int, end: int) -> list[list[tuple[int, int]]]:
    """Per probe (PROBE_ORDER), its coverage change list over the period: watched (COV_RUN),
    not running in that session (COV_OFF), else blind. Sessions without probe_watch rows (an
    older fleetmon, or none recorded) count as watched by every probe."""
    recorded = defaultdict(list)
    for w in history.watches:
        recorded[(w.session_id, w.probe)].append(w)
    wired = {w.session_id for w in history.watches}
    out = []
    for probe in PROBE_ORDER:
        pieces = []
        for session_id, started, last in history.sessions:
            if session_id not in wired:
                pieces.append((started, last, COV_RUN))
            elif (session_id, probe) not in recorded:
                pieces.append((started, last, COV_OFF))
            else:
                pieces += [(w.start_ns, w.end_ns, COV_RUN) for w in recorded[(session_id, probe)]]
        out.append(paint(start, end, pieces))
    return out


def epochs_of(coverage: list[list[tuple[int, int]]]) -> tuple[list[tuple[int, ...]], list[tuple[int, int]]]:
    """From each probe's coverage change list: the distinct combinations of coverages (epochs)
    and the change list of the epoch index. A session boundary changes every probe at once: one
    event per point instead of one per probe."""
    times = sorted({ts for changes in coverage for ts, _ in changes})
    epochs: list[tuple[int, ...]] = []
    out: list[tuple[int, int]] = []
    for ts in times:
        combo = tuple(changes[bisect_right(changes, (ts, 99)) - 1][1] for changes in coverage)
        if combo not in epochs:
            epochs.append(combo)
        index = epochs.index(combo)
        if not out or out[-1][1] != index:
            out.append((ts, index))
    return epochs, out
