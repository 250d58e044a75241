"""HTTP(S) check benchmark: fleetmon's HttpProbe beside curl on the same endpoints, on loopback.

`python -m bench.http_check [--endpoints 1000 --concurrency 200 --curl-parallel 50]` (no root).

A child process serves `endpoints` platform pages (aiohttp; http on one port, https with a
certificate of a lab CA on another; a page of 2 KB naming 视频监控平台 at /p/N). Then, per
scheme:

1. fleetmon: HttpProbe over every endpoint (GET, status 200 expected, body searched for the
   platform's name, TLS verified against the lab CA), at most `concurrency` at once, a fresh
   connection each check as in the daemon, in this process: CPU = this process's user + system
   time over the pass;
2. curl 7.88 (`--parallel --parallel-max N`, `Connection: close` so every URL is a new
   connection too, `--cacert` for https; status only, no body check): CPU = the child's
   (RUSAGE_CHILDREN).

Columns: checks, concurrency, wall s, checks/s, client CPU s per 1,000 checks, the server's CPU
s per 1,000 checks (/proc/PID/stat), failures. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import REPO
from monitor.core.model import Device, Kind
from probes.http import HttpConfig, HttpProbe

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = ("<html><head><title>视频监控平台</title></head><body>" + "登录 " * 600 + "</body></html>").encode()


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
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


async def serve(directory: Path) -> None:
    """The child: plain and TLS sites on 127.0.0.1, then READY <http port> <https port>."""
    from aiohttp import web

    from lab.certs import make_ca, make_cert, server_context

    ca = make_ca("bench CA")
    ca.write(directory / "ca.pem")
    context = server_context(make_cert(["127.0.0.1"], issuer=ca), directory)

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/p/{n}", page)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context, backlog=4096).start()
    ports = [address[1] for address in runner.addresses]
    print("READY", *ports, flush=True)
    await asyncio.Event().wait()


async def fleetmon_pass(urls: list[str], concurrency: int, ca_file: Path) -> tuple[float, float, collections.Counter]:
    """(wall s, CPU s, failures) of the checks alone: the probe's start (a session, the CA
    store) is once per daemon, not per check."""
    probe = HttpProbe(HttpConfig(ca_file=ca_file, overrides=[{"match": {}, "body_contains": "视频监控平台"}]))
    gate = asyncio.Semaphore(concurrency)
    failures: collections.Counter = collections.Counter()
    address = ipaddress.ip_address("127.0.0.1")
    devices = [Device(f"p{i}", f"p{i}", Kind.PLATFORM, address, "b", "b", url=url) for i, url in enumerate(urls)]

    async def one(device: Device) -> None:
        async with gate:
            result = await probe.probe(device)
        if not result.ok:
            failures[result.reason] += 1

    async with probe:
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await asyncio.gather(*(one(d) for d in devices))
        wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, failures


def curl_pass(urls: list[str], parallel: int, ca_file: Path, directory: Path) -> tuple[float, float, collections.Counter]:
    """(wall s, CPU s of the curl process, failures)."""
    config = directory / "curl.cfg"
    config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    cmd = ["curl", "--silent", "--parallel", "--parallel-immediate", "--parallel-max", str(parallel),
           "-H", "Connection: close", "--cacert", str(ca_file), "--max-time", "10",
           "--write-out", "%{http_code}\\n", "--config", str(config)]
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    codes = collections.Counter(done.stdout.split())
    failures = collections.Counter({f"HTTP {c}": n for c, n in codes.items() if c != "200"})
    missing = len(urls) - sum(codes.values())
    if missing:
        failures[f"no answer (exit {done.returncode})"] += missing
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, failures


def measure(label: str, checks: int, concurrency: int, server: int, run) -> Pass:
    server_before = process_cpu_s(server)
    wall, cpu, failures = run()
    return Pass(label, checks, concurrency, wall, cpu, process_cpu_s(server) - server_before, failures)


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
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200, help="fleetmon checks at once")
    parser.add_argument("--curl-parallel", type=int, default=200)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child's own mode
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        directory = Path(tmp)
        server = subprocess.Popen([sys.executable, "-m", "bench.http_check", "--serve", str(directory)], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        try:
            ready = (server.stdout.readline() if server.stdout else "").split()
            if not ready or ready[0] != "READY":
                print("the server did not start", file=sys.stderr)
                return 1
            http_port, https_port = int(ready[1]), int(ready[2])
            ca_file = directory / "ca.pem"
            passes = []
            for scheme, port in (("http", http_port), ("https", https_port)):
                urls = [f"{scheme}://127.0.0.1:{port}/p/{i}" for i in range(args.endpoints)]
                passes.append(measure(f"fleetmon HttpProbe ({scheme}, body checked)", len(urls), args.concurrency,
                                      server.pid, lambda: asyncio.run(fleetmon_pass(urls, args.concurrency, ca_file))))
                passes.append(measure(f"curl --parallel ({scheme}, status only)", len(urls), args.curl_parallel,
                                      server.pid, lambda: curl_pass(urls, args.curl_parallel, ca_file, directory)))
        finally:
            server.terminate()
            server.wait(10)
    print(f"HTTP(S) checks of {args.endpoints} endpoints on loopback (one aiohttp server process), "
          "a new connection per check")
    print_table(passes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
