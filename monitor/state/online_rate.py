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

from collections import defaultdict
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
    # Counted once per device into its (site, region, kind), then rolled up per group: a
    # device costs one dict lookup, not six (the fleet, its region and its site, each for all
    # kinds and its own); at 100,000 devices and several evaluations a cycle that is most of
    # the work. Rows: [online, offline, unknown, excluded, judged].
    up, unknown = State.UP, State.UNKNOWN
    cells: dict[tuple[str, str, str], list[int]] = {}
    for device in devices:
        key = (device.site, device.region, device.kind.value)
        row = cells.get(key)
        if row is None:
            row = cells[key] = [0, 0, 0, 0, 0]
        if not device.counted:
            row[3] += 1
            continue
        state = states.get(device.id, unknown)
        row[0 if state is up else 1 if state.offline else 2] += 1
        if judged is not None and device.id in judged:
            row[4] += 1
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for (site, region, kind), row in cells.items():
        for scope, group in (("fleet", ALL), ("region", region), ("site", site)):
            for key in ((scope, group, ALL), (scope, group, kind)):
                total = counts[key]
                total[0] += row[0]
                total[1] += row[1]
                total[2] += row[2]
                total[3] += row[3]
                total[4] += row[4]
    order = {"fleet": 0, "region": 1, "site": 2}
    keys = sorted(counts, key=lambda k: (order[k[0]], k[1], k[2] != ALL, k[2]))
    return [
        GroupRate(*key, *counts[key][:4], basis, None if judged is None else counts[key][4]) for key in keys
    ]


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
