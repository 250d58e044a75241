"""The rules engine: from what the fleet looks like after a cycle to the set of conditions
that hold now, each keyed by (rule name, scope). The fault lifecycle (rules/faults.py) turns
conditions into faults over time (for_s, clear_for_s, notifications).

Evaluation is a pure function of the engine's inputs, so it is tested without I/O:
- `observe(result)`: every ICMP result (a bounded window per device is kept);
- `observe_transition(t)`: every state transition (for flap damping);
- `evaluate(view, firing)`: the conditions now. `firing` are the keys of faults that fired and
  are not resolved; for them the *clear* thresholds apply (hysteresis), and a condition with no
  data (a down device has no RTT) is held rather than cleared: a fault resolves only when its
  problem is seen gone. A pending fault is judged by the raise thresholds like a new one, so
  it is dropped as soon as its condition stops holding.

One fault per real problem:
- only DOWN devices raise device faults; devices UNREACHABLE behind them are listed in the
  root cause's fault ("交换机X离线，影响N路摄像机");
- a region whose every counted device is offline is one region fault; device and online-rate
  faults inside it are not raised separately;
- a flapping device gets one flapping fault, and no device-down faults while it flaps.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from monitor.inventory import Inventory
from monitor.model import Device, Kind
from monitor.online_rate import ALL, GroupRate
from monitor.state import State, Transition
from probes.base import ProbeResult
from rules.config import (
    DeviceDownRule,
    FlappingConfig,
    JitterRule,
    LatencyRule,
    LossRule,
    OnlineRateRule,
    RESERVED_RULE_NAMES,
    Rule,
)
from rules.model import Severity

Key = tuple[str, str]  # (rule name, scope)
WINDOW_FIELDS = ("rtt_avg_ms", "loss_pct", "jitter_ms")  # ICMP fields the window rules average
FLAPPING_RULE = RESERVED_RULE_NAMES[0]

KIND_NAMES = {
    "zh": {"camera": "摄像机", "switch": "交换机", "ups": "UPS", "link": "专线", "server": "服务器", "platform": "平台", ALL: "设备"},
    "en": {"camera": "camera", "switch": "switch", "ups": "UPS", "link": "link", "server": "server", "platform": "platform", ALL: "device"},
}
TITLES = {
    "zh": {
        "down": "{kind}{name}离线",
        "down_affected": "{kind}{name}离线，影响{cameras}路摄像机",
        "down_affected_more": "{kind}{name}离线，影响{cameras}路摄像机及{others}台其他设备",
        "down_affected_devices": "{kind}{name}离线，影响{others}台设备",
        "region_dark": "{region}全部离线（{count}台设备）",
        "online_rate": "{group}{kind}在线率{value:.2f}%，低于{limit:g}%",
        "fleet": "全网",
        "latency": "{kind}{name}时延{value:.0f} ms，超过{limit:g} ms",
        "loss": "{kind}{name}丢包率{value:.1f}%，超过{limit:g}%",
        "jitter": "{kind}{name}抖动{value:.1f} ms，超过{limit:g} ms",
        "flapping": "{kind}{name}频繁掉线（{count}次状态变化/{minutes:g}分钟）",
    },
    "en": {
        "down": "{kind} {name} down",
        "down_affected": "{kind} {name} down, {cameras} cameras affected",
        "down_affected_more": "{kind} {name} down, {cameras} cameras and {others} other devices affected",
        "down_affected_devices": "{kind} {name} down, {others} devices affected",
        "region_dark": "{region} entirely offline ({count} devices)",
        "online_rate": "{group} {kind} online rate {value:.2f}%, below {limit:g}%",
        "fleet": "fleet",
        "latency": "{kind} {name} latency {value:.0f} ms, above {limit:g} ms",
        "loss": "{kind} {name} loss {value:.1f}%, above {limit:g}%",
        "jitter": "{kind} {name} jitter {value:.1f} ms, above {limit:g} ms",
        "flapping": "{kind} {name} flapping ({count} state changes in {minutes:g} min)",
    },
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A problem that holds now. `since_ns` is when it began where known (a device's DOWN
    time), else None (the lifecycle uses the time it first saw it). `held`: a firing fault kept
    open without fresh data (no samples): its title and value are the last ones seen."""

    rule: str
    kind: str
    scope: str
    severity: Severity
    title: str
    for_s: float
    clear_for_s: float
    since_ns: int | None = None
    device_id: str | None = None
    site: str | None = None
    region: str | None = None
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    affected: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    held: bool = False

    @property
    def key(self) -> Key:
        return (self.rule, self.scope)


