"""Rules benchmark: one cycle of rule evaluation and fault lifecycle for a ~10,000-device fleet.

`python -m bench.rules_eval [--devices 10000 --cycles 50 --seed 0]` (no root, no network).

In-process, on the daemon's own classes. The inventory is the contract shape of lab/fleet.py
(`build_contract_fleet`, with a stand-in for the LabNet that only hands out addresses: nothing
is created, nothing is sent), scaled to ~`devices` devices: cameras in sites of 8–40 behind
their switches and links, a UPS per site, the centre's platform and servers, ten regions, a
few points under construction or removed. The rules are `rules.config.default_rules()`
(device down 60 s, camera online rate per region < 95 % for 300 s, link latency/loss/jitter)
with the default flap damping.

Every cycle (30 s of simulated time apart) is what the daemon does at the end of a cycle:
- every probed device's ICMP result goes to `RulesEngine.observe` (the window of 5 is full
  from the start: 5 results per device are fed before the first cycle);
- the published states form a `View`: 2 % of the cameras down, 5 switches down with their
  UPS and cameras unreachable, one region dark (its links down, everything behind them
  unreachable), 2 slow (250 ms) and 2 lossy (20 %) links; points under construction down;
  and from cycle to cycle 10 cameras go down and 10 come back (their transitions observed);
- timed: `online_rates` (the daemon computes them each cycle for the View),
  `engine.evaluate(view, faults.firing_keys())`, and `FaultBook.apply(conditions, ts)` on a real
  StateDB (SQLite WAL, in a temp dir) with one route taking every fault. Cycle 1 creates the
  faults (pending), cycle 3 fires those of the 60 s rules (one outbox row each); later cycles
  are steady state with the churn.
Times are wall-clock (perf_counter) on this process, printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import logging
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

CYCLE_S = 30
NS = 1_000_000_000
DOWN_CAMERA_SHARE = 0.02
DOWN_SWITCHES = 5
CHURN = 10  # cameras going down, and cameras coming back, per cycle
TARGET_MS = 100.0


class AddressBook:
    """Stands in for lab.net.LabNet in `build_contract_fleet`: hands out addresses from the
    lab's pool (198.18.0.0/15, never routed anywhere by this benchmark), creates nothing."""

    def __init__(self) -> None:
        self._next = int(ipaddress.IPv4Address("198.18.0.1"))

    def add_site(self, site: str, count: int, behaviour: object = None, *, ipv6: bool = False):
        start, self._next = self._next, self._next + count
        return [ipaddress.IPv4Address(start + i) for i in range(count)]

    def add_sites(self, sites, *, ipv6: bool = False):
        return [self.add_site(site, count) for site, count, _ in sites]

    def set_down(self, addresses) -> None:
        for _ in addresses:  # a generator in lab.fleet: consume it, do nothing
            pass


