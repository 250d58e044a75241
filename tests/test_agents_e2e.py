"""Probe agents end to end with a real mosquitto: a central daemon and an agent probing loopback
devices (real ICMP), results over MQTT. Broker restart, the agent cut off (a relay closes its
line) and kill -9 of the agent: no result lost, no false down, every silence a recorded blind
period with one fault that resolves. Time is compressed: 1 s cycles, silent after 3 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.mosquitto import MosquittoServer
from lab.tcpcut import TcpCut
from monitor.app.agent import Agent
from monitor.app.agent_file import load_agent
from monitor.app.config import load_config
from monitor.app.daemon import Daemon
from monitor.fleet.inventory import load_inventory
from monitor.state.tracker import State
from lab.agents import AGENT, blind_periods_of, outcome, write_lab

pytestmark = [pytest.mark.root, pytest.mark.peer]
FLEETMON = str(Path(sys.executable).with_name("fleetmon"))


async def until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Central:
    """The central daemon in this process, recording every agent result it takes."""

    def __init__(self, config: Path) -> None:
        cfg = load_config(config)
        self.daemon = Daemon(cfg, load_inventory(cfg))
        self.stop = asyncio.Event()
        self.received: list[tuple[str, int]] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run(self.stop))
        await asyncio.wait_for(self.daemon.started.wait(), 20)
        hub = self.daemon.agents
        assert hub is not None
        take = hub._on_result

        def record(result):
            self.received.append((result.device_id, result.ts_ns))
            take(result)

        hub._on_result = record

    def state(self, device_id: str) -> State:
        return self.daemon.pipeline._trackers["icmp"].state(device_id)

    def remote_states(self) -> set[State]:
        return {self.state(f"fo-{i}") for i in range(6)}

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)


class InProcessAgent:
    def __init__(self, agent_config: Path) -> None:
        cfg, devices = load_agent(agent_config)
        self.agent = Agent(cfg, devices)
        self.produced: list[tuple[str, int]] = []
        spool = self.agent._on_result

        def record(result):
            self.produced.append((result.device_id, result.ts_ns))
            spool(result)

        self.agent._on_result = record
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.agent.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def test_broker_restart_and_cut_off_lose_nothing_and_raise_one_fault(tmp_path):
    broker = MosquittoServer(persistence=True).start()
    relay = await TcpCut(broker.host, broker.port).start()
    config, agent_config = write_lab(tmp_path, broker.host, broker.port, agent_port=relay.port)
    central = Central(config)
    try:
        await central.start()
        agent = InProcessAgent(agent_config)
        hub = central.daemon.agents
        await until(lambda: central.remote_states() == {State.UP}, 20, "the agent's devices up at the central")
        assert central.state("hq-0") is State.UP  # the central's own devices, probed by itself

        # The broker restarts (clean stop: its persistence keeps the central's session).
        broker.stop()
        await asyncio.sleep(1.5)
        broker.start()
        await until(lambda: agent.agent.connected.is_set() and hub.connected.is_set(), 20, "both reconnected")
        await asyncio.sleep(1.5)

        # The agent's line is cut for longer than silent_after_s: blind, one fault, then back.
        relay.cut()
        await until(lambda: hub.agents[AGENT].silent, 15, "the agent seen silent")
        await until(lambda: central.remote_states() == {State.UNKNOWN}, 5, "its devices unknown (monitor blind)")
        await until(lambda: any(f.rule == "probe_agent" for f in central.daemon._alerting.faults.open_faults()), 10,
                    "the agent's fault")
        await asyncio.sleep(2)
        # Two of the central's own 1 s cycles later, still unknown: it never probes them itself.
        assert central.remote_states() == {State.UNKNOWN}
        relay.restore()
        await until(lambda: not hub.agents[AGENT].silent and central.remote_states() == {State.UP}, 20,
                    "the agent back, its devices up")
        await until(lambda: not any(f.rule == "probe_agent" for f in central.daemon._alerting.faults.open_faults()),
                    10, "the fault resolved")
        # Self-monitoring (/metrics, /healthz) sees the silence and the backlog its heartbeat reports.
        (view,) = hub.views()
        assert view.online and view.silences >= 1 and view.results > 0 and view.spooled is not None, view
        await agent.close()
        await asyncio.sleep(1.0)  # the last batch through the broker to the central
    finally:
        await central.close()
        await relay.close()
        broker.close()

    result = outcome(agent.produced, central.received, tmp_path / "state.db", hub.agents[AGENT].blind_periods)
    print(result)
    assert result.produced > 50
    assert result.lost == 0, result
    assert result.false_downs == 0, result
    # One silence from the cut (the broker restart is shorter than silent_after_s), maybe a
    # second one at the end ("stopping"): each a recorded blind period, one transition per device.
    assert result.blind_periods and result.blind_periods[0][1] is not None
    assert result.blind_transitions == 6 * len(result.blind_periods)
    # The state DB keeps the cut as unknown time: from the silence to the agent's return (at
    # least the 2 s the line stayed cut after the fault), not shortened by the replayed results.
    stored = blind_periods_of(tmp_path / "state.db")
    assert any(end is not None and end - start >= 2e9 and n == 6 for start, end, n in stored), stored
    # The assessment counts that time as unknown, never as down.
    local = time.time() + 8 * 3600  # the config's zone, Asia/Shanghai; two days: the run may span midnight
    days = "..".join(time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (local - 86400, local))
    done = subprocess.run([FLEETMON, "availability", "-c", str(config), "--period", days, "--points", "--json"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    figures = next(p for p in json.loads(done.stdout)["points"] if p["id"] == "fo-0")["figures"]
    assert figures["down_s"] == 0 and figures["unreachable_s"] == 0 and figures["agent_silent_s"] >= 2, figures
    cut_faults = [f for f in result.agent_faults if f[0] == f"agent:{AGENT}"]
    assert len(cut_faults) >= 1 and cut_faults[0][1] == "resolved"


async def test_kill_9_of_the_agent_blinds_its_devices_and_its_spool_replays(tmp_path):
    broker = MosquittoServer(persistence=True).start()
    config, agent_config = write_lab(tmp_path, broker.host, broker.port)
    central = Central(config)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([FLEETMON, "agent", "--config", str(agent_config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=(tmp_path / "agent.log").open("ab"))

    proc = None
    try:
        await central.start()
        hub = central.daemon.agents
        proc = spawn()
        await until(lambda: central.remote_states() == {State.UP}, 30, "the agent's devices up")
        # Results probed while the broker is away wait in the agent's spool when it is killed.
        broker.stop()
        broker_down_ns = time.time_ns()
        await asyncio.sleep(2.5)
        killed_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        broker.start()
        await until(lambda: hub.agents[AGENT].silent, 10, "the agent seen silent")
        assert central.remote_states() == {State.UNKNOWN}
        received_before = len(central.received)
        proc = spawn()
        await until(lambda: not hub.agents[AGENT].silent and central.remote_states() == {State.UP}, 30,
                    "the restarted agent back")
        # The killed agent's spooled results arrived after it restarted.
        await until(lambda: len(central.received) > received_before + 6 * 3, 10, "the replay")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        await central.close()
        broker.close()
    received = central.received
    # The spool made it: the results probed while the broker was down, before the kill, arrived
    # (2 cycles of 6 devices at least, in 2.5 s of 1 s cycles).
    spooled = [ts for _, ts in received if broker_down_ns + 0.2e9 < ts < killed_ns]
    assert len(spooled) >= 12, len(spooled)
    result = outcome(received, received, tmp_path / "state.db", hub.agents[AGENT].blind_periods)
    assert result.false_downs == 0
    assert result.duplicated == 0
    assert result.blind_transitions >= 6


async def test_tls_and_credentials_with_an_mqtt_3_1_1_agent_and_an_mqtt_5_central(tmp_path, monkeypatch):
    from lab.certs import make_ca, make_cert

    ca = make_ca()
    leaf = make_cert(["127.0.0.1"], issuer=ca)
    (tmp_path / "broker.pem").write_bytes(leaf.pem())
    (tmp_path / "broker.key").write_bytes(leaf.key_pem())
    ca.write(tmp_path / "ca.pem")
    (tmp_path / "central.pass").write_text("c-secret-1\n", encoding="utf-8")
    monkeypatch.setenv("AGENT_MQTT_PASSWORD", "a-secret-2")
    broker = MosquittoServer(users={"central": "c-secret-1", "forest": "a-secret-2"},
                             tls=(tmp_path / "broker.pem", tmp_path / "broker.key")).start()
    config, agent_config = write_lab(tmp_path, broker.host, broker.port)
    for path, account in ((config, {"username": "central", "password_file": "central.pass", "protocol": "5"}),
                          (agent_config, {"username": "forest", "password_env": "AGENT_MQTT_PASSWORD",
                                          "protocol": "3.1.1"})):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        section = doc["mqtt_agents"]["broker"] if "mqtt_agents" in doc else doc["broker"]
        section.update(account, tls={"ca_file": "ca.pem"})
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    central = Central(config)
    try:
        await central.start()
        agent = InProcessAgent(agent_config)
        await until(lambda: central.remote_states() == {State.UP}, 20, "the agent's devices up over TLS")
        assert central.daemon.agents.agents[AGENT].drift == ()
        await agent.close()
    finally:
        await central.close()
        broker.close()
    assert "a-secret-2" not in (tmp_path / "agent.yaml").read_text(encoding="utf-8")
