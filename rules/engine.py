"""The rules engine: from what the fleet looks like after a cycle to the set of conditions
that hold now, each keyed by (rule name, scope). The fault lifecycle (rules/alerting/faults.py) turns
conditions into faults over time (for_s, clear_for_s, notifications).

Evaluation is a pure function of the engine's inputs, so it is tested without I/O:
- `observe(result)`: every probe result (a bounded window of ICMP results per device, and the
  latest values of the measurements value rules watch);
- `observe_trap(event)`: SNMP traps, applied to those latest values at once (a linkDown marks
  the port down before the next poll confirms it);
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
- a flapping device gets one flapping fault, and no device-down faults while it flaps;
- value rules (ports, UPS, clocks …) and video_down hold, never raise, while their device is
  offline on the network: device_down speaks for it;
- a down device's fault names its likely cause when the engine sees one: its access port down
  on the parent switch (point list `port`), or a UPS of its site on battery.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from monitor.core.model import Basis
from monitor.fleet.inventory import Inventory
from monitor.core.model import Device, Kind
from monitor.state.online_rate import ALL, GroupRate
from monitor.state.tracker import State, Transition
from probes.base import ProbeResult
from rules.config import (
    DeviceDownRule,
    FlappingConfig,
    JitterRule,
    LatencyRule,
    LossRule,
    OnlineRateRule,
    PortDownRule,
    RESERVED_RULE_NAMES,
    Rule,
    UpsOnBatteryRule,
    VideoDownRule,
    _ValueRule,
)

if TYPE_CHECKING:
    from probes.traps import TrapEvent
from rules.model import Severity

Key = tuple[str, str]  # (rule name, scope)
WINDOW_FIELDS = ("rtt_avg_ms", "loss_pct", "jitter_ms")
UPS_MINUTES_REMAINING = "1.3.6.1.2.1.33.1.2.3.0"  # upsEstimatedMinutesRemaining.0  # ICMP fields the window rules average
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
        "online_rate": "{group}{kind}{basis}{value:.2f}%，低于{limit:g}%",
        "fleet": "全网",
        "basis": {"online": "在线率", "network": "网络在线率", "service": "服务在线率", "video": "视频在线率"},
        "latency": "{kind}{name}时延{value:.0f} ms，超过{limit:g} ms",
        "loss": "{kind}{name}丢包率{value:.1f}%，超过{limit:g}%",
        "jitter": "{kind}{name}抖动{value:.1f} ms，超过{limit:g} ms",
        "flapping": "{kind}{name}频繁掉线（{count}次状态变化/{minutes:g}分钟）",
        "video_down": "{kind}{name}网络正常但视频中断（{reason}）",
        "service_down": "{kind}{name}网络正常但ONVIF服务异常（{reason}）",
        "clock_drift": "{kind}{name}时钟偏差{value:.0f}秒，超过{limit:g}秒",
        "inventory_mismatch": "{kind}{name}与点位表不符：{detail}",
        "port_down": "{kind}{name}端口{port}中断",
        "uplink_down": "{kind}{name}上联端口{port}中断",
        "ups_on_battery": "{kind}{name}市电中断，电池供电（剩余约{minutes}分钟），{site}{count}台设备依其供电",
        "ups_battery_low": "{kind}{name}电池即将耗尽（剩余{minutes}分钟）",
        "device_rebooted": "{kind}{name}重启（已运行{minutes:.0f}分钟）",
        "interface_utilisation": "{kind}{name}端口{port}带宽利用率{value:.0f}%，超过{limit:g}%",
        "interface_errors": "{kind}{name}端口{port}错误包{value:.1f}个/秒，超过{limit:g}个/秒",
        "storage_usage": "{kind}{name}磁盘{disk}使用率{value:.0f}%，超过{limit:g}%",
        "cause_port": "（{parent}端口{port}中断）",
        "cause_ups": "（可能因UPS {ups}市电中断）",
        "unknown_reason": "原因未知",
    },
    "en": {
        "down": "{kind} {name} down",
        "down_affected": "{kind} {name} down, {cameras} cameras affected",
        "down_affected_more": "{kind} {name} down, {cameras} cameras and {others} other devices affected",
        "down_affected_devices": "{kind} {name} down, {others} devices affected",
        "region_dark": "{region} entirely offline ({count} devices)",
        "online_rate": "{group} {kind} {basis} {value:.2f}%, below {limit:g}%",
        "fleet": "fleet",
        "basis": {"online": "online rate", "network": "network online rate", "service": "service online rate",
                  "video": "video online rate"},
        "latency": "{kind} {name} latency {value:.0f} ms, above {limit:g} ms",
        "loss": "{kind} {name} loss {value:.1f}%, above {limit:g}%",
        "jitter": "{kind} {name} jitter {value:.1f} ms, above {limit:g} ms",
        "flapping": "{kind} {name} flapping ({count} state changes in {minutes:g} min)",
        "video_down": "{kind} {name} network up but no video ({reason})",
        "service_down": "{kind} {name} network up but ONVIF service failing ({reason})",
        "clock_drift": "{kind} {name} clock off by {value:.0f} s, above {limit:g} s",
        "inventory_mismatch": "{kind} {name} differs from the point list: {detail}",
        "port_down": "{kind} {name} port {port} down",
        "uplink_down": "{kind} {name} uplink {port} down",
        "ups_on_battery": "{kind} {name} on battery, mains lost (about {minutes} min left); {count} devices at {site} depend on it",
        "ups_battery_low": "{kind} {name} battery nearly exhausted ({minutes} min left)",
        "device_rebooted": "{kind} {name} rebooted (up {minutes:.0f} min)",
        "interface_utilisation": "{kind} {name} port {port} utilisation {value:.0f}%, above {limit:g}%",
        "interface_errors": "{kind} {name} port {port} errors {value:.1f}/s, above {limit:g}/s",
        "storage_usage": "{kind} {name} disk {disk} {value:.0f}% used, above {limit:g}%",
        "cause_port": " (port {port} of {parent} down)",
        "cause_ups": " (likely: UPS {ups} lost mains)",
        "unknown_reason": "reason unknown",
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
    """The fleet at `ts_ns` (UTC ns): network states (the icmp tracker's: device_down and the
    window rules) and since when, online rates of every basis, and the states of every basis
    (monitor.state.availability: basis → device id → State; a device a basis does not apply to is
    absent)."""

    ts_ns: int
    states: Mapping[str, State]
    since_ns: Mapping[str, int]
    rates: Sequence[GroupRate]
    bases: Mapping[str, Mapping[str, State]] = field(default_factory=dict)


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
        # Latest values of the measurements value rules watch, and only for the devices they
        # watch: (device id, measurement) → instance (series tag values; () for the probe's own
        # fields) → fields. Also the parents' ports and the sites' UPS units, for causes.
        self._by_site_ups: dict[str, list[Device]] = defaultdict(list)
        for d in inventory.devices.values():
            if d.kind is Kind.UPS:
                self._by_site_ups[d.site].append(d)
        watched: dict[str, set[str]] = defaultdict(set)
        for r in rules:
            if isinstance(r, _ValueRule):
                watched[r.measurement].update(d.id for d in self._devices[r.name])
        if any(isinstance(r, DeviceDownRule) for r in rules):
            watched["snmp_interface"].update(d.parent for d in inventory.devices.values() if d.port and d.parent)
            watched["ups"].update(u.id for ups in self._by_site_ups.values() for u in ups)
        self._watched = {m: frozenset(ids) for m, ids in watched.items()}
        # Series measurements each probe has reported (learnt from its results), so that a poll
        # that reports none of them (failed) clears them.
        self._series_of: dict[str, set[str]] = defaultdict(set)
        self._values: dict[tuple[str, str], dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self._reported: set[str] = set()  # measurements with values from any device
        # Why a camera's video (or service) is down, for video_down titles: (device, probe) → reason.
        self._reason_of = {
            p for r in rules if isinstance(r, VideoDownRule) for p in ("rtsp", "rtsp_frame", "onvif")
        }
        self._reasons: dict[tuple[str, str], str | None] = {}

    # -- inputs -------------------------------------------------------------------------------

    def observe(self, result: ProbeResult) -> None:
        recent = self._recent.get(result.device_id)
        if recent is not None and result.probe == self._probe:
            recent.append(tuple(result.fields.get(name) for name in WINDOW_FIELDS))
        known = self._series_of[result.probe]
        known.update(s.measurement for s in result.series)
        for m in (result.probe, *known):
            if result.device_id not in self._watched.get(m, ()):
                continue
            # Replaced wholesale: a port or disk the device no longer reports (or a failed poll,
            # which reports none) has no data, and a fault on it is held, not resolved.
            self._reported.add(m)
            if m == result.probe:
                self._values[(result.device_id, m)] = {(): result.fields}
            else:
                self._values[(result.device_id, m)] = {
                    tuple(s.tags.values()): s.fields for s in result.series if s.measurement == m
                }
        if result.probe in self._reason_of:
            self._reasons[(result.device_id, result.probe)] = result.reason

    def observe_trap(self, event: "TrapEvent") -> None:
        """Apply a trap to the latest values at once; the next poll confirms or corrects it.
        linkDown/linkUp (RFC 2863 §6 / SNMPv2-MIB) set the port's ifOperStatus, upsTrapOnBattery
        (RFC 1628 §4.1) sets upsOutputSource battery, coldStart/warmStart set sysUpTime 0."""
        device_id = event.device_id
        if device_id is None:
            return
        self._reported.update(("snmp", "snmp_interface", "ups"))
        if event.name in ("link_down", "link_up") and device_id in self._watched.get("snmp_interface", ()):
            ports = self._values.setdefault((device_id, "snmp_interface"), {})
            key = next((k for k, f in ports.items() if f.get("if_index") == event.if_index), None)
            if key is None:
                name = event.if_name or f"ifIndex {event.if_index}"
                key = (name,)
                uplink = self.inventory.devices[device_id].uplink
                ports[key] = {"if_index": event.if_index, "admin_status": 1, "uplink": uplink == name}
            status = 2 if event.name == "link_down" else 1
            ports[key] = {**ports[key], "oper_status": status, "up": status == 1}
        elif event.name == "ups_on_battery" and device_id in self._watched.get("ups", ()):
            ups = self._values.setdefault((device_id, "ups"), {(): {}})
            fields = {**ups.get((), {}), "on_battery": True, "output_source": 5}
            # The trap carries upsEstimatedMinutesRemaining (RFC 1628 §4.1, upsTrapOnBattery).
            minutes = dict(event.varbinds).get(UPS_MINUTES_REMAINING, "")
            if minutes.isdigit():
                fields["minutes_remaining"] = int(minutes)
            ups[()] = fields
        elif event.name in ("cold_start", "warm_start") and device_id in self._watched.get("snmp", ()):
            system = self._values.setdefault((device_id, "snmp"), {(): {}})
            system[()] = {**system.get((), {}), "sys_uptime_s": 0.0}

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
            elif isinstance(rule, VideoDownRule):
                self._video_down(rule, view, firing, out)
            elif isinstance(rule, _ValueRule):
                self._value(rule, view, firing, out)
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
            details: dict[str, Any] = {"state": state.value}
            cause = self._cause(device, details)
            out[key] = Condition(
                rule.name, "device_down", key[1], rule.severity_by_kind.get(device.kind, rule.severity),
                self._down_title(device, affected) + cause, rule.for_s, rule.clear_for_s,
                since_ns=view.since_ns.get(device.id), device_id=device.id, site=device.site, region=device.region,
                affected=affected, details=details,
            )

    def _cause(self, device: Device, details: dict[str, Any]) -> str:
        """The likely cause of a device being down, as a title suffix ("" when none is seen);
        adds it to `details`."""
        if device.port and device.parent:
            ports = self._values.get((device.parent, "snmp_interface"), {})
            fields = ports.get((device.port,))
            if fields is not None and fields.get("oper_status", 1) != 1:
                details["cause"] = {"port": device.port, "switch": device.parent}
                parent = self.inventory.devices[device.parent].name
                return self._t["cause_port"].format(parent=parent, port=device.port)
        for ups in self._by_site_ups.get(device.site, ()):
            if ups.id != device.id and self._values.get((ups.id, "ups"), {}).get((), {}).get("on_battery"):
                details["cause"] = {"ups": ups.id}
                return self._t["cause_ups"].format(ups=ups.name)
        return ""

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
            if rate.scope != rule.scope or rate.kind != rule.kind or rate.basis != rule.basis:
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
                    group=group, kind=self._kinds[rule.kind], basis=self._t["basis"][rule.basis], value=value or 0.0,
                    limit=rule.below_pct,
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


    def _video_down(self, rule: VideoDownRule, view: View, firing: set[Key], out: dict[Key, Condition]) -> None:
        basis = view.bases.get(Basis(rule.basis), {})
        if not basis:
            return  # the basis' probes are not running
        probes = ("onvif",) if rule.basis == "service" else ("rtsp", "rtsp_frame")
        template = "service_down" if rule.basis == "service" else "video_down"
        for device in self._devices[rule.name]:
            key = (rule.name, f"device:{device.id}")
            state = basis.get(device.id)
            if state is None:
                continue
            if key in firing:
                holds = state is not State.UP  # offline on the network or unknown: no news, hold
            else:
                holds = state is State.DOWN
            if not holds:
                continue
            reason = next(
                (r for p in probes if (r := self._reasons.get((device.id, p)))), self._t["unknown_reason"]
            )
            out[key] = Condition(
                rule.name, rule.type, key[1], rule.severity,
                self._t[template].format(kind=self._kinds[device.kind], name=device.name, reason=reason),
                rule.for_s, rule.clear_for_s, since_ns=None, device_id=device.id, site=device.site,
                region=device.region, details={"basis": rule.basis, "reason": reason}, held=state is not State.DOWN,
            )

    def _value(self, rule: _ValueRule, view: View, firing: set[Key], out: dict[Key, Condition]) -> None:
        if rule.measurement not in self._reported and not any(key[0] == rule.name for key in firing):
            return  # no probe reports it (SNMP not set up, say): 10,000 lookups saved per evaluation
        seen: set[Key] = set()
        for device in self._devices[rule.name]:
            prefix = f"device:{device.id}"
            # Offline on the network: device_down speaks for it; its faults are held below.
            offline = view.states.get(device.id, State.UNKNOWN).offline
            instances = {} if offline else self._values.get((device.id, rule.measurement), {})
            for instance, fields in instances.items():
                if not rule.applies(fields):
                    continue
                key = (rule.name, "/".join((prefix, *instance)))
                holds, value = self._judge(rule, fields, key in firing)
                if holds is None:  # no data for this rule in this result
                    continue
                seen.add(key)
                if holds:
                    out[key] = self._value_condition(rule, device, instance, fields, key, value)
        for key in firing:
            if key[0] == rule.name and key not in seen and key not in out:
                device_id = key[1].split("/", 1)[0].removeprefix("device:")
                device = self.inventory.devices.get(device_id)
                if device is not None:
                    out[key] = Condition(
                        rule.name, rule.type, key[1], rule.severity, "", rule.for_s, rule.clear_for_s,
                        device_id=device.id, site=device.site, region=device.region, unit=rule.unit, held=True,
                    )

    @staticmethod
    def _judge(rule: _ValueRule, fields: Mapping[str, Any], firing: bool) -> tuple[bool | None, float | None]:
        """(holds, value); holds is None when the fields carry nothing this rule reads."""
        if all(fields.get(f) is None for f in rule.fields):
            return None, None
        values = [float(v) for f in rule.fields if isinstance(v := fields.get(f), (int, float)) and not isinstance(v, bool)]
        value = max(values) if values else None
        flagged = rule.flag(fields)
        if rule.limit_keys is None:
            return flagged, None
        if value is None:
            return (True, None) if flagged else (None, None)
        limit, clear = rule.limits()
        if rule.direction == "above":
            beyond = value >= clear if firing else value > limit
        else:
            beyond = value <= clear if firing else value < limit
        return beyond or flagged, value

    def _value_condition(
        self, rule: _ValueRule, device: Device, instance: tuple[str, ...], fields: Mapping[str, Any], key: Key,
        value: float | None,
    ) -> Condition:
        kind, name = self._kinds[device.kind], device.name
        limit = rule.limits()[0] if rule.limit_keys is not None else None
        part = instance[0] if instance else ""
        affected: tuple[str, ...] = ()
        template = rule.type
        args: dict[str, Any] = {"kind": kind, "name": name, "value": value or 0.0, "limit": limit or 0.0}
        if isinstance(rule, PortDownRule):
            template = "uplink_down" if fields.get("uplink") else "port_down"
            args["port"] = part
        elif isinstance(rule, UpsOnBatteryRule):
            affected = tuple(d.id for d in self.inventory.devices.values() if d.site == device.site and d.id != device.id)
            minutes = fields.get("minutes_remaining")
            args.update(minutes="?" if minutes is None else f"{minutes:g}", site=device.site, count=len(affected))
        elif rule.type == "ups_battery_low":
            minutes = fields.get("minutes_remaining")
            args["minutes"] = "?" if minutes is None else f"{minutes:g}"
        elif rule.type == "device_rebooted":
            args["minutes"] = (value or 0.0) / 60
        elif rule.type == "inventory_mismatch":
            args["detail"] = fields.get("inventory_mismatch", "")
        args.setdefault("port", part)
        args.setdefault("disk", part)
        return Condition(
            rule.name, rule.type, key[1], rule.severity, self._t[template].format(**args), rule.for_s,
            rule.clear_for_s, device_id=device.id, site=device.site, region=device.region, value=value,
            threshold=limit, unit=rule.unit, affected=affected, details={"instance": part} if part else {},
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

