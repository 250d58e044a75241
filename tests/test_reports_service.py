"""Scheduled reports (monitor/reports/service.py) over the generated quarter (tests/plugins/
quarter.py): due reports gathered and built, rendered in child processes, kept, delivered to the
WeCom robot simulator (file upload, file message, summary) and a real SMTP server (lab/smtp.py),
marked done; catch-up after a stop; a WeCom group refusing the upload, a reports directory that
cannot be written, each with the report still made where it can be."""

from __future__ import annotations

import io
import itertools
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from lab.smtp import SmtpServer
from lab.wecom import WeComSimulator
from monitor.reports.config import EmailConfig, ReportsConfig
from monitor.reports.content import build
from monitor.reports.content.gather import gather
from monitor.reports.service import ReportService
from monitor.reports.xlsx import sheet_names
from rules.alerting.notifiers.wecom import WeComConfig
from tests.plugins.quarter import ZONE

_env = itertools.count(1)
NS = 1_000_000_000


def at(text: str) -> int:
    """UTC ns of a local time of the config's zone."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).timestamp()) * NS


def route(sim: WeComSimulator, key: str, monkeypatch) -> WeComConfig:
    env = f"FLEETMON_TEST_SERVICE_KEY_{next(_env)}"
    monkeypatch.setenv(env, key)
    return WeComConfig(name="duty-group", type="wecom", url=sim.url, key_env=env)


def config(directory, smtp: SmtpServer | None = None, **entry) -> ReportsConfig:
    email = None if smtp is None else EmailConfig(host=smtp.host, port=smtp.port, security="none",
                                                    sender="reports@example.cn", to=["buyer@example.cn"])
    return ReportsConfig(directory=directory, schedule=[{"report": "daily", "at": "08:00", **entry}],
                         delivery={"wecom": ["duty-group"], "email": email})


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_the_daily_report_is_made_kept_and_delivered_at_eight(quarter, tmp_path, monkeypatch):
    clock = Clock(at("2026-09-21 07:59"))
    async with quarter.open() as a, WeComSimulator() as sim, SmtpServer() as smtp:
        key = sim.add_robot()
        src = quarter.sources(a)

        async def make(kind, period):
            return build(await gather(kind, period, src, now_ns=clock.now))

        service = ReportService(config(tmp_path / "reports", smtp), ZONE, make, wecom=[route(sim, key, monkeypatch)],
                                clock=clock)
        # Never made before: the latest period whose firing passed (09-20 08:00), once.
        assert [j.label for j, _ in await service.run_due()] == ["2026-09-19"]
        assert await service.run_due() == []  # 07:59: yesterday's report is not due yet
        clock.now = at("2026-09-21 08:00")
        [(job, published)] = await service.run_due()
        assert (job.report, job.label) == ("daily", "2026-09-20")
        assert [p.name for p in published.files] == ["daily_2026-09-20.pdf", "daily_2026-09-20.xlsx"]
        assert published.delivered == ("wecom:duty-group", "email") and published.errors == ()
        assert await service.run_due() == []  # made once
        facts = await gather("daily", quarter_period("2026-09-20"), src, now_ns=clock.now)

    pdf, xlsx = (p.read_bytes() for p in published.files)
    uploads = sim.uploads(key)[2:]
    assert [u.filename for u in uploads] == ["daily_2026-09-20.pdf", "daily_2026-09-20.xlsx"]
    assert [u.data for u in uploads] == [pdf, xlsx]
    messages = sim.messages(key)[3:]
    assert [m.msgtype for m in messages] == ["file", "file", "markdown"]
    summary = messages[-1].content
    camera = next(k for k in build(facts).kpis if k.label == "摄像机在线率").value
    assert "**巡检日报**" in summary and f"摄像机在线率：<font color=\"info\">{camera * 100:.2f}%" in summary
    mail = smtp.messages[-1]
    assert mail.message["Subject"] == "巡检日报 2026-09-20"
    assert sorted(a.get_filename() for a in mail.message.iter_attachments()) == [p.name for p in published.files]
    wb = load_workbook(io.BytesIO(xlsx))
    assert wb.sheetnames[1] == sheet_names(build(facts))[0] == "区域在线率"
    assert service.store.last_runs() == {"daily": "2026-09-20"}
    assert len(smtp.messages) == 2


def quarter_period(label: str):
    from monitor.assess.periods import parse_period

    return parse_period(label, ZONE)


async def test_after_a_stop_the_missed_days_are_made_oldest_first(quarter, tmp_path):
    clock = Clock(at("2026-09-18 09:00"))
    async with quarter.open() as a:
        src = quarter.sources(a)

        async def make(kind, period):
            return build(await gather(kind, period, src, now_ns=clock.now))

        cfg = ReportsConfig(directory=tmp_path, formats=["xlsx"], catch_up=7,
                            schedule=[{"report": "daily", "at": "08:00", "deliver": False}])
        service = ReportService(cfg, ZONE, make, clock=clock)
        assert [j.label for j, _ in await service.run_due()] == ["2026-09-17"]
        clock.now = at("2026-09-21 08:30")  # the daemon was stopped for three days
        made = await service.run_due()
    assert [j.label for j, _ in made] == ["2026-09-18", "2026-09-19", "2026-09-20"]
    assert all(p.delivered == () for _, p in made)  # deliver: false
    assert sorted(f.path.name for f in service.store.files()) == [f"daily_2026-09-{d}.xlsx" for d in (17, 18, 19, 20)]


async def test_a_group_refusing_the_upload_leaves_the_report_kept_and_mailed(quarter, tmp_path, monkeypatch, caplog):
    clock = Clock(at("2026-09-21 08:01"))
    async with quarter.open() as a, WeComSimulator() as sim, SmtpServer() as smtp:
        key = sim.add_robot()
        src = quarter.sources(a)

        async def make(kind, period):
            return build(await gather(kind, period, src, now_ns=clock.now))

        sim.fail_with(40006, times=1)  # WeCom refuses the first upload (file size)
        service = ReportService(config(tmp_path, smtp), ZONE, make, wecom=[route(sim, key, monkeypatch)], clock=clock)
        with caplog.at_level(logging.WARNING, "fleetmon.reports"):
            [(_, published)] = await service.run_due()
    assert all(p.exists() for p in published.files)
    [error] = published.errors
    assert error.target == "wecom:duty-group" and "errcode 40006" in str(error)
    assert published.delivered == ("email",) and len(smtp.messages) == 1
    assert sim.messages(key) == []
    assert service.store.last_runs() == {"daily": "2026-09-20"}  # made: the files are there
    assert any("not delivered" in r.message and "errcode 40006" in r.message for r in caplog.records)


async def test_a_reports_directory_that_cannot_be_read_is_an_error_and_nothing_is_made(quarter, tmp_path, caplog):
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    clock = Clock(at("2026-09-21 08:01"))
    async with quarter.open() as a:
        src = quarter.sources(a)

        async def make(kind, period):
            return build(await gather(kind, period, src, now_ns=clock.now))

        cfg = ReportsConfig(directory=blocker / "daily", formats=["xlsx"], schedule=[{"report": "daily", "at": "08:00"}])
        service = ReportService(cfg, ZONE, make, clock=clock)
        with caplog.at_level(logging.ERROR, "fleetmon.reports"):
            assert await service.run_due() == [] and await service.run_due() == []
        [record] = [r for r in caplog.records if r.name == "fleetmon.reports"]  # said once, not every minute
        assert record.getMessage() == (f"scheduled reports not made: cannot read {blocker}/daily/runs.json: "
                                       "Not a directory")
        blocker.unlink()  # the operator fixes it; the next wake makes the report
        [(job, published)] = await service.run_due()
    assert job.label == "2026-09-20" and published.files[0].exists()


async def test_a_report_that_cannot_be_written_is_an_error_and_tried_again(quarter, tmp_path, caplog):
    taken = tmp_path / "daily_2026-09-20.xlsx"
    taken.mkdir()  # something in the way of the file
    clock = Clock(at("2026-09-21 08:01"))
    made = []
    async with quarter.open() as a:
        src = quarter.sources(a)

        async def make(kind, period):
            made.append(period.label)
            return build(await gather(kind, period, src, now_ns=clock.now))

        cfg = ReportsConfig(directory=tmp_path, formats=["xlsx"], schedule=[{"report": "daily", "at": "08:00"}])
        service = ReportService(cfg, ZONE, make, clock=clock, retry_s=3600)
        with caplog.at_level(logging.ERROR, "fleetmon.reports"):
            assert await service.run_due() == []
            assert await service.run_due() == []  # not again before retry_s
        [record] = [r for r in caplog.records if r.name == "fleetmon.reports"]
        assert record.getMessage() == (f"report daily 2026-09-20 not made (next try in 60 min): cannot write {taken}: "
                                       "Is a directory")
        assert service.store.last_runs() == {}
        taken.rmdir()
        service = ReportService(cfg, ZONE, make, clock=clock)  # e.g. the daemon restarted
        [(job, published)] = await service.run_due()
    assert made == ["2026-09-20", "2026-09-20"] and published.files == (taken,)


@pytest.mark.parametrize("entry", [{"deliver": False}])
async def test_an_entry_that_does_not_deliver_only_keeps(quarter, tmp_path, monkeypatch, entry):
    clock = Clock(at("2026-09-21 08:01"))
    async with quarter.open() as a, WeComSimulator() as sim:
        key = sim.add_robot()
        src = quarter.sources(a)

        async def make(kind, period):
            return build(await gather(kind, period, src, now_ns=clock.now))

        service = ReportService(config(tmp_path, **entry), ZONE, make, wecom=[route(sim, key, monkeypatch)], clock=clock)
        [(_, published)] = await service.run_due()
    assert published.delivered == () and sim.uploads(key) == [] and published.files
