"""Report delivery (monitor/reports/delivery.py) against real peers over loopback: the WeCom robot
simulator (lab/wecom.py: upload_media as the robot API documents it, file messages, errcodes,
the rate window) and a real SMTP server (lab/smtp.py, aiosmtpd: plain, STARTTLS and TLS, AUTH,
refused recipients). A failed delivery names the target and the file and leaves the file."""

from __future__ import annotations

import dataclasses
import itertools
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from lab import wecom as wecom_lab
from lab.reports import sample_report
from lab.smtp import SmtpServer
from lab.wecom import WeComSimulator
from monitor.reports.config import EmailConfig
from monitor.reports.delivery import (
    MAX_FILE_BYTES,
    DeliveryError,
    send_email,
    send_wecom,
    summary_markdown,
    upload_url,
)
from monitor.reports.document import Column, Kpi, Part
from monitor.reports.store import ReportStore
from monitor.reports.xlsx import render_xlsx
from rules.alerting.notifiers.texts import utf8_len
from rules.alerting.notifiers.wecom import WeComConfig, robot_window

_env = itertools.count(1)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def report():
    return sample_report(120)


@pytest.fixture
def files(report, tmp_path) -> list[Path]:
    """The report as it would be stored: a real XLSX and a stand-in PDF (the PDF renderer has its
    own tests; here only bytes travel)."""
    store = ReportStore(tmp_path / "reports", 30)
    return [
        store.save("quarterly", "2026Q4", "xlsx", render_xlsx(report)),
        store.save("quarterly", "2026Q4", "pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40),
    ]


@pytest.fixture
async def sim():
    async with WeComSimulator() as simulator:
        yield simulator


def route(sim: WeComSimulator, key: str, monkeypatch, **overrides) -> WeComConfig:
    env = f"FLEETMON_TEST_REPORT_KEY_{next(_env)}"
    monkeypatch.setenv(env, key)
    return WeComConfig(**({"name": "duty-group", "type": "wecom", "url": sim.url, "key_env": env} | overrides))


async def upload_raw(sim: WeComSimulator, key: str, data: bytes | None, kind: str = "file") -> dict:
    """One upload_media request of the test's own (no client-side checks in the way)."""
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        if data is not None:
            form.add_field("media", data, filename="x.bin", content_type="application/octet-stream")
        else:
            form.add_field("other", "nothing")
        async with session.post(sim.upload_url, params={"key": key, "type": kind}, data=form) as resp:
            return await resp.json()


async def send_raw(sim: WeComSimulator, key: str, payload: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.url, params={"key": key}, json=payload) as resp:
            return await resp.json()


# -- WeCom ------------------------------------------------------------------------------------------


async def test_the_group_gets_each_file_then_a_summary_of_the_headline_figures(sim, report, files, monkeypatch):
    key = sim.add_robot()
    media_ids = await send_wecom(route(sim, key, monkeypatch), report, files)
    messages = sim.messages(key)
    assert [m.msgtype for m in messages] == ["file", "file", "markdown"]
    for message, path, media_id in zip(messages, files, media_ids):
        assert message.media.media_id == media_id
        assert message.content == path.name
        assert message.media.data == path.read_bytes()
        assert message.media.filelength == str(path.stat().st_size)
    summary = messages[2].content
    assert summary.startswith("**邛崃雪亮工程 季度考核报告（示例数据）**\n> 统计周期：2026Q4（2026-10-01 至 2026-12-31）")
    online = report.kpis[0]
    assert f'前端摄像机在线率：<font color="info">{online.value * 100:.2f}%（目标 95.00%，达标）</font>' in summary
    assert '故障及时更换率：<font color="warning">' in summary and "未达标" in summary
    assert "说明·点位可用性：" in summary and "CAM-00006" in summary  # what could not be seen
    assert "报表文件：quarterly_2026Q4.xlsx、quarterly_2026Q4.pdf" in summary
    assert all(path.exists() for path in files)


def test_the_summary_stays_within_wecoms_markdown_limit(report):
    many = tuple(Kpi(f"区域{i}在线率", 0.9 + i / 1000, target=0.95, ok=False) for i in range(80))
    long_note = Part("长说明", (Column("a", "甲", "A"),), (), note="未见数据：" + "、".join(f"CAM-{i:05d}" for i in range(400)))
    big = dataclasses.replace(report, kpis=many, parts=(long_note,))
    text = summary_markdown(big)
    assert utf8_len(text) <= 4096 and text.endswith("\n…")
    assert text.count("<font") == text.count("</font>")  # whole lines only: no tag cut in half
    assert "CAM-00399" not in text  # notes are shortened in the summary, the report has them whole


async def test_a_refused_upload_names_the_errcode_and_the_file_and_keeps_it(sim, report, files, monkeypatch):
    key = sim.add_robot()
    monkeypatch.setitem(wecom_lab.MAX_MEDIA_BYTES, "file", 1000)  # a WeCom with a smaller limit
    with pytest.raises(DeliveryError) as info:
        await send_wecom(route(sim, key, monkeypatch), report, files)
    text = str(info.value)
    assert info.value.target == "wecom:duty-group"
    assert "errcode 40006: invalid file size" in text
    assert f"upload of {files[0]}" in text and f"the report stays at {files[0]}" in text
    assert key not in text and "key=***" in text
    assert sim.messages(key) == [] and all(p.exists() for p in files)


async def test_a_removed_robot_is_errcode_93000_without_the_key(sim, report, files, monkeypatch):
    key = sim.add_robot()
    sim.remove_robot(key)
    with pytest.raises(DeliveryError, match="errcode 93000: invalid webhook url") as info:
        await send_wecom(route(sim, key, monkeypatch), report, files)
    assert key not in str(info.value)


async def test_a_file_over_20_mb_is_refused_before_anything_is_sent(sim, report, tmp_path, monkeypatch):
    key = sim.add_robot()
    big = tmp_path / "annual_2026.pdf"
    big.write_bytes(b"%PDF" + b"\0" * MAX_FILE_BYTES)  # 20 MB + 4 bytes
    with pytest.raises(DeliveryError) as info:
        await send_wecom(route(sim, key, monkeypatch), report, [big])
    assert f"{big} has 20.0 MB; WeCom takes files up to 20 MB. The report stays at {big}" in str(info.value)
    assert sim.answers == [] and big.exists()
    tiny = tmp_path / "daily_2026-12-03.pdf"
    tiny.write_bytes(b"%PDF")
    with pytest.raises(DeliveryError, match=r"has 4 bytes; WeCom takes files of more than 5 bytes"):
        await send_wecom(route(sim, key, monkeypatch), report, [tiny])


async def test_wecom_answers_45009_with_a_retry_hint_and_the_window_stays_shut(sim, report, files, monkeypatch):
    key = sim.add_robot()
    for n in range(20):  # somebody else used the robot's whole minute
        assert (await send_raw(sim, key, {"msgtype": "text", "text": {"content": f"告警{n}"}}))["errcode"] == 0
    cfg = route(sim, key, monkeypatch)
    with pytest.raises(DeliveryError, match="WeCom rate limit \\(errcode 45009") as info:
        await send_wecom(cfg, report, files)
    assert info.value.retry_after_s == 60.0
    window = robot_window(cfg.url, cfg.key)
    assert window.free(time.monotonic(), 20) == 0  # the fault route waits a minute too


async def test_messages_wait_for_room_in_the_robots_window_shared_with_fault_alerts(report, files, monkeypatch):
    async with WeComSimulator(window_s=0.5) as sim:
        key = sim.add_robot()
        cfg = route(sim, key, monkeypatch)
        window = robot_window(cfg.url, cfg.key, 0.5)
        for n in range(20):  # the fault route just sent 20 alerts through this robot
            await send_raw(sim, key, {"msgtype": "text", "text": {"content": f"告警{n}"}})
            window.take(time.monotonic())
        await send_wecom(cfg, report, files, window_s=0.5)
        assert 45009 not in sim.errcodes(key)
        assert [m.msgtype for m in sim.messages(key)][-3:] == ["file", "file", "markdown"]


@pytest.mark.parametrize(
    "inject, message",
    [
        (lambda sim: sim.fail_http(502), "HTTP 502 instead of a WeCom answer"),
        (lambda sim: sim.fail_http(200, "<html>portal</html>"), "HTTP 200 without a WeCom answer"),
        (lambda sim: sim.fail_with(-1), "errcode -1: system busy"),
    ],
)
async def test_broken_answers_are_errors_that_say_what_came(sim, report, files, monkeypatch, inject, message):
    key = sim.add_robot()
    inject(sim)
    with pytest.raises(DeliveryError, match=re.escape(message)):
        await send_wecom(route(sim, key, monkeypatch), report, files)


async def test_no_answer_in_time_is_an_error_without_the_key(report, files, monkeypatch):
    async with WeComSimulator(delay_s=1.0) as sim:
        key = sim.add_robot()
        with pytest.raises(DeliveryError, match="no answer from .*upload_media\\?key=\\*\\*\\*: TimeoutError") as info:
            await send_wecom(route(sim, key, monkeypatch, timeout_s=0.2), report, files)
        assert key not in str(info.value)


def test_the_upload_url_is_the_send_urls_sibling():
    assert upload_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send") == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/upload_media"
    )
    with pytest.raises(ValueError, match="ends in /send"):
        upload_url("https://proxy.example.cn/wecom")


