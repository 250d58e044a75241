"""Faults and work orders for a generated quarter (lab/history.py), written through fleetmon's
own code paths on the simulated clock: for the report tests, the docs' sample pages and
bench/reports_quarterly.py.

`extend(scenario)` adds what the availability scenario lacks and the daily report shows: a
camera offline since ten days before the period's end and still offline when the history ends
(a long-offline point), and a few clock-drift and point-list faults (value rules, no outage).

`write_duty(scenario, db)` then plays the quarter as the daemon and the duty engineers would:
- faults: `FaultBook.apply` with the conditions holding at each moment: a device down (dead,
  not behind a dead switch) or a camera without video for at least FAULT_AFTER_S raises one
  fault, with the cameras behind a dead switch as its `affected`, resolved when the outage
  ends; nothing is raised or resolved while fleetmon is not running (a fault seen only after a
  restart fires then, one outliving a stop resolves at the restart);
- work orders: `WorkOrderBook.tick` after every fault change and at the end of every
  maintenance window opens an order for each firing device fault (config `workorder_config`:
  auto_close propose, long-offline escalation on), restores and proposes closing what resolved;
- the engineers (ENGINEERS, one per group of regions): acknowledge (the fault on the status
  page too) 2–25 min after the report; for an outage of 2 h or more arrive on site 0.5–5 h
  after it, replace the camera or switch on a third of those visits, restore at the outage's
  end; classify the cause (an outage the scenario excludes gets its excluded cause: 电力, 市政,
  运营商, 人为破坏; others device, line, software or other) and close 0.5–8 h after the
  proposal; an excluded outage without a fault is reported by hand (故障申告) at its start.

Every stamp goes through the book's checks (WorkOrderError would stop the run: a bug here).
SLA clocks: the Qionglai preset plus an arrival clock of 4 h (the tender scores arrival but
gives no figure; see monitor/assess/presets/qionglai.yaml).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator
from unittest import mock

from lab.history import DAY, HOUR, NS, Outage, Scenario, SimClock, simulated
from monitor.assess.config import AssessmentConfig
from monitor.assess.config_score import ScoreConfig
from monitor.assess.config_workorders import (
    ClockSpec,
    LongOfflineConfig,
    OpenRule,
    Policy,
    SlaConfig,
    WorkOrderConfig,
)
from monitor.assess.model import Cause
from monitor.assess.orders import Source
from monitor.assess.sla import Sla
from monitor.core.model import Device, Kind, Status
from rules.base import Condition
from rules.model import Severity

FAULT_AFTER_S = 1800
"""A device down this long raises a fault (the lab's device_down and video_down `for_s`)."""
ON_SITE_AFTER_NS = 2 * HOUR
"""Outages at least this long get an engineer on site."""
ENGINEERS = ("张工", "李工", "王工", "赵工")
RULE_DOWN, RULE_VIDEO = "device-down", "camera-video-down"
RULE_DRIFT, RULE_MISMATCH = "camera-clock-drift", "camera-inventory-mismatch"
_CAUSES = {"电力": Cause.POWER, "市政": Cause.MUNICIPAL, "运营商": Cause.CARRIER, "人为破坏": Cause.VANDALISM}
_OWN_CAUSES = (Cause.DEVICE, Cause.LINE, Cause.SOFTWARE, Cause.OTHER)
MINUTE = 60 * NS


def workorder_config() -> WorkOrderConfig:
    """`assessment.workorders` of the lab: orders for device and video faults, propose closing."""
    return WorkOrderConfig(
        open_on=[OpenRule(rules=[RULE_DOWN, RULE_VIDEO])], auto_close="propose",
        long_offline=LongOfflineConfig(escalate="order"),
    )


def sla_config() -> SlaConfig:
    """`assessment.sla` of the lab: the Qionglai preset and a 4 h arrival clock."""
    return SlaConfig(preset="qionglai", policies=[Policy(clocks={"arrival": ClockSpec(within=4 * 3600)})])


def sla(timezone: str = "Asia/Shanghai") -> Sla:
    return Sla.from_config(sla_config(), timezone)


FEE_YUAN = 250_000
"""The lab's fee of one quarter (the Qionglai scheme's period)."""


def assessment_config(scheme: str | None = "qionglai") -> AssessmentConfig:
    """The lab's config section `assessment`: its work orders and SLA clocks, and a scheme with
    the fee of one of its periods (None: no score)."""
    score = None if scheme is None else ScoreConfig(scheme=scheme, fee_per_period_yuan=FEE_YUAN)
    return AssessmentConfig(workorders=workorder_config(), sla=sla_config(), score=score)


@dataclass(frozen=True, slots=True)
class Extras:
    """What `extend` added: the long-offline camera and the value faults (rule, device, start,
    end, value)."""

    long_offline: str
    value_faults: tuple[tuple[str, str, int, int, float], ...]


def extend(scenario: Scenario, seed: int = 1) -> Extras:
    """Add a long-offline camera (down from ten days before the period's end until after the
    history ends) and a few clock-drift and point-list faults. Call before history.write."""
    rng = random.Random(seed)
    end = scenario.period.end_ns
    start = end - 10 * DAY
    busy = {o.device_id for o in scenario.outages if o.end_ns > start - DAY}
    busy |= {e.device_id for e in scenario.exclusions}
    quiet = [d for d in scenario.inventory.devices.values()
             if d.kind is Kind.CAMERA and d.status is Status.ACTIVE and d.id not in busy
             and scenario.joined[d.id] == scenario.t0_ns and d.parent not in busy]
    camera = quiet[len(quiet) // 2]
    scenario.outages.append(Outage(camera.id, start, scenario.end_ns + 2 * DAY, "device"))
    values = []
    cameras = [d for d in quiet if d is not camera]
    p = scenario.period
    for i, device in enumerate(rng.sample(cameras, min(8, len(cameras)))):
        a = p.start_ns + rng.randrange(1, (p.end_ns - p.start_ns) // HOUR - 30) * HOUR
        rule = RULE_DRIFT if i % 2 == 0 else RULE_MISMATCH
        values.append((rule, device.id, a, a + rng.randrange(2, 30) * HOUR, float(rng.randrange(70, 400))))
    return Extras(camera.id, tuple(values))


@dataclass(frozen=True, slots=True)
class DutyStats:
    """What `write_duty` wrote: faults raised, orders opened (automatic and by hand), actions."""

    faults: int
    orders: int
    manual: int
    actions: int


class _Plan:
    """Events in time order: (ts, sequence, callable) — the callable runs with the clock at ts."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[], Awaitable[None]]]] = []
        self._seq = itertools.count()

    def at(self, ts: int, step: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self._heap, (ts, next(self._seq), step))

    def __iter__(self) -> Iterator[tuple[int, Callable[[], Awaitable[None]]]]:
        while self._heap:
            ts, _, step = heapq.heappop(self._heap)
            yield ts, step


def _running(scenario: Scenario, ts: int) -> int | None:
    """`ts` if fleetmon ran then, else the start of the next session (None: none follows)."""
    for s in scenario.sessions:
        if s.start_ns <= ts < s.end_ns:
            return ts
        if ts < s.start_ns:
            return s.start_ns
    return None


def _status(scenario: Scenario, device_id: str, ts: int) -> Status | None:
    current = None
    for since, inventory in scenario.inventories:
        if since > ts:
            break
        device = inventory.devices.get(device_id)
        current = device.status if device else None
    return current


async def write_duty(scenario: Scenario, db, extras: Extras | None = None, *, seed: int = 1) -> DutyStats:
    """Play faults, work orders and the engineers' actions over the scenario (see the module
    docstring) into `db`, which history.write has filled. Returns what was written."""
    from monitor.assess.workorders import WorkOrderBook
    from rules.alerting.faults import FaultBook
    from rules.alerting.maintenance import MaintenanceBook

    rng = random.Random(seed)
    inventory = scenario.inventory
    devices = inventory.devices
    clock = SimClock(scenario.t0_ns)
    with _patched(clock):
        maintenance = await MaintenanceBook.load(db, inventory, [])
        faults = await FaultBook.load(db, inventory, [], maintenance)
        book = await WorkOrderBook.load(db, inventory, workorder_config(), sla(), faults=faults,
                                        clock=lambda: clock.now_ns)
        holding: dict[tuple[str, str], Condition] = {}
        plan = _Plan()
        counts = {"faults": 0, "orders": 0, "manual": 0, "actions": 0}
        fault_of: dict[tuple[str, int], str] = {}  # (device, outage start) → fault id
        outage_of: dict[str, Outage] = {}  # fault id → its outage
        excluded = {(e.device_id, e.start_ns): _CAUSES[e.reason.split()[-1]] for e in scenario.exclusions}
        by_device: dict[str, list[Outage]] = {}
        for o in scenario.outages:
            by_device.setdefault(o.device_id, []).append(o)

        async def apply(now: int) -> None:
            await faults.apply(dict(holding), now)

        async def tick(now: int) -> None:
            report = await book.tick(now)
            for ref in report.opened:
                counts["orders"] += 1
                await people(await book.get(ref), now)

        async def act(fn: Callable[[], Awaitable[Any]]) -> None:
            await fn()
            counts["actions"] += 1

        def raise_fault(outage: Outage, condition: Condition) -> None:
            fire = _running(scenario, outage.start_ns + FAULT_AFTER_S * NS)
            clear = _running(scenario, outage.end_ns)
            if fire is None or fire >= (clear if clear is not None else scenario.end_ns):
                return
            key = condition.key

            async def on() -> None:
                holding[key] = condition
                await apply(clock.now_ns)
                counts["faults"] += 1
                fault = next(f for f in faults.open_faults() if (f.rule, f.scope) == key)
                fault_of[(outage.device_id, outage.start_ns)] = fault.id
                outage_of[fault.id] = outage
                await tick(clock.now_ns)

            async def off() -> None:
                holding.pop(key, None)
                await apply(clock.now_ns)
                await tick(clock.now_ns)

            plan.at(fire, on)
            if clear is not None and clear < scenario.end_ns:
                plan.at(clear, off)

        async def people(order, now: int) -> None:
            """Schedule the engineers' actions on a newly opened order."""
            device = devices[order.devices[0]]
            outage = outage_of.get(order.source_ref or "") if order.source is Source.FAULT else None
            engineer = ENGINEERS[sorted({d.region for d in devices.values()}).index(device.region) % len(ENGINEERS)]
            if outage is None:  # a long-offline escalation of a point without a fault order: acknowledge only
                plan.at(now + 20 * MINUTE, lambda: act(lambda: book.acknowledge(order.ref, by=engineer, ts_ns=clock.now_ns)))
                return
            end = outage.end_ns
            ack = order.reported_ns + rng.randrange(2, 26) * MINUTE
            fault_id = order.source_ref
            if ack < end - MINUTE:
                async def acknowledge() -> None:
                    await act(lambda: book.acknowledge(order.ref, by=engineer, ts_ns=ack))
                    with contextlib.suppress(Exception):  # the fault may have resolved meanwhile
                        await faults.ack(fault_id, engineer)
                plan.at(ack, acknowledge)
            on_site = end - outage.start_ns >= ON_SITE_AFTER_NS
            cause = excluded.get((device.id, outage.start_ns))
            arrive = max(ack + MINUTE, order.reported_ns + rng.randrange(30, 300) * MINUTE)
            if on_site and arrive < min(end, scenario.end_ns) - 2 * MINUTE:
                plan.at(arrive, lambda: act(lambda: book.arrive(order.ref, by=engineer, ts_ns=arrive)))
                if device.kind in (Kind.CAMERA, Kind.SWITCH) and cause is None and rng.random() < 0.35:
                    swap = min(end - 2 * MINUTE, arrive + rng.randrange(10, 90) * MINUTE)
                    serial = f"SN{rng.randrange(10**9):09d}"
                    model = "DS-2CD3T46" if device.kind is Kind.CAMERA else "S5735-L8T4S"
                    plan.at(swap, lambda: act(lambda: book.replace(
                        order.ref, by=engineer, device_id=device.id, old_serial=f"OLD-{device.id}", new_serial=serial,
                        new_model=model, ts_ns=swap)))
                if end < scenario.end_ns:
                    # Just before the fault resolves: the engineer sees the picture come back.
                    restore = end - MINUTE
                    plan.at(restore, lambda: act(lambda: book.restore(order.ref, by=engineer, ts_ns=restore)))
            if end < scenario.end_ns:
                reason = cause or rng.choice(_OWN_CAUSES)

                async def classify() -> None:
                    current = await book.get(order.ref)
                    if current.is_open:
                        await act(lambda: book.classify(order.ref, by=engineer, cause=reason))
                plan.at(end + MINUTE, classify)
                close_at = end + rng.randrange(30, 480) * MINUTE

                async def close() -> None:
                    current = await book.get(order.ref)
                    if current.is_open and current.restored_ns is not None:
                        await act(lambda: book.close(order.ref, by=engineer, ts_ns=close_at))
                if close_at < scenario.end_ns:
                    plan.at(close_at, close)

        for device_id, outages in by_device.items():
            device = devices.get(device_id)
            if device is None:
                continue
            parent_down = by_device.get(device.parent or "", [])
            for outage in outages:
                if outage.end_ns - outage.start_ns < FAULT_AFTER_S * NS:
                    continue
                if _status(scenario, device_id, outage.start_ns) is not Status.ACTIVE:
                    continue
                if any(p.what == "device" and p.start_ns < outage.end_ns and outage.start_ns < p.end_ns for p in parent_down):
                    continue  # behind a dead switch: unreachable, the switch's fault covers it
                if outage.what == "device":
                    affected = tuple(d.id for d in devices.values() if d.parent == device_id)
                    condition = _down(device, outage, affected, devices)
                elif outage.what == "video" and device.kind is Kind.CAMERA:
                    condition = _video(device, outage)
                else:
                    continue
                raise_fault(outage, condition)

        # Excluded outages nobody's fault covers: reported by hand (故障申告) at their start.
        async def manual(outage: Outage, cause: Cause) -> None:
            if (outage.device_id, outage.start_ns) in fault_of:
                return
            device = devices[outage.device_id]
            engineer = ENGINEERS[0]
            order = await book.report([device.id], by="值班员", title=f"{device.name}无图像（群众报障）",
                                      ts_ns=outage.start_ns, assignee=engineer)
            counts["manual"] += 1
            await act(lambda: book.classify(order.ref, by=engineer, cause=cause))
            plan.at(outage.end_ns, lambda: act(lambda: book.restore(order.ref, by=engineer, ts_ns=outage.end_ns)))
            plan.at(outage.end_ns + HOUR, lambda: act(lambda: book.close(order.ref, by=engineer, ts_ns=outage.end_ns + HOUR)))

        for e in scenario.exclusions:
            outage = next(o for o in by_device[e.device_id] if o.start_ns == e.start_ns)
            plan.at(outage.start_ns + FAULT_AFTER_S * NS + MINUTE,
                    lambda o=outage, c=excluded[(e.device_id, e.start_ns)]: manual(o, c))

        for rule, device_id, start, end, value in (extras.value_faults if extras else ()):
            raise_fault(Outage(device_id, start - FAULT_AFTER_S * NS, end, rule), _value(devices[device_id], rule, value))

        for w in scenario.windows:
            if w.end_ns < scenario.end_ns:
                plan.at(w.end_ns, lambda: tick(clock.now_ns))
        if extras is not None:  # let the long-offline escalation happen a week into the outage
            plan.at(scenario.period.end_ns - 2 * DAY, lambda: tick(clock.now_ns))

        for ts, step in plan:
            if ts >= scenario.end_ns:
                continue
            clock.now_ns = ts
            await step()
    return DutyStats(counts["faults"], counts["orders"], counts["manual"], counts["actions"])


@contextlib.contextmanager
def _patched(clock: SimClock) -> Iterator[None]:
    import rules.alerting.faults

    with simulated(clock), mock.patch.object(rules.alerting.faults, "time", clock):
        yield


def _down(device: Device, outage: Outage, affected: tuple[str, ...], devices: dict[str, Device]) -> Condition:
    title = f"{'交换机' if device.kind is Kind.SWITCH else '摄像机'}{device.name}离线"
    if affected:
        title += f"，影响{len(affected)}路摄像机"
    severity = Severity.CRITICAL if device.kind is Kind.SWITCH else Severity.MAJOR
    return Condition(RULE_DOWN, "device_down", f"device:{device.id}", severity, title, FAULT_AFTER_S, 0,
                     since_ns=outage.start_ns, device_id=device.id, site=device.site, region=device.region,
                     affected=affected, details={"state": "down"})


def _video(device: Device, outage: Outage) -> Condition:
    return Condition(RULE_VIDEO, "video_down", f"device:{device.id}", Severity.MAJOR, f"摄像机{device.name}无视频（网络正常）",
                     FAULT_AFTER_S, 0, since_ns=outage.start_ns, device_id=device.id, site=device.site,
                     region=device.region, details={"basis": "video", "reason": "RTSP DESCRIBE 超时"})


def _value(device: Device, rule: str, value: float) -> Condition:
    if rule == RULE_DRIFT:
        return Condition(rule, "clock_drift", f"device:{device.id}", Severity.MINOR,
                         f"摄像机{device.name}时钟偏差{value:.0f}秒，超过60秒", FAULT_AFTER_S, 0, device_id=device.id,
                         site=device.site, region=device.region, value=value, threshold=60.0, unit="s")
    return Condition(rule, "inventory_mismatch", f"device:{device.id}", Severity.MINOR,
                     f"摄像机{device.name}与点位表不符：型号 DS-2CD2T47 ≠ 点位表 DS-2CD3T46", FAULT_AFTER_S, 0,
                     device_id=device.id, site=device.site, region=device.region)


__all__ = ["DutyStats", "Extras", "assessment_config", "extend", "sla", "sla_config", "workorder_config",
           "write_duty"]
