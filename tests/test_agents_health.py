"""The central's self-monitoring of its probe agents (GET /metrics, /healthz), the hub driven by
hand as in tests/test_agents.py: online state, time since last heard, results taken, rejected
by reason, duplicates, drift, and the spool backlog each agent's heartbeat reports."""

from __future__ import annotations

import time

from monitor.app.agent_wire import status_payload
from monitor.app.selfmetrics import Health, exposition
from tests.test_agents import AGENT, TOPIC, batch, hello, hub_for, result
from tests.test_api import make_world


def page_of(hub, connected: bool = True) -> set[str]:
    text = exposition(Health(now_ns=time.time_ns(), version="t", schedulers=[], sink=None, spool_bytes=None,
                             outbox={}, disabled_routes={}, faults_open={}, statedb_failing=False,
                             agents=hub.views(), agents_connected=connected))
    return set(text.splitlines())


def drive(hub, clock) -> None:
    """One batch taken twice (a repeat), a bad result, a bad message, a heartbeat with a backlog."""
    payload = batch(result("fo-1"), result("fo-2"), result("hq-0"), first=5, last=9)
    hub.on_message(f"{TOPIC}/results", payload)
    hub.on_message(f"{TOPIC}/results", payload)
    hub.on_message(f"{TOPIC}/results", b"garbage")
    hub.on_message(f"{TOPIC}/status", status_payload("online", ts_ns=time.time_ns(), spooled=42, dropped=3))
    clock.now += 2.5


def test_metrics_show_each_agent_its_counts_and_its_spool(tmp_path):
    hub, _, _, clock, _, _ = hub_for(tmp_path)
    # Never heard: online (not yet silent), no age, no backlog sample.
    lines = page_of(hub, connected=False)
    assert "fleetmon_agents_broker_connected 0.0" in lines
    assert f'fleetmon_agent_online{{agent="{AGENT}"}} 1.0' in lines
    assert not any(x.startswith(("fleetmon_agent_last_heard_seconds{", "fleetmon_agent_spool_lines{")) for x in lines)

    drive(hub, clock)
    lines = page_of(hub)
    a = f'agent="{AGENT}"'
    assert {
        "fleetmon_agents_broker_connected 1.0",
        f"fleetmon_agent_online{{{a}}} 1.0",
        f"fleetmon_agent_devices{{{a}}} 6.0",
        f"fleetmon_agent_last_heard_seconds{{{a}}} 2.5",
        f"fleetmon_agent_results_total{{{a}}} 2.0",
        f'fleetmon_agent_results_rejected_total{{{a},reason="bad_result"}} 1.0',
        f'fleetmon_agent_results_rejected_total{{{a},reason="bad_message"}} 1.0',
        f"fleetmon_agent_duplicates_total{{{a}}} 2.0",
        f"fleetmon_agent_silences_total{{{a}}} 0.0",
        f'fleetmon_agent_config_drift{{{a},differs="points"}} 0.0',
        f"fleetmon_agent_spool_lines{{{a}}} 42.0",
        f"fleetmon_agent_spool_dropped_lines{{{a}}} 3.0",
    } <= lines, sorted(x for x in lines if "agent" in x)

    expected = hub._expected[AGENT]
    hub.on_message(f"{TOPIC}/hello", hello("0000", expected.probes))
    clock.now += 10  # silent_after_s is 5
    hub.check_silence()
    lines = page_of(hub)
    assert f"fleetmon_agent_online{{{a}}} 0.0" in lines
    assert f"fleetmon_agent_silences_total{{{a}}} 1.0" in lines
    assert f'fleetmon_agent_config_drift{{{a},differs="points"}} 1.0' in lines
    assert f'fleetmon_agent_config_drift{{{a},differs="probes"}} 0.0' in lines


def test_a_bad_backlog_figure_is_a_bad_message_and_changes_nothing(tmp_path):
    hub, _, _, clock, _, _ = hub_for(tmp_path)
    hub.on_message(f"{TOPIC}/status", status_payload("online", spooled=7, dropped=0))
    for bad in (-1, "12", True, 1.5):
        hub.on_message(f"{TOPIC}/status", status_payload("online", spooled=bad))
    (view,) = hub.views()
    assert (view.spooled, view.spool_dropped, view.rejected["bad_message"]) == (7, 0, 4)


async def test_healthz_names_a_silent_agent_and_stays_200(tmp_path):
    hub, _, _, clock, _, _ = hub_for(tmp_path)
    drive(hub, clock)
    async with make_world(tmp_path, agents=hub.views) as w:
        body = await w.call("GET", "/healthz", 200)
        assert body["silent_agents"] == []
        (agent,) = body["agents"]
        assert agent == {
            "name": AGENT, "online": True, "devices": 6, "last_heard_s": 2.5, "state": "online", "results": 2,
            "rejected": {"bad_result": 1, "bad_message": 1}, "duplicates": 2, "silences": 0, "drift": [],
            "spooled": 42, "spool_dropped": 3,
        }
        clock.now += 10
        hub.check_silence()
        body = await w.call("GET", "/healthz", 200)  # the central works: the agent's fault says the rest
        assert body["status"] == "ok" and body["silent_agents"] == [AGENT]
        assert body["agents"][0]["online"] is False and body["agents"][0]["silences"] == 1
        hub.on_message(f"{TOPIC}/status", status_payload("offline"))  # its will, while silent
        assert (await w.call("GET", "/healthz", 200))["agents"][0]["state"] == "offline"
