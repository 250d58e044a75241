"""Rules on platform checks, NVRs and lines: renewals a month ahead (local days), certificates
running out or untrusted, NVR channels not recording or keeping too few days, disks failing,
lines near their contracted bandwidth, services of platforms down; Chinese titles, hysteresis,
holding without data."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from monitor.core.model import Kind, Status
from monitor.fleet.inventory import Inventory
from monitor.fleet.renewals import RenewalConfig
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from probes.base import ProbeResult, Series
from rules.base import View
from rules.config import FlappingConfig, default_rules
from rules.engine import RulesEngine
from rules.families.bandwidth import LinkBandwidthRule, rate_text
from rules.families.platform import RenewalDueRule, TlsExpiryRule, TlsUntrustedRule
from rules.families.recording import NvrDiskRule, NvrNotRecordingRule, NvrRetentionRule
from rules.families.video import VideoDownRule
from rules.model import Severity
from tests.plugins.factories import device

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-12-01 00:30 in Shanghai is still 2026-11-30 in UTC: local days are what people count.
NOW = int(dt.datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI).timestamp() * 1e9)

DEVICES = [
    device("CORE", Kind.SWITCH, name="核心交换机", site="中心", region="城区"),
    device("LINK1", Kind.LINK, name="城关镇专线", parent="CORE", port="Gi0/10", bandwidth_bps=10_000_000,
           site="城关", region="城关镇"),
    device("SW1", Kind.SWITCH, name="城关接入", parent="LINK1", uplink="Gi0/1", site="城关", region="城关镇"),
    device("LINK2", Kind.LINK, name="东湖专线", parent="CORE", port="Gi0/11", bandwidth_bps=622_000_000,
           site="东湖", region="东湖镇"),
    device("PLT", Kind.PLATFORM, name="视频平台", parent="CORE", expires=dt.date(2026, 12, 31),
           url="https://platform.example/", site="中心", region="城区"),
    device("CLOUD", Kind.SERVER, name="云主机", expires=dt.date(2026, 11, 30), site="中心", region="城区"),
    device("OLD", Kind.SERVER, name="旧服务器", expires=dt.date(2026, 12, 5), status=Status.REMOVED, address=None,
           site="中心", region="城区"),
    device("NVR1", Kind.NVR, name="派出所录像机", parent="CORE", site="中心", region="城区"),
]
RENEWALS = [
    RenewalConfig(name="example.gov.cn", expires=dt.date(2026, 12, 20), what="domain", owner="信息科"),
    RenewalConfig(name="运维合同", expires=dt.date(2027, 6, 30), what="contract"),
    RenewalConfig(name="平台授权", expires="2026年12月1日", what="licence", device="PLT"),
]
INV = Inventory(DEVICES, renewals=RENEWALS)


def view(states=None, bases=None):
    full = {d.id: State.UP for d in DEVICES if d.counted} | (states or {})
    return View(NOW, full, {d: NOW - 10**9 for d in full}, online_rates(DEVICES, full), bases or {"network": full})


def engine(*rules, language="zh", inventory=INV):
    return RulesEngine(inventory, list(rules), FlappingConfig(), language=language, timezone="Asia/Shanghai")


def observe(e, device_id, probe, fields=None, series=(), ok=True, reason=None):
    e.observe(ProbeResult(device_id, probe, NOW, ok, reason, {"up": ok, **(fields or {})}, tuple(series)))


# -- renewals ---------------------------------------------------------------------------------------


def test_renewals_a_month_ahead_in_local_days_with_chinese_titles():
    out = engine(RenewalDueRule(name="renew")).evaluate(view(), set())
    by_scope = {c.scope: c for c in out.values()}
    assert set(by_scope) == {"device:PLT", "device:CLOUD", "renewal:example.gov.cn", "renewal:平台授权"}
    assert by_scope["device:PLT"].title == "平台视频平台将于2026-12-31到期（剩余30天），请及时续费"
    assert by_scope["device:CLOUD"].title == "服务器云主机已于2026-11-30到期（已过1天），请尽快续费"
    assert by_scope["device:CLOUD"].severity is Severity.MAJOR and by_scope["device:PLT"].severity is Severity.MINOR
    assert by_scope["renewal:example.gov.cn"].title == "域名example.gov.cn将于2026-12-20到期（剩余19天），请及时续费（负责：信息科）"
    assert by_scope["renewal:平台授权"].title == "授权平台授权今天（2026-12-01）到期，请及时续费"
    assert by_scope["renewal:平台授权"].device_id == "PLT" and by_scope["renewal:平台授权"].region == "城区"
    assert by_scope["renewal:example.gov.cn"].device_id is None
    assert (by_scope["device:PLT"].value, by_scope["device:PLT"].threshold, by_scope["device:PLT"].unit) == (30, 30, "d")
    # The removed server's renewal (2026-12-05) is not reminded of; the contract is 7 months away.


def test_renewal_window_english_and_selectors():
    out = engine(RenewalDueRule(name="renew", ahead_days=7), language="en").evaluate(view(), set())
    titles = sorted(c.title for c in out.values())
    assert titles == ["licence 平台授权 expires today (2026-12-01): renew in time",
                      "server 云主机 expired on 2026-11-30 (1 days ago): renew now"]
    servers = engine(RenewalDueRule(name="renew", match={"kind": ["server"]})).evaluate(view(), set())
    assert [c.scope for c in servers.values()] == ["device:CLOUD"]  # renewals of no device need a match of all


def test_renewal_of_an_unknown_device_is_refused():
    with pytest.raises(Exception, match=r"renewals\[0\]\.device: device 'NOPE' not found"):
        Inventory(DEVICES, renewals=[RenewalConfig(name="x", expires=dt.date(2027, 1, 1), device="NOPE")])


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x", "expires": "2027-02-30"}, "'2027-02-30' is not a day of the calendar"),
    ({"name": "x", "expires": "next year"}, "'next year' is not a date"),
    ({"name": "x", "expires": 20270101}, "must be a date such as 2027-03-31"),
    ({"name": "x", "expires": "2027-01-01", "what": "car"}, "Input should be 'licence'"),
    ({"name": "", "expires": "2027-01-01"}, "at least 1 character"),
])
def test_bad_renewal_entries(entry, message):
    with pytest.raises(ValidationError, match=message):
        RenewalConfig(**entry)


# -- certificates ----------------------------------------------------------------------------------


def cert(endpoint, days, **fields):
    not_after = (dt.datetime.fromtimestamp(NOW / 1e9, dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Series("tls_certificate", {"endpoint": endpoint}, {
        "up": True, "days_left": float(days), "not_after": not_after, "chain_verified": True, "hostname_match": True,
        "verify_error": "", **fields})


def test_tls_expiry_per_endpoint_with_hysteresis():
    rule = TlsExpiryRule(name="tls", clear_above_days=35)
    e = engine(rule)
    observe(e, "PLT", "tls", series=[cert("platform.example:443", 12.5), cert("10.0.0.5:465", 200),
                                     cert("10.0.0.5:8443", -2.2)])
    out = e.evaluate(view(), set())
    titles = sorted(c.title for c in out.values())
    assert titles == ["平台视频平台的证书（10.0.0.5:8443）已于2026-11-28过期",
                      "平台视频平台的证书（platform.example:443）将于2026-12-13到期，剩余12天"]
    expired = next(c for c in out.values() if "8443" in c.scope)
    assert expired.severity is Severity.MAJOR and expired.details == {"instance": "10.0.0.5:8443"}
    firing = set(out)
    observe(e, "PLT", "tls", series=[cert("platform.example:443", 32), cert("10.0.0.5:8443", 365)])
    still = e.evaluate(view(), firing)
    assert [c.scope for c in still.values()] == ["device:PLT/platform.example:443"]  # 32 ≤ 35: not yet clear
    observe(e, "PLT", "tls", ok=False, reason="timeout")  # no certificate read: held, not resolved
    assert all(c.held for c in e.evaluate(view(), set(still)).values())


def test_tls_untrusted_names_why():
    e = engine(TlsUntrustedRule(name="trust"), language="en")
    observe(e, "PLT", "tls", series=[cert("a:443", 90, chain_verified=False, verify_error="self-signed certificate"),
                                     cert("b:443", 90, hostname_match=False), cert("c:443", 90)])
    titles = sorted(c.title for c in e.evaluate(view(), set()).values())
    assert titles == ["platform 视频平台 certificate (a:443) not trusted: self-signed certificate",
                      "platform 视频平台 certificate (b:443) not trusted: it does not name the host it serves"]
    names_ignored = engine(TlsUntrustedRule(name="trust", check_name=False))
    observe(names_ignored, "PLT", "tls", series=[cert("b:443", 90, hostname_match=False)])
    assert names_ignored.evaluate(view(), set()) == {}


# -- NVRs -------------------------------------------------------------------------------------------


def channel(n, **fields):
    return Series("nvr_channel", {"channel": str(n)}, {"enabled": True, **fields})


def disk(name, state, status):
    return Series("nvr_disk", {"disk": name}, {"status": status, "state": state, "ok": state == "ok"})


def nvr_poll(e, *series, free_pct=0.0):
    observe(e, "NVR1", "nvr", {"free_pct": free_pct}, series)


def test_channels_not_recording_with_their_cause():
    e = engine(NvrNotRecordingRule(name="rec"))
    nvr_poll(e, channel(1, recording=True), channel(2, recording=False),
             channel(3, recording=False, online=False, detect="netUnreachable"),
             channel(4, recording=False, enabled=False))
    titles = sorted(c.title for c in e.evaluate(view(), set()).values())
    assert titles == ["录像机派出所录像机通道2未录像（最近没有录像）",
                      "录像机派出所录像机通道3未录像（前端摄像机离线：netUnreachable）",
                      "录像机派出所录像机通道4未录像（录像计划未启用）"]
    only_enabled = engine(NvrNotRecordingRule(name="rec", include_disabled=False))
    nvr_poll(only_enabled, channel(4, recording=False, enabled=False))
    assert only_enabled.evaluate(view(), set()) == {}


def test_retention_is_judged_once_the_recorder_overwrites():
    rule = NvrRetentionRule(name="keep")
    e = engine(rule)
    nvr_poll(e, channel(1, retention_days=12.0), channel(2, retention_days=31.5), free_pct=40.0)
    assert e.evaluate(view(), set()) == {}  # still filling: 12 days so far says nothing
    nvr_poll(e, channel(1, retention_days=12.0), channel(2, retention_days=31.5), free_pct=0.0)
    out = e.evaluate(view(), set())
    (condition,) = out.values()
    assert condition.title == "录像机派出所录像机通道1录像仅保存12.0天，不足30天"
    assert (condition.value, condition.threshold, condition.unit) == (12.0, 30.0, "d")
    nvr_poll(e, channel(1, retention_days=12.0), free_pct=30.0)  # a disk added: held while it fills
    assert all(c.held for c in e.evaluate(view(), set(out)).values())


def test_disks_not_ok():
    e = engine(NvrDiskRule(name="disk"))
    nvr_poll(e, disk("hdd1", "ok", "ok"), disk("hdd2", "error", "smartFailed"), disk("hdd3", "unformatted", "unformatted"))
    titles = sorted(c.title for c in e.evaluate(view(), set()).values())
    assert titles == ["录像机派出所录像机硬盘hdd2故障（smartFailed）", "录像机派出所录像机硬盘hdd3未格式化（unformatted）"]


def test_nvr_rules_hold_while_the_recorder_is_offline():
    e = engine(NvrDiskRule(name="disk"))
    nvr_poll(e, disk("hdd2", "error", "error"))
    firing = set(e.evaluate(view(), set()))
    nvr_poll(e, disk("hdd2", "ok", "ok"))
    out = e.evaluate(view({"NVR1": State.DOWN}), firing)
    assert [c.held for c in out.values()] == [True]  # offline: no news, not resolved


# -- contracted bandwidth --------------------------------------------------------------------------


def port(name, in_bps=None, out_bps=None, **fields):
    values = {"oper_status": 1, "admin_status": 1, "up": True, "speed_mbps": 1000, **fields}
    values |= {k: v for k, v in (("in_bps", in_bps), ("out_bps", out_bps)) if v is not None}
    return Series("snmp_interface", {"interface": name}, values)


def test_a_line_near_its_contracted_bandwidth_is_judged_on_the_ports_facing_it():
    rule = LinkBandwidthRule(name="bw")
    e = engine(rule)
    assert e.facts.watched["snmp_interface"] == frozenset({"CORE", "SW1"})
    # 9.5 Mbit/s on the core's port to LINK1 (10M) is 95 %; the port is 1 Gbit/s: 1 % of ifHighSpeed.
    observe(e, "CORE", "snmp", series=[port("Gi0/10", in_bps=2e6, out_bps=9.5e6), port("Gi0/11", in_bps=300e6)])
    observe(e, "SW1", "snmp", series=[port("Gi0/1", in_bps=9.1e6, out_bps=1e6)])
    out = e.evaluate(view(), set())
    (condition,) = out.values()
    assert condition.title == "专线城关镇专线带宽利用率95%（9.5 Mbit/s，签约带宽10M），超过90%"
    assert condition.details == {"switch": "CORE", "port": "Gi0/10", "bps": 9.5e6, "contracted_bps": 10_000_000}
    assert condition.value == pytest.approx(95.0)
    # 8.5 Mbit/s: under 90 % but above the clear limit 80 %: still firing; 7 Mbit/s clears.
    observe(e, "CORE", "snmp", series=[port("Gi0/10", in_bps=8.5e6)])
    observe(e, "SW1", "snmp", series=[port("Gi0/1", in_bps=1e6)])
    assert list(e.evaluate(view(), set(out))) == list(out)
    assert e.evaluate(view(), set()) == {}  # a new one needs 90 %
    observe(e, "CORE", "snmp", series=[port("Gi0/10", in_bps=7e6)])
    assert e.evaluate(view(), set(out)) == {}


def test_a_line_without_counters_holds():
    e = engine(LinkBandwidthRule(name="bw"))
    observe(e, "CORE", "snmp", series=[port("Gi0/10", out_bps=9.9e6)])
    firing = set(e.evaluate(view(), set()))
    observe(e, "CORE", "snmp", ok=False, reason="timeout")  # a failed poll reports no ports
    out = e.evaluate(view(), firing)
    assert [c.held for c in out.values()] == [True]


def test_the_rate_as_people_write_it():
    assert [rate_text(r) for r in (10**7, 622 * 10**6, 10**9, 1_500_000_000, 512_000)] == ["10M", "622M", "1G", "1.5G", "512k"]
    with pytest.raises(ValidationError, match="clear_below_pct must be ≤ above_pct"):
        LinkBandwidthRule(name="bw", above_pct=50, clear_below_pct=60)


# -- services of platforms --------------------------------------------------------------------------


def test_a_platform_service_down_names_the_probe_and_its_reason():
    rule = VideoDownRule(name="svc", basis="service", match={"kind": ["platform", "server"]})
    e = engine(rule)
    observe(e, "PLT", "http", ok=False, reason="HTTP 503 (expected 200)")
    observe(e, "PLT", "tcp", ok=True)
    network = {d.id: State.UP for d in DEVICES if d.counted}
    out = e.evaluate(view(bases={"network": network, "service": {"PLT": State.DOWN, "CLOUD": State.DOWN}}), set())
    titles = {c.device_id: c.title for c in out.values()}
    assert titles["PLT"] == "平台视频平台网络正常但服务异常（http: HTTP 503 (expected 200)）"
    del network["CLOUD"]  # a cloud server nobody pings: no "network up" in its title
    out = e.evaluate(View(NOW, network, {}, online_rates(DEVICES, network),
                          {"network": network, "service": {"CLOUD": State.DOWN}}), set())
    assert [c.title for c in out.values()] == ["服务器云主机服务异常（原因未知）"]


def test_the_defaults_carry_the_new_rules():
    names = [r.name for r in default_rules()]
    assert {"renewal-due", "tls-expiry", "nvr-not-recording", "nvr-retention", "nvr-disk", "link-bandwidth",
            "platform-service-down"} <= set(names)
    # The defaults evaluate on a fleet without any of these devices without raising anything new.
    plain = Inventory([device("C1", Kind.CAMERA)])
    assert engine(*default_rules(), inventory=plain).evaluate(
        View(NOW, {"C1": State.UP}, {}, online_rates(plain.devices.values(), {"C1": State.UP}), {}), set()) == {}
