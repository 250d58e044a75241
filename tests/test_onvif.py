"""The ONVIF probe (probes/onvif.py) against the ONVIF device simulator (lab/onvif.py) over real
HTTP on loopback, and the simulator itself against the points of the specs it simulates."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import zeep.exceptions
from onvif import ONVIFCamera
from pydantic import ValidationError
from zeep.settings import Settings

import lab.onvif
from lab.onvif import NS_WSSE, NS_WSU, PASSWORD_DIGEST, OnvifSimulator, OnvifSimulatorProcess
from lab.process import free_ports
from monitor.core.model import Device, Kind
from probes._onvif_client import ResponseRefused, check_response, reason_of
from probes.onvif import OnvifConfig, OnvifProbe
from probes.onvif_model import pick_analysis_profile, profile_size, rtsp_uri, strip_userinfo
from probes.vqd.config import ANALYSIS_WIDTH

from tests.plugins.factories import device

PASSWORD = "Cam-pass-7731"
ENV = "FLEETMON_TEST_ONVIF_PASSWORD"
IDENTITY = {
    "manufacturer": "HIKVISION", "model": "DS-2CD2T47G2-L", "firmware": "V5.7.1", "serial": "SN0001",
    "username": "admin", "password": PASSWORD, "stream_path": "/Streaming/Channels/101",
}


@pytest.fixture
async def simulator():
    made: list[OnvifSimulator] = []

    async def make(config=None, hosts=("127.0.0.1",)) -> OnvifSimulator:
        sim = await OnvifSimulator(config if config is not None else {"default": IDENTITY}, hosts=hosts).start()
        made.append(sim)
        return sim

    yield make
    for sim in made:
        await sim.close()


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, PASSWORD)
    return ENV


def camera(address: str = "127.0.0.1", **point_list: str) -> Device:
    return device(f"cam-{address}", name="东门卡口", address=address, site="east-gate", region="town-a", **point_list)


def probe_for(sim: OnvifSimulator, **cfg) -> OnvifProbe:
    cfg.setdefault("username", "admin")
    if cfg["username"] is not None:
        cfg.setdefault("password_env", ENV)
    return OnvifProbe(OnvifConfig(port=sim.port, timeout_s=3, **cfg))


async def run(probe: OnvifProbe, device: Device):
    async with probe:
        return await probe.probe(device)


# ---------------------------------------------------------------------------------------------
# The probe.


async def test_four_calls_give_identity_profiles_and_stream_uri(simulator, password_env) -> None:
    sim = await simulator()
    result = await run(probe_for(sim), camera())
    assert result.ok and result.reason is None
    f = dict(result.fields)
    assert f["up"] is True
    assert (f["manufacturer"], f["model"], f["firmware"], f["serial"]) == ("HIKVISION", "DS-2CD2T47G2-L", "V5.7.1", "SN0001")
    assert f["profiles"] == 2
    assert f["stream_uri"] == "rtsp://127.0.0.1:554/Streaming/Channels/101"
    assert f["sub_stream_uri"] == "rtsp://127.0.0.1:554/Streaming/Channels/102"  # 640×360, for the frame check
    assert f["inventory_mismatch"] == ""  # the point list is silent
    assert f["response_ms"] > 0 and abs(f["clock_offset_s"]) < 1.5 and f["clock_drift_s"] == abs(f["clock_offset_s"])
    assert set(f) <= set(OnvifProbe.measurements[0].fields)
    ops = {op for (_, op) in sim.requests}
    assert {"GetSystemDateAndTime", "GetDeviceInformation", "GetServices", "GetProfiles", "GetStreamUri"} <= ops
    assert sim.auth_failures == []


async def test_inventory_mismatch_reported_and_equal_values_pass(simulator, password_env) -> None:
    sim = await simulator()
    probe = probe_for(sim)
    same = await run(probe, camera(manufacturer=" hikvision ", model="ds-2cd2t47g2-l", firmware="V5.7.1", serial="SN0001"))
    assert same.ok and same.fields["inventory_mismatch"] == ""
    chinese_brand = await run(probe, camera(manufacturer="海康威视"))  # as point lists write it
    assert chinese_brand.fields["inventory_mismatch"] == ""
    other_brand = await run(probe, camera(manufacturer="大华"))
    assert other_brand.fields["inventory_mismatch"] == "manufacturer: HIKVISION ≠ 大华 (点位表)"
    differs = await run(probe, camera(firmware="V5.5.0", serial="SN0002"))
    assert differs.ok
    assert differs.fields["inventory_mismatch"] == "firmware: V5.7.1 ≠ V5.5.0 (点位表); serial: SN0001 ≠ SN0002 (点位表)"


async def test_single_profile_and_stream_path_with_credentials_stripped(simulator, password_env) -> None:
    sim = await simulator({"default": {**IDENTITY, "profiles": 1, "stream_path": "/h264/ch1/main/av_stream"}})
    result = await run(probe_for(sim), camera())
    assert result.fields["profiles"] == 1
    assert result.fields["stream_uri"] == "rtsp://127.0.0.1:554/h264/ch1/main/av_stream"
    assert result.fields["sub_stream_uri"] == result.fields["stream_uri"]  # the only profile: the frame check's too
    assert strip_userinfo("rtsp://admin:secret@10.1.2.3:554/live") == "rtsp://10.1.2.3:554/live"
    assert strip_userinfo("rtsp://10.1.2.3/live") == "rtsp://10.1.2.3/live"


HIK_MAIN = {"width": 1920, "height": 1080, "uri": "/Streaming/Channels/101"}
HIK_SUB = {"width": 640, "height": 360, "uri": "/Streaming/Channels/102"}
DAHUA = "/cam/realmonitor?channel=1&subtype="


@pytest.mark.parametrize(("media", "sub", "calls"), [
    ([HIK_MAIN, HIK_SUB], 2, 2),  # Hikvision 101 / 102
    ([{**HIK_MAIN, "uri": DAHUA + "0"}, {"width": 704, "height": 576, "uri": DAHUA + "1"}], 2, 2),  # Dahua D1 sub
    ([HIK_MAIN, {"width": 1280, "height": 720, "uri": "/Streaming/Channels/102"}, {**HIK_SUB, "uri": "/s3"}], 3, 2),
    ([HIK_MAIN, HIK_SUB, {"width": 352, "height": 288, "uri": "/cif"}], 2, 2),  # the smallest at least 480 wide
    ([HIK_MAIN, {"width": 352, "height": 288, "uri": "/cif"}], 1, 1),  # CIF only: below the analysis width → main
    ([HIK_MAIN, {**HIK_SUB, "width": None, "height": None}], 1, 1),  # no resolution → main
    ([{**HIK_MAIN, "width": None}, {**HIK_SUB, "height": None}], 1, 1),  # none has a size → main
    ([HIK_MAIN, {**HIK_MAIN, "uri": "/Streaming/Channels/102"}], 1, 1),  # equal sizes: the first
    ([HIK_MAIN, {**HIK_SUB, "uri": "rtsp://[bad:554/102"}], 1, 2),  # malformed URIs → main
    ([HIK_MAIN, {**HIK_SUB, "uri": "http://127.0.0.1/102"}], 1, 2),
    ([HIK_MAIN, {**HIK_SUB, "uri": "rtsp://:0/102"}], 1, 2),
    ([HIK_MAIN, {**HIK_SUB, "uri": ""}], 1, 2),
    ([HIK_SUB, HIK_MAIN], 1, 1),  # the sub-stream listed first is the first profile, no second call
])
async def test_sub_stream_uri_is_the_smallest_profile_at_least_the_analysis_width(simulator, password_env, media,
                                                                                   sub, calls) -> None:
    """`sub`: the 1-based profile whose URI is offered as sub_stream_uri; `calls`: GetStreamUri
    calls made (a second one only for a profile other than the first)."""
    sim = await simulator({"default": {**IDENTITY, "media": media}})
    result = await run(probe_for(sim), camera())
    assert result.ok and result.fields["profiles"] == len(media)
    assert result.fields["stream_uri"] == f"rtsp://127.0.0.1:554{media[0]['uri']}"  # the rtsp probe's: the first
    assert result.fields["sub_stream_uri"] == f"rtsp://127.0.0.1:554{media[sub - 1]['uri']}"
    assert sim.requests[("127.0.0.1", "GetStreamUri")] == calls


async def test_a_faulting_sub_stream_uri_leaves_the_main_one(simulator, password_env, monkeypatch) -> None:
    sim = await simulator({"default": {**IDENTITY, "media": [HIK_MAIN, HIK_SUB]}})
    real = lab.onvif.stream_uri

    def second_faults(request, ident, address):  # as a camera whose sub profile vanished answers
        if (request.findtext(f"{{{lab.onvif.NS_TRT}}}ProfileToken") or "").strip() == "Profile_2":
            raise lab.onvif.SoapFault("env:Sender", ["ter:InvalidArgVal", "ter:NoProfile"], "gone")
        return real(request, ident, address)

    monkeypatch.setattr(lab.onvif, "stream_uri", second_faults)
    result = await run(probe_for(sim), camera())
    assert result.ok and result.fields["sub_stream_uri"] == result.fields["stream_uri"] == \
        "rtsp://127.0.0.1:554/Streaming/Channels/101"


class _Obj:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def test_profile_size_and_pick_on_hostile_answers() -> None:
    def prof(width, height):
        return _Obj(VideoEncoderConfiguration=_Obj(Resolution=_Obj(Width=width, Height=height)))

    assert profile_size(prof(640, 360)) == (640, 360)
    assert profile_size(prof("640", "360")) == (640, 360)
    for bad in (prof(None, 360), prof("wide", 360), prof(0, 360), prof(640, -1), prof(1 << 20, 360),
                _Obj(VideoEncoderConfiguration=None), _Obj()):
        assert profile_size(bad) is None
    assert pick_analysis_profile([]) == 0
    assert pick_analysis_profile([None, None]) == 0
    assert pick_analysis_profile([(1920, 1080), (640, 360)]) == 1
    assert pick_analysis_profile([(1920, 1080), (ANALYSIS_WIDTH, 270), (640, 360)]) == 1  # exactly the width counts
    assert pick_analysis_profile([(1920, 1080), (ANALYSIS_WIDTH - 1, 1000)]) == 0
    assert pick_analysis_profile([(1920, 1080), (640, 480), (640, 480)]) == 1  # equal: the earlier
    assert pick_analysis_profile([(320, 240), (352, 288)]) == 0  # an old CIF camera: its first profile
    assert rtsp_uri(" rtsp://admin:pw@10.1.2.3:554/live ") == "rtsp://10.1.2.3:554/live"
    for bad in ("rtsp://[bad/", "rtsp://10.1.2.3:port/", "rtsp://10.1.2.3:0/", "http://10.1.2.3/", "rtsp:///x", ""):
        assert rtsp_uri(bad) == ""


async def test_wrong_password_is_not_authorized(simulator, monkeypatch, caplog) -> None:
    monkeypatch.setenv(ENV, "not-the-password")
    sim = await simulator()
    with caplog.at_level(logging.DEBUG):
        result = await run(probe_for(sim), camera())
    assert not result.ok and result.fields["up"] is False
    assert result.reason == "401 NotAuthorized (wrong credentials)"
    assert "clock_offset_s" in result.fields  # the clock needs no credentials
    assert sim.auth_failures == [("127.0.0.1", "GetDeviceInformation", "wrong username or digest")]
    assert "not-the-password" not in caplog.text and "not-the-password" not in str(result.to_dict())


async def test_no_credentials_configured(simulator) -> None:
    sim = await simulator()
    result = await run(probe_for(sim, username=None), camera())
    assert not result.ok and result.reason == "401 NotAuthorized (no credentials configured)"
    assert sim.auth_failures == [("127.0.0.1", "GetDeviceInformation", "no UsernameToken")]


@pytest.mark.parametrize("offset_s", [3600.0, -5400.0, 400.0, -86_400.0 * 30])
async def test_clock_drift_measured_and_compensated(simulator, password_env, offset_s) -> None:
    sim = await simulator({"default": {**IDENTITY, "clock_offset_s": offset_s}})
    result = await run(probe_for(sim), camera())
    assert result.ok, result.reason  # authenticated although the camera's clock is far off ours
    assert abs(result.fields["clock_offset_s"] - offset_s) < 1.5
    assert result.fields["clock_drift_s"] == abs(result.fields["clock_offset_s"])
    assert sim.auth_failures == []


async def test_uncompensated_client_is_refused_by_a_drifted_camera(simulator) -> None:
    sim = await simulator({"default": {**IDENTITY, "clock_offset_s": 3600.0}})
    cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True)  # adjust_time off
    try:
        devicemgmt = await cam.create_devicemgmt_service()
        with pytest.raises(zeep.exceptions.Fault) as fault:
            await devicemgmt.GetDeviceInformation()
    finally:
        await cam.close()
    assert reason_of(fault.value, True) == "401 NotAuthorized (wrong credentials)"
    assert sim.auth_failures == [("127.0.0.1", "GetDeviceInformation", "stale Created")]


async def test_identity_chosen_by_local_address(simulator, password_env) -> None:
    config = {"default": IDENTITY, "devices": {"127.0.0.2": {"manufacturer": "Dahua", "model": "IPC-HFW2431S",
                                                             "clock_offset_s": -600.0}}}
    sim = await simulator(config, hosts=("127.0.0.1", "127.0.0.2"))
    probe = probe_for(sim)
    first, second = await run(probe, camera("127.0.0.1")), await run(probe, camera("127.0.0.2"))
    assert first.fields["manufacturer"] == "HIKVISION" and abs(first.fields["clock_offset_s"]) < 1.5
    assert (second.fields["manufacturer"], second.fields["model"]) == ("Dahua", "IPC-HFW2431S")
    assert abs(second.fields["clock_offset_s"] + 600.0) < 1.5
    assert second.fields["stream_uri"].startswith("rtsp://127.0.0.2:554/")


async def test_media_is_read_once_per_refresh_interval(simulator, password_env) -> None:
    sim = await simulator()
    probe = probe_for(sim)
    first, second = await run(probe, camera()), await run(probe, camera())
    assert first.fields["stream_uri"] and first.fields["profiles"] == 2
    assert second.ok and "stream_uri" not in second.fields and "profiles" not in second.fields
    assert [op for _, op in sim.requests].count("GetStreamUri") == 1
    every = probe_for(sim, media_refresh_s=0)
    assert "stream_uri" in (await run(every, camera())).fields


async def test_connection_refused(password_env) -> None:
    (port,) = free_ports(1)
    probe = OnvifProbe(OnvifConfig(port=port, username="admin", password_env=ENV))
    result = await run(probe, camera())
    assert not result.ok and result.reason == "connection refused" and result.fields["up"] is False


async def test_credentials_override_per_selector(simulator, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(ENV, "default-is-wrong")
    secret = tmp_path / "town-a.pass"
    secret.write_text(PASSWORD + "\n")
    sim = await simulator()
    probe = probe_for(sim, credentials=[{"match": {"region": ["town-a"]}, "username": "admin", "password_file": secret}])
    assert (await run(probe, camera())).ok
    other = device("cam-2", name="西门", address="127.0.0.1", site="west", region="town-b")
    assert (await run(probe, other)).reason == "401 NotAuthorized (wrong credentials)"


def test_wants_cameras_with_an_address_and_credentials(password_env) -> None:
    assert not OnvifProbe(OnvifConfig()).wants(camera())  # no credentials: not polled, no 0 % service rate
    probe = OnvifProbe(OnvifConfig(username="admin", password_env=ENV))
    assert probe.wants(camera())
    assert not probe.wants(device("sw-1", Kind.SWITCH, name="交换机", address="10.0.0.1"))
    assert not probe.wants(device("cam-9", name="拆除", address=None))
    assert probe.budget_s(camera()) >= 5.0


# Run in a fresh interpreter: this test process has zeep and onvif loaded already. The root
# logger starts without handlers there, so the onvif library's logging.basicConfig would show.
LAZY_LOAD = """
import asyncio, logging, sys
import monitor.app.daemon
from probes.onvif import OnvifConfig, OnvifProbe
print(sorted(m for m in ("zeep", "onvif") if m in sys.modules))
async def enter():
    async with OnvifProbe(OnvifConfig()):
        pass
