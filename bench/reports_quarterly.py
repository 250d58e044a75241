"""Quarterly report benchmark: gather + build + XLSX + PDF of the 季度考核 for 1,850 points (the
Qionglai fleet; issue 12: ≤ 30 s) and for 10,000 points.

`python -m bench.reports_quarterly [--points 1850 10000] [--pdf-max-rows 0 2000] [--seed 11]`
(no root, no network).

The quarter is lab/history.py's (2026Q3: outages, maintenance windows, status changes, a crash,
a stalled probe) with lab/duty.py's faults and work orders (orders for device and video
faults, the engineers' stamps, replacements, excluded causes), written through fleetmon's own
code paths into a real SQLite state database in a temp dir (the setup, timed apart). Then, as
`fleetmon report quarterly` and the daemon's schedule make it:

- gather s: monitor.reports.content.gather over a read-only Assessment (availability of the
  quarter and of its 14 weeks, the Qionglai score through its MetricSource, faults, work orders,
  breaches, offline points); build s: the document;
- xlsx s / pdf s: each rendered by a child process of its own (as publish does), wall time
  (interpreter start and imports included), with the PDF child's CPU time, peak RSS (VmHWM) and
  page count (on a machine shared with other work, CPU s is the steadier figure); the PDF
  once per --pdf-max-rows (0: every row; else longer tables are cut to that many rows in the PDF,
  the XLSX keeps them all);
- total s: gather + build + the longer of the two renderings (publish renders them side by side).

Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import run_child

TARGET_S = {1850: 30.0}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_quarterly", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1850, 10_000])
    parser.add_argument("--pdf-max-rows", type=int, nargs="+", default=[0, 2000],
                        help="PDF row limits to measure (0: every row); 10,000 points take the non-zero ones only")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    logging.getLogger("fleetmon").setLevel(logging.ERROR)  # thousands of faults and orders in the setup
    header = (f"{'points':>7} {'orders':>7} {'gather s':>8} {'build s':>7} {'xlsx s':>6} {'pdf rows':>9} {'pdf s':>7} "
              f"{'pdf CPU s':>9} {'pages':>5} {'pdf RSS MB':>10} {'total s':>7} {'target s':>8}")
    lines = []
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-quarterly-") as tmp:
        for points in args.points:
            limits = [m for m in args.pdf_max_rows if m or points <= 2000] or [2000]
            lines += asyncio.run(_measure(points, limits, args.seed, Path(tmp)))
    print()
    print(header)
    print("-" * len(header))
    for line in lines:
        print(line)
    return 0


async def _measure(points: int, limits: list[int], seed: int, tmp: Path) -> list[str]:
    from lab.duty import assessment_config, extend, write_duty
    from lab.history import generate, write
    from monitor.assess.assessment import Assessment
    from monitor.assess.workorders import WorkOrderBook
    from monitor.core.model import Basis
    from monitor.reports.content import build
    from monitor.reports.content.gather import Sources, gather
    from monitor.state.db import StateDB

    zone = "Asia/Shanghai"
    path = tmp / f"state-{points}.db"
    scenario = generate(points, "2026Q3", seed=seed)
    extras = extend(scenario, seed)
    started = time.perf_counter()
    async with StateDB(path) as db:
        transitions = await write(scenario, db)
        duty = await write_duty(scenario, db, extras, seed=seed)
    print(f"{points} points: setup {time.perf_counter() - started:.0f} s ({transitions} transitions, {duty.faults} faults, "
          f"{duty.orders + duty.manual} work orders, {duty.actions} engineer actions)", file=sys.stderr)

    cfg = assessment_config()
    async with StateDB(path, read_only=True) as db:
        book = await WorkOrderBook.load(db, scenario.inventory, cfg.workorders, cfg.clocks(zone), timezone=zone)
        assessment = Assessment(db, scenario.inventory, cfg, book, timezone=zone,
                                online_requires=(Basis.NETWORK, Basis.VIDEO))
        t0 = time.perf_counter()
        facts = await gather("quarterly", scenario.period, Sources(assessment, "zh"))
        t1 = time.perf_counter()
        report = build(facts)
        t2 = time.perf_counter()
    if facts.score is None or len(facts.availability.points) != points:
        raise SystemExit(f"the report of {points} points has no score or not every point")
    doc = tmp / f"report-{points}.json"
    doc.write_text(report.to_json(), encoding="utf-8")
    xlsx_s, _, _ = _render(doc, "xlsx", 0, tmp)
    lines = []
    for limit in limits:
        pdf_s, pdf_cpu, rss = _render(doc, "pdf", limit, tmp)
        pages = _pages(tmp / "out.pdf")
        gathered, built = t1 - t0, t2 - t1
        total = gathered + built + max(xlsx_s, pdf_s)
        rows = "all" if not limit else f"≤{limit:,}"
        lines.append(
            f"{points:>7,} {len(facts.reported()):>7,} {gathered:>8.2f} {built:>7.2f} {xlsx_s:>6.2f} {rows:>9} {pdf_s:>7.2f} "
            f"{pdf_cpu:>9.2f} {pages:>5} {rss:>10.0f} {total:>7.2f} {TARGET_S.get(points, '-'):>8}"
        )
    return lines


def _render(doc: Path, fmt: str, max_rows: int, tmp: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of `python -m monitor.reports.render` on the report `doc`."""
    out = tmp / f"out.{fmt}"
    cmd = [sys.executable, "-c", _CHILD, str(doc), fmt, str(max_rows), str(out)]
    wall, cpu, rss = run_child(cmd, tmp / "child.out", tmp / "child.err")
    if not out.exists() or out.stat().st_size == 0:
        raise SystemExit(f"rendering the {fmt} failed: {(tmp / 'child.err').read_text()[-400:]}")
    return wall, cpu, rss


# The render child of monitor.reports.render, reading the report from a file instead of stdin.
_CHILD = """
import sys
from pathlib import Path
from monitor.reports.document import Report
from monitor.reports.render import render
doc, fmt, rows, out = sys.argv[1:]
report = Report.from_json(Path(doc).read_text(encoding="utf-8"))
Path(out).write_bytes(render(report, fmt, pdf_max_rows=int(rows) or None))
"""


def _pages(path: Path) -> str:
    try:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return next((line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")), "?")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
