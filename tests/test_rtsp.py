"""RTSP probe against the real GStreamer RTSP server (lab/rtsp.py), plus the parts that have
published test vectors (RFC 7616/2617 digests, H.264 SPS of ffmpeg/x264 streams) and an RFC 7616
Digest peer (SHA-256, qop=auth, stale nonces) that GStreamer cannot play.

Hostile cameras: tests/test_rtsp_hostile.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from lab.process import free_ports
from lab.rtsp import MAIN_STREAM, SUB_STREAM, RtspServer
from monitor.core.model import Device, Kind
from probes.rtsp import (
    RtspConfig,
    RtspFrameConfig,
    RtspFrameProbe,
    RtspProbe,
    digest_response,
    parse_challenges,
    parse_h264_sps,
    parse_sdp,
)
from tests.plugins.factories import device

PASSWORD = "Ca-m3ra!pw"  # distinctive, to find it where it must not be


camera = partial(device, address="127.0.0.1", site="s1", region="r1")  # "cam-1" unless told otherwise


@pytest.fixture(scope="module")
def plain() -> Iterator[RtspServer]:
    with RtspServer() as server:
        yield server


@pytest.fixture(scope="module")
def basic() -> Iterator[RtspServer]:
    with RtspServer(auth="basic", password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def digest() -> Iterator[RtspServer]:
    with RtspServer(auth="digest", password=PASSWORD) as server:
        yield server


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FM_TEST_CAM_PW", PASSWORD)
    monkeypatch.setenv("FM_TEST_WRONG_PW", "not-the-password")
    return "FM_TEST_CAM_PW"


async def probe_once(cfg: RtspConfig, device: Device, times: int = 1):
    async with RtspProbe(cfg) as probe:
        return [await probe.probe(device) for _ in range(times)]


def assert_no_secret(result) -> None:
    assert PASSWORD not in repr(result.to_dict())


class Recorder:
    """A TCP relay between the probe and a real server that records both directions, so tests
    can see which requests carried which Authorization and what the server answered."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = bytearray()
        self.received = bytearray()
        self.port = 0

    async def __aenter__(self) -> "Recorder":
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bytearray) -> None:
            while data := await src.read(65536):
                log += data
                dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer, self.sent), pump(up_reader, writer, self.received),
                             return_exceptions=True)

    def requests(self) -> list[tuple[str, str | None]]:
        """(method, Authorization scheme or None) of every request seen."""
        heads = re.findall(rb"^([A-Z_]+) rtsp://\S+ RTSP/1\.0\r\n(.*?)\r\n\r\n", self.sent, re.S | re.M)
        out = []
        for method, head in heads:
            auth = re.search(rb"^Authorization: (\w+)", head, re.M)
            out.append((method.decode(), auth[1].decode() if auth else None))
        return out

    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"^RTSP/1\.0 (\d{3})", self.received, re.M)]


# --- against GStreamer --------------------------------------------------------------------------


@pytest.mark.peer
async def test_no_auth_h264_sdp_parsed(plain: RtspServer) -> None:
    [result] = await probe_once(RtspConfig(port=plain.port), camera())
    assert result.ok and result.reason is None
    f = result.fields
    assert f["up"] is True and f["status_code"] == 200
    assert f["video_codec"] == "H264"
    assert (f["width"], f["height"]) == (320, 240)  # from the SPS in sprop-parameter-sets
    assert f["framerate"] == 5.0
    assert f["sdp_bytes"] > 100
    assert all(f[k] >= 0 for k in ("connect_ms", "options_ms", "describe_ms"))


@pytest.mark.peer
async def test_mjpeg_mount_via_stream_url(plain: RtspServer) -> None:
    device = camera(stream_url=plain.url(SUB_STREAM))
    [result] = await probe_once(RtspConfig(port=1), device)  # the template's port is not used
    assert result.ok, result.reason
    assert result.fields["video_codec"] == "JPEG"
    assert result.fields["framerate"] == 5.0
    assert "width" not in result.fields  # GStreamer's MJPEG SDP has no size attribute


