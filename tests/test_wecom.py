"""The WeCom group-robot route against the robot simulator (lab/wecom.py) over real loopback HTTP:
payloads per msgtype, Chinese and English templates, UTF-8 byte limits, the 20-per-minute window
with digests, errcodes in a 200 body (45009, 40058, 93000, others), transport failures, @mentions
of the engineer on duty, and a key that never shows.

The rate window runs on a fake clock shared by the route and the simulator: tests move time
instead of sleeping a minute."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from pydantic import ValidationError

from lab.wecom import ReceivedMessage, WeComSimulator
from rules.alerting.duty import DutyRoster, DutyShift
from rules.model import EventKind, FaultEvent, Severity
from rules.alerting.notifiers.base import Delivery
from rules.alerting.notifiers.texts import fit_bytes, utf8_len
from rules.alerting.notifiers.wecom import WeComConfig, WeComRoute
from tests.plugins.factories import fault_event

SH = ZoneInfo("Asia/Shanghai")
ON_DUTY = "13800000001"
OFF_DUTY = "13900000002"
T0 = int(datetime(2026, 11, 20, 9, 15, 3, tzinfo=SH).timestamp() * 1e9)  # a Friday morning in Shanghai
_env_numbers = itertools.count(1)


def roster() -> DutyRoster:
    """张工 on duty today, every hour; 李工 rostered on every other weekday only."""
    today = datetime.now(SH).isoweekday()
    return DutyRoster(
        [
            DutyShift(name="张工", mobile=ON_DUTY),
            DutyShift(name="李工", mobile=OFF_DUTY, weekdays=[d for d in range(1, 8) if d != today], start=time(0)),
        ]
    )


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def wecom(clock: FakeClock):
    async with WeComSimulator(clock=clock) as sim:
        yield sim


@pytest.fixture
def wecom_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog for every record, the route's and aiohttp's. monitor.app.logs.setup() stops "fleetmon"
    records at its own handler; a test that ran it earlier must not hide them here."""
    monkeypatch.setattr(logging.getLogger("fleetmon"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    return caplog


def config(url: str, key: str, monkeypatch: pytest.MonkeyPatch, **overrides) -> WeComConfig:
    env = f"FLEETMON_TEST_WECOM_KEY_{next(_env_numbers)}"
    monkeypatch.setenv(env, key)
    return WeComConfig(**({"name": "duty-group", "type": "wecom", "url": url, "key_env": env} | overrides))


def route_for(sim: WeComSimulator, key: str, monkeypatch, clock: FakeClock, **overrides) -> WeComRoute:
    return WeComRoute(config(sim.url, key, monkeypatch, **overrides), roster(), clock=clock)


def event(n: int, kind: EventKind = EventKind.FIRING, severity: Severity = Severity.MINOR, ts_ns: int | None = None,
          **fault) -> FaultEvent:
    """Event `n` of fault F<n>, camera CAM-<n> down; times relative to T0 (first seen at T0, the event by default
    n seconds later)."""
    camera = f"CAM-{n:03d}"
    fields = {
        "rule": "device_down",
        "severity": severity,
        "title": f"摄像机{camera}离线",
        "first_seen_ns": T0,
        "last_seen_ns": T0,
        "device_id": camera,
        "region": "城东区",
        "site": "东关派出所",
    }
    return fault_event(n, kind, ts_ns=T0 + n * 1_000_000_000 if ts_ns is None else ts_ns, **(fields | fault))


SWITCH_DOWN = {
    "id": "F12",
    "title": "交换机SW-01离线，影响40路摄像机",
    "device_id": "SW-01",
    "value": 250.0,
    "threshold": 200.0,
    "unit": "ms",
    "affected": tuple(f"CAM-{i:03d}" for i in range(1, 41)),
}


async def drain(route: WeComRoute, events: list[FaultEvent], clock: FakeClock) -> list[Delivery]:
    """What the outbox does: deliver what is pending, wait `retry_after_s` (or back off 1 s after
    an error without one), again, until all went."""
    pending, deliveries = list(events), []
    for _ in range(100):
        if not pending:
            return deliveries
        d = await route.deliver(pending)
        deliveries.append(d)
        assert list(d.delivered) == [e.id for e in pending[: len(d.delivered)]], "a prefix, in order"
        pending = pending[len(d.delivered) :]
        if pending:
            assert d.disabled is None and (d.retry_after_s or 0) >= 0
            if d.retry_after_s is not None and "45009" not in (d.error or ""):
                assert d.error is None, "the route's own rate window is no error"
            clock.advance(d.retry_after_s if d.retry_after_s is not None else 1.0)
    pytest.fail("events still pending after 100 deliveries")


def max_per_window(messages: list[ReceivedMessage], window_s: float = 60.0) -> int:
    """The most messages that arrived within any `window_s`."""
    times = [m.at for m in messages]
    return max((sum(1 for u in times if t - window_s < u <= t) for t in times), default=0)


# -- payloads and templates -------------------------------------------------------------------------


async def test_a_text_message_mentioning_who_is_on_duty_then_the_markdown_in_chinese(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    async with route_for(wecom, key, monkeypatch, clock) as route:
        d = await route.deliver([event(1, severity=Severity.CRITICAL, **SWITCH_DOWN)])

    assert d == Delivery((1,))
    mention, markdown = wecom.messages(key)
    assert wecom.errcodes(key) == [0, 0]
    assert markdown.msgtype == "markdown" and markdown.mentioned_mobile_list == ()
    lines = markdown.content.split("\n")
    assert lines[0] == '<font color="warning">【紧急】</font>**交换机SW-01离线，影响40路摄像机**'
    assert lines[1:] == [
        "> 设备：SW-01",
        "> 区域：城东区",
        "> 站点：东关派出所",
        "> 当前值：250 ms（阈值 200 ms）",
        "> 影响：40个点位（" + "、".join(f"CAM-{i:03d}" for i in range(1, 11)) + " 等40个）",
        "> 首次发现：2026-11-20 09:15:03",  # Asia/Shanghai
        "> 故障编号：F12",
        "> 通知编号：#1",  # the event id: a repeat (at-least-once delivery) is seen for what it is
    ]
    assert mention.msgtype == "text" and mention.mentioned_mobile_list == (ON_DUTY,)
    assert "交换机SW-01离线" in mention.content and "F12" in mention.content


async def test_text_route_mentions_in_the_message_itself_and_resolutions_wake_nobody(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    resolved = event(
        2,
        EventKind.RESOLVED,
        Severity.MAJOR,
        **SWITCH_DOWN | {"resolved_ns": T0 + 3_905_000_000_000},  # 1 h 5 min 5 s after first seen
    )
    async with route_for(wecom, key, monkeypatch, clock, msgtype="text") as route:
        d = await route.deliver([event(1, severity=Severity.MAJOR, **SWITCH_DOWN), resolved])

    assert d.delivered == (1, 2)
    firing, recovery = wecom.messages(key)
    assert firing.msgtype == recovery.msgtype == "text"
    assert firing.content.startswith("【严重】交换机SW-01离线，影响40路摄像机\n设备：SW-01\n")
    assert firing.mentioned_mobile_list == (ON_DUTY,)
    assert recovery.mentioned_mobile_list == ()
    assert recovery.content.startswith("【已恢复】交换机SW-01离线")
    assert "恢复时间：2026-11-20 10:20:08" in recovery.content
    assert "持续时长：1小时5分" in recovery.content
    assert "当前值" not in recovery.content and "**" not in recovery.content


async def test_reminder_escalated_and_acknowledged_variants(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    later = 7_200 * 10**9
    events = [
        event(1, EventKind.REMINDER, Severity.CRITICAL, ts_ns=T0 + later),
        event(2, EventKind.ESCALATED, Severity.MAJOR, ts_ns=T0 + later),
        event(3, EventKind.ACKNOWLEDGED, Severity.CRITICAL, acked_by="张工", acked_ns=T0 + 600 * 10**9),
    ]
    async with route_for(wecom, key, monkeypatch, clock) as route:
        assert (await route.deliver(events)).delivered == (1, 2, 3)

    contents = [(m.msgtype, m.content) for m in wecom.messages(key)]
    reminder_mention, reminder, escalated_mention, escalated, acked = contents
    assert "【提醒·紧急】" in reminder[1] and "已持续：2小时，尚未认领" in reminder[1]
    assert "【升级·严重】" in escalated[1] and "已升级通知" in escalated[1]
    assert reminder_mention[0] == escalated_mention[0] == "text"
    assert "【已认领】" in acked[1] and "认领人：张工" in acked[1] and "认领时间：2026-11-20 09:25:03" in acked[1]
    assert len(contents) == 5, "an acknowledgement mentions nobody"


async def test_minor_faults_and_a_route_without_mentions_send_one_message(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    async with route_for(wecom, key, monkeypatch, clock) as route:
        await route.deliver([event(1, severity=Severity.MINOR)])
    async with route_for(wecom, key, monkeypatch, clock, mention_min_severity=None, msgtype="text") as route:
        await route.deliver([event(2, severity=Severity.CRITICAL)])

    assert [(m.msgtype, m.mentioned_mobile_list) for m in wecom.messages(key)] == [("markdown", ()), ("text", ())]


async def test_english_when_configured(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    async with route_for(wecom, key, monkeypatch, clock, language="en", msgtype="text") as route:
        await route.deliver([event(1, severity=Severity.CRITICAL, **SWITCH_DOWN)])

    content = wecom.messages(key)[0].content
    assert content.startswith("[CRITICAL] 交换机SW-01离线")  # the title is the rule engine's
    assert "Value: 250 ms (threshold 200 ms)" in content
    assert "Affected: 40 points (CAM-001, " in content and "and 30 more)" in content
    assert "First seen: 2026-11-20 09:15:03" in content and "Fault: F12" in content


# -- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("msgtype, limit", [("markdown", 4096), ("text", 2048)])
async def test_simulator_counts_utf8_bytes_at_the_boundary(wecom, msgtype, limit):
    key = wecom.add_robot()
    fits = "中" * (limit // 3) + "a" * (limit % 3)  # exactly `limit` bytes
    async with aiohttp.ClientSession() as session:
        answers = []
        for content in (fits, fits + "a", fits[:-1] + "中"):
            body = {"msgtype": msgtype, msgtype: {"content": content}}
            async with session.post(wecom.url, params={"key": key}, json=body) as resp:
                assert resp.status == 200
                answers.append((await resp.json())["errcode"])
    assert answers == [0, 40058, 40058]
    assert utf8_len(wecom.messages(key)[0].content) == limit


async def test_simulator_answers_protocol_errors_in_a_200_body_like_wecom(wecom):
    key = wecom.add_robot()
    text = {"msgtype": "text", "text": {"content": "测试"}}
    cases = [
        ({"key": key}, b"not json", 47001),
        ({"key": key}, b"[1, 2]", 47001),
        ({"key": key}, json.dumps({"msgtype": "image", "image": {}}).encode(), 40035),
        ({"key": key}, json.dumps({"msgtype": "news", "news": {}}).encode(), 40008),
        ({"key": key}, json.dumps({"msgtype": "text", "text": {"content": ""}}).encode(), 44004),
        ({"key": key}, json.dumps({"msgtype": "text", "text": {"content": 123}}).encode(), 40035),
        ({"key": key}, json.dumps({"msgtype": "text", "text": {"content": "x", "mentioned_mobile_list": "1"}}).encode(), 40035),
        ({}, json.dumps(text).encode(), 93000),
        ({"key": "no-such-robot"}, json.dumps(text).encode(), 93000),
        ({"key": key}, json.dumps({"msgtype": "markdown", "markdown": {"content": "**x**", "mentioned_mobile_list": [ON_DUTY]}}).encode(), 0),
    ]
    async with aiohttp.ClientSession() as session:
        for params, body, expected in cases:
            async with session.post(wecom.url, params=params, data=body) as resp:
                answer = await resp.json()
            assert resp.status == 200 and answer["errcode"] == expected, (body, answer)
            if expected:
                assert answer["errmsg"].endswith(f"more info at https://open.work.weixin.qq.com/devtool/query?e={expected}")
            else:
                assert answer["errmsg"] == "ok"
    assert wecom.messages(key) == [ReceivedMessage(wecom.clock(), "markdown", "**x**")], "markdown cannot @ by mobile"


def test_fit_bytes_cuts_on_character_boundaries():
    assert fit_bytes("中" * 10, 30, "…") == "中" * 10  # exactly at the limit: untouched
    cut = fit_bytes("中" * 10, 29, "…")  # "…" is 3 bytes: 26 bytes left = 8 whole characters
    assert cut == "中" * 8 + "…" and utf8_len(cut) <= 29


@pytest.mark.parametrize("msgtype, limit", [("markdown", 4096), ("text", 2048)])
async def test_an_event_too_large_is_shortened_then_truncated_with_a_marker(wecom, clock, monkeypatch, msgtype, limit):
    key = wecom.add_robot()
    many = event(1, affected=tuple(f"摄像机-{i:04d}" for i in range(3000)))  # the list alone: ~40 KB
    huge = event(2, title="超长标题" * 1000)  # 12 KB of title
    async with route_for(wecom, key, monkeypatch, clock, msgtype=msgtype) as route:
        assert (await route.deliver([many, huge])).delivered == (1, 2)

    listed, truncated = wecom.messages(key)
    assert "3000个点位（摄像机-0000、" in listed.content and "摄像机-0010" not in listed.content
    assert utf8_len(truncated.content) <= limit
    # The event id survives the truncation: it is how a repeat is recognised.
    assert truncated.content.endswith("…（内容过长，已截断）" + ("\n> " if msgtype == "markdown" else "\n") + "通知编号：#2")
    assert wecom.errcodes(key) == [0, 0]


# -- the rate window and digests --------------------------------------------------------------------


async def test_25_events_one_per_second_make_20_messages_then_one_digest_of_5(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    events = [event(n) for n in range(1, 26)]
    delivered: list[int] = []
    async with route_for(wecom, key, monkeypatch, clock) as route:
        pending, retry_at = [], clock.now
        for e in events:  # the outbox: each new event triggers a delivery unless it is told to wait
            pending.append(e)
            if clock.now >= retry_at:
                d = await route.deliver(pending)
                delivered += d.delivered
                pending = pending[len(d.delivered) :]
                retry_at = clock.now + (d.retry_after_s or 0)
            clock.advance(1.0)
        clock.now = max(clock.now, retry_at)
        delivered += [i for d in await drain(route, pending, clock) for i in d.delivered]

    assert delivered == list(range(1, 26))
    messages = wecom.messages(key)
    assert 45009 not in wecom.errcodes(key)
    assert max_per_window(messages) <= 20
    assert len(messages) == 21
    digest = messages[-1].content
    assert digest.startswith("**5 条告警：**\n")
    assert [line.split("，")[-1] for line in digest.split("\n")[1:]] == [f"F{n}） #{n}" for n in range(21, 26)]
    assert messages[-1].at - messages[0].at >= 60.0, "the digest waited for the window"


async def test_a_burst_larger_than_the_window_is_one_digest_in_order(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    events = [event(n, severity=Severity.CRITICAL) for n in range(1, 26)]
    async with route_for(wecom, key, monkeypatch, clock) as route:
        d = await route.deliver(events)

    assert d == Delivery(tuple(range(1, 26)))
    mention, digest = wecom.messages(key)
    lines = digest.content.split("\n")
    assert lines[0] == "**25 条告警：**" and len(lines) == 26
    assert lines[1] == '<font color="warning">【紧急】</font>摄像机CAM-001离线（城东区/东关派出所，11-20 09:15，F1） #1'
    assert [line.rsplit("，", 1)[1] for line in lines[1:]] == [f"F{n}） #{n}" for n in range(1, 26)]
    assert mention.mentioned_mobile_list == (ON_DUTY,)
    assert mention.content.startswith("请值班人员处理 25 条告警：F1、F2、") and mention.content.endswith("等25条")


async def test_on_the_real_clock_a_short_window_never_trips_the_server(monkeypatch):
    """The demo and benchmark shape: real time, a 0.3 s window on both sides."""
    async with WeComSimulator(window_s=0.3) as wecom:
        key = wecom.add_robot()
        cfg = config(wecom.url, key, monkeypatch, mention_min_severity=None)
        pending = [event(n) for n in range(1, 61)]
        delivered: list[int] = []
        async with WeComRoute(cfg, roster(), window_s=0.3) as route:
            for _ in range(200):
                d = await route.deliver(pending[:1])  # one at a time: singles, never a digest
                delivered += d.delivered
                pending = pending[len(d.delivered) :]
                if not pending:
                    break
                await asyncio.sleep(d.retry_after_s or 0)

    assert delivered == list(range(1, 61))
    assert set(wecom.errcodes(key)) == {0}, "no 45009: the route counts a send once its answer is in"
    assert max_per_window(wecom.messages(key), 0.3) <= 20


# -- what WeCom answers -----------------------------------------------------------------------------


async def test_45009_for_a_minute_then_every_event_arrives_in_order(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    wecom.fail_with(45009, for_s=60)
    events = [event(n) for n in range(1, 4)]
    async with route_for(wecom, key, monkeypatch, clock) as route:
        first = await route.deliver(events)
        assert first.delivered == () and "45009" in (first.error or "")
        assert first.retry_after_s == pytest.approx(60.0, abs=1.0)
        clock.advance(first.retry_after_s)
        events.append(event(4))  # raised while WeCom refused
        rest = await drain(route, events, clock)

    assert [i for d in rest for i in d.delivered] == [1, 2, 3, 4]
    assert wecom.errcodes(key) == [45009, 0, 0, 0, 0]
    assert [m.content.split("\n")[-2] for m in wecom.messages(key)] == [f"> 故障编号：F{n}" for n in range(1, 5)]


async def test_45009_midway_keeps_the_delivered_prefix(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    events = [event(n) for n in range(1, 4)]
    async with route_for(wecom, key, monkeypatch, clock) as route:
        assert (await route.deliver(events[:1])).delivered == (1,)
        wecom.fail_with(45009, times=1)
        d = await route.deliver(events[1:])
        assert d.delivered == () and d.retry_after_s == pytest.approx(60.0)
        early = await route.deliver(events[1:])  # called too soon: the window is still closed
        assert early.delivered == () and early.retry_after_s == pytest.approx(60.0)
        assert wecom.errcodes(key) == [0, 45009], "nothing sent while waiting"
        clock.advance(60.0)
        assert (await route.deliver(events[1:])).delivered == (2, 3)


async def test_40058_splits_a_digest_into_smaller_ones(clock, monkeypatch):
    async with WeComSimulator(clock=clock, markdown_max_bytes=1500) as wecom:  # a stricter server
        key = wecom.add_robot()
        events = [event(n) for n in range(1, 26)]
        async with route_for(wecom, key, monkeypatch, clock) as route:
            d = await route.deliver(events)

    assert d.delivered == tuple(range(1, 26))
    codes = wecom.errcodes(key)
    assert codes[0] == 40058 and set(codes[1:]) == {0}
    messages = wecom.messages(key)
    assert len(messages) >= 2 and all(utf8_len(m.content) <= 1500 for m in messages)
    fault_ids = [n for m in messages for n in re.findall(r"\bF(\d+)\b", m.content)]
    assert fault_ids == [str(n) for n in range(1, 26)], "every event once, in order"


async def test_40058_for_a_single_event_truncates_it_and_never_loops(clock, monkeypatch):
    long_title = event(1, title="机房温度过高" * 50)  # 900 bytes of title
    async with WeComSimulator(clock=clock, markdown_max_bytes=520) as wecom:
        key = wecom.add_robot()
        async with route_for(wecom, key, monkeypatch, clock) as route:
            assert (await route.deliver([long_title])).delivered == (1,)
        (message,) = wecom.messages(key)
        assert utf8_len(message.content) <= 520 and message.content.endswith("…（内容过长，已截断）\n> 通知编号：#1")

    async with WeComSimulator(clock=clock, markdown_max_bytes=300) as wecom:  # refuses all we can make
        key = wecom.add_robot()
        async with route_for(wecom, key, monkeypatch, clock) as route:
            d = await route.deliver([long_title])
        assert d.delivered == () and d.retry_after_s is None and "40058" in (d.error or "")
        assert wecom.errcodes(key) == [40058, 40058, 40058], "4096 → 1058 → 529 → 512 bytes, then stop"


async def test_93000_disables_the_route(wecom, clock, monkeypatch):
    key = wecom.add_robot()
    async with route_for(wecom, key, monkeypatch, clock) as route:
        assert (await route.deliver([event(1)])).delivered == (1,)
        wecom.remove_robot(key)
        d = await route.deliver([event(2), event(3)])

    assert d.delivered == () and d.retry_after_s is None
    assert d.disabled is not None and "93000" in d.disabled and key not in d.disabled


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda sim: sim.fail_with(-1, times=1), id="errcode -1 in a 200 body"),
        pytest.param(lambda sim: sim.fail_with(40008, times=1), id="errcode 40008 in a 200 body"),
        pytest.param(lambda sim: sim.fail_http(502), id="HTTP 502 html"),
        pytest.param(lambda sim: sim.fail_http(200, "<html>portal login</html>"), id="200 not JSON"),
    ],
)
async def test_anything_but_errcode_0_is_an_error_for_the_outbox_to_retry(wecom, clock, monkeypatch, break_it):
    key = wecom.add_robot()
    break_it(wecom)
    async with route_for(wecom, key, monkeypatch, clock, timeout_s=0.2) as route:
        failed = await route.deliver([event(1), event(2)])
        again = await route.deliver([event(1), event(2)])

    # No retry_after: the outbox's backoff applies, as for every route's definite failures.
    assert failed.delivered == () and failed.error and failed.retry_after_s is None and failed.disabled is None
    assert again == Delivery((1, 2))
    assert [m.content.split("\n")[-1] for m in wecom.messages(key)] == ["> 通知编号：#1", "> 通知编号：#2"]


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda sim: setattr(sim, "delay_s", 0.5), id="no answer in time"),
        pytest.param(lambda sim: sim.hang(), id="hang"),
        pytest.param(lambda sim: sim.answer_late(0.5), id="late answer"),
        pytest.param(lambda sim: sim.fail_http(504), id="HTTP 504 from a gateway"),
    ],
)
async def test_no_answer_is_sent_again_only_after_resend_after_s(wecom, clock, monkeypatch, break_it):
    """WeCom may have posted a request that got no answer: the outbox is told to wait
    resend_after_s (doubled for each further such attempt of the event), not its quick backoff."""
    key = wecom.add_robot()
    break_it(wecom)
    async with route_for(wecom, key, monkeypatch, clock, timeout_s=0.2, resend_after_s=7) as route:
        first = await route.deliver([event(1), event(2)])
        break_it(wecom)  # still no answer
        second = await route.deliver([event(1), event(2)])
        wecom.delay_s = 0.0
        wecom.answer_normally()
        third = await route.deliver([event(1), event(2)])
        break_it(wecom)
        fourth = await route.deliver([event(3)])  # another event starts from resend_after_s again
    assert first.delivered == () and first.retry_after_s == 7 and first.disabled is None
    assert "may have posted it: sent again in 7 s" in (first.error or "")
    assert second.delivered == () and second.retry_after_s == 14
    assert third == Delivery((1, 2))
    assert fourth.delivered == () and fourth.retry_after_s == 7


async def test_a_redirect_is_not_followed_so_the_key_reaches_no_other_host(wecom, clock, monkeypatch):
    async with WeComSimulator() as portal:
        key = wecom.add_robot()
        wecom.fail_http(302, "", headers={"Location": portal.url})
        async with route_for(wecom, key, monkeypatch, clock) as route:
            d = await route.deliver([event(1)])

        assert d.delivered == () and "HTTP 302" in (d.error or "") and d.retry_after_s is None
        assert portal.answers == []


async def test_a_refused_mention_holds_its_message_back_and_a_retry_does_not_ping_twice(clock, monkeypatch):
    async with WeComSimulator(clock=clock, rate_limit=1) as wecom:  # somebody else uses this robot too
        key = wecom.add_robot()
        wecom.fail_with(45009, times=1)
        async with route_for(wecom, key, monkeypatch, clock) as route:
            deliveries = await drain(route, [event(1, severity=Severity.CRITICAL)], clock)

    assert [d.delivered for d in deliveries] == [(), (), (1,)]
    assert wecom.errcodes(key) == [45009, 0, 45009, 0], "ping refused; ping ok, details refused; details ok"
    mention, markdown = wecom.messages(key)
    assert mention.msgtype == "text" and mention.mentioned_mobile_list == (ON_DUTY,)
    assert markdown.msgtype == "markdown" and "F1" in markdown.content


# -- the key is a secret ----------------------------------------------------------------------------


async def test_the_key_never_shows_in_logs_errors_or_reprs(wecom, clock, monkeypatch, wecom_log):
    key = wecom.add_robot()
    cfg = config(wecom.url, key, monkeypatch, timeout_s=0.2)
    errors = []
    async with WeComRoute(cfg, roster(), clock=clock) as route:
        for break_it in (lambda: wecom.fail_http(502), lambda: setattr(wecom, "delay_s", 0.5)):
            break_it()
            errors.append((await route.deliver([event(1)])).error)
            wecom.delay_s = 0.0
        assert (await route.deliver([event(1)])).delivered == (1,)
        wecom.fail_with(40058, times=1)  # the route logs its smaller byte budget
        assert (await route.deliver([event(2, title="长标题" * 200)])).delivered == (2,)
        wecom.remove_robot(key)
        errors.append((await route.deliver([event(2)])).disabled)
        shown = [repr(route), repr(cfg), str(cfg), json.dumps(cfg.model_dump(mode="json"))]

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")  # aiohttp's parse error names the URL with its query
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wrong_port = config(f"http://127.0.0.1:{port}/cgi-bin/webhook/send", key, monkeypatch)
    async with server, WeComRoute(wrong_port, roster(), clock=clock) as route:
        errors.append((await route.deliver([event(3)])).error)

    assert all(errors) and len(errors) == 4 and "ClientResponseError" in errors[-1]
    for text in [wecom_log.text, *errors, *shown]:
        assert key not in text
    assert "key=***" in repr(route) and "key=***" in errors[1], "the timeout names the masked URL"
    assert "40058" in wecom_log.text and "duty-group" in wecom_log.text


def test_config_refuses_inline_keys_and_wrong_limits(monkeypatch, tmp_path):
    monkeypatch.setenv("WECOM_TEST_KEY", "k-123")
    base = {"name": "r", "type": "wecom", "key_env": "WECOM_TEST_KEY"}
    assert WeComConfig(**base).key.get_secret_value() == "k-123"
    key_file = tmp_path / "wecom.key"
    key_file.write_text("k-456\n")
    assert WeComConfig(**base | {"key_env": None, "key_file": key_file}).key.get_secret_value() == "k-456"
    for bad in (
        {"key": "k-123"},
        {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-123"},
        {"key_env": None},
        {"key_file": key_file},
        {"rate_per_minute": 21},
        {"timezone": "Mars/Olympus"},
        {"msgtype": "news"},
    ):
        with pytest.raises(ValidationError) as info:
            WeComConfig(**base | bad)
        assert "k-123" not in str(info.value)


def _image(data: bytes, md5: str | None = None) -> bytes:
    body = {"base64": base64.b64encode(data).decode(), "md5": md5 or hashlib.md5(data).hexdigest()}
    return json.dumps({"msgtype": "image", "image": body}).encode()


async def test_simulator_validates_image_messages_like_wecom(wecom):
    """The robot's image message: base64 of a JPG or PNG of at most 2 MB and the md5 of the bytes."""
    import cv2
    import numpy as np

    key = wecom.add_robot()
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
    too_big = b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)
    cases = [
        (_image(jpeg, md5="0" * 32), 301019),
        (_image(too_big), 40009),
        (_image(b"GIF89a" + bytes(100)), 40005),
        (json.dumps({"msgtype": "image", "image": {"base64": "!!not base64!!", "md5": "0" * 32}}).encode(), 40035),
        (json.dumps({"msgtype": "image", "image": {"base64": "", "md5": hashlib.md5(b"").hexdigest()}}).encode(), 44004),
        (_image(jpeg), 0),
    ]
    async with aiohttp.ClientSession() as session:
        for body, expected in cases:
            async with session.post(wecom.url, params={"key": key}, data=body) as resp:
                answer = await resp.json()
            assert answer["errcode"] == expected, (body[:80], answer)
    (message,) = wecom.messages(key)
    assert (message.msgtype, message.content, message.image) == ("image", hashlib.md5(jpeg).hexdigest(), jpeg)


async def test_a_video_quality_fault_brings_the_cameras_picture(wecom, clock, monkeypatch, tmp_path):
    """After the message of a firing video_* fault, the camera's thumbnail as an image message;
    none for other faults, resolutions or a camera without a thumbnail."""
    import cv2
    import numpy as np

    key = wecom.add_robot()
    jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    for camera in ("CAM-001", "CAM-002"):
        (tmp_path / f"{camera}.jpg").write_bytes(jpeg)
    video = {"kind": "video_blur", "rule": "camera-blur", "title": "摄像机CAM-001画面模糊（评分0.75）", "severity": Severity.MINOR,
             "device_id": "CAM-001"}
    events = [
        fault_event(1, EventKind.FIRING, **video),
        fault_event(2, EventKind.FIRING, kind="device_down", title="摄像机CAM-002离线", device_id="CAM-002",
                    severity=Severity.MINOR),
        fault_event(3, EventKind.FIRING, **(video | {"device_id": "CAM-003", "title": "摄像机CAM-003画面模糊"})),
        fault_event(4, EventKind.RESOLVED, **video),
    ]
    route = route_for(wecom, key, monkeypatch, clock, thumbnail_dir=tmp_path)
    async with route:
        await drain(route, events, clock)
    messages = wecom.messages(key)
    assert [m.msgtype for m in messages] == ["markdown", "image", "markdown", "markdown", "markdown"]
    assert "画面模糊" in messages[0].content and messages[1].image == jpeg
