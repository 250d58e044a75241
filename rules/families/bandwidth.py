"""link_bandwidth: a line used near its contracted bandwidth (签约带宽, point list `bandwidth`:
10M … 622M, CONTRACTS.md B). The line itself has no counters: its traffic is read on the switch
ports that face it (IF-MIB, probe `snmp`, series snmp_interface), in bit/s, against the
contracted rate (not the port's ifHighSpeed: a 1 Gbit/s port carries a 10 Mbit/s line).

The ports facing a device with a contracted bandwidth, as the point list ties them:
- its parent switch's port it is plugged into (the device's `parent` and `port`);
- the uplink port (`uplink`) of each switch behind it (its children), the line's far side;
- its own uplink port, when the device is a switch itself.
Utilisation = the busiest direction of the busiest of those ports ÷ the contracted rate × 100.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal

from pydantic import Field, model_validator

from monitor.core.model import Device, Kind
from monitor.state.tracker import State
from rules.base import Condition, Facts, Key, Now, RuleBase, beyond
from rules.model import Severity

PORTS = "snmp_interface"

TITLES = {
    "zh": {"link_bandwidth": "{kind}{name}带宽利用率{value:.0f}%（{mbps:.1f} Mbit/s，签约带宽{contract}），超过{limit:g}%"},
    "en": {"link_bandwidth": "{kind} {name} at {value:.0f}% of its contracted {contract} ({mbps:.1f} Mbit/s), above {limit:g}%"},
}


def facing_ports(facts: Facts, device: Device) -> Iterator[tuple[str, str]]:
    """(switch id, port name) of every port facing `device` (see the module doc)."""
    devices = facts.inventory.devices
    if device.parent is not None and device.port and devices[device.parent].kind is Kind.SWITCH:
        yield device.parent, device.port
    for child in facts.inventory.children(device.id):
        if child.kind is Kind.SWITCH and child.uplink:
            yield child.id, child.uplink
    if device.kind is Kind.SWITCH and device.uplink:
        yield device.id, device.uplink


def rate_text(bps: int) -> str:
    """A contracted rate as people write it: 10M, 622M, 1G, 1.5G, 512k."""
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps >= scale:
            return f"{bps / scale:g}{unit}"
    return f"{bps} bit/s"


class LinkBandwidthRule(RuleBase):
    titles = TITLES
    type: Literal["link_bandwidth"] = "link_bandwidth"
    above_pct: Annotated[float, Field(gt=0, le=1000)] = 90.0
    clear_below_pct: Annotated[float, Field(gt=0, le=1000)] | None = 80.0
    severity: Severity = Severity.MAJOR

    @model_validator(mode="after")
    def _clear_below_raise(self) -> "LinkBandwidthRule":
        if self.clear_below_pct is not None and self.clear_below_pct > self.above_pct:
            raise ValueError("clear_below_pct must be ≤ above_pct")
        return self

    def watch(self, facts: Facts) -> None:
        lines = [d for d in facts.match(self) if d.bandwidth_bps]
        facts.devices[self.name] = tuple(lines)  # only devices with a contracted bandwidth
        facts.keep_values(PORTS, (switch for d in lines for switch, _ in facing_ports(facts, d)))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        firing = now.firing
        clear = self.above_pct if self.clear_below_pct is None else self.clear_below_pct
        for device in facts.devices[self.name]:
            key = (self.name, f"device:{device.id}")
            busiest = None if now.view.states.get(device.id, State.UNKNOWN).offline else self._busiest(facts, device)
            if busiest is None:  # no counters (a failed poll, no SNMP), or the line is down: hold, never clear
                if key in firing:
                    out[key] = Condition(self.name, self.type, key[1], self.severity, "", self.for_s, self.clear_for_s,
                                         device_id=device.id, site=device.site, region=device.region, unit="%",
                                         held=True)
                continue
            bps, where = busiest
            assert device.bandwidth_bps is not None
            pct = bps / device.bandwidth_bps * 100
            if not beyond(pct, self.above_pct, clear, key in firing, "above"):
                continue
            title = self.title(facts, self.type, kind=facts.kinds[device.kind], name=device.name, value=pct,
                               mbps=bps / 1e6, contract=rate_text(device.bandwidth_bps), limit=self.above_pct)
            details: dict[str, Any] = {"switch": where[0], "port": where[1], "bps": bps,
                                       "contracted_bps": device.bandwidth_bps}
            out[key] = Condition(
                self.name, self.type, key[1], self.severity, title, self.for_s, self.clear_for_s, device_id=device.id,
                site=device.site, region=device.region, value=pct, threshold=self.above_pct, unit="%", details=details,
            )

    def _busiest(self, facts: Facts, device: Device) -> tuple[float, tuple[str, str]] | None:
        """(bit/s, (switch, port)) of the busiest direction of the facing ports that report
        rates; None when none does."""
        best = None
        for switch, port in facing_ports(facts, device):
            fields = facts.values.get((switch, PORTS), {}).get((port,))
            if fields is None:
                continue
            rates = [float(v) for f in ("in_bps", "out_bps") if isinstance(v := fields.get(f), (int, float))]
            if rates and (best is None or max(rates) > best[0]):
                best = (max(rates), (switch, port))
        return best
