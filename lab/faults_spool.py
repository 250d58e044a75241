"""Fault injection for the metrics spool (issue 13, "nothing lost"): a metrics writer in a child
process, InfluxDB stopped under it, the writer restarted (SIGTERM) and killed (SIGKILL) while
InfluxDB is down, then InfluxDB back: which points arrived, how often, with which timestamps.

Shared by tests/test_fault_spool.py and bench/faults/spool.py.

The child (`python -m lab.faults_spool …`) is the daemon's metrics path without the probes: an
InfluxSink with a spool directory, fed like MetricsWriter feeds it, one "cycle" of points every
`cycle_s` seconds (the compressed time of the scenario). Point number i is an `icmp` point of
device `cam-<i mod 100>` with field `sent` = i at time T0 + i µs, so that what InfluxDB holds
tells which points arrived, how many times, and whether their timestamps are the original ones.
After each cycle the child prints `wrote N` (points 0 … N−1 of its range are in the sink): what
the parent counts as confirmed. The daemon itself is not used here: its points depend on a probed
fleet (namespaces, root) and could not be enumerated exactly; the sink and its spool are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.influxdb import InfluxServer

T0 = 1_764_000_000_000_000_000  # 2025-11-24 UTC, ns: every point of a run falls in one shard
STEP_NS = 1000
DEVICES = 100
TOKEN_ENV = "FLEETMON_SPOOL_TOKEN"
_ROOT = Path(__file__).resolve().parents[1]


def point_time(i: int) -> int:
    """The timestamp point number i is written with (ns)."""
    return T0 + i * STEP_NS


@dataclass(frozen=True)
class Target:
    """Where the child writes: `api` v1 (database `db`) or v2 (bucket `db`, org fleetmon, token)."""

    api: str
    url: str
    db: str
    token: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one outage scenario left in InfluxDB.

    confirmed: the point numbers the writers reported handed to the sink; attempted: every number
    a writer may have handed over (a killed writer may have begun a cycle it did not report);
    rows: (sent, time ns) of every `icmp` point InfluxDB holds; replay_s: from InfluxDB answering
    again to the last writer's spool empty.
    """

    confirmed: frozenset[int]
    attempted: frozenset[int]
    rows: tuple[tuple[int, int], ...]
    replay_s: float

    @property
    def present(self) -> list[int]:
        return sorted(sent for sent, _ in self.rows)

    @property
    def lost(self) -> int:
        return len(self.confirmed - set(self.present))

    @property
    def duplicated(self) -> int:
        return len(self.rows) - len(set(self.present))

    @property
    def foreign(self) -> int:
        """Points that were never written, or carry another time than their own."""
        return sum(1 for sent, ts in self.rows if sent not in self.attempted or ts != point_time(sent))


class Writer:
    """One child writer process (see the module docstring)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.written = 0  # the last `wrote N` seen
        self.stats: dict[str, int] = {}

    @classmethod
    async def start(
        cls, target: Target, spool: Path, first: int, count: int, *, per_cycle: int, cycle_s: float,
        drain: bool = False, spool_max_bytes: int = 64 << 20, ram_lines: int = 1000,
    ) -> "Writer":
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        if target.token is not None:
            env[TOKEN_ENV] = target.token
        args = [
            "--api", target.api, "--url", target.url, "--db", target.db, "--spool", str(spool),
            "--first", str(first), "--count", str(count), "--per-cycle", str(per_cycle),
            "--cycle-s", str(cycle_s), "--spool-max-bytes", str(spool_max_bytes), "--ram-lines", str(ram_lines),
        ]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lab.faults_spool", *args, *(["--drain"] if drain else []),
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env,
        )
        return cls(proc)

    async def read_until(self, predicate, timeout_s: float, what: str) -> str:
        """Read the child's lines until one satisfies `predicate`; AssertionError naming `what`
        when it exits or the time runs out first."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while line := (await self.proc.stdout.readline()).decode():
                self._note(line)
                if predicate(line):
                    return line
        raise AssertionError(f"the writer ended (status {await self.proc.wait()}) before {what}")

    def _note(self, line: str) -> None:
        if line.startswith("wrote "):
            self.written = int(line.split()[1])
        elif line.startswith("stats "):
            self.stats = json.loads(line[6:])

    async def until_written(self, n: int, timeout_s: float = 30) -> None:
        await self.read_until(lambda _: self.written >= n, timeout_s, f"{n} points were written")

    async def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (a graceful stop, as systemd does at a restart); the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return await self._finish(timeout_s)

    async def kill9(self) -> int:
        self.proc.kill()
        return await self.proc.wait()

    async def _finish(self, timeout_s: float) -> int:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while line := (await self.proc.stdout.readline()).decode():
                self._note(line)
            return await self.proc.wait()


