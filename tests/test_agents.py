"""Probe agents without a broker: config validation of both ends (located errors), the central's
validation of every message, deduplication, silence → unknown (monitor blind) and one fault,
config drift, the tracker's blind states, `fleetmon agent --check`. The MQTT path end to end is
tests/test_agents_e2e.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from monitor.app.agent_config import points_digest, probes_digest
from monitor.app.agent_file import load_agent
from monitor.app.agent_hub import AgentHub, Expected
from monitor.app.agent_wire import MessageError, Validator, batch_payload, result_line, status_payload
from monitor.app.cli import _load
from monitor.app.config import load_config
from monitor.core.config_base import ConfigError
from monitor.fleet.inventory import load_inventory
from monitor.state.tracker import State, StateTracker
from probes import ProbeResult
from probes.base import Series
from rules.model import Severity
from lab.agents import AGENT, probes_section, write_lab

FLEETMON = str(Path(sys.executable).with_name("fleetmon"))
NOW = time.time_ns()


def errors_of(load, path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.messages


def central(tmp_path: Path, **mqtt_agents) -> Path:
    """config.yaml with the lab's point list and this mqtt_agents section."""
    write_lab(tmp_path, "127.0.0.1", 1883)
    doc = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    doc["mqtt_agents"] = mqtt_agents
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


BROKER = {"host": "127.0.0.1"}
FOREST = {"name": "forest", "select": {"site": ["forest"]}}


# --- the central's mqtt_agents section ---------------------------------------------------------


def test_central_config_errors_are_located(tmp_path):
    path = central(tmp_path, broker=BROKER, topic_prefix="fleetmon/#", agents=[
        {"name": "forest/a", "select": {"site": ["forest"]}},
        {"name": "tower", "select": {}, "probes": ["icmp", "pingg"]},
    ])
    problems = errors_of(load_config, path)
    assert f"{path}:{line_of(path, 'topic_prefix')}: mqtt_agents.topic_prefix: must not contain the wildcards + and # " \
           "or NUL (MQTT 3.1.1 §4.7)" in problems
    assert any(p.startswith(f"{path}:{line_of(path, 'forest/a')}: mqtt_agents.agents[0].name: String should match")
               for p in problems), problems
    assert any(p.startswith(f"{path}:{line_of(path, 'select: {}')}: mqtt_agents.agents[1].select: must select by")
               for p in problems), problems
    assert any("mqtt_agents.agents[1].probes: unknown probe(s) 'pingg'" in p for p in problems), problems


def test_a_topic_prefix_with_a_leading_slash_is_refused_where_it_is(tmp_path):
    """The central's and the notifier's prefixes are one type (config_base.TopicPrefix): a
    leading "/" would put the agents' topics under an empty first level."""
    path = central(tmp_path, broker=BROKER, topic_prefix="/fleetmon/v1", agents=[FOREST])
    problems = errors_of(load_config, path)
    assert any(p.startswith(f"{path}:{line_of(path, 'topic_prefix')}: mqtt_agents.topic_prefix: must not start with /")
               for p in problems), problems


@pytest.mark.parametrize(("section", "message"), [
    ({"agents": [FOREST]}, "mqtt_agents: agents need a broker (mqtt_agents.broker)"),
    ({"broker": BROKER, "agents": [FOREST, FOREST]}, "mqtt_agents: agent name(s) used twice: forest"),
    ({"broker": {**BROKER, "password": "x"}, "agents": [FOREST]}, "mqtt_agents.broker: 'password' must not be written in the config: use password_env or password_file"),
    ({"broker": {**BROKER, "tls": {"cert_file": "c.pem"}}, "agents": [FOREST]},
     "cert_file and key_file go together"),
    ({"broker": {"host": "user:pw@broker"}, "agents": [FOREST]}, "must be a host name or address only"),
    ({"broker": BROKER, "agents": [{**FOREST, "probes": ["tcp"]}]}, "agents run probe(s) tcp, which are disabled"),
])
def test_central_config_refusals(tmp_path, section, message):
    (tmp_path / "c.pem").write_text("a certificate\n", encoding="utf-8")
    path = central(tmp_path, **section)
    problems = errors_of(load_config, path)
    assert any(message in p and p.startswith(f"{path}:") for p in problems), problems


