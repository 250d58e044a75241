"""SNMP polling benchmark: fleetmon's SnmpProbe beside net-snmp 5.9 on the same lab agents.

`python -m bench.snmp_poll [--agents 200 --rounds 3 --sims 2]` (root).

A lab (lab/net.py) of `agents` addresses is served by `sims` snmpsim processes inside the lab
namespace (lab/snmp.py, data file `switch`: 10 ports), UDP port 161. In one run, each poller in
its own child process (wall time and CPU seconds of that child with its own children, os.wait4):

1. fleetmon: SnmpProbe polls every agent as a switch (GET sysUpTime and ifNumber, then the
   GETBULK walk of the 12 IF-MIB columns it uses, max-repetitions sized by ifNumber: 11 rows),
   CONCURRENCY agents at a time, `rounds` times
   after one warm-up round (targets configured); CPU s and wall s of the rounds alone are
   measured inside the worker too;
2. `snmpbulkget -Cn0 -Cr10` of the same 12 columns once per agent (one GETBULK: fleetmon's
   first walk request), 8 processes at a time (xargs -P8);
3. `snmpbulkwalk -Cr10` of ifTable and of ifXTable per agent (what an operator would type;
   it reads all 41 columns), 8 processes at a time.

Columns: varbinds received, wall s, varbinds per second, CPU s, CPU s per 10,000 varbinds.
Agents (snmpsim, Python) are the bottleneck of varbinds/s on a small machine: the CPU columns
say what each poller costs. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import check_routed_into_lab, run_child

COMMUNITY = "switch"
IF_COLUMNS = [  # the columns SnmpProbe walks (probes.snmp_mibs.IF_TABLE)
    "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.2.2.1.13",
    "1.3.6.1.2.1.2.2.1.14", "1.3.6.1.2.1.2.2.1.19", "1.3.6.1.2.1.2.2.1.20", "1.3.6.1.2.1.31.1.1.1.1",
    "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10", "1.3.6.1.2.1.31.1.1.1.15", "1.3.6.1.2.1.31.1.1.1.19",
]


@dataclass
class Row:
    label: str
    varbinds: int
    wall_s: float
    cpu_s: float
    note: str = ""

    def cells(self) -> list[str]:
        rate = self.varbinds / self.wall_s if self.wall_s > 0 else 0.0
        per_10k = self.cpu_s / self.varbinds * 10_000 if self.varbinds else float("nan")
        return [self.label, f"{self.varbinds:,}", f"{self.wall_s:.2f}", f"{rate:,.0f}", f"{self.cpu_s:.2f}",
                f"{per_10k:.2f}", self.note]


CONCURRENCY = 16
"""Agents polled at a time by fleetmon (the scheduler's max_concurrency); net-snmp runs 8
processes at a time. All 200 at once overload the Python agents: timeouts, retries, partials."""


def worker(addresses: list[str], rounds: int) -> None:
    """In the child: poll every address with SnmpProbe; print JSON {varbinds, wall_s, cpu_s,
    failed} of the measured rounds (after one warm-up round)."""
    from monitor.core.model import Device, Kind
    from probes.snmp import SnmpConfig, SnmpProbe

    os.environ["FLEETMON_BENCH_COMMUNITY"] = COMMUNITY
    cfg = SnmpConfig(community_env="FLEETMON_BENCH_COMMUNITY", timeout_s=2.0, retries=1)
    devices = [Device(id=f"sw{i}", name=f"sw{i}", kind=Kind.SWITCH, address=ipaddress.ip_address(a), site="b",
                      region="b") for i, a in enumerate(addresses)]

    async def run() -> dict:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(device: Device):
            async with slots:
                return await probe.probe(device)

        async with SnmpProbe(cfg) as probe:
            assert all(probe.wants(d) for d in devices)
            await asyncio.gather(*(one(d) for d in devices))  # warm-up: targets, USM, imports
            usage, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            varbinds = failed = 0
            for _ in range(rounds):
                results = await asyncio.gather(*(one(d) for d in devices))
                varbinds += sum(int(r.fields.get("varbinds", 0)) for r in results)
                failed += sum(1 for r in results if not r.ok or r.reason)
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
            return {"varbinds": varbinds, "wall_s": wall, "cpu_s": cpu, "failed": failed}

    print(json.dumps(asyncio.run(run())))


def fleetmon_row(addresses: list[str], rounds: int, work: Path) -> tuple[Row, Row]:
    targets = work / "targets.txt"
    targets.write_text("\n".join(addresses) + "\n")
    cmd = [sys.executable, "-m", "bench.snmp_poll", "--worker", str(targets), "--rounds", str(rounds)]
    wall, cpu, rss = run_child(cmd, work / "fleetmon.out", work / "fleetmon.err")
    try:
        data = json.loads((work / "fleetmon.out").read_text().strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"fleetmon worker failed: {(work / 'fleetmon.err').read_text()[-2000:]}") from None
    note = f"{data['failed']} failed/partial" if data["failed"] else ""
    process = Row(f"fleetmon SnmpProbe, whole process ({rounds + 1} rounds, RSS {rss:.0f} MB)",
                  data["varbinds"] * (rounds + 1) // rounds, wall, cpu, "incl. Python start + warm-up")
    polls = Row(f"fleetmon SnmpProbe, {rounds} rounds measured in the worker", data["varbinds"], data["wall_s"],
                data["cpu_s"], note)
    return polls, process


def netsnmp_row(label: str, argv_per_agent: list[list[str]], work: Path, name: str) -> Row:
    """Run the commands 8 at a time through xargs; varbinds = output lines (-On: one per varbind)."""
    script = work / f"{name}.sh"
    script.write_text("\n".join(" ".join(argv) for argv in argv_per_agent) + "\n")
    out, err = work / f"{name}.out", work / f"{name}.err"
    wall, cpu, _ = run_child(["sh", "-c", f"xargs -P8 -d '\\n' -I CMD sh -c CMD < {script}"], out, err)
    lines = [line for line in out.read_text(errors="replace").splitlines() if line.startswith(".1.3.6")]
    errors = len([line for line in err.read_text(errors="replace").splitlines() if line.strip()])
    return Row(label, len(lines), wall, cpu, f"{errors} error lines" if errors else "")


def bench(n_agents: int, rounds: int, sims: int) -> str:
    from lab.net import LabNet
    from lab.snmp import SnmpSim

    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-snmp-") as tmp, LabNet("snmpb", workdir=tmp) as net:
        work = Path(tmp)
        addresses = [str(a) for a in net.add_site("snmp", n_agents)]
        check_routed_into_lab(addresses[:1] + addresses[-1:])
        ns = net.namespace_of(addresses[0])
        share = -(-n_agents // sims)
        agents = [SnmpSim([(a, 161) for a in addresses[i:i + share]], netns=ns) for i in range(0, n_agents, share)]
        try:
            for agent in agents:
                agent.start()
            env = "MIBS= "
            base = ["snmpbulkget", "-v2c", "-c", COMMUNITY, "-On", "-t", "2", "-r", "1"]
            rows = list(fleetmon_row(addresses, rounds, work))
            rows.append(netsnmp_row("net-snmp snmpbulkget -Cn0 -Cr10, 12 columns, 1 request/agent",
                                    [[env, *base, "-Cn0", "-Cr10", a, *IF_COLUMNS] for a in addresses],
                                    work, "bulkget"))
            walk = ["snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", "-t", "2", "-r", "1", "-Cr10"]
            rows.append(netsnmp_row("net-snmp snmpbulkwalk -Cr10 ifTable + ifXTable per agent",
                                    [[env, *walk, a, t] for a in addresses
                                     for t in ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1")], work, "bulkwalk"))
        finally:
            for agent in agents:
                agent.close()
    header = ["poller", "varbinds", "wall s", "varbinds/s", "CPU s", "CPU s/10k vb", "note"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"SNMP poll of {n_agents} snmpsim agents (switch, 10 ports) in a lab namespace, {sims} snmpsim "
             f"process(es); fleetmon: GET + 12-column GETBULK walk per agent, {CONCURRENCY} agents at a time"]
    for i, row in enumerate(table):
        lines.append("  ".join(cell.rjust(w) if 0 < j < 6 else cell.ljust(w) for j, (cell, w) in
                               enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snmp_poll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="measured fleetmon rounds after one warm-up")
    parser.add_argument("--sims", type=int, default=2, help="snmpsim processes serving the agents")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: the fleetmon child
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker.read_text().split(), args.rounds)
        return 0
    if os.geteuid() != 0:
        print("bench.snmp_poll needs root (lab namespaces)", file=sys.stderr)
        return 2
    if args.agents < 1 or args.rounds < 1 or not 1 <= args.sims <= args.agents:
        parser.error("--agents, --rounds ≥ 1 and 1 ≤ --sims ≤ --agents")
    print(bench(args.agents, args.rounds, args.sims), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