# -- the simulator's upload_media, as documented ---------------------------------------------------


async def test_the_simulator_checks_uploads_as_the_robot_api_documents(sim):
    key, other = sim.add_robot(), sim.add_robot()
    ok = await upload_raw(sim, key, b"123456")  # more than 5 bytes
    assert ok["errcode"] == 0 and ok["type"] == "file" and len(ok["media_id"]) > 20 and ok["created_at"].isdigit()
    assert (await upload_raw(sim, key, b"12345"))["errcode"] == 40006
    assert (await upload_raw(sim, key, b"x" * (20 * 1024 * 1024 + 1)))["errcode"] == 40006
    assert (await upload_raw(sim, key, b"x" * (20 * 1024 * 1024)))["errcode"] == 0
    assert (await upload_raw(sim, key, b"x" * (2 * 1024 * 1024 + 1), kind="voice"))["errcode"] == 40006
    assert (await upload_raw(sim, key, b"123456", kind="image"))["errcode"] == 40005
    assert (await upload_raw(sim, key, None))["errcode"] == 44001
    assert (await upload_raw(sim, "no-such-robot", b"123456"))["errcode"] == 93000
    # a media_id is for the robot that uploaded it
    assert (await send_raw(sim, other, {"msgtype": "file", "file": {"media_id": ok["media_id"]}}))["errcode"] == 40007
    assert (await send_raw(sim, key, {"msgtype": "file", "file": {}}))["errcode"] == 40035
    assert (await send_raw(sim, key, {"msgtype": "file", "file": {"media_id": ok["media_id"]}}))["errcode"] == 0
    errmsg = (await upload_raw(sim, key, b"1"))["errmsg"]
    assert errmsg.startswith("invalid file size, hint: [") and errmsg.endswith("devtool/query?e=40006")


