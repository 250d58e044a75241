"""ICMP sweep benchmark: fleetmon's engine beside fping 5.1 on the same lab targets.

`python -m bench.icmp_sweep [--targets 10000 --down 100 --pps 20000 --timeout 1]` (root).

A lab (lab/net.py) of `targets` addresses, `down` of them taken down (spread evenly), is swept
four times in one run, each prober in its own child process so that wall time, CPU seconds
(user + system, os.wait4) and peak RSS are measured the same way:

1. `fping -C1 -q -t T -i I`: count mode, one echo per target. fping 5.1 ignores `-r` in
   count mode (checked: `-C1 -r1` sends one echo to a dead target), so this row has no retry;
2. fleetmon, count 1, retries 0 (the same work as row 1);
3. `fping -r1 -B1 -t T -i I -e`: default mode, where `-r1` does resend once to a target that
   did not answer within T (`-B1`: the retry waits T too, not T × 1.5);
4. fleetmon, count 1, retries 1 (the same work as row 3): the 10,000-target cycle with 1 s
   timeout and one retry.

Pacing is the same for both: fping's `-i` (ms between any two echoes) = 1000 / packets_per_second.
Columns: wall s, CPU s of the whole child process (fleetmon's includes starting Python and
importing pydantic, ≈ 0.2 CPU-s), CPU s and wall s of the sweep alone (fleetmon only, measured
inside the worker), peak RSS, up/down counts, targets whose verdict differs from the fping row
it pairs with and from the lab's ground truth, and the median per-target RTT difference
fleetmon − fping (ms) over targets both saw up. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import check_routed_into_lab, run_child


@dataclass
class Run:
    """One sweep: what was run and what it measured (times in s, RSS in MB, RTT in ms)."""

    label: str
    wall_s: float
    cpu_s: float
    rss_mb: float
    verdicts: dict[str, bool]  # address → up
    rtts: dict[str, float] = field(default_factory=dict)  # address → RTT of an up target
    sweep_cpu_s: float | None = None
    sweep_wall_s: float | None = None


# --- fping -----------------------------------------------------------------------------------

_COUNT_LINE = re.compile(r"^(\S+)\s+:\s+(\S+)\s*$")  # "198.18.0.1 : 0.05" or "… : -"
_ALIVE_LINE = re.compile(r"^(\S+) is alive(?: \(([\d.]+) ms\))?")  # -e adds "(0.05 ms)"
_UNREACHABLE_LINE = re.compile(r"^(\S+) is unreachable")


def fping_count_mode(targets: Path, pps: float, timeout_s: float, work: Path) -> Run:
    cmd = ["fping", "-C1", "-q", "-t", _ms(timeout_s * 1000), "-i", _ms(1000 / pps), "-f", str(targets)]
    wall, cpu, rss = run_child(cmd, work / "fping-c.out", work / "fping-c.err")
    verdicts, rtts = {}, {}
    for line in (work / "fping-c.err").read_text().splitlines():  # -C writes its results to stderr
        m = _COUNT_LINE.match(line)
        if m:
            verdicts[m[1]] = m[2] != "-"
            if m[2] != "-":
                rtts[m[1]] = float(m[2])
    return Run(f"fping -C1 -q -t{_ms(timeout_s * 1000)} -i{_ms(1000 / pps)}", wall, cpu, rss, verdicts, rtts)


def fping_retry_mode(targets: Path, pps: float, timeout_s: float, work: Path) -> Run:
    cmd = ["fping", "-r1", "-B1", "-e", "-t", _ms(timeout_s * 1000), "-i", _ms(1000 / pps), "-f", str(targets)]
    wall, cpu, rss = run_child(cmd, work / "fping-r.out", work / "fping-r.err")
    verdicts, rtts = {}, {}
    for line in (work / "fping-r.out").read_text().splitlines():
        if m := _ALIVE_LINE.match(line):
            verdicts[m[1]] = True
            if m[2]:
                rtts[m[1]] = float(m[2])
        elif m := _UNREACHABLE_LINE.match(line):
            verdicts[m[1]] = False
    return Run(f"fping -r1 -B1 -e -t{_ms(timeout_s * 1000)} -i{_ms(1000 / pps)}", wall, cpu, rss, verdicts, rtts)


def _ms(value: float) -> str:
    return f"{value:g}"


# --- fleetmon --------------------------------------------------------------------------------


def fleetmon(targets: Path, pps: float, timeout_s: float, retries: int, work: Path) -> Run:
    cmd = [sys.executable, "-m", "bench.icmp_sweep", "--worker", str(targets),
           "--pps", str(pps), "--timeout", str(timeout_s), "--retries", str(retries)]
    wall, cpu, rss = run_child(cmd, work / "fleetmon.out", work / "fleetmon.err")
    try:
        report = json.loads((work / "fleetmon.out").read_text())
    except ValueError:
        raise RuntimeError(f"fleetmon worker failed: {(work / 'fleetmon.err').read_text()[-2000:]}") from None
    verdicts = {a: up for a, up, _ in report["results"]}
    rtts = {a: rtt for a, up, rtt in report["results"] if up}
    return Run(f"fleetmon count=1 retries={retries} timeout={timeout_s:g}s", wall, cpu, rss, verdicts, rtts,
               report["sweep_cpu_s"], report["sweep_wall_s"])


def worker(targets: Path, pps: float, timeout_s: float, retries: int) -> None:
    """In the child: sweep the targets, print JSON {sweep_cpu_s, sweep_wall_s, results:
    [[address, up, first RTT ms or null], …]}."""
    from probes.icmp import IcmpConfig, sweep

    addresses = targets.read_text().split()
    cfg = IcmpConfig(count=1, retries=retries, timeout_s=timeout_s, packets_per_second=pps)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    results = asyncio.run(sweep(addresses, cfg))
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    rows = [[r.address, r.up, r.rtts_ms[0] if r.rtts_ms else None] for r in results]
    print(json.dumps({"sweep_cpu_s": cpu, "sweep_wall_s": wall, "results": rows}))


# --- comparison and table --------------------------------------------------------------------


def disagreements(a: Run, b: Run | dict[str, bool]) -> int:
    """Targets whose up/down verdict differs (a target missing from one side counts)."""
    other = b.verdicts if isinstance(b, Run) else b
    return sum(1 for address in set(a.verdicts) | set(other) if a.verdicts.get(address) != other.get(address))


def median_rtt_diff(a: Run, b: Run) -> float | None:
    """Median over targets up in both of (a's RTT − b's RTT), ms."""
    both = set(a.rtts) & set(b.rtts)
    return statistics.median(a.rtts[x] - b.rtts[x] for x in both) if both else None


def table(rows: list[tuple[Run, Run | None]], truth: dict[str, bool]) -> str:
    """Plain aligned text: one line per run, fleetmon rows compared with the fping row before."""
    head = ["run", "wall s", "CPU s", "sweep CPU s", "sweep wall s", "peak RSS MB", "up", "down",
            "≠ fping", "≠ lab", "median ΔRTT ms", "median RTT ms"]
    lines = [head]
    for run, ref in rows:
        up = sum(run.verdicts.values())
        lines.append([
            run.label, f"{run.wall_s:.2f}", f"{run.cpu_s:.2f}",
            "" if run.sweep_cpu_s is None else f"{run.sweep_cpu_s:.2f}",
            "" if run.sweep_wall_s is None else f"{run.sweep_wall_s:.2f}",
            f"{run.rss_mb:.1f}", str(up), str(len(run.verdicts) - up),
            "" if ref is None else str(disagreements(run, ref)), str(disagreements(run, truth)),
            "" if ref is None or median_rtt_diff(run, ref) is None else f"{median_rtt_diff(run, ref):+.3f}",
            f"{statistics.median(run.rtts.values()):.3f}" if run.rtts else "",
        ])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def bench(n_targets: int, n_down: int, pps: float, timeout_s: float) -> str:
    from lab.net import LabNet

    with LabNet() as lab, tempfile.TemporaryDirectory(prefix="bench-icmp-") as tmp:
        work = Path(tmp)
        addresses = [str(a) for a in lab.add_site("bench", n_targets)]
        step = n_targets // n_down if n_down else 0
        down = addresses[step // 2 :: step][:n_down] if n_down else []
        lab.set_down(down)
        truth = {a: lab.is_up(a) for a in addresses}
        targets = work / "targets.txt"
        targets.write_text("\n".join(addresses) + "\n")
        probes = [
            lambda: fping_count_mode(targets, pps, timeout_s, work),
            lambda: fleetmon(targets, pps, timeout_s, 0, work),
            lambda: fping_retry_mode(targets, pps, timeout_s, work),
            lambda: fleetmon(targets, pps, timeout_s, 1, work),
        ]
        runs = []
        for probe in probes:
            check_routed_into_lab([addresses[0], addresses[-1]])
            runs.append(probe())
            time.sleep(0.5)  # let the last stray replies drain before the next prober starts
    rows = [(runs[0], None), (runs[1], runs[0]), (runs[2], None), (runs[3], runs[2])]
    title = (f"ICMP sweep: {n_targets} lab targets ({n_down} down), {pps:g} echoes/s "
             f"(fping -i {_ms(1000 / pps)} ms), timeout {timeout_s:g} s")
    return f"{title}\n{table(rows, truth)}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.icmp_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--down", type=int, default=100)
    parser.add_argument("--pps", type=float, default=20_000, help="echo requests per second, all targets together")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per echo")
    parser.add_argument("--retries", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: the fleetmon child
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.pps, args.timeout, args.retries)
        return 0
    if os.geteuid() != 0:
        print("bench.icmp_sweep needs root (lab namespaces, raw sockets)", file=sys.stderr)
        return 2
    if not 0 <= args.down < args.targets:
        parser.error("--down must be within 0 … targets − 1")
    print(bench(args.targets, args.down, args.pps, args.timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
