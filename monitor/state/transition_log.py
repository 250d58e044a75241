"""Transitions told to people: one log line per device that really goes down or recovers,
and the rest (devices that merely follow their parent, first verdicts) summed up per cycle.

A dead switch with 40 cameras behind it is one warning and one line "40 devices unreachable
behind switch X", not 41 warnings.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Iterable, Mapping

from monitor.fleet.inventory import Inventory
from monitor.state.tracker import State, StateTracker, Transition

log = logging.getLogger("fleetmon.daemon")


class TransitionLog:
    """Logs the transitions of the trackers in `trackers` (probe name → its tracker).

    `network` names the probe whose tracker says whether a device is on the network (None
    without one): its transitions are logged without the probe's name, and another probe's
    loss of a device that is offline on the network is no news (debug only).
    """

    def __init__(self, inventory: Inventory, trackers: Mapping[str, StateTracker], network: str | None) -> None:
        self._inventory = inventory
        self._trackers = trackers
        self._network = network
        # (what, root cause id) → devices, logged once per cycle by summary()
        self._summary: Counter[tuple[str, str]] = Counter()

    def log(self, transitions: Iterable[Transition]) -> None:
        """A line per device that goes down (a warning when it counts for the online rate) or
        recovers; devices that go unreachable or reachable again behind a parent, or get their
        first verdict, at debug and counted for summary()."""
        network = self._trackers.get(self._network) if self._network is not None else None
        for t in transitions:
            device = self._inventory.devices[t.device_id]
            extra = {"device_id": t.device_id, "site": device.site, "region": device.region, "probe": t.probe}
            what = "" if t.probe == self._network else f"{t.probe} "
            explained = t.probe != self._network and network is not None and network.state(t.device_id).offline
            if t.new is State.DOWN:
                # A point under construction or removed is expected to be silent: no warning.
                log.log(
                    logging.DEBUG if explained else logging.WARNING if device.counted else logging.INFO,
                    "%s %s %s%s → down: %s", device.kind.value, device.name, what, t.old.value, t.reason, extra=extra,
                )
            elif t.new is State.UP and t.old is State.DOWN:
                log.info("%s %s %srecovered (down → up)", device.kind.value, device.name, what, extra=extra)
            else:
                log.debug("%s %s %s → %s", device.kind.value, device.name, t.old.value, t.new.value, extra=extra)
                if t.new is State.UNREACHABLE:
                    self._summary[("unreachable", self._root_cause(t))] += 1
                elif t.old is State.UNREACHABLE:
                    self._summary[("reachable again", self._root_cause(t))] += 1
                else:
                    self._summary[(f"first verdict {t.new.value}", "")] += 1

    def summary(self) -> None:
        """Log what log() counted since the last summary, one line per (what, root cause)."""
        for (what, cause), count in sorted(self._summary.items()):
            if cause:
                parent = self._inventory.devices[cause]
                log.info("%d devices %s behind %s %s (%s)", count, what, parent.kind.value, parent.name, cause)
            else:
                log.info("%d devices: %s", count, what)
        self._summary.clear()

    def _root_cause(self, t: Transition) -> str:
        """The nearest ancestor that is down now (unreachable) or was (reachable again)."""
        tracker = self._trackers[t.probe]
        ancestors = self._inventory.ancestors(t.device_id)
        down = [a.id for a in ancestors if tracker.state(a.id) is State.DOWN]
        return down[0] if down else ancestors[0].id if ancestors else ""
