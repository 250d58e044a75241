"""The NVR probe's ONVIF Profile G path against the ONVIF simulator (lab/onvif.py with
`recordings`): channels recording or not, retention on the recorder's clock, recording jobs,
the choice of API by manufacturer, a recorder without Profile G, wrong passwords, faults per
recording, hostile and silent recorders."""

from __future__ import annotations

import dataclasses

import pytest

from lab.onvif import OnvifSimulator, Recording
from probes.nvr import NvrConfig, NvrProbe
from tests.plugins.factories import device, schema_checked

DAHUA = dataclasses.replace(device("nvr2", "nvr", address="127.0.0.1"), manufacturer="Dahua 大华")
RECORDINGS = [
    Recording("大门口", earliest_days=31.0, latest_s=3.0),
    Recording("停车场", earliest_days=12.0, latest_s=3 * 3600.0, status="Stopped"),
    Recording("仓库", earliest_days=40.0, latest_s=9 * 86_400.0, status="Stopped", job="Idle"),
    Recording("北门", earliest_days=None, latest_s=None, status="Initiated"),
]


def recorder(recordings=RECORDINGS, **identity) -> dict:
    """A simulator config: a Dahua recorder with `recordings` (password Dh12345)."""
    return {"default": {"manufacturer": "Dahua", "model": "DHI-NVR4216", "password": "Dh12345",
                        "recordings": list(recordings), **identity}}


async def poll(config: dict, nvr=DAHUA, times: int = 1, **cfg):
    async with OnvifSimulator(config) as sim:
        nvr_cfg = NvrConfig(onvif_port=sim.port, username="admin", password_env="NVR_PASSWORD",
                            **({"timeout_s": 2.0} | cfg))
        async with NvrProbe(nvr_cfg) as probe:
            results = [schema_checked(await probe.probe(nvr)) for _ in range(times)]
        return results, sim


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("NVR_PASSWORD", "Dh12345")


def channels(result) -> dict[str, dict]:
    return {s.tags["channel"]: dict(s.fields) for s in result.series if s.measurement == "nvr_channel"}


@pytest.mark.parametrize("clock_offset_s", [0.0, -3600.0], ids=["clock-right", "clock-an-hour-slow"])
async def test_channels_recording_and_retention(clock_offset_s):
    ((result,), sim) = await poll(recorder(clock_offset_s=clock_offset_s))
    assert result.ok and result.reason is None, result.reason
    got = channels(result)
    assert got["1"] == {"enabled": True, "recording": True, "retention_days": pytest.approx(31, abs=0.01),
                        "oldest": got["1"]["oldest"]}
    assert got["1"]["oldest"].endswith("+00:00")
    # stopped three hours ago with its job still active: switched on, not recording
    assert got["2"]["enabled"] is True and got["2"]["recording"] is False
    assert got["2"]["retention_days"] == pytest.approx(12, abs=0.01)
    assert got["3"]["enabled"] is False and got["3"]["recording"] is False  # job Idle: switched off
    assert got["4"] == {"enabled": True, "recording": False}  # never recorded: no retention
    assert result.fields["channels"] == 4 and result.fields["channels_recording"] == 1
    assert result.fields["channels_not_recording"] == 2  # 2 and 4; 3 is switched off
    assert result.fields["min_retention_days"] == pytest.approx(12, abs=0.01)
    assert result.fields["clock_offset_s"] == pytest.approx(clock_offset_s, abs=2)
    assert "disks" not in result.fields and not [s for s in result.series if s.measurement == "nvr_disk"]
    asked = {op for (_, op) in sim.requests}
    assert {"GetRecordingSummary", "GetRecordings", "GetRecordingJobs", "GetRecordingInformation"} <= asked
    assert not sim.auth_failures  # every call signed with the recorder's clock


async def test_a_channel_that_stops_recording_is_seen_at_the_next_poll():
    recs = [Recording("大门口", earliest_days=31.0, latest_s=3.0)]
    async with OnvifSimulator(recorder(recs)) as sim:
        cfg = NvrConfig(onvif_port=sim.port, username="admin", password_env="NVR_PASSWORD", timeout_s=2.0)
        async with NvrProbe(cfg) as probe:
            before = await probe.probe(DAHUA)
            ident = sim.device("127.0.0.1").identity
            stopped = dataclasses.replace(ident, recordings=(Recording("大门口", earliest_days=31.0,
                                                                       latest_s=3600.0, status="Stopped"),))
            sim.device("127.0.0.1").identity = stopped
            after = await probe.probe(DAHUA)
    assert channels(before)["1"]["recording"] is True
    assert channels(after)["1"]["recording"] is False and after.fields["channels_not_recording"] == 1


@pytest.mark.parametrize(("manufacturer", "api", "expected"), [
    (None, "auto", "isapi"), ("HIKVISION", "auto", "isapi"), ("海康威视", "auto", "isapi"),
    ("Dahua", "auto", "onvif"), ("宇视 Uniview", "auto", "onvif"), ("Dahua", "isapi", "isapi"),
    ("HIKVISION", "onvif", "onvif"),
])
def test_the_api_follows_the_manufacturer(manufacturer, api, expected):
    nvr = dataclasses.replace(DAHUA, manufacturer=manufacturer)
    assert NvrConfig(api=api).api_for(nvr) == expected


async def test_a_recorder_without_profile_g_says_so():
    ((result,), _) = await poll(recorder(recordings=[]))
    assert not result.ok and result.fields["up"] is False
    assert result.reason == "no ONVIF Profile G (GetServices offers no Recording and Search service)"


async def test_a_wrong_password_is_a_clear_failure(monkeypatch):
    monkeypatch.setenv("NVR_PASSWORD", "Zq9-not-it")
    ((result,), sim) = await poll(recorder())
    assert not result.ok and "NotAuthorized" in (result.reason or ""), result.reason
    assert sim.auth_failures
    assert "Zq9-not-it" not in (result.reason or "")


@pytest.mark.parametrize("behaviour", ["hang", "garbage", "billion_laughs", "fault_all"])
async def test_hostile_or_silent_recorders_fail_within_the_deadline(behaviour):
    ((result,), _) = await poll(recorder(behaviour=behaviour), timeout_s=0.5, deadline_s=3.0)
    assert not result.ok and result.reason and result.fields["up"] is False
    assert result.fields["response_ms"] < 3_500


async def test_unknown_recording_tokens_make_a_partial_poll(monkeypatch):
    """A recorder that lists a recording but faults on its information (firmware bugs do):
    the poll is ok, the reason names the channel, the other channels are kept."""
    import lab.onvif as sim_module

    original = sim_module.recording_answer

    def faulty(name, request, ident, now):
        if name != "GetRecordings":
            return original(name, request, ident, now)
        answer = original(name, request, ident, now)
        return answer.replace("REC_2<", "REC_99<", 1)

    monkeypatch.setattr(sim_module, "recording_answer", faulty)
    ((result,), _) = await poll(recorder())
    assert result.ok and result.reason.startswith("partial: channel 2: GetRecordingInformation"), result.reason
    assert set(channels(result)) == {"1", "3", "4"}
