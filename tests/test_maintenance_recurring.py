"""Maintenance windows for points and on a schedule (每周二 01:00–05:00 光缆割接): the
occurrences a rule makes (in the zone, across DST), faults inside an occurrence not notified
and one a minute after it notified, windows_between over a month giving exactly the Tuesdays,
a point-only window, the exclusions in the availability layer, and bad input refused with
its place (config lines, API fields). Real SQLite state databases throughout."""

from __future__ import annotations

import json
from dataclasses import replace
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.app.config import check_maintenance_devices, load_config
from monitor.assess.timeline import exclusion_layer
from monitor.core.config_base import ConfigError, SelectorConfig
from monitor.core.model import Kind
from monitor.fleet.inventory import Inventory, load_inventory
from monitor.state.db import StateDB
from rules.alerting.config import MaintenanceMatch, MaintenanceWindowConfig
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook, windows_between
from rules.alerting.notifiers.base import RouteConfigBase
from rules.alerting.recurrence import Recurrence, RuleError, parse_duration_s, parse_every
from rules.base import Condition
from rules.model import Severity
from tests.plugins.factories import device, fault

S = 1_000_000_000
SH = ZoneInfo("Asia/Shanghai")
INV = Inventory([
    device("SW1", Kind.SWITCH, site="S1", region="河西乡"),
    device("CAM-1", site="S1", region="河西乡", parent="SW1"),
    device("CAM-2", site="S1", region="河西乡", parent="SW1"),
    device("CAM-9", site="S9", region="城关镇"),
])


def ns(*args: int, zone: ZoneInfo = SH) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp()) * S


def local(ts_ns: int, zone: ZoneInfo = SH) -> datetime:
    return datetime.fromtimestamp(ts_ns / S, UTC).astimezone(zone)


def tuesdays(**kw) -> MaintenanceWindowConfig:
    return MaintenanceWindowConfig.model_validate({
        "match": kw.pop("match", {"region": ["河西乡"]}), "every": "tue 01:00", "duration": "4h",
        "from": "2026-11-01", "reason": "光缆割接", **kw,
    })


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "cron"), [
    ("tue 01:00", "0 1 * * 2"),
    ("Tuesday 1:00", "0 1 * * 2"),
    ("mon,thu 22:30", "30 22 * * 1,4"),
    ("mon-fri 02:00", "0 2 * * 1-5"),
    ("daily 03:15", "15 3 * * *"),
    ("0 1 * * 2", "0 1 * * 2"),
])
def test_rules_become_cron_expressions(text, cron):
    assert parse_every(text) == cron


@pytest.mark.parametrize(("text", "reason"), [
    ("tus 01:00", "unknown weekday 'tus'"),
    ("tue 25:00", "not a time of day"),
    ("tue", "write days and a local time"),
    ("0 1 * * 9", "not a valid 5-field cron"),
    ("0 0 30 2 *", "never occurs"),
    ("mon- 01:00", "not a weekday or a range"),
])
def test_bad_rules_say_what_is_wrong(text, reason):
    with pytest.raises(RuleError, match=reason):
        parse_every(text)


@pytest.mark.parametrize(("value", "seconds"), [("4h", 14400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800),
                                                 (600, 600), ("31d", 31 * 86400)])
def test_durations(value, seconds):
    assert parse_duration_s(value) == seconds


@pytest.mark.parametrize(("value", "reason"), [("0h", "longer than zero"), (-60, "longer than zero"),
                                                ("-3", "longer than zero"), ("32d", "at most 31 days"),
                                                ("4 hours", "write it as")])
def test_bad_durations(value, reason):
    with pytest.raises(RuleError, match=reason):
        parse_duration_s(value)


