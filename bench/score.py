"""Score benchmark: the Qionglai score of a quarter from its work orders, for 1,850 and 10,000 points.

`python -m bench.score [--points 1850 10000 --faults-per-point 2 --seed 0]` (no root, no network).

In-process, on the score's own code: the three count ratios of monitor.assess.order_ratios over a
generated quarter of work orders (`faults-per-point` orders per point: cameras and their switches,
UPS units and links; 8 % with an excluded cause, 30 % fixed by a replacement, 25 % remote; times
drawn so that about 10 % arrive late and 8 % of replacements come after 72 h), then
`evaluate` of the shipped Qionglai scheme with an online rate carrying one evidence entry per
point (what the availability layer hands over), then `to_dict()` and `json.dumps` of the result
with all its evidence. The availability computation itself is not in here (its own benchmark).
Times are wall-clock (perf_counter), the best of `--repeat` runs, printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from decimal import Decimal

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR
TARGET_MS = {1850: 1000.0, 10000: 2000.0}  # the targets for the whole score; this part must be far below


def make_orders(points: int, per_point: float, start_ns: int, seed: int):
    from monitor.assess.model import Cause
    from monitor.assess.order_ratios import OrderFacts
    from monitor.core.model import Kind

    rng = random.Random(seed)
    kinds = [Kind.CAMERA] * 85 + [Kind.SWITCH] * 8 + [Kind.UPS] * 4 + [Kind.LINK] * 3
    orders = []
    for n in range(int(points * per_point)):
        reported = start_ns + rng.randrange(88 * DAY)
        due = reported + 4 * HOUR
        cause = Cause.POWER if rng.random() < 0.08 else Cause.DEVICE
        remote = rng.random() < 0.25
        replaced = None
        if not remote and rng.random() < 0.3:
            replaced = reported + (rng.randrange(72 * HOUR) if rng.random() > 0.08 else 73 * HOUR)
        arrived = None if remote else due + (-HOUR if rng.random() > 0.1 else HOUR)
        orders.append(OrderFacts(f"WO-{n:06}", f"P{rng.randrange(points):05}", rng.choice(kinds), reported,
                                 cause=cause, arrived_ns=arrived, arrival_due_ns=due,
                                 resolution="remote" if remote else "on_site", replaced_ns=replaced))
    return orders


def run(points: int, per_point: float, seed: int, repeat: int) -> dict[str, float]:
    from monitor.assess.inputs import Evidence, MetricValue, Unit
    from monitor.assess.order_ratios import (
        arrival_timely_pct,
        camera_replacement_timely_pct,
        other_replacement_timely_pct,
    )
    from monitor.assess.scheme import shipped_scheme
    from monitor.assess.score import evaluate

    class Period:
        label, start_ns, end_ns = "2026Q4", 1_790_812_800 * NS, 1_798_761_600 * NS

    orders = make_orders(points, per_point, Period.start_ns, seed)
    online = MetricValue("online_rate_pct", 93.2, Unit.PCT, 932, 1000, tuple(
        Evidence("point", f"P{i:05}", "down", 60.0 * (i % 97)) for i in range(points)))
    scheme = shipped_scheme("qionglai")
    as_of = Period.end_ns + 10 * DAY
    ratios = {"camera_replacement_timely_pct": camera_replacement_timely_pct,
              "other_replacement_timely_pct": other_replacement_timely_pct,
              "arrival_timely_pct": arrival_timely_pct}

    class Source:
        def metric(self, name, period):
            return online if name == "online_rate_pct" else ratios[name](orders, period, as_of)

    best = {"evaluate_ms": float("inf"), "to_json_ms": float("inf")}
    for _ in range(repeat):
        t0 = time.perf_counter()
        score = evaluate(scheme, Source(), Period(), Decimal(250000))
        t1 = time.perf_counter()
        text = json.dumps(score.to_dict(), ensure_ascii=False)
        t2 = time.perf_counter()
        best["evaluate_ms"] = min(best["evaluate_ms"], (t1 - t0) * 1000)
        best["to_json_ms"] = min(best["to_json_ms"], (t2 - t1) * 1000)
    best["orders"] = len(orders)
    best["total"] = float(score.total)
    best["json_kb"] = len(text.encode()) / 1024
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.score", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1850, 10000])
    parser.add_argument("--faults-per-point", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'points':>7} {'orders':>7} {'evaluate ms':>12} {'to_dict+json ms':>16} {'JSON kB':>8} "
          f"{'score':>6} {'target ms (whole score)':>24}")
    for points in args.points:
        r = run(points, args.faults_per_point, args.seed, args.repeat)
        target = TARGET_MS.get(points)
        print(f"{points:>7} {int(r['orders']):>7} {r['evaluate_ms']:>12.1f} {r['to_json_ms']:>16.1f} "
              f"{r['json_kb']:>8.0f} {r['total']:>6g} {target if target else '-':>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
