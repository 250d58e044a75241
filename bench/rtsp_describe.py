"""RTSP DESCRIBE benchmark: fleetmon's RtspProbe beside ffprobe on the same lab cameras.

`python -m bench.rtsp_describe [--cameras 2000 --concurrency 200 --ffprobe-parallel 8
--ffprobe-sample 200]` (root).

A lab (lab/net.py) site of `cameras` addresses, served by ONE GStreamer RTSP server
(lab/rtsp.py) bound to 0.0.0.0:554 in the site's namespace, with its shared, held media; so
every address is a camera with the Hikvision main-stream path (H.264 320x240, 5 fps). Then, in
one run:

1. fleetmon: RtspProbe (OPTIONS + DESCRIBE, SDP parsed) over every address, at most
   `concurrency` at once, in this process: CPU = this process's user + system time over the pass;
2. `ffprobe -v error -rtsp_transport tcp -show_entries stream=codec_name,width,height` per
   address, `ffprobe-parallel` at once: CPU = the children's (RUSAGE_CHILDREN). ffprobe does
   more than DESCRIBE (SETUP, PLAY, reads packets until it knows the stream), which is the price of
   the usual reference tool; with `--ffprobe-sample N` only the first N addresses (table says so).

Columns: checks, concurrency, wall s, checks/s, client CPU s per 1,000 checks, the GStreamer
server's CPU s per 1,000 checks (/proc/PID/stat), failures (and the first failure reason).
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import os
import resource
import sys
import time
from dataclasses import dataclass

from bench._common import check_routed_into_lab
from lab.net import LabNet
from lab.rtsp import MAIN_STREAM, RtspServer
from monitor.core.model import Device, Kind
from probes.rtsp import RtspConfig, RtspProbe

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Pass:
    label: str
    checks: int
    concurrency: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float
    failures: collections.Counter


def process_cpu_s(pid: int) -> float:
    """utime + stime of a running process (and its reaped children), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


async def fleetmon_pass(addresses: list[str], concurrency: int, timeout_s: float) -> tuple[float, collections.Counter]:
    probe = RtspProbe(RtspConfig(timeout_s=timeout_s))
    gate = asyncio.Semaphore(concurrency)
    failures: collections.Counter = collections.Counter()

    async def one(i: int, address: str) -> None:
        device = Device(f"cam-{i}", f"cam-{i}", Kind.CAMERA, ipaddress.ip_address(address), "b", "b")
        async with gate:
            result = await probe.probe(device)
        if not result.ok:
            failures[result.reason] += 1

    started = time.monotonic()
    async with probe:
        await asyncio.gather(*(one(i, a) for i, a in enumerate(addresses)))
    return time.monotonic() - started, failures


async def ffprobe_pass(addresses: list[str], parallel: int, timeout_s: float) -> tuple[float, collections.Counter]:
    gate = asyncio.Semaphore(parallel)
    failures: collections.Counter = collections.Counter()

    async def one(address: str) -> None:
        cmd = ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", str(int(timeout_s * 1e6)),
               "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
               f"rtsp://{address}:554{MAIN_STREAM}"]
        async with gate:
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
        if proc.returncode != 0 or b"h264" not in out:
            failures[(err.decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"])[-1][:80]] += 1

    started = time.monotonic()
    await asyncio.gather(*(one(a) for a in addresses))
    return time.monotonic() - started, failures


def print_table(passes: list[Pass]) -> None:
    header = ("tool", "checks", "conc.", "wall s", "checks/s", "CPU s/1000", "server CPU s/1000", "failures")
    rows = [header]
    for p in passes:
        first = f" ({p.failures.most_common(1)[0][0]})" if p.failures else ""
        rows.append((p.label, str(p.checks), str(p.concurrency), f"{p.wall_s:.2f}", f"{p.checks / p.wall_s:.0f}",
                     f"{p.cpu_s * 1000 / p.checks:.2f}", f"{p.server_cpu_s * 1000 / p.checks:.2f}",
                     f"{sum(p.failures.values())}{first}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200, help="fleetmon probes at once")
    parser.add_argument("--ffprobe-parallel", type=int, default=8)
    parser.add_argument("--ffprobe-sample", type=int, default=200, help="ffprobe only the first N (0 = all)")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.rtsp_describe needs root (lab network namespaces)", file=sys.stderr)
        return 2
    with LabNet() as net:
        addresses = [str(a) for a in net.add_site("rtsp", args.cameras)]
        check_routed_into_lab([addresses[0], addresses[len(addresses) // 2], addresses[-1]])
        with RtspServer(netns=net.namespace_of(addresses[0]), bind="0.0.0.0", port=554) as server:
            pid = server._proc.pid  # `ip netns exec` execs the server: same process
            passes = []
            before, server_before = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(pid)
            wall, failures = asyncio.run(fleetmon_pass(addresses, args.concurrency, args.timeout))
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            passes.append(Pass("fleetmon RtspProbe (OPTIONS+DESCRIBE)", len(addresses), args.concurrency, wall, cpu,
                               process_cpu_s(pid) - server_before, failures))
            sample = addresses[: args.ffprobe_sample] if args.ffprobe_sample else addresses
            before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), process_cpu_s(pid)
            wall, failures = asyncio.run(ffprobe_pass(sample, args.ffprobe_parallel, args.timeout))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            label = "ffprobe -rtsp_transport tcp" + (f" (sample {len(sample)})" if len(sample) < len(addresses) else "")
            passes.append(Pass(label, len(sample), args.ffprobe_parallel, wall, cpu,
                               process_cpu_s(pid) - server_before, failures))
    print(f"RTSP DESCRIBE, {args.cameras} lab cameras (one GStreamer server in their namespace), "
          f"timeout {args.timeout:g} s")
    print_table(passes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
