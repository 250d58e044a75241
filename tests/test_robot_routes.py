"""The DingTalk and Feishu robot routes against their simulators (lab/robots.py): signing, the
text, @mentions of who is on duty (DingTalk), digests within the rate window, each error code
and what it becomes, and the outbox delivering every event once through throttling and 500s."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import pytest
from pydantic import TypeAdapter, ValidationError

from lab.robots import RobotServer
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.alerting.config import RouteConfig
from rules.alerting.duty import DutyRoster, DutyShift
from rules.alerting.notifiers.robots import (
    REJECTED_RETRY_S,
    THROTTLE_S,
    DingTalkConfig,
    DingTalkRoute,
    FeishuConfig,
    FeishuRoute,
    dingtalk_sign,
    feishu_sign,
)
from rules.alerting.outbox import OutboxWorker
from rules.model import EventKind, FaultEvent, Severity
from tests.plugins.factories import fault_event

ROUTES = {"dingtalk": (DingTalkConfig, DingTalkRoute), "feishu": (FeishuConfig, FeishuRoute)}
ROSTER = DutyRoster([DutyShift(name="王工", mobile="13900000009")])


def event(n: int, kind: EventKind = EventKind.FIRING, severity: Severity = Severity.CRITICAL) -> FaultEvent:
    return fault_event(n, kind, severity=severity, title=f"交换机SW-{n:03d}离线，影响40路摄像机", region="城关镇")


def route(kind: str, server: RobotServer, monkeypatch, **extra):
    monkeypatch.setenv("FLEETMON_TEST_ROBOT_TOKEN", server.token)
    data = {"type": kind, "name": f"{kind}-duty", "token_env": "FLEETMON_TEST_ROBOT_TOKEN",
            "url": server.url + ("/robot/send" if kind == "dingtalk" else "/open-apis/bot/v2/hook")}
    if server.secret is not None:
        monkeypatch.setenv("FLEETMON_TEST_ROBOT_SECRET", server.secret)
        data["secret_env"] = "FLEETMON_TEST_ROBOT_SECRET"
    cfg_cls, route_cls = ROUTES[kind]
    return route_cls(cfg_cls.model_validate(data | extra), ROSTER)


def text_of(kind: str, doc: dict) -> str:
    return doc["text"]["content"] if kind == "dingtalk" else doc["content"]["text"]


def test_signatures_follow_the_published_algorithms():
    # DingTalk: HMAC-SHA256 keyed with the secret over "timestamp\nsecret"; Feishu: keyed with
    # "timestamp\nsecret" over nothing. Written out here independently of the route's code.
    secret = "SEC0123456789abcdef"
    expect_ding = base64.b64encode(hmac.new(secret.encode(), b"1700000000000\n" + secret.encode(), hashlib.sha256).digest())
    expect_feishu = base64.b64encode(hmac.new(b"1700000000\n" + secret.encode(), b"", hashlib.sha256).digest())
    assert dingtalk_sign(secret, 1_700_000_000_000) == expect_ding.decode()
    assert feishu_sign(secret, 1_700_000_000) == expect_feishu.decode()
    assert dingtalk_sign(secret, 1) != feishu_sign(secret, 1)


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
@pytest.mark.parametrize("secret", [None, "SEC-signing-secret"])
async def test_events_arrive_as_text_signed_when_signing_is_on(kind, secret, monkeypatch):
    async with RobotServer(secret=secret) as server:
        async with route(kind, server, monkeypatch) as r:
            result = await r.deliver([event(1), event(2, EventKind.RESOLVED)])
    assert result.delivered == (1, 2) and result.error is None
    texts = [text_of(kind, doc) for _, doc in server.received]
    assert texts[0].startswith("【紧急】交换机SW-001离线") and "城关镇" in texts[0]
    assert texts[1].startswith("【已恢复】")


async def test_dingtalk_mentions_whoever_is_on_duty_for_urgent_events(monkeypatch):
    async with RobotServer() as server:
        async with route("dingtalk", server, monkeypatch) as r:
            await r.deliver([event(1), event(2, EventKind.RESOLVED), event(3, severity=Severity.MINOR)])
    (_, first), (_, resolved), (_, minor) = server.received
    assert first["at"] == {"atMobiles": ["13900000009"], "isAtAll": False}
    assert first["text"]["content"].endswith("@13900000009")
    assert resolved["at"]["atMobiles"] == [] and minor["at"]["atMobiles"] == []


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_a_burst_beyond_the_window_goes_as_digests(kind, monkeypatch):
    async with RobotServer() as server:
        async with route(kind, server, monkeypatch, rate_per_minute=3) as r:
            result = await r.deliver([event(n) for n in range(1, 41)])
    assert result.delivered == tuple(range(1, 41))
    assert len(server.received) <= 3
    assert text_of(kind, server.received[0][1]).startswith("40 条告警")


@pytest.mark.parametrize(("kind", "setup", "says", "retry", "disabled"), [
    ("dingtalk", {"token": "other"}, "code 300001", None, True),
    ("dingtalk", {"secret": "not-ours"}, "security settings", REJECTED_RETRY_S, False),
    ("dingtalk", {"keywords": ("告警",)}, "keywords not in content", REJECTED_RETRY_S, False),
    ("dingtalk", {"throttled_until": 1e18}, "code 130101", THROTTLE_S, False),
    ("dingtalk", {"fail_next": ["http500"]}, "HTTP 500", None, False),
    ("feishu", {"token": "other"}, "code 19001", None, True),
    ("feishu", {"secret": "not-ours"}, "code 19021", REJECTED_RETRY_S, False),
    ("feishu", {"keywords": ("告警",)}, "code 19024", REJECTED_RETRY_S, False),
    ("feishu", {"per_minute": {"dingtalk": 20, "feishu": 0}}, "code 11232", None, False),
])
async def test_each_answer_becomes_what_the_outbox_needs(kind, setup, says, retry, disabled, monkeypatch):
    async with RobotServer(secret="SEC-ours") as server:
        r = route(kind, server, monkeypatch)
        for key, value in setup.items():
            setattr(server, key, value)
        async with r:
            result = await r.deliver([event(1)])
    assert result.delivered == () and says in result.error, result
    assert (result.disabled is not None) == disabled
    if retry is not None:
        assert result.retry_after_s == retry
    assert server.token not in result.error and "SEC-ours" not in result.error


async def test_a_silent_robot_is_a_timeout(monkeypatch):
    async with RobotServer(fail_next=["hang"]) as server:
        async with route("feishu", server, monkeypatch, timeout_s=0.5) as r:
            t0 = time.monotonic()
            result = await r.deliver([event(1)])
    assert result.delivered == () and "no answer" in result.error and time.monotonic() - t0 < 3


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_a_late_answer_is_resent_only_after_a_conservative_delay(kind, monkeypatch):
    """The robot posts the message but answers after the timeout (issue 13: WeCom did, and quick
    retries posted it 6 times): the route waits resend_after_s, doubling, before sending again."""
    async with RobotServer(fail_next=["late:1.5", "late:1.5"]) as server:
        async with route(kind, server, monkeypatch, timeout_s=0.5, resend_after_s=30) as r:
            first = await r.deliver([event(1)])
            second = await r.deliver([event(1)])
            third = await r.deliver([event(1)])
    assert first.delivered == () and first.retry_after_s == 30 and "repeat is possible" in first.error
    assert second.delivered == () and second.retry_after_s == 60
    assert third.delivered == (1,)
    assert len(server.received) == 3  # posted each time: the wait is what keeps repeats rare


async def test_a_robot_that_cannot_be_reached_is_retried_at_the_quick_backoff(monkeypatch):
    async with RobotServer() as server:
        r = route("dingtalk", server, monkeypatch)
    async with r:  # the server is gone: nothing was sent
        result = await r.deliver([event(1)])
    assert result.delivered == () and result.retry_after_s is None and "cannot connect" in result.error


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_the_outbox_delivers_every_event_once_through_500s(kind, tmp_path, monkeypatch):
    async with StateDB(tmp_path / "state.db") as db, RobotServer(fail_next=["http500", "http500"]) as server:
        await db.migrate(outbox.SCHEMA)
        ids = await db.execute(lambda conn: [outbox.enqueue(conn, "r", e.kind, e.ts_ns, e.fault)
                                             for e in (event(1), event(2), event(3))])
        async with route(kind, server, monkeypatch) as r:
            async with OutboxWorker(db, {"r": r}, backoff_initial_s=0.01, backoff_max_s=0.05, poll_s=0.05) as worker:
                deadline = time.monotonic() + 10
                while await worker.pending() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert await worker.pending() == 0
    titles = [text_of(kind, doc).split("\n", 1)[0] for _, doc in server.received]
    assert titles == [f"【紧急】交换机SW-{n:03d}离线，影响40路摄像机" for n in (1, 2, 3)] and len(ids) == 3


def test_the_routes_are_in_the_config_union_and_refuse_inline_tokens(monkeypatch):
    monkeypatch.setenv("T", "x")
    adapter = TypeAdapter(RouteConfig)
    assert isinstance(adapter.validate_python({"type": "dingtalk", "name": "d", "token_env": "T"}), DingTalkConfig)
    assert isinstance(adapter.validate_python({"type": "feishu", "name": "f", "token_env": "T"}), FeishuConfig)
    for bad, says in [({}, "token_env or token_file"), ({"token": "abc"}, "token"),
                      ({"token_env": "T", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc"}, "without the token"),
                      ({"token_env": "T", "rate_per_minute": 21}, "less than or equal to 20")]:
        with pytest.raises(ValidationError, match=says):
            adapter.validate_python({"type": "dingtalk", "name": "d"} | bad)
