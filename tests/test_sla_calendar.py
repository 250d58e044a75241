"""Working time and SLA clocks: business-hour deadlines across a weekend, a holiday, a 调休
Saturday and midnight, hand-computed; the shipped presets and calendar; bad config and bad
holiday files with located errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from monitor.assess.calendar import CalendarError, WorkCalendar, load_days
from monitor.assess.config_workorders import (
    PRESETS_DIR, CalendarConfig, Clock, SlaConfig, WorkOrderConfig, load_preset, parse_duration, preset_names,
)
from monitor.assess.orders import Resolution, Source, WorkOrder
from monitor.assess.sla import ClockState, Sla
from monitor.core.model import Kind
from rules.model import Severity

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = PRESETS_DIR / "calendar-cn-2026.example.yaml"
H, M = 3600, 60


def at(text: str) -> int:
    """'2026-12-04 16:30' in Shanghai → UTC ns."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SH).timestamp()) * 10**9


def local(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 10**9, SH).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def cal() -> WorkCalendar:
    """Mon–Fri 09:00–17:30 with the 2026 example holidays."""
    return WorkCalendar.from_config(CalendarConfig(file=EXAMPLE), "Asia/Shanghai")


# -- business-hour arithmetic (hand-computed) ---------------------------------------------------


@pytest.mark.parametrize("start, hours, expected, why", [
    # Fri 16:30 → 1 h left on Friday, 3 h on Monday from 09:00.
    ("2026-12-04 16:30", 4, "2026-12-07 12:00", "across a weekend"),
    # Wed 30 Sep 16:00: 1.5 h, then 1–7 Oct 国庆 off, Thu 8 Oct 09:00 + 6.5 h.
    ("2026-09-30 16:00", 8, "2026-10-08 15:30", "across the National Day holiday"),
    # Fri 9 Oct 17:00: 0.5 h, then Sat 10 Oct is a 调休 working day: 09:00 + 1.5 h.
    ("2026-10-09 17:00", 2, "2026-10-10 10:30", "on a 调休 Saturday"),
    # Fri 13 Feb 17:00: 0.5 h, Sat 14 Feb 调休 09:00 + 0.5 h.
    ("2026-02-13 17:00", 1, "2026-02-14 09:30", "the Saturday before Spring Festival"),
    # Sat 14 Feb 16:00 (调休): 1.5 h, 15–23 Feb 春节, Tue 24 Feb 09:00 + 2.5 h.
    ("2026-02-14 16:00", 4, "2026-02-24 11:30", "across Spring Festival"),
    # Reported on a Sunday night: the clock starts Monday 09:00.
    ("2026-12-06 23:00", 1, "2026-12-07 10:00", "reported outside working time"),
    # Exactly the rest of the day: the deadline is the end of the span, not the next morning.
    ("2026-12-04 13:30", 4, "2026-12-04 17:30", "ending at closing time"),
])
def test_business_deadlines(cal, start, hours, expected, why):
    assert local(cal.add(at(start), hours * H)) == expected, why


def test_working_seconds_between_two_instants(cal):
    # Fri 17:00–17:30 and Mon 09:00–10:00.
    assert cal.between(at("2026-12-04 17:00"), at("2026-12-07 10:00")) == 1.5 * H
    # 30 Sep 17:00 → 8 Oct 09:30: 0.5 h + 0.5 h; the holiday week counts nothing.
    assert cal.between(at("2026-09-30 17:00"), at("2026-10-08 09:30")) == 1 * H
    assert cal.between(at("2026-12-07 10:00"), at("2026-12-07 10:00")) == 0


def test_in_hours_at_the_edges_weekends_holidays_and_swapped_days(cal):
    assert cal.in_hours(at("2026-12-04 09:00")) and not cal.in_hours(at("2026-12-04 17:30"))
    assert not cal.in_hours(at("2026-12-05 10:00"))  # Saturday
    assert not cal.in_hours(at("2026-10-05 10:00"))  # Monday in the National Day week
    assert cal.in_hours(at("2026-09-20 10:00"))  # Sunday worked (调休)


