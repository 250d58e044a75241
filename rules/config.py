"""Config of the rules engine, fault lifecycle, maintenance windows and notifications
(config.yaml sections `rules`, `flapping`, `maintenance`, `notify`).

Rule types (RFC-free: these are the contract's own terms):
- device_down: a device DOWN (not merely unreachable behind a down parent) for `for_s`.
  Cameras behind it fold into its fault; a region wholly dark is one fault for the region.
- online_rate: a group's online rate (在线率) below `below_pct` for `for_s`; clears at or above
  `clear_above_pct` (hysteresis).
- latency / loss / jitter: the mean of the device's last `window` ICMP results above the
  limit; clear below the (lower) clear limit.
Every rule has `for_s` (raise only when sustained) and `clear_for_s` (resolve only when the
clear condition held that long), so a value hovering at the limit raises one fault.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal, Self, Union

from pydantic import Field, model_validator

from monitor.config_base import SelectorConfig, Strict
from monitor.model import Kind
from rules.duty import DutyShift
from rules.model import Severity
from rules.notifiers import MqttConfig, WebhookConfig, WeComConfig


class _RuleBase(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    match: SelectorConfig = SelectorConfig()
    for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    clear_for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    severity: Severity = Severity.MAJOR


class DeviceDownRule(_RuleBase):
    type: Literal["device_down"] = "device_down"
    severity_by_kind: dict[Kind, Severity] = {
        Kind.LINK: Severity.CRITICAL,
        Kind.PLATFORM: Severity.CRITICAL,
        Kind.SERVER: Severity.MAJOR,
        Kind.SWITCH: Severity.MAJOR,
        Kind.UPS: Severity.MAJOR,
        Kind.CAMERA: Severity.MINOR,
    }
    """Severity by the down device's kind; `severity` for kinds not listed."""
    region_dark_severity: Severity = Severity.CRITICAL


class OnlineRateRule(_RuleBase):
    type: Literal["online_rate"] = "online_rate"
    scope: Literal["fleet", "region", "site"] = "region"
    kind: Kind | Literal["all"] = Kind.CAMERA
    below_pct: Annotated[float, Field(gt=0, le=100)] = 95.0
    clear_above_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    """Defaults to below_pct."""

    @model_validator(mode="after")
    def _clear_not_below_raise(self) -> "OnlineRateRule":
        if self.clear_above_pct is not None and self.clear_above_pct < self.below_pct:
            raise ValueError("clear_above_pct must be ≥ below_pct")
        return self


class _WindowRule(_RuleBase):
    """A rule on the mean of one ICMP field over the device's last `window` answered results.
    Subclasses name the field (`metric`, its `unit`) and their raise/clear keys (`limit_keys`)."""

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


class LatencyRule(_WindowRule):
    metric, unit, limit_keys = "rtt_avg_ms", "ms", ("above_ms", "clear_below_ms")
    type: Literal["latency"] = "latency"
    above_ms: Annotated[float, Field(gt=0)] = 200.0
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


Rule = Annotated[
    Union[DeviceDownRule, OnlineRateRule, LatencyRule, LossRule, JitterRule], Field(discriminator="type")
]


def default_rules() -> list[Rule]:
    """What a 雪亮工程 contract measures: devices down, camera online rate per region against
    95 %, dedicated-line latency against 200 ms, loss and jitter on the lines."""
    links = SelectorConfig(kind=[Kind.LINK])
    return [
        DeviceDownRule(name="device-down", for_s=60),
        OnlineRateRule(name="camera-online-rate", for_s=300, clear_above_pct=95.5, severity=Severity.CRITICAL),
        # Loss and jitter are noisy at a few echoes a cycle: a longer window and clear_for_s
        # keep a line that hovers at the limit from raising and resolving every few minutes.
        LatencyRule(name="link-latency", match=links, for_s=60, clear_for_s=120, clear_below_ms=180),
        LossRule(name="link-loss", match=links, window=10, for_s=60, clear_for_s=300, above_pct=5, clear_below_pct=2),
        JitterRule(name="link-jitter", match=links, window=10, for_s=120, clear_for_s=300, severity=Severity.MINOR),
    ]


class FlappingConfig(Strict):
    """Flap damping: a device whose state changed `max_changes` times within `window_s` is
    *flapping*: one fault says so and holds until it has been stable for `window_s`; its
    device_down faults are held back meanwhile."""

    window_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    max_changes: Annotated[int, Field(ge=2, le=1000)] = 4
    severity: Severity = Severity.MAJOR


class MaintenanceWindowConfig(Strict):
    """A scheduled maintenance window (计划维护): faults of matching devices are not notified
    inside it, and the time is marked in the state database so reports can exclude it."""

    match: SelectorConfig
    start: datetime
    end: datetime
    reason: Annotated[str, Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _order(self) -> "MaintenanceWindowConfig":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-12-01T02:00:00+08:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


RouteConfig = Annotated[Union[WeComConfig, WebhookConfig, MqttConfig], Field(discriminator="type")]


class NotifyConfig(Strict):
    """Where faults are sent (`routes`, each with its own selector, minimum severity,
    reminders and escalation) and who is on duty (`duty`, for WeCom @mentions)."""

    routes: list[RouteConfig] = []
    duty: list[DutyShift] = []

    @model_validator(mode="after")
    def _names(self) -> "NotifyConfig":
        names = [r.name for r in self.routes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route names must be unique: {', '.join(twice)}")
        for r in self.routes:
            if r.escalate_to is not None and r.escalate_to not in names:
                raise ValueError(f"route {r.name}: escalate_to names no route: {r.escalate_to}")
            if r.escalate_to == r.name:
                raise ValueError(f"route {r.name}: escalate_to must name another route")
            if (r.escalate_to is None) != (r.escalate_after_s is None):
                raise ValueError(f"route {r.name}: escalate_after_s and escalate_to go together")
        return self


RESERVED_RULE_NAMES = ("flapping", "notifier")  # faults fleetmon raises itself


def unique_rule_names(rules: list[Rule]) -> list[Rule]:
    """Validator of the `rules` list: names identify faults, so they must be unique and not
    one of fleetmon's own."""
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"rule names must be unique: {', '.join(twice)}")
    reserved = sorted(set(names) & set(RESERVED_RULE_NAMES))
    if reserved:
        raise ValueError(f"rule names reserved by fleetmon: {', '.join(reserved)}")
    return rules
