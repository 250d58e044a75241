"""Trap flood harness, shared by tests/test_fault_traps.py and bench/faults/traps.py: a flood of
real SNMPv2c traps (captured from net-snmp's `snmptrap`, the valid community, so each one is
worth decoding) from thousands of distinct source addresses, while one known device sends its
genuine traps; measures how late the genuine ones reach `on_event` (the daemon's
Pipeline.on_trap) and how many log lines the receiver wrote meanwhile.

Sources: 127.0.0.0/8 is all local on Linux, so the flood process binds one UDP socket to each of
127.10.X.Y (X = i // 250, Y = 1 + i % 250): distinct real source addresses, no spoofing, no root.
The flood runs as a child process (`python -m lab.faults_traps flood …`) so that it competes
with the receiver for the CPU as an attacker on the same host would. Bounded: it stops after
`duration_s` or `max_datagrams`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from probes.traps import TrapConfig, TrapEvent, TrapReceiver

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
COMMUNITY = "flood-fm"
KNOWN = "127.0.0.1"  # the genuine device's address (the one in the receiver's device map)
TOOL_TIMEOUT_S = 15.0
FLOOD_MAX_DATAGRAMS = 2_000_000


def source_address(i: int) -> str:
    """The i-th flood source (0 ≤ i < 62,500): 127.10.X.Y."""
    return f"127.{10 + i // 62_500}.{i % 62_500 // 250}.{1 + i % 250}"


def capture_trap(if_index: int) -> bytes:
    """The datagram net-snmp's snmptrap sends for a v2c linkDown of port `if_index` (to a plain
    socket of ours; net-snmp runs with its own empty config folder)."""
    with tempfile.TemporaryDirectory() as tmp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(TOOL_TIMEOUT_S)
        env = dict(os.environ, MIBS="", SNMPCONFPATH=tmp, SNMP_PERSISTENT_DIR=tmp, HOME=tmp)
        done = subprocess.run(
            ["snmptrap", "-v2c", "-c", COMMUNITY, f"127.0.0.1:{sink.getsockname()[1]}", "", LINK_DOWN,
             f"{IF_INDEX}.{if_index}", "i", str(if_index)],
            env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"snmptrap failed: {done.stderr.strip()}")
        return sink.recv(65_535)


def flood(port: int, datagram: bytes, sources: int, rate: float, duration_s: float) -> int:
    """Send `datagram` to 127.0.0.1:`port` round-robin from `sources` addresses at about `rate`
    datagrams per second for `duration_s`; returns how many were sent."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sources + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sources + 64), hard))
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source_address(i), 0))
        s.setblocking(False)
        socks.append(s)
    target = ("127.0.0.1", port)
    sent = 0
    started = time.monotonic()
    print("flooding", flush=True)  # the parent waits for this line
    while sent < FLOOD_MAX_DATAGRAMS:
        elapsed = time.monotonic() - started
        if elapsed >= duration_s:
            break
        due = min(FLOOD_MAX_DATAGRAMS, int(elapsed * rate) + 1)
        if sent >= due:
            time.sleep(min(0.001, (sent + 1) / rate - elapsed))
            continue
        for _ in range(min(due - sent, 1000)):  # then the clock is looked at again
            try:
                socks[sent % sources].sendto(datagram, target)
            except BlockingIOError:  # loopback full: the receiver's buffer overflows anyway
                pass
            sent += 1
    for s in socks:
        s.close()
    return sent


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.lines.append(record.getMessage())


@dataclass
class FloodResult:
    """latencies_s: per genuine trap, seconds from its sendto to on_event (None = never arrived);
    log_lines: INFO-or-above lines of "fleetmon.traps" from the flood's start to the receiver's
    exit; sent: flood datagrams sent; stats: the receiver's counters at the end."""

    latencies_s: list[float | None]
    log_lines: list[str]
    sent: int
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def worst_s(self) -> float | None:
        """The largest latency, None when a genuine trap was lost."""
        return None if any(x is None for x in self.latencies_s) else max(self.latencies_s)  # type: ignore[type-var]


async def flood_run(
    cfg: TrapConfig, *, sources: int = 5000, rate: float = 50_000, duration_s: float = 3.0, genuine: int = 5,
) -> FloodResult:
    """Run a TrapReceiver (`cfg`; the environment must resolve its communities to COMMUNITY) for
    the device KNOWN, flood it from `sources` addresses at `rate`/s for `duration_s`, and send
    `genuine` linkDown traps from KNOWN spread over the flood."""
    datagrams = [capture_trap(i + 1) for i in range(genuine)]
    flood_datagram = capture_trap(999)
    arrived: dict[int, float] = {}

    def on_event(event: TrapEvent) -> None:
        if event.if_index is not None and event.device_id == "sw-genuine":
            arrived.setdefault(event.if_index, time.monotonic())

    counter = _Count()
    logger = logging.getLogger("fleetmon.traps")
    level = logger.level
    try:
        async with TrapReceiver(cfg, {KNOWN: "sw-genuine"}, on_event) as rx:
            logger.setLevel(logging.INFO)  # as the daemon logs; counted from the flood's start
            logger.addHandler(counter)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lab.faults_traps", "flood", str(rx.port), flood_datagram.hex(), str(sources),
                str(rate), str(duration_s), stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1],
            )
            try:
                assert proc.stdout is not None
                await asyncio.wait_for(proc.stdout.readline(), 60)  # sockets bound, flood starts
                sent_at: dict[int, float] = {}
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
                    device.bind((KNOWN, 0))
                    for n, datagram in enumerate(datagrams):
                        await asyncio.sleep(duration_s / (genuine + 1))
                        sent_at[n + 1] = time.monotonic()
                        device.sendto(datagram, ("127.0.0.1", rx.port))
                    out, _ = await asyncio.wait_for(proc.communicate(), duration_s + 60)
                # What is still queued drains; a genuine trap gets 2 s more after the flood.
                deadline = time.monotonic() + 2.0
                while len(arrived) < genuine and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            sent = int(out.split()[-1]) if out.split() else 0
            stats = dict(rx.stats)
    finally:
        logger.removeHandler(counter)  # after the receiver's exit: its closing summary counts too
        logger.setLevel(level)
    latencies = [arrived[n] - sent_at[n] if n in arrived else None for n in sorted(sent_at)]
    return FloodResult(latencies, counter.lines, sent, stats)


def _main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "flood":
        sent = flood(int(argv[1]), bytes.fromhex(argv[2]), int(argv[3]), float(argv[4]), float(argv[5]))
        print(sent, flush=True)
        return 0
    print("usage: python -m lab.faults_traps flood PORT HEX SOURCES RATE SECONDS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