def test_a_deadline_crossing_midnight():
    # Working until midnight: 23:00 + 2 working hours = 1 h tonight, 1 h from 08:00 tomorrow.
    cal = WorkCalendar.from_config(CalendarConfig(hours=["08:00-24:00"]), "Asia/Shanghai")
    assert local(cal.add(at("2026-12-03 23:00"), 2 * H)) == "2026-12-04 09:00"
    # Round the clock: 23:30 + 1 h = 00:30 (Thursday into Friday).
    cal = WorkCalendar.from_config(CalendarConfig(hours=["00:00-24:00"]), "Asia/Shanghai")
    assert local(cal.add(at("2026-12-03 23:30"), 1 * H)) == "2026-12-04 00:30"


def test_a_lunch_break_does_not_count():
    cal = WorkCalendar.from_config(CalendarConfig(hours=["09:00-12:00", "13:30-17:30"]), "Asia/Shanghai")
    # 11:00 + 2 h = 1 h before lunch, 1 h after: 14:30.
    assert local(cal.add(at("2026-12-04 11:00"), 2 * H)) == "2026-12-04 14:30"
    assert not cal.in_hours(at("2026-12-04 12:30"))


def test_the_example_calendar_has_the_2026_notice_and_says_it_is_an_example():
    days = load_days(EXAMPLE)
    assert len(days.off) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert sorted(str(d) for d in days.on) == [
        "2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
    assert "EXAMPLE" in EXAMPLE.read_text(encoding="utf-8").splitlines()[0]


def test_a_csv_calendar_with_chinese_types(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("date,type,name\n2026-10-01,放假,国庆\n2026-10-10,上班,调休\n\n", encoding="utf-8")
    days = load_days(path)
    cal = WorkCalendar.from_config(CalendarConfig(file=Path("h.csv")), "Asia/Shanghai", tmp_path)
    assert list(days.on.values()) == ["调休"] and cal.working_day(datetime(2026, 10, 10).date())
    assert not cal.working_day(datetime(2026, 10, 1).date())


@pytest.mark.parametrize("name, text, message", [
    ("a.yaml", "holidays:\n  - {date: 2026-10-01}\n  - {date: 2026-13-01}\n", r"a.yaml:3: holidays\[1\].date"),
    ("b.yaml", "holidays:\n  - {date: 2026-10-07, to: 2026-10-01}\n", r"b.yaml:2: holidays\[0\]: .*'to'"),
    ("c.yaml", "holidays:\n  - {date: 2026-10-10}\nworkdays:\n  - {date: 2026-10-10}\n",
     "both as holiday and as working day: 2026-10-10"),
    ("d.yaml", "holiday:\n  - {date: 2026-10-10}\n", r"d.yaml:1: holiday: Extra inputs"),
    ("e.yaml", "holidays: [\n", "e.yaml:2: YAML syntax error"),
    ("f.csv", "date,type,name\n2026-10-01,off,x\n", r"f.csv:2: type: 'off'"),
    ("g.csv", "day,kind\n", "f?g.csv:1: the header must be date,type,name"),
    ("h.csv", "date,type\n01/10/2026,holiday\n", r"h.csv:2: date: '01/10/2026' is not a date"),
    ("i.txt", "", "is .yaml, .yml or .csv"),
])
def test_bad_holiday_files_are_located(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError, match=message):
        load_days(path)


def test_a_missing_holiday_file_is_a_clear_error(tmp_path):
    with pytest.raises(CalendarError, match="cannot read the holiday calendar"):
        WorkCalendar.from_config(CalendarConfig(file=Path("none.yaml")), "Asia/Shanghai", tmp_path)


# -- config --------------------------------------------------------------------------------------


def test_durations():
    assert parse_duration("15m") == 900 and parse_duration("1h30m") == 5400 and parse_duration("3d") == 259200
    assert parse_duration(90) == 90 and parse_duration("48h") == 48 * H
    for bad in ("soon", "15", "0m", -5, True, "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("doc, message", [
    ({"preset": "nowhere"}, "unknown SLA preset 'nowhere'; shipped: nantong, qionglai, songjiang, zhangjiagang"),
    ({"policies": [{"clocks": {"response": {"within": "soon"}}}]}, "is not a duration"),
    ({"policies": [{"clocks": {"respond": {"within": "1h"}}}]}, "response"),
    ({"policies": [{"clocks": {"response": {"within": "1h", "basis": "business", "off_hours": "3h"}}}]},
     "off_hours is a deadline in calendar time"),
    ({"calendar": {"hours": ["09:00-12:00", "11:00-17:00"]}}, "must be in order and must not overlap"),
    ({"calendar": {"hours": ["25:00-26:00"]}}, "not a time of day"),
    ({"calendar": {"hours": ["17:00-09:00"]}}, "over midnight is two spans"),
    ({"calendar": {"workdays": ["mon", "mon"]}}, "listed twice"),
    ({"warn_at_pct": 100}, "less than 100"),
    ({"presets": "qionglai"}, "Extra inputs are not permitted"),
])
def test_bad_sla_config_is_refused(doc, message):
    with pytest.raises(ValidationError, match=message):
        SlaConfig.model_validate(doc)


def test_bad_workorder_config_is_refused():
    with pytest.raises(ValidationError, match="auto_close"):
        WorkOrderConfig.model_validate({"auto_close": "maybe"})
    with pytest.raises(ValidationError, match="measured bases"):
        WorkOrderConfig.model_validate({"long_offline": {"bases": ["online"]}})
    with pytest.raises(ValidationError, match="listed twice"):
        WorkOrderConfig.model_validate({"routes": ["duty", "duty"]})


# -- presets and clocks ---------------------------------------------------------------------------


def order(severity=Severity.MAJOR, kind=Kind.CAMERA, reported="2026-12-04 10:00", **stamps) -> WorkOrder:
    fields = {k: (at(v) if isinstance(v, str) and k.endswith("_ns") else v) for k, v in stamps.items()}
    return WorkOrder("WO-1", ("C1",), kind, severity, Source.MANUAL, None, "t", at(reported), "duty", **fields)


def sla(preset: str | None = None, policies=(), **cfg) -> Sla:
    return Sla.from_config(SlaConfig(preset=preset, policies=list(policies), **cfg), "Asia/Shanghai")


def states(s: Sla, o: WorkOrder, now: str) -> dict[str, tuple[str, str]]:
    return {c.clock.value: (c.state.value, local(c.deadline_ns)) for c in s.evaluate(o, at(now))}


def test_every_shipped_preset_loads_and_names_its_source():
    assert preset_names() == ["nantong", "qionglai", "songjiang", "zhangjiagang"]
    for name in preset_names():
        preset = load_preset(name)
        assert preset.name == name and preset.source and all(p.source for p in preset.policies)


def test_qionglai_response_restore_remote_or_on_site_and_replacement():
    q = sla("qionglai")
    o = order()
    assert states(q, o, "2026-12-04 10:11") == {
        "response": ("ok", "2026-12-04 10:15"), "restore": ("ok", "2026-12-04 12:00"),
        "replacement": ("ok", "2026-12-07 10:00")}
    assert states(q, o, "2026-12-04 10:12")["response"] == ("warning", "2026-12-04 10:15")  # 80 % of 15 min
    assert states(q, o, "2026-12-04 10:16")["response"][0] == "breached"
    # Marked on site (须现场处理): the 48 h deadline.
    on_site = order(resolution=Resolution.ON_SITE, acknowledged_ns="2026-12-04 10:05")
    assert states(q, on_site, "2026-12-04 13:00") == {
        "response": ("met", "2026-12-04 10:15"), "restore": ("ok", "2026-12-06 10:00"),
        "replacement": ("ok", "2026-12-07 10:00")}
    # Servers are not front-end devices: no replacement clock.
    assert set(states(q, order(kind=Kind.SERVER), "2026-12-04 10:01")) == {"response", "restore"}
    assert q.long_offline_days == 7


def test_nantong_arrival_in_20_minutes_off_hours():
    n = sla("nantong")
    assert states(n, order(reported="2026-12-04 10:00"), "2026-12-04 10:01")["arrival"] == ("ok", "2026-12-04 14:00")
    night = order(reported="2026-12-04 22:00", acknowledged_ns="2026-12-04 22:10", arrived_ns="2026-12-04 22:25")
    assert states(n, night, "2026-12-04 22:30") == {
        "response": ("met", "2026-12-04 22:15"), "arrival": ("missed", "2026-12-04 22:20"),
        "restore": ("ok", "2026-12-05 22:00")}


def test_zhangjiagang_business_hour_response_and_machine_room_clocks():
    z = sla("zhangjiagang")
    assert states(z, order(), "2026-12-04 10:01") == {
        "response": ("ok", "2026-12-04 11:00"), "restore": ("ok", "2026-12-04 18:00")}  # 二级: 1 h / 8 h
    assert states(z, order(reported="2026-12-05 20:00"), "2026-12-05 20:01")["response"] == (
        "ok", "2026-12-05 23:00")  # Saturday night: 3 h
    assert states(z, order(Severity.CRITICAL), "2026-12-04 10:01")["response"] == ("ok", "2026-12-04 10:10")
    room = states(z, order(Severity.MINOR, Kind.SERVER), "2026-12-04 10:01")
    assert room == {"response": ("ok", "2026-12-04 10:30"), "arrival": ("ok", "2026-12-04 13:00"),
                    "restore": ("ok", "2026-12-05 10:00")}
    labels = {c.clock: c.label for c in z.evaluate(order(Severity.MINOR, Kind.SERVER), at("2026-12-04 10:01"))}
    assert labels[Clock.ARRIVAL] == "远程介入"


def test_songjiang_matrix_for_systems_and_48_h_without_a_spare_for_devices():
    s = sla("songjiang")
    assert states(s, order(Severity.CRITICAL, Kind.PLATFORM), "2026-12-04 10:01") == {
        "response": ("ok", "2026-12-04 10:30"), "arrival": ("ok", "2026-12-04 12:00"),
        "restore": ("ok", "2026-12-04 14:00")}
    assert states(s, order(Severity.MINOR, Kind.SERVER), "2026-12-04 10:01") == {
        "response": ("ok", "2026-12-04 12:00"), "restore": ("ok", "2026-12-05 10:00")}
    assert states(s, order(Severity.CRITICAL, Kind.CAMERA), "2026-12-04 10:01")["restore"] == ("ok", "2026-12-04 14:00")
    assert states(s, order(no_spare=True), "2026-12-04 15:00")["restore"] == ("ok", "2026-12-06 10:00")


def test_config_policies_replace_or_remove_a_presets_clocks_and_count_business_hours():
    s = sla("qionglai", [
        {"clocks": {"arrival": {"within": "4h", "basis": "business"}, "replacement": None}},
        {"match": {"severity": ["critical"]}, "clocks": {"response": {"within": "5m"}}},
    ])
    st = states(s, order(reported="2026-12-04 16:00"), "2026-12-04 16:01")
    assert st == {"response": ("ok", "2026-12-04 16:15"), "arrival": ("ok", "2026-12-07 11:30"),
                  "restore": ("ok", "2026-12-04 18:00")}
    assert states(s, order(Severity.CRITICAL), "2026-12-04 10:01")["response"] == ("ok", "2026-12-04 10:05")
    # A remote restore: no arrival clock.
    remote = order(restored_ns="2026-12-04 11:00", resolution=Resolution.REMOTE)
    assert set(states(s, remote, "2026-12-04 12:00")) == {"response", "restore"}


def test_percent_used_is_in_working_time_and_remaining_in_wall_time():
    s = sla(policies=[{"clocks": {"restore": {"within": "4h", "basis": "business"}}}])
    (c,) = s.evaluate(order(reported="2026-12-04 16:30"), at("2026-12-07 10:00"))
    assert c.used_s == 2 * H and c.allowed_s == 4 * H and c.percent_used == 50.0
    assert c.remaining_s == 2 * H and c.state is ClockState.OK
    (c,) = s.evaluate(order(reported="2026-12-04 16:30"), at("2026-12-07 11:30"))
    assert c.state is ClockState.WARNING and c.percent_used == 87.5
