"""Probe agents over MQTT, measured: `python -m bench agents [--devices N] [--interval S]
[--steady-s S] [--outage-s S] [--cut-s S] [--skip-cut]`.

Real peers: mosquitto (persistence on), influxd, `fleetmon run` (the central, every device owned
by the agent) and `fleetmon agent` as child processes; the agent's devices are loopback
addresses answering real ICMP.

1. Throughput: a steady phase (N devices every S seconds), then the broker stopped for
   --outage-s while the agent goes on probing into its spool, then started: the agent replays
   its backlog. Results/s and CPU-s (user+sys, /proc/PID/stat) of the agent and of the central,
   per phase; CPU per 1,000 results.
2. Cut-off (root): the agent runs in a network namespace of its own with its devices; the veth
   link to it goes down for --cut-s (default 300 s: the issue's 5 minutes) and comes back.
   Results lost (probed by the agent, not in InfluxDB), duplicated (taken twice by the central),
   false downs (transitions to down/unreachable), the blind period (from the state DB) and its
   detection delay, the faults raised.

"Lost" compares the agent's own count of results probed (its stop line) with the distinct
results InfluxDB holds for its devices; "duplicated" the central's count of results taken with
that distinct count. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench._common import REPO
from lab.agents import AGENT, blind_periods_of, write_lab
from lab.influxdb import InfluxServer
from lab.mosquitto import MosquittoServer

FLEETMON = str(Path(sys.executable).with_name("fleetmon"))
DB = "fleetmon_agents"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """user + sys CPU seconds of a process so far (0 once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


class Status:
    """The agent's latest status (spooled count), read from the broker by a client of the bench."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.spooled: int | None = None
        self.at = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"bench-{secrets.token_hex(4)}") as c:
                    await c.subscribe(f"fleetmon/v1/{AGENT}/status", qos=1)
                    async for m in c.messages:
                        doc = json.loads(bytes(m.payload))
                        if doc.get("state") == "online" and not m.retain:
                            self.spooled, self.at = doc.get("spooled"), time.monotonic()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def reconnected(self, since: float, timeout_s: float) -> tuple[float, int] | None:
        """The first status after `since` (the agent connected again): (moment, spooled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.at > since and self.spooled is not None:
                return self.at, self.spooled
            await asyncio.sleep(0.02)
        return None

    async def drained(self, since: float, timeout_s: float) -> float | None:
        """The moment (monotonic) of the first status after `since` with at most one batch spooled."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.at > since and self.spooled is not None and self.spooled <= 500:
                return self.at
            await asyncio.sleep(0.1)
        return None


@dataclass
class Phase:
    name: str
    seconds: float
    results: int
    agent_cpu: float
    central_cpu: float

    def row(self) -> str:
        rate = self.results / self.seconds if self.seconds else 0.0
        per = (lambda cpu: f"{1000 * cpu / self.results:8.3f}") if self.results else (lambda cpu: "       -")
        return (f"{self.name:<28} {self.seconds:8.1f} {self.results:9d} {rate:10.0f} {self.agent_cpu:9.2f} "
                f"{self.central_cpu:10.2f} {per(self.agent_cpu)} {per(self.central_cpu)}")


class Run:
    """The peers of one scenario; `netns`: the agent runs inside it (prefix for its command)."""

    def __init__(self, work: Path, devices: int, interval_s: float, *, host: str = "127.0.0.1",
                 agent_prefix: tuple[str, ...] = ()) -> None:
        self.work = work
        self.influx = InfluxServer().start()
        self.influx.create_database(DB)
        self.broker = MosquittoServer(persistence=True, host=host).start()
        self.config, self.agent_config = write_lab(
            work, self.broker.host, self.broker.port, local=0, remote=devices, interval_s=interval_s,
            silent_after_s=15.0, heartbeat_s=0.5,
            central_extra={"influxdb": {"url": self.influx.url, "database": DB, "flush_interval_s": 1.0},
                           "log": {"level": "info"}},
        )
        doc = yaml.safe_load(self.agent_config.read_text(encoding="utf-8"))
        doc["broker"]["timeout_s"] = 5
        self.agent_config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.central = subprocess.Popen([FLEETMON, "run", "-c", str(self.config)], env=env, cwd=work,
                                        stdout=subprocess.DEVNULL, stderr=(work / "central.log").open("wb"))
        # The central's session must exist on the broker before the agent publishes: on the very
        # first start there is nobody to queue for yet (later, the session outlives restarts).
        deadline = time.monotonic() + 60
        while b"probe agents: subscribed" not in (work / "central.log").read_bytes():
            if time.monotonic() > deadline or self.central.poll() is not None:
                raise SystemExit(f"the central did not subscribe:\n{(work / 'central.log').read_text()[-2000:]}")
            time.sleep(0.1)
        self.agent = subprocess.Popen([*agent_prefix, FLEETMON, "agent", "-c", str(self.agent_config)], env=env,
                                      cwd=work, stdout=subprocess.DEVNULL, stderr=(work / "agent.log").open("wb"))
        self.devices = devices

    def cpu(self) -> tuple[float, float]:
        return cpu_s(self.agent.pid), cpu_s(self.central.pid)

    def stop(self) -> dict[str, int]:
        """Stop the agent, then the central (its InfluxDB writes flushed); their counts."""
        counts: dict[str, int] = {}
        for proc in (self.agent, self.central):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc is self.agent:
                time.sleep(3)  # the last batches through the broker to the central
        agent_log = (self.work / "agent.log").read_text(errors="replace")
        central_log = (self.work / "central.log").read_text(errors="replace")
        if m := re.search(r"stopped: (\d+) results probed, (\d+) published, (\d+) waiting", agent_log):
            counts.update(probed=int(m[1]), published=int(m[2]), waiting=int(m[3]))
        if m := re.search(r"(\d+) results taken, (\d+) repeats dropped", central_log):
            counts.update(taken=int(m[1]), repeats=int(m[2]))
        rows = self.influx.rows("SELECT count(\"up\") FROM \"icmp\" WHERE \"site\" = 'forest'", DB)
        counts["stored"] = int(rows[0]["count"]) if rows else 0
        return counts

    def close(self) -> None:
        for proc in (self.agent, self.central):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.broker.close()
        self.influx.close()


async def throughput(devices: int, interval_s: float, steady_s: float, outage_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-agents-") as tmp:
        run = Run(Path(tmp), devices, interval_s)
        status = Status(run.broker.host, run.broker.port)
        try:
            status.start()
            await asyncio.sleep(max(10.0, 2 * interval_s))  # warm up: first cycles, connections
            phases = []
            a0, c0 = run.cpu()
            await asyncio.sleep(steady_s)
            a1, c1 = run.cpu()
            expected = round(devices * steady_s / interval_s)
            phases.append(Phase("steady (probing + publish)", steady_s, expected, a1 - a0, c1 - c0))
            run.broker.stop()
            a2, c2 = run.cpu()
            await asyncio.sleep(outage_s)
            a3, c3 = run.cpu()
            backlog = round(devices * outage_s / interval_s)
            phases.append(Phase(f"broker down {outage_s:.0f} s (spooling)", outage_s, backlog, a3 - a2, c3 - c2))
            run.broker.start()
            t0 = time.monotonic()
            met = await status.reconnected(t0, 60)
            if met is None:
                raise SystemExit("the agent did not reconnect within 60 s")
            a4, c4 = run.cpu()
            done = await status.drained(met[0], 300)
            await asyncio.sleep(3)  # the central takes the last batches
            a5, c5 = run.cpu()
            took = (done or time.monotonic()) - met[0]
            phases.append(Phase(f"replay of {met[1]} spooled", took, met[1], a5 - a4, c5 - c4))
            reconnect_s = met[0] - t0
        finally:
            await status.close()
            counts = run.stop()
            run.close()
    print(f"\nagent → central throughput: {devices} devices, ICMP every {interval_s:g} s, batches of 500, QoS 1, "
          "mosquitto 2.0.11 with persistence, InfluxDB 1.6.7")
    print(f"{'phase':<28} {'s':>8} {'results':>9} {'results/s':>10} {'agent CPU':>9} {'central CPU':>10} "
          f"{'agent/1k':>8} {'central/1k':>8}")
    for phase in phases:
        print(phase.row())
    replay = phases[-1]
    print(f"(steady and spooling: the results due in that time; replay: agent → broker, from the agent's "
          f"reconnection, {reconnect_s:.1f} s after the broker's restart, to its first status with ≤ 1 batch "
          "spooled, statuses every 0.5 s; the replay's CPU, counted up to 3 s after it, includes the probing that "
          "goes on)")
    if replay.central_cpu:
        print(f"central ingest capacity in the replay: {replay.results / replay.central_cpu:,.0f} results per CPU-second "
              f"(validation, tracker, rules facts, InfluxDB lines)")
    print_counts(counts)


def print_counts(counts: dict[str, int]) -> None:
    probed, stored, taken = counts.get("probed"), counts.get("stored", 0), counts.get("taken")
    print(f"results probed by the agent {probed}, published {counts.get('published')}, left in its spool "
          f"{counts.get('waiting')}; taken by the central {taken} (repeats dropped {counts.get('repeats')}); "
          f"distinct in InfluxDB {stored}")
    if probed is not None:
        print(f"lost: {probed - stored}   duplicated: {(taken - stored) if taken is not None else '-'}")


# -- the cut-off in a namespace -------------------------------------------------------------------


class AgentNamespace:
    """A network namespace for the agent and its devices (its own lo: 127.0.0.0/8 answers
    there), joined to the root namespace by one veth pair on a /30 of 10.251.0.0/16."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns = f"fmagent-{tag}"
        self.host_if, self.ns_if = f"fmag{tag}h", f"fmag{tag}a"
        third, fourth = int(tag[:2], 16), (int(tag[2:4], 16) & 0xFC)
        self.host_ip, self.ns_ip = f"10.251.{third}.{fourth + 1}", f"10.251.{third}.{fourth + 2}"
        cmds = [
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.ns],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            ["ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if],
            ["ip", "-n", self.ns, "link", "set", self.ns_if, "up"],
            ["ip", "-n", self.ns, "link", "set", "lo", "up"],
        ]
        try:
            for cmd in cmds:
                subprocess.run(cmd, check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            self.close()
            raise SystemExit(f"cannot build the agent's namespace: {exc.stderr.decode().strip()}") from None

    def link(self, up: bool) -> None:
        subprocess.run(["ip", "link", "set", self.host_if, "up" if up else "down"], check=True)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


async def cut_off(devices: int, interval_s: float, cut_s: float) -> None:
    if os.geteuid() != 0:
        print("\ncut-off: skipped (needs root for the namespace)")
        return
    space = AgentNamespace()
    try:
        with tempfile.TemporaryDirectory(prefix="fleetmon-bench-agents-") as tmp:
            # The broker listens on the root side of the link: the agent's only way out.
            run = Run(Path(tmp), devices, interval_s, host=space.host_ip,
                      agent_prefix=("ip", "netns", "exec", space.ns))
            status = Status(run.broker.host, run.broker.port)
            try:
                status.start()
                await asyncio.sleep(max(15.0, 3 * interval_s))
                a0, c0 = run.cpu()
                cut_ns = time.time_ns()
                space.link(False)
                await asyncio.sleep(cut_s)
                space.link(True)
                back = time.monotonic()
                back_ns = time.time_ns()
                done = await status.drained(back, 600)
                await asyncio.sleep(3)
                a1, c1 = run.cpu()
                replay_s = (done - back) if done else None
            finally:
                stop_ns = time.time_ns()
                await status.close()
                counts = run.stop()
                state_db = Path(tmp) / "state.db"
                periods = blind_periods_of(state_db) if state_db.exists() else []
                with sqlite3.connect(state_db) as db:
                    downs = db.execute("SELECT count(*) FROM transitions WHERE to_state IN ('down', 'unreachable')"
                                       ).fetchone()[0]
                    faults = db.execute("SELECT scope, state, first_seen_ns, resolved_ns FROM faults "
                                        "WHERE rule = 'probe_agent' ORDER BY id").fetchall()
                run.close()
    finally:
        space.close()
    print(f"\ncut-off: the agent's namespace link down for {cut_s:.0f} s ({devices} devices, ICMP every "
          f"{interval_s:g} s, keepalive 5 s, silent_after_s 15, fault_after_s 1)")
    print_counts(counts)
    print(f"false downs: {downs}")
    for start, end, n in periods:
        length = f"{(end - start) / 1e9:.1f} s" if end is not None else "open"
        if start >= stop_ns:
            print(f"blind period: {n} devices unknown from the agent's clean stop at the end (expected)")
            continue
        print(f"blind period: {n} devices unknown from cut + {(start - cut_ns) / 1e9:.1f} s for {length} "
              f"(link back at cut + {(back_ns - cut_ns) / 1e9:.1f} s)")
    for scope, state, first, resolved in faults:
        if first >= stop_ns:
            continue
        span = f"resolved after {(resolved - first) / 1e9:.1f} s" if resolved else "open"
        print(f"fault {scope}: {state}, from cut + {(first - cut_ns) / 1e9:.1f} s, {span}")
    print(f"back to ≤ 1 batch spooled: link up + {replay_s:.1f} s (reconnection included)" if replay_s is not None
          else "replay: not drained")
    print(f"CPU-s over the cut and the replay: agent {a1 - a0:.2f}, central {c1 - c0:.2f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench agents", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=5.0, help="ICMP interval, s")
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--outage-s", type=float, default=30.0, help="broker down in the throughput run, s")
    parser.add_argument("--cut-s", type=float, default=300.0, help="the agent's link down, s")
    parser.add_argument("--skip-cut", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_throughput:
        asyncio.run(throughput(args.devices, args.interval, args.steady_s, args.outage_s))
    if not args.skip_cut:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(cut_off(min(args.devices, 1000), args.interval, args.cut_s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
