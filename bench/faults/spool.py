"""InfluxDB down for 10 minutes (compressed) with a graceful restart and a kill -9 of the metrics
writer inside: are all points in InfluxDB afterwards, once each, at their own times, and how
long does the replay take? Plus what the spool costs a point on the hot path.

Compressed time: 20 cycles of a 30 s probe interval (10 min) run as 20 cycles of 0.05 s, 1,000
points each (500 devices × 2 series); the writer is lab.faults_spool's child process (the
daemon's InfluxSink with its spool, production batch and memory sizes) against a real influxd
1.6.7 on loopback, API v1. The replay time includes up to one retry delay (0.2 s here).
tests/test_fault_spool.py runs the same with the real daemon (`fleetmon run`) too.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.faults import Figure
from lab.faults_spool import Target, outage_with_restart_and_kill
from lab.influxdb import InfluxServer
from monitor.metrics.spool import Spool

SCENARIO = "InfluxDB down 10 min (20 cycles compressed), restart + kill -9 inside"
CYCLES, PER_CYCLE, CYCLE_S = 20, 1000, 0.05
_LINE = b'icmp,device_id=cam-001,kind=camera,region=\xe5\x9f\x8e\xe5\x85\xb3\xe9\x95\x87,site=S1 rtt_avg_ms=1.5,sent=1i,up=true 1764000000000000001'
APPEND_TARGET_US = 10.0  # 20,000 points a cycle (10,000 devices) then cost at most 0.2 s of a cycle


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-spool-") as tmp:
        with InfluxServer() as influx:
            influx.create_database("bench")
            outcome = asyncio.run(outage_with_restart_and_kill(
                influx, Target("v1", influx.url, "bench"), Path(tmp) / "spool",
                cycles=CYCLES, per_cycle=PER_CYCLE, cycle_s=CYCLE_S, ram_lines=250_000,
            ))
        append_us = _append_cost_us(Path(tmp) / "cost")
    rows = len(outcome.rows)
    rate = rows / outcome.replay_s if outcome.replay_s > 0 else float("inf")
    return [
        Figure(SCENARIO, "points written (confirmed by the writers)", str(len(outcome.confirmed)), f"≥ {(CYCLES - 1) * PER_CYCLE}",
               len(outcome.confirmed) >= (CYCLES - 1) * PER_CYCLE),
        Figure(SCENARIO, "points lost", str(outcome.lost), "0", outcome.lost == 0),
        Figure(SCENARIO, "points duplicated or with another time", str(outcome.duplicated + outcome.foreign), "0",
               outcome.duplicated + outcome.foreign == 0),
        Figure(SCENARIO, "replay time after InfluxDB is back", f"{outcome.replay_s:.2f} s ({rate:,.0f} points/s)",
               "(measured)", True),
        Figure("spool append, one point of ~130 B", "cost per point", f"{append_us:.1f} µs", f"≤ {APPEND_TARGET_US:g} µs",
               append_us <= APPEND_TARGET_US),
    ]


def _append_cost_us(directory: Path, points: int = 50_000) -> float:
    """µs per Spool.append (CRC, one write(2)), best of 3 runs."""
    best = float("inf")
    for n in range(3):
        spool = Spool(directory / str(n), 512 << 20)
        spool.open()
        started = time.perf_counter()
        for _ in range(points):
            spool.append(_LINE, keep_loaded=False)
        best = min(best, (time.perf_counter() - started) / points * 1e6)
        spool.close()
    return best