async def test_a_media_id_expires_after_three_days_and_uploads_do_not_count_as_messages():
    now = [1000.0]
    async with WeComSimulator(clock=lambda: now[0]) as sim:
        key = sim.add_robot()
        ids = [(await upload_raw(sim, key, b"report" + bytes([n])))["media_id"] for n in range(25)]
        for media_id in ids[:20]:  # 25 uploads in a minute, and still room for 20 messages
            assert (await send_raw(sim, key, {"msgtype": "file", "file": {"media_id": media_id}}))["errcode"] == 0
        assert (await send_raw(sim, key, {"msgtype": "file", "file": {"media_id": ids[20]}}))["errcode"] == 45009
        now[0] += 3 * 86400  # exactly three days: still valid
        assert (await send_raw(sim, key, {"msgtype": "file", "file": {"media_id": ids[21]}}))["errcode"] == 0
        now[0] += 1
        assert (await send_raw(sim, key, {"msgtype": "file", "file": {"media_id": ids[22]}}))["errcode"] == 40007


# -- e-mail -----------------------------------------------------------------------------------------


def email_config(smtp: SmtpServer, **extra) -> EmailConfig:
    data = {
        "host": smtp.host,
        "port": smtp.port,
        "security": smtp.tls,
        "sender": "reports@fleetmon.example.cn",
        "to": ["buyer@example.cn", "manager@example.cn"],
        "cc": ["duty@example.cn"],
        "timeout_s": 5,
    } | extra
    if smtp.ca_file is not None:
        data.setdefault("ca_file", str(smtp.ca_file))
    return EmailConfig.model_validate(data)


