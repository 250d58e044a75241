"""ICMP engine (probes/icmp.py) against real peers: loopback, network namespaces made here,
the lab fleet (lab/net.py), fping, and packets crafted and sent to ourselves.

Traffic goes only to loopback, to namespaces these tests create (isolated ones without any
route out) and to lab addresses whose route is checked to lead into the lab first.
Speed is never asserted; times are asserted only where they are the behaviour (a dead target
takes timeout × (1 + retries), an unreachable one does not wait for the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab.net import Behaviour, LabNet
from monitor.metrics import schema
from probes._icmpcore import Core
from probes.base import ProbeResult
from probes.icmp import (
    IcmpConfig,
    IcmpEngine,
    IcmpOverride,
    IcmpProbe,
    PingParams,
    PingStats,
    errno_reason,
    ones_complement_sum,
    parse_error4,
    parse_error6,
)
from tests.plugins.factories import device

REPO = Path(__file__).resolve().parents[1]
root = pytest.mark.root  # skipped only when not root (tests/plugins/lab.py)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# --- packet codec (no privileges) ----------------------------------------------------------------


def test_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
    assert ones_complement_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    # An odd length is padded with a zero byte.
    assert ones_complement_sum(b"\x01") == 0x0100


def test_core_refuses_bad_input_with_clear_errors() -> None:
    core = Core(-1, socket.AF_INET, True, 7, os.urandom(65_535), errno_reason)
    token = object()
    bad_runs = [
        (b"\x0a\x00\x00", 0, 3, 1, 1, 56),  # a 3-byte IPv4 address
        (b"\x0a\x00\x00\x01", 0, 0, 1, 1, 56),  # count 0
        (b"\x0a\x00\x00\x01", 0, 1001, 1, 1, 56),  # count beyond 1,000
        (b"\x0a\x00\x00\x01", 0, 3, 1, 0, 56),  # timeout 0
        (b"\x0a\x00\x00\x01", 0, 3, 1, 1, 65_001),  # payload beyond 65,000
    ]
    for args in bad_runs:
        with pytest.raises(ValueError, match="bad destination length, count, size, interval or timeout"):
            core.start(token, *args)
    assert core.state() == (0, 0, 0) and core.take_finished() == []
    with pytest.raises(ValueError, match="family"):
        Core(-1, 99, True, 7, os.urandom(65_535), errno_reason)
    with pytest.raises(ValueError, match="65,535 bytes"):
        Core(-1, socket.AF_INET, True, 7, b"short", errno_reason)
    with pytest.raises(TypeError, match="callable"):
        Core(-1, socket.AF_INET, True, 7, os.urandom(65_535), None)
    # Errors about echoes it never sent: counted, nothing ends.
    assert core.fail(8, 1, b"\x0a\x00\x00\x01", "host unreachable") is False  # another identifier
    assert core.fail(7, 1, b"\x0a\x00\x00\x01", "host unreachable") is False  # no such echo
    assert core.fail(7, 1, b"\x0a\x00", "host unreachable") is False  # a truncated address
    assert core.counters() == {"sent": 0, "received": 0, "errors": 0, "send_errors": 0, "foreign": 1,
                               "unmatched": 2, "malformed": 0}
    assert core.cancel(12_345) is False


def test_core_ends_an_echo_whose_send_fails_with_the_errno_reason() -> None:
    core = Core(-1, socket.AF_INET, True, 7, os.urandom(65_535), errno_reason)  # fd -1: EBADF
    token = object()
    handle = core.start(token, b"\x0a\x00\x00\x01", 0, 2, 0, 1_000_000_000, 56)
    assert core.send(10) == 1  # the first echo: tried and failed; the second is due now
    core.submit_due(time.monotonic_ns())
    assert core.send(10) == 1
    assert core.take_finished() == [(token, 2, (), "bad file descriptor")]
    assert core.counters()["send_errors"] == 2 and core.state() == (0, 0, 0)
    assert core.cancel(handle) is False  # ended already


def ip4_header(src: str, dst: str, proto: int = 1, ihl_words: int = 5) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl_words, 0, 20 + 8, 0, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + b"\x00" * (ihl_words * 4 - 20)


def icmp4(icmp_type: int, code: int, rest: bytes, *, good_checksum: bool = True) -> bytes:
    body = bytes([icmp_type, code, 0, 0]) + rest
    checksum = 0xFFFF - ones_complement_sum(body) or 0
    if not good_checksum:
        checksum ^= 0x5A5A
    return body[:2] + struct.pack("!H", checksum) + body[4:]


def echo_header(ident: int, seq: int, icmp_type: int = 8) -> bytes:
    return struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq)


def test_parse_error4_quoting_an_echo() -> None:
    quoted = ip4_header("10.0.0.2", "10.9.9.9", ihl_words=6) + echo_header(7, 9)  # with an IP option
    message = icmp4(3, 1, b"\0\0\0\0" + quoted)
    error = parse_error4(ip4_header("10.0.0.254", "10.0.0.2") + message, ip_header=True, verify_checksum=True)
    assert error == (7, 9, socket.inet_aton("10.9.9.9"), 3, 1)
    # A datagram socket hands over the ICMP message without the IP header.
    assert parse_error4(message, ip_header=False, verify_checksum=False) == error

    bad = [
        ip4_header("10.0.0.1", "10.0.0.2") + icmp4(0, 0, struct.pack("!HH", 7, 9) + b"0123456789abcdef"),  # a reply: the core's
        ip4_header("10.0.0.254", "10.0.0.2") + icmp4(3, 1, b"\0\0\0\0" + quoted, good_checksum=False),
        ip4_header("10.0.0.254", "10.0.0.2") + icmp4(3, 1, b"\0\0\0\0" + quoted[:30]),  # quote cut short
        ip4_header("10.0.0.254", "10.0.0.2") + icmp4(3, 3, b"\0\0\0\0" + ip4_header("10.0.0.2", "10.9.9.9", proto=17) + bytes(8)),
        ip4_header("10.0.0.254", "10.0.0.2") + icmp4(5, 0, b"\0\0\0\0" + quoted),  # redirect: no error of ours
        ip4_header("10.0.0.1", "10.0.0.2") + icmp4(8, 0, struct.pack("!HH", 7, 9)),  # a request, not a reply
        b"\x45" + bytes(10),
        b"\x4f" + bytes(30),  # IHL 60 bytes, longer than the packet
    ]
    assert [parse_error4(p, ip_header=True, verify_checksum=True) for p in bad] == [None] * len(bad)


def test_parse_error6_through_a_fragment_header() -> None:
    # RFC 4443 §3.1 destination unreachable quoting the first fragment of a 20,000-byte echo.
    dst = ipaddress.IPv6Address("fd00::99").packed
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, 1240, 44, 64, ipaddress.IPv6Address("fd00::1").packed, dst)
    fragment = struct.pack("!BBHI", 58, 0, 0x0001, 1234)  # next header ICMPv6, offset 0, more fragments
    message = bytes([1, 3, 0, 0, 0, 0, 0, 0]) + ip6 + fragment + echo_header(5, 6, icmp_type=128)
    assert parse_error6(message) == (5, 6, dst, 1, 3)
    later_fragment = struct.pack("!BBHI", 58, 0, 0x0009, 1234)  # offset 1: no ICMPv6 header inside
    assert parse_error6(bytes([1, 3, 0, 0, 0, 0, 0, 0]) + ip6 + later_fragment + echo_header(5, 6, 128)) is None
    assert parse_error6(bytes([129, 0, 0, 0]) + struct.pack("!HH", 5, 6)) is None  # a reply: the core's


def test_parsers_survive_random_garbage() -> None:
    rng = random.Random(1)
    for _ in range(20_000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        if rng.random() < 0.5 and data:  # make IPv4 headers plausible more often
            data = bytes([0x45]) + data[1:]
        parse_error4(data, ip_header=True, verify_checksum=False)
        parse_error4(data, ip_header=False, verify_checksum=False)
        parse_error6(data)


# --- results, config, budget (no privileges) --------------------------------------------------------


def test_stats_fields_follow_the_schema() -> None:
    stats = PingStats("10.0.0.1", sent=4, received=3, rtts_ms=(10.0, 14.0, 11.0), payload_bytes=56)
    fields = stats.fields()
    assert fields == {
        "up": True, "sent": 4, "received": 3, "loss_pct": 25.0, "payload_bytes": 56,
        "rtt_min_ms": 10.0, "rtt_avg_ms": 11.667, "rtt_max_ms": 14.0, "jitter_ms": 3.5,  # (4 + 3) / 2
    }
    schema.check("icmp", {"device_id": "x"}, fields)
    one = PingStats("10.0.0.1", 1, 1, (3.0,), 56).fields()
    assert "jitter_ms" not in one and one["rtt_avg_ms"] == 3.0
    dead = PingStats("10.0.0.1", 2, 0, (), 20_000, "timeout").fields()
    assert dead == {"up": False, "sent": 2, "received": 0, "loss_pct": 100.0, "payload_bytes": 20_000}


def test_stats_fields_agree_with_the_properties() -> None:
    # fields() computes loss and jitter inline (a hot path): the same values as the properties.
    rng = random.Random(7)
    for _ in range(500):
        sent = rng.randint(0, 6)
        rtts = tuple(round(rng.uniform(0.05, 900.0), 6) for _ in range(rng.randint(0, sent)))
        stats = PingStats("10.0.0.1", sent, len(rtts), rtts, 56, None if rtts else "timeout")
        fields = stats.fields()
        assert fields["up"] is stats.up and fields["loss_pct"] == round(stats.loss_pct, 3)
        assert fields.get("jitter_ms") == (None if stats.jitter_ms is None else round(stats.jitter_ms, 3))
        if rtts:
            assert fields["rtt_avg_ms"] == round(sum(rtts) / len(rtts), 3)


def test_rtts_in_ms_need_no_rounding_and_params_carry_ns() -> None:
    # _Run.finish divides kernel RTTs in ns by 1e6 without round(…, 6) (a hot path): the
    # quotient of an integer by 1e6 is already the double nearest to its 6-decimal ms value.
    rng = random.Random(11)
    for _ in range(20_000):
        rtt_ns = rng.choice((rng.randint(1, 10_000), rng.randint(1, 5_000_000_000)))
        assert rtt_ns / 1e6 == round(rtt_ns / 1e6, 6) == float(f"{rtt_ns // 1_000_000}.{rtt_ns % 1_000_000:06d}")
    params = PingParams(count=3, echo_interval_s=0.2, timeout_s=1.5)
    assert (params.timeout_ns, params.echo_interval_ns) == (1_500_000_000, 200_000_000)
    assert params == PingParams(3, 0.2, 1.5) and hash(params) == hash(PingParams(3, 0.2, 1.5))


def test_overrides_overlay_in_order_and_budget_covers_the_timeline() -> None:
    cfg = IcmpConfig(
        count=3, echo_interval_ms=200, timeout_s=1, retries=0, payload_size=56,
        overrides=[
            IcmpOverride(match={"kind": ["link"]}, payload_size=20_000, count=5),
            IcmpOverride(match={"site": ["tower"]}, timeout_s=3, retries=2),
            IcmpOverride(match={"site": ["tower"], "tags": ["wireless"]}, count=2),
        ],
    )
    probe = IcmpProbe(cfg)
    assert probe.params_for(device(address="10.0.0.1")) == PingParams(3, 0.2, 1.0, 0, 56)
    assert probe.params_for(device(address="10.0.0.1", kind="link")) == PingParams(5, 0.2, 1.0, 0, 20_000)
    link_on_tower = probe.params_for(device(address="10.0.0.1", kind="link", site="tower", tags=["wireless"]))
    assert link_on_tower == PingParams(2, 0.2, 3.0, 2, 20_000)
    # (2 − 1) × 0.2 + (1 + 2) × 3 s of echo timeline, plus pacing for 4 echoes at 5,000 pps.
    budget = probe.budget_s(device(address="10.0.0.1", kind="link", site="tower", tags=["wireless"]))
    assert 9.2 < budget < 9.5


# --- helpers for root tests --------------------------------------------------------------------


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, str]]:
    """Fresh, isolated network namespaces (no link to the root namespace, so nothing sent in
    them can leave this machine), loopback up; removed afterwards."""
    names = {role: f"icmpt-{os.getpid()}-{role}" for role in roles}
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_ns(ns: str, code: str, *, nobody: bool = False, timeout: float = 30) -> dict:
    """Run Python `code` (which prints one JSON object last) in namespace `ns`, as root or as
    user nobody; returns the JSON, or {"error": stderr's last line} on a non-zero exit."""
    cmd = ["ip", "netns", "exec", ns, *(NOBODY if nobody else []), sys.executable, "-c", textwrap.dedent(code)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


PING_SCRIPT = """
import asyncio, json, os, time
from probes.icmp import IcmpEngine, PingParams

async def main():
    started = time.monotonic()
    async with IcmpEngine(mode={mode!r}) as engine:
        results = await engine.ping_many({targets!r}, PingParams(**{params!r}))
    caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
    print(json.dumps({{
        "mode": engine.mode, "uid": os.getuid(), "cap_eff": caps, "elapsed": time.monotonic() - started,
        "results": {{r.address: {{"up": r.up, "sent": r.sent, "received": r.received, "reason": r.reason,
                                 "rtts": r.rtts_ms, "payload": r.payload_bytes}} for r in results}},
    }}))

asyncio.run(main())
"""


def ping_script(targets: list[str], mode: str = "auto", **params: object) -> str:
    return PING_SCRIPT.format(targets=targets, mode=mode, params=params)


@pytest.fixture
async def engine() -> IcmpEngine:
    async with IcmpEngine(mode="raw", packets_per_second=5000) as eng:
        yield eng


# --- loopback ----------------------------------------------------------------------------------


@root
async def test_loopback_min_avg_max_jitter_loss(engine: IcmpEngine) -> None:
    targets = ["127.0.0.1", "127.0.0.2", "::1"]
    results = await engine.ping_many(targets, PingParams(count=5, echo_interval_s=0.01, timeout_s=1))
    assert [r.address for r in results] == targets
    for r in results:
        assert (r.up, r.sent, r.received, r.loss_pct, r.reason) == (True, 5, 5, 0.0, None)
        assert len(r.rtts_ms) == 5 and all(0 < rtt < 50 for rtt in r.rtts_ms)
        f = r.fields()
        assert f["rtt_min_ms"] <= f["rtt_avg_ms"] <= f["rtt_max_ms"]
        diffs = [abs(b - a) for a, b in zip(r.rtts_ms, r.rtts_ms[1:])]
        assert f["jitter_ms"] == pytest.approx(sum(diffs) / 4, abs=0.001)
    assert engine.in_flight() == 0


@root
@pytest.mark.parametrize("size", [0, 1, 7, 56, 1473, 20_000])
async def test_loopback_payload_sizes_even_and_odd(engine: IcmpEngine, size: int) -> None:
    # On raw IPv4 sockets the core sums each echo itself (an odd length padded with a zero
    # byte, RFC 1071): the kernel answers only an echo whose checksum is right.
    results = await engine.ping_many(["127.0.0.1", "::1"], PingParams(count=2, echo_interval_s=0.01, payload_size=size))
    assert [(r.received, r.payload_bytes) for r in results] == [(2, size), (2, size)]
    assert engine.counters["malformed"] == 0


@root
async def test_probe_adapter_returns_schema_fields() -> None:
    cfg = IcmpConfig(count=2, echo_interval_ms=5, overrides=[IcmpOverride(match={"kind": ["link"]}, payload_size=1000)])
    async with IcmpProbe(cfg) as probe:
        result = await probe.probe(device(address="127.0.0.1", kind="link"))
        removed = await probe.probe(device(address=None))
    assert isinstance(result, ProbeResult) and result.probe == "icmp" and result.ok and result.reason is None
    assert result.fields["payload_bytes"] == 1000 and result.fields["received"] == 2
    schema.check("icmp", {"device_id": result.device_id}, result.fields)
    assert ProbeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert (removed.ok, removed.reason) == (False, "no address")


@root
async def test_probe_start_gives_what_probe_gives_through_the_schedulers_batch_path() -> None:
    from monitor.app.scheduler import CycleReport, Scheduler

    cfg = IcmpConfig(count=2, echo_interval_ms=5)
    devices = [device(f"d{i}", address=f"127.0.0.{i + 1}") for i in range(200)]
    devices += [device("v6", address="::1"), device("gone", address=None)]
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    async with IcmpProbe(cfg) as probe:
        one = await probe.probe(devices[0])
        before = time.time_ns()
        await Scheduler(probe, devices, interval_s=10, spread=0.0, max_concurrency=50,
                        on_result=results.append, on_cycle=cycles.append).run_once()
        assert probe.engine.in_flight() == 0
    assert sorted(r.device_id for r in results) == sorted(d.id for d in devices)
    assert (cycles[0].ok, cycles[0].failed, cycles[0].caller_timeouts) == (201, 1, 0)
    by_id = {r.device_id: r for r in results}
    assert (by_id["gone"].ok, by_id["gone"].reason) == (False, "no address")
    for r in results:
        assert r.probe == "icmp" and before <= r.ts_ns <= time.time_ns()
        if r.ok:
            assert set(r.fields) == set(one.fields) and r.fields["received"] == 2
            schema.check("icmp", {"device_id": r.device_id}, r.fields)


# --- privileges --------------------------------------------------------------------------------


@root
def test_datagram_mode_works_unprivileged_and_a_clear_error_when_nothing_is_permitted() -> None:
    with namespaces("dgram") as ns:
        sh("ip", "netns", "exec", ns["dgram"], "sysctl", "-qw", "net.ipv4.ping_group_range=65534 65534")
        out = in_ns(ns["dgram"], ping_script(["127.0.0.1", "::1"], count=3, echo_interval_s=0.01, payload_size=20_000), nobody=True)
        assert (out["mode"], out["uid"], int(out["cap_eff"], 16)) == ("dgram", 65534, 0), out
        assert {a: (r["received"], r["payload"]) for a, r in out["results"].items()} == {"127.0.0.1": (3, 20_000), "::1": (3, 20_000)}

        sh("ip", "netns", "exec", ns["dgram"], "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
        denied = in_ns(ns["dgram"], ping_script(["127.0.0.1"]), nobody=True)
        assert "IcmpPermissionError" in denied["error"]
        assert "CAP_NET_RAW" in denied["error"] and "ping_group_range to include group 65534 (now '1 0'" in denied["error"]
        raw_only = in_ns(ns["dgram"], ping_script(["127.0.0.1"], mode="raw"), nobody=True)
        assert "CAP_NET_RAW" in raw_only["error"] and "ping_group_range" not in raw_only["error"]


# --- ICMP errors from a router -------------------------------------------------------------------


@pytest.fixture
def routed() -> Iterator[dict[str, str]]:
    """Namespace `client` behind namespace `router`, which answers 10.78.1.0/24 and fd78:1::/64
    with destination unreachable (an `unreachable` route), 10.78.2.0/24 and fd78:2::/64 with
    administratively prohibited, and silently drops 10.78.3.0/24 and fd78:3::/64 (blackhole).

    A fresh router per test: Linux sends such IPv4 errors at most 5 in a burst, then 1/s, per
    source (net.ipv4.route.error_burst/error_cost, not per namespace)."""
    with namespaces("client", "router") as ns:
        c, r = ns["client"], ns["router"]
        sh("ip", "link", "add", "icmpt-c0", "netns", c, "type", "veth", "peer", "name", "icmpt-r0", "netns", r)
        for line in ["link set icmpt-c0 up", "addr add 10.77.0.1/30 dev icmpt-c0", "addr add fd77::1/64 dev icmpt-c0 nodad",
                     "route add default via 10.77.0.2", "route add default via fd77::2"]:
            sh("ip", "-n", c, *line.split())
        for line in ["link set icmpt-r0 up", "addr add 10.77.0.2/30 dev icmpt-r0", "addr add fd77::2/64 dev icmpt-r0 nodad",
                     "route add unreachable 10.78.1.0/24", "route add prohibit 10.78.2.0/24", "route add blackhole 10.78.3.0/24",
                     "-6 route add unreachable fd78:1::/64", "-6 route add prohibit fd78:2::/64", "-6 route add blackhole fd78:3::/64"]:
            sh("ip", "-n", r, *line.split())
        # No rate limit on the router's errors: several runs follow each other within a second.
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
           "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000")
        sh("ip", "netns", "exec", c, "sysctl", "-qw", "net.ipv4.ping_group_range=65534 65534")
        yield ns


ROUTED_TARGETS = ["10.78.1.5", "10.78.2.5", "fd78:1::5", "fd78:2::5", "10.77.0.2"]
ROUTED_REASONS = {
    "10.78.1.5": "host unreachable",
    "10.78.2.5": "communication administratively prohibited",
    "fd78:1::5": "network unreachable",  # RFC 4443 code 0, no route to destination
    "fd78:2::5": "communication administratively prohibited",
    "10.77.0.2": None,
}


@root
@pytest.mark.parametrize("nobody", [False, True], ids=["raw", "dgram"])
def test_icmp_errors_become_the_reason_without_waiting(routed: dict[str, str], nobody: bool) -> None:
    # 4 IPv4 errors in all: within the router's burst (see `routed`).
    out = in_ns(routed["client"], ping_script(ROUTED_TARGETS, count=1, timeout_s=3, retries=1), nobody=nobody)
    assert out["mode"] == ("dgram" if nobody else "raw"), out
    assert {a: r["reason"] for a, r in out["results"].items()} == ROUTED_REASONS
    assert all(r["sent"] == 2 for a, r in out["results"].items() if a != "10.77.0.2")  # 1 + 1 retry
    assert out["elapsed"] < 1.5, out  # not 3 s × 2 of timeouts


@root
def test_dead_target_times_out_after_timeout_times_one_plus_retries(routed: dict[str, str]) -> None:
    out = in_ns(routed["client"], ping_script(["10.78.3.5", "fd78:3::5"], count=1, timeout_s=0.5, retries=2))
    assert {a: (r["up"], r["sent"], r["reason"]) for a, r in out["results"].items()} == {
        "10.78.3.5": (False, 3, "timeout"), "fd78:3::5": (False, 3, "timeout")}
    assert 1.45 <= out["elapsed"] < 2.0


# --- other ICMP traffic ------------------------------------------------------------------------


@root
async def test_concurrent_fping_does_not_disturb_matching(engine: IcmpEngine) -> None:
    targets = ["127.0.0.1", "127.0.0.2", "::1"]
    fping = await asyncio.create_subprocess_exec(
        "fping", "-q", "-c", "300", "-p", "2", "-i", "1", *targets,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.1)
    results = await engine.ping_many(targets, PingParams(count=30, echo_interval_s=0.01, timeout_s=1))
    _, err = await fping.communicate()
    assert [(r.sent, r.received) for r in results] == [(30, 30)] * 3
    # fping's 900 replies never reached us: the raw sockets' kernel filter drops echo replies
    # with another identifier (fping picking ours, 1 in 65,536, would make them "foreign").
    assert engine.mode == "raw" and engine.counters["foreign"] == 0 and engine.counters["received"] == 90
    summary = re.findall(r"xmt/rcv/%loss = (\d+)/(\d+)/", err.decode())
    assert summary == [("300", "300")] * 3  # and we did not disturb fping either


GARBAGE_SCRIPT = """
import asyncio, json, os, random, socket, struct
from probes.icmp import AF_INET, AF_INET6, IcmpEngine, PingParams, ones_complement_sum

def icmp4(t, code, rest, good=True):
    body = bytes([t, code, 0, 0]) + rest
    ck = (0xFFFF - ones_complement_sum(body)) or 0
    return body[:2] + struct.pack("!H", ck ^ (0 if good else 0x5A5A)) + body[4:]

def ip4(src, dst, proto=1):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 48, 0, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))

async def main():
    async with IcmpEngine(mode="raw") as engine:
        params = PingParams(count=1, timeout_s=1.5, payload_size=56)
        s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)   # source 127.0.0.1
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # kernel checksums
        task = asyncio.ensure_future(engine.ping_many(["127.0.0.1", "127.0.0.2", "::1"], params))
        # Our echo requests arrive on lo: these raw sockets read them (nobody answers here) to
        # learn the sequence numbers in flight (the engine sends them within its first tick).
        await asyncio.sleep(0.2)
        seq = {}
        for sock, family, echo in ((s4, AF_INET, 8), (s6, AF_INET6, 128)):
            sock.settimeout(2)
            while len(seq) < (2 if family == AF_INET else 3):
                data, (src, *_) = sock.recvfrom(2048)
                icmp = data[(data[0] & 15) * 4:] if family == AF_INET else data
                dst = socket.inet_ntoa(data[16:20]) if family == AF_INET else "::1"
                if icmp[0] == echo:
                    seq[dst] = struct.unpack_from("!H", icmp, 6)[0]
        ch4, ch6 = engine.channels[AF_INET], engine.channels[AF_INET6]
        id4, id6 = ch4.ident, ch6.ident
        payload = engine.payload_block[:56]
        rng = random.Random(7)
        for n in range(200):  # random garbage of every length, any ICMP type
            s4.sendto(bytes(rng.getrandbits(8) for _ in range(2 + n % 90)), ("127.0.0.1", 0))  # ≥ 2: type, code
            s6.sendto(bytes(rng.getrandbits(8) for _ in range(4 + n % 90)), ("::1", 0))  # ≥ 4: the kernel checksums
        a, b = seq["127.0.0.1"], seq["127.0.0.2"]
        wrong = [
            icmp4(0, 0, struct.pack("!HH", id4, b) + payload),                 # 127.0.0.2's numbers, wrong source
            icmp4(0, 0, struct.pack("!HH", id4, a) + payload, good=False),     # bad checksum
            icmp4(0, 0, struct.pack("!HH", id4, a) + os.urandom(56)),          # someone else's payload
            icmp4(0, 0, struct.pack("!HH", id4 ^ 1, a) + payload),             # another identifier
            icmp4(3, 1, bytes(4) + ip4("127.0.0.1", "127.0.0.9") + struct.pack("!BBHHH", 8, 0, 0, id4, a)),  # quotes another dst
            icmp4(3, 1, bytes(4) + ip4("127.0.0.1", "127.0.0.2")[:12]),         # quote cut short
            icmp4(3, 3, bytes(4) + ip4("127.0.0.1", "127.0.0.2", proto=17) + bytes(8)),  # quotes UDP
        ]
        for packet in wrong:
            s4.sendto(packet, ("127.0.0.1", 0))
        s6.sendto(struct.pack("!BBHHH", 129, 0, 0, id6, seq["::1"]) + os.urandom(56), ("::1", 0))
        s6.sendto(bytes([1, 3, 0, 0, 0, 0, 0, 0]) + struct.pack("!IHBB16s16s", 0x60000000, 8, 58, 64,
                  socket.inet_pton(socket.AF_INET6, "::1"), socket.inet_pton(socket.AF_INET6, "fd00::9"))
                  + struct.pack("!BBHHH", 128, 0, 0, id6, seq["::1"]), ("::1", 0))
        await asyncio.sleep(0.2)
        before = sorted(engine.counters.items())
        # Positive controls: a right reply for 127.0.0.1, a right error for 127.0.0.2.
        s4.sendto(icmp4(0, 0, struct.pack("!HH", id4, a) + payload), ("127.0.0.1", 0))
        s4.sendto(icmp4(3, 1, bytes(4) + ip4("127.0.0.1", "127.0.0.2") + struct.pack("!BBHHH", 8, 0, 0, id4, b)), ("127.0.0.1", 0))
        results = await task
    print(json.dumps({"counters_before_controls": dict(before), "counters": dict(engine.counters),
                      "results": {r.address: [r.received, r.reason] for r in results}}))

asyncio.run(main())
"""


@root
def test_garbage_and_foreign_icmp_neither_crash_nor_match() -> None:
    with namespaces("quiet") as ns:
        # Nobody answers echoes here: every reply the engine might see is one this test crafted.
        sh("ip", "netns", "exec", ns["quiet"], "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1", "net.ipv6.icmp.echo_ignore_all=1")
        out = in_ns(ns["quiet"], GARBAGE_SCRIPT)
    assert "error" not in out, out
    assert out["results"] == {"127.0.0.1": [1, None], "127.0.0.2": [0, "host unreachable"], "::1": [0, "timeout"]}
    before = out["counters_before_controls"]
    assert before.get("received", 0) == 0 and before.get("errors", 0) == 0
    # "another identifier" is dropped by the kernel filter; the two with our identifier and
    # someone else's payload (IPv4, IPv6) are foreign.
    assert before["malformed"] >= 100 and before["foreign"] == 2 and before["unmatched"] >= 2


# --- cancellation ------------------------------------------------------------------------------


@root
async def test_cancelling_leaves_no_pending_state() -> None:
    async with IcmpEngine(mode="raw", packets_per_second=2) as slow:
        # Waiting between echoes (count 5, 300 ms apart) and waiting in the paced send queue.
        between = asyncio.ensure_future(slow.ping("127.0.0.1", PingParams(count=5, echo_interval_s=0.3)))
        queued = asyncio.ensure_future(slow.ping_many(["127.0.0.2", "127.0.0.3", "::1"], PingParams(count=1)))
        await asyncio.sleep(0.2)
        assert slow.in_flight() >= 4 and slow.backlog_s() > 0
        between.cancel()
        queued.cancel()
        for task in (between, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert slow.in_flight() == 0
        sent_before = slow.counters["sent"]
        await asyncio.sleep(1.2)  # the sender skips what was cancelled
        assert slow.counters["sent"] == sent_before
        assert (await slow.ping("127.0.0.1", PingParams(count=1))).received == 1  # still works


# --- the lab fleet -------------------------------------------------------------------------------


def lab_site(lab: LabNet, site: str, count: int, behaviour: Behaviour = Behaviour(), *, ipv6: bool = False) -> list[str]:
    """Add a lab site; returns its addresses as text after checking that the kernel routes
    them into the lab (never out of this machine, should the lab have gone)."""
    addresses = [str(a) for a in lab.add_site(site, count, behaviour, ipv6=ipv6)]
    for address in (addresses[0], addresses[-1]):
        route = sh("ip", "route", "get", address)
        assert re.search(r"\bdev fml-", route), f"{address} is not routed into the lab: {route}"
    return addresses


@root
async def test_lab_delay_site_measures_its_delay(labnet, engine: IcmpEngine) -> None:
    lab = labnet()
    slow = lab_site(lab, "slow", 4, Behaviour(delay_ms=250))
    fast = lab_site(lab, "fast", 4)
    results = await engine.ping_many(slow + fast, PingParams(count=3, echo_interval_s=0.05, timeout_s=1))
    assert all(r.received == 3 for r in results)
    for r in results[:4]:
        assert 249 <= min(r.rtts_ms) and max(r.rtts_ms) < 300, r
    for r in results[4:]:
        assert max(r.rtts_ms) < 20, r


@root
async def test_lab_loss_site_within_a_binomial_band(labnet, engine: IcmpEngine) -> None:
    lab = labnet()
    lossy = lab_site(lab, "lossy", 50, Behaviour(loss_pct=20))
    results = await engine.ping_many(lossy, PingParams(count=10, echo_interval_s=0.02, timeout_s=1))
    assert all(r.sent == 10 and r.loss_pct == pytest.approx(10 * (10 - r.received)) for r in results)
    lost = sum(r.sent - r.received for r in results)
    # 500 echoes at p = 0.2: mean 100, σ ≈ 8.9; ±4σ fails by chance about once in 16,000 runs.
    assert 64 <= lost <= 136, lost


@root
async def test_lab_devices_taken_down_and_up_at_run_time(labnet) -> None:
    lab = labnet()
    addresses = lab_site(lab, "townA", 3)
    cam = device(address=addresses[1])
    async with IcmpProbe(IcmpConfig(count=2, echo_interval_ms=10, timeout_s=0.4, retries=1)) as probe:
        assert (await probe.probe(cam)).ok
        lab.set_down([addresses[1]])
        budget, started = probe.budget_s(cam), time.monotonic()
        down = await probe.probe(cam)
        elapsed = time.monotonic() - started
        assert (down.ok, down.reason, down.fields["sent"], down.fields["received"]) == (False, "timeout", 3, 0)
        # 0.4 s after the second echo, then 0.4 s for the retry; the caller adds its margin.
        assert "rtt_avg_ms" not in down.fields and 0.8 <= elapsed <= budget + 0.1
        lab.set_up([addresses[1]])
        assert (await probe.probe(cam)).ok
        assert (await probe.probe(device(address=addresses[0]))).ok  # its neighbours never went down


@root
async def test_lab_ipv6_site_and_fragmented_20000_byte_pings(labnet, engine: IcmpEngine) -> None:
    lab = labnet()
    v6 = lab_site(lab, "v6", 3, ipv6=True)
    v4 = lab_site(lab, "v4", 2)
    lab.set_down([v6[2]])
    # Over the lab's veths (MTU 1500) a 20,000-byte echo leaves in 14 fragments each way.
    results = await engine.ping_many(v6 + v4, PingParams(count=2, echo_interval_s=0.01, timeout_s=0.5, payload_size=20_000))
    assert [(r.address, r.received) for r in results] == [(v6[0], 2), (v6[1], 2), (v6[2], 0), (v4[0], 2), (v4[1], 2)]
    assert results[2].reason == "timeout"


@root
async def test_cancel_while_waiting_for_replies_leaves_no_pending_state(labnet, engine: IcmpEngine) -> None:
    lab = labnet()
    addresses = lab_site(lab, "dark", 20)
    lab.set_down(addresses)
    task = asyncio.ensure_future(engine.ping_many(addresses, PingParams(count=2, echo_interval_s=0.05, timeout_s=5)))
    await asyncio.sleep(0.2)
    assert engine.in_flight() == 20 + 40  # 20 runs, 40 echoes awaiting replies
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.in_flight() == 0
    lab.set_up(addresses[:1])
    assert (await engine.ping(addresses[0], PingParams(count=1))).received == 1


@root
async def test_replies_queued_while_the_event_loop_was_held_up_are_not_lost(labnet) -> None:
    """2,000 echoes to a site 200 ms away, answered while the loop is held up past their timeout:
    the replies wait in the socket with their kernel receive times, and the expiry reads every
    one of them before it times anything out (one read batch is 512), so none becomes a false
    loss."""
    from monitor.app.scheduler import CycleReport, Scheduler

    addresses = lab_site(labnet(), "far", 2000, Behaviour(delay_ms=200))
    cfg = IcmpConfig(count=1, timeout_s=0.5, retries=0, packets_per_second=100_000)
    devices = [device(f"d{i}", address=a) for i, a in enumerate(addresses)]
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    async with IcmpProbe(cfg) as probe:
        asyncio.get_running_loop().call_later(0.08, time.sleep, 1.0)  # sent by then, not answered yet
        await Scheduler(probe, devices, interval_s=10, spread=0.0, max_concurrency=5000,
                        on_result=results.append, on_cycle=cycles.append).run_once()
        unmatched = probe.engine.counters["unmatched"]
    assert len(results) == 2000 and cycles[0].duration_s > 1.0
    lost = [r.device_id for r in results if not r.ok]
    assert (len(lost), unmatched) == (0, 0)
    assert all(200 <= r.fields["rtt_avg_ms"] < 400 for r in results)
