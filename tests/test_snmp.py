"""SNMP probe (probes/snmp.py) against real agents: snmpsim with the lab data files
(lab/snmp.py), Debian's snmpd, and a hostile UDP responder written here.

Every snmpsim test uses its own endpoint (port) of one module-wide snmpsim process, because
run-time changes (UPS on battery, port down) are per endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyasn1.codec.ber import decoder, encoder
from pydantic import ValidationError
from pysnmp.proto import api, rfc1902, rfc1905

from lab.snmp import (
    IF_COUNTER_DISCONTINUITY,
    SWITCH_ADMIN_DOWN,
    SWITCH_ERROR_PORT,
    SWITCH_OPER_DOWN,
    SWITCH_RATES,
    SWITCH_UPLINK,
    SWITCH_UPLINK_INDEX,
    SYS_UPTIME,
    UPS_OUTPUT_SOURCE,
    Snmpd,
    SnmpSim,
    V3User,
    free_udp_ports,
)
from monitor.core.model import Device
from probes.base import ProbeResult
from probes.snmp import SnmpConfig, SnmpProbe
from probes.snmp_mibs import (
    InterfaceSample,
    counter_delta,
    counter_rate,
    interface_fields,
    uptime_step,
)
from tests.plugins.factories import device as make_device

USER = V3User("fmuser", "authpass12", "privpass12")
# AES-256 with Reeder key extension (snmpsim's AES256, net-snmp's AES256C, Cisco's): with SHA-1's
# 20-byte keys the extension differs from Blumenthal's, so the two variants are told apart.
CISCO_USER = V3User("fmcisco", "authpass34", "privpass34", priv_proto="AES256")
ENDPOINTS = 12
_ids = itertools.count()


@pytest.fixture(scope="module")
def sim() -> Iterator[SnmpSim]:
    ports = free_udp_ports(ENDPOINTS)
    with SnmpSim([("127.0.0.1", p) for p in ports], users=[USER, CISCO_USER]) as agent:
        yield agent


@pytest.fixture
def port(sim: SnmpSim) -> int:
    """An endpoint of `sim` no other test of this module uses."""
    n = next(_ids)
    assert n < ENDPOINTS, "more snmpsim tests than endpoints: raise ENDPOINTS"
    return sim.endpoints[n][1]


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"C_SWITCH": "switch", "C_UPS": "ups", "C_SERVER": "server", "C_BAD": "nope",
                        "AUTH": USER.auth_key, "PRIV": USER.priv_key, "C_PUBLIC": "public",
                        "CISCO_AUTH": CISCO_USER.auth_key, "CISCO_PRIV": CISCO_USER.priv_key}.items():
        monkeypatch.setenv(name, value)


def device(kind: str, address: str = "127.0.0.1", uplink: str | None = None) -> Device:
    return make_device(f"{kind}-1", kind, name=kind, address=address, site="site-a", region="town-a", uplink=uplink)


def v2c(port: int, community_env: str = "C_SWITCH", **extra) -> SnmpConfig:
    return SnmpConfig(**{"port": port, "community_env": community_env, "timeout_s": 1.0, "retries": 0, **extra})


def v3(port: int, context: str, **extra) -> SnmpConfig:
    return SnmpConfig(**{"port": port, "version": "3", "user": USER.name, "auth_protocol": "SHA",
                         "auth_key_env": "AUTH", "priv_protocol": "AES", "priv_key_env": "PRIV", "context": context,
                         "timeout_s": 1.0, "retries": 0, **extra})


def ports_of(result: ProbeResult) -> dict[str, dict]:
    return {s.tags["interface"]: dict(s.fields) for s in result.series if s.measurement == "snmp_interface"}


def one(result: ProbeResult, measurement: str) -> dict:
    found = [dict(s.fields) for s in result.series if s.measurement == measurement]
    assert len(found) == 1, f"{measurement}: {found}"
    return found[0]


async def poll(cfg: SnmpConfig, dev: Device, times: int = 1, gap_s: float = 1.0) -> list[ProbeResult]:
    return [result for result, _ in await timed_polls(cfg, dev, times, gap_s)]


async def timed_polls(cfg: SnmpConfig, dev: Device, times: int, gap_s: float = 1.0,
                      ) -> list[tuple[ProbeResult, tuple[float, float]]]:
    """`times` polls `gap_s` apart, each with the monotonic (start, end) of its probe() call."""
    results = []
    async with SnmpProbe(cfg) as probe:
        assert probe.wants(dev)
        for i in range(times):
            if i:
                await asyncio.sleep(gap_s)
            start = time.monotonic()
            result = await probe.probe(dev)
            results.append((result, (start, time.monotonic())))
    return results


def rate_bounds(per_s: float, first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    """The range a probe's rate of a counter rising `per_s` can fall in, for two polls that ran
    over `first` and `second` (monotonic start, end). The agent samples the counter, and the
    probe stamps the row (response arrival), at some moment inside each poll: both the true gap
    and the probe's gap lie in [second start − first end, second end − first start]. The agent's
    counter is an integer (labvalue truncates), so the delta is off by up to one count. On a
    loaded machine a poll takes longer and the range widens with it; a fixed tolerance does not
    (a 2/s counter over a 1.1 s gap is 2 or 3 counts: 1.8/s or 2.7/s)."""
    short, long = second[0] - first[1], second[1] - first[0]
    return (per_s * short - 1) / long, (per_s * long + 1) / short


# --- config ------------------------------------------------------------------------------------


def test_inline_community_refused() -> None:
    with pytest.raises(ValidationError, match="'community' must not be written in the config"):
        SnmpConfig(community="public")
    with pytest.raises(ValidationError, match="'auth_key' must not be written"):
        SnmpConfig.model_validate({"credentials": [{"match": {}, "version": "3", "user": "u", "auth_key": "x" * 8}]})


def test_v3_needs_user_and_keys(secrets: None) -> None:
    with pytest.raises(ValidationError, match="version 3 needs `user`"):
        SnmpConfig(version="3")
    with pytest.raises(ValidationError, match="auth_protocol and auth_key_env/auth_key_file go together"):
        SnmpConfig(version="3", user="u", auth_protocol="SHA")
    with pytest.raises(ValidationError, match="priv_protocol and priv_key_env/priv_key_file go together"):
        SnmpConfig(version="3", user="u", auth_protocol="SHA", auth_key_env="AUTH", priv_protocol="AES")
    with pytest.raises(ValidationError, match="privacy needs authentication"):
        SnmpConfig(version="3", user="u", priv_protocol="AES", priv_key_env="PRIV")
    with pytest.raises(ValidationError, match="environment variable MISSING_KEY is not set"):
        SnmpConfig(version="3", user="u", auth_protocol="SHA", auth_key_env="MISSING_KEY")


def test_other_config_errors(secrets: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="version 2c takes a community, not SNMPv3 settings"):
        SnmpConfig(community_env="C_PUBLIC", user="u")
    with pytest.raises(ValidationError, match="not both"):
        SnmpConfig(community_env="C_PUBLIC", community_file=tmp_path / "c")
    with pytest.raises(ValidationError, match="at least 8 characters"):
        monkeypatch.setenv("SHORT", "abc")
        SnmpConfig(version="3", user="u", auth_protocol="SHA", auth_key_env="SHORT")
    with pytest.raises(ValidationError, match="appears with different protocols or keys"):
        SnmpConfig(version="3", user="u", auth_protocol="SHA", auth_key_env="AUTH",
                   credentials=[{"match": {"kind": ["ups"]}, "version": "3", "user": "u", "auth_protocol": "SHA",
                                 "auth_key_env": "PRIV"}])
    with pytest.raises(ValidationError):
        SnmpConfig(max_in_flight_per_device=3)
    # A community from a file; the secret never shows in the model's repr or dump.
    (tmp_path / "community").write_text("s3cret-community\n")
    cfg = SnmpConfig(community_file=tmp_path / "community")
    assert cfg.community is not None and cfg.community.get_secret_value() == "s3cret-community"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())


def test_wants_kinds_credentials_and_budget(secrets: None) -> None:
    cfg = SnmpConfig(credentials=[{"match": {"kind": ["switch"]}, "community_env": "C_SWITCH"}])
    probe = SnmpProbe(cfg)
    assert probe.wants(device("switch"))
    assert not probe.wants(device("ups"))  # no default community, no matching credentials entry
    assert not probe.wants(device("camera"))  # not in `match`
    # budget: GET + one walk of ceil(1000/10)+1 requests × 2.1 s × 2, capped by deadline 20 s, + 0.5
    assert probe.budget_s(device("switch")) == pytest.approx(20.5)
    # No walks: the GET, and the GET of the device profiles' scalars its (still unknown) sysObjectID picks.
    assert SnmpProbe(v2c(161)).budget_s(device("camera")) == pytest.approx((1.0 + 0.1) * 2 + 0.5)


# --- import cost -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Run with the repository as cwd: `-c` puts it first on sys.path, ahead of an installed fleetmon.
_LOADED = """
import asyncio, json, sys
import monitor.app.daemon
from probes.snmp import SnmpConfig, SnmpProbe
from probes.traps import TrapConfig, TrapReceiver

