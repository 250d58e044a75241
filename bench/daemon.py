"""Daemon benchmark: `fleetmon run` over a 10,000-device lab fleet beside fping doing one
cycle's worth of the same echoes.

`python -m bench.daemon [--cameras 9000 --cycles 4 --interval 20]` (root).

The lab fleet is the contract shape (lab/fleet.py) scaled up: ~9,000 cameras behind their
switches and links, with UPS units, so ~10,000 devices, a few sites slow, lossy or dark. The
real daemon (a child process, real InfluxDB) runs `cycles` cycles of its ICMP probe (count 3,
200 ms apart, 1 s timeout, one retry, 5,000 echoes/s) and is stopped with SIGTERM. Reported:
its peak RSS (VmHWM), CPU seconds per cycle in steady state (after the first cycle), the cycle
durations and skipped cycles it wrote to InfluxDB itself (fleetmon_cycle), and the lines it
wrote. Beside it, `fping -C3 -q -p 200 -t 1000` at the same pacing over the same addresses:
one cycle's CPU, wall time and RSS. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench._common import check_routed_into_lab, run_child, vm_hwm_kb

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_daemon(config: Path, cycles: int, interval_s: float, work: Path) -> dict[str, float]:
    fleetmon = Path(sys.executable).with_name("fleetmon")
    with (work / "fleetmon.log").open("wb") as log:
        proc = subprocess.Popen([str(fleetmon), "run", "--config", str(config)], stdout=log, stderr=log)
    started = time.monotonic()
    warm_at, end_at = started + 1.5 * interval_s, started + (cycles + 0.5) * interval_s
    peak_kb, warm_cpu = 0, None
    while time.monotonic() < end_at and proc.poll() is None:
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
        if warm_cpu is None and time.monotonic() >= warm_at:
            warm_cpu, warm_t = cpu_s(proc.pid), time.monotonic()
        time.sleep(0.1)
    end_cpu, end_t = cpu_s(proc.pid), time.monotonic()
    peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    if code != 0 or warm_cpu is None:
        raise SystemExit(f"fleetmon exited with {code}; see {work / 'fleetmon.log'}")
    return {
        "peak_rss_mb": peak_kb / 1024,
        "cpu_s_per_cycle": (end_cpu - warm_cpu) / (end_t - warm_t) * interval_s,
    }


def bench(cameras: int, cycles: int, interval_s: float) -> str:
    from lab.fleet import build_contract_fleet
    from lab.influxdb import InfluxServer
    from lab.net import LabNet

    with LabNet() as net, InfluxServer() as influx, tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        work = Path(tmp)
        fleet = build_contract_fleet(net, cameras=cameras)
        fleet.write_point_list(work / "points.csv")
        icmp = {"interval_s": interval_s, "count": 3, "echo_interval_ms": 200, "timeout_s": 1.0, "retries": 1,
                "packets_per_second": 5000}
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump({
            "inventory": {"point_lists": ["points.csv"]},
            # ICMP at scale; the camera and SNMP probes have benchmarks of their own
            "probes": {"icmp": icmp, "rtsp": {"enabled": False}},
            "state": {"database": "state.db"},
            "influxdb": {"url": influx.url, "database": "bench"},
        }, allow_unicode=True))
        addresses = [str(d.address) for d in fleet.devices if d.address is not None]
        check_routed_into_lab([addresses[0], addresses[-1]])
        daemon = run_daemon(config, cycles, interval_s, work)
        rows = influx.rows("SELECT duration_s, targets, cycles_skipped FROM fleetmon_cycle", "bench")
        written = influx.rows("SELECT last(written_lines) AS n FROM fleetmon_sink", "bench")
        targets_file = work / "targets.txt"
        targets_file.write_text("\n".join(addresses) + "\n")
        check_routed_into_lab([addresses[0], addresses[-1]])
        fping = run_child(
            ["fping", "-C3", "-q", "-p", "200", "-t", "1000", "-i", "0.2", "-f", str(targets_file)],
            work / "fping.out", work / "fping.err",
        )
    durations = [r["duration_s"] for r in rows]
    lines = [
        f"Daemon: {len(addresses)} devices probed ({cameras} cameras), ICMP count 3 × 200 ms, timeout 1 s, "
        f"1 retry, 5,000 echoes/s, interval {interval_s:g} s, {len(rows)} cycles",
        f"{'run':<44}{'CPU s/cycle':>12}{'peak RSS MB':>13}{'cycle s (mean/max)':>20}{'skipped':>9}{'lines':>9}",
        f"{'fleetmon run (daemon, steady state)':<44}{daemon['cpu_s_per_cycle']:>12.2f}{daemon['peak_rss_mb']:>13.1f}"
        f"{statistics.mean(durations):>11.2f}/{max(durations):<8.2f}{rows[-1]['cycles_skipped']:>9}"
        f"{(written[0]['n'] if written else 0):>9}",
        f"{'fping -C3 -q -p200 -t1000 -i0.2 (one cycle)':<44}{fping[1]:>12.2f}{fping[2]:>13.1f}{fping[0]:>11.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=9000, help="cameras in the lab fleet (~1.1 devices each)")
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--interval", type=float, default=20.0, help="probe interval, s")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.daemon needs root (lab namespaces, raw sockets)", file=sys.stderr)
        return 2
    print(bench(args.cameras, args.cycles, args.interval), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