def build_inventory(target_devices: int, seed: int):
    """(Inventory, devices) of about `target_devices` devices, contract-shaped."""
    from lab.fleet import NO_IMPAIRMENTS, build_contract_fleet
    from monitor.fleet.inventory import Inventory

    def build(cameras: int):
        return build_contract_fleet(AddressBook(), cameras=cameras, seed=seed, impaired=NO_IMPAIRMENTS).devices

    cameras = max(1, round((target_devices - 4) / 1.125))  # a site: ~24 cameras + link, switch, UPS
    devices = build(cameras)
    cameras = max(1, cameras + round((target_devices - len(devices)) / 1.125))  # one correction
    devices = build(cameras)
    return Inventory(devices), devices


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class Scenario:
    """The fleet's published states cycle after cycle, and the ICMP results behind them."""

    def __init__(self, inventory, devices, rng: random.Random) -> None:
        from monitor.core.model import Kind, Status
        from monitor.state.tracker import State

        self.inventory, self.devices, self.rng = inventory, devices, rng
        self.probed = [d for d in devices if d.status is not Status.REMOVED and d.address is not None]
        regions = sorted({d.region for d in devices})
        centre_region = next(d.region for d in devices if d.kind is Kind.PLATFORM)
        self.dark_region = rng.choice([r for r in regions if r != centre_region])
        links = [d for d in devices if d.kind is Kind.LINK and d.region != self.dark_region]
        switches = [d for d in devices if d.kind is Kind.SWITCH and d.region != self.dark_region]
        self.slow_links = {d.id for d in rng.sample(links, 2)}
        self.lossy_links = {d.id for d in rng.sample([d for d in links if d.id not in self.slow_links], 2)}
        self.down_switches = {d.id for d in rng.sample(switches, DOWN_SWITCHES)}

        states: dict[str, State] = {}
        behind_down: set[str] = set()
        for d in inventory.topo_order():  # parents first
            parent_offline = d.parent is not None and states[d.parent].offline
            if d.status is Status.REMOVED:
                states[d.id] = State.UNKNOWN  # not probed: never decided
            elif parent_offline:
                states[d.id] = State.UNREACHABLE
                behind_down.add(d.id)
            elif d.status is Status.CONSTRUCTION:
                states[d.id] = State.DOWN  # nothing installed: silent, not counted
            elif d.id in self.down_switches or (d.region == self.dark_region and d.kind is Kind.LINK):
                states[d.id] = State.DOWN
            else:
                states[d.id] = State.UP
        self.free_cameras = [  # cameras that can go down and come back on their own
            d.id for d in devices
            if d.kind is Kind.CAMERA and d.counted and states[d.id] is State.UP
        ]
        for device_id in rng.sample(self.free_cameras, round(DOWN_CAMERA_SHARE * len(self.free_cameras))):
            states[device_id] = State.DOWN
        self.states = states
        self.unreachable = len(behind_down)
        self.dark_devices = sum(1 for d in devices if d.region == self.dark_region)
        self.since = {d.id: 0 for d in devices}

    def counts(self) -> dict[str, int]:
        from monitor.core.model import Kind
        from monitor.state.tracker import State

        cams = [d for d in self.devices if d.kind is Kind.CAMERA and d.counted]
        return {
            "cameras": len(cams),
            "cameras_down": sum(1 for d in cams if self.states[d.id] is State.DOWN),
            "unreachable": sum(1 for s in self.states.values() if s is State.UNREACHABLE),
        }

    def churn(self, ts_ns: int) -> list:
        """CHURN free cameras go down and CHURN come back; returns the transitions."""
        from monitor.state.tracker import State, Transition

        up = [c for c in self.free_cameras if self.states[c] is State.UP]
        down = [c for c in self.free_cameras if self.states[c] is State.DOWN]
        out = []
        for device_id, new in [(c, State.DOWN) for c in self.rng.sample(up, CHURN)] + [
            (c, State.UP) for c in self.rng.sample(down, CHURN)
        ]:
            out.append(Transition(device_id, "icmp", ts_ns, self.states[device_id], new, None))
            self.states[device_id] = new
            self.since[device_id] = ts_ns
        return out

    def results(self, ts_ns: int) -> list:
        """One ICMP result per probed device, as the probe would report it."""
        from monitor.state.tracker import State
        from probes.base import ProbeResult

        rng, out = self.rng, []
        for d in self.probed:
            failing = self.states[d.id] in (State.DOWN, State.UNREACHABLE)
            if failing:
                fields = {"up": False, "sent": 3, "received": 0, "loss_pct": 100.0, "payload_bytes": 56}
                out.append(ProbeResult(d.id, "icmp", ts_ns, False, "timeout", fields))
                continue
            base = 250.0 if d.id in self.slow_links else 3.0 + rng.random() * 20
            received = 3
            if d.id in self.lossy_links:
                received = 2 if rng.random() < 0.6 else 3
            rtts = [base + rng.random() * 4 for _ in range(received)]
            fields = {
                "up": True, "sent": 3, "received": received, "loss_pct": round(100 * (3 - received) / 3, 3),
                "payload_bytes": 56, "rtt_min_ms": min(rtts), "rtt_avg_ms": sum(rtts) / len(rtts),
                "rtt_max_ms": max(rtts),
            }
            if received >= 2:
                fields["jitter_ms"] = sum(abs(a - b) for a, b in itertools.pairwise(rtts)) / (received - 1)
            out.append(ProbeResult(d.id, "icmp", ts_ns, True, None, fields))
        return out