def test_occurrences_keep_the_wall_clock_across_dst():
    """Europe/Berlin changes to summer time on 2026-03-29 at 02:00: a Sunday 01:00 window stays
    at 01:00 local (00:00 UTC before, 23:00 UTC the day before after); one at 02:30 does not exist
    that day and falls an hour later; the duration stays 4 h of elapsed time."""
    berlin = ZoneInfo("Europe/Berlin")
    rule = Recurrence(parse_every("sun 01:00"), 4 * 3600 * S, "Europe/Berlin")
    got = list(rule.occurrences(ns(2026, 3, 20, zone=berlin), ns(2026, 4, 10, zone=berlin)))
    assert [local(s, berlin).strftime("%m-%d %H:%M") for s, _ in got] == ["03-22 01:00", "03-29 01:00", "04-05 01:00"]
    assert [datetime.fromtimestamp(s / S, UTC).strftime("%m-%d %H:%M") for s, _ in got] == [
        "03-22 00:00", "03-29 00:00", "04-04 23:00"]
    assert all(e - s == 4 * 3600 * S for s, e in got)
    gap = Recurrence(parse_every("sun 02:30"), 3600 * S, "Europe/Berlin")
    (s, _), = gap.occurrences(ns(2026, 3, 29, zone=berlin), ns(2026, 3, 30, zone=berlin))
    assert local(s, berlin).strftime("%H:%M %Z") == "03:30 CEST"
    # Fall back (2026-10-25, 03:00 → 02:00): 02:30 happens twice; the window starts once.
    back = list(gap.occurrences(ns(2026, 10, 25, zone=berlin), ns(2026, 10, 26, zone=berlin)))
    assert len(back) == 1


# --- windows_between: exactly the occurrences ------------------------------------------------------