@dataclass(frozen=True, slots=True)
class View:
    """The fleet after a cycle: published states, since when, online rates; `ts_ns` UTC ns."""

    ts_ns: int
    states: Mapping[str, State]
    since_ns: Mapping[str, int]
    rates: Sequence[GroupRate]


class RulesEngine:
    def __init__(
        self,
        inventory: Inventory,
        rules: Sequence[Rule],
        flapping: FlappingConfig,
        *,
        language: str = "zh",
        probe: str = "icmp",
    ) -> None:
        self.inventory = inventory
        self.rules = tuple(rules)
        self.flapping = flapping
        self._t = TITLES[language]
        self._kinds = KIND_NAMES[language]
        self._probe = probe
        self._changes: dict[str, deque[int]] = defaultdict(deque)
        self._descendants = _descendants(inventory)
        # Per rule, the devices it applies to: selectors are static, so match once.
        self._devices = {
            r.name: tuple(d for d in inventory.topo_order() if d.counted and r.match.selector().matches(d))
            for r in rules
            if not isinstance(r, OnlineRateRule)
        }
        # Recent (rtt_avg_ms, loss_pct, jitter_ms) of the devices a window rule watches, and only
        # of those: keeping every device's results would cost ~30 MB at 10,000 devices.
        windowed = [r for r in rules if isinstance(r, (LatencyRule, LossRule, JitterRule))]
        window = max((r.window for r in windowed), default=1)
        self._recent: dict[str, deque[tuple[float | None, ...]]] = {
            d.id: deque(maxlen=window) for r in windowed for d in self._devices[r.name]
        }

    # -- inputs -------------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        recent = self._recent.get(result.device_id)
        if recent is not None and result.probe == self._probe:
            recent.append(tuple(result.fields.get(name) for name in WINDOW_FIELDS))

    def observe_transition(self, t: Transition) -> None:
        if t.probe == self._probe and t.old is not State.UNKNOWN:
            self._changes[t.device_id].append(t.ts_ns)

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, view: View, firing: set[Key]) -> dict[Key, Condition]:
        """Every condition that holds at `view.ts_ns`, by key."""
        out: dict[Key, Condition] = {}
        flapping = self._flapping(view, firing, out)
        dark = self._dark_regions(view)
        for rule in self.rules:
            if isinstance(rule, DeviceDownRule):
                self._device_down(rule, view, firing, dark, flapping, out)
            elif isinstance(rule, OnlineRateRule):
                self._online_rate(rule, view, firing, dark, out)
            else:
                self._window(rule, view, firing, out)
        return out

    def _flapping(self, view: View, firing: set[Key], out: dict[Key, Condition]) -> set[str]:
        cfg = self.flapping
        horizon = view.ts_ns - int(cfg.window_s * 1e9)
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
                        kind=self._kinds[device.kind], name=device.name, count=len(changes), minutes=cfg.window_s / 60
                    ),
                    0.0, 0.0, device_id=device_id, site=device.site, region=device.region,
                    value=len(changes), threshold=cfg.max_changes, unit="changes",
                )
        return flapping

    def _dark_regions(self, view: View) -> dict[str, list[str]]:
        """Regions whose every counted device is offline: region → device ids."""
        members: dict[str, list[str]] = defaultdict(list)
        lit: set[str] = set()
        for device in self.inventory.devices.values():
            if not device.counted:
                continue
            members[device.region].append(device.id)
            if not view.states.get(device.id, State.UNKNOWN).offline:
                lit.add(device.region)
        return {region: ids for region, ids in members.items() if region not in lit}

    def _device_down(
        self, rule: DeviceDownRule, view: View, firing: set[Key], dark: dict[str, list[str]],
        flapping: set[str], out: dict[Key, Condition],
    ) -> None:
        for region, ids in dark.items():
            key = (rule.name, f"region:{region}")
            out[key] = Condition(
                rule.name, "region_dark", key[1], rule.region_dark_severity,
                self._t["region_dark"].format(region=region, count=len(ids)),
                rule.for_s, rule.clear_for_s, region=region, affected=tuple(ids), value=len(ids), unit="devices",
            )
        for device in self._devices[rule.name]:
            key = (rule.name, f"device:{device.id}")
            state = view.states.get(device.id, State.UNKNOWN)
            if key in firing:
                holds = state.offline  # a down camera whose switch then dies is still not back
            else:
                holds = state is State.DOWN and device.region not in dark and device.id not in flapping
            if not holds:
                continue
            affected = tuple(d for d in self._descendants.get(device.id, ()) if view.states.get(d) is State.UNREACHABLE)
            out[key] = Condition(
                rule.name, "device_down", key[1], rule.severity_by_kind.get(device.kind, rule.severity),
                self._down_title(device, affected), rule.for_s, rule.clear_for_s,
                since_ns=view.since_ns.get(device.id), device_id=device.id, site=device.site, region=device.region,
                affected=affected, details={"state": state.value},
            )

    def _down_title(self, device: Device, affected: Sequence[str]) -> str:
        kind = self._kinds[device.kind]
        cameras = sum(1 for d in affected if self.inventory.devices[d].kind is Kind.CAMERA)
        others = len(affected) - cameras
        if cameras and others:
            template = "down_affected_more"
        elif cameras:
            template = "down_affected"
        elif others:
            template = "down_affected_devices"
        else:
            template = "down"
        return self._t[template].format(kind=kind, name=device.name, cameras=cameras, others=others)

    def _online_rate(
        self, rule: OnlineRateRule, view: View, firing: set[Key], dark: dict[str, list[str]],
        out: dict[Key, Condition],
    ) -> None:
        clear_at = rule.clear_above_pct if rule.clear_above_pct is not None else rule.below_pct
        regions, sites = set(rule.match.region), set(rule.match.site)
        for rate in view.rates:
            if rate.scope != rule.scope or rate.kind != rule.kind:
                continue
            if rule.scope == "region" and ((regions and rate.group not in regions) or rate.group in dark):
                continue
            if rule.scope == "site" and sites and rate.group not in sites:
                continue
            key = (rule.name, "fleet" if rule.scope == "fleet" else f"{rule.scope}:{rate.group}")
            value = rate.rate_pct
            if value is None:
                holds = key in firing  # nothing decided: hold, never clear blind
            else:
                holds = value < (clear_at if key in firing else rule.below_pct)
            if not holds:
                continue
            group = self._t["fleet"] if rule.scope == "fleet" else rate.group
            out[key] = Condition(
                rule.name, "online_rate", key[1], rule.severity,
                self._t["online_rate"].format(
                    group=group, kind=self._kinds[rule.kind], value=value or 0.0, limit=rule.below_pct
                ),
                rule.for_s, rule.clear_for_s,
                region=rate.group if rule.scope == "region" else None,
                site=rate.group if rule.scope == "site" else None,
                value=value, threshold=rule.below_pct, unit="%",
                details={"online": rate.online, "offline": rate.offline, "total": rate.total}, held=value is None,
            )

    def _window(
        self, rule: LatencyRule | LossRule | JitterRule, view: View, firing: set[Key], out: dict[Key, Condition]
    ) -> None:
        limit, clear = rule.limits()
        column = WINDOW_FIELDS.index(rule.metric)
        for device in self._devices[rule.name]:
            key = (rule.name, f"device:{device.id}")
            if view.states.get(device.id, State.UNKNOWN).offline:
                # Down or behind a down parent: device_down speaks for it (one fault per problem);
                # a fault already firing is held below (no samples), not resolved.
                samples = []
            else:
                recent = list(self._recent.get(device.id, ()))[-rule.window :]
                # Only results the device answered: a probe with no reply at all is a down signal
                # (hysteresis decides), not 100 % loss of a line that works.
                samples = [r[column] for r in recent if r[0] is not None and r[column] is not None]
            if len(samples) < rule.min_samples:
                holds, value = key in firing, None
            else:
                value = sum(samples) / len(samples)
                holds = value >= clear if key in firing else value > limit
            if not holds:
                continue
            out[key] = Condition(
                rule.name, rule.type, key[1], rule.severity,
                self._t[rule.type].format(kind=self._kinds[device.kind], name=device.name, value=value or 0.0, limit=limit),
                rule.for_s, rule.clear_for_s, device_id=device.id, site=device.site, region=device.region,
                value=value, threshold=limit, unit=rule.unit, details={"samples": len(samples)}, held=value is None,
            )


def _descendants(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """device id → ids of every device behind it (children, their children …)."""
    children: dict[str, list[str]] = defaultdict(list)
    for device in inventory.devices.values():
        if device.parent:
            children[device.parent].append(device.id)
    out: dict[str, tuple[str, ...]] = {}
    for device in reversed(inventory.topo_order()):  # children before parents
        kids = children.get(device.id, ())
        out[device.id] = tuple(k for kid in kids for k in (kid, *out.get(kid, ())))
    return out