async def run(target_devices: int, cycles: int, seed: int) -> str:
    from monitor.state.online_rate import online_rates
    from monitor.state.db import StateDB
    from rules.config import FlappingConfig, default_rules
    from rules.base import View
    from rules.engine import RulesEngine
    from rules.alerting.faults import FaultBook
    from rules.alerting.maintenance import MaintenanceBook
    from rules.alerting.notifiers.base import RouteConfigBase

    # The fault book logs a line per fault firing/resolving; the daemon formats those to its log,
    # here they would go to stderr through logging's last resort. Records are still created.
    logging.getLogger("fleetmon").addHandler(logging.NullHandler())
    rng = random.Random(seed)
    t_build = time.perf_counter()
    inventory, devices = build_inventory(target_devices, seed)
    scenario = Scenario(inventory, devices, rng)
    rules = default_rules()
    t_engine = time.perf_counter()
    engine = RulesEngine(inventory, rules, FlappingConfig())
    engine_init_ms = (time.perf_counter() - t_engine) * 1000
    build_s = time.perf_counter() - t_build
    counts = scenario.counts()

    t0 = time.time_ns() - (cycles + 5) * CYCLE_S * NS  # simulated past: the whole run ends about now
    for k in range(5):  # fill the window (5 results per device)
        for r in scenario.results(t0 - (5 - k) * CYCLE_S * NS):
            engine.observe(r)

    observe_ms, rates_ms, evaluate_ms, apply_ms, notices, conditions_n = [], [], [], [], [], []
    by_rule: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        db_path = Path(tmp) / "state.db"
        async with StateDB(db_path) as db:
            maintenance = await MaintenanceBook.load(db, inventory, [])
            book = await FaultBook.load(db, inventory, [RouteConfigBase(name="duty")], maintenance)
            for k in range(cycles):
                ts = t0 + k * CYCLE_S * NS
                transitions = scenario.churn(ts) if k else []
                results = scenario.results(ts)
                a = time.perf_counter()
                for r in results:
                    engine.observe(r)
                for t in transitions:
                    engine.observe_transition(t)
                b = time.perf_counter()
                rates = tuple(online_rates(devices, scenario.states))
                c = time.perf_counter()
                view = View(ts, dict(scenario.states), dict(scenario.since), rates)
                c2 = time.perf_counter()
                conditions = engine.evaluate(view, book.firing_keys())
                d = time.perf_counter()
                queued = await book.apply(conditions, ts)
                e = time.perf_counter()
                observe_ms.append((b - a) * 1000)
                rates_ms.append((c - b) * 1000)
                evaluate_ms.append((d - c2) * 1000)
                apply_ms.append((e - d) * 1000)
                notices.append(queued)
                conditions_n.append(len(conditions))
                if k == 0:
                    for key, cond in conditions.items():
                        name = f"{key[0]}/{cond.kind}"
                        by_rule[name] = by_rule.get(name, 0) + 1
            open_faults = book.open_faults()
        conn = sqlite3.connect(db_path)
        stored = conn.execute("SELECT count(*) FROM faults").fetchone()[0]
        outbox_rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        conn.close()

    fired_at = next((k for k, n in enumerate(notices) if n), None)
    steady_from = (fired_at + 1) if fired_at is not None else 1
    steady = list(range(steady_from, cycles))
    firing = sum(1 for f in open_faults if f.state.value == "firing")

    def stats(label: str, values: list[float], note: str = "") -> str:
        if not values:
            return f"{label:<46}{'-':>9}{'-':>9}{'-':>9}  {note}"
        return (f"{label:<46}{statistics.median(values):>9.1f}{percentile(values, 95):>9.1f}{max(values):>9.1f}"
                f"  {note}").rstrip()

    def one(label: str, value: float, note: str = "") -> str:
        return f"{label:<46}{value:>9.1f}{'':>9}{'':>9}  {note}".rstrip()

    total_steady = [evaluate_ms[k] + apply_ms[k] for k in steady]
    lines = [
        (f"Rules: {len(devices)} devices ({counts['cameras']} counted cameras, "
         f"{sum(1 for d in devices if d.kind.value == 'switch')} sites, {len({d.region for d in devices})} regions), "
         f"default rules ({', '.join(r.name for r in rules)}), {cycles} cycles {CYCLE_S} s apart (simulated time)"),
        (f"States: {counts['cameras_down']} cameras down ({100 * DOWN_CAMERA_SHARE:g} % of the free ones), "
         f"{DOWN_SWITCHES} switches down, region {scenario.dark_region} dark ({scenario.dark_devices} devices), "
         f"{counts['unreachable']} devices unreachable; 2 slow + 2 lossy links; "
         f"churn {CHURN} down + {CHURN} up per cycle"),
        (f"Setup: inventory + scenario {build_s:.2f} s, RulesEngine() {engine_init_ms:.0f} ms; "
         f"conditions per cycle {min(conditions_n)}–{max(conditions_n)}; cycle 1: "
         + ", ".join(f"{name} {n}" for name, n in sorted(by_rule.items()))),
        f"{'per cycle (ms)':<46}{'median':>9}{'p95':>9}{'max':>9}",
        stats(f"engine.observe × {len(scenario.probed)} results", observe_ms, "(daemon: as results arrive)"),
        stats("online_rates (daemon, for the View)", rates_ms),
        stats("engine.evaluate, all cycles", evaluate_ms),
        one("FaultBook.apply, cycle 1", apply_ms[0], f"(creates {conditions_n[0]} pending faults)"),
    ]
    if fired_at is not None:
        lines.append(one(f"FaultBook.apply, cycle {fired_at + 1}", apply_ms[fired_at],
                         f"({notices[fired_at]} faults fire: outbox rows)"))
    lines += [
        stats(f"FaultBook.apply, steady (cycles {steady_from + 1}–{cycles})", [apply_ms[k] for k in steady]),
        stats("evaluate + apply, steady", total_steady),
        stats("evaluate + apply, all cycles", [e + a for e, a in zip(evaluate_ms, apply_ms)]),
        f"{'target':<46}{TARGET_MS:>9.0f}  ms per cycle for 10,000 devices",
        (f"End: {len(open_faults)} open faults ({firing} firing), {stored} stored, {outbox_rows} outbox rows; "
         f"notifications queued per cycle: {', '.join(str(n) for n in notices[:12])}{' …' if cycles > 12 else ''}"),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices in the fleet (approximately)")
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.devices < 500 or args.cycles < 2:
        parser.error("need --devices ≥ 500 (the scenario takes down 5 switches and a region) and --cycles ≥ 2")
    print(asyncio.run(run(args.devices, args.cycles, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