@pytest.mark.peer
async def test_unknown_path_is_404(plain: RtspServer) -> None:
    cfg = RtspConfig(port=plain.port, url_template="rtsp://{host}:{port}/no/such/stream")
    [result] = await probe_once(cfg, camera())
    assert not result.ok
    assert result.reason == "404 Not Found"
    assert result.fields == {"up": False, "status_code": 404, "options_ms": result.fields["options_ms"],
                             "describe_ms": result.fields["describe_ms"], "connect_ms": result.fields["connect_ms"]}


async def test_connection_refused() -> None:
    [port] = free_ports(1)
    [result] = await probe_once(RtspConfig(port=port), camera())
    assert (result.ok, result.reason, result.fields["up"]) == (False, "connection refused", False)


@pytest.mark.peer
async def test_basic_auth(basic: RtspServer, password_env: str) -> None:
    async with Recorder(basic.port) as rec:
        results = await probe_once(RtspConfig(port=rec.port, username="admin", password_env=password_env),
                                   camera(), times=2)
    assert [r.ok for r in results] == [True, True], [r.reason for r in results]
    # Cycle 1 learns that Basic is wanted; cycle 2 sends it with its first request.
    assert rec.requests() == [("OPTIONS", None), ("DESCRIBE", None), ("DESCRIBE", "Basic"),
                              ("OPTIONS", "Basic"), ("DESCRIBE", "Basic")]
    assert rec.statuses() == [200, 401, 200, 200, 200]
    assert PASSWORD.encode() not in rec.sent  # only base64 of user:password travels
    assert base64.b64encode(f"admin:{PASSWORD}".encode()) in rec.sent


@pytest.mark.peer
async def test_digest_auth_and_challenge_reuse(digest: RtspServer, password_env: str) -> None:
    async with Recorder(digest.port) as rec:
        results = await probe_once(RtspConfig(port=rec.port, username="admin", password_env=password_env),
                                   camera(), times=2)
    assert [r.ok for r in results] == [True, True], [r.reason for r in results]
    assert results[1].fields["video_codec"] == "H264"
    requests, statuses = rec.requests(), rec.statuses()
    assert requests[:3] == [("OPTIONS", None), ("DESCRIBE", None), ("DESCRIBE", "Digest")]
    assert statuses[:3] == [200, 401, 200]
    # Cycle 2 answers the remembered challenge at once. GStreamer accepts only its latest nonce
    # on a connection, so the remembered one may be refused: then exactly one fresh 401 round.
    second = list(zip(requests[3:], statuses[3:]))
    assert second[0] == (("OPTIONS", "Digest"), 200)
    assert second[1][0] == ("DESCRIBE", "Digest")
    if second[1][1] == 401:
        assert second[2:] == [(("DESCRIBE", "Digest"), 200)]
    else:
        assert second[1:] == [(("DESCRIBE", "Digest"), 200)]
    assert PASSWORD.encode() not in rec.sent


@pytest.mark.peer
@pytest.mark.parametrize("server", ["basic", "digest"])
async def test_wrong_password(server: str, request: pytest.FixtureRequest, password_env: str) -> None:
    srv: RtspServer = request.getfixturevalue(server)
    cfg = RtspConfig(port=srv.port, username="admin", password_env="FM_TEST_WRONG_PW")
    results = await probe_once(cfg, camera(), times=2)
    for result in results:
        assert (result.ok, result.reason) == (False, "401 Unauthorized (wrong credentials)")
        assert result.fields["status_code"] == 401
        assert "not-the-password" not in repr(result.to_dict())


@pytest.mark.peer
async def test_no_credentials_configured(digest: RtspServer) -> None:
    [result] = await probe_once(RtspConfig(port=digest.port), camera())
    assert (result.ok, result.reason) == (False, "401 Unauthorized (no credentials configured)")


