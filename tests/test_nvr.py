"""The NVR probe against the ISAPI simulator (lab/isapi.py): disks, channels recording or not,
retention on the recorder's own clock, both namespaces and both ways of writing times, DVRs
without IP channels, wrong passwords and locked accounts, ISAPI errors and hostile answers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from pydantic import ValidationError

from lab.isapi import Channel, Disk, IsapiSimulator, Nvr, NS_ISAPI
from probes.nvr import DISK_STATES, NvrConfig, NvrProbe
from tests.plugins.factories import device, schema_checked

NVR = device("nvr1", "nvr", address="127.0.0.1")
DAY = dt.timedelta(days=1)


def recorder(**kw) -> Nvr:
    """An NVR with two disks and four channels: 1 records for 31 days, 2 stopped three hours
    ago after 12 days, 3 is switched off with its camera offline, 4 never recorded."""
    nvr = Nvr(**kw)
    now = nvr.local_now()
    nvr.disks = [Disk(1, free_mb=0), Disk(2, free_mb=0)]
    nvr.channels = [
        Channel(1, since=now - 31 * DAY),
        Channel(2, since=now - 12 * DAY, recording=False, stopped=now - dt.timedelta(hours=3)),
        Channel(3, enabled=False, online=False, detect="netUnreachable", since=now - 40 * DAY, recording=False,
                stopped=now - 9 * DAY),
        Channel(4, since=None, recording=False),
    ]
    return nvr


async def poll(nvr: Nvr, times: int = 1, **cfg):
    """Results of `times` polls of the simulated `nvr`, and the simulator."""
    async with IsapiSimulator(nvr) as sim:
        config = NvrConfig(port=sim.port, username="admin", password_env="NVR_PASSWORD",
                           **({"timeout_s": 2.0} | cfg))
        async with NvrProbe(config) as probe:
            results = [schema_checked(await probe.probe(NVR)) for _ in range(times)]
        return results, sim


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("NVR_PASSWORD", "Hik12345")


def series(result, measurement: str) -> dict[str, dict]:
    return {next(iter(s.tags.values())): dict(s.fields) for s in result.series if s.measurement == measurement}


@pytest.mark.parametrize("variant", [
    {}, {"namespace": NS_ISAPI}, {"times_utc": True, "search": "utc"}, {"clock_offset_s": -3600.0},
], ids=["hikvision-ns", "isapi-ns", "utc-times", "clock-an-hour-slow"])
async def test_disks_channels_and_retention(variant):
    search = variant.pop("search", "local")
    ((result,), _) = await poll(recorder(**variant), search_times=search)
    assert result.ok and result.reason is None, result.reason
    channels = series(result, "nvr_channel")
    assert channels["1"] == {"enabled": True, "online": True, "detect": "connect", "recording": True,
                             "retention_days": pytest.approx(31, abs=0.01), "oldest": channels["1"]["oldest"]}
    assert channels["2"]["recording"] is False and channels["2"]["retention_days"] == pytest.approx(12, abs=0.01)
    assert channels["3"]["enabled"] is False and channels["3"]["online"] is False
    assert channels["3"]["detect"] == "netUnreachable" and channels["3"]["recording"] is False
    assert channels["4"]["recording"] is False and "retention_days" not in channels["4"]
    assert result.fields["channels"] == 4 and result.fields["channels_recording"] == 1
    assert result.fields["channels_not_recording"] == 2  # 2 and 4; 3 is switched off
    assert result.fields["min_retention_days"] == pytest.approx(12, abs=0.01)
    assert result.fields["clock_offset_s"] == pytest.approx(variant.get("clock_offset_s", 0), abs=2)
    disks = series(result, "nvr_disk")
    assert disks["hdd1"] == {"status": "ok", "state": "ok", "ok": True, "capacity_bytes": 3_815_447 << 20,
                             "free_bytes": 0, "used_pct": 100.0}
    assert result.fields["disks"] == 2 and result.fields["disks_bad"] == 0 and result.fields["free_pct"] == 0.0


async def test_a_wrong_way_of_reading_times_is_eight_hours_off():
    """Why search_times matters: an NVR writing true UTC read as local time looks 8 h behind,
    and a channel recording now is not found in the last 15 minutes."""
    ((result,), _) = await poll(recorder(times_utc=True), search_times="local")
    assert series(result, "nvr_channel")["1"]["recording"] is False


@pytest.mark.parametrize(("status", "state"), [
    ("ok", "ok"), ("idle", "ok"), ("unformatted", "unformatted"), ("error", "error"), ("smartFailed", "error"),
    ("mismatch", "error"), ("offline", "offline"), ("notexist", "offline"), ("formating", "busy"),
    ("reparing", "busy"), ("someNewWord", "other"),
])
async def test_disk_states(status, state):
    nvr = recorder()
    nvr.disks[1].status = status
    ((result,), _) = await poll(nvr)
    disk = series(result, "nvr_disk")["hdd2"]
    assert (disk["status"], disk["state"], disk["ok"]) == (status, state, state == "ok")
    assert result.fields["disks_bad"] == (state != "ok")
    assert DISK_STATES.get(status.lower(), "other") == state


async def test_the_oldest_recording_is_searched_again_only_when_due():
    (first, second), sim = await poll(recorder(), times=2)
    assert sim.requests["/ISAPI/ContentMgmt/search"] == 4 * 2 + 4  # twice the recent window, the oldest once
    assert series(second, "nvr_channel")["1"]["retention_days"] == series(first, "nvr_channel")["1"]["retention_days"]
    _, again = await poll(recorder(), times=2, retention_refresh_s=0)
    assert again.requests["/ISAPI/ContentMgmt/search"] == 4 * 2 * 2


async def test_a_channel_that_stops_recording_is_seen_at_the_next_poll():
    nvr = recorder()
    async with IsapiSimulator(nvr) as sim:
        async with NvrProbe(NvrConfig(port=sim.port, username="admin", password_env="NVR_PASSWORD")) as probe:
            before = await probe.probe(NVR)
            nvr.channels[0].recording, nvr.channels[0].stopped = False, nvr.local_now() - dt.timedelta(hours=1)
            after = await probe.probe(NVR)
    assert series(before, "nvr_channel")["1"]["recording"] is True
    assert series(after, "nvr_channel")["1"]["recording"] is False
    assert after.fields["channels_not_recording"] == 3


async def test_a_dvr_without_ip_channels_counts_every_track():
    ((result,), _) = await poll(recorder(input_proxy=False))
    assert result.ok and result.reason is None  # InputProxy notSupport is no problem
    channels = series(result, "nvr_channel")
    assert list(channels) == ["1", "2", "3", "4"] and "online" not in channels["1"]


# -- accounts --------------------------------------------------------------------------------------


async def test_a_wrong_password_is_not_tried_again_until_auth_retry_s(monkeypatch):
    monkeypatch.setenv("NVR_PASSWORD", "wrong")
    (first, second), sim = await poll(recorder(), times=2)
    assert not first.ok and first.reason == "401 Unauthorized: wrong user name or password"
    assert second.reason.startswith("401 Unauthorized: wrong user name or password; not asked again for 3600 s")
    assert sim.auth_failures == 1  # one wrong login per hour, not one per poll
    (a, b), sim = await poll(recorder(), times=2, auth_retry_s=0)
    # Asked at every poll: the first login fails once, later ones twice (the remembered
    # challenge, then the fresh one): what auth_retry_s spares the account.
    assert sim.auth_failures == 3 and b.reason == a.reason


async def test_a_locked_account_is_named(monkeypatch):
    monkeypatch.setenv("NVR_PASSWORD", "wrong")
    nvr = recorder(max_failures=1)
    async with IsapiSimulator(nvr) as sim:
        config = NvrConfig(port=sim.port, username="admin", password_env="NVR_PASSWORD", auth_retry_s=0)
        async with NvrProbe(config) as probe:
            locked = await probe.probe(NVR)
    assert locked.reason == "account locked by the NVR (too many wrong logins)"


def test_nvrs_are_polled_only_with_an_account():
    assert not NvrProbe(NvrConfig()).wants(NVR)
    probe = NvrProbe(NvrConfig(username="admin", password_env="NVR_PASSWORD"))
    assert probe.wants(NVR) and not probe.wants(device("cam", "camera"))
    assert not probe.wants(device("nvr2", "nvr", address=None))


# -- errors and hostile answers ------------------------------------------------------------------------


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("busy", "time: ISAPI Device Busy (deviceBusy)"),
    ("device_error", "time: ISAPI Device Error (deviceError)"),  # HTTP 200 carrying the error
    ("garbage", "time: not XML"),
    ("dtd", "time: a DTD in the answer, refused"),
    ("huge", "time: answer larger than 65536 bytes"),
    ("slow_drip", "time: timeout (1 s)"),
    ("hang", "time: timeout (1 s)"),
])
async def test_errors_and_hostile_answers_fail_with_a_reason_within_the_budget(behaviour, reason):
    nvr = recorder(behaviour=behaviour)
    async with IsapiSimulator(nvr) as sim:
        config = NvrConfig(port=sim.port, username="admin", password_env="NVR_PASSWORD", timeout_s=1.0,
                           deadline_s=5.0, max_response_bytes=65536)
        async with NvrProbe(config) as probe:
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await probe.probe(NVR)
            took = loop.time() - started
            budget = probe.budget_s(NVR)
    assert not result.ok and result.reason == reason
    assert took <= budget


async def test_the_whole_poll_has_one_deadline():
    nvr = recorder()
    nvr.channels = [Channel(n, since=nvr.local_now() - DAY) for n in range(1, 65)]
    ((result,), _) = await poll(nvr, deadline_s=0.05, timeout_s=1.0)
    assert not result.ok and result.reason == "timeout (poll not done within 0.05 s)"


async def test_unreachable_nvr():
    async with NvrProbe(NvrConfig(port=1, username="admin", password_env="NVR_PASSWORD")) as probe:
        result = await probe.probe(NVR)
    assert not result.ok and result.reason.startswith("time: cannot connect")


async def test_simulator_errors_follow_isapi():
    """The simulator's own error documents (what the probe is built against), asked directly."""
    import aiohttp

    nvr = recorder()
    async with IsapiSimulator(nvr) as sim:
        digest = aiohttp.DigestAuthMiddleware("admin", "Hik12345")
        async with aiohttp.ClientSession(middlewares=(digest,)) as session:
            base = f"http://127.0.0.1:{sim.port}"
            async with session.get(f"{base}/ISAPI/System/deviceReboot") as r:
                assert r.status == 403 and "<subStatusCode>notSupport</subStatusCode>" in await r.text()
            async with session.get(f"{base}/ISAPI/ContentMgmt/search") as r:
                assert r.status == 405 and "<subStatusCode>methodNotAllowed</subStatusCode>" in await r.text()
            async with session.post(f"{base}/ISAPI/ContentMgmt/search", data=b"<CMSearch") as r:
                text = await r.text()
                assert r.status == 400 and "<statusCode>5</statusCode>" in text and "badXmlFormat" in text
            async with session.post(f"{base}/ISAPI/ContentMgmt/search", data=b"<CMSearchDescription/>") as r:
                assert r.status == 400 and "badXmlContent" in await r.text()


def test_config_is_strict():
    with pytest.raises(ValidationError, match="Input should be 'local' or 'utc'"):
        NvrConfig(search_times="beijing")
    with pytest.raises(ValidationError, match="username and password_env/password_file go together"):
        NvrConfig(username="admin")
