"""Availability benchmark: a quarter of a 1,850-point fleet with ~100,000 transitions, and the
same churn for 10,000 points (issue 11: ≤ 1 s for 1,850 points).

`python -m bench.assess_availability [--points 1850 10000] [--churn 13] [--runs 3] [--seed 1]`
(no root, no network).

The history is lab/history.py's generated quarter (2026Q3, 92 days: outages, maintenance
windows, status changes, a crash, a stalled probe, work-order exclusions), written through the
daemon's own code paths into a real SQLite state database in a temp dir. `--churn` is the mean
number of outages per camera over the quarter (switches a quarter of that, each taking its
cameras with it); 13 gives ~100,000 transitions for 1,850 points.

Timed: `monitor.assess.availability.availability()` end to end (SQLite reads on the state DB's
thread, the sweep on a worker thread, every point and every group on every basis), for both
definitions; wall time (median and worst of `--runs`) and the process's CPU time (on a loaded
machine wall time includes waiting for a core). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = {1850: 1.0}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assess_availability")
    parser.add_argument("--points", type=int, nargs="+", default=[1850, 10_000])
    parser.add_argument("--churn", type=float, default=13.0, help="mean outages per camera in the quarter")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-") as tmp:
        for points in args.points:
            rows += asyncio.run(_measure(points, args, Path(tmp) / f"state-{points}.db"))
    print()
    header = ("points", "transitions", "definition", "wall median s", "wall max s", "CPU s", "target s")
    widths = [max(len(h), 12) for h in header]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
    return 0


async def _measure(points: int, args: argparse.Namespace, path: Path) -> list[tuple]:
    from lab.history import generate, write
    from monitor.assess.availability import availability
    from monitor.assess.config import AvailabilityAssessmentConfig
    from monitor.core.model import Basis
    from monitor.state.db import StateDB

    scenario = generate(points, "2026Q3", seed=args.seed, outages_per_camera=args.churn,
                        outages_per_switch=args.churn / 4)
    async with StateDB(path) as db:
        started = time.perf_counter()
        stored = await write(scenario, db)
        print(f"{points} points: {stored} transitions written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows = []
        for definition in ("point_time", "daily_snapshot"):
            config = AvailabilityAssessmentConfig(definition=definition)
            walls, cpus = [], []
            for _ in range(args.runs):
                wall, cpu = time.perf_counter(), time.process_time()
                report = await availability(
                    db, scenario.inventory, scenario.period, config,
                    online_requires=[Basis.NETWORK, Basis.VIDEO], exclusions=scenario.exclusions,
                )
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            if len(report.points) != points:  # a run that computed nothing would be fast
                raise SystemExit(f"availability covered {len(report.points)} points, not {points}")
            rows.append((
                points, stored, definition, f"{statistics.median(walls):.3f}", f"{max(walls):.3f}",
                f"{statistics.median(cpus):.3f}", TARGET_S.get(points, "-"),
            ))
    return rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
