"""The SMS route against the Alibaba Cloud and Tencent Cloud SMS simulators (lab/sms.py): the
documented signature, one SMS for a burst, variables cut to the template's limit, numbers on
duty, and what each error code becomes — rate limits, balance, bad numbers, wrong keys, 500s
and silence — through the outbox to exactly-once per number."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import TypeAdapter, ValidationError

from lab.sms import SmsGateway
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.alerting.config import RouteConfig
from rules.alerting.duty import DutyRoster, DutyShift
from rules.alerting.notifiers.sms import (
    RATE_RETRY_S,
    REJECTED_RETRY_S,
    SmsConfig,
    SmsRoute,
    aliyun_signature,
)
from rules.alerting.outbox import OutboxWorker
from rules.model import EventKind, FaultEvent, Severity
from tests.plugins.factories import fault_event

SECRET = "lab-secret-0a1b2c"


def event(n: int, kind: EventKind = EventKind.FIRING, title: str | None = None) -> FaultEvent:
    return fault_event(n, kind, severity=Severity.CRITICAL, title=title or f"专线L-{n:03d}中断，影响40路摄像机",
                       region="城关镇")


def config(gw: SmsGateway, monkeypatch: pytest.MonkeyPatch, **extra) -> SmsConfig:
    monkeypatch.setenv("FLEETMON_TEST_SMS_SECRET", gw.secret)
    data = {"type": "sms", "name": "sms", "provider": gw.provider, "endpoint": gw.url, "access_key_id": gw.key_id,
            "access_key_secret_env": "FLEETMON_TEST_SMS_SECRET", "sign_name": "雪亮运维", "template": "SMS_100001",
            "to": ["13800000001", "+8613800000002"]}
    if gw.provider == "tencent":
        data["sdk_app_id"] = gw.sdk_app_id
    return SmsConfig.model_validate(data | extra)


async def deliver(cfg: SmsConfig, *events: FaultEvent, duty: DutyRoster | None = None):
    async with SmsRoute(cfg, duty) as route:
        return await route.deliver(events)


def test_the_alibaba_signature_matches_the_documented_example():
    """The worked example of Alibaba Cloud's SMS API signature document (testId/testSecret)."""
    params = {"AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
              "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
              "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
              "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25"}
    assert aliyun_signature("testSecret", "GET", params) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
async def test_a_burst_is_one_sms_per_number_with_cut_variables(provider, monkeypatch):
    long_title = "交换机SW-001离线，影响城关镇东街、西街、南街、北街共四十路摄像机及两路专线"
    async with SmsGateway(provider, max_param_chars=20) as gw:
        result = await deliver(config(gw, monkeypatch, param_max_chars=20),
                               event(1, title=long_title), event(2), event(3, EventKind.RESOLVED))
    assert result.delivered == (1, 2, 3) and result.error is None
    assert [s.number for s in gw.sent] == ["13800000001", "13800000002"]
    variables = gw.sent[0].variables
    assert variables["title"].startswith("2条告警：交换机SW-001") and len(variables["title"]) == 20
    assert variables["title"].endswith("…")
    assert len(variables["time"]) == len("12-04 09:15")
    assert gw.sent[0].context == "fleetmon-1,2"  # OutId / SessionContext: the texted event ids


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
async def test_events_not_texted_are_consumed_without_a_message(provider, monkeypatch):
    async with SmsGateway(provider) as gw:
        result = await deliver(config(gw, monkeypatch), event(1, EventKind.RESOLVED), event(2, EventKind.ACKNOWLEDGED))
    assert result.delivered == (1, 2) and gw.requests == 0


async def test_whoever_is_on_duty_is_texted(monkeypatch):
    roster = DutyRoster([DutyShift(name="王工", mobile="13900000009"), DutyShift(name="李工", mobile="13900000008",
                                                                             weekdays=[])])
    async with SmsGateway("aliyun") as gw:
        result = await deliver(config(gw, monkeypatch, to=[], to_duty=True), event(1), duty=roster)
    assert result.delivered == (1,) and [s.number for s in gw.sent] == ["13900000009"]