def test_a_device_owned_by_two_agents_or_an_agent_owning_nothing_is_a_located_error(tmp_path):
    path = central(tmp_path, broker=BROKER, agents=[
        FOREST, {"name": "tower", "select": {"region": ["林区"]}}, {"name": "ghost", "select": {"site": ["nowhere"]}},
    ])
    problems = errors_of(_load, path)
    assert f"{path}:{line_of(path, 'name: tower') + 1}: mqtt_agents.agents[1].select: device fo-0 is already owned by " \
           "agent forest: each device belongs to one agent" in problems, problems
    assert any("mqtt_agents.agents[2].select: agent ghost selects no device of the point list" in p for p in problems)
    assert all(p.startswith(f"{path}:") for p in problems)


def test_the_daemon_does_not_probe_what_an_agent_owns(tmp_path):
    path = central(tmp_path, broker=BROKER, agents=[FOREST])
    cfg, inventory = _load(path)
    from monitor.app.daemon import Daemon

    daemon = Daemon(cfg, inventory)
    # The scheduler's list is Running.local (checked here without starting: the Running is made
    # from the same sets).
    from monitor.app.pipeline import Running

    remote = frozenset(f"fo-{i}" for i in range(6))
    running = Running(None, None, daemon.probed, 1.0, remote)  # type: ignore[arg-type]
    assert {d.id for d in running.local} == {"hq-0", "hq-1"}
    assert running.polled == {d.id for d in daemon.probed}


# --- agent.yaml --------------------------------------------------------------------------------


def test_agent_config_loads_its_devices(tmp_path):
    _, agent_path = write_lab(tmp_path, "127.0.0.1", 1883)
    cfg, devices = load_agent(agent_path)
    assert cfg.agent.name == AGENT
    assert [d.id for d in devices] == [f"fo-{i}" for i in range(6)]
    assert cfg.agent.spool_dir == tmp_path / "agent-spool"  # relative to the file


def test_agent_config_errors_are_located(tmp_path):
    _, agent_path = write_lab(tmp_path, "127.0.0.1", 1883, agent_extra={"extra": 1})
    doc = yaml.safe_load(agent_path.read_text(encoding="utf-8"))
    doc["agent"]["heartbeat_s"] = 0
    doc["agent"]["spool_dirr"] = "x"
    doc["broker"]["port"] = 70000
    agent_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    problems = errors_of(load_agent, agent_path)
    assert f"{agent_path}:{line_of(agent_path, 'heartbeat_s')}: agent.heartbeat_s: Input should be greater than or " \
           "equal to 0.2" in problems
    assert f"{agent_path}:{line_of(agent_path, 'spool_dirr')}: agent.spool_dirr: unknown key, did you mean " \
           "'spool_dir'?" in problems
    assert any(p.startswith(f"{agent_path}:{line_of(agent_path, 'port: 70000')}: broker.port:") for p in problems)
    assert any(p.startswith(f"{agent_path}:{line_of(agent_path, 'extra')}: extra: unknown key (known: agent, broker")
               for p in problems), problems


def test_agent_selecting_nothing_or_running_a_disabled_probe_is_refused(tmp_path):
    _, agent_path = write_lab(tmp_path, "127.0.0.1", 1883)
    doc = yaml.safe_load(agent_path.read_text(encoding="utf-8"))
    doc["agent"]["select"] = {"site": ["nowhere"]}
    doc["agent"]["probes"] = ["icmp", "tcp"]
    agent_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    problems = errors_of(load_agent, agent_path)
    assert f"{agent_path}:{line_of(agent_path, 'select:')}: agent.select: selects no device of the point list" in problems
    assert f"{agent_path}:{line_of(agent_path, '  probes:')}: agent.probes: tcp disabled in the probes section" in problems


