"""Trap flood (issue 13): 5,000 source addresses not in the fleet flood the receiver with real
SNMPv2c traps (net-snmp's encoding, the right community) while one device of the fleet sends
five genuine linkDown traps; how late they reach on_event (the daemon's Pipeline.on_trap), and
how many log lines the flood cost. Harness: lab/faults_traps.py (needs net-snmp's snmptrap)."""

from __future__ import annotations

import asyncio
import os

from bench.faults import Figure
from lab.faults_traps import COMMUNITY, flood_run
from probes.traps import TrapConfig

SOURCES = 5000
RATE = 40_000  # datagrams per second asked of the flood process
DURATION_S = 3.0


def run() -> list[Figure]:
    os.environ.setdefault("FM_BENCH_TRAP_COMMUNITY", COMMUNITY)
    cfg = TrapConfig(enabled=True, listen="127.0.0.1", port=0, communities_env="FM_BENCH_TRAP_COMMUNITY")
    result = asyncio.run(flood_run(cfg, sources=SOURCES, rate=RATE, duration_s=DURATION_S, genuine=5))
    scenario = f"trap flood from {SOURCES:,} sources ({result.sent:,} datagrams in {DURATION_S:g} s)"
    worst = result.worst_s
    lost = sum(1 for x in result.latencies_s if x is None)
    flood_decoded = result.stats["decoded"] - result.stats["delivered"]  # all delivered ones are genuine
    return [
        Figure(scenario, "genuine trap latency, worst of 5 (s)",
               "lost" if worst is None else f"{worst:.3f}", "≤ 1 s", worst is not None and worst <= 1.0),
        Figure(scenario, "genuine traps lost", str(lost), "0", lost == 0),
        Figure(scenario, "log lines during flood", str(len(result.log_lines)), "≤ 2 + 1 per 60 s",
               len(result.log_lines) <= 3 + int(DURATION_S // cfg.unknown_log_interval_s)),
        Figure(scenario, "flood datagrams decoded", str(flood_decoded), "0", flood_decoded == 0),
    ]
