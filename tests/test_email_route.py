"""The e-mail alarm route against a real SMTP server on loopback (lab/smtp.py, aiosmtpd):
STARTTLS with AUTH and a private CA, one mail for several events with a Message-ID made of the
event ids, what each SMTP answer becomes, and the outbox carrying a busy server's refusals to
delivery exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import TypeAdapter, ValidationError

from lab.smtp import SmtpServer
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.alerting.config import RouteConfig
from rules.alerting.notifiers.email import REJECTED_RETRY_S, EmailConfig, EmailRoute
from rules.alerting.outbox import OutboxWorker
from rules.model import EventKind, FaultEvent, Severity
from tests.plugins.factories import fault_event

PASSWORD = "smtp-pw-7Qx"


def event(n: int, kind: EventKind = EventKind.FIRING) -> FaultEvent:
    return fault_event(n, kind, severity=Severity.CRITICAL, title=f"交换机SW-{n:03d}离线，影响40路摄像机",
                       region="城关镇", affected=("CAM-1", "CAM-2"))


def config(smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, **extra) -> EmailConfig:
    data = {"type": "email", "name": "mail", "host": smtp.host, "port": smtp.port, "security": smtp.tls,
            "sender": "fleetmon@ops.example.cn", "to": ["duty@example.cn"], "cc": ["manager@example.cn"]}
    if smtp.users:
        monkeypatch.setenv("FLEETMON_TEST_SMTP_PW", PASSWORD)
        data |= {"username": "fleetmon", "password_env": "FLEETMON_TEST_SMTP_PW"}
    if smtp.ca_file is not None:
        data["ca_file"] = str(smtp.ca_file)
    return EmailConfig.model_validate(data | extra)


async def deliver(cfg: EmailConfig, *events: FaultEvent):
    async with EmailRoute(cfg) as route:
        return await route.deliver(events)


async def test_several_events_are_one_mail_over_starttls_with_ids_for_dedup(monkeypatch):
    async with SmtpServer(tls="starttls", users={"fleetmon": PASSWORD}) as smtp:
        result = await deliver(config(smtp, monkeypatch), event(1), event(2), event(3, EventKind.RESOLVED))
        assert result.delivered == (1, 2, 3) and result.error is None
        (got,) = smtp.messages
    msg = got.message
    assert got.recipients == ("duty@example.cn", "manager@example.cn")
    assert msg["Subject"].startswith("3 条告警通知：【紧急】交换机SW-001离线")
    assert msg["Message-ID"] == "<fleetmon.events-1-2-3@ops.example.cn>"
    assert msg["X-Fleetmon-Event-Ids"] == "1,2,3"
    body = msg.get_content()
    for n in (1, 2, 3):
        assert f"交换机SW-{n:03d}离线" in body
    assert "【已恢复】" in body and "城关镇" in body


async def test_one_event_has_its_own_subject_and_max_events_cuts_the_batch(monkeypatch):
    async with SmtpServer() as smtp:
        single = await deliver(config(smtp, monkeypatch), event(4))
        cut = await deliver(config(smtp, monkeypatch, max_events=2), event(5), event(6), event(7))
        assert single.delivered == (4,) and cut.delivered == (5, 6)
        subjects = [m.message["Subject"] for m in smtp.messages]
    assert subjects[0] == "【紧急】交换机SW-004离线，影响40路摄像机"
    assert subjects[1].startswith("2 条告警通知")


async def test_implicit_tls_and_english(monkeypatch):
    async with SmtpServer(tls="tls") as smtp:
        result = await deliver(config(smtp, monkeypatch, language="en", port=smtp.port), event(8))
        assert result.delivered == (8,)
        assert smtp.messages[0].message["Subject"].startswith("[CRITICAL]")


async def test_a_wrong_password_is_a_permanent_refusal_without_the_password(monkeypatch):
    async with SmtpServer(tls="starttls", users={"fleetmon": "other"}) as smtp:
        result = await deliver(config(smtp, monkeypatch), event(1))
        assert smtp.messages == []
    assert result.delivered == () and result.retry_after_s == REJECTED_RETRY_S
    assert "535" in result.error and "permanent refusal" in result.error and PASSWORD not in result.error


async def test_refused_recipients_are_named_and_the_others_not_mailed_again(monkeypatch):
    async with SmtpServer(refuse=("manager@example.cn",)) as smtp:
        result = await deliver(config(smtp, monkeypatch), event(1))
        assert smtp.messages[0].recipients == ("duty@example.cn",)
    assert result.delivered == (1,) and "manager@example.cn: 550" in result.error


async def test_a_server_that_is_down_or_busy_is_retried_later(monkeypatch):
    async with SmtpServer(busy=1) as smtp:
        busy = await deliver(config(smtp, monkeypatch), event(1))
    assert busy.delivered == () and busy.retry_after_s is None and "451" in busy.error
    down = await deliver(config(smtp, monkeypatch), event(1))  # the server is gone now
    assert down.delivered == () and down.retry_after_s is None and "cannot send through" in down.error


async def test_the_outbox_delivers_each_event_once_through_a_busy_server(tmp_path, monkeypatch):
    async with StateDB(tmp_path / "state.db") as db, SmtpServer(busy=2) as smtp:
        await db.migrate(outbox.SCHEMA)
        ids = await db.execute(lambda conn: [outbox.enqueue(conn, "mail", e.kind, e.ts_ns, e.fault)
                                             for e in (event(1), event(2), event(3))])
        async with EmailRoute(config(smtp, monkeypatch, max_events=2)) as route:
            async with OutboxWorker(db, {"mail": route}, backoff_initial_s=0.01, backoff_max_s=0.05,
                                    poll_s=0.05) as worker:
                deadline = time.monotonic() + 10
                while await worker.pending() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert await worker.pending() == 0
        received = [int(i) for m in smtp.messages for i in m.message["X-Fleetmon-Event-Ids"].split(",")]
    assert received == ids  # in order, each once: the two 451s were retried, nothing repeated


def test_the_route_is_part_of_the_config_union_and_refuses_mistakes(monkeypatch):
    adapter = TypeAdapter(RouteConfig)
    route = adapter.validate_python({"type": "email", "name": "m", "host": "smtp.example.cn",
                                     "sender": "a@example.cn", "to": ["b@example.cn"]})
    assert isinstance(route, EmailConfig) and route.port == 587 and route.security == "starttls"
    for bad, says in [({"to": []}, "at least 1"), ({"to": ["not-an-address"]}, "not an e-mail address"),
                      ({"timezone": "Asia"}, "unknown time zone"), ({"password": "inline"}, "password")]:
        with pytest.raises(ValidationError, match=says):
            adapter.validate_python({"type": "email", "name": "m", "host": "smtp.example.cn",
                                     "sender": "a@example.cn", "to": ["b@example.cn"]} | bad)
