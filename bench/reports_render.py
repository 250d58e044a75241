"""Report rendering benchmark: the XLSX and the PDF of a quarterly-shaped report of 1,850 and
10,000 points.

`python -m bench.reports_render [--points 1850 10000] [--formats xlsx pdf] [--pdf-max-rows 2000]`
(no root, no network).

The report is lab/reports.py's sample: one availability row per point (9 columns), a work order
per 10 points (7 columns), eight regions with a bar chart and a 92-day trend, five headline
figures. Each rendering runs in a child process of its own, as monitor.reports.publish does in
the daemon, and is measured there: `render s` is the renderer's own time (perf_counter around
render_xlsx / render_pdf), `wall s`, `CPU s` and `peak RSS MB` are the child's whole life
(interpreter start, imports, building the sample, writing the file; RSS from /proc VmHWM).
With --pdf-max-rows the PDF is also made with long tables cut to that many rows (the XLSX of the
same report has them all). Times are printed, never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import run_child


def child(fmt: str, points: int, out: Path, max_rows: int) -> int:
    from lab.reports import sample_report

    report = sample_report(points)
    started = time.perf_counter()
    if fmt == "xlsx":
        from monitor.reports.xlsx import render_xlsx

        data = render_xlsx(report)
    else:
        from monitor.reports.pdf import render_pdf

        data = render_pdf(report, max_rows=max_rows or None)
    elapsed = time.perf_counter() - started
    out.write_bytes(data)
    rows = sum(len(p.rows) for p in report.parts)
    print(f"{elapsed:.3f} {rows}")
    return 0


def pdf_pages(path: Path) -> str:
    try:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return next((line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")), "?")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_render", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1850, 10_000])
    parser.add_argument("--formats", nargs="+", choices=["xlsx", "pdf"], default=["xlsx", "pdf"])
    parser.add_argument("--pdf-max-rows", type=int, default=2000, help="also a PDF cut to this many rows per table (0: no)")
    parser.add_argument("--child", nargs=4, metavar=("FMT", "POINTS", "OUT", "MAX_ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fmt, points, out, max_rows = args.child
        return child(fmt, int(points), Path(out), int(max_rows))

    runs = [(n, fmt, 0) for n in args.points for fmt in args.formats]
    if "pdf" in args.formats and args.pdf_max_rows:
        runs += [(n, "pdf", args.pdf_max_rows) for n in args.points if n > args.pdf_max_rows]
    header = f"{'points':>7} {'format':<14} {'rows':>6} {'pages':>5} {'size KB':>8} {'render s':>8} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>11}"
    print(header)
    print("-" * len(header))
    status = 0
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-reports-") as tmp:
        for n, fmt, max_rows in runs:
            out = Path(tmp) / f"report-{n}-{max_rows}.{fmt}"
            cmd = [sys.executable, "-m", "bench.reports_render", "--child", fmt, str(n), str(out), str(max_rows)]
            wall, cpu, rss = run_child(cmd, Path(tmp) / "out.txt", Path(tmp) / "err.txt")
            label = fmt if not max_rows else f"pdf ≤{max_rows} rows"
            try:
                render_s, rows = (Path(tmp) / "out.txt").read_text().split()
            except ValueError:
                print(f"{n:>7} {label:<14} failed: {(Path(tmp) / 'err.txt').read_text()[-400:]}")
                status = 1
                continue
            pages = pdf_pages(out) if fmt == "pdf" else "-"
            size = out.stat().st_size / 1024
            print(f"{n:>7} {label:<14} {int(rows):>6} {pages:>5} {size:>8.0f} {float(render_s):>8.2f} {wall:>7.2f} {cpu:>6.2f} {rss:>11.0f}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
