"""Daemon memory benchmark: where the daemon's bytes are, per device, at the loading peak and
in steady state, without a lab or InfluxDB.

`python -m bench daemon_memory [--devices 10000] [--trace] [--top 20]`

The point list is the lab's contract shape (lab/fleet.py) scaled to `devices`, its addresses
handed out without namespaces (`_PlanNet`: nothing is probed). In this process, in phases:
the imports of `fleetmon run` and its malloc settings (monitor/app/malloc.py); the config and
point list loaded as the daemon loads them (monitor.app.supervisor.load); the daemon's
components started as `fleetmon run` starts them
(Daemon._start: state DB, alerting, work orders, probes, pipeline, reports, API) with the
schedulers idle and InfluxDB disabled (the sink's buffer is the metrics layer's and is
measured by bench/daemon.py); then two cycles of ICMP results made up for every probed
device (the fields a reply gives: monitor/metrics/schema.py `icmp`) fed through
Pipeline.on_result and on_cycle, as the scheduler feeds them.

Printed per phase: the process's RSS (VmRSS) and its high-water mark (VmHWM), MB, and the
growth per device in bytes. With --trace, tracemalloc follows the allocations (RSS then
includes its own bookkeeping: read the bytes, not the RSS): per phase the bytes still held
and the phase's peak, and the `top` source lines holding most, in bytes per device.
Measured figures: docs/PERFORMANCE.md "## Memory".
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path

import yaml

from bench._common import vm_hwm_kb, vm_rss_kb

DEVICES_PER_CAMERA = 1.125  # as bench/daemon.py


class _PlanNet:
    """Stands in for lab.net.LabNet when only the point list is wanted: consecutive addresses
    from 10.0.0.0/8 per site, nothing built, nothing set down."""

    def __init__(self) -> None:
        self._next = int(ipaddress.IPv4Address("10.0.0.1"))

    def add_sites(self, sites, *, ipv6: bool = False):  # noqa: ANN001, ANN201 - LabNet's signature
        out = []
        for _, count, _ in sites:
            out.append([ipaddress.IPv4Address(self._next + 1 + i) for i in range(count)])
            self._next += count + 1
        return out

    def set_down(self, addresses) -> None:  # noqa: ANN001
        for _ in addresses:
            pass


def write_config(work: Path, devices: int) -> Path:
    """A point list of ~`devices` devices (lab/fleet.py's contract shape) and a config like
    bench/daemon.py's, InfluxDB disabled; returns the config's path."""
    from lab.fleet import build_contract_fleet

    cameras = max(1, round((devices - 4) / DEVICES_PER_CAMERA))
    fleet = build_contract_fleet(_PlanNet(), cameras=cameras)  # type: ignore[arg-type]
    fleet.write_point_list(work / "points.csv")
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": 30, "count": 3, "echo_interval_ms": 200, "timeout_s": 1.0, "retries": 1,
                            "packets_per_second": 20000},
                   "rtsp": {"enabled": False}},
        "state": {"database": "state.db"},
        "influxdb": {"enabled": False},
        "api": {"listen": "127.0.0.1", "port": 0},
    }, allow_unicode=True))
    return config


class _Phases:
    """Prints each phase's RSS and, when tracing, the bytes tracemalloc saw and the top lines."""

    def __init__(self, devices: int, trace: bool, top: int) -> None:
        self.devices, self.trace, self.top = devices, trace, top
        self.rows: list[str] = []
        self._rss = vm_rss_kb_self()
        self._before: tracemalloc.Snapshot | None = None
        self._traced = 0
        if trace:
            tracemalloc.start(1)
            self._before = tracemalloc.take_snapshot()

    def mark(self, name: str, devices: int) -> None:
        gc.collect()
        rss = vm_rss_kb_self()
        line = (f"{name:<44}{rss / 1024:>9.1f}{vm_hwm_kb_self() / 1024:>9.1f}"
                f"{(rss - self._rss) * 1024 / max(devices, 1):>10.0f}")
        self._rss = rss
        if self.trace:
            current, peak = tracemalloc.get_traced_memory()
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            line += f"{(current - self._traced) / max(devices, 1):>10.0f}{peak / 2**20:>10.1f}"
            self.rows.append(line)
            assert self._before is not None
            stats = snapshot.compare_to(self._before, "lineno")
            for stat in stats[: self.top]:
                frame = stat.traceback[0]
                where = _short(frame.filename)
                self.rows.append(f"    {stat.size_diff / max(devices, 1):>8.0f} B/device {stat.count_diff:>9} blocks"
                                 f"  {where}:{frame.lineno}")
            self._before, self._traced = snapshot, current
            tracemalloc.reset_peak()
        else:
            self.rows.append(line)


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("monitor", "probes", "rules", "lab", "bench"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor):])
    return "/".join(parts[-2:])