@pytest.mark.parametrize(("provider", "setup", "says", "retry"), [
    ("aliyun", {"per_number_interval_s": 60}, "isv.BUSINESS_LIMIT_CONTROL", RATE_RETRY_S),
    ("aliyun", {"balance": 0}, "isv.AMOUNT_NOT_ENOUGH", REJECTED_RETRY_S),
    ("aliyun", {"secret": "another"}, "SignatureDoesNotMatch", REJECTED_RETRY_S),
    ("aliyun", {"sign_names": ("别的签名",)}, "isv.SMS_SIGNATURE_ILLEGAL", REJECTED_RETRY_S),
    ("aliyun", {"templates": {"SMS_100001": ["title", "time", "code"]}}, "isv.TEMPLATE_MISSING_PARAMETERS", REJECTED_RETRY_S),
    ("aliyun", {"fail_next": ["system"]}, "isp.SYSTEM_ERROR", None),
    ("aliyun", {"fail_next": ["http500"]}, "HTTP 500", None),
    ("tencent", {"secret": "another"}, "AuthFailure.SignatureFailure", REJECTED_RETRY_S),
    ("tencent", {"sign_names": ("别的签名",)}, "FailedOperation.SignatureIncorrectOrUnapproved", REJECTED_RETRY_S),
    ("tencent", {"fail_next": ["system"]}, "InternalError.OtherError", None),
    ("tencent", {"balance": 0}, "InsufficientBalanceInSmsPackage", REJECTED_RETRY_S),
])
async def test_each_error_is_kept_queued_with_its_wait(provider, setup, says, retry, monkeypatch):
    async with SmsGateway(provider) as gw:
        secret = gw.secret
        cfg = config(gw, monkeypatch)
        if setup.get("per_number_interval_s"):
            await deliver(cfg, event(9))  # a first SMS a moment ago
        for key, value in setup.items():
            setattr(gw, key, value)
        monkeypatch.setenv("FLEETMON_TEST_SMS_SECRET", secret)
        result = await deliver(cfg, event(1))
    assert result.delivered == () and says in result.error and result.retry_after_s == retry, result
    assert secret not in result.error


async def test_a_silent_gateway_is_a_timeout_not_a_hang(monkeypatch):
    async with SmsGateway("aliyun", fail_next=["hang"]) as gw:
        t0 = time.monotonic()
        result = await deliver(config(gw, monkeypatch, timeout_s=0.5), event(1))
    assert result.delivered == () and "no answer" in result.error and time.monotonic() - t0 < 3
    assert result.retry_after_s == 300 and "repeat is possible" in result.error  # it may have gone out


async def test_an_unreachable_gateway_is_retried_at_the_quick_backoff(monkeypatch):
    async with SmsGateway("tencent") as gw:
        cfg = config(gw, monkeypatch)
    result = await deliver(cfg, event(1))  # gone: nothing was sent
    assert result.delivered == () and result.retry_after_s is None and "cannot connect" in result.error


async def test_tencent_per_number_outcomes_retry_only_the_numbers_that_can_still_get_it(monkeypatch):
    async with SmsGateway("tencent", blacklist=("13800000002",)) as gw:
        cfg = config(gw, monkeypatch, to=["13800000001", "13800000002", "13800000003"])
        gw._last["13800000003"] = time.monotonic()  # texted a moment ago: the 30 s limit
        gw.per_number_interval_s = 30
        async with SmsRoute(cfg) as route:
            first = await route.deliver([event(1)])
            gw._last["13800000003"] = -1e9  # the limit has passed
            second = await route.deliver([event(1)])
    assert first.delivered == () and first.retry_after_s == RATE_RETRY_S
    assert "13800000002: FailedOperation.PhoneNumberInBlacklist" in first.error
    assert "13800000003: LimitExceeded.PhoneNumberThirtySecondLimit" in first.error
    assert second.delivered == (1,)
    assert [s.number for s in gw.sent] == ["13800000001", "13800000003"]  # nobody texted twice


async def test_the_outbox_texts_each_number_once_through_limits_and_failures(tmp_path, monkeypatch):
    async with StateDB(tmp_path / "state.db") as db, SmsGateway("aliyun", fail_next=["http500", "system"]) as gw:
        await db.migrate(outbox.SCHEMA)
        ids = await db.execute(lambda conn: [outbox.enqueue(conn, "sms", e.kind, e.ts_ns, e.fault)
                                             for e in (event(1), event(2))])
        async with SmsRoute(config(gw, monkeypatch)) as route:
            async with OutboxWorker(db, {"sms": route}, backoff_initial_s=0.01, backoff_max_s=0.05,
                                    poll_s=0.05) as worker:
                deadline = time.monotonic() + 10
                while await worker.pending() and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert await worker.pending() == 0
    assert [(s.number, s.context) for s in gw.sent] == [
        ("13800000001", f"fleetmon-{ids[0]},{ids[1]}"), ("13800000002", f"fleetmon-{ids[0]},{ids[1]}")]


def test_the_route_config_refuses_what_cannot_work(monkeypatch):
    monkeypatch.setenv("FLEETMON_TEST_SMS_SECRET", "s")
    adapter = TypeAdapter(RouteConfig)
    base = {"type": "sms", "name": "sms", "provider": "aliyun", "access_key_id": "LTAI",
            "access_key_secret_env": "FLEETMON_TEST_SMS_SECRET", "sign_name": "雪亮运维", "template": "SMS_1",
            "to": ["13800000001"]}
    route = adapter.validate_python(base)
    assert isinstance(route, SmsConfig) and route.min_severity is Severity.CRITICAL
    for bad, says in [({"to": []}, "no recipient"), ({"to": ["12345"]}, "should match pattern"),
                      ({"provider": "tencent"}, "sdk_app_id"), ({"access_key_secret": "inline"}, "access_key_secret"),
                      ({"endpoint": "https://u:p@sms.example.cn/"}, "without credentials"),
                      ({"params": {"title": "weather"}}, "params")]:
        with pytest.raises(ValidationError, match=says):
            adapter.validate_python(base | bad)
