"""SNMP end to end: the lab fleet's switches, UPS units and servers as real snmpsim agents in
network namespaces → fleetmon's SNMP probe and trap receiver → rules → the WeCom robot
contract (simulator) and InfluxDB. One fault per problem; traps act before the next poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator

import pytest
import yaml

from lab.fleet import LabFleet
from lab.services import FleetServices
from lab.wecom import WeComSimulator
from tests.plugins.daemon import running_daemon, until
from monitor.app.daemon import Daemon
from rules.model import FaultState

pytestmark = pytest.mark.root
V3 = {"user": "fleetmon", "auth": "lab-auth-key-1", "priv": "lab-priv-key-1", "engine": "0x8000000001020304"}


def write_config(tmp_path: Path, fleet: LabFleet, services: FleetServices, wecom: WeComSimulator, key: str,
                 snmp_interval_s: float) -> Path:
    fleet.write_point_list(tmp_path / "points.csv")
    (tmp_path / "wecom.key").write_text(key)
    (tmp_path / "communities").write_text("traps")
    (tmp_path / "auth.key").write_text(V3["auth"])
    (tmp_path / "priv.key").write_text(V3["priv"])
    probes = services.probe_config()
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {
            "icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.3},
            "snmp": {**probes["snmp"], "interval_s": snmp_interval_s, "timeout_s": 0.5},
            "rtsp": {"enabled": False},
        },
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"enabled": False},
        "api": {"port": 0},
        "traps": {
            "enabled": True, "listen": "0.0.0.0", "port": 0, "communities_file": "communities",
            "users": [{"user": V3["user"], "auth_protocol": "SHA", "auth_key_file": "auth.key",
                       "priv_protocol": "AES", "priv_key_file": "priv.key", "engine_id": V3["engine"]}],
        },
        "rules": [
            {"type": "device_down", "name": "down"},
            {"type": "port_down", "name": "uplink-down"},
            {"type": "ups_on_battery", "name": "ups-on-battery"},
            {"type": "device_rebooted", "name": "rebooted"},
        ],
        "notify": {"routes": [{"type": "wecom", "name": "duty", "url": wecom.url, "key_file": "wecom.key"}]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def daemon(path: Path):
    return running_daemon(
        path, lambda d: d.snapshot is not None and len(d.snapshot.results.get("snmp", ())) >= 9, "the first SNMP cycle",
        timeout_s=20,
    )


@pytest.fixture
async def wecom() -> AsyncIterator[WeComSimulator]:
    async with WeComSimulator() as sim:
        yield sim


def firing(d: Daemon, rule: str) -> list:
    return [f for f in d._alerting.faults.open_faults() if f.rule == rule and f.state is FaultState.FIRING]


async def test_ups_on_battery_and_an_uplink_down_are_polled_into_one_fault_each(small_fleet, wecom, tmp_path):
    fleet = small_fleet
    key = wecom.add_robot()
    with FleetServices(fleet, onvif=False, rtsp=False) as services:
        path = write_config(tmp_path, fleet, services, wecom, key, snmp_interval_s=5.0)
        async with daemon(path) as d:
            polled = d.snapshot.results["snmp"]
            uplink = next(s for s in polled["SW-001"].series if s.tags["interface"] == "Gi0/10")
            assert uplink.fields["uplink"] is True and uplink.fields["oper_status"] == 1
            assert polled["UPS-001"].series[0].fields["on_battery"] is False
            assert [m.content for m in wecom.messages(key)] == []

            services.ups_on_battery("UPS-001", minutes_remaining=25)
            services.uplink_down("SW-002")
            await until(lambda: firing(d, "ups-on-battery") and firing(d, "uplink-down"), 15, "both faults")
            await asyncio.sleep(6)  # another poll: nothing more may come
            texts = [m.content for m in wecom.messages(key)]
            ups, switch = fleet.device("UPS-001"), fleet.device("SW-002")
            assert len(texts) == 2, texts
            assert any(f"{ups.name}市电中断，电池供电（剩余约25分钟）" in t for t in texts)
            assert any(f"{switch.name}上联端口Gi0/10中断" in t for t in texts)

            services.ups_on_mains("UPS-001")
            services.uplink_up("SW-002")
            await until(lambda: len(wecom.messages(key)) == 4, 15, "both resolutions")
            assert d._alerting.faults.open_faults() == []


async def test_traps_v2c_and_v3_reach_the_rules_before_the_next_poll(small_fleet, wecom, tmp_path):
    fleet = small_fleet
    key = wecom.add_robot()
    with FleetServices(fleet, onvif=False, rtsp=False) as services:
        # The agents change nothing: only the traps say something happened, and the next poll is
        # a minute away.
        path = write_config(tmp_path, fleet, services, wecom, key, snmp_interval_s=60.0)
        async with daemon(path) as d:
            port = d.traps.port
            sent = time.monotonic()
            services.send_trap("SW-003", "link_down", port)  # SNMPv2c trap
            await until(lambda: firing(d, "uplink-down"), 5, "the uplink fault from the trap")
            assert time.monotonic() - sent < 5
            v3 = ("-v3", "-u", V3["user"], "-l", "authPriv", "-a", "SHA", "-A", V3["auth"], "-x", "AES",
                  "-X", V3["priv"])
            services.send_trap("UPS-002", "ups_on_battery", port, auth=(*v3, "-e", V3["engine"]))  # v3 trap
            # In a thread: the inform waits for the daemon's acknowledgement, on this event loop.
            await asyncio.to_thread(services.send_trap, "SW-004", "cold_start", port, auth=v3, inform=True)
            await until(lambda: firing(d, "ups-on-battery") and firing(d, "rebooted"), 5, "the trap faults")
            assert d.traps.stats["delivered"] == 3 and d.traps.stats["bad_auth"] == 0
            (uplink,) = firing(d, "uplink-down")
            assert uplink.device_id == "SW-003" and uplink.scope == "device:SW-003/Gi0/10"
            (ups,) = firing(d, "ups-on-battery")
            assert ups.device_id == "UPS-002"
            await until(lambda: len(wecom.messages(key)) == 3, 10, "three messages")