async def test_windows_between_over_a_month_gives_exactly_its_tuesdays(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        await MaintenanceBook.load(db, INV, [tuesdays()], "Asia/Shanghai")
        conn = sqlite3.connect(tmp_path / "s.db")
        december = windows_between(conn, ns(2026, 12, 1), ns(2027, 1, 1))
        february = windows_between(conn, ns(2027, 2, 1), ns(2027, 3, 1))
    assert [local(w.start_ns).strftime("%a %d %H:%M") for w in december] == [
        "Tue 01 01:00", "Tue 08 01:00", "Tue 15 01:00", "Tue 22 01:00", "Tue 29 01:00"]
    assert [local(w.start_ns).day for w in february] == [2, 9, 16, 23]
    assert all(w.end_ns - w.start_ns == 4 * 3600 * S for w in december + february)
    assert {(w.id, w.reason, w.every) for w in december} == {(1, "光缆割接", "tue 01:00")}


async def test_from_until_bound_the_schedule_and_an_ended_one_stops_at_its_end(tmp_path):
    """until is the last day an occurrence may start (its occurrence runs whole); an ad hoc
    schedule ended early ends then, the occurrence running at that moment cut there."""
    window = tuesdays(**{"from": "2026-12-08", "until": "2026-12-22"})
    async with StateDB(tmp_path / "s.db") as db:
        await MaintenanceBook.load(db, INV, [window], "Asia/Shanghai")
        conn = sqlite3.connect(tmp_path / "s.db")
        got = windows_between(conn, ns(2026, 12, 1), ns(2027, 1, 1))
        assert [local(w.start_ns).day for w in got] == [8, 15, 22]
        # The same rule stored as an ad hoc one ended on Tue 15th at 02:00, in the middle of an occurrence.
        conn.execute("UPDATE maintenance SET source='api', deleted_ns=? WHERE id=1", (ns(2026, 12, 15, 2),))
        conn.commit()
        got = windows_between(conn, ns(2026, 12, 1), ns(2027, 1, 1))
    assert [(local(w.start_ns).day, local(w.end_ns).strftime("%H:%M")) for w in got] == [(8, "05:00"), (15, "02:00")]


async def test_recurring_occurrences_are_the_exclusions_of_the_availability_layer(tmp_path):
    """Availability reads windows_between and paints each window matching a point: every
    occurrence appears with the window's reason and number, nothing between them."""
    async with StateDB(tmp_path / "s.db") as db:
        await MaintenanceBook.load(db, INV, [tuesdays(match={"devices": ["CAM-1"]})], "Asia/Shanghai")
        windows = windows_between(sqlite3.connect(tmp_path / "s.db"), ns(2026, 12, 1), ns(2027, 1, 1))

    class History:  # only what exclusion_layer reads: the point's first evidence, no status history
        first_seen = {"CAM-1": ns(2026, 1, 1), "CAM-2": ns(2026, 1, 1)}
        statuses: dict = {}

    pairs = [(w, w.match.selector()) for w in windows]
    _, evidence = exclusion_layer(INV.devices["CAM-1"], History, ns(2026, 12, 1), ns(2027, 1, 1), pairs, ())
    assert [(local(e.start_ns).strftime("%d %H:%M"), local(e.end_ns).strftime("%H:%M"), e.kind, e.reason)
            for e in evidence] == [
        (f"{d:02d} 01:00", "05:00", "maintenance", "光缆割接 (maintenance #1)") for d in (1, 8, 15, 22, 29)]
    _, neighbour = exclusion_layer(INV.devices["CAM-2"], History, ns(2026, 12, 1), ns(2027, 1, 1), pairs, ())
    assert neighbour == []


# --- suppression: exactly the occurrences ---------------------------------------------------------


def down(dev: str) -> Condition:
    d = INV.devices[dev]
    return Condition("down", "device_down", f"device:{dev}", Severity.MAJOR, f"{dev}离线", 0.0, 0.0,
                     device_id=dev, site=d.site, region=d.region)


def notified(path: Path) -> list[tuple[str, str]]:
    rows = sqlite3.connect(path).execute("SELECT event FROM outbox ORDER BY id").fetchall()
    return [(json.loads(e)["event"], json.loads(e)["fault"]["device_id"]) for (e,) in rows]


async def test_a_recurring_window_suppresses_exactly_its_occurrences(tmp_path):
    path = tmp_path / "s.db"
    tue = ns(2027, 1, 19, 1)  # an occurrence: Tuesday 01:00–05:00
    end = tue + 4 * 3600 * S
    async with StateDB(path) as db:
        maintenance = await MaintenanceBook.load(db, INV, [tuesdays()], "Asia/Shanghai")
        faults = await FaultBook.load(db, INV, [RouteConfigBase(name="duty")], maintenance)
        a = down("CAM-1")
        # Fires inside the occurrence and clears inside it: never notified.
        await faults.apply({a.key: a}, tue + 60 * S)
        assert [f.in_maintenance for f in faults.open_faults()] == [True]
        await faults.apply({}, end - 60 * S)
        await faults.apply({}, end - 30 * S)
        assert notified(path) == []
        # Fires one minute after the occurrence ended: notified.
        b = down("CAM-2")
        await faults.apply({b.key: b}, end + 60 * S)
        assert notified(path) == [("firing", "CAM-2")]
        await faults.apply({}, end + 120 * S)
        # The next Tuesday's occurrence suppresses again; Monday in between does not.
        c = down("SW1")
        await faults.apply({c.key: c}, tue + 7 * 86400 * S + 3600 * S)
        assert notified(path)[2:] == []
        await faults.apply({}, tue + 7 * 86400 * S + 2 * 3600 * S)
        await faults.apply({c.key: c}, tue + 6 * 86400 * S)
        assert notified(path)[2:] == [("firing", "SW1")]


async def test_a_point_only_window_covers_that_point_and_not_its_neighbour(tmp_path):
    now = ns(2027, 1, 19, 2)
    one_off = MaintenanceWindowConfig(
        match=MaintenanceMatch(devices=["CAM-1"]), start=local(now - 3600 * S), end=local(now + 3600 * S),
        reason="更换镜头",
    )
    async with StateDB(tmp_path / "s.db") as db:
        book = await MaintenanceBook.load(db, INV, [one_off], "Asia/Shanghai")
        faults = await FaultBook.load(db, INV, [RouteConfigBase(name="duty")], book)
        a, b = down("CAM-1"), down("CAM-2")
        await faults.apply({a.key: a, b.key: b}, now)
        assert notified(tmp_path / "s.db") == [("firing", "CAM-2")]
    assert book.device_covered("CAM-1", now).reason == "更换镜头"
    assert book.device_covered("CAM-2", now) is None
    assert book.device_covered("CAM-1", now + 3601 * S) is None
    # A point-only window covers no group fault (the site's); a site window does.
    site_fault = fault(1, scope="site:S1", device_id=None, site="S1", region="河西乡")
    assert not book.covers(site_fault, now)
    assert book.covers(replace(site_fault, device_id="CAM-1"), now)


async def test_old_rows_and_old_configs_stay_valid_and_a_removed_config_window_ends(tmp_path):
    """A one-off config window stored by the previous schema (no devices key in its selector, no
    config_key) is recognised, not stored twice; a window taken out of the config ends at the
    next load, kept for the record."""
    path = tmp_path / "s.db"
    start, end = ns(2099, 1, 1), ns(2099, 1, 2)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
        "INSERT INTO schema_versions VALUES ('maintenance', 1);"
    )
    from rules.alerting.maintenance import SCHEMA
    conn.executescript(SCHEMA.migrations[0])
    conn.execute("INSERT INTO maintenance (selector, start_ns, end_ns, reason, created_by, created_ns, source) "
                 "VALUES (?, ?, ?, '割接', 'config', 0, 'config')",
                 (SelectorConfig(region=["河西乡"]).model_dump_json(), start, end))
    conn.commit()
    old = MaintenanceWindowConfig(match=SelectorConfig(region=["河西乡"]), start=local(start), end=local(end),
                                  reason="割接")
    async with StateDB(path) as db:
        book = await MaintenanceBook.load(db, INV, [old, tuesdays()])
        assert [(w.id, w.every) for w in book.windows()] == [(2, "tue 01:00"), (1, None)]
        assert conn.execute("SELECT count(*) FROM maintenance").fetchone() == (2,)
        book = await MaintenanceBook.load(db, INV, [old])
        assert [w.id for w in book.windows()] == [1]
    ended = conn.execute("SELECT id, deleted_ns IS NOT NULL FROM maintenance ORDER BY id").fetchall()
    assert ended == [(1, 0), (2, 1)]


