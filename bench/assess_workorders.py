"""Work-order storage benchmark: a quarter of work orders for the 1,850-camera contract fleet.

`python -m bench.assess_workorders [--orders 3000 --open 300 --cameras 1850 --repeat 5 --seed 0]`
(no root, no network).

In-process, on the real classes and a real StateDB (SQLite WAL, in a temp dir), the Qionglai
SLA preset and the 2026 holiday example:

- write: `orders` work orders spread over 2026 Q4, each through the API as the duty engineer
  would: report, acknowledge (+ the assignment it implies), arrive or classify remote,
  restore, close: 6 events per order, one transaction per action; 10 % with an excluded cause;
- fold: `orders(quarter)`: every order of the quarter read and folded from its events (the
  target: well under 1 s for 3,000 orders × 6 events);
- breaches / excluded: the quarter's breach counts and excluded downtime on top of the fold;
- load: a fresh WorkOrderBook on the file with `open` orders open, as at daemon start (it
  folds only the open ones);
- tick: one `tick()` with those orders open (SLA clocks of each; the first tick records their
  notices, the measured ones find nothing new).
Times are wall-clock (perf_counter) and CPU (process_time: every thread of this process, so
the numbers of a busy machine can be told apart from the work), the median of `repeat` runs
where repeated; printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

NS = 1_000_000_000
MIN = 60 * NS
SH = ZoneInfo("Asia/Shanghai")
Q_START = int(datetime(2026, 10, 1, tzinfo=SH).timestamp()) * NS
Q_END = int(datetime(2027, 1, 1, tzinfo=SH).timestamp()) * NS
TARGET_S = 1.0


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def run(args: argparse.Namespace) -> None:
    from bench.rules_eval import build_inventory
    from monitor.assess.config_workorders import PRESETS_DIR, SlaConfig, WorkOrderConfig
    from monitor.assess.model import Cause
    from monitor.assess.orders import Resolution
    from monitor.assess.sla import Sla
    from monitor.assess.workorders import WorkOrderBook
    from monitor.core.model import Kind
    from monitor.state.db import StateDB

    inventory, devices = build_inventory(round(args.cameras * 1.125) + 4, args.seed)
    cameras = [d.id for d in devices if d.kind is Kind.CAMERA and d.counted]
    others = [d.id for d in devices if d.kind is not Kind.CAMERA and d.counted]
    rng = random.Random(args.seed)
    sla = Sla.from_config(SlaConfig(preset="qionglai", calendar={"file": PRESETS_DIR / "calendar-cn-2026.example.yaml"}),
                          "Asia/Shanghai")
    cfg = WorkOrderConfig(routes=["duty"])
    engineers = ["张工", "李工", "王工", "赵工", "陈工"]
    rows: list[tuple[str, str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        clock = Clock(Q_START)
        async with StateDB(path) as db:
            book = await WorkOrderBook.load(db, inventory, cfg, sla, clock=clock)
            starts = sorted(rng.randrange(Q_START, Q_END - 6 * 3600 * NS) for _ in range(args.orders))
            wall, cpu = time.perf_counter(), time.process_time()
            for i, t in enumerate(starts):
                device = rng.choice(cameras) if rng.random() < 0.85 else rng.choice(others)
                clock.now = t
                o = await book.report([device], by="值班员", title=f"报障 {i}")
                who = rng.choice(engineers)
                clock.now = t + rng.randrange(1, 30) * MIN
                await book.acknowledge(o.ref, by=who)  # + "assigned": the first acknowledger takes it
                clock.now += rng.randrange(10, 240) * MIN
                draw = rng.random()
                if draw < 0.1:
                    cause = rng.choice([Cause.POWER, Cause.MUNICIPAL, Cause.CARRIER])
                    await book.classify(o.ref, by=who, cause=cause, resolution=Resolution.REMOTE)
                elif draw < 0.6:
                    await book.arrive(o.ref, by=who)
                else:
                    await book.classify(o.ref, by=who, resolution=Resolution.REMOTE)
                clock.now += rng.randrange(10, 600) * MIN
                await book.restore(o.ref, by=who)
                clock.now += 5 * MIN
                await book.close(o.ref, by=who)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            events = await db.execute(lambda conn: conn.execute("SELECT count(*) FROM workorder_events").fetchone()[0])
        rows.append(("write (API, 1 transaction per action)", f"{events:,} events", f"{wall * 1e3:,.0f}",
                     f"{cpu * 1e3:,.0f}", f"{wall / events * 1e6:,.0f} µs/event"))

        async with StateDB(path) as db:
            clock.now = Q_END

            async def measure(label: str, op, size, note: str = ""):
                walls, cpus = [], []
                for _ in range(args.repeat):
                    w, c = time.perf_counter(), time.process_time()
                    result = await op()
                    walls.append(time.perf_counter() - w)
                    cpus.append(time.process_time() - c)
                rows.append((label, size(result), f"{statistics.median(walls) * 1e3:,.1f}",
                             f"{statistics.median(cpus) * 1e3:,.1f}", note))
                return result

            book = await WorkOrderBook.load(db, inventory, cfg, sla, clock=clock)
            orders = await measure("fold the quarter: orders(Q4)", lambda: book.orders(Q_START, Q_END),
                                   lambda o: f"{len(o):,} orders", f"target well under {TARGET_S:.0f} s")
            assert len(orders) == args.orders and sum(o.events for o in orders) == events
            await measure("breaches(Q4) (fold + clocks)", lambda: book.breaches(Q_START, Q_END),
                          lambda r: f"{r.total:,} breaches")
            await measure("excluded(Q4) (fold + merge)", lambda: book.excluded(Q_START, Q_END),
                          lambda x: f"{len(x):,} exclusions")

            now = Q_END - 2 * 3600 * NS
            clock.now = now
            for i in range(args.open):
                await book.report([rng.choice(cameras)], by="值班员", title=f"未结 {i}",
                                  ts_ns=now - rng.randrange(0, 180) * MIN)
            book = await measure("load (the open orders, at start)",
                                 lambda: WorkOrderBook.load(db, inventory, cfg, sla, clock=clock),
                                 lambda b: f"{len(b.open_orders())} open")
            first = await book.tick()
            clock.now = now + MIN
            await measure(f"tick() with {args.open} open orders", book.tick, lambda t: f"{t.notices} notices",
                          f"the first tick queued {first.notices} notices")
        size_mb = path.stat().st_size / 1e6

    print(f"work orders: {args.orders:,} orders over 2026 Q4, {len(cameras):,} cameras + "
          f"{len(others):,} other devices; state DB {size_mb:.1f} MB; median of {args.repeat}")
    header = ("operation", "size", "wall ms", "CPU ms", "note")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    for r in [header] + rows:
        print("  ".join(c.rjust(w) if i in (2, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assess_workorders", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--open", type=int, default=300)
    parser.add_argument("--cameras", type=int, default=1850)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("fleetmon").setLevel(logging.WARNING)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
