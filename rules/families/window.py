"""latency / loss / jitter: the mean of one field of a device's last `window` answered network
results (the icmp measurement) above the limit; clears below the (lower) clear limit. A device
offline on the network raises none (device_down speaks for it); a firing fault is held.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from monitor.core.contract import LINE_RTT_LIMIT_MS
from monitor.state.tracker import State
from rules.base import Condition, Facts, Key, Now, RuleBase, beyond

TITLES = {
    "zh": {
        "latency": "{kind}{name}时延{value:.0f} ms，超过{limit:g} ms",
        "loss": "{kind}{name}丢包率{value:.1f}%，超过{limit:g}%",
        "jitter": "{kind}{name}抖动{value:.1f} ms，超过{limit:g} ms",
    },
    "en": {
        "latency": "{kind} {name} latency {value:.0f} ms, above {limit:g} ms",
        "loss": "{kind} {name} loss {value:.1f}%, above {limit:g}%",
        "jitter": "{kind} {name} jitter {value:.1f} ms, above {limit:g} ms",
    },
}


class _WindowRule(RuleBase):
    """A rule on the mean of one network-result field over the device's last `window` answered
    results. Subclasses name the field (`metric`, its `unit`) and their raise/clear keys
    (`limit_keys`)."""

    titles = TITLES
    metric: ClassVar[str]
    unit: ClassVar[str]
    limit_keys: ClassVar[tuple[str, str]]  # (raise above, clear below) field names

    window: Annotated[int, Field(ge=1, le=1000)] = 5
    """How many of the device's latest ICMP results are averaged."""
    min_samples: Annotated[int, Field(ge=1, le=1000)] = 3

    def limits(self) -> tuple[float, float]:
        """(raise above, clear below); the clear limit defaults to the raise limit."""
        limit, clear = (getattr(self, key) for key in self.limit_keys)
        return limit, limit if clear is None else clear

    @model_validator(mode="after")
    def _clear_not_above_raise(self) -> Self:
        limit, clear = self.limits()
        if clear > limit:
            raise ValueError(f"{self.limit_keys[1]} must be ≤ {self.limit_keys[0]}")
        return self

    def watch(self, facts: Facts) -> None:
        facts.keep_window(self.metric, self.window, facts.match(self))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        states, firing, template = now.view.states, now.firing, self.titles[facts.language][self.type]
        limit, clear = self.limits()
        column = 1 + facts.window_fields.index(self.metric)  # after `answered`
        for device in facts.devices[self.name]:
            key = (self.name, f"device:{device.id}")
            if states.get(device.id, State.UNKNOWN).offline:
                # Down or behind a down parent: device_down speaks for it (one fault per problem);
                # a fault already firing is held below (no samples), not resolved.
                samples = []
            else:
                recent = list(facts.recent.get(device.id, ()))[-self.window :]
                # Only results the device answered: a probe with no reply at all is a down signal
                # (hysteresis decides), not 100 % loss of a line that works.
                samples = [r[column] for r in recent if r[0] and r[column] is not None]
            if len(samples) < self.min_samples:
                holds, value = key in firing, None
            else:
                value = sum(samples) / len(samples)
                holds = beyond(value, limit, clear, key in firing, "above")
            if not holds:
                continue
            out[key] = Condition(
                self.name, self.type, key[1], self.severity,
                template.format(kind=facts.kinds[device.kind], name=device.name, value=value or 0.0, limit=limit),
                self.for_s, self.clear_for_s, device_id=device.id, site=device.site, region=device.region,
                value=value, threshold=limit, unit=self.unit, details={"samples": len(samples)}, held=value is None,
            )


class LatencyRule(_WindowRule):
    metric, unit, limit_keys = "rtt_avg_ms", "ms", ("above_ms", "clear_below_ms")
    type: Literal["latency"] = "latency"
    above_ms: Annotated[float, Field(gt=0)] = LINE_RTT_LIMIT_MS
    clear_below_ms: Annotated[float, Field(gt=0)] | None = None


class LossRule(_WindowRule):
    metric, unit, limit_keys = "loss_pct", "%", ("above_pct", "clear_below_pct")
    type: Literal["loss"] = "loss"
    above_pct: Annotated[float, Field(gt=0, le=100)] = 5.0
    clear_below_pct: Annotated[float, Field(ge=0, le=100)] | None = None


class JitterRule(_WindowRule):
    metric, unit, limit_keys = "jitter_ms", "ms", ("above_ms", "clear_below_ms")
    type: Literal["jitter"] = "jitter"
    above_ms: Annotated[float, Field(gt=0)] = 30.0
    clear_below_ms: Annotated[float, Field(gt=0)] | None = None