def test_fleetmon_agent_check(tmp_path):
    _, agent_path = write_lab(tmp_path, "127.0.0.1", 1883)
    done = subprocess.run([FLEETMON, "agent", "--config", str(agent_path), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "agent forest: 6 devices, probes icmp" in done.stdout
    agent_path.write_text("agent: {name: forest}\n", encoding="utf-8")
    done = subprocess.run([FLEETMON, "agent", "--config", str(agent_path), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert f"{agent_path}:1: agent.select: required key missing" in done.stderr


# --- messages ----------------------------------------------------------------------------------


def result(device="fo-0", probe="icmp", ts_ns=NOW, ok=True, **fields) -> ProbeResult:
    return ProbeResult(device, probe, ts_ns, ok, None if ok else "timeout", {"up": ok, **fields})


def batch(*results: ProbeResult | dict, agent=AGENT, spool="s1", first=10, last=20) -> bytes:
    lines = [result_line(r) if isinstance(r, ProbeResult) else json.dumps(r).encode() for r in results]
    return batch_payload(agent, spool, first, last, lines)


OWNED = {f"fo-{i}": frozenset({"icmp"}) for i in range(6)}


def test_a_batch_round_trips():
    r = ProbeResult("fo-1", "icmp", NOW, True, None, {"up": True, "rtt_avg_ms": 1.5, "loss_pct": 0.0})
    got = Validator(AGENT, OWNED).batch(batch(r, result("fo-2", ok=False)))
    assert got.results == (r, result("fo-2", ok=False))
    assert (got.spool, got.first, got.last, got.problems) == ("s1", 10, 20, ())


@pytest.mark.parametrize(("payload", "problem"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"v": 2}).encode(), "v: version 2 not understood"),
    (batch(agent="tower"), "agent: says 'tower', but came on agent forest's topic"),
    (json.dumps({"v": 1, "agent": AGENT, "spool": "s", "first": 1, "last": "2", "results": []}).encode(),
     "last: missing or of the wrong type (str)"),
    (b"{" + b" " * (17 << 20) + b"}", "exceeds"),
])
def test_bad_messages_are_refused_whole_with_their_location(payload, problem):
    with pytest.raises(MessageError) as info:
        Validator(AGENT, OWNED).batch(payload)
    assert problem in str(info.value)


@pytest.mark.parametrize(("bad", "problem"), [
    (result("hq-0"), "results[1].device_id: device 'hq-0' is not one of agent forest's"),
    (result(probe="tcp"), "results[1].probe: probe 'tcp' does not poll fo-0 for agent forest"),
    (result(ts_ns=NOW + 3600 * 10**9), "results[1].ts_ns:"),
    (result(ts_ns=10**9), "results[1].ts_ns:"),
    (result(secret_field=1), "results[1].fields.secret_field: not a field this measurement declares"),
    (result(rtt_avg_ms="fast"), "results[1].fields.rtt_avg_ms: 'fast' is not a float"),
    (result(rtt_avg_ms=True), "results[1].fields.rtt_avg_ms: True is not a float"),
    ({"device_id": "fo-0", "probe": "icmp", "ts_ns": NOW, "ok": "yes"}, "results[1].ok: missing or of the wrong type"),
    ({**result().to_dict(), "reason": "x" * 2000}, "results[1].reason: must be a string of at most 1000"),
    (ProbeResult("fo-0", "icmp", NOW, True, None, {"up": True}, (Series("port", {}, {"x": 1}),)),
     "results[1].series[0].measurement: 'port' is not a series of probe icmp"),
    ("just a string", "results[1]: not a JSON object"),
])
def test_a_bad_result_is_dropped_alone_with_its_location(bad, problem):
    got = Validator(AGENT, OWNED).batch(batch(result("fo-1"), bad, result("fo-2")))
    assert [r.device_id for r in got.results] == ["fo-1", "fo-2"]
    assert len(got.problems) == 1 and str(got.problems[0]).startswith(problem), got.problems


# --- the hub, driven by hand -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hub_for(tmp_path, *, language="zh", points=None, probes=None):
    path = central(tmp_path, broker=BROKER, silent_after_s=5, fault_after_s=0, agents=[FOREST])
    cfg, inventory = _load(path)
    ids = tuple(f"fo-{i}" for i in range(6))
    expected = Expected({"icmp": ids}, points or points_digest([inventory.devices[i] for i in ids]),
                        probes or probes_digest(cfg.probes, ["icmp"]), ("icmp",))
    taken, blinded = [], []
    resumed.clear()
    clock = Clock()
    hub = AgentHub(cfg.mqtt_agents, {AGENT: expected}, taken.append, lambda p, ids, why: blinded.append((p, ids, why)),
                   lambda p, ids: resumed.append((p, ids)), language=language, clock=clock)
    return hub, taken, blinded, clock, cfg, inventory


TOPIC = f"fleetmon/v1/{AGENT}"
resumed: list = []


def test_results_go_to_the_pipeline_once_and_bad_ones_are_logged_and_counted(tmp_path, caplog):
    hub, taken, _, _, _, _ = hub_for(tmp_path)
    payload = batch(result("fo-1"), result("hq-0"), first=5, last=9)
    with caplog.at_level(logging.WARNING, "fleetmon.agents"):
        hub.on_message(f"{TOPIC}/results", payload)
        hub.on_message(f"{TOPIC}/results", payload)  # QoS 1 delivered it twice
        hub.on_message(f"{TOPIC}/results", b"garbage")
        hub.on_message("fleetmon/v1/stranger/results", payload)
    assert [r.device_id for r in taken] == ["fo-1"]
    counts = hub.agents[AGENT].counts
    assert (counts["results"], counts["duplicates"], counts["dropped"], counts["bad_messages"]) == (1, 1, 1, 1)
    assert hub.unknown_agents["stranger"] == 1
    text = caplog.text
    assert "probe agent forest: fleetmon/v1/forest/results (positions 5…9): results[1].device_id: device 'hq-0' is " \
           "not one of agent forest's: result dropped" in text
    assert "probe agent forest: fleetmon/v1/forest/results: not JSON" in text
    assert "from agent 'stranger', which mqtt_agents.agents does not list" in text
    # A new spool (the agent's was deleted) starts its positions again: not taken for repeats.
    hub.on_message(f"{TOPIC}/results", batch(result("fo-2"), spool="s2", first=1, last=2))
    assert [r.device_id for r in taken] == ["fo-1", "fo-2"]


def test_silence_blinds_every_device_once_and_raises_one_fault_until_it_is_back(tmp_path):
    hub, _, blinded, clock, _, _ = hub_for(tmp_path)
    hub.on_message(f"{TOPIC}/status", status_payload("online", ts_ns=NOW))
    clock.now += 4.9
    hub.check_silence()
    assert blinded == [] and hub.conditions() == []
    clock.now += 0.2
    hub.check_silence()
    hub.check_silence()
    assert blinded == [("icmp", [f"fo-{i}" for i in range(6)], "monitor blind: probe agent forest silent")]
    (fault,) = hub.conditions()
    assert (fault.rule, fault.scope, fault.severity, fault.title) == (
        "probe_agent", "agent:forest", Severity.CRITICAL, "探测代理forest失联（6个设备监测盲区）")
    hub.on_message(f"{TOPIC}/status", status_payload("online", ts_ns=NOW))
    assert hub.conditions() == []
    assert resumed == [("icmp", [f"fo-{i}" for i in range(6)])]
    (period,) = hub.agents[AGENT].blind_periods
    assert period[1] is not None and period[1] >= period[0]


def test_the_will_blinds_at_once_a_retained_status_does_not(tmp_path):
    hub, _, blinded, _, _, _ = hub_for(tmp_path, language="en")
    hub.on_message(f"{TOPIC}/status", status_payload("offline"), retained=True)
    assert blinded == []
    hub.on_message(f"{TOPIC}/status", status_payload("offline"))
    assert len(blinded) == 1
    assert hub.conditions()[0].title == "probe agent forest silent (6 devices not watched)"
    hub.on_message(f"{TOPIC}/status", status_payload("offline"))  # still silent: one blinding, one fault
    assert len(blinded) == 1 and len(hub.conditions()) == 1


def hello(points: str, probes: str, names=("icmp",)) -> bytes:
    return json.dumps({"v": 1, "version": "x", "points": points, "probes": probes, "devices": 6,
                       "probe_names": list(names), "heartbeat_s": 1}).encode()


def test_drift_is_a_warning_fault_until_a_hello_agrees(tmp_path, caplog):
    hub, _, _, _, cfg, inventory = hub_for(tmp_path)
    expected = hub._expected[AGENT]
    with caplog.at_level(logging.WARNING, "fleetmon.agents"):
        hub.on_message(f"{TOPIC}/hello", hello("0000", expected.probes))
    (fault,) = hub.conditions()
    assert (fault.scope, fault.severity, fault.title) == ("drift:forest", Severity.MINOR,
                                                          "探测代理forest配置与中心不一致：点位表")
    assert "its config differs from the central one (points)" in caplog.text
    hub.on_message(f"{TOPIC}/hello", hello(expected.points, "1111", ("icmp", "tcp")))
    assert hub.conditions()[0].title == "探测代理forest配置与中心不一致：探测设置、探测类型"
    hub.on_message(f"{TOPIC}/hello", hello(expected.points, expected.probes))
    assert hub.conditions() == []
    assert "silent_after_s" not in caplog.text


def test_a_heartbeat_too_slow_for_silent_after_s_is_warned_of(tmp_path, caplog):
    hub, *_ = hub_for(tmp_path)  # silent_after_s 5
    expected = hub._expected[AGENT]
    doc = json.loads(hello(expected.points, expected.probes))
    with caplog.at_level(logging.WARNING, "fleetmon.agents"):
        hub.on_message(f"{TOPIC}/hello", json.dumps({**doc, "heartbeat_s": 3}).encode())
    assert "probe agent forest beats every 3 s, but mqtt_agents.silent_after_s is 5 s" in caplog.text


def test_the_agent_computes_the_digests_the_central_expects(tmp_path):
    config, agent_path = write_lab(tmp_path, "127.0.0.1", 1883)
    hub, _, _, _, _, _ = hub_for(tmp_path)
    from monitor.app.agent import Agent

    agent_cfg, devices = load_agent(agent_path)
    announced = Agent(agent_cfg, devices).hello
    expected = hub._expected[AGENT]
    assert (announced["points"], announced["probes"]) == (expected.points, expected.probes)
    # Another ICMP setting on the agent is drift.
    doc = yaml.safe_load(agent_path.read_text(encoding="utf-8"))
    doc["probes"] = probes_section(2.0)
    agent_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert Agent(*load_agent(agent_path)).hello["probes"] != expected.probes


# --- the tracker ---------------------------------------------------------------------------------


def test_blind_devices_are_unknown_and_late_results_never_date_a_transition_before_it(tmp_path):
    write_lab(tmp_path, "127.0.0.1", 1883)
    inventory = load_inventory(load_config(tmp_path / "config.yaml"))
    tracker = StateTracker(inventory, "icmp", down_after=2, up_after=1)
    tracker.observe(result("fo-0", ts_ns=100))
    (t,) = tracker.blind(["fo-0", "fo-1"], 200, "monitor blind: probe agent forest silent")  # fo-1 was unknown already
    assert (t.device_id, t.old, t.new, t.ts_ns) == ("fo-0", State.UP, State.UNKNOWN, 200)
    assert tracker.blind(["fo-0"], 250, "again") == []
    # A replayed result from before the blind moment: up again, dated at the blind moment.
    back = tracker.observe(result("fo-0", ts_ns=150))
    assert (back.new, back.ts_ns) == (State.UP, 200)
    # Back at 350 after a second silence: replayed results of the silence are dated at 350.
    tracker.blind(["fo-0"], 300, "x")
    tracker.resume(["fo-0"], 350)
    back = tracker.observe(result("fo-0", ts_ns=310))
    assert (back.new, back.ts_ns) == (State.UP, 350)
    # One failed result after blindness is not a down (down_after counts afresh).
    tracker.blind(["fo-0"], 400, "x")
    assert tracker.observe(result("fo-0", ts_ns=500, ok=False)) is None
    assert tracker.state("fo-0") is State.UNKNOWN


def test_the_example_agent_agrees_with_the_example_config(tmp_path):
    from monitor.app.agent import Agent
    from monitor.app.agent_config import agent_devices

    repo = Path(__file__).resolve().parent.parent
    doc = yaml.safe_load((repo / "config.yaml").read_text(encoding="utf-8"))
    doc["mqtt_agents"] = {"broker": BROKER, "agents": [{"name": "donghu", "select": {"region": ["东湖镇"]}}]}
    (tmp_path / "examples").symlink_to(repo / "examples")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cfg, inventory = _load(tmp_path / "config.yaml")
    (spec,) = cfg.mqtt_agents.agents
    hello = Agent(*load_agent(repo / "examples/agent.yaml")).hello
    assert hello["points"] == points_digest(agent_devices(spec.select, inventory))
    assert hello["probes"] == probes_digest(cfg.probes, spec.probes)
    assert hello["devices"] == 7


def test_tls_files_must_exist(tmp_path):
    path = central(tmp_path, broker={**BROKER, "tls": {"ca_file": "missing-ca.pem"}}, agents=[FOREST])
    problems = errors_of(load_config, path)
    assert f"{path}:{line_of(path, 'ca_file')}: mqtt_agents.broker.tls.ca_file: {tmp_path}/missing-ca.pem is not a " \
           "readable file" in problems, problems


async def test_a_bug_in_the_pipeline_is_logged_and_the_next_message_taken(tmp_path, caplog):
    hub, taken, _, _, _, _ = hub_for(tmp_path)
    calls = []

    def broken(r):
        calls.append(r)
        if len(calls) == 1:
            raise RuntimeError("boom")

    hub._on_result = broken
    hub.on_message(f"{TOPIC}/results", batch(result("fo-1"), first=1, last=1))
    hub.on_message(f"{TOPIC}/results", batch(result("fo-2"), first=2, last=2))
    assert [r.device_id for r in calls] == ["fo-1", "fo-2"]
    assert "message not processed (a bug)" in caplog.text


def test_check_config_summarises_the_agents(tmp_path):
    path = central(tmp_path, broker=BROKER, agents=[FOREST])
    done = subprocess.run([FLEETMON, "check-config", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "probe agents via 127.0.0.1:1883 (plain TCP): forest (6 devices, icmp)" in done.stdout


def test_the_agent_spool_is_bounded_and_drops_the_oldest(tmp_path):
    from monitor.app.agent import Agent

    _, agent_path = write_lab(tmp_path, "127.0.0.1", 1883, agent_extra={})
    doc = yaml.safe_load(agent_path.read_text(encoding="utf-8"))
    doc["agent"]["spool_max_bytes"] = 1 << 20
    agent_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    agent = Agent(*load_agent(agent_path))
    agent._spool.open()
    try:
        for i in range(20_000):  # ~2.5 MB of results: the broker unreachable for long
            agent._on_result(result("fo-1", ts_ns=NOW + i, rtt_avg_ms=1.25, loss_pct=0.0))
        dropped = agent._spool.take_dropped()
        assert dropped > 5_000 and agent.backlog == 20_000 - dropped
        batch = agent._next_batch()
        first = json.loads(batch.payload)["results"][0]
        assert first["ts_ns"] == NOW + dropped  # the oldest went first; the rest in order
    finally:
        agent._spool.close()
