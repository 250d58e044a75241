"""`fleetmon run --once`: one cycle of every enabled probe, a summary, an exit status.

For commissioning and cron checks: is the config right, does the fleet answer, what would the
daemon raise? The same probe classes, scheduler (all targets at once within
scheduler.max_concurrency, each bounded by its budget), trackers, bases, online rates and rules
engine as the daemon (monitor.app.daemon, monitor.app.pipeline), without their side effects:
no state database, no InfluxDB, no notifications, no API. One cycle is all the evidence there
is, so the trackers decide on it (down_after = up_after = 1), and a condition that holds is
reported as a fault that would open (its rule's `for_s` would still apply in the daemon).

Output: the fleet online rate per basis, each region's, the devices down, the faults that would
open (most severe first); `--json`: {"probes": {name: {targets, ok, failed, duration_s}},
"rates": [{basis, scope, group, kind, online, offline, unknown, rate_pct}], "down": [{probe,
device_id, reason}], "faults": [{rule, severity, scope, title}]}.
Exit: 0 every probed device answered and no fault would open; 1 otherwise (monitor.app.cli_common).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from monitor.app.cli_common import EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS
from monitor.app.config import FleetmonConfig
from monitor.app.daemon import depth_first
from monitor.app.scheduler import CycleReport, Scheduler
from monitor.core.model import Basis, Status
from monitor.fleet.inventory import Inventory
from monitor.state.availability import combine, judged
from monitor.state.online_rate import rates_of_bases
from monitor.state.tracker import State, StateTracker
from probes import REGISTRY, ProbeResult, probes_of
from rules.base import View
from rules.engine import RulesEngine


async def one_cycle(cfg: FleetmonConfig, inventory: Inventory) -> dict[str, Any]:
    """Probe every device each enabled probe wants, once; the summary document (see the module)."""
    engine = RulesEngine(inventory, cfg.rules, cfg.flapping, language=cfg.language, timezone=cfg.timezone)
    probed = [d for d in depth_first(inventory) if d.status is not Status.REMOVED and d.address is not None]
    trackers: dict[str, StateTracker] = {}
    polled: dict[str, frozenset[str]] = {}
    reports: dict[str, CycleReport] = {}
    failures: list[ProbeResult] = []

    def on_result(result: ProbeResult) -> None:
        if (t := trackers[result.probe].observe(result)) is not None:
            engine.observe_transition(t)
        engine.observe(result)
        if not result.ok:
            failures.append(result)

    async with AsyncExitStack() as stack:
        schedulers = []
        for name, probe_cls in REGISTRY.items():
            probe_cfg = getattr(cfg.probes, name)
            if not probe_cfg.enabled:
                continue
            probe = probe_cls(probe_cfg)
            devices = tuple(d for d in probed if probe.wants(d))
            if not devices:
                continue
            probe = await stack.enter_async_context(probe)
            trackers[name] = StateTracker(inventory, name, down_after=1, up_after=1)
            polled[name] = frozenset(d.id for d in devices)
            schedulers.append(Scheduler(probe, devices, interval_s=probe_cfg.interval_s, spread=0.0,
                                        max_concurrency=cfg.scheduler.max_concurrency, on_result=on_result,
                                        on_cycle=lambda r: reports.__setitem__(r.probe, r)))
        await asyncio.gather(*(s.run_once() for s in schedulers))
    now_ns = time.time_ns()
    for name, tracker in trackers.items():
        for t in tracker.reconcile(now_ns):
            engine.observe_transition(t)
    states = {name: t.states() for name, t in trackers.items()}
    devices = tuple(inventory.devices.values())
    bases = combine(devices, states, polled, cfg.availability.online_requires)
    network = next((p for p in probes_of(Basis.NETWORK) if p in trackers), None)
    rates = tuple(rates_of_bases(devices, bases, judged(states, polled)))
    view = View(now_ns, states[network] if network is not None else bases[Basis.ONLINE],
                trackers[network].since() if network is not None else {}, rates,
                {b.value: s for b, s in bases.items()})
    conditions = sorted(engine.evaluate(view, set()).values(), key=lambda c: (c.severity.rank, c.rule, c.scope))
    down = {(r.probe, r.device_id): r.reason for r in failures
            if states[r.probe].get(r.device_id) in (State.DOWN, State.UNREACHABLE)}
    return {
        "probes": {name: {"targets": r.targets, "ok": r.ok, "failed": r.failed, "duration_s": round(r.duration_s, 3)}
                   for name, r in reports.items()},
        "rates": [{"basis": r.basis, "scope": r.scope, "group": r.group, "kind": r.kind, "online": r.online,
                   "offline": r.offline, "unknown": r.unknown, "rate_pct": r.rate_pct}
                  for r in rates if r.kind == "all" and r.scope in ("fleet", "region")],
        "down": [{"probe": p, "device_id": d, "reason": reason} for (p, d), reason in sorted(down.items())],
        "faults": [{"rule": c.rule, "severity": c.severity.value, "scope": c.scope, "title": c.title}
                   for c in conditions],
    }


WORDS = {
    "zh": {"probes": "探测", "rates": "在线率", "down": "离线设备", "faults": "将产生的故障", "none": "无",
           "cycle": "{name}：{targets} 个目标，{ok} 个正常，{failed} 个失败，用时 {duration_s} 秒",
           "all_well": "全部正常", "problems": "发现问题"},
    "en": {"probes": "probes", "rates": "online rates", "down": "devices down", "faults": "faults that would open",
           "none": "none", "cycle": "{name}: {targets} targets, {ok} ok, {failed} failed, {duration_s} s",
           "all_well": "all well", "problems": "problems found"},
}


def summary_text(doc: dict[str, Any], language: str) -> list[str]:
    w = WORDS[language]
    lines = [f"{w['probes']}:"]
    lines += [f"  {w['cycle'].format(name=name, **p)}" for name, p in doc["probes"].items()] or [f"  {w['none']}"]
    lines.append(f"{w['rates']}:")
    for r in doc["rates"]:
        rate = "—" if r["rate_pct"] is None else f"{r['rate_pct']:.2f} %"
        lines.append(f"  {r['basis']:<8} {r['group']:<12} {rate:>9}  ({r['online']}/{r['online'] + r['offline']})")
    lines.append(f"{w['down']}: {len(doc['down'])}")
    lines += [f"  {d['device_id']} ({d['probe']}): {d['reason'] or ''}" for d in doc["down"]]
    lines.append(f"{w['faults']}: {len(doc['faults'])}")
    lines += [f"  [{f['severity']}] {f['title']}" for f in doc["faults"]]
    lines.append(w["problems"] if problems(doc) else w["all_well"])
    return lines


def problems(doc: dict[str, Any]) -> bool:
    return bool(doc["down"] or doc["faults"])


def run_once(cfg: FleetmonConfig, inventory: Inventory, *, json_out: bool) -> int:
    """Run the cycle, print the summary, return the exit status (3 when a probe cannot start,
    e.g. no permission for ICMP sockets)."""
    try:
        doc = asyncio.run(one_cycle(cfg, inventory))
    except (PermissionError, OSError) as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(json.dumps(doc, ensure_ascii=False, indent=2) if json_out else "\n".join(summary_text(doc, cfg.language)))
    return EXIT_PROBLEMS if problems(doc) else EXIT_OK
