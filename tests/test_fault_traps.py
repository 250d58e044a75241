"""Issue 13, traps: a flood of real SNMPv2c traps (net-snmp's encoding, the right community) from
5,000 distinct source addresses (127.10.X.Y, lab/faults_traps.py) must not delay a genuine trap
from a known device by more than 1 s, nor write a log line per sender; senders not in the fleet
are dropped before any BER decoding, and a global token bucket bounds the decoding beside the
per-sender one. Latency is the harness's measurement: from the genuine trap's sendto to on_event
(the daemon's Pipeline.on_trap)."""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import os
import re
import socket
import subprocess
import time

import pytest

from lab.faults_traps import COMMUNITY, KNOWN, capture_trap, flood_run
from probes import source_filter, traps
from probes.traps import TrapConfig, TrapReceiver

LIMIT_S = 1.0


@pytest.fixture
def community(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FM_FLOOD_COMMUNITY", COMMUNITY)


def config(**changes) -> TrapConfig:
    data = dict(enabled=True, listen="127.0.0.1", port=0, communities_env="FM_FLOOD_COMMUNITY",
                unknown_log_interval_s=60)
    data.update(changes)
    return TrapConfig.model_validate(data)


@pytest.mark.peer
async def test_flood_from_5000_sources_does_not_delay_a_genuine_trap(community) -> None:
    result = await flood_run(config(), sources=5000, rate=40_000, duration_s=3.0, genuine=5)
    assert result.sent > 50_000, result.sent  # the flood really ran (≥ 10 datagrams per source)
    assert None not in result.latencies_s, result  # no genuine trap lost
    assert max(result.latencies_s) <= LIMIT_S, result.latencies_s
    # Aggregated: the first drop at once, the switch to the kernel filter, then one summary per
    # period (and one at the end); counts sampled in the kernel are marked as estimates.
    lines = result.log_lines
    assert len(lines) <= 4, lines[:6]
    assert any("the kernel drops them from now on" in line for line in lines), lines
    assert any(re.match(r"dropped ≈\d+ SNMP notifications from at least \d+ unknown senders", line)
               for line in lines), lines
    assert result.stats["unknown_sender"] > 50_000  # the estimate
    assert result.stats["malformed"] == 0 and result.stats["bad_community"] == 0


@pytest.mark.peer
async def test_unknown_senders_are_dropped_before_decoding(community) -> None:
    """Not one BER decode for a sender that is not in the fleet: pysnmp's own counter of
    messages it parsed (snmpInPkts, RFC 3418) does not move."""
    good = capture_trap(1)
    seen = []
    async with TrapReceiver(config(), {KNOWN: "sw-genuine"}, seen.append) as rx:
        engine = rx._engine
        assert engine is not None
        parsed = engine._engine.get_mib_builder().import_symbols("__SNMPv2-MIB", "snmpInPkts")[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.10.0.7", 0))
            for _ in range(20):
                stranger.sendto(good, ("127.0.0.1", rx.port))
            stranger.sendto(b"\x30\x82\xff\xff garbage", ("127.0.0.1", rx.port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
            device.bind((KNOWN, 0))
            device.sendto(good, ("127.0.0.1", rx.port))
        for _ in range(500):
            if seen:
                break
            await _tick()
        assert len(seen) == 1 and seen[0].device_id == "sw-genuine"
        assert rx.stats["unknown_sender"] == 21 and rx.stats["malformed"] == 0
        assert int(parsed.syntax) == 1  # only the known device's datagram was parsed


@pytest.mark.peer
async def test_global_rate_guard_bounds_decoding_across_senders(community) -> None:
    """Many known senders, each within its own limit, together beyond the global one."""
    good = capture_trap(1)
    devices = {f"127.20.0.{i}": f"sw-{i}" for i in range(1, 41)}
    seen = []
    cfg = config(max_events_per_s=50, max_total_events_per_s=20)
    started = time.monotonic()  # the global bucket starts full (20) and refills 20 per second
    async with TrapReceiver(cfg, devices, seen.append) as rx:
        socks = []
        try:
            for address in devices:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((address, 0))
                socks.append(s)
            for s in socks:  # 40 senders × 2 = 80 datagrams, each sender far below 50/s
                s.sendto(good, ("127.0.0.1", rx.port))
                s.sendto(good, ("127.0.0.1", rx.port))
        finally:
            for s in socks:
                s.close()
        for _ in range(500):
            if rx.stats["received"] == 80:
                break
            await _tick()
        assert rx.stats["received"] == 80
        elapsed = time.monotonic() - started
        assert 20 <= len(seen) <= 20 + 20 * elapsed + 1  # the burst, plus what refilled meanwhile
        assert rx.stats["overload_dropped"] == 80 - len(seen)
        assert rx.stats["flood_dropped"] == 0


def test_config_global_rate(community) -> None:
    assert config().max_total_events_per_s == 1000
    with pytest.raises(ValueError, match="greater than 0"):
        config(max_total_events_per_s=0)
    assert config(relays=["10.0.0.9"]).relays == ["10.0.0.9"]
    with pytest.raises(ValueError, match="relays"):
        config(relays=["not-an-address"])


async def _tick() -> None:
    await asyncio.sleep(0.01)


@pytest.mark.peer
async def test_summary_line_per_period(community, caplog) -> None:
    """Rejections go on for three periods: the first at once, then one line per period."""
    caplog.set_level(logging.WARNING, "fleetmon.traps")
    good = capture_trap(1)
    started = time.monotonic()
    async with TrapReceiver(config(unknown_log_interval_s=0.3), {KNOWN: "sw-genuine"}, lambda e: None) as rx:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for i, s in enumerate(socks):
                s.bind((f"127.10.0.{i + 1}", 0))
            for _ in range(30):  # 0.9 s: three periods of 0.3 s
                for s in socks:
                    s.sendto(good, ("127.0.0.1", rx.port))
                await asyncio.sleep(0.03)
        finally:
            for s in socks:
                s.close()
    elapsed = time.monotonic() - started
    lines = [r.getMessage() for r in caplog.records]
    assert "SNMP notification from 127.10.0.1 ignored: sender not in the inventory" in lines[0]
    assert 3 <= len(lines) <= 2 + elapsed / 0.3, lines  # 1 + a summary per period of 0.3 s (+ the rest at exit)
    assert "from 4 unknown senders (sender not in the inventory, e.g. 127.10.0." in lines[1], lines
    assert sum(int(line.split()[1]) for line in lines[1:]) == 119  # every drop counted once


@pytest.mark.peer
async def test_a_relay_forwards_v1_traps_of_devices_by_agent_addr(community, tmp_path) -> None:
    """A trap forwarder is not a device: allowed as a relay, its SNMPv1 traps map by agent-addr;
    without `relays` the same datagram is dropped undecoded."""
    env = dict(os.environ, MIBS="", SNMPCONFPATH=str(tmp_path), SNMP_PERSISTENT_DIR=str(tmp_path), HOME=str(tmp_path))
    for relays, delivered in (([], 0), (["127.0.0.5"], 1)):
        seen = []
        async with TrapReceiver(config(relays=relays), {"198.18.0.5": "sw-5"}, seen.append) as rx:
            done = await asyncio.to_thread(subprocess.run, [
                "snmptrap", "-v1", "-c", COMMUNITY, "--clientaddr=127.0.0.5", f"127.0.0.1:{rx.port}",
                "1.3.6.1.4.1.8072.3.2.10", "198.18.0.5", "2", "0", "", "1.3.6.1.2.1.2.2.1.1.3", "i", "3",
            ], env=env, capture_output=True, text=True, timeout=15, check=False)
            assert done.returncode == 0, done.stderr
            for _ in range(300):
                if rx.stats["received"] and (seen or rx.stats["unknown_sender"]):
                    break
                await _tick()
        assert len(seen) == delivered
        assert rx.stats["unknown_sender"] == 1 - delivered
        if seen:
            assert (seen[0].device_id, seen[0].source, seen[0].if_index) == ("sw-5", "127.0.0.5", 3)


def test_kernel_filter_keeps_the_fleet_and_samples_the_rest() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert source_filter.attach(rx, ["127.0.0.1", "10.1.2.3"], 64)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
            stranger.bind(("127.10.0.1", 0))
            device.bind(("127.0.0.1", 0))
            for _ in range(6400):
                stranger.sendto(b"x", rx.getsockname())
            for _ in range(10):
                device.sendto(b"y", rx.getsockname())
            seen = collections.Counter(sender[0] for _, sender in _drain(rx))
            assert seen["127.0.0.1"] == 10
            assert 40 <= seen["127.10.0.1"] <= 180  # 1 in 64 of 6400 = 100 on average
            source_filter.detach(rx)
            for _ in range(10):
                stranger.sendto(b"x", rx.getsockname())
            assert len(_drain(rx)) == 10
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as six:
        assert not source_filter.attach(six, ["::1"], 64)  # IPv4 only
    with pytest.raises(ValueError, match="power of two"):
        source_filter.program(["127.0.0.1"], 3)
    # A large fleet: its addresses widened to their /24 networks, within BPF's 4096 instructions.
    fleet = [f"10.{i // 25_000}.{i // 250 % 100}.{1 + i % 250}" for i in range(50_000)] + ["127.0.0.1"]
    nets = source_filter.networks(fleet)  # 201 /24 networks, collapsed where adjacent
    assert sum(n.num_addresses for n in nets) == 201 * 256 and len(nets) < 201
    assert all(any(ipaddress.ip_address(a) in n for n in nets) for a in fleet[::997])
    assert len(source_filter.program(fleet, 64)) // 8 < 4096
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert source_filter.attach(rx, fleet, 1 << 30)  # practically no sample
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            device.bind(("127.0.0.1", 0))
            stranger.bind(("127.10.0.1", 0))
            stranger.sendto(b"x", rx.getsockname())
            device.sendto(b"y", rx.getsockname())
            assert [sender[0] for _, sender in _drain(rx)] == ["127.0.0.1"]


def _drain(sock: socket.socket) -> list[tuple[bytes, tuple]]:
    out = []
    for _ in range(100_000):
        try:
            out.append(sock.recvfrom(100))
        except BlockingIOError:
            break
    return out


@pytest.mark.peer
async def test_flood_switches_the_kernel_filter_on_and_off(community, monkeypatch, caplog) -> None:
    monkeypatch.setattr(traps, "FLOOD_PER_S", 200)
    monkeypatch.setattr(traps, "FLOOD_COOLDOWN_S", 0.5)
    caplog.set_level(logging.INFO, "fleetmon.traps")
    good = capture_trap(1)
    seen = []
    async with TrapReceiver(config(), {KNOWN: "sw-genuine"}, seen.append) as rx:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.10.0.9", 0))
            for _ in range(300):
                stranger.sendto(good, ("127.0.0.1", rx.port))
            for _ in range(300):
                if rx._filtered:
                    break
                await _tick()
            assert rx._filtered
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
                device.bind((KNOWN, 0))
                device.sendto(good, ("127.0.0.1", rx.port))
            for _ in range(300):
                if seen:
                    break
                await _tick()
            assert len(seen) == 1  # the fleet passes the filter
            for _ in range(400):  # quiet: off again after the cool-down
                if not rx._filtered:
                    break
                await _tick()
            assert not rx._filtered
            stranger.sendto(good, ("127.0.0.1", rx.port))  # each one seen again
            before = rx.stats["unknown_sender"]
            for _ in range(300):
                if rx.stats["unknown_sender"] > before:
                    break
                await _tick()
            assert rx.stats["unknown_sender"] == before + 1
    assert "the flood from senders not in the inventory is over" in caplog.text