def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} & {"pysnmp", "pyasn1"})

async def enter(use):
    if use == "probe":
        async with SnmpProbe(SnmpConfig()):
            pass
    else:
        async with TrapReceiver(TrapConfig(listen="127.0.0.1", port=0), {}, print):
            pass

at_import = loaded()
asyncio.run(enter(sys.argv[1]))
print(json.dumps({"import": at_import, "entered": loaded(), "daemon": monitor.app.daemon.__file__}))
"""


@pytest.mark.parametrize("use", ["probe", "traps"])
def test_pysnmp_loads_only_when_snmp_is_used(use: str) -> None:
    """`import monitor.app.daemon` loads neither pysnmp nor pyasn1 (~20 MB RSS an operator without
    SNMP must not pay); entering the SNMP probe or the trap receiver loads both."""
    proc = subprocess.run([sys.executable, "-c", _LOADED, use], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert Path(out["daemon"]).resolve() == ROOT / "monitor" / "app" / "daemon.py"
    assert out["import"] == []
    assert out["entered"] == ["pyasn1", "pysnmp"]


# --- pure rules --------------------------------------------------------------------------------


def test_uptime_wrap_versus_reboot() -> None:
    near_wrap = (1 << 32) - 3000  # 30 s before the 497-day wrap
    assert uptime_step(near_wrap, 3000, elapsed_s=60) == "wrap"
    assert uptime_step(500_000_000, 3000, elapsed_s=60) == "reboot"  # a drop from the middle: restart
    assert uptime_step(near_wrap, 2_000_000, elapsed_s=60) == "reboot"  # too much left over for a wrap
    assert uptime_step(1000, 7000, elapsed_s=60) == "normal"


def test_counter_wrap_reset_and_spike() -> None:
    assert counter_delta((1 << 64) - 100, 400, 64) == 500  # 64-bit wrap
    assert counter_delta((1 << 32) - 10, 5, 32) == 15  # 32-bit wrap
    assert counter_delta(5_000_000_000_000, 1000, 64) is None  # reset: fell far, no wrap
    assert counter_rate(1000, 2000, 64, 2.0) == 500.0
    assert counter_rate(1000, 2000, 64, 0.0) is None
    assert counter_rate(0, 10**12, 64, 1.0, max_per_s=1.25e8 * 1.5) is None  # 8 Tbit/s on a 1G port


def test_interface_rates_need_continuity() -> None:
    row = {"ifOperStatus": 1, "ifAdminStatus": 1, "ifHighSpeed": 1000, "ifHCInOctets": 2_000_000,
           "ifHCOutOctets": 1_000_000, "ifCounterDiscontinuityTime": 0}
    bits = {"ifHCInOctets": 64, "ifHCOutOctets": 64}
    prev = InterfaceSample(10.0, 0, {"ifHCInOctets": (1_000_000, 64), "ifHCOutOctets": (500_000, 64)})
    fields, _ = interface_fields(row, bits, False, prev, 11.0, discontinuous=False)
    assert fields["in_bps"] == 8_000_000 and fields["out_bps"] == 4_000_000
    assert fields["in_utilisation_pct"] == pytest.approx(0.8)
    fields, _ = interface_fields(row, bits, False, prev, 11.0, discontinuous=True)  # agent rebooted
    assert "in_bps" not in fields and "out_bps" not in fields
    moved = {**row, "ifCounterDiscontinuityTime": 12345}  # RFC 2863: counters restarted at that time
    fields, _ = interface_fields(moved, bits, False, prev, 11.0, discontinuous=False)
    assert "in_bps" not in fields
    fields, _ = interface_fields(row, bits, True, None, 11.0, discontinuous=False)  # first poll
    assert "in_bps" not in fields and fields["uplink"] is True and fields["up"] is True


# --- snmpsim -----------------------------------------------------------------------------------


@pytest.mark.peer
async def test_switch_v2c_rates_ports_and_uplink(sim: SnmpSim, port: int, secrets: None) -> None:
    (first, first_span), (second, second_span) = await timed_polls(v2c(port), device("switch", uplink=SWITCH_UPLINK), 2)

    def within(value: float, per_s: float) -> bool:
        low, high = rate_bounds(per_s, first_span, second_span)
        return low <= value <= high

    assert first.ok and first.reason is None and first.fields["up"] is True
    assert first.fields["varbinds"] >= 10 * 12
    ports = ports_of(first)
    assert len(ports) == 10
    assert all("in_bps" not in f for f in ports.values())  # first poll: no rates
    ports = ports_of(second)
    assert second.ok and second.reason is None
    for if_index, (in_rate, out_rate) in SWITCH_RATES.items():
        f = ports[f"Gi0/{if_index}"]
        assert f["if_index"] == if_index and f["up"] is True and f["speed_mbps"] == 1000
        assert within(f["in_bps"] / 8, in_rate), (if_index, f["in_bps"] / 8, in_rate, first_span, second_span)
        assert within(f["out_bps"] / 8, out_rate), (if_index, f["out_bps"] / 8, out_rate, first_span, second_span)
        assert f["in_utilisation_pct"] == pytest.approx(f["in_bps"] / 1e9 * 100)  # of ifHighSpeed 1000 Mbit/s
    assert ports[SWITCH_UPLINK]["uplink"] is True
    assert [name for name, f in ports.items() if f["uplink"]] == [SWITCH_UPLINK]
    admin_down, oper_down = ports[f"Gi0/{SWITCH_ADMIN_DOWN}"], ports[f"Gi0/{SWITCH_OPER_DOWN}"]
    assert (admin_down["admin_status"], admin_down["oper_status"], admin_down["up"]) == (2, 2, False)
    assert (oper_down["admin_status"], oper_down["oper_status"], oper_down["up"]) == (1, 2, False)
    errors = ports[f"Gi0/{SWITCH_ERROR_PORT}"]
    assert within(errors["in_errors_per_s"], 2), (errors, first_span, second_span)
    assert within(errors["in_discards_per_s"], 1), (errors, first_span, second_span)
    assert second.fields["sys_uptime_s"] > first.fields["sys_uptime_s"]
    assert second.fields["rebooted"] is False


@pytest.mark.peer
async def test_uplink_down_at_run_time_gives_no_negative_rate(sim: SnmpSim, port: int, secrets: None) -> None:
    async with SnmpProbe(v2c(port)) as probe:
        dev = device("switch", uplink=SWITCH_UPLINK)
        await probe.probe(dev)
        await asyncio.sleep(0.5)
        before = ports_of(await probe.probe(dev))[SWITCH_UPLINK]
        sim.port_down("127.0.0.1", SWITCH_UPLINK_INDEX, port=port)  # counters restart at 1000
        after = ports_of(await probe.probe(dev))[SWITCH_UPLINK]
        await asyncio.sleep(0.5)
        later = ports_of(await probe.probe(dev))[SWITCH_UPLINK]
    assert before["up"] is True and before["in_bps"] > 0
    assert after["up"] is False and after["oper_status"] == 2 and after["uplink"] is True
    assert "in_bps" not in after and "out_bps" not in after  # counters fell: reset, never negative
    assert later["in_bps"] == 0.0


@pytest.mark.peer
async def test_counter_discontinuity_and_reboot(sim: SnmpSim, port: int, secrets: None) -> None:
    async with SnmpProbe(v2c(port)) as probe:
        dev = device("switch")
        await probe.probe(dev)
        await asyncio.sleep(0.3)
        sim.set_value("127.0.0.1", f"{IF_COUNTER_DISCONTINUITY}.1", 1234, port=port)
        moved = ports_of(await probe.probe(dev))
        assert "in_bps" not in moved["Gi0/1"] and moved["Gi0/2"]["in_bps"] > 0
        await asyncio.sleep(0.3)
        sim.set_value("127.0.0.1", SYS_UPTIME, 5, port=port)  # the agent restarted
        rebooted = await probe.probe(dev)
        await asyncio.sleep(0.3)
        after = await probe.probe(dev)
    assert rebooted.fields["rebooted"] is True and rebooted.fields["sys_uptime_s"] < 1
    assert all("in_bps" not in f for f in ports_of(rebooted).values())
    assert after.fields["rebooted"] is False and ports_of(after)["Gi0/2"]["in_bps"] > 0


@pytest.mark.peer
async def test_uptime_wrap_is_no_reboot(sim: SnmpSim, port: int, secrets: None) -> None:
    async with SnmpProbe(v2c(port)) as probe:
        dev = device("switch")
        sim.set_value("127.0.0.1", SYS_UPTIME, (1 << 32) - 40, port=port)  # 0.4 s before the wrap
        first = await probe.probe(dev)
        await asyncio.sleep(1.0)
        second = await probe.probe(dev)
    assert first.fields["sys_uptime_s"] > 42_949_000
    assert second.fields["rebooted"] is False
    assert second.fields["sys_uptime_s"] > first.fields["sys_uptime_s"]  # counted on past 2^32
    assert ports_of(second)["Gi0/2"]["in_bps"] > 0


@pytest.mark.peer
async def test_ups_normal_then_on_battery_then_low(sim: SnmpSim, port: int, secrets: None) -> None:
    async with SnmpProbe(v2c(port, "C_UPS")) as probe:
        dev = device("ups")
        normal = one(await probe.probe(dev), "ups")
        sim.ups_on_battery("127.0.0.1", minutes_remaining=25, port=port)
        battery = one(await probe.probe(dev), "ups")
        sim.ups_battery_low("127.0.0.1", port=port)
        low = one(await probe.probe(dev), "ups")
        sim.ups_on_mains("127.0.0.1", port=port)
        back = one(await probe.probe(dev), "ups")
    assert normal == {"battery_status": 2, "battery_low": False, "seconds_on_battery": 0, "minutes_remaining": 45,
                      "charge_pct": 100, "input_voltage_v": 220, "input_frequency_hz": 50.0, "output_source": 3,
                      "on_battery": False, "output_load_pct": 35, "alarms_present": 0, "battery_voltage_v": 272.0,
                      "battery_temp_c": 25.0, "output_frequency_hz": 50.0, "output_voltage_v": 220.0,
                      "mibs": "UPS-MIB"}
    assert battery["on_battery"] is True and battery["output_source"] == 5
    assert battery["minutes_remaining"] == 25 and battery["input_voltage_v"] == 0 and battery["alarms_present"] == 1
    assert battery["battery_low"] is False
    assert low["battery_low"] is True and low["battery_status"] == 3 and low["on_battery"] is True
    assert back == normal


@pytest.mark.peer
async def test_change_is_per_device(sim: SnmpSim, port: int, secrets: None) -> None:
    other = next(p for _, p in reversed(sim.endpoints))  # the last endpoint: no test changes it
    sim.set_value("127.0.0.1", UPS_OUTPUT_SOURCE, 5, port=port)
    async with SnmpProbe(v2c(port, "C_UPS")) as probe:
        changed = one(await probe.probe(device("ups")), "ups")
    async with SnmpProbe(v2c(other, "C_UPS")) as probe:
        untouched = one(await probe.probe(device("ups")), "ups")
    assert changed["on_battery"] is True and untouched["on_battery"] is False


@pytest.mark.peer
async def test_server_v3_authpriv_host_resources(sim: SnmpSim, port: int, secrets: None) -> None:
    (result,) = await poll(v3(port, "server"), device("server"))
    assert result.ok and result.reason is None
    assert one(result, "host") == {"cpu_load_pct": 30.0, "memory_used_pct": 75.0, "storage_max_used_pct": 85.0}
    disks = {s.tags["storage"]: dict(s.fields) for s in result.series if s.measurement == "host_storage"}
    assert disks == {
        "/": {"used_pct": 40.0, "size_bytes": 25_000_000 * 4096, "used_bytes": 10_000_000 * 4096},
        "/data": {"used_pct": 85.0, "size_bytes": 500_000_000 * 4096, "used_bytes": 425_000_000 * 4096},
    }


@pytest.mark.peer
@pytest.mark.parametrize(("priv_protocol", "ok"), [("AES-256-C", True), ("AES-256", False)])
async def test_v3_aes_256_with_reeder_key_extension(sim: SnmpSim, port: int, secrets: None, priv_protocol: str,
                                                    ok: bool) -> None:
    """The poller speaks the trap receiver's AES-192-C/AES-256-C (one SNMPv3 user model,
    probes.snmp_usm); the Blumenthal variant under the same keys is refused by the agent."""
    cfg = v3(port, "server", user=CISCO_USER.name, auth_key_env="CISCO_AUTH", priv_key_env="CISCO_PRIV",
             priv_protocol=priv_protocol)
    (result,) = await poll(cfg, device("server"))
    assert result.ok is ok
    if ok:
        assert result.reason is None and one(result, "host")["cpu_load_pct"] == 30.0
    else:
        assert result.reason is not None and result.reason.startswith("SNMP error: ")


@pytest.mark.peer
async def test_v3_wrong_key_is_a_clear_failure(sim: SnmpSim, port: int, secrets: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH", "wrong-auth-key")
    (result,) = await poll(v3(port, "server"), device("server"))
    assert not result.ok and result.fields == {"up": False}
    assert result.reason is not None and result.reason.startswith("SNMP error: ")
    assert "wrong-auth-key" not in result.reason


@pytest.mark.peer
async def test_wrong_community_times_out(sim: SnmpSim, port: int, secrets: None) -> None:
    (result,) = await poll(v2c(port, "C_BAD", timeout_s=0.3), device("switch"))
    assert not result.ok and result.reason == "timeout (agent down or wrong community)"
    assert result.fields == {"up": False} and "nope" not in result.reason


async def test_dead_agent(secrets: None) -> None:
    (dead,) = free_udp_ports(1)
    (result,) = await poll(v2c(dead, timeout_s=0.2, retries=1), device("switch"))
    assert not result.ok and result.reason == "timeout (agent down or wrong community)"


@pytest.mark.peer
async def test_deadline_keeps_what_was_read(sim: SnmpSim, port: int, secrets: None) -> None:
    # max_repetitions 1: one request per row; a deadline far below the walk's length.
    cfg = v2c(port, max_repetitions=1, deadline_s=0.05)
    (result,) = await poll(cfg, device("switch"))
    assert result.ok and result.reason is not None and "deadline" in result.reason
    assert result.fields["up"] is True


# --- snmpd: a second, different real agent ------------------------------------------------------


@pytest.mark.peer
async def test_snmpd_v2c_and_v3_ups_and_real_interfaces(secrets: None) -> None:
    overrides = {"1.3.6.1.2.1.33.1.2.1.0": 3, "1.3.6.1.2.1.33.1.4.1.0": 5, "1.3.6.1.2.1.33.1.2.3.0": 4,
                 "1.3.6.1.2.1.33.1.2.4.0": 12}
    with Snmpd(community="public", v3_user=USER, overrides=overrides) as agent:
        (ups,) = await poll(v2c(agent.port, "C_PUBLIC"), device("ups"))
        cfg = SnmpConfig(port=agent.port, version="3", user=USER.name, auth_protocol="SHA", auth_key_env="AUTH",
                         priv_protocol="AES", priv_key_env="PRIV", timeout_s=1.0, retries=0,
                         profiles=[{"match": {}, "groups": ["if_mib", "host_resources"]}])
        first, second = await poll(cfg, device("server", uplink="lo"), times=2, gap_s=0.5)
    assert ups.ok and ups.fields["up"] is True
    fields = one(ups, "ups")
    assert fields["on_battery"] is True and fields["battery_low"] is True and fields["minutes_remaining"] == 4
    assert fields["charge_pct"] == 12
    assert "input_voltage_v" not in fields  # not overridden: noSuchObject, named in the reason
    assert ups.reason is not None and ups.reason.startswith("partial:") and "upsInputVoltage.1" in ups.reason
    assert first.ok and second.ok
    lo = ports_of(second)["lo"]  # net-snmp serves the host's real interfaces
    assert lo["up"] is True and lo["uplink"] is True and lo["in_bps"] >= 0
    host = one(second, "host")
    assert 0 < host["memory_used_pct"] <= 100
    # net-snmp serves hrProcessorLoad only once it has a minute of samples: none right after start.
    assert 0 <= host.get("cpu_load_pct", 0) <= 100


# --- a hostile agent ---------------------------------------------------------------------------


def _column(name: object) -> tuple[int, ...]:
    """The IF-MIB column of a requested OID (column OID itself, or column + ifIndex)."""
    oid = tuple(name)  # type: ignore[arg-type]
    width = 11 if oid[:7] == (1, 3, 6, 1, 2, 1, 31) else 10  # ifXEntry columns are one deeper
    return oid[:width]


class Hostile(asyncio.DatagramProtocol):
    """Answers SNMPv2c requests the way broken or malicious agents do (`mode`)."""

    P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.requests += 1
        p = self.P
        if self.mode == "garbage":
            self.transport.sendto(random.Random(self.requests).randbytes(200), addr)
            return
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        request = p.apiMessage.get_pdu(msg)
        response = p.apiPDU.get_response(request)
        names = [name for name, _ in p.apiPDU.get_varbinds(request)]
        is_get = request.isSameTypeWith(p.GetRequestPDU())
        if is_get:
            values = {"wrongtypes": lambda n: p.OctetString("not a number"),
                      "nosuch": lambda n: rfc1905.noSuchObject,
                      "truncated": lambda n: rfc1902.TimeTicks(100)}.get(
                          self.mode, lambda n: rfc1902.TimeTicks(100))
            varbinds = [(n, values(n)) for n in names]
        elif self.mode == "loop":  # every GETBULK answered with row 1 of each column: no progress
            varbinds = [(rfc1902.ObjectName(_column(n) + (1,)), rfc1902.Counter64(1)) for n in names]
        elif self.mode == "wrongtypes":  # row 1 of each column, every value a STRING
            varbinds = [(rfc1902.ObjectName(_column(n) + (1,)), p.OctetString("garbage")) for n in names]
        else:
            varbinds = [(n, rfc1905.endOfMibView) for n in names]
        p.apiPDU.set_varbinds(response, varbinds)
        p.apiMessage.set_pdu(msg, response)
        wire = encoder.encode(msg)
        self.transport.sendto(wire[: len(wire) // 2] if self.mode == "truncated" else wire, addr)


@pytest.fixture
async def hostile() -> Iterator:
    made = []

    async def start(mode: str) -> tuple[int, Hostile]:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: Hostile(mode), local_addr=("127.0.0.1", 0))
        made.append(transport)
        return transport.get_extra_info("sockname")[1], protocol

    yield start
    for transport in made:
        transport.close()


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
async def test_garbage_and_truncated_datagrams_are_a_timeout(hostile, mode: str, secrets: None) -> None:
    port, responder = await hostile(mode)
    (result,) = await poll(v2c(port, "C_PUBLIC", timeout_s=0.3, retries=1), device("switch"))
    assert responder.requests == 2  # asked, ignored the answer, asked again
    assert not result.ok and result.reason == "timeout (agent down or wrong community)"


async def test_wrong_types_are_dropped_and_named(hostile, secrets: None) -> None:
    port, _ = await hostile("wrongtypes")
    (result,) = await poll(v2c(port, "C_PUBLIC"), device("switch"))
    assert result.ok is True and result.fields["up"] is True
    assert "sys_uptime_s" not in result.fields
    assert "wrong type for sysUpTime (OctetString)" in result.reason
    assert "interfaces: wrong type for ifDescr" not in result.reason  # a STRING is right there
    assert "interfaces: wrong type for ifAdminStatus (OctetString), ifOperStatus (OctetString)" in result.reason
    assert "ifHCInOctets (OctetString)" in result.reason
    assert all("in_bps" not in f and "oper_status" not in f for f in ports_of(result).values())


async def test_no_such_object_and_end_of_mib(hostile, secrets: None) -> None:
    port, _ = await hostile("nosuch")
    (result,) = await poll(v2c(port, "C_PUBLIC"), device("ups"))
    # The agent answers, but no UPS MIB: a UPS that tells nothing is no healthy poll.
    assert not result.ok and result.fields["up"] is False
    assert result.reason.startswith("no known UPS MIB answered (profiles tried: ups_rfc1628); partial: ")
    assert "noSuchObject for sysUpTime, sysObjectID" in result.reason
    assert not [s for s in result.series if s.measurement == "ups"]
    port, _ = await hostile("endofmib")
    (result,) = await poll(v2c(port, "C_PUBLIC"), device("switch"))
    assert result.ok and ports_of(result) == {}


async def test_non_increasing_oids_end_the_walk(hostile, secrets: None) -> None:
    port, responder = await hostile("loop")
    (result,) = await poll(v2c(port, "C_PUBLIC"), device("switch"))
    assert result.ok and "non-increasing OIDs" in result.reason
    assert responder.requests == 3  # the GET, the GETBULK that read row 1, the one that went nowhere
