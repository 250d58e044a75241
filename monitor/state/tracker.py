"""Device state from probe results: hysteresis, then topology.

A device is *failing* once `down_after` consecutive probes of it failed, and stops failing
after `up_after` consecutive ok results. A failed result confirmed by n re-probes
(ProbeResult.confirmations, monitor.app.scheduler) counts as 1 + n failed probes: with
confirmation a dead device fails within seconds of its first miss, without it after
`down_after` cycles. Its published state is then:

- UP when it is not failing;
- UNREACHABLE when it is failing and its parent (switch, link, UPS …) is DOWN or UNREACHABLE,
  or missed its own latest probe without failing yet (a whole site going dark: the link's miss
  passed on unconfirmed, its cameras' confirmed): the device cannot be judged, the parent is
  the root cause;
- DOWN when it is failing and its parent is not;
- UNKNOWN until the first verdict (right after the very first start; a restart resumes the
  states saved in the state database).

Every change of published state is a Transition; the caller stores them (monitor.state.db),
they are the evidence availability reports are computed from.

A transition to UNKNOWN whose reason starts with MONITOR_BLIND (`StateTracker.blind`: the probe
agent watching the device went silent) marks the time until the device's next transition as
monitor-blind: the assessment counts it apart from undecided time (monitor.assess.history).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Iterable, Mapping

from probes.base import ProbeResult

MONITOR_BLIND = "monitor blind: "
"""Prefix of the reason of a transition to UNKNOWN because nobody watches the device any more
(StateTracker.blind); stored, and read back by the assessment: keep it as it is."""


MONITOR_LATE = "monitor late: the probe outlived its budget (caller timeout)"
"""The reason of a transition to UNKNOWN because fleetmon itself ran late on the device (the
scheduler's caller timeout: a stalled event loop or a probe bug), which says nothing of the
device: unknown (undecided) time, never down."""


def agent_silent_reason(agent: str) -> str:
    """The reason stored when probe agent `agent` went silent: "monitor blind: probe agent
    <agent> silent"."""
    return f"{MONITOR_BLIND}probe agent {agent} silent"


def silent_agent_of(reason: str | None) -> str | None:
    """The agent named by a reason made by agent_silent_reason (None for any other)."""
    head, tail = MONITOR_BLIND + "probe agent ", " silent"
    if reason is None or not reason.startswith(head) or not reason.endswith(tail):
        return None
    return reason[len(head): -len(tail)] or None

if TYPE_CHECKING:
    from monitor.fleet.inventory import Inventory


class State(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"
    UNREACHABLE = "unreachable"

    @property
    def offline(self) -> bool:
        return self in (State.DOWN, State.UNREACHABLE)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a device's published state, at `ts_ns` (UTC ns since the epoch)."""

    device_id: str
    probe: str
    ts_ns: int
    old: State
    new: State
    reason: str | None


@dataclass(slots=True)
class _Track:
    state: State = State.UNKNOWN
    since_ns: int = 0
    failing: bool | None = None  # None = not yet decided
    streak_ok: int = 0
    streak_fail: int = 0
    last_reason: str | None = None
    floor_ns: int = 0  # no transition is dated before this (a blind period's end)


class StateTracker:
    """Published state of every device of one probe type.

    `observe()` takes results as they arrive (decisions use the parent's state at that
    moment); `reconcile()` at the end of each cycle walks the topology parents-first and
    fixes what arrived in the wrong order (a child seen failing before its switch was).
    """

    def __init__(
        self,
        inventory: Inventory,
        probe: str,
        *,
        down_after: int,
        up_after: int,
        initial: Mapping[str, tuple[State, int]] | None = None,
    ) -> None:
        self._inventory = inventory
        self._probe = probe
        self._down_after = down_after
        self._up_after = up_after
        self._order = inventory.topo_order()
        self._tracks: dict[str, _Track] = {d.id: _Track() for d in self._order}
        for device_id, (state, since_ns) in (initial or {}).items():
            track = self._tracks.get(device_id)
            if track is None:  # device left the inventory since the last run
                continue
            track.state, track.since_ns = state, since_ns
            track.failing = None if state is State.UNKNOWN else state.offline

    def state(self, device_id: str) -> State:
        return self._tracks[device_id].state

    def failing(self, device_id: str) -> bool:
        """True when the device is failing (published down or unreachable): a further miss
        confirms nothing new. False for a device this tracker does not know."""
        track = self._tracks.get(device_id)
        return track is not None and track.failing is True

    def since_ns(self, device_id: str) -> int:
        return self._tracks[device_id].since_ns

    def states(self) -> dict[str, State]:
        return {device_id: t.state for device_id, t in self._tracks.items()}

    def since(self) -> dict[str, int]:
        """When each device entered its current state (UTC ns; 0 = never decided)."""
        return {device_id: t.since_ns for device_id, t in self._tracks.items()}

    def observe(self, result: ProbeResult) -> Transition | None:
        """Feed one result; returns the transition it caused, if any."""
        track = self._tracks.get(result.device_id)
        if track is None:
            return None
        if result.ok:
            track.streak_ok += 1
            track.streak_fail = 0
            if track.failing is not False and track.streak_ok >= (self._up_after if track.failing else 1):
                track.failing = False
        else:
            track.streak_fail += 1 + result.confirmations
            track.streak_ok = 0
            track.last_reason = result.reason
            if track.failing is not True and track.streak_fail >= self._down_after:
                track.failing = True
        return self._publish(result.device_id, track, result.ts_ns, result.reason)

    def blind(self, device_ids: Iterable[str], ts_ns: int, reason: str) -> list[Transition]:
        """Nobody watches these devices any more (their probe agent went silent), or fleetmon
        ran late on them (MONITOR_LATE): each becomes UNKNOWN at `ts_ns` with `reason`, its
        streaks forgotten, so the next result decides afresh (one ok result: UP; down_after
        failed ones: DOWN). Returns the transitions."""
        out = []
        for device_id in device_ids:
            track = self._tracks.get(device_id)
            if track is None or track.state is State.UNKNOWN:
                continue
            old = track.state
            track.failing, track.streak_ok, track.streak_fail = None, 0, 0
            track.state, track.since_ns = State.UNKNOWN, max(ts_ns, track.since_ns)
            out.append(Transition(device_id, self._probe, track.since_ns, old, State.UNKNOWN, reason))
        return out

    def resume(self, device_ids: Iterable[str], ts_ns: int) -> None:
        """Their watcher is back at `ts_ns` (the probe agent was silent): the transitions their
        next results cause, replayed ones probed during the silence included, are dated no
        earlier, so the blind period stays on record as unknown time."""
        for device_id in device_ids:
            track = self._tracks.get(device_id)
            if track is not None:
                track.floor_ns = max(track.floor_ns, ts_ns)

    def reconcile(self, ts_ns: int) -> list[Transition]:
        """Re-derive every published state parents-first; returns the transitions."""
        out = []
        for device in self._order:
            t = self._publish(device.id, self._tracks[device.id], ts_ns, None)
            if t is not None:
                out.append(t)
        return out

    def _publish(self, device_id: str, track: _Track, ts_ns: int, reason: str | None) -> Transition | None:
        new = self._derive(device_id, track)
        if new is track.state:
            return None
        old = track.state
        # Never before the current state began: a result that arrives late (replayed by a probe
        # agent after an outage, or one that outlived a reconcile) must not date a transition
        # before the one it follows.
        ts_ns = max(ts_ns, track.since_ns, track.floor_ns)
        track.state, track.since_ns = new, ts_ns
        if new is State.UNREACHABLE:
            parent = self._inventory.devices[device_id].parent
            parent_state = self._tracks[parent].state
            reason = f"parent {parent} is {parent_state}" if parent_state.offline else f"parent {parent} missed its probe"
        elif new is State.DOWN:
            reason = reason or track.last_reason
        return Transition(device_id, self._probe, ts_ns, old, new, reason if new is not State.UP else None)

    def _derive(self, device_id: str, track: _Track) -> State:
        if track.failing is None:
            return State.UNKNOWN
        if not track.failing:
            return State.UP
        parent = self._inventory.devices[device_id].parent
        parent_track = self._tracks.get(parent) if parent else None
        if parent_track is not None and (parent_track.state.offline or parent_track.streak_fail):
            return State.UNREACHABLE
        return State.DOWN