# --- bad input, located ---------------------------------------------------------------------------


def write_config(tmp_path: Path, maintenance: list[dict]) -> Path:
    doc = {
        "inventory": {"devices": [
            {"id": "CAM-1", "name": "一号", "kind": "camera", "address": "198.18.0.1", "site": "S1", "region": "河西乡"},
        ]},
        "influxdb": {"enabled": False},
        "maintenance": maintenance,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


BASE = {"match": {"region": ["河西乡"]}, "reason": "割接"}


@pytest.mark.parametrize(("entry", "key", "where", "reason"), [
    ({**BASE, "every": "tus 01:00", "duration": "4h"}, "every:", "maintenance[0].every", "unknown weekday 'tus'"),
    ({**BASE, "every": "tue 01:00", "duration": "0h"}, "duration:", "maintenance[0].duration", "longer than zero"),
    ({**BASE, "every": "tue 01:00", "duration": -60}, "duration:", "maintenance[0].duration", "longer than zero"),
    ({**BASE, "every": "tue 01:00", "duration": "32d"}, "duration:", "maintenance[0].duration", "at most 31 days"),
    ({**BASE, "every": "tue 01:00", "duration": "4h", "from": "2027-02-01", "until": "2027-01-01"}, "until:",
     "maintenance[0].until", "until 2027-01-01 is before from 2027-02-01"),
    ({**BASE, "every": "tue 01:00"}, "- match:", "maintenance[0]", "every needs a duration"),
    ({**BASE, "start": "2027-01-01T00:00:00+08:00", "end": "2027-03-01T00:00:00+08:00"}, "- match:", "maintenance[0]",
     "at most 31 days"),
    ({**BASE, "start": "2027-01-01T00:00:00+08:00", "end": "2027-01-01T04:00:00+08:00", "every": "tue 01:00",
      "duration": "4h"}, "- match:", "maintenance[0]", "not both"),
    ({"match": {"device": ["CAM-1"]}, "reason": "x", "every": "tue 01:00", "duration": "4h"}, "device:",
     "maintenance[0].match.device", "unknown key, did you mean 'devices'"),
])
def test_bad_windows_in_the_config_are_located(tmp_path, entry, key, where, reason):
    path = write_config(tmp_path, [entry])
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (message,) = caught.value.messages
    assert message.startswith(f"{path}:{line_of(path, key)}: {where}: ") and reason in message, message


def test_an_unknown_device_id_in_the_config_is_located(tmp_path):
    path = write_config(tmp_path, [{"match": {"devices": ["CAM-1", "CAM-404"]}, "every": "tue 01:00",
                                    "duration": "4h", "reason": "割接"}])
    cfg = load_config(path)
    with pytest.raises(ConfigError) as caught:
        check_maintenance_devices(cfg, load_inventory(cfg))
    assert caught.value.messages == [
        f"{path}:{line_of(path, '- CAM-404')}: maintenance[0].match.devices[1]: unknown device 'CAM-404' "
        "(not in the point list)"]
    # check-config refuses it too, and so do `fleetmon run` and its reloads (supervisor.load).
    from monitor.app.cli import main
    from monitor.app.supervisor import load

    assert main(["check-config", str(path)]) == 1  # problems found
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "maintenance[0].match.devices[1]: unknown device 'CAM-404'" in caught.value.messages[0]


async def test_the_book_refuses_bad_recurring_windows_and_stores_nothing(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        book = await MaintenanceBook.load(db, INV, [])
        match = MaintenanceMatch(devices=["CAM-1", "CAM-404"])
        with pytest.raises(ValueError, match=r"match.devices\[1\]: unknown device CAM-404"):
            await book.create_recurring(match, "tue 01:00", 3600, None, None, "割接", "张工")
        with pytest.raises(RuleError, match="unknown weekday"):
            await book.create_recurring(MaintenanceMatch(), "tus 01:00", 3600, None, None, "割接", "张工")
        with pytest.raises(RuleError, match="until 2027-01-01 is before from 2027-02-01"):
            await book.create_recurring(MaintenanceMatch(), "tue 01:00", 3600, date(2027, 2, 1), date(2027, 1, 1),
                                        "割接", "张工")
        with pytest.raises(RuleError, match="no occurrence left"):
            await book.create_recurring(MaintenanceMatch(), "tue 01:00", 3600, date(2020, 1, 1), date(2020, 2, 1),
                                        "割接", "张工")
        with pytest.raises(RuleError, match="31 days"):
            await book.create_recurring(MaintenanceMatch(), "tue 01:00", 32 * 86400, None, None, "割接", "张工")
        assert book.windows() == []
    assert sqlite3.connect(tmp_path / "s.db").execute("SELECT count(*) FROM maintenance").fetchone() == (0,)


def test_next_occurrences_start_with_the_running_one():
    rule = Recurrence(parse_every("tue 01:00"), 4 * 3600 * S, "Asia/Shanghai")
    from rules.alerting.maintenance import MaintenanceWindow

    w = MaintenanceWindow(1, MaintenanceMatch(), ns(2026, 1, 1), 2**62, "割接", "config", "config", "tue 01:00", rule)
    now = ns(2027, 1, 19, 3)
    got = w.next_occurrences(now, 3)
    assert [local(s).strftime("%m-%d %H:%M") for s, _ in got] == ["01-19 01:00", "01-26 01:00", "02-02 01:00"]
    assert w.active(now) and not w.active(now + 2 * 3600 * S)
    assert local(now).date() + timedelta(days=7) == local(got[1][0]).date()