@pytest.mark.peer
async def test_credential_overrides_later_wins(basic: RtspServer, password_env: str) -> None:
    cfg = RtspConfig(
        port=basic.port, username="admin", password_env="FM_TEST_WRONG_PW",
        credentials=[
            {"match": {"site": ["s2"]}, "username": "admin", "password_env": "FM_TEST_WRONG_PW"},
            {"match": {"site": ["s2"]}, "username": "admin", "password_env": password_env},
        ],
    )
    async with RtspProbe(cfg) as probe:
        default_site = await probe.probe(camera("a", site="s1"))
        override_site = await probe.probe(camera("b", site="s2"))
    assert default_site.reason == "401 Unauthorized (wrong credentials)"
    assert override_site.ok, override_site.reason


@pytest.mark.peer
async def test_url_priority_point_list_then_onvif_then_template(plain: RtspServer) -> None:
    # The template points nowhere useful: a 404 shows when it was used.
    cfg = RtspConfig(port=plain.port, url_template="rtsp://{host}:{port}/template/path")
    async with RtspProbe(cfg) as probe:
        assert (await probe.probe(camera("t"))).reason == "404 Not Found"
        # ONVIF reported the camera's own LAN address and credentials: both are dropped, the
        # device's address is used with the URI's port and path.
        assert probe.learn_stream_uri("t", f"rtsp://user:pw@10.99.0.7:{plain.port}{SUB_STREAM}")
        learned = await probe.probe(camera("t"))
        assert learned.ok and learned.fields["video_codec"] == "JPEG"
        # The point list's stream_url beats the learned URI.
        listed = await probe.probe(camera("t", stream_url=plain.url(MAIN_STREAM)))
        assert listed.ok and listed.fields["video_codec"] == "H264"
        # Garbage from a camera is not learned and changes nothing.
        assert not probe.learn_stream_uri("t", "http://10.99.0.7/onvif")
        assert not probe.learn_stream_uri("t", "rtsp://")
        assert (await probe.probe(camera("t"))).fields["video_codec"] == "JPEG"


@pytest.mark.peer
async def test_ipv6_template_brackets(plain: RtspServer) -> None:
    cfg = RtspConfig(port=plain.port)
    async with RtspProbe(cfg) as probe:
        target = probe._targets.target(camera(address="::1"))
    assert target is not None and target.url == f"rtsp://[::1]:{plain.port}{MAIN_STREAM}" and target.host == "::1"


def test_wants_cameras_with_address() -> None:
    probe = RtspProbe(RtspConfig())
    assert probe.wants(camera())
    assert not probe.wants(device("sw", Kind.SWITCH, address="127.0.0.1"))
    assert not probe.wants(device("c", address=None))
    assert probe.budget_s(camera()) >= 2 * RtspConfig().timeout_s


