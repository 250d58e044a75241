"""The rule contract: what a rule type is (`RuleBase`: its config and its judgement), what it
judges from (`Facts`, the engine's memory of its inputs, and `Now`, one evaluation) and what it
says (`Condition`, keyed by (rule name, scope)).

The engine (rules/engine.py) fills Facts and asks every configured rule in turn; the rule
types live in rules/families/ and are listed in rules/registry.py. Judging is a pure function
of Facts and Now, so every rule is tested without I/O.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import AbstractSet, Annotated, Any, ClassVar, Iterable, Literal, Mapping, Sequence
from zoneinfo import ZoneInfo

from pydantic import Field

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.model import KIND_LABELS, Device, Selector
from monitor.fleet.inventory import Inventory
from monitor.state.online_rate import ALL, GroupRate
from monitor.state.tracker import State
from rules.model import Severity

Key = tuple[str, str]  # (rule name, scope)
OFFLINE = frozenset(s for s in State if s.offline)  # State.offline as a set: a lookup, not a call, per device

KIND_NAMES = {
    "zh": {**{kind.value: zh for kind, (zh, _) in KIND_LABELS.items()}, ALL: "设备"},
    "en": {**{kind.value: en for kind, (_, en) in KIND_LABELS.items()}, ALL: "device"},
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
    window rules) and since when (UTC ns), online rates of every basis, and the states of every
    basis (monitor.state.availability: basis → device id → State; a device a basis does not
    apply to is absent). `mono_ns`: the same moment on the monotonic clock, for durations (the
    flapping window; monitor/core/clock.py); None: `ts_ns` serves for both (time driven by
    hand, with no steps)."""

    ts_ns: int
    states: Mapping[str, State]
    since_ns: Mapping[str, int]
    rates: Sequence[GroupRate]
    bases: Mapping[str, Mapping[str, State]] = field(default_factory=dict)
    mono_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Now:
    """One evaluation, as every rule sees it:
    - view: the fleet at view.ts_ns;
    - firing: keys of faults that fired and are not resolved: for them the clear limits apply
      (hysteresis), and no data holds them rather than clears them;
    - dark: regions whose every counted device is offline (region → device ids): one fault for
      the region, none for what is inside;
    - flapping: devices that flap (flap damping): no device_down fault while they do."""

    view: View
    firing: AbstractSet[Key]
    dark: Mapping[str, list[str]]
    flapping: AbstractSet[str]