async def outage_with_restart_and_kill(
    influx: InfluxServer, target: Target, spool: Path, *, cycles: int = 20, per_cycle: int = 500, cycle_s: float = 0.05,
    ram_lines: int = 1000,
) -> Outcome:
    """InfluxDB down for `cycles` cycles of `per_cycle` points; within them a writer stopped
    gracefully after a third, the next killed with SIGKILL after two thirds, the last one left
    running while InfluxDB comes back, until its spool is empty. InfluxDB must be running with
    the target database at the call; it is stopped here and started again. `ram_lines`: the
    writers' max_buffer_lines (small: most lines go through the disk only)."""
    await asyncio.to_thread(influx.stop)
    third = cycles // 3 * per_cycle
    confirmed: set[int] = set()
    attempted: set[int] = set()
    # 1. Written while InfluxDB is down, then a graceful restart.
    first = await Writer.start(target, spool, 0, third, per_cycle=per_cycle, cycle_s=cycle_s, ram_lines=ram_lines)
    await first.until_written(third)
    if await first.terminate() != 0:
        raise AssertionError("the first writer did not stop cleanly")
    confirmed |= set(range(third))
    # 2. The next one replays nothing (InfluxDB still down), writes on, and is killed mid-run.
    second = await Writer.start(target, spool, third, 10 * third, per_cycle=per_cycle, cycle_s=cycle_s, ram_lines=ram_lines)
    await second.until_written(2 * third)
    await second.kill9()
    confirmed |= set(range(third, second.written))
    attempted |= set(range(third, second.written + per_cycle))  # a cycle it may have begun
    # 3. The last one writes the rest; InfluxDB comes back meanwhile; it drains everything.
    start = second.written + per_cycle
    rest = cycles * per_cycle - 2 * third
    last = await Writer.start(target, spool, start, rest, per_cycle=per_cycle, cycle_s=cycle_s, drain=True,
                              ram_lines=ram_lines)
    await last.until_written(start + rest // 2)
    await asyncio.to_thread(influx.start)
    back = time.monotonic()
    line = await last.read_until(lambda line: line.startswith("drained"), 120, "the spool was drained")
    replay_s = time.monotonic() - back
    if line.split()[1] != "True":
        raise AssertionError(f"the last writer did not drain its spool: {line.strip()}")
    confirmed |= set(range(start, start + rest))
    attempted |= confirmed
    await last.terminate()
    rows = influx.rows("SELECT sent FROM icmp", target.db)
    return Outcome(frozenset(confirmed), frozenset(attempted), tuple((r["sent"], r["time"]) for r in rows), replay_s)


# -- the child ----------------------------------------------------------------------------------


async def _child(args: argparse.Namespace) -> None:
    # Imported here: the parent side needs none of the daemon's modules.
    from monitor.metrics.config import InfluxDBConfig, RetryConfig
    from monitor.metrics.sink import InfluxSink

    v2 = {"org": "fleetmon", "bucket": args.db, "token_env": TOKEN_ENV} if args.api == "v2" else {}
    cfg = InfluxDBConfig(
        api=args.api, url=args.url, database=args.db, flush_interval_s=0.05, timeout_s=0.5,
        max_buffer_lines=args.ram_lines, spool_max_bytes=args.spool_max_bytes, retry=RetryConfig(initial_s=0.05, max_s=0.2), **v2,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with InfluxSink(cfg, Path(args.spool)) as sink:
        i, end = args.first, args.first + args.count
        while i < end and not stop.is_set():
            for _ in range(min(args.per_cycle, end - i)):
                tags = {"device_id": f"cam-{i % DEVICES:03d}", "kind": "camera", "site": "S1", "region": "城关镇"}
                sink.write("icmp", tags, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, point_time(i))
                i += 1
            print(f"wrote {i}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.cycle_s)
        if args.drain:
            print(f"drained {await sink.flush(120)}", flush=True)
        await stop.wait()
    s = sink.stats
    print("stats " + json.dumps({"written": s.written_lines, "dropped": s.dropped_lines, "buffered": s.buffered_lines}),
          flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.faults_spool", description="a metrics writer with a spool")
    parser.add_argument("--api", choices=("v1", "v2"), default="v1")
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--per-cycle", type=int, default=500)
    parser.add_argument("--cycle-s", type=float, default=0.05)
    parser.add_argument("--spool-max-bytes", type=int, default=64 << 20)
    parser.add_argument("--ram-lines", type=int, default=1000, help="max_buffer_lines")
    parser.add_argument("--drain", action="store_true", help="after writing, wait until the spool is empty")
    asyncio.run(_child(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
