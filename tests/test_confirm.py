"""Confirmation probing (probes.base.ConfirmConfig, monitor.app.scheduler, monitor.state.tracker):
a miss is re-probed at once, then `spacing_s` apart; a lost answer does not take a device down,
a dead device is down after its confirmations, the cap on devices confirmed at once holds, and
bad `confirm` settings are located errors.

The scheduler's timing logic is tested with an in-process stand-in probe (scripted outcomes);
the whole path with the real ICMP engine against lab devices (root: network namespaces), where
a device can drop exactly one probe.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from monitor.app.config import load_config
from monitor.app.scheduler import Scheduler
from monitor.core.config_base import ConfigError
from monitor.core.model import Device
from monitor.fleet.inventory import Inventory
from monitor.state.tracker import State, StateTracker
from probes.base import ConfirmConfig, ProbeResult
from probes.icmp import IcmpConfig, IcmpProbe
from tests.plugins.factories import device

REPO = Path(__file__).resolve().parent.parent


class ScriptedProbe:
    """Answers each call for a device with the next of `outcomes[device_id]` (then the last one
    again) after `duration_s`; records every call's start and the scheduler's confirming count."""

    name = "scripted"

    def __init__(self, outcomes: dict[str, list[bool]], duration_s: float = 0.0) -> None:
        self.outcomes = {d: list(o) for d, o in outcomes.items()}
        self.duration_s = duration_s
        self.calls: list[tuple[float, str]] = []
        self.scheduler: Scheduler | None = None
        self.max_confirming = 0

    def budget_s(self, device: Device) -> float:
        return 1.0

    async def probe(self, device: Device) -> ProbeResult:
        self.calls.append((time.monotonic(), device.id))
        if self.scheduler is not None:
            self.max_confirming = max(self.max_confirming, self.scheduler.confirming)
        started = time.time_ns()
        await asyncio.sleep(self.duration_s)
        queue = self.outcomes[device.id]
        ok = queue.pop(0) if len(queue) > 1 else queue[0]
        n = sum(1 for _, d in self.calls if d == device.id)
        return ProbeResult(device.id, self.name, started, ok, None if ok else f"miss {n}",
                           {"up": ok, "attempt": n})


def scheduler(probe: ScriptedProbe, devices: list[Device], confirm: ConfirmConfig | None,
              results: list[ProbeResult], skip=None) -> Scheduler:
    s = Scheduler(probe, devices, interval_s=10.0, spread=0.0, max_concurrency=100, on_result=results.append,
                  on_cycle=lambda r: None, confirm=confirm, confirm_skip=skip)
    probe.scheduler = s
    return s


# --- the scheduler --------------------------------------------------------------------------------


async def test_a_single_miss_answered_by_the_first_reprobe_counts_once_as_ok() -> None:
    probe = ScriptedProbe({"D": [False, True]})
    results: list[ProbeResult] = []
    await scheduler(probe, [device("D")], ConfirmConfig(count=3, spacing_s=0.2), results).run_once()
    (r,) = results
    assert (r.ok, r.reason, r.confirmations) == (True, None, 1)
    # The scheduled probe's measurement (attempt 1), with up the verdict; re-probed at once.
    assert dict(r.fields) == {"up": True, "attempt": 1}
    assert len(probe.calls) == 2 and probe.calls[1][0] - probe.calls[0][0] < 0.1


async def test_a_dead_device_is_reprobed_count_times_spacing_apart_and_reported_once() -> None:
    probe = ScriptedProbe({"D": [False]}, duration_s=0.05)
    results: list[ProbeResult] = []
    s = scheduler(probe, [device("D")], ConfirmConfig(count=3, spacing_s=0.2), results)
    await s.run_once()
    (r,) = results
    assert (r.ok, r.reason, r.confirmations, dict(r.fields)) == (False, "miss 1", 3, {"up": False, "attempt": 1})
    starts = [t for t, _ in probe.calls]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 4
    assert gaps[0] < 0.15, gaps  # at once after the miss (one probe's duration), not after the spacing
    assert all(0.25 <= g < 0.5 for g in gaps[1:]), gaps  # duration + spacing
    assert s.confirmations == {"failed": 1} and s.confirming == 0
    assert s.last_report is not None and (s.last_report.ok, s.last_report.failed) == (0, 1)


async def test_off_ok_results_and_failing_devices_are_not_reprobed() -> None:
    results: list[ProbeResult] = []
    off = ScriptedProbe({"D": [False]})
    await scheduler(off, [device("D")], ConfirmConfig(count=0), results).run_once()
    fine = ScriptedProbe({"D": [True]})
    await scheduler(fine, [device("D")], ConfirmConfig(count=2), results).run_once()
    known = ScriptedProbe({"D": [False]})
    await scheduler(known, [device("D")], ConfirmConfig(count=2), results, skip=lambda d: True).run_once()
    assert [len(p.calls) for p in (off, fine, known)] == [1, 1, 1]
    assert [r.confirmations for r in results] == [0, 0, 0]


async def test_the_cap_bounds_devices_confirmed_at_once_and_the_rest_pass_unconfirmed() -> None:
    ids = [f"D{i}" for i in range(20)]
    probe = ScriptedProbe({d: [False] for d in ids}, duration_s=0.1)
    results: list[ProbeResult] = []
    s = scheduler(probe, [device(d) for d in ids], ConfirmConfig(count=2, spacing_s=0.1, max_concurrent=3), results)
    await s.run_once()
    assert len(results) == 20 and not any(r.ok for r in results)
    assert probe.max_confirming == 3
    assert sorted(r.confirmations for r in results) == [0] * 17 + [2] * 3
    assert s.confirmations == {"failed": 3, "capped": 17} and s.confirming == 0
    assert len(probe.calls) == 20 + 3 * 2  # the load added is bounded by the cap


async def test_cancelling_during_a_confirmation_leaves_nothing_counted_as_running() -> None:
    probe = ScriptedProbe({"D": [False]}, duration_s=0.05)
    s = scheduler(probe, [device("D")], ConfirmConfig(count=5, spacing_s=1.0), [])
    task = asyncio.create_task(s.run())
    await asyncio.sleep(0.3)
    assert s.confirming == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert s.confirming == 0


async def test_metrics_show_devices_confirming_and_the_outcomes() -> None:
    from monitor.app.selfmetrics import Health, exposition

    ids = [f"D{i}" for i in range(4)]
    probe = ScriptedProbe({"D0": [False, True], "D1": [False], "D2": [False], "D3": [False]}, duration_s=0.05)
    s = scheduler(probe, [device(d) for d in ids], ConfirmConfig(count=1, max_concurrent=2), [])
    await s.run_once()
    page = exposition(Health(now_ns=time.time_ns(), version="t", schedulers=[s], sink=None, spool_bytes=None,
                             outbox={}, disabled_routes={}, faults_open={}, statedb_failing=False))
    lines = set(page.splitlines())
    assert 'fleetmon_scheduler_confirming{probe="scripted"} 0.0' in lines
    assert {f'fleetmon_confirmations_total{{outcome="{o}",probe="scripted"}} {n}.0'
            for o, n in (("answered", 1), ("failed", 1), ("capped", 2))} <= lines, page


# --- the tracker ----------------------------------------------------------------------------------


def test_a_confirmed_miss_counts_its_reprobes_towards_down_after() -> None:
    inv = Inventory([device("A"), device("B")])
    tr = StateTracker(inv, "icmp", down_after=3, up_after=2)
    for d in ("A", "B"):
        tr.observe(ProbeResult(d, "icmp", 1, True))
    t = tr.observe(ProbeResult("A", "icmp", 2, False, "timeout", confirmations=2))
    assert t is not None and (t.old, t.new, t.ts_ns) == (State.UP, State.DOWN, 2) and tr.failing("A")
    # Unconfirmed (confirmation off, or the cap reached): down_after cycles, as before.
    assert tr.observe(ProbeResult("B", "icmp", 2, False, "timeout")) is None
    assert tr.observe(ProbeResult("B", "icmp", 3, False, "timeout", confirmations=0)) is None
    assert not tr.failing("B") and tr.state("B") is State.UP
    # One re-probe is not enough for down_after 3 on its own; the next cycle's miss is.
    tr2 = StateTracker(inv, "icmp", down_after=3, up_after=2)
    assert tr2.observe(ProbeResult("A", "icmp", 1, False, "timeout", confirmations=1)) is None
    assert tr2.observe(ProbeResult("A", "icmp", 2, False, "timeout")).new is State.DOWN
    # The way back up still takes up_after good results (hysteresis against flapping).
    assert tr.observe(ProbeResult("A", "icmp", 4, True, confirmations=1)) is None
    assert tr.observe(ProbeResult("A", "icmp", 5, True)).new is State.UP
    assert not tr.failing("nobody")


def test_a_confirmed_child_of_a_parent_whose_miss_was_not_confirmed_is_unreachable_not_down() -> None:
    # A whole site dark with more misses than confirmation slots: the link's miss passed on
    # unconfirmed (capped), a camera behind it got a slot. The camera is no root cause.
    from monitor.core.model import Kind

    inv = Inventory([device("L", Kind.LINK), device("C", parent="L")])
    tr = StateTracker(inv, "icmp", down_after=3, up_after=2)
    for d in ("L", "C"):
        tr.observe(ProbeResult(d, "icmp", 1, True))
    assert tr.observe(ProbeResult("L", "icmp", 2, False, "timeout")) is None  # capped: streak 1, still up
    t = tr.observe(ProbeResult("C", "icmp", 3, False, "timeout", confirmations=2))
    assert (t.new, t.reason) == (State.UNREACHABLE, "parent L missed its probe")
    assert tr.reconcile(4) == []
    # The link confirmed down next cycle: the camera stays unreachable, now for that reason.
    assert tr.observe(ProbeResult("L", "icmp", 5, False, "timeout", confirmations=2)).new is State.DOWN
    assert tr.state("C") is State.UNREACHABLE
    # Had the link answered instead, the camera would be the root cause once reconciled.
    tr2 = StateTracker(inv, "icmp", down_after=3, up_after=2)
    for d in ("L", "C"):
        tr2.observe(ProbeResult(d, "icmp", 1, True))
    tr2.observe(ProbeResult("L", "icmp", 2, False, "timeout"))
    tr2.observe(ProbeResult("C", "icmp", 3, False, "timeout", confirmations=2))
    tr2.observe(ProbeResult("L", "icmp", 4, True))
    assert [(t.device_id, t.new) for t in tr2.reconcile(5)] == [("C", State.DOWN)]


def test_result_dict_carries_confirmations_and_old_dicts_read_as_none() -> None:
    r = ProbeResult("A", "icmp", 1, False, "timeout", {"up": False}, confirmations=2)
    assert ProbeResult.from_dict(r.to_dict()) == r
    old = r.to_dict()
    del old["confirmations"]
    assert ProbeResult.from_dict(old).confirmations == 0


# --- config ---------------------------------------------------------------------------------------


def config_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [m.replace(str(path), "config.yaml") for m in info.value.messages]


def test_confirm_defaults_off_in_code_and_on_in_the_shipped_config() -> None:
    assert IcmpConfig().confirm.count == 0
    shipped = load_config(REPO / "config.yaml").probes.icmp.confirm
    assert (shipped.count, shipped.spacing_s, shipped.max_concurrent) == (2, 1.0, 100)


@pytest.mark.parametrize(("body", "expected"), [
    ("count: 11", "config.yaml:5: probes.icmp.confirm.count: Input should be less than or equal to 10"),
    ("count: -1", "config.yaml:5: probes.icmp.confirm.count: Input should be greater than or equal to 0"),
    ("spacing_s: -0.5", "config.yaml:5: probes.icmp.confirm.spacing_s: Input should be greater than or equal to 0"),
    ("max_concurrent: 0", "config.yaml:5: probes.icmp.confirm.max_concurrent: Input should be greater than or equal to 1"),
    ("cout: 2", "config.yaml:5: probes.icmp.confirm.cout: unknown key, did you mean 'count'?"),
])
def test_bad_confirm_values_are_located_errors(tmp_path: Path, body: str, expected: str) -> None:
    assert config_errors(tmp_path, f"probes:\n  icmp:\n    interval_s: 30\n    confirm:\n      {body}\n") == [expected]


@pytest.mark.parametrize(("probe", "interval", "silent_s"), [("icmp", 10, 1.4), ("rtsp", 30, 5), ("onvif", 30, 5)])
def test_confirmations_longer_than_half_the_interval_are_refused(tmp_path: Path, probe: str, interval: int,
                                                                 silent_s: float) -> None:
    text = f"probes:\n  {probe}:\n    interval_s: {interval}\n    confirm: {{count: 4, spacing_s: 1}}\n"
    (message,) = config_errors(tmp_path, text)
    worst = 4 * (silent_s + 1)
    assert message.startswith(f"config.yaml:2: probes.{probe}: ")
    assert f"4 re-probes of up to {silent_s:g} s, 1 s apart, take up to {worst:g} s, more than half of interval_s {interval}" in message


def test_rtsp_and_onvif_take_confirm_too_and_snmp_does_not(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("probes:\n  rtsp: {confirm: {count: 1}}\n  onvif: {confirm: {count: 2, spacing_s: 2}}\n")
    cfg = load_config(path)
    assert (cfg.probes.rtsp.confirm.count, cfg.probes.onvif.confirm.spacing_s) == (1, 2.0)
    assert config_errors(tmp_path, "probes:\n  snmp:\n    confirm: {count: 1}\n")[0].startswith(
        "config.yaml:3: probes.snmp.confirm: unknown key")


# --- the real ICMP engine against lab devices -----------------------------------------------------

LAB_ICMP = {"count": 1, "echo_interval_ms": 50, "timeout_s": 0.5, "interval_s": 10}


@pytest.mark.root
async def test_lab_lost_probe_stays_up_dead_goes_down_in_one_cycle_cap_holds(labnet) -> None:
    from tests.test_icmp import lab_site

    lab = labnet()
    addresses = lab_site(lab, "conf", 8)
    healthy, blip, dead, *crowd = [device(f"D{i}", address=a) for i, a in enumerate(addresses)]
    devices = [healthy, blip, dead, *crowd]
    inv = Inventory(devices)
    tracker = StateTracker(inv, "icmp", down_after=3, up_after=2)
    results: list[ProbeResult] = []

    def on_result(r: ProbeResult) -> None:
        results.append(r)
        tracker.observe(r)

    cfg = IcmpConfig(**LAB_ICMP, confirm={"count": 2, "spacing_s": 0.3, "max_concurrent": 2})
    lab.set_down([blip.address, dead.address, *(d.address for d in crowd)])
    async with IcmpProbe(cfg) as probe:
        s = Scheduler(probe, [healthy, blip, dead], interval_s=10, spread=0.0, max_concurrency=100,
                      on_result=on_result, on_cycle=lambda r: None, confirm=cfg.confirm, confirm_skip=tracker.failing)
        # The blip device's first echo is lost (blackholed when sent); it is back 0.2 s later.
        asyncio.get_running_loop().call_later(0.2, lab.set_up, [blip.address])
        await s.run_once()
        by_id = {r.device_id: r for r in results}
        assert (by_id[healthy.id].ok, by_id[healthy.id].confirmations) == (True, 0)
        b = by_id[blip.id]
        assert (b.ok, b.confirmations, b.fields["received"], b.fields["up"]) == (True, 1, 0, True)
        d = by_id[dead.id]
        assert (d.ok, d.confirmations, d.reason) == (False, 2, "timeout")
        assert {i: tracker.state(i) for i in (healthy.id, blip.id, dead.id)} == {
            healthy.id: State.UP, blip.id: State.UP, dead.id: State.DOWN}

        # Next cycle: the dead device is failing already, its miss is not re-probed.
        results.clear()
        await s.run_once()
        assert [r.confirmations for r in results if r.device_id == dead.id] == [0]
        assert s.confirmations == {"answered": 1, "failed": 1}

        # Five devices dark at once, at most 2 confirmed at a time: the rest pass unconfirmed.
        results.clear()
        crowded = Scheduler(probe, crowd, interval_s=10, spread=0.0, max_concurrency=100, on_result=on_result,
                            on_cycle=lambda r: None, confirm=cfg.confirm, confirm_skip=tracker.failing)
        await crowded.run_once()
        assert sorted(r.confirmations for r in results) == [0, 0, 0, 2, 2]
        assert crowded.confirmations == {"failed": 2, "capped": 3}
        assert sorted(tracker.state(d.id) for d in crowd) == sorted([State.DOWN] * 2 + [State.UNKNOWN] * 3)


@pytest.mark.root
async def test_daemon_confirms_a_dead_camera_within_the_cycle_that_sees_it(labnet, tmp_path: Path) -> None:
    import yaml

    from lab.fleet import build_small_fleet
    from tests.plugins.daemon import running_daemon, until

    fleet = build_small_fleet(labnet(), regions=["R"], sites_per_region=1, cameras_per_site=3)
    fleet.write_point_list(tmp_path / "points.csv")
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {**LAB_ICMP, "interval_s": 2.5, "timeout_s": 0.3,
                            "confirm": {"count": 2, "spacing_s": 0.2}},
                   "rtsp": {"enabled": False}},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 3, "up_after": 2},
        "influxdb": {"enabled": False},
        "api": {"enabled": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    async with running_daemon(path) as d:
        camera = "CAM-0001"
        assert d.snapshot.states[camera] is State.UP
        failed_after = d.snapshot.cycle.cycle
        fleet.fail(camera)
        seen_in = await until(lambda: d.snapshot.cycle.cycle if d.snapshot.states[camera] is State.DOWN else None,
                              15, "the camera down")
        # Its miss comes in the cycle running now or the next; without the re-probes down_after 3
        # would take two more cycles after that.
        assert seen_in - failed_after <= 2