# --- config validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"password": "x"}, "'password' must not be written in the config"),
        ({"credentials": [{"match": {}, "username": "u", "password": "x"}]}, "'password' must not be written"),
        ({"username": "admin"}, "username and password_env/password_file go together"),
        ({"password_env": "FM_TEST_CAM_PW"}, "username and password_env/password_file go together"),
        ({"username": "a", "password_env": "FM_TEST_UNSET_PW"}, "environment variable FM_TEST_UNSET_PW is not set"),
        ({"username": "a", "password_env": "FM_TEST_CAM_PW", "password_file": "/x"}, "not both"),
        ({"credentials": [{"match": {}, "username": "u"}]}, "need password_env or password_file"),
        ({"url_template": "rtsp://camera/Streaming/Channels/101"}, "must contain {host}"),
        ({"url_template": "http://{host}/stream"}, "must start with rtsp://"),
        ({"url_template": "rtsp://admin:pw@{host}/x"}, "must not carry credentials"),
        ({"url_template": "rtsp://{host}:{port}/{channel}"}, "may only use {host} and {port}"),
        ({"url_template": "rtsp://{host/x"}, "unbalanced braces"),
        ({"url_template": "rtsp://{host}:99999/x"}, "rtsp://{host}[:{port}]/path"),
        ({"limits": {"max_response_bytes": 4096, "max_sdp_bytes": 8192}}, "must not exceed max_response_bytes"),
        ({"timeout_s": 0}, "greater than 0"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(data: dict, message: str, password_env: str) -> None:
    with pytest.raises(ValidationError) as info:
        RtspConfig(**data)
    assert message in str(info.value)
    assert "pw@" not in str(info.value)  # a URL with credentials is never echoed


def test_config_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    cfg = RtspConfig(username="admin", password_file=secret)
    assert cfg.password is not None and cfg.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(cfg) and PASSWORD not in str(cfg.model_dump())
    assert RtspFrameConfig().enabled is False and RtspFrameConfig().interval_s == 900


# --- published vectors ----------------------------------------------------------------------------


def test_digest_rfc_vectors() -> None:
    rfc7616 = dict(username="Mufasa", realm="http-auth@example.org", password="Circle of Life", method="GET",
                   uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth", nc=1,
                   cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert digest_response("MD5", **rfc7616) == "8ca523f5e9506fed4657c9700eebdbec"  # RFC 7616 §3.9.1
    assert digest_response("SHA-256", **rfc7616) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert digest_response(  # RFC 2617 §3.5
        "MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc=1, cnonce="0a4f113b",
    ) == "6629fae49393a05397450978507c4ef1"


def test_parse_challenges() -> None:
    got = parse_challenges([
        'Digest realm="a, b", nonce="n\\"1", algorithm=MD5, Basic realm="x"',
        'Digest realm="r", qop="auth,auth-int", nonce=abc, algorithm=SHA-256, stale=TRUE',
    ])
    assert [(c.scheme, c.params) for c in got] == [
        ("digest", {"realm": "a, b", "nonce": 'n"1', "algorithm": "MD5"}),
        ("basic", {"realm": "x"}),
        ("digest", {"realm": "r", "qop": "auth,auth-int", "nonce": "abc", "algorithm": "SHA-256", "stale": "TRUE"}),
    ]
    assert parse_challenges(["", "   ", "=garbage"]) == []


# SPS of streams encoded by ffmpeg/libx264 (`ffmpeg -f lavfi -i testsrc=size=WxH:rate=R [-pix_fmt yuv420p]
# [-profile:v baseline] [-flags +ildct+ilme] -c:v libx264 -f h264`), sizes checked with ffprobe.
SPS_VECTORS = [
    ("Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY", 100, 1920, 1080, 25.0),  # High, 1088 cropped to 1080
    ("Z0LAH9kAUAW7ARAAAAMAEAAAAwHg8YMkgA==", 66, 1280, 720, 15.0),  # Constrained Baseline
    ("Z/QAKJGbKA8ARPxOAiAAAAMAIAAABkHjBjLA", 244, 1920, 1080, 25.0),  # High 4:4:4 (chroma_format_idc 3)
    ("Z2QAHqzZQLAk2AiAAAADAIAAABkPihTL", 100, 704, 576, 25.0),  # interlaced (frame_mbs_only 0)
]


@pytest.mark.parametrize(("sprop", "profile", "width", "height", "fps"), SPS_VECTORS)
def test_h264_sps(sprop: str, profile: int, width: int, height: int, fps: float) -> None:
    sps = parse_h264_sps(base64.b64decode(sprop))
    assert (sps.profile_idc, sps.width, sps.height, sps.framerate) == (profile, width, height, fps)


def test_h264_sps_garbage() -> None:
    nal = base64.b64decode(SPS_VECTORS[0][0])
    for bad in (nal[:6], b"\x68\xce\x3c\x80", b"\x67" + b"\x00" * 10, b""):
        with pytest.raises(ValueError):
            parse_h264_sps(bad)


def test_sdp_attributes() -> None:
    sdp = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=Media Presentation", "a=framerate:12.5", "t=0 0",
        "m=audio 0 RTP/AVP 8", "a=rtpmap:8 PCMA/8000",
        "m=video 0 RTP/AVP 98", "a=rtpmap:98 H265/90000", "a=framesize:98 2560-1440", "a=framerate:20",
        "m=video 0 RTP/AVP 26", "a=x-dimensions:704,576",
        "m=video 0 RTP/AVP 97", "a=rtpmap:97 MP4V-ES/90000", "a=cliprect:0,0,480,640", "a=framesize:bad",
        "m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000",
        "a=fmtp:96 profile-level-id=640028;sprop-parameter-sets=" + SPS_VECTORS[0][0] + ",aO48sA==",
        "m=application 0 RTP/AVP 107", "a=rtpmap:107 vnd.onvif.metadata/90000",
    ])
    media = [(m.media, m.codec, m.width, m.height, m.framerate) for m in parse_sdp(sdp)]
    assert media == [
        ("audio", "PCMA", None, None, 12.5),
        ("video", "H265", 2560, 1440, 20.0),
        ("video", "JPEG", 704, 576, 12.5),  # static payload type 26 (RFC 3551)
        ("video", "MP4V-ES", 640, 480, 12.5),
        ("video", "H264", 1920, 1080, 25.0),  # SPS VUI beats nothing; a=framerate would beat it
        ("application", "VND.ONVIF.METADATA", None, None, 12.5),
    ]
    assert parse_sdp("garbage\n\x00\nm=\na=rtpmap") == [parse_sdp("m=")[0]]