asyncio.run(enter())
root = logging.getLogger()
print(sorted(m for m in ("zeep", "onvif") if m in sys.modules), root.handlers, logging.getLevelName(root.level))
"""


def test_zeep_and_onvif_load_only_when_the_probe_is_entered() -> None:
    """An operator running ICMP only does not pay for zeep and onvif-zeep-async (~8 MB of RSS); the
    probe loads them when entered, and the library's logging.basicConfig is undone there."""
    done = subprocess.run([sys.executable, "-c", LAZY_LOAD], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['onvif', 'zeep'] [] WARNING"]


def test_config_validation(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    monkeypatch.delenv("FLEETMON_TEST_UNSET", raising=False)
    with pytest.raises(ValidationError, match="must not be written in the config"):
        OnvifConfig(username="admin", password=PASSWORD)
    with pytest.raises(ValidationError, match="must not be written in the config"):
        OnvifConfig(credentials=[{"match": {}, "username": "a", "password": PASSWORD}])
    with pytest.raises(ValidationError, match="username and password_env/password_file go together"):
        OnvifConfig(username="admin")
    with pytest.raises(ValidationError, match="username and password_env/password_file go together"):
        OnvifConfig(password_env=ENV)
    with pytest.raises(ValidationError, match="FLEETMON_TEST_UNSET is not set"):
        OnvifConfig(username="admin", password_env="FLEETMON_TEST_UNSET")
    with pytest.raises(ValidationError, match="not both"):
        OnvifConfig(username="admin", password_env=ENV, password_file=tmp_path / "x")
    with pytest.raises(ValidationError, match="password_env or password_file"):
        OnvifConfig(credentials=[{"match": {"site": ["a"]}, "username": "a"}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        OnvifConfig(timeout=5)
    with pytest.raises(ValidationError):
        OnvifConfig(port=0)
    with pytest.raises(ValidationError):
        OnvifConfig(max_response_bytes=10)
    with pytest.raises(ValidationError, match="its value is not shown") as exc:
        OnvifConfig(username="admin", password_env=PASSWORD)  # the secret written where a name belongs
    assert all(PASSWORD not in e["msg"] for e in exc.value.errors())
    cfg = OnvifConfig(username="admin", password_env=ENV)
    assert cfg.password.get_secret_value() == PASSWORD and PASSWORD not in repr(cfg)
    assert "password" not in cfg.model_dump()


# ---------------------------------------------------------------------------------------------
# The simulator against the specs.


def soap(body: str, token: str = "") -> bytes:
    header = f"<env:Header>{token}</env:Header>" if token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl">'
        f"{header}<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def username_token(password: str, created: dt.datetime, nonce: bytes, username: str = "admin",
                   kind: str = PASSWORD_DIGEST) -> str:
    """A WS-Security UsernameToken (WSS UsernameToken Profile 1.0 §3.1), built by hand."""
    created_text = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    digest = base64.b64encode(hashlib.sha1(nonce + created_text.encode() + password.encode()).digest()).decode()
    value = digest if kind == PASSWORD_DIGEST else password
    return (
        f'<wsse:Security xmlns:wsse="{NS_WSSE}" xmlns:wsu="{NS_WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username><wsse:Password Type=\"{kind}\">{value}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created_text}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


async def post(sim: OnvifSimulator, body: bytes, path: str = "/onvif/device_service",
               host: str = "127.0.0.1") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url(host)}{path}", data=body,
                                headers={"Content-Type": "application/soap+xml; charset=utf-8"}) as response:
            return response.status, await response.text()


INFO = "<tds:GetDeviceInformation/>"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def test_simulator_checks_the_password_digest(simulator) -> None:
    sim = await simulator()
    status, text = await post(sim, soap(INFO, username_token(PASSWORD, now(), os.urandom(16))))
    assert status == 200 and "<tds:SerialNumber>SN0001</tds:SerialNumber>" in text
    status, text = await post(sim, soap(INFO, username_token("wrong", now(), os.urandom(16))))
    assert status == 400 and "ter:NotAuthorized" in text and "env:Sender" in text
    status, _ = await post(sim, soap(INFO, username_token(PASSWORD, now(), os.urandom(16), username="root")))
    assert status == 400
    status, _ = await post(sim, soap(INFO, username_token(PASSWORD, now(), os.urandom(16), kind="#PasswordText")))
    assert status == 400
    status, _ = await post(sim, soap(INFO))
    assert status == 400
    assert [why for (_, _, why) in sim.auth_failures] == [
        "wrong username or digest", "wrong username or digest", "not a PasswordDigest", "no UsernameToken"]


async def test_simulator_refuses_a_replayed_nonce(simulator) -> None:
    sim = await simulator()
    token = username_token(PASSWORD, now(), os.urandom(16))
    assert (await post(sim, soap(INFO, token)))[0] == 200
    status, text = await post(sim, soap(INFO, token))
    assert status == 400 and "ter:NotAuthorized" in text
    assert sim.auth_failures == [("127.0.0.1", "GetDeviceInformation", "nonce replay")]


@pytest.mark.parametrize("device_offset_s, created_offset_s, accepted", [
    (0, -400, False), (0, 400, False), (0, -200, True), (3600, 0, False), (3600, 3550, True), (-3600, -3600, True),
])
async def test_simulator_checks_created_against_its_own_clock(simulator, device_offset_s, created_offset_s,
                                                              accepted) -> None:
    sim = await simulator({"default": {**IDENTITY, "clock_offset_s": device_offset_s}})
    created = now() + dt.timedelta(seconds=created_offset_s)
    status, _ = await post(sim, soap(INFO, username_token(PASSWORD, created, os.urandom(16))))
    assert (status == 200) is accepted
    assert sim.auth_failures == ([] if accepted else [("127.0.0.1", "GetDeviceInformation", "stale Created")])


async def test_simulator_faults_and_malformed_requests(simulator) -> None:
    sim = await simulator()
    status, text = await post(sim, soap("<tds:GetHostname/>"))
    assert status == 500 and "env:Receiver" in text and "ter:ActionNotSupported" in text
    status, text = await post(sim, soap("<trt:GetProfiles/>"))  # a media operation at the device service
    assert status == 500 and "ter:ActionNotSupported" in text
    status, text = await post(sim, b"<env:Envelope><unclosed>")
    assert status == 400 and "ter:WellFormed" in text
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + soap("<tds:GetSystemDateAndTime/>").split(b"?>", 1)[1]
    status, text = await post(sim, dtd)
    assert status == 400 and "DTD not allowed" in text
    soap11 = soap("<tds:GetSystemDateAndTime/>").replace(b"http://www.w3.org/2003/05/soap-envelope",
                                                         b"http://schemas.xmlsoap.org/soap/envelope/")
    status, text = await post(sim, soap11)
    assert status == 500 and "env:VersionMismatch" in text
    token = username_token(PASSWORD, now(), os.urandom(16))
    stream = ("<trt:GetStreamUri><trt:StreamSetup><tt:Stream xmlns:tt=\"http://www.onvif.org/ver10/schema\">RTP-Unicast"
              "</tt:Stream><tt:Transport xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:Protocol>RTSP</tt:Protocol>"
              "</tt:Transport></trt:StreamSetup><trt:ProfileToken>NoSuchProfile</trt:ProfileToken></trt:GetStreamUri>")
    status, text = await post(sim, soap(stream, token), path="/onvif/media_service")
    assert status == 400 and "ter:NoProfile" in text


async def test_unknown_action_fault_reason(simulator) -> None:
    sim = await simulator()
    cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True)
    try:
        devicemgmt = await cam.create_devicemgmt_service()
        with pytest.raises(zeep.exceptions.Fault) as fault:
            await devicemgmt.GetHostname()
    finally:
        await cam.close()
    assert reason_of(fault.value, True) == "SOAP fault: ter:ActionNotSupported: Optional Action Not Implemented"


async def test_simulator_xaddrs_follow_the_address_asked(simulator) -> None:
    sim = await simulator(hosts=("127.0.0.1", "127.0.0.2"))
    for host in sim.hosts:
        status, text = await post(sim, soap('<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability>'
                                            '</tds:GetServices>'), host=host)
        assert status == 200 and f"<tds:XAddr>http://{host}:{sim.port}/onvif/media_service</tds:XAddr>" in text
        status, text = await post(sim, soap("<tds:GetCapabilities><tds:Category>All</tds:Category>"
                                            "</tds:GetCapabilities>"), host=host)
        assert status == 200 and f"<tt:XAddr>http://{host}:{sim.port}/onvif/device_service</tt:XAddr>" in text


async def test_simulator_responses_are_schema_valid(simulator) -> None:
    """Every answer parses with zeep in strict mode against the ONVIF WSDLs/XSDs."""
    sim = await simulator()
    cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True)
    try:
        devicemgmt = await cam.create_devicemgmt_service()
        strict = Settings(strict=True, forbid_dtd=True)
        devicemgmt.zeep_client.settings = devicemgmt.zeep_client_authless.settings = strict
        clock = await devicemgmt.authless_GetSystemDateAndTime()
        assert clock.UTCDateTime.Date.Year >= 2024 and clock.TimeZone.TZ == "CST-8"
        caps = await devicemgmt.GetCapabilities({"Category": "All"})
        assert caps.Media.XAddr == f"http://127.0.0.1:{sim.port}/onvif/media_service"
        services = await devicemgmt.GetServices({"IncludeCapability": False})
        assert {s.Namespace for s in services} == {"http://www.onvif.org/ver10/device/wsdl",
                                                  "http://www.onvif.org/ver10/media/wsdl"}
        info = await devicemgmt.GetDeviceInformation()
        assert info.HardwareId == "88"
        await cam.update_xaddrs()
        media = await cam.create_media_service()
        media.zeep_client.settings = strict
        profiles = await media.GetProfiles()
        encoder = profiles[0].VideoEncoderConfiguration
        assert (encoder.Encoding, encoder.Resolution.Width, encoder.Resolution.Height) == ("H264", 2560, 1440)
        uri = await media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                                        "ProfileToken": profiles[1].token})
        assert uri.Uri == "rtsp://127.0.0.1:554/Streaming/Channels/102" and uri.InvalidAfterConnect is False
    finally:
        await cam.close()


