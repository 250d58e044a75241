"""From a document to files kept and delivered (monitor/reports/publish.py, render.py): rendering in
child processes, the files in the reports directory, each target tried on its own, failures that
leave the files; nothing delivered when the files could not be written."""

from __future__ import annotations

import dataclasses
import io
import itertools

import pytest
from openpyxl import load_workbook

from lab.reports import sample_report
from lab.smtp import SmtpServer
from lab.wecom import WeComSimulator
from monitor.reports.config import EmailConfig
from monitor.reports.document import Period
from monitor.reports.publish import publish
from monitor.reports.render import RenderError, render_isolated
from monitor.reports.store import ReportStore, StoreError
from rules.alerting.notifiers.wecom import WeComConfig

_env = itertools.count(1)


def wecom_route(sim: WeComSimulator, key: str, monkeypatch, name: str) -> WeComConfig:
    env = f"FLEETMON_TEST_PUBLISH_KEY_{next(_env)}"
    monkeypatch.setenv(env, key)
    return WeComConfig(name=name, type="wecom", url=sim.url, key_env=env)


def mail(smtp: SmtpServer) -> EmailConfig:
    return EmailConfig(host=smtp.host, port=smtp.port, security="none", sender="r@example.cn", to=["b@example.cn"])


async def test_files_are_rendered_in_child_processes_kept_and_delivered_everywhere(tmp_path, monkeypatch):
    report = sample_report(60)
    store = ReportStore(tmp_path / "reports", 30)
    async with WeComSimulator() as sim, SmtpServer() as smtp:
        key = sim.add_robot()
        done = await publish(
            report, store, ["pdf", "xlsx"], wecom=[wecom_route(sim, key, monkeypatch, "duty-group")], email=mail(smtp)
        )
    assert [p.name for p in done.files] == ["quarterly_2026Q4.pdf", "quarterly_2026Q4.xlsx"]
    assert done.delivered == ("wecom:duty-group", "email") and done.errors == ()
    pdf, xlsx = (p.read_bytes() for p in done.files)
    assert pdf.startswith(b"%PDF-")
    assert load_workbook(io.BytesIO(xlsx))["点位可用性"].max_row == 3 + 60
    assert [m.media.data for m in sim.messages(key) if m.media] == [pdf, xlsx]
    assert len(list(smtp.messages[0].message.iter_attachments())) == 2


async def test_a_failing_target_does_not_stop_the_others_and_the_files_stay(tmp_path, monkeypatch):
    report = sample_report(30)
    store = ReportStore(tmp_path, 30)
    async with WeComSimulator() as sim, SmtpServer() as smtp:
        gone, alive = sim.add_robot(), sim.add_robot()
        sim.remove_robot(gone)
        routes = [wecom_route(sim, gone, monkeypatch, "old-group"), wecom_route(sim, alive, monkeypatch, "duty-group")]
        done = await publish(report, store, ["xlsx"], wecom=routes, email=mail(smtp), isolate=False)
    assert done.delivered == ("wecom:duty-group", "email")
    [error] = done.errors
    assert error.target == "wecom:old-group" and "errcode 93000" in str(error)
    assert done.files[0].exists() and [f.path for f in store.files()] == list(done.files)


async def test_nothing_is_delivered_when_the_report_cannot_be_kept(tmp_path, monkeypatch):
    blocker = tmp_path / "reports"
    blocker.write_text("not a directory")
    async with WeComSimulator() as sim:
        key = sim.add_robot()
        with pytest.raises(StoreError, match=f"cannot make the reports directory {blocker}/daily"):
            await publish(
                sample_report(10),
                ReportStore(blocker / "daily", 30),
                ["xlsx"],
                wecom=[wecom_route(sim, key, monkeypatch, "duty-group")],
                isolate=False,
            )
        assert sim.answers == []


async def test_a_child_that_fails_says_why(monkeypatch):
    report = sample_report(10)
    # A document the child cannot read back: an unknown zone slipped past construction.
    broken = dataclasses.replace(report, period=Period("2026Q4", report.period.start_ns, report.period.end_ns))
    object.__setattr__(broken, "timezone", "Mars/Olympus")
    with pytest.raises(RenderError, match=r"rendering the xlsx of quarterly 2026Q4 failed \(exit 1\): .*unknown time zone 'Mars/Olympus'"):
        await render_isolated(broken, ["xlsx"])
    with pytest.raises(ValueError, match="unknown report format 'docx'"):
        await render_isolated(report, ["docx"])
    with pytest.raises(RenderError, match="rendering the pdf of quarterly 2026Q4 took over 0.05 s"):
        await render_isolated(report, ["pdf"], timeout_s=0.05)  # the child is killed