# --- an RFC 7616 Digest peer: SHA-256, qop=auth, stale nonces --------------------------------------

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"


class DigestCamera:
    """Offers Digest MD5 and SHA-256 with qop=auth (MD5 first, as RFC 7616 §3.7 servers may);
    checks every response and nc; declares a nonce stale after `nonce_uses` accepted requests."""

    def __init__(self, nonce_uses: int = 100) -> None:
        self.nonce_uses = nonce_uses
        self.nonces: dict[str, int] = {}  # nonce → accepted uses
        self.log: list[tuple[str, str | None, int | None, int]] = []  # method, algorithm, nc, status

    async def __aenter__(self) -> "DigestCamera":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    def _challenge(self, stale: bool) -> bytes:
        nonce = secrets.token_hex(8)
        self.nonces[nonce] = 0
        extra = ", stale=true" if stale else ""
        return "".join(
            f'WWW-Authenticate: Digest realm="cam", qop="auth", algorithm={alg}, nonce="{nonce}", opaque="op"{extra}\r\n'
            for alg in ("MD5", "SHA-256")
        ).encode()

    def _check(self, method: str, header: str | None) -> tuple[int, bool, str | None, int | None]:
        if header is None or not header.startswith("Digest "):
            return 401, False, None, None
        p = parse_challenges([header])[0].params
        nc = int(p["nc"], 16)
        want = digest_response(p["algorithm"], p["username"], "cam", PASSWORD, method, p["uri"], p["nonce"],
                               p["qop"], nc, p["cnonce"])
        if p["response"] != want or p["opaque"] != "op" or p["username"] != "admin":
            return 401, False, p["algorithm"], nc
        if p["nonce"] not in self.nonces or self.nonces[p["nonce"]] >= self.nonce_uses:
            return 401, True, p["algorithm"], nc
        self.nonces[p["nonce"]] += 1
        return 200, False, p["algorithm"], nc

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                method = head.split(b" ", 1)[0].decode()
                cseq = re.search(rb"CSeq: (\d+)", head)[1].decode()
                auth = re.search(rb"Authorization: ([^\r\n]+)", head)
                status, stale, algorithm, nc = self._check(method, auth[1].decode() if auth else None)
                self.log.append((method, algorithm, nc, status))
                if status == 401:
                    writer.write(f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n".encode() + self._challenge(stale)
                                 + b"\r\n")
                elif method == "DESCRIBE":
                    writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                                 f"Content-Length: {len(SDP)}\r\n\r\n".encode() + SDP)
                else:
                    writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_digest_sha256_qop_nonce_reuse_and_stale(password_env: str) -> None:
    async with DigestCamera(nonce_uses=3) as cam:
        cfg = RtspConfig(port=cam.port, username="admin", password_env=password_env)
        results = await probe_once(cfg, camera(), times=2)
    assert [r.ok for r in results] == [True, True], [r.reason for r in results]
    assert cam.log == [
        ("OPTIONS", None, None, 401),
        ("OPTIONS", "SHA-256", 1, 200),  # SHA-256 preferred over the MD5 offered first
        ("DESCRIBE", "SHA-256", 2, 200),
        ("OPTIONS", "SHA-256", 3, 200),  # cycle 2: the remembered nonce, nc + 1
        ("DESCRIBE", "SHA-256", 4, 401),  # used up: stale=true
        ("DESCRIBE", "SHA-256", 1, 200),  # the new nonce, nc from 1
    ]