def vm_rss_kb_self() -> int:
    return vm_rss_kb(_pid())


def vm_hwm_kb_self() -> int:
    return vm_hwm_kb(_pid())


def _pid() -> int:
    import os

    return os.getpid()


async def _idle(self) -> None:  # noqa: ANN001 - Scheduler.run's stand-in: no probing here
    await asyncio.Event().wait()


def _result(device_id: str, rng: random.Random, ts_ns: int):  # noqa: ANN202
    """An ICMP result as probes/icmp.py makes it for a device that answered all three echoes."""
    from probes import ProbeResult

    rtts = [round(rng.uniform(0.2, 3.0), 3) for _ in range(3)]
    fields = {"up": True, "sent": 3, "received": 3, "loss_pct": 0.0, "payload_bytes": 56,
              "rtt_min_ms": min(rtts), "rtt_avg_ms": round(sum(rtts) / 3, 3), "rtt_max_ms": max(rtts),
              "jitter_ms": round((abs(rtts[1] - rtts[0]) + abs(rtts[2] - rtts[1])) / 2, 3)}
    return ProbeResult(device_id, "icmp", ts_ns, True, None, fields)


async def _run(config: Path, devices_asked: int, phases: _Phases) -> int:
    from monitor.app import supervisor
    from monitor.app.daemon import Daemon
    from monitor.app.scheduler import CycleReport, Scheduler

    cfg, inventory = supervisor.load(config)
    n = len(inventory.devices)
    phases.mark(f"point list loaded ({n} devices)", n)
    Scheduler.run = _idle  # type: ignore[method-assign]
    daemon = Daemon(cfg, inventory)
    rng = random.Random(0)
    async with AsyncExitStack() as stack:
        await daemon._start(stack)
        phases.mark("daemon started (idle schedulers)", n)
        pipeline = daemon.pipeline
        assert pipeline is not None
        polled = pipeline._running["icmp"].devices
        for cycle in range(2):
            ts_ns = time.time_ns()
            for device in polled:
                pipeline.on_result(_result(device.id, rng, ts_ns))
            pipeline.on_cycle(CycleReport("icmp", cycle + 1, ts_ns, 17.0, len(polled), len(polled), 0, 0, 0,
                                          time.monotonic_ns()))
            await asyncio.sleep(1.0)  # the recorder stores the cycle's transitions, as between real cycles
            phases.mark(f"cycle {cycle + 1}: {len(polled)} results, snapshot", n)
    return n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="point list size, devices (≥ 50)")
    parser.add_argument("--trace", action="store_true", help="follow allocations with tracemalloc (slower)")
    parser.add_argument("--top", type=int, default=12, help="source lines listed per phase with --trace")
    args = parser.parse_args(argv)
    if args.devices < 50:
        parser.error("need --devices ≥ 50")
    # the imports of `fleetmon run` first: the floor every fleet size pays
    import monitor.app.daemon  # noqa: F401
    import monitor.app.supervisor  # noqa: F401
    from monitor.app import malloc

    malloc.tune()  # as `fleetmon run` does before reading the point list

    floor = vm_rss_kb_self()
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        # written by a child: building the lab fleet here would raise this process's VmHWM
        config = Path(tmp) / "config.yaml"
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from bench.daemon_memory import "
                        "write_config; write_config(Path(sys.argv[1]), int(sys.argv[2]))", tmp, str(args.devices)],
                       check=True)
        phases = _Phases(args.devices, args.trace, args.top)
        start_rss = vm_rss_kb_self()
        n = asyncio.run(_run(config, args.devices, phases))
    print(f"Daemon memory: {n} devices (lab contract shape), ICMP only, InfluxDB disabled"
          f"{', tracemalloc on' if args.trace else ''}")
    print(f"imports of fleetmon run: RSS {floor / 1024:.1f} MB; with the point list written: {start_rss / 1024:.1f} MB")
    head = f"{'phase':<44}{'RSS MB':>9}{'HWM MB':>9}{'ΔRSS B/dev':>10}"
    if args.trace:
        head += f"{'held B/dev':>10}{'peak MB':>10}"
    print(head)
    print("\n".join(phases.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