def test_check_response_refuses_what_zeep_should_not_see() -> None:
    with pytest.raises(ResponseRefused, match="malformed XML"):
        check_response(b"hello world")
    with pytest.raises(ResponseRefused, match="DTD/entities"):
        check_response(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    with pytest.raises(ResponseRefused, match="not a SOAP response"):
        check_response(b"<html><body>login</body></html>")
    check_response(soap("<tds:GetSystemDateAndTimeResponse/>"))


# ---------------------------------------------------------------------------------------------
# The simulator as a process (how lab/fleet.py runs it).


async def test_simulator_process_on_loopback(password_env) -> None:
    config = {"default": IDENTITY, "devices": {"127.0.0.1": {"serial": "SN-PROC"}}}
    with OnvifSimulatorProcess(config, bind="127.0.0.1", port=0) as proc:
        probe = OnvifProbe(OnvifConfig(port=proc.port, username="admin", password_env=ENV, timeout_s=3))
        result = await run(probe, camera())
    assert result.ok and result.fields["serial"] == "SN-PROC"


def test_simulator_process_refuses_a_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown behaviour"):
        OnvifSimulatorProcess({"default": {"behaviour": "explode"}})
    with pytest.raises(ValueError, match="unknown identity keys"):
        OnvifSimulatorProcess({"devices": {"127.0.0.1": {"colour": "red"}}})


@pytest.mark.root
async def test_simulator_process_in_a_lab_namespace(labnet, password_env) -> None:
    net = labnet()
    addresses = [str(a) for a in net.add_site("cams", 3)]
    config = {"default": IDENTITY, "devices": {a: {"serial": f"SN-{i}"} for i, a in enumerate(addresses)}}
    with OnvifSimulatorProcess(config, netns=net.namespace_of(addresses[0]), bind="0.0.0.0", port=80) as proc:
        assert proc.port == 80
        probe = OnvifProbe(OnvifConfig(username="admin", password_env=ENV, timeout_s=3))
        async with probe:
            results = [await probe.probe(camera(a)) for a in addresses]
    assert [r.fields.get("serial") for r in results] == ["SN-0", "SN-1", "SN-2"]
    assert [r.fields["stream_uri"] for r in results] == [f"rtsp://{a}:554/Streaming/Channels/101" for a in addresses]