async def test_digest_endless_stale_is_bounded(password_env: str) -> None:
    async with DigestCamera(nonce_uses=0) as cam:  # every nonce is stale at once
        cfg = RtspConfig(port=cam.port, username="admin", password_env=password_env)
        [result] = await probe_once(cfg, camera())
    assert result.reason == "401 Unauthorized (wrong credentials)"
    assert [status for *_, status in cam.log] == [401, 401, 401]  # no auth, fresh, one stale retry


async def test_digest_peer_wrong_password() -> None:
    async with DigestCamera() as cam:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FM_TEST_WRONG_PW", "nope")
            cfg = RtspConfig(port=cam.port, username="admin", password_env="FM_TEST_WRONG_PW")
        [result] = await probe_once(cfg, camera())
    assert result.reason == "401 Unauthorized (wrong credentials)"
    assert [status for *_, status in cam.log] == [401, 401]


# --- RtspFrameProbe (ffmpeg) -----------------------------------------------------------------------

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")


@pytest.mark.peer
@needs_ffmpeg
async def test_frame_probe_decodes_a_frame(digest: RtspServer, password_env: str) -> None:
    cfg = RtspFrameConfig(enabled=True, port=digest.port, username="admin", password_env=password_env)
    async with RtspFrameProbe(cfg) as probe:
        result = await probe.probe(camera())
    assert result.ok, result.reason
    assert (result.fields["width"], result.fields["height"]) == (320, 240)
    assert result.fields["bytes"] > 1000 and result.fields["frame_ms"] > 0
    assert_no_secret(result)


