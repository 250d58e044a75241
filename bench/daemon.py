"""Daemon benchmark: `fleetmon run` over a lab fleet of N devices beside fping doing one cycle's
worth of the same echoes at the same pacing.

`python -m bench daemon [--devices 10000 --interval 30 --pps P --warmup 3 --cycles 3 --concurrency 5000
--fping-runs 3 --profile DIR --tracemalloc]` (root; --profile needs py-spy, the `test` extra).

The lab fleet is the contract shape (lab/fleet.py) scaled to `devices`: cameras in sites of
8–40 behind their switches and links, with UPS units, a few sites slow, lossy or dark. The
real daemon (a child process, default rules, real InfluxDB from lab/influxdb.py) probes ICMP
only: count 3, 200 ms apart, 1 s timeout, one retry, `pps` echoes/s for all devices together
(default: what sends a cycle's echoes within half the interval, at least 5,000/s). Once its
first `warmup` cycles are in InfluxDB (first verdicts, the lab's dead devices found) the steady
state starts; its CPU is taken over exactly `cycles` intervals from there, and once those
cycles are in InfluxDB the daemon is stopped with SIGTERM.

Printed: lab build and teardown (wall s); for the daemon the process CPU seconds (user + sys,
/proc) per cycle in steady state and as % of one core, its peak RSS (VmHWM, loading included) and
the largest RSS of the steady state (VmRSS sampled every 0.5 s), the durations and
skipped cycles it wrote to InfluxDB itself (fleetmon_cycle) and the lines it wrote
(fleetmon_sink); beside it `fping -C3 -q -p200 -t1000 -i <1000/pps>` over the same addresses:
one cycle's CPU (the median of `--fping-runs` runs, their range beside the ratio), % of one core
over the same interval, RSS and wall time. fping is the
reference: the same echoes, no state, no storage. With --profile DIR, py-spy samples the daemon
over the steady state (`DIR/daemon.txt`: collapsed stacks) and the table's end lists the
functions with the largest share of samples, own and with callees. With --tracemalloc the daemon
runs under tracemalloc (slower, its RSS inflated by the tracing) and the source lines holding most
memory at the end of the steady state are listed, in bytes per device. Timings are printed, never
asserted. The machine is shared: CPU seconds are what contention disturbs least.

Measured figures, the profiles before and after, and what is left: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from bench._common import check_routed_into_lab, memory_map, run_child, vm_hwm_kb, vm_rss_kb

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COUNT, ECHO_INTERVAL_MS, TIMEOUT_S, RETRIES = 3, 200, 1.0, 1
DEVICES_PER_CAMERA = 1.125  # a site: ~24 cameras + link, switch and UPS (lab/fleet.py)
START_TIMEOUT_S = 300.0  # reading a 100,000-point list and a first cycle, on a busy machine


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def default_pps(devices: int, interval_s: float) -> float:
    """Pacing that sends one cycle's echoes within half the interval, at least 5,000/s."""
    return float(max(5000, math.ceil(devices * COUNT / (interval_s / 2) / 1000) * 1000))


def cycles_seen(influx, db: str) -> int:
    """ICMP cycles the daemon has written to InfluxDB so far (0 before it made the database)."""
    from lab.influxdb import InfluxError

    try:
        rows = influx.rows("SELECT count(duration_s) AS n FROM fleetmon_cycle WHERE probe = 'icmp'", db)
    except InfluxError:
        return 0
    return int(rows[0]["n"]) if rows else 0