class Facts:
    """What the engine has seen, for the rules to judge from. At start each rule says what it
    needs kept (RuleBase.watch → match, keep_window, keep_values, keep_reasons), and only that
    is kept: every device's results would cost ~30 MB at 10,000 devices.

    - inventory; language of titles; kinds: kind → its name in that language; zone: the
      configured time zone, for what people count in local days (renewal dates);
    - devices: rule name → the counted devices its selector matches, in topology order;
    - behind: device id → ids of every device behind it (children, their children …);
    - at_site: site → its devices (all of them), in inventory order;
    - window_fields, recent: device id → its latest network-basis results (probes_of(network)),
      oldest first, each (answered: ProbeResult.ok, *the values of window_fields);
    - watched: measurement → ids of the devices whose latest values are kept; values:
      (device id, measurement) → instance (series tag values; () for the probe's own fields) →
      fields; reported: measurements with values from any device;
    - reasons: (device id, probe) → the reason of its latest result, for the probes in reason_of.
    """

    def __init__(
        self, inventory: Inventory, rules: Sequence[RuleBase], language: str, timezone: str = "Asia/Shanghai"
    ) -> None:
        self.inventory = inventory
        self.language = language
        self.kinds = KIND_NAMES[language]
        self.zone = ZoneInfo(timezone)
        self.devices: dict[str, tuple[Device, ...]] = {}
        self._matched: dict[Selector, tuple[Device, ...]] = {}  # selector → the devices it matched
        self.behind = _behind(inventory)
        at_site: dict[str, list[Device]] = defaultdict(list)
        for device in inventory.devices.values():
            at_site[device.site].append(device)
        self.at_site: Mapping[str, Sequence[Device]] = dict(at_site)
        self._window_fields: dict[str, None] = {}  # an ordered set
        self._window = 0
        self._windowed: set[str] = set()
        self._watched: dict[str, set[str]] = defaultdict(set)
        self.reason_of: set[str] = set()
        for rule in rules:
            rule.watch(self)
        self.window_fields = tuple(self._window_fields)
        self.recent: dict[str, deque[tuple[Any, ...]]] = {d: deque(maxlen=self._window) for d in self._windowed}
        self.watched = {m: frozenset(ids) for m, ids in self._watched.items()}
        # What the rules asked for is in recent and watched now: the sets they were gathered in
        # would hold every id a second time (~9 MB at 100,000 devices).
        self._windowed.clear()
        self._watched.clear()
        self._matched.clear()
        self.values: dict[tuple[str, str], dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self.reported: set[str] = set()
        self.reasons: dict[tuple[str, str], str | None] = {}

    # -- what rules ask for at start (RuleBase.watch) ----------------------------------------

    def match(self, rule: RuleBase) -> tuple[Device, ...]:
        """The counted devices `rule`'s selector matches, topology order; kept as
        devices[rule.name] (selectors are static: matched once)."""
        selector = rule.match.selector()
        devices = self._matched.get(selector)
        if devices is None:
            # One tuple per selector, not per rule: most rules match all cameras or all links
            # (~3 MB at 100,000 devices for the default rules).
            devices = tuple(d for d in self.inventory.topo_order() if d.counted and selector.matches(d))
            self._matched[selector] = devices
        self.devices[rule.name] = devices
        return devices

    def keep_window(self, field: str, window: int, devices: Iterable[Device]) -> None:
        """Keep the latest `window` values of the network results' `field` for `devices`."""
        self._window_fields[field] = None
        self._window = max(self._window, window)
        self._windowed.update(d.id for d in devices)

    def keep_values(self, measurement: str, device_ids: Iterable[str]) -> None:
        """Keep the latest values of `measurement` for these devices."""
        self._watched[measurement].update(device_ids)

    def keep_reasons(self, probes: Iterable[str]) -> None:
        """Keep the reason of every device's latest result of these probes."""
        self.reason_of.update(probes)


def beyond(value: float, limit: float, clear: float, firing: bool, direction: Literal["above", "below"]) -> bool:
    """Hysteresis on a limit: a new condition holds once `value` is past `limit`; one that
    fired holds until it is back past `clear` (clear ≤ limit for `above`, ≥ for `below`)."""
    if direction == "above":
        return value >= clear if firing else value > limit
    return value <= clear if firing else value < limit


class RuleBase(Strict):
    """What every rule has; a rule type subclasses it with `type: Literal[...]` (its config
    `rules[].type`), its own fields, its `titles`, and its judgement (`watch`, `evaluate`).

    - for_s: raise only when the condition held that long; clear_for_s: resolve only when it
      was gone that long (so a value hovering at the limit raises one fault).
    """

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    match: SelectorConfig = SelectorConfig()
    for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    clear_for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    severity: Severity = Severity.MAJOR

    titles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    """Condition titles: language (zh, en) → template name → str.format template."""

    def watch(self, facts: Facts) -> None:
        """Say at start what the engine must keep for this rule (Facts.match, keep_window,
        keep_values, keep_reasons); by default the devices it matches."""
        facts.match(self)

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        """Add to `out` every condition of this rule that holds now, by key."""
        raise NotImplementedError

    def title(self, facts: Facts, template: str, **args: Any) -> str:
        return self.titles[facts.language][template].format(**args)


def _behind(inventory: Inventory) -> dict[str, tuple[str, ...]]:
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