async def test_the_report_arrives_by_email_with_its_files_attached(report, files):
    async with SmtpServer() as smtp:
        await send_email(email_config(smtp), report, files)
    [got] = smtp.messages
    assert got.sender == "reports@fleetmon.example.cn"
    assert got.recipients == ("buyer@example.cn", "manager@example.cn", "duty@example.cn")
    msg = got.message
    assert msg["Subject"] == "邛崃雪亮工程 季度考核报告（示例数据） 2026Q4"
    body = msg.get_body(("plain",)).get_content()
    assert "统计周期：2026Q4（2026-10-01 至 2026-12-31）" in body and "未达标" in body
    attachments = {a.get_filename(): (a.get_content_type(), a.get_content()) for a in msg.iter_attachments()}
    assert attachments == {
        "quarterly_2026Q4.xlsx": (XLSX, files[0].read_bytes()),
        "quarterly_2026Q4.pdf": ("application/pdf", files[1].read_bytes()),
    }


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_email_over_starttls_or_tls_with_a_password_and_a_private_ca(report, files, monkeypatch, tls):
    monkeypatch.setenv("FLEETMON_TEST_SMTP_PW", "smtp-pw-8c1f")
    async with SmtpServer(tls=tls, users={"reports": "smtp-pw-8c1f"}) as smtp:
        await send_email(email_config(smtp, username="reports", password_env="FLEETMON_TEST_SMTP_PW"), report, files)
        assert len(smtp.messages) == 1
        monkeypatch.setenv("FLEETMON_TEST_SMTP_PW", "wrong-pw-0000")
        cfg = email_config(smtp, username="reports", password_env="FLEETMON_TEST_SMTP_PW")
        with pytest.raises(DeliveryError, match=f"email: report 2026Q4: {smtp.host}:{smtp.port} answered 535") as info:
            await send_email(cfg, report, files)
        assert "wrong-pw-0000" not in str(info.value)


async def test_a_server_whose_certificate_is_not_trusted_is_refused(report, files):
    async with SmtpServer(tls="starttls") as smtp:
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            await send_email(email_config(smtp, ca_file=None), report, files)
        assert smtp.messages == []


async def test_refused_recipients_are_named(report, files):
    async with SmtpServer(refuse=("manager@example.cn",)) as smtp:
        with pytest.raises(DeliveryError) as info:
            await send_email(email_config(smtp), report, files)
        assert "refused some recipients (the others got it): manager@example.cn: 550" in str(info.value)
        assert smtp.messages[0].recipients == ("buyer@example.cn", "duty@example.cn")
    async with SmtpServer(refuse=("buyer@example.cn",)) as smtp:
        with pytest.raises(DeliveryError, match="refused every recipient: buyer@example.cn: 550"):
            await send_email(email_config(smtp, to=["buyer@example.cn"], cc=[]), report, files)


async def test_an_smtp_server_that_is_down_is_a_clear_error(report, files):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = EmailConfig(host="127.0.0.1", port=port, security="none", sender="r@example.cn", to=["b@example.cn"])
    with pytest.raises(DeliveryError, match=f"email: report 2026Q4: cannot send through 127.0.0.1:{port}: SMTPConnectError"):
        await send_email(cfg, report, files)


async def test_a_file_over_the_attachment_limit_is_named_instead_of_attached(report, files):
    async with SmtpServer() as smtp:
        await send_email(email_config(smtp, max_attachment_mb=0.01), report, files)  # 10 KB
    msg = smtp.messages[0].message
    attached = [a.get_filename() for a in msg.iter_attachments()]
    assert attached == [p.name for p in files if p.stat().st_size <= 10_485]
    body = msg.get_body(("plain",)).get_content()
    for path in files:
        if path.name not in attached:
            assert f"{path.name}：" in body and "超过邮件附件上限 0.01 MB，未附上；文件保存在服务器" in body
            assert str(path) in body


def test_the_simulator_has_wecoms_errmsg_for_every_errcode_it_answers():
    for code in (0, 40005, 40006, 40007, 40008, 40035, 40058, 44001, 44004, 45009, 47001, 93000):
        assert code in wecom_lab.ERRMSG, code
