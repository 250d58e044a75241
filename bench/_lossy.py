"""False downs on lossy links: `python -m bench detection --lossy [--devices 1000 --interval 10
--cycles 31 --loss 20 --confirm 2 --spacing 1 --down-after 3 --up-after 2]` (root).

`devices` lab devices behind one site whose responder drops `loss` % of echo requests at random
(lab/net.py Behaviour(loss_pct)), none of them ever down: every DOWN transition is false. They
are probed by fleetmon's own pieces in this process, as the daemon wires them: the ICMP engine
(IcmpProbe: count 3, 200 ms apart, 1 s timeout, no retry, as bench/detection.py), the Scheduler
(spread 0.5, confirmation `probes.icmp.confirm` as given) and a StateTracker (`down_after`,
`up_after`, skipping the confirmation of devices already failing), for `cycles` cycles at a
compressed `interval`: one probe decision per device and cycle.

`--dark [--cap 100 --sites 1]`: the devices all dead instead (whole sites dark at once: each a
link, its switch and cameras behind them), three cycles: the echoes sent beside the scheduled
ones, the peak of devices being confirmed, how many were confirmed or capped, and after each
cycle the links DOWN, the other devices DOWN (taken for root causes) and those UNREACHABLE.

Printed beside the confirmed figure, from the same run: what the scheduled probes alone (their
fields: a probe missed when no echo came back, before any re-probe) would have given with no
confirmation, replayed through StateTrackers: down_after 1 (the naive "one missed probe is
down") and the `down_after`/`up_after` hysteresis alone (a dead device then takes down_after
cycles). The expected counts use the measured miss rate p of a probe: naive ≈ p per decision,
confirmed ≈ p^(1 + confirm) when 1 + confirm ≥ down_after (independent losses).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

from bench._common import check_routed_into_lab


def count_downs(inventory, results: list, down_after: int, up_after: int, *, confirmed: bool) -> int:
    """DOWN transitions a StateTracker makes of `results` (in arrival order); with
    confirmed=False each result is reduced to its scheduled probe (ok when an echo came back,
    no confirmations)."""
    from monitor.state.tracker import State, StateTracker
    from probes.base import ProbeResult

    tracker = StateTracker(inventory, "icmp", down_after=down_after, up_after=up_after)
    downs = 0
    for r in results:
        if not confirmed:
            r = ProbeResult(r.device_id, r.probe, r.ts_ns, r.fields.get("received", 0) > 0)
        t = tracker.observe(r)
        downs += t is not None and t.new is State.DOWN
    return downs


async def run(args: argparse.Namespace) -> str:
    from lab.net import Behaviour, LabNet
    from monitor.app.scheduler import Scheduler
    from monitor.core.model import Device, Kind
    from monitor.fleet.inventory import Inventory
    from monitor.state.tracker import State, StateTracker
    from probes.icmp import IcmpConfig, IcmpProbe

    cfg = IcmpConfig(interval_s=args.interval, count=3, echo_interval_ms=200, timeout_s=1.0, retries=0,
                     confirm={"count": args.confirm, "spacing_s": args.spacing})
    with LabNet() as net:
        addresses = net.add_site("lossy", args.devices, Behaviour(loss_pct=args.loss))
        check_routed_into_lab([str(addresses[0]), str(addresses[-1])])
        devices = [Device(f"L{i:05d}", f"L{i:05d}", Kind.CAMERA, a, "lossy", "lab") for i, a in enumerate(addresses)]
        inventory = Inventory(devices)
        tracker = StateTracker(inventory, "icmp", down_after=args.down_after, up_after=args.up_after)
        results = []
        downs = 0

        def on_result(r) -> None:
            nonlocal downs
            results.append(r)
            t = tracker.observe(r)
            downs += t is not None and t.new is State.DOWN

        cycles_done = asyncio.Event()

        def on_cycle(report) -> None:
            if report.cycle + 1 >= args.cycles:
                cycles_done.set()

        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        async with IcmpProbe(cfg) as probe:
            scheduler = Scheduler(probe, devices, interval_s=args.interval, spread=0.5, max_concurrency=5000,
                                  on_result=on_result, on_cycle=on_cycle, confirm=cfg.confirm,
                                  confirm_skip=tracker.failing)
            task = asyncio.create_task(scheduler.run())
            try:
                await asyncio.wait_for(cycles_done.wait(), timeout=args.cycles * args.interval * 3 + 60)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        cpu1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0

    decisions = len(results)
    missed = sum(1 for r in results if r.fields.get("received", 0) == 0)
    p = missed / decisions if decisions else 0.0
    outcomes = scheduler.confirmations
    naive = count_downs(inventory, results, 1, 1, confirmed=False)
    hysteresis = count_downs(inventory, results, args.down_after, args.up_after, confirmed=False)
    reprobes = sum(r.confirmations for r in results)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)

    def per(n: int) -> str:
        return f"{n / decisions * 1e4:8.2f}" if decisions else "       -"

    lines = [
        (f"False downs: {args.devices} lab devices behind {args.loss:g} % echo loss (responder, at random), "
         f"none ever down; ICMP count 3 × 200 ms, timeout 1 s, no retry, every {args.interval:g} s, spread 0.5; "
         f"{scheduler.cycles_run} cycles ({scheduler.cycles_skipped} skipped), {wall:.0f} s, "
         f"{cpu:.1f} CPU-s in this process (prober + bench)"),
        f"probe decisions (scheduled probes): {decisions}; missed (no echo back): {missed} (p = {p:.5f}; "
        f"{args.loss / 100:.2f}³ = {(args.loss / 100) ** 3:.5f} expected)",
        (f"confirmations: {outcomes['answered']} answered by a re-probe, {outcomes['failed']} every re-probe missed, "
         f"{outcomes['capped']} capped; {reprobes} re-probes in all ({reprobes / decisions * 100 if decisions else 0:.2f} "
         "per 100 decisions)"),
        "",
        f"{'setting':<58}{'false downs':>12}{'per 10⁴':>9}{'expected':>10}",
        (f"{f'confirm {args.confirm} × {args.spacing:g} s, down_after {args.down_after}, up_after {args.up_after} (measured)':<58}"
         f"{downs:>12}{per(downs)}{decisions * p ** (1 + args.confirm) if 1 + args.confirm >= args.down_after else float('nan'):>10.4f}"),
        (f"{'no confirmation, down_after 1 (naive; replayed)':<58}{naive:>12}{per(naive)}{decisions * p:>10.1f}"),
        (f"{f'no confirmation, down_after {args.down_after}, up_after {args.up_after} (replayed)':<58}"
         f"{hysteresis:>12}{per(hysteresis)}{'':>10}"),
        "",
        (f"target ≤ 1 per 10⁴ decisions: {'met' if downs * 1e4 <= decisions else 'NOT met'} "
         f"({downs} in {decisions}; with none seen, the 95 % upper bound is 3/{decisions} = {3e4 / decisions:.2f} per 10⁴)"),
    ]
    return "\n".join(lines)


async def dark(args: argparse.Namespace) -> str:
    """A whole site dark at once: what confirmation costs and how the cap bounds it."""
    from lab.net import Behaviour, LabNet
    from monitor.app.scheduler import Scheduler
    from monitor.core.model import Device, Kind
    from monitor.fleet.inventory import Inventory
    from monitor.state.tracker import State, StateTracker
    from probes.icmp import IcmpConfig, IcmpProbe

    cfg = IcmpConfig(interval_s=args.interval, count=3, echo_interval_ms=200, timeout_s=1.0, retries=0,
                     confirm={"count": args.confirm, "spacing_s": args.spacing, "max_concurrent": args.cap})
    rows = []
    with LabNet() as net:
        addresses = net.add_site("dark", args.devices, Behaviour(loss_pct=100))
        check_routed_into_lab([str(addresses[0]), str(addresses[-1])])
        # `sites` sites, each a link, its switch and the cameras behind it, parents first (as
        # the daemon orders them): every device is dead, only the links are root causes.
        devices = []
        per_site = args.devices // args.sites
        for i, a in enumerate(addresses[: per_site * args.sites]):
            site, n = divmod(i, per_site)
            kind, parent = ((Kind.LINK, None) if n == 0 else (Kind.SWITCH, f"K{site:03d}-0000") if n == 1
                            else (Kind.CAMERA, f"K{site:03d}-0001"))
            devices.append(Device(f"K{site:03d}-{n:04d}", f"K{site:03d}-{n:04d}", kind, a, f"dark{site}", "lab",
                                  parent=parent))
        tracker = StateTracker(Inventory(devices), "icmp", down_after=args.down_after, up_after=args.up_after)
        async with IcmpProbe(cfg) as probe:
            scheduler = Scheduler(probe, devices, interval_s=args.interval, spread=0.5, max_concurrency=5000,
                                  on_result=tracker.observe, on_cycle=lambda r: tracker.reconcile(time.time_ns()),
                                  confirm=cfg.confirm, confirm_skip=tracker.failing)
            for cycle in range(3):
                peak = 0

                async def watch() -> None:
                    nonlocal peak
                    while True:
                        peak = max(peak, scheduler.confirming)
                        await asyncio.sleep(0.02)

                watcher = asyncio.create_task(watch())
                sent0, before = probe.engine.counters["sent"], dict(scheduler.confirmations)
                await scheduler.run_once()
                watcher.cancel()
                report = scheduler.last_report
                outcomes = {k: v - before.get(k, 0) for k, v in scheduler.confirmations.items()}
                states = [(d.kind, tracker.state(d.id)) for d in devices]
                links = sum(1 for k, st in states if k is Kind.LINK and st is State.DOWN)
                behind = sum(1 for k, st in states if k is not Kind.LINK and st is State.DOWN)
                unreachable = sum(1 for _, st in states if st is State.UNREACHABLE)
                rows.append((cycle + 1, report.duration_s, probe.engine.counters["sent"] - sent0, peak,
                             outcomes.get("failed", 0), outcomes.get("capped", 0), links, behind, unreachable))
    scheduled = len(devices) * 3
    lines = [
        (f"Sites dark: {len(devices)} lab devices dead at once (100 % loss), {args.sites} sites of a link, its "
         f"switch and {per_site - 2} cameras; ICMP count 3 × 200 ms, timeout 1 s, interval {args.interval:g} s, "
         f"spread 0.5; confirm {args.confirm} × {args.spacing:g} s, max_concurrent {args.cap}; down_after "
         f"{args.down_after}; states after each cycle (reconciled)"),
        f"{'cycle':>5}{'duration s':>12}{'echoes sent':>13}{'scheduled':>11}{'confirming peak':>17}"
        f"{'confirmed':>11}{'capped':>8}{'links DOWN':>12}{'others DOWN':>13}{'UNREACHABLE':>13}",
        *(f"{c:>5}{d:>12.1f}{sent:>13}{scheduled:>11}{peak:>17}{failed:>11}{capped:>8}{links:>12}{behind:>13}{unr:>13}"
          for c, d, sent, peak, failed, capped, links, behind, unr in rows),
        ("others DOWN: switches or cameras taken for root causes (their link was not down yet: its miss was "
         "capped or its confirmation still ran)."),
        (f"without a cap the first cycle would re-probe all {args.devices} at once ({args.devices * args.confirm * 3} "
         f"more echoes within seconds); with it at most {args.cap} devices are re-probed at a time, the rest "
         "count once towards down_after, as without confirmation."),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench detection --lossy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="ICMP interval, s (compressed)")
    parser.add_argument("--cycles", type=int, default=31, help="cycles to run: decisions = devices × cycles")
    parser.add_argument("--loss", type=float, default=20.0, help="echo requests dropped, %%")
    parser.add_argument("--confirm", type=int, default=2, help="probes.icmp.confirm.count")
    parser.add_argument("--spacing", type=float, default=1.0, help="probes.icmp.confirm.spacing_s")
    parser.add_argument("--down-after", type=int, default=3)
    parser.add_argument("--up-after", type=int, default=2)
    parser.add_argument("--dark", action="store_true",
                        help="instead: the devices all dead at once, three cycles: the cost of confirmation and its cap")
    parser.add_argument("--cap", type=int, default=100, help="probes.icmp.confirm.max_concurrent (--dark)")
    parser.add_argument("--sites", type=int, default=1, help="sites the dark devices are split into (--dark)")
    args = parser.parse_args(argv)
    if not (1 <= args.sites <= args.devices // 3 and 1 <= args.devices <= 50_000 and args.cycles >= 1 and 0 < args.loss < 100 and args.down_after >= 1
            and args.up_after >= 1):
        parser.error("--devices within 1–50,000 (≥ 3 per site), --sites ≥ 1, --cycles ≥ 1, --loss within 0–100 (exclusive), --down-after, --up-after ≥ 1")
    try:
        print(asyncio.run(dark(args) if args.dark else run(args)), flush=True)
    except ValueError as exc:  # the IcmpConfig's checks (interval too short for the confirmations …)
        print(f"bad settings: {exc}", file=sys.stderr)
        return 2
    return 0