# `fleetmon run` under tracemalloc: SIGUSR1 writes a snapshot to the file named by argv[1]
_TRACED = (
    "import signal, sys, tracemalloc\n"
    "tracemalloc.start(1)\n"
    "out = sys.argv.pop(1)\n"
    "signal.signal(signal.SIGUSR1, lambda *_: tracemalloc.take_snapshot().dump(out))\n"
    "from monitor.app.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_daemon(config: Path, warmup: int, cycles: int, interval_s: float, work: Path, influx, db: str,
               profile: Path | None, traced: Path | None = None) -> dict:
    """Run `fleetmon run` until `cycles` cycles after its first `warmup` are in InfluxDB (first
    verdicts, the hysteresis settling the lab's dead devices); returns its steady-state CPU s
    per cycle, peak RSS MB (VmHWM, over the whole run: loading the point list included), the
    largest RSS MB seen in the steady state (VmRSS every 0.5 s) and the wall time of the steady state."""
    fleetmon = [str(Path(sys.executable).with_name("fleetmon"))]
    if traced is not None:
        fleetmon = [sys.executable, "-c", _TRACED, str(traced)]
    with (work / "fleetmon.log").open("wb") as log:
        proc = subprocess.Popen([*fleetmon, "run", "--config", str(config)], stdout=log, stderr=log)
    spy = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        peak_kb, steady_kb, seen = 0, 0, 0
        deadline += warmup * interval_s
        while seen < warmup and time.monotonic() < deadline and proc.poll() is None:  # bounded
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            time.sleep(0.5)
            seen = cycles_seen(influx, db)
        if seen < warmup:
            raise SystemExit(f"only {seen} cycles from fleetmon; its log ends:\n{_tail(work / 'fleetmon.log')}")
        warm_cpu, warm_t, warm_seen = cpu_s(proc.pid), time.monotonic(), seen
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--rate", "50",
                 "--pid", str(proc.pid), "--output", str(profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        # CPU over exactly `cycles` intervals: cycles start every interval_s (monotonic), so a
        # window of whole intervals holds `cycles` cycles' work whatever its phase. Ending it
        # when the last cycle shows up in InfluxDB instead made its length depend on the sink's
        # lag (52 s for two 30 s cycles at 100,000 devices: the CPU of 52 s scaled to 30 s a
        # cycle, up to 15 % too much when the part left out was idle).
        end_at = warm_t + cycles * interval_s
        while time.monotonic() < end_at and proc.poll() is None:  # bounded by end_at
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            steady_kb = max(steady_kb, vm_rss_kb(proc.pid))
            time.sleep(min(0.5, max(0.0, end_at - time.monotonic())))
        end_cpu, end_t = cpu_s(proc.pid), time.monotonic()
        deadline = time.monotonic() + 2 * interval_s  # the window's cycles reaching InfluxDB
        while seen < warm_seen + cycles and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            seen = cycles_seen(influx, db)
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
        mapped = memory_map(proc.pid)
        if traced is not None:
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 120
            while not traced.exists() and time.monotonic() < deadline:  # bounded
                time.sleep(0.5)
            time.sleep(2.0)  # the dump being written
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(timeout=60)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    if code != 0 or (seen <= warm_seen and traced is None):  # traced: the memory is the point, not the cycles
        raise SystemExit(f"fleetmon exited with {code} after {seen} cycles; see {work / 'fleetmon.log'}")
    steady = end_t - warm_t
    return {
        "peak_rss_mb": peak_kb / 1024,
        "steady_rss_mb": steady_kb / 1024,
        "map": mapped,
        "cpu_s_per_cycle": (end_cpu - warm_cpu) / steady * interval_s,
        "steady_s": steady,
    }


def top_functions(collapsed: Path, n: int = 15) -> list[tuple[str, float, float]]:
    """(function, own %, with-callees %) of the `n` functions with most own samples, from
    py-spy's raw output (one line per stack: frames ';'-separated, then the sample count)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    if not samples:
        return []
    return [(f, 100 * c / samples, 100 * total[f] / samples) for f, c in own.most_common(n)]


def _short(frame: str) -> str:
    """'encode (monitor/metrics/line.py:42)' → 'encode (monitor/metrics/line.py)'; paths inside
    the virtualenv or the standard library keep their last two parts."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    for anchor in ("monitor", "probes", "rules", "lab"):
        if anchor in parts:
            return f"{name} ({'/'.join(parts[parts.index(anchor):])})"
    return f"{name} ({'/'.join(parts[-2:])})"


def _tail(path: Path, n: int = 15) -> str:
    """The last `n` lines of a log (the work directory is gone once the benchmark ends)."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def top_lines(snapshot: Path, devices: int, n: int = 25) -> list[str]:
    """The `n` source lines holding most memory in a tracemalloc snapshot, in bytes per device."""
    import tracemalloc

    stats = tracemalloc.Snapshot.load(str(snapshot)).statistics("lineno")
    total = sum(s.size for s in stats)
    lines = [f"tracemalloc at the end of the steady state: {total / 2**20:.1f} MB held, {total / devices:.0f} B/device"]
    for stat in stats[:n]:
        frame = stat.traceback[0]
        lines.append(f"  {stat.size / devices:7.0f} B/device {stat.count:>9} blocks  "
                     f"{_short(f'x ({frame.filename}:{frame.lineno})')[3:-1]}:{frame.lineno}")
    return lines


def bench(devices: int, warmup: int, cycles: int, interval_s: float, pps: float, concurrency: int,
          profile_dir: Path | None, traced: bool = False, fping_runs: int = 3) -> str:
    from lab.fleet import build_contract_fleet
    from lab.influxdb import InfluxServer
    from lab.net import LabNet

    cameras = max(1, round((devices - 4) / DEVICES_PER_CAMERA))
    net = LabNet()
    try:
        with InfluxServer() as influx, tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
            work = Path(tmp)
            started = time.monotonic()
            fleet = build_contract_fleet(net, cameras=cameras)
            build_s = time.monotonic() - started
            fleet.write_point_list(work / "points.csv")
            icmp = {"interval_s": interval_s, "count": COUNT, "echo_interval_ms": ECHO_INTERVAL_MS,
                    "timeout_s": TIMEOUT_S, "retries": RETRIES, "packets_per_second": pps}
            config = work / "config.yaml"
            config.write_text(yaml.safe_dump({
                "inventory": {"point_lists": ["points.csv"]},
                # ICMP at scale; the camera and SNMP probes have benchmarks of their own
                "probes": {"icmp": icmp, "rtsp": {"enabled": False}},
                "scheduler": {"max_concurrency": concurrency},
                "state": {"database": "state.db"},
                "influxdb": {"url": influx.url, "database": "bench"},
                "api": {"port": 0},  # not 8080: another bench or daemon may hold it
            }, allow_unicode=True))
            addresses = [str(d.address) for d in fleet.devices if d.address is not None]
            check_routed_into_lab([addresses[0], addresses[-1]])
            profile = None
            if profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                profile = profile_dir / "daemon.txt"
            snapshot = work / "tracemalloc.bin" if traced else None
            daemon = run_daemon(config, warmup, cycles, interval_s, work, influx, "bench", profile, snapshot)
            memory = top_lines(snapshot, len(addresses)) if snapshot is not None and snapshot.exists() else []
            rows = influx.rows("SELECT duration_s, targets, cycles_skipped FROM fleetmon_cycle WHERE probe = 'icmp'", "bench")
            written = influx.rows("SELECT last(written_lines) AS n FROM fleetmon_sink", "bench")
            targets_file = work / "targets.txt"
            targets_file.write_text("\n".join(addresses) + "\n")
            check_routed_into_lab([addresses[0], addresses[-1]])
            # fping's CPU for the same cycle varies by up to 2× from run to run on a shared
            # machine (0.95–2.04 CPU-s at 10,000): the median of several runs is the reference.
            fpings = [
                run_child(
                    ["fping", f"-C{COUNT}", "-q", "-p", str(ECHO_INTERVAL_MS), "-t", f"{TIMEOUT_S * 1000:g}",
                     "-i", f"{1000 / pps:g}", "-f", str(targets_file)],
                    work / "fping.out", work / "fping.err",
                )
                for _ in range(fping_runs)
            ]
            if profile_dir is not None:
                shutil.copy(work / "fleetmon.log", profile_dir / "fleetmon.log")
    finally:
        started = time.monotonic()
        net.close()
        teardown_s = time.monotonic() - started
    durations = [r["duration_s"] for r in rows]
    per_cycle = daemon["cpu_s_per_cycle"]
    fping_cpu = sorted(f[1] for f in fpings)
    fping = sorted(fpings, key=lambda f: f[1])[len(fpings) // 2]  # the median run (the upper one of two)
    spread = f" (of {len(fpings)} runs: {fping_cpu[0]:.2f}–{fping_cpu[-1]:.2f})" if len(fpings) > 1 else ""
    head = (f"Daemon: {len(addresses)} devices probed ({cameras} cameras, {len(fleet.devices)} points), ICMP count "
            f"{COUNT} × {ECHO_INTERVAL_MS} ms, timeout {TIMEOUT_S:g} s, {RETRIES} retry, {pps:g} echoes/s, interval "
            f"{interval_s:g} s, max_concurrency {concurrency}, {len(rows)} cycles ({daemon['steady_s']:.0f} s steady state "
            f"after {warmup})\n"
            f"Lab: built in {build_s:.1f} s, torn down in {teardown_s:.1f} s")
    lines = [
        head,
        f"{'run':<46}{'CPU s/cycle':>12}{'% core':>8}{'peak RSS MB':>13}{'steady RSS MB':>15}{'cycle s (mean/max)':>20}{'skipped':>9}"
        f"{'lines':>10}",
        f"{'fleetmon run (daemon, steady state)':<46}{per_cycle:>12.2f}{100 * per_cycle / interval_s:>8.1f}"
        f"{daemon['peak_rss_mb']:>13.1f}{daemon['steady_rss_mb']:>15.1f}{statistics.mean(durations):>11.2f}/{max(durations):<8.2f}"
        f"{rows[-1]['cycles_skipped']:>9}{(written[0]['n'] if written else 0):>10}",
        f"{f'fping -C{COUNT} -q -p{ECHO_INTERVAL_MS} -t{TIMEOUT_S * 1000:g} -i{1000 / pps:g} (median)':<46}"
        f"{fping[1]:>12.2f}{100 * fping[1] / interval_s:>8.1f}{fping[2]:>13.1f}{'':>15}{fping[0]:>11.2f}",
        f"ratio fleetmon / fping CPU per cycle: {per_cycle / fping[1]:.2f}{spread}"
        + (f"; against each fping run {per_cycle / fping_cpu[-1]:.2f}–{per_cycle / fping_cpu[0]:.2f}" if len(fpings) > 1 else "")
        if fping[1] else "",
    ]
    if daemon["map"]:
        m = daemon["map"]
        lines.append(f"daemon RSS at the end of the steady state: malloc heap {m['heap'] / 1024:.1f} MB, other anonymous "
                     f"(Python's arenas, large blocks) {m['anon'] / 1024:.1f} MB, libraries and files "
                     f"{m['libs'] / 1024:.1f} MB, stack {m['stack'] / 1024:.1f} MB; {m.get('threads', 0)} threads")
    if memory:
        lines += ["", *memory]
    if profile_dir is not None and (profile_dir / "daemon.txt").exists():
        lines += ["", f"py-spy over the steady state ({profile_dir / 'daemon.txt'}): own % / with callees %"]
        lines += [f"  {own:5.1f} {total:6.1f}  {name}" for name, own, total in top_functions(profile_dir / "daemon.txt")]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="lab fleet size, devices (≥ 50)")
    parser.add_argument("--warmup", type=int, default=3, help="cycles before the steady state")
    parser.add_argument("--cycles", type=int, default=3, help="steady-state cycles measured")
    parser.add_argument("--interval", type=float, default=30.0, help="probe interval, s")
    parser.add_argument("--pps", type=float, help="echoes/s, all devices together (default: fit half the interval)")
    parser.add_argument("--concurrency", type=int, default=5000,
                        help="scheduler.max_concurrency (default: the daemon's own, 5,000): more probes in flight "
                             "queue more echoes behind the pacing, and a probe still queued when its budget ends "
                             "is a caller timeout (a false down); measured at 100,000 with 20,000")
    parser.add_argument("--profile", type=Path, help="directory for a py-spy profile of the steady state")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the daemon under tracemalloc (slower, more RSS) and list the source lines "
                             "holding most memory at the end of the steady state")
    parser.add_argument("--fping-runs", type=int, default=3,
                        help="fping cycles run after the daemon (1–9); the median is the reference")
    args = parser.parse_args(argv)
    if args.devices < 50 or args.cycles < 1 or args.warmup < 1 or args.interval < 1 or (args.pps or 1) < 1 \
            or not 1 <= args.concurrency <= 100_000 or not 1 <= args.fping_runs <= 9:
        parser.error("need --devices ≥ 50, --warmup ≥ 1, --cycles ≥ 1, --interval ≥ 1, --pps ≥ 1, --concurrency 1–100000, "
                     "--fping-runs 1–9")
    if os.geteuid() != 0:
        print("bench.daemon needs root (lab namespaces, raw sockets)", file=sys.stderr)
        return 2
    pps = args.pps or default_pps(args.devices, args.interval)
    print(bench(args.devices, args.warmup, args.cycles, args.interval, pps, args.concurrency, args.profile,
                args.tracemalloc, args.fping_runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
