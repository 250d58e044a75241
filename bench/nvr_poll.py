"""NVR poll benchmark: what watching the recording of a contract's channels costs fleetmon.

`python -m bench.nvr_poll [--nvrs 30 --channels 64]` (no root; loopback).

A child process runs `nvrs` ISAPI simulators (lab/isapi.py) of `channels` recording channels
each (30 × 64 = 1,920 channels: the 1,850 of a 雪亮工程 contract). This process polls every
NVR with NvrProbe twice, all NVRs at once: the first poll searches each channel's recent and
oldest recordings, the second only the recent ones (the oldest is cached for
retention_refresh_s). CPU = this process's user + system time over each pass (the simulators'
is apart, in the child). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import os
import resource
import subprocess
import sys
import time

from bench._common import REPO
from monitor.core.model import Device, Kind
from probes.nvr import NvrConfig, NvrProbe


async def serve(nvrs: int, channels: int) -> None:
    """The child: the simulators, then READY <port> …"""
    from lab.isapi import Channel, Disk, IsapiSimulator, Nvr

    sims = []
    for _ in range(nvrs):
        nvr = Nvr()
        now = nvr.local_now()
        nvr.disks = [Disk(n) for n in range(1, 9)]
        nvr.channels = [Channel(c, since=now - dt.timedelta(days=31)) for c in range(1, channels + 1)]
        sims.append(await IsapiSimulator(nvr).__aenter__())
    print("READY", *(s.port for s in sims), flush=True)
    await asyncio.Event().wait()


async def polls(ports: list[int]) -> list[tuple[float, float, int, int]]:
    """(wall s, CPU s, channels seen, failures) of two passes over every NVR."""
    os.environ["BENCH_NVR_PASSWORD"] = "Hik12345"
    address = ipaddress.ip_address("127.0.0.1")
    out = []
    probes = [NvrProbe(NvrConfig(port=p, username="admin", password_env="BENCH_NVR_PASSWORD")) for p in ports]
    for probe in probes:
        await probe.__aenter__()
    try:
        devices = [Device(f"nvr{i}", f"nvr{i}", Kind.NVR, address, "b", "b") for i in range(len(ports))]
        for _ in range(2):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            results = await asyncio.gather(*(p.probe(d) for p, d in zip(probes, devices)))
            wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            seen = sum(int(r.fields.get("channels", 0)) for r in results)
            out.append((wall, cpu, seen, sum(not r.ok or r.reason is not None for r in results)))
    finally:
        for probe in probes:
            await probe.__aexit__(None, None, None)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvrs", type=int, default=30)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child's own mode
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.nvrs, args.channels))
        return 0
    child = subprocess.Popen([sys.executable, "-m", "bench.nvr_poll", "--serve", "--nvrs", str(args.nvrs),
                              "--channels", str(args.channels)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        ready = (child.stdout.readline() if child.stdout else "").split()
        if not ready or ready[0] != "READY":
            print("the simulators did not start", file=sys.stderr)
            return 1
        passes = asyncio.run(polls([int(p) for p in ready[1:]]))
    finally:
        child.terminate()
        child.wait(10)
    print(f"NVR polls over ISAPI: {args.nvrs} simulated NVRs × {args.channels} channels, all NVRs at once")
    rows = [("pass", "channels", "wall s", "CPU s", "CPU ms/channel", "failures")]
    for label, (wall, cpu, seen, failed) in zip(("first (recent + oldest)", "next (recent only)"), passes):
        rows.append((label, str(seen), f"{wall:.2f}", f"{cpu:.2f}", f"{cpu * 1000 / max(seen, 1):.2f}", str(failed)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
