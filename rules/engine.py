"""The rules engine: from what the fleet looks like after a cycle to the set of conditions
that hold now, each keyed by (rule name, scope). The fault lifecycle (rules/alerting/faults.py) turns
conditions into faults over time (for_s, clear_for_s, notifications).

Evaluation is a pure function of the engine's inputs, so it is tested without I/O:
- `observe(result)`: every probe result (a bounded window of network results per device, the
  latest values of the measurements value rules watch, the reasons video rules give);
- `observe_trap(event)`: SNMP traps, applied to those latest values at once as the values the
  trap implies (probes/traps.py TrapEvent.values: a linkDown marks the port down before the
  next poll confirms it);
- `observe_transition(t, mono_ns)`: every network state transition (for flap damping), with
  its moment on the monotonic clock: the flapping window is a duration (monitor/core/clock.py);
- `evaluate(view, firing)`: the conditions now. `firing` are the keys of faults that fired and
  are not resolved; for them the *clear* thresholds apply (hysteresis), and a condition with no
  data (a down device has no RTT) is held rather than cleared: a fault resolves only when its
  problem is seen gone. A pending fault is judged by the raise thresholds like a new one, so
  it is dropped as soon as its condition stops holding.

The engine keeps what every rule shares (rules/base.py Facts: the latest values, windows,
reasons, the topology), works out the dark regions and flap damping, and asks each configured
rule (its type's class, rules/registry.py) for its conditions. One fault per real problem:
- a region whose every counted device is offline is one region fault; device and online-rate
  faults inside it are not raised separately;
- a flapping device gets one flapping fault, and no device-down faults while it flaps;
- only DOWN devices raise device faults, naming what is UNREACHABLE behind them
  (rules/families/device.py); value rules and video_down hold, never raise, while their device
  is offline on the network.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, AbstractSet, Sequence

from monitor.core.model import Basis
from monitor.fleet.inventory import Inventory
from monitor.state.tracker import State, Transition
from probes import probes_of
from probes.base import ProbeResult
from rules.base import OFFLINE, Condition, Facts, Key, Now, RuleBase, View
from rules.config import RESERVED_RULE_NAMES, FlappingConfig

if TYPE_CHECKING:
    from probes.traps import TrapEvent

FLAPPING_RULE = RESERVED_RULE_NAMES[0]
TITLES = {
    "zh": {"flapping": "{kind}{name}频繁掉线（{count}次状态变化/{minutes:g}分钟）"},
    "en": {"flapping": "{kind} {name} flapping ({count} state changes in {minutes:g} min)"},
}


class RulesEngine:
    def __init__(
        self,
        inventory: Inventory,
        rules: Sequence[RuleBase],
        flapping: FlappingConfig,
        *,
        language: str = "zh",
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.inventory = inventory
        self.rules = tuple(rules)
        self.flapping = flapping
        self._t = TITLES[language]
        # Window rules average, and flap damping counts, the results of the network basis.
        self._network = frozenset(probes_of(Basis.NETWORK))
        self._changes: dict[str, deque[int]] = defaultdict(deque)
        self.facts = Facts(inventory, self.rules, language, timezone)
        # Counted devices per region, for dark regions (the inventory is fixed for the engine's life).
        regions: dict[str, list[str]] = defaultdict(list)
        for device in inventory.devices.values():
            if device.counted:
                regions[device.region].append(device.id)
        self._regions = {region: tuple(ids) for region, ids in regions.items()}
        # Series measurements each probe has reported (learnt from its results), so that a poll
        # that reports none of them (failed) clears them.
        self._series_of: dict[str, set[str]] = defaultdict(set)

    # -- inputs -------------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        facts = self.facts
        recent = facts.recent.get(result.device_id)
        if recent is not None and result.probe in self._network:
            recent.append((result.ok, *map(result.fields.get, facts.window_fields)))
        known = self._series_of[result.probe]
        known.update(s.measurement for s in result.series)
        for m in (result.probe, *known):
            if result.device_id not in facts.watched.get(m, ()):
                continue
            # Replaced wholesale: a port or disk the device no longer reports (or a failed poll,
            # which reports none) has no data, and a fault on it is held, not resolved.
            facts.reported.add(m)
            if m == result.probe:
                facts.values[(result.device_id, m)] = {(): result.fields}
            else:
                facts.values[(result.device_id, m)] = {
                    tuple(s.tags.values()): s.fields for s in result.series if s.measurement == m
                }
        if result.probe in facts.reason_of:
            facts.reasons[(result.device_id, result.probe)] = result.reason

    def observe_trap(self, event: "TrapEvent") -> None:
        """Apply the values a trap implies (TrapEvent.values) to the latest values at once; the
        next poll confirms or corrects them. Each patch sets its fields on the instance its tags
        name or, when it has a `same` field, on the known instance with the same value of it;
        an instance not known (so) starts from the patch's defaults."""
        facts = self.facts
        device = self.inventory.devices.get(event.device_id)
        if device is None:
            return
        for patch in event.values(device):
            if device.id not in facts.watched.get(patch.measurement, ()):
                continue
            facts.reported.add(patch.measurement)
            instances = facts.values.setdefault((device.id, patch.measurement), {})
            key = tuple(patch.tags.values())
            if patch.same is None:
                known = instances.get(key)
            else:
                same = patch.fields.get(patch.same)
                key, known = next(((k, f) for k, f in instances.items() if f.get(patch.same) == same), (key, None))
            instances[key] = {**(patch.defaults if known is None else known), **patch.fields}

    def observe_transition(self, t: Transition, mono_ns: int | None = None) -> None:
        """`mono_ns`: the transition's moment on the monotonic clock (the View's `mono_ns` is
        the same clock's now); None: its `ts_ns` (time driven by hand)."""
        # Unknown is no state of the device (never decided, or its probe agent went silent).
        if t.probe in self._network and t.old is not State.UNKNOWN and t.new is not State.UNKNOWN:
            self._changes[t.device_id].append(t.ts_ns if mono_ns is None else mono_ns)

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, view: View, firing: AbstractSet[Key]) -> dict[Key, Condition]:
        """Every condition that holds at `view.ts_ns`, by key: flapping first, then each rule's
        in config order."""
        out: dict[Key, Condition] = {}
        flapping = self._flapping(view, firing, out)
        now = Now(view, firing, self._dark_regions(view), flapping)
        for rule in self.rules:
            rule.evaluate(self.facts, now, out)
        return out

    def _flapping(self, view: View, firing: AbstractSet[Key], out: dict[Key, Condition]) -> set[str]:
        cfg = self.flapping
        horizon = (view.ts_ns if view.mono_ns is None else view.mono_ns) - int(cfg.window_s * 1e9)
        flapping = set()
        for device_id, changes in list(self._changes.items()):
            while changes and changes[0] < horizon:
                changes.popleft()
            if not changes:  # quiet for the whole window: forget the device
                del self._changes[device_id]
                continue
            key = (FLAPPING_RULE, f"device:{device_id}")
            # Raise at max_changes; hold while it is still changing at all (stable for window_s
            # = no change left in the window).
            if len(changes) >= cfg.max_changes or key in firing:
                device = self.inventory.devices[device_id]
                flapping.add(device_id)
                out[key] = Condition(
                    FLAPPING_RULE, "flapping", key[1], cfg.severity,
                    self._t["flapping"].format(
                        kind=self.facts.kinds[device.kind], name=device.name, count=len(changes),
                        minutes=cfg.window_s / 60,
                    ),
                    0.0, 0.0, device_id=device_id, site=device.site, region=device.region,
                    value=len(changes), threshold=cfg.max_changes, unit="changes",
                )
        return flapping

    def _dark_regions(self, view: View) -> dict[str, list[str]]:
        """Regions whose every counted device is offline: region → device ids."""
        states, unknown = view.states, State.UNKNOWN
        # all() stops at a region's first device that is not offline: a lit region costs a lookup or two.
        return {
            region: list(ids)
            for region, ids in self._regions.items()
            if all(states.get(d, unknown) in OFFLINE for d in ids)
        }
