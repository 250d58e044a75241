"""The rule and route registries: the config unions are built from them, every registered type
keeps the contract (its `type`, its titles in both languages, the measurements it reads are
ones a probe declares), and the engine judges a rule type it has never heard of."""

import ipaddress
from typing import Literal, get_args

import pytest
from pydantic import TypeAdapter, ValidationError

from monitor.core.model import Basis, Device, Kind
from monitor.fleet.inventory import Inventory
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from probes import REGISTRY, probes_of
from probes.base import ProbeResult
from rules.alerting.config import NotifyConfig, RouteConfig
from rules.alerting.notifiers import ROUTE_TYPES
from rules.base import Condition, Facts, Key, Now, RuleBase, View
from rules.config import FlappingConfig, Rule
from rules.engine import RulesEngine
from rules.families.values import _ValueRule
from rules.families.window import _WindowRule
from rules.registry import RULE_TYPES

DECLARED = {spec.name: spec for cls in REGISTRY.values() for spec in cls.measurements}


def _literal(model, field="type"):
    (value,) = get_args(model.model_fields[field].annotation)
    return value


def test_rule_union_is_the_registry_in_order_and_each_key_is_its_type():
    assert get_args(get_args(Rule)[0]) == tuple(RULE_TYPES.values())
    assert all(_literal(cls) == key for key, cls in RULE_TYPES.items())


def test_an_unknown_rule_type_is_refused_naming_every_registered_one():
    with pytest.raises(ValidationError) as error:
        TypeAdapter(list[Rule]).validate_python([{"type": "humidity", "name": "h"}])
    assert "does not match any of the expected tags: " + ", ".join(f"'{t}'" for t in RULE_TYPES) in str(error.value)


@pytest.mark.parametrize("cls", RULE_TYPES.values(), ids=list(RULE_TYPES))
def test_every_rule_type_has_its_titles_in_both_languages(cls):
    assert set(cls.titles) == {"zh", "en"}
    assert cls.titles["zh"].keys() == cls.titles["en"].keys()


@pytest.mark.parametrize(
    "cls", [c for c in RULE_TYPES.values() if issubclass(c, _ValueRule) and c.measurement], ids=lambda c: c.__name__
)
def test_value_rules_read_measurements_and_fields_a_probe_declares(cls):
    # (snmp_value names its measurement in its config: checked at config load, tests/test_rules_values.py)
    assert cls.measurement in DECLARED
    assert set(cls.fields) <= set(DECLARED[cls.measurement].fields)
    assert _literal(cls) in cls.titles["zh"]


@pytest.mark.parametrize(
    "cls", [c for c in RULE_TYPES.values() if issubclass(c, _WindowRule)], ids=lambda c: c.__name__
)
def test_window_rules_average_a_field_of_the_network_probes(cls):
    network = probes_of(Basis.NETWORK)
    assert network and all(cls.metric in REGISTRY[p].measurements[0].fields for p in network)


def test_route_union_is_the_registry_and_each_key_is_its_type():
    assert get_args(get_args(RouteConfig)[0]) == tuple(cfg for cfg, _ in ROUTE_TYPES.values())
    for key, (cfg, route) in ROUTE_TYPES.items():
        assert _literal(cfg) == key == route.type
    tags = ", ".join(f"'{key}'" for key in ROUTE_TYPES)
    with pytest.raises(ValidationError, match=f"expected tags: {tags}"):
        NotifyConfig(routes=[{"type": "pager", "name": "x"}])


# -- a rule type the engine has never heard of ----------------------------------------------------


class UptimeBelowRule(RuleBase):
    """A rule type defined here, in no registry: the engine judges it through its class."""

    titles = {"zh": {"t": "{name}运行{value:g}秒"}, "en": {"t": "{name} up {value:g} s"}}
    type: Literal["uptime_below"] = "uptime_below"
    below_s: float = 60.0

    def watch(self, facts: Facts) -> None:
        facts.keep_values("snmp", (d.id for d in facts.match(self)))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        for device in facts.devices[self.name]:
            fields = facts.values.get((device.id, "snmp"), {}).get((), {})
            uptime = fields.get("sys_uptime_s")
            if uptime is not None and uptime < self.below_s:
                key = (self.name, f"device:{device.id}")
                out[key] = Condition(
                    self.name, self.type, key[1], self.severity, self.title(facts, "t", name=device.name, value=uptime),
                    self.for_s, self.clear_for_s, device_id=device.id, value=uptime,
                )


def test_the_engine_judges_a_new_rule_type_with_no_change_of_its_own():
    devices = [Device(f"SW{i}", f"SW{i}", Kind.SWITCH, ipaddress.ip_address(f"198.18.5.{i}"), "S1", "R1") for i in (1, 2)]
    engine = RulesEngine(Inventory(devices), [UptimeBelowRule(name="young")], FlappingConfig(), language="en")
    assert engine.facts.watched == {"snmp": frozenset({"SW1", "SW2"})}
    engine.observe(ProbeResult("SW1", "snmp", 0, True, None, {"up": True, "sys_uptime_s": 12.0}))
    engine.observe(ProbeResult("SW2", "snmp", 0, True, None, {"up": True, "sys_uptime_s": 86_400.0}))
    states = {d.id: State.UP for d in devices}
    out = engine.evaluate(View(1, states, {}, online_rates(devices, states)), set())
    assert list(out) == [("young", "device:SW1")] and out[("young", "device:SW1")].title == "SW1 up 12 s"
