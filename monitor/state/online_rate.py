"""Online rate (在线率) of device groups: the number the contract is paid against.

online rate = online / (online + offline) × 100 over the *active* devices of a group, where
online = UP and offline = DOWN or UNREACHABLE (a camera behind a dead switch sends no video
either). Devices under construction (延建) or removed (拆除) are excluded, as tenders do;
devices not yet decided (UNKNOWN, only right after the very first start) are left out of
the ratio and counted apart. A group has no rate while none of its devices is decided, nor,
on a derived basis (service, video), while none was judged by that basis' own probe: unknown
is not down (monitor.state.availability.judged).

Groups: the fleet, each region and each site, each for all kinds together and per kind.
Each is computed per basis (monitor.core.model.Basis, monitor.state.availability): the contract's `online` and the measured
network, service and video rates, side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Container, Iterable, Mapping, Sequence

from monitor.core.model import Basis, Device
from monitor.state.tracker import State

ALL = "all"


@dataclass(frozen=True, slots=True)
class GroupRate:
    scope: str  # "fleet" | "region" | "site"
    group: str  # region or site name; "all" for the fleet
    kind: str  # a device kind or "all"
    online: int
    offline: int
    unknown: int
    excluded: int
    basis: str = "online"  # monitor.core.model.Basis value
    judged: int | None = None
    """Active devices with a verdict of the basis' own probes; None where every decided state
    is one (network, online)."""

    @property
    def total(self) -> int:
        """Active devices in the group."""
        return self.online + self.offline + self.unknown

    @property
    def rate_pct(self) -> float | None:
        """Online rate in %, or None while no active device of the group is decided or judged."""
        decided = self.online + self.offline
        return 100.0 * self.online / decided if decided and self.judged != 0 else None


def online_rates(
    devices: Iterable[Device], states: Mapping[str, State], basis: str = "online", judged: Container[str] | None = None
) -> list[GroupRate]:
    """Online rates of every group, fleet first, then regions, then sites (sorted by name).

    `states` maps device id to its published state; a device missing from it is UNKNOWN.
    `basis` labels the rates (which "online" the states are). `judged`: the ids whose state
    the basis' own probes decided (availability.judged), for a derived basis; None when every
    state is a verdict. A group none of whose active devices is judged has no rate.
    """
    groups = _groups_of(devices)
    rows = [[0, 0, 0, 0, 0] for _ in range(groups.cells)]  # [online, offline, unknown, excluded, judged]
    slot, get, unknown = _SLOT, states.get, State.UNKNOWN
    for key, cell, counted in groups.members:
        row = rows[cell]
        if not counted:
            row[3] += 1
            continue
        row[slot[get(key, unknown)]] += 1
        if judged is not None and key in judged:
            row[4] += 1
    totals = [[0, 0, 0, 0, 0] for _ in groups.keys]
    for row, targets in zip(rows, groups.targets):
        if row == _EMPTY:
            continue
        for g in targets:
            total = totals[g]
            total[0] += row[0]
            total[1] += row[1]
            total[2] += row[2]
            total[3] += row[3]
            total[4] += row[4]
    return [
        GroupRate(*key, *total[:4], basis, None if judged is None else total[4]) for key, total in zip(groups.keys, totals)
    ]


_SLOT = {s: 0 if s is State.UP else 1 if s.offline else 2 for s in State}  # the row a state counts in
_EMPTY = [0, 0, 0, 0, 0]


class _Groups:
    """Which groups each device counts in, worked out once for a fleet: every device belongs to
    one cell (site, region, kind), every cell to six groups (the fleet, its region and its
    site, each for all kinds and its own). Counting a device is then one list index, and the
    groups' totals are summed per cell, not per device: at 100,000 devices and several
    evaluations a cycle this was most of the daemon's work.

    - members: (device id, cell index, counted) in the order of the devices;
    - keys: the groups (scope, group, kind), in the order online_rates returns them;
    - targets: per cell, the indexes in `keys` of its six groups.
    """

    def __init__(self, devices: Iterable[Device]) -> None:
        cell_of: dict[tuple[str, str, str], int] = {}
        self.members = [
            (d.id, cell_of.setdefault((d.site, d.region, d.kind.value), len(cell_of)), d.counted) for d in devices
        ]
        self.cells = len(cell_of)
        six = [
            [(scope, group, k) for scope, group in (("fleet", ALL), ("region", region), ("site", site)) for k in (ALL, kind)]
            for site, region, kind in cell_of
        ]
        order = {"fleet": 0, "region": 1, "site": 2}
        self.keys = sorted({key for keys in six for key in keys}, key=lambda k: (order[k[0]], k[1], k[2] != ALL, k[2]))
        index = {key: i for i, key in enumerate(self.keys)}
        self.targets = [tuple(index[key] for key in keys) for keys in six]


_cached: tuple[tuple[Device, ...], _Groups] | None = None


def _groups_of(devices: Iterable[Device]) -> _Groups:
    """The groups of `devices`; for a tuple (the daemon's fleet, the same object every cycle)
    the last one is kept and reused while the same tuple comes again."""
    global _cached
    if not isinstance(devices, tuple):
        return _Groups(devices)
    if _cached is None or _cached[0] is not devices:
        _cached = (devices, _Groups(devices))
    return _cached[1]


def rates_of_bases(
    devices: Sequence[Device],
    bases: Mapping[Basis, Mapping[str, State]],
    judged: Mapping[Basis, Container[str]] | None = None,
) -> list[GroupRate]:
    """Online rates of every basis side by side (GroupRate.basis), in the order of `bases`
    (monitor.state.availability.combine: basis → device id → State). `judged`
    (availability.judged: basis → ids its own probes decided) keeps a group of a derived
    basis without a rate until one of its devices is judged; None: no such check.

    `online` and `network` are rates over all `devices` (a device no probe decides is
    UNKNOWN); `network` only while some network probe runs. `service` and `video` are rates
    over the devices they apply to (a switch has no video), and absent when they apply to none.
    """
    rates: list[GroupRate] = []
    for basis, states in bases.items():
        if basis in (Basis.ONLINE, Basis.NETWORK):
            if states or basis is Basis.ONLINE:
                rates += online_rates(devices, states, basis.value)
        elif states:
            own = judged.get(basis) if judged is not None else None
            rates += online_rates((d for d in devices if d.id in states), states, basis.value, own)
    return rates