def _ffmpeg_cmdlines() -> list[bytes]:
    """The argv (NUL-separated, as any local user reads /proc/PID/cmdline) of this process's
    ffmpeg children."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == os.getpid() and b"ffmpeg" in cmdline.split(b"\0", 1)[0]:
            out.append(cmdline)
    return out


@pytest.mark.peer
@needs_ffmpeg
@pytest.mark.parametrize(("vqd", "decoder"), [(False, "ffmpeg"), (True, "ffmpeg"), (True, "pyav")],
                         ids=["frame", "vqd-ffmpeg", "vqd-pyav"])
async def test_frame_probe_keeps_the_password_out_of_ffmpegs_argv(
    digest: RtspServer, password_env: str, vqd: bool, decoder: str
) -> None:
    # /proc/PID/cmdline is world-readable: the password must reach ffmpeg another way (a pipe).
    # PyAV decodes in this process: no child, no argv (and the account still works).
    cfg = RtspFrameConfig(enabled=True, port=digest.port, username="admin", password_env=password_env,
                          vqd={"enabled": vqd}, decoder=decoder)
    seen: list[bytes] = []
    async with RtspFrameProbe(cfg) as probe:
        running = asyncio.create_task(probe.probe(camera()))
        for _ in range(2000):  # bounded: the probe ends within its 15 s timeout
            seen.extend(_ffmpeg_cmdlines())
            if running.done():
                break
            await asyncio.sleep(0.005)
        result = await running
    assert result.ok, result.reason
    if vqd and decoder == "pyav":
        assert seen == []
        return
    assert seen, "ffmpeg was never seen running"
    assert all(PASSWORD.encode() not in c and quote(PASSWORD, safe="").encode() not in c for c in seen), seen[0]
    assert all(b"rtsp://" not in c for c in seen)  # not even the address with its user name


def test_frame_probe_input_list_quotes_and_refuses_line_breaks() -> None:
    probe = RtspFrameProbe(RtspFrameConfig(timeout_s=7))
    listing = probe._input_list("rtsp://u:p@10.0.0.1/it's").decode()
    assert "file 'rtsp://u:p@10.0.0.1/it'\\''s'\n" in listing and "option timeout 7000000\n" in listing
    with pytest.raises(ValueError, match="control characters"):
        probe._input_list("rtsp://10.0.0.1/a\nfile 'rtsp://elsewhere/'")


@pytest.mark.peer
@needs_ffmpeg
async def test_frame_probe_404_and_wrong_password(plain: RtspServer, digest: RtspServer) -> None:
    async with RtspFrameProbe(RtspFrameConfig(port=plain.port, url_template="rtsp://{host}:{port}/nope")) as probe:
        result = await probe.probe(camera())
    assert (result.ok, result.reason) == (False, "404 Not Found")
    async with RtspFrameProbe(RtspFrameConfig(port=digest.port)) as probe:
        result = await probe.probe(camera())
    assert (result.ok, result.reason) == (False, "401 Unauthorized")


@pytest.mark.peer
@needs_ffmpeg
async def test_frame_probe_timeout_kills_ffmpeg() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts and never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = RtspFrameConfig(port=port, timeout_s=1.0)
    probe = RtspFrameProbe(cfg)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await probe.probe(camera())
    elapsed = loop.time() - started
    server.close()
    for w in accepted:
        w.close()
    assert (result.ok, result.reason) == (False, "timeout (no frame within 1 s)")
    assert elapsed < probe.budget_s(camera())
    assert accepted  # ffmpeg did connect


@pytest.mark.peer
@needs_ffmpeg
async def test_frame_probe_concurrency_and_budget(plain: RtspServer) -> None:
    cfg = RtspFrameConfig(port=plain.port, max_concurrency=1, timeout_s=10)
    probe = RtspFrameProbe(cfg)
    assert probe.budget_s(camera()) == 11.0
    running = [asyncio.create_task(probe.probe(camera(f"c{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    assert probe.budget_s(camera()) == 31.0  # two queued: a third waits up to two rounds
    results = await asyncio.gather(*running)
    assert all(r.ok for r in results), [r.reason for r in results]


def test_hash_helpers_are_the_standard_ones() -> None:
    # The digest peer and the probe share digest_response; this pins it to hashlib's algorithms.
    assert digest_response("SHA-256", "u", "r", "p", "M", "/", "n") == hashlib.sha256(
        f"{hashlib.sha256(b'u:r:p').hexdigest()}:n:{hashlib.sha256(b'M:/').hexdigest()}".encode()
    ).hexdigest()


# --- the lab: GStreamer in a LabNet namespace, cameras that ping but send no video ------------------


@pytest.mark.root
async def test_lab_namespace_server_and_blocked_video(labnet) -> None:
    from lab.rtsp import block_video, unblock_video
    from probes.icmp import IcmpConfig, sweep

    net = labnet()
    addresses = [str(a) for a in net.add_site("cams", 4)]
    ns = net.namespace_of(addresses[0])
    cameras = [camera(f"cam-{i}", address=a) for i, a in enumerate(addresses)]
    with RtspServer(netns=ns, bind="0.0.0.0", port=554):
        async with RtspProbe(RtspConfig(timeout_s=1.0)) as probe:
            before = [await probe.probe(c) for c in cameras]
            assert [r.ok for r in before] == [True] * 4, [r.reason for r in before]
            block_video(ns, addresses[:1], "reject")
            block_video(ns, addresses[1:2], "drop")
            block_video(ns, addresses[1:2], "drop")  # idempotent
            blocked = [await probe.probe(c) for c in cameras]
            assert [r.reason for r in blocked] == ["connection refused", "connect timeout", None, None]
            pings = await sweep(addresses, IcmpConfig(count=1, timeout_s=1.0))
            assert all(p.up for p in pings)  # they still ping
            unblock_video(ns, addresses[:2])
            after = [await probe.probe(c) for c in cameras]
            assert [r.ok for r in after] == [True] * 4, [r.reason for r in after]


def test_frame_check_prefers_the_sub_stream_the_rtsp_probe_keeps_the_main() -> None:
    """Which URL (probes/rtsp.py module doc): the point list's stream_url > the learned sub-stream
    (frame check with stream: sub) > the learned main stream > url_template."""
    main, sub = "rtsp://u:p@10.99.0.7:8554/Streaming/Channels/101", "rtsp://10.99.0.7:8554/Streaming/Channels/102"

    def url(probe, device=None) -> str:
        device = device or camera("c")
        target = probe._targets.target(device, sub=probe.stream_for(device) == "sub") \
            if isinstance(probe, RtspFrameProbe) else probe._targets.target(device)
        return target.url

    frame, rtsp = RtspFrameProbe(RtspFrameConfig(enabled=True)), RtspProbe(RtspConfig())
    assert url(frame) == url(rtsp) == "rtsp://127.0.0.1:554/Streaming/Channels/101"  # the template
    frame.learn("c", "sub_stream_uri", sub)  # a sub-stream alone: the frame check reads it
    assert url(frame) == "rtsp://127.0.0.1:8554/Streaming/Channels/102"
    for probe in (frame, rtsp):
        probe.learn("c", "stream_uri", main)
    assert url(frame) == "rtsp://127.0.0.1:8554/Streaming/Channels/102"
    assert url(rtsp) == "rtsp://127.0.0.1:8554/Streaming/Channels/101"  # video online: the main stream
    listed = camera("c", stream_url="rtsp://10.0.0.9/listed")
    assert url(frame, listed) == url(rtsp, listed) == "rtsp://10.0.0.9/listed"  # the point list wins
    # Garbage as the sub-stream is not learned and changes nothing.
    frame.learn("c", "sub_stream_uri", "rtsp://[bad/102")
    frame.learn("c", "sub_stream_uri", "http://10.99.0.7/102")
    assert url(frame) == "rtsp://127.0.0.1:8554/Streaming/Channels/102"
    # Only the main stream learned (another camera): the frame check reads it.
    frame.learn("d", "stream_uri", main)
    assert url(frame, camera("d")) == "rtsp://127.0.0.1:8554/Streaming/Channels/101"

    # stream: main, or an override for some cameras (first match wins): the main stream.
    overridden = RtspFrameProbe(RtspFrameConfig(enabled=True, stream_overrides=[
        {"match": {"site": ["s2"]}, "stream": "main"}, {"match": {"site": ["s2"]}, "stream": "sub"}]))
    every_main = RtspFrameProbe(RtspFrameConfig(enabled=True, stream="main"))
    for probe in (overridden, every_main):
        for device_id in ("c", "e"):
            probe.learn(device_id, "stream_uri", main)
            probe.learn(device_id, "sub_stream_uri", sub)
    assert url(overridden, camera("e", site="s2")).endswith("/101")
    assert url(overridden, camera("c")).endswith("/102")
    assert url(every_main, camera("c")).endswith("/101")
    with pytest.raises(ValidationError):
        RtspFrameConfig(stream="third")
    with pytest.raises(ValidationError):
        RtspFrameConfig(stream_overrides=[{"match": {"site": ["s2"]}}])  # which stream?
    with pytest.raises(ValidationError):
        RtspFrameConfig(stream_overrides=[{"match": {}, "stream": "sub", "width": 640}])
