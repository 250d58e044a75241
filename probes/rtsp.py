"""RTSP probe: fleetmon's own asyncio RTSP client (RFC 2326 RTSP/1.0, RFC 7826 RTSP/2.0).

Per camera and cycle: ONE TCP connection, `OPTIONS` then `DESCRIBE` (Accept: application/sdp),
the SDP parsed for the video media (codec, resolution, frame rate). "Video online" = DESCRIBE
answered 200 with at least one video media section.

- Authentication: the first request goes without credentials; a 401 is answered with the
  best challenge offered: Digest (RFC 7616 / RFC 2617: MD5, SHA-256 and their -sess variants,
  qop=auth, auth-int or none) before Basic (RFC 7617). The last challenge per device is kept,
  so the next cycle authenticates on its first request (same nonce, nc + 1). A 401 to such a
  remembered challenge, or one with `stale=true`, is answered once more with the new
  challenge; a 401 to a fresh challenge means wrong credentials.
- Hostile cameras: every attempt (connect, send, whole response) has ONE deadline
  (`timeout_s`), so a one-byte-per-second drip is cut like silence; responses are bounded in
  bytes (`max_response_bytes`), header lines (`max_headers`) and body (`max_sdp_bytes`), and
  garbage is refused at its first bytes. Memory per probe is bounded by those limits.
- Which URL: the device's `stream_url` (point list) > a URI learned from ONVIF
  (`learn_stream_uri`) > `url_template`. Userinfo in any URL is dropped: credentials come only
  from `username` + `password_env`/`password_file` (and `credentials` overrides). The ONVIF
  URI is the main stream's (hint `stream_uri`) for this probe; the frame check prefers the
  sub-stream's (hint `sub_stream_uri`, see RtspFrameConfig.stream).
- SDP (RFC 8866): media sections, codec from a=rtpmap (or the static payload type, RFC 3551),
  resolution from a=framesize, a=x-dimensions, a=cliprect or the H.264 SPS in
  sprop-parameter-sets (RFC 6184 §8.1; ITU-T H.264 §7.3.2.1.1), frame rate from a=framerate
  or the SPS VUI timing.

`RtspFrameProbe` ("rtsp_frame", off by default) decodes one frame with Debian's ffmpeg as a
subprocess, on its own slower schedule and with its own concurrency limit; with video-quality
diagnosis, the burst is decoded in this process with PyAV (probes/vqd/decode.py) unless
`decoder: ffmpeg`.

Public API: `RtspConfig`, `RtspFrameConfig` (accounts: probes.accounts), `RtspProbe`, `RtspFrameProbe`,
`parse_sdp`, `parse_h264_sps`, `parse_challenges`, `digest_response`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Kind
from probes.accounts import CameraAccounts
from probes.base import ConfirmConfig, ProbeResult, Series
from probes.vqd.config import MEASUREMENT as VQD_MEASUREMENT, VqdConfig

log = logging.getLogger("fleetmon.rtsp")

USER_AGENT = "fleetmon"
DEFAULT_TEMPLATE = "rtsp://{host}:{port}/Streaming/Channels/101"  # Hikvision main stream
MAX_ATTEMPTS_PER_REQUEST = 3  # without credentials / with a remembered challenge, fresh, stale
REQUESTS = ("OPTIONS", "DESCRIBE")
READ_CHUNK = 4096
FFMPEG = "/usr/bin/ffmpeg"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# Configuration.


_TEMPLATE_FIELDS = {"host", "port"}


def _check_url_template(template: str) -> str:
    """`template` with placeholders {host} (required) and {port} only, giving an rtsp:// URL
    without credentials. Raises ValueError; the message does not echo the template (it could
    carry a password someone pasted)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        raise ValueError("url_template has unbalanced braces (write {{ and }} for literal ones)") from None
    if "host" not in names:
        raise ValueError("url_template must contain {host}")
    if names - _TEMPLATE_FIELDS:
        raise ValueError(f"url_template may only use {{host}} and {{port}}, not {sorted(names - _TEMPLATE_FIELDS)}")
    parts = urlsplit(template.format(host="198.18.0.1", port=554))
    if parts.scheme != "rtsp":
        raise ValueError("url_template must start with rtsp:// (rtsps and other schemes are not supported)")
    if "@" in parts.netloc:
        raise ValueError("url_template must not carry credentials: use username and password_env/password_file")
    try:
        if parts.hostname != "198.18.0.1" or parts.port == 0:
            raise ValueError
    except ValueError:
        raise ValueError("url_template must be rtsp://{host}[:{port}]/path (host, then optional port)") from None
    return template


class _RtspTargetConfig(CameraAccounts):
    """What RtspConfig and RtspFrameConfig share: which devices, which URL, which account."""

    # Errors must not echo a url_template into which someone pasted a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = True
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    """Devices probed (those with an address)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 554
    url_template: str = DEFAULT_TEMPLATE
    """URL when neither the point list nor ONVIF gives one; {host} = address (IPv6 in brackets)."""

    @field_validator("url_template")
    @classmethod
    def _template(cls, template: str) -> str:
        return _check_url_template(template)



class RtspLimits(Strict):
    """Bounds on what one camera may send per response (memory and hostile peers)."""

    max_response_bytes: Annotated[int, Field(ge=1024, le=16 << 20)] = 65536
    """Status line + headers + body."""
    max_headers: Annotated[int, Field(ge=8, le=1000)] = 64
    max_sdp_bytes: Annotated[int, Field(ge=256, le=16 << 20)] = 16384
    """Body of any response (the SDP of DESCRIBE)."""

    @model_validator(mode="after")
    def _sdp_fits(self) -> Self:
        if self.max_sdp_bytes > self.max_response_bytes:
            raise ValueError("max_sdp_bytes must not exceed max_response_bytes (the body is part of the response)")
        return self


class RtspConfig(_RtspTargetConfig):
    """probes.rtsp in config.yaml."""

    interval_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Deadline of each request attempt, connecting included."""
    limits: RtspLimits = RtspLimits()
    confirm: ConfirmConfig = ConfirmConfig()
    """Confirmation probing of a camera whose DESCRIBE failed (probes.base.ConfirmConfig); off
    unless configured."""

    @model_validator(mode="after")
    def _confirm_fits(self) -> Self:
        self.confirm.check_fits(self.interval_s, self.timeout_s)  # a silent camera: one connect attempt
        return self


class StreamOverride(Strict):
    """The stream the frame check reads on the cameras `match` picks."""

    match: SelectorConfig
    stream: Literal["sub", "main"]


class RtspFrameConfig(_RtspTargetConfig):
    """probes.rtsp_frame in config.yaml: decode one frame per camera with ffmpeg."""

    enabled: bool = False
    interval_s: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    """Deadline of the whole ffmpeg run (connect, RTSP, first decoded frame)."""
    max_bytes: Annotated[int, Field(ge=32 << 10, le=64 << 20)] = 2_000_000
    """Bytes ffmpeg may read to find the stream (-probesize): the bandwidth budget per check."""
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    """ffmpeg processes at once (dedicated lines are 10 Mbit/s; decoding costs CPU)."""
    max_check_bytes: Annotated[int, Field(ge=64 << 10, le=1 << 30)] | None = 6_000_000
    """Bytes one check may receive from the camera (TCP payload, the kernel's count): ffmpeg is
    stopped beyond it, so a high-bitrate stream does not load a 10 Mbit/s line for long (6 MB
    ≈ 5 s of such a line). The frames decoded by then are still judged. None = no bound."""
    vqd: VqdConfig = VqdConfig()
    """Video-quality diagnosis of the frames (probes/vqd): a burst of two frames per check."""
    decoder: Literal["pyav", "ffmpeg"] = "pyav"
    """Who decodes the vqd burst: PyAV in this process, on `max_concurrency` worker threads
    (probes/vqd/decode.py: a fraction of the CPU, bench/vqd_lab.py), or an ffmpeg child per
    check. The plain frame check (vqd off) always runs ffmpeg."""
    thumbnail_dir: Path | None = None
    """With vqd: keep a JPEG thumbnail of each camera's latest frame here (probes/vqd/thumbs.py:
    <device id>.jpg, 320 px wide, written atomically); None keeps none."""
    thumbnail_max_count: Annotated[int, Field(ge=1, le=1_000_000)] = 4000
    thumbnail_max_bytes: Annotated[int, Field(ge=1 << 20, le=64 << 30)] = 128 << 20
    """Bounds of the thumbnail folder: the oldest files go first beyond either."""
    stream: Literal["sub", "main"] = "sub"
    """Which ONVIF stream URI the check reads: "sub" = the smallest media profile at least
    probes.vqd.config.ANALYSIS_WIDTH (480) px wide (the sub-stream, 子码流; the first profile
    when no other qualifies), as vendors' VQD does: the analysis scales frames to 480 px anyway,
    and a 640×360 key frame costs a fraction of a 1080p one (docs/VQD.md); "main" = the first
    profile, as the rtsp probe. The point list's stream_url still wins, url_template is the
    last resort either way."""
    stream_overrides: list[StreamOverride] = []
    """`stream` for the cameras each selector picks (first match wins), e.g. main for cameras
    whose sub-stream is too coarse for a wide scene."""

    @model_validator(mode="after")
    def _burst_fits(self) -> Self:
        if self.vqd.enabled and self.timeout_s < self.vqd.burst_gap_s + 5:
            raise ValueError("timeout_s must be at least vqd.burst_gap_s + 5 s (the burst, then connecting)")
        return self


# ---------------------------------------------------------------------------------------------
# URLs and accounts per device.


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _host_literal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


@dataclass(frozen=True, slots=True)
class _Target:
    url: str  # request URL, no userinfo
    host: str  # where to connect
    port: int


class _Targets:
    """URL and account of each device; shared by RtspProbe and RtspFrameProbe."""

    def __init__(self, cfg: _RtspTargetConfig) -> None:
        self._cfg = cfg
        self._match = cfg.match.selector()
        self._learned: dict[str, str] = {}  # device id → main stream URI (ONVIF hint stream_uri)
        self._learned_sub: dict[str, str] = {}  # device id → sub-stream URI (ONVIF hint sub_stream_uri)

    def wants(self, device: Device) -> bool:
        """Devices the selector `match` picks, when they have an address."""
        return device.address is not None and self._match.matches(device)

    def learn_stream_uri(self, device_id: str, uri: str, sub: bool = False) -> bool:
        """Remember the stream URI ONVIF GetStreamUri reported for a device (userinfo dropped),
        the main stream's or (`sub`) the sub-stream's; used unless the point list gives the
        device a stream_url. Returns False (and keeps the previous one) for anything but an
        rtsp:// URL with a host."""
        try:
            parts = urlsplit(uri.strip())
            ok = parts.scheme.lower() == "rtsp" and bool(parts.hostname) and parts.port != 0
        except ValueError:
            ok = False
        if ok:
            (self._learned_sub if sub else self._learned)[device_id] = _strip_userinfo(uri.strip())
        else:  # the URI itself is not logged: it may carry credentials
            log.debug("ignoring the ONVIF stream URI of %s: not an rtsp:// URL with a host", device_id)
        return ok

    def target(self, device: Device, sub: bool = False) -> _Target | None:
        """Where to connect and what URL to ask for; None when there is no usable URL. `sub`:
        the learned sub-stream URI first, then the main one."""
        if device.stream_url:
            url = _strip_userinfo(device.stream_url)
            try:
                parts = urlsplit(url)
                if parts.scheme.lower() != "rtsp" or not parts.hostname:
                    return None
                return _Target(url, parts.hostname, parts.port or 554)
            except ValueError:
                return None
        if device.address is None:
            return None
        learned = (sub and self._learned_sub.get(device.id)) or self._learned.get(device.id)
        if learned:
            # ONVIF often reports the camera's own LAN address (wrong behind NAT) and this probe
            # checks the device it is given: connect to the device's address, keep path and port.
            parts = urlsplit(learned)
            port = parts.port or 554
            netloc = f"{_host_literal(device.address)}:{port}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
            return _Target(url, str(device.address), port)
        url = self._cfg.url_template.format(host=_host_literal(device.address), port=self._cfg.port)
        return _Target(url, str(device.address), urlsplit(url).port or 554)

    def account(self, device: Device) -> tuple[str, str] | None:
        """(username, password) for the device, or None."""
        account = self._cfg.account_for(device)
        return None if account is None else (account[0], account[1].get_secret_value())


# ---------------------------------------------------------------------------------------------
# Authentication: WWW-Authenticate (RFC 7235 §4.1), Digest (RFC 7616), Basic (RFC 7617).


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: scheme in lower case ("digest", "basic") and its auth-params (names in
    lower case, quoted-string values unescaped)."""

    scheme: str
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Every challenge in the WWW-Authenticate header values (RFC 7235 §4.1: one header may
    hold several, comma-separated). Unparseable rest of a value is ignored."""
    challenges: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value):
            while pos < len(value) and value[pos] in ", \t":
                pos += 1
            m = _SCHEME.match(value, pos)
            if not m or pos >= len(value):
                break
            current = Challenge(m[1].lower(), {})
            challenges.append(current)
            pos = m.end()
            while pos < len(value):
                p = _PARAM.match(value, pos)
                if not p:
                    break
                raw = p[2] if p[2] is not None else p[3]
                current.params[p[1].lower()] = re.sub(r"\\(.)", r"\1", raw)
                pos = p.end()
                if pos < len(value) and value[pos] == ",":
                    pos += 1
    return challenges


_DIGEST_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_ALGORITHM_RANK = {"SHA-256": 0, "SHA-256-SESS": 1, "MD5": 2, "MD5-SESS": 3}


def _digest_algorithm(challenge: Challenge) -> str | None:
    algorithm = challenge.params.get("algorithm", "MD5").upper()
    return algorithm if algorithm in _ALGORITHM_RANK else None


def digest_response(
    algorithm: str, username: str, realm: str, password: str, method: str, uri: str,
    nonce: str, qop: str | None = None, nc: int = 1, cnonce: str = "", body: bytes = b"",
) -> str:
    """The `response` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2 without qop): lower-case hex.
    algorithm: MD5, MD5-sess, SHA-256, SHA-256-sess; qop: None, "auth" or "auth-int"."""
    algorithm = algorithm.upper()
    h = _DIGEST_HASHES[algorithm.removesuffix("-SESS")]

    def hx(text: str | bytes) -> str:
        return h(text.encode() if isinstance(text, str) else text).hexdigest()

    ha1 = hx(f"{username}:{realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = hx(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}" + (f":{hx(body)}" if qop == "auth-int" else "")
    if qop is None:
        return hx(f"{ha1}:{nonce}:{hx(a2)}")
    return hx(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{hx(a2)}")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Auth:
    """An answered challenge: makes the Authorization header of each request. Digest nonces are
    reused with an increasing nonce count (RFC 7616 §3.4)."""

    def __init__(self, challenge: Challenge) -> None:
        self.challenge = challenge
        self.nc = 0
        self.algorithm = _digest_algorithm(challenge) if challenge.scheme == "digest" else None
        offered = [q.strip().lower() for q in challenge.params.get("qop", "").split(",") if q.strip()]
        self.qop = "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else None

    def header(self, account: tuple[str, str], method: str, uri: str) -> str:
        username, password = account
        if self.challenge.scheme == "basic":
            return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        p = self.challenge.params
        self.nc += 1
        cnonce = secrets.token_hex(8)
        assert self.algorithm is not None
        response = digest_response(
            self.algorithm, username, p.get("realm", ""), password, method, uri, p.get("nonce", ""),
            self.qop, self.nc, cnonce,
        )
        parts = [
            f"username={_quoted(username)}", f"realm={_quoted(p.get('realm', ''))}",
            f"nonce={_quoted(p.get('nonce', ''))}", f"uri={_quoted(uri)}", f"response={_quoted(response)}",
        ]
        if "algorithm" in p:
            parts.append(f"algorithm={p['algorithm']}")
        if "opaque" in p:
            parts.append(f"opaque={_quoted(p['opaque'])}")
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc:08x}", f"cnonce={_quoted(cnonce)}"]
        return "Digest " + ", ".join(parts)


def _best_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Digest before Basic; among Digest challenges the strongest supported algorithm."""
    digests = [c for c in challenges if c.scheme == "digest" and _digest_algorithm(c) and "nonce" in c.params]
    if digests:
        return min(digests, key=lambda c: _ALGORITHM_RANK[_digest_algorithm(c) or "MD5"])
    return next((c for c in challenges if c.scheme == "basic"), None)


# ---------------------------------------------------------------------------------------------
# SDP (RFC 8866) and the H.264 sequence parameter set.

_STATIC_PT = {"0": "PCMU", "8": "PCMA", "14": "MPA", "26": "JPEG", "32": "MPV", "33": "MP2T", "34": "H263"}


@dataclass(slots=True)
class Media:
    """One m= section: media type ("video", "audio" …), codec (RTP encoding name, upper case,
    "" when unknown), resolution in pixels and frame rate in frames/s when the SDP tells."""

    media: str
    codec: str = ""
    width: int | None = None
    height: int | None = None
    framerate: float | None = None


def parse_sdp(text: str) -> list[Media]:
    """Media sections of an SDP description, in order. Lenient: unknown or malformed lines are
    skipped (cameras' SDPs are often slightly off); the format of each section is its first
    payload type. Resolution: a=framesize:<pt> W-H, a=x-dimensions:W,H, a=cliprect:T,L,B,R,
    else the H.264 SPS in sprop-parameter-sets; frame rate: a=framerate, else the SPS timing."""
    media: list[Media] = []
    session_rate: float | None = None
    current: Media | None = None
    pt = ""
    rtpmap: dict[str, str] = {}
    sprop: str | None = None

    def finish() -> None:
        if current is None:
            return
        current.codec = rtpmap.get(pt) or _STATIC_PT.get(pt, "")
        if current.codec == "H264" and sprop and (current.width is None or current.framerate is None):
            sps = _sps_from_sprop(sprop)
            if sps is not None:
                if current.width is None:
                    current.width, current.height = sps.width, sps.height
                if current.framerate is None:
                    current.framerate = sps.framerate
        if current.framerate is None:
            current.framerate = session_rate
        media.append(current)

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            finish()
            fields = line[2:].split()
            current = Media(fields[0].lower() if fields else "")
            pt = fields[3] if len(fields) > 3 else ""
            rtpmap, sprop = {}, None
            continue
        if not line.startswith("a="):
            continue
        name, _, value = line[2:].partition(":")
        name = name.strip().lower()
        try:
            if name == "framerate":
                rate = float(value)
                if not 0 < rate <= 1000:
                    continue
                if current is None:
                    session_rate = rate
                else:
                    current.framerate = rate
            elif current is None:
                continue
            elif name == "rtpmap":
                fmt, _, encoding = value.partition(" ")
                rtpmap[fmt.strip()] = encoding.strip().split("/")[0].upper()
            elif name == "fmtp":
                m = re.search(r"sprop-parameter-sets\s*=\s*([^;\s]+)", value, re.I)
                if m and value.split(" ", 1)[0].strip() == pt:
                    sprop = m[1]
            elif name == "framesize":  # a=framesize:96 1920-1080
                w, h = value.split()[1].split("-")
                _set_size(current, int(w), int(h))
            elif name == "x-dimensions":  # a=x-dimensions:1920,1080
                w, h = value.split(",")
                _set_size(current, int(w), int(h))
            elif name == "cliprect" and current.width is None:  # a=cliprect:0,0,1080,1920 (T,L,B,R)
                top, left, bottom, right = (int(v) for v in value.split(","))
                _set_size(current, right - left, bottom - top)
        except (ValueError, IndexError):
            continue
    finish()
    return media


def _set_size(media: Media, width: int, height: int) -> None:
    if 0 < width <= 16384 and 0 < height <= 16384:
        media.width, media.height = width, height


@dataclass(frozen=True, slots=True)
class Sps:
    """What fleetmon reads from an H.264 SPS: profile_idc, level_idc, picture size in pixels
    (cropping applied) and the VUI frame rate (frames/s) when timing info is present."""

    profile_idc: int
    level_idc: int
    width: int
    height: int
    framerate: float | None


class _Bits:
    """MSB-first bit reader over an RBSP; reading past the end raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise ValueError("SPS truncated")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:  # Exp-Golomb, H.264 §9.1
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:  # H.264 §9.1.1
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def parse_h264_sps(nal: bytes) -> Sps:
    """Parse an H.264 SPS NAL unit (header byte included; ITU-T H.264 §7.3.2.1.1, VUI §E.1.1).
    Raises ValueError for anything that is not a well-formed SPS."""
    if len(nal) < 4 or nal[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    rbsp = re.sub(b"\x00\x00\x03", b"\x00\x00", nal[1:])  # emulation prevention (§7.4.1)
    b = _Bits(rbsp)
    profile_idc = b.u(8)
    b.u(8)  # constraint flags
    level_idc = b.u(8)
    b.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = b.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = b.u(1)
        b.ue()  # bit_depth_luma_minus8
        b.ue()  # bit_depth_chroma_minus8
        b.u(1)  # qpprime_y_zero_transform_bypass_flag
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if b.u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + b.se() + 256) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = b.ue() + 1
    height_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field_flag
    b.u(1)  # direct_8x8_inference_flag
    crop = (b.ue(), b.ue(), b.ue(), b.ue()) if b.u(1) else (0, 0, 0, 0)
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        crop_x = 2 if chroma_format_idc in (1, 2) else 1
        crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (crop[2] + crop[3])
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ValueError("implausible SPS picture size")
    return Sps(profile_idc, level_idc, width, height, _vui_framerate(b))


def _vui_framerate(b: _Bits) -> float | None:
    """Frame rate from the VUI timing info (H.264 §E.1.1, §E.2.1: time_scale / (2 ×
    num_units_in_tick) for progressive video), or None when absent or unreadable."""
    try:
        if not b.u(1):  # vui_parameters_present_flag
            return None
        if b.u(1) and b.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc = Extended_SAR
            b.u(32)
        if b.u(1):  # overscan_info_present_flag
            b.u(1)
        if b.u(1):  # video_signal_type_present_flag
            b.u(4)
            if b.u(1):  # colour_description_present_flag
                b.u(24)
        if b.u(1):  # chroma_loc_info_present_flag
            b.ue()
            b.ue()
        if not b.u(1):  # timing_info_present_flag
            return None
        units, scale = b.u(32), b.u(32)
    except ValueError:
        return None
    rate = scale / (2 * units) if units else 0
    return round(rate, 3) if 0 < rate <= 1000 else None


def _sps_from_sprop(sprop: str) -> Sps | None:
    for item in sprop.split(","):
        try:
            nal = base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
            if nal and nal[0] & 0x1F == 7:
                return parse_h264_sps(nal)
        except (binascii.Error, ValueError):
            continue
    return None


# ---------------------------------------------------------------------------------------------
# The RTSP exchange.

_PHRASES = {  # RFC 2326 §7.1.1, RFC 7826 §17
    200: "OK", 301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    451: "Parameter Not Understood", 453: "Not Enough Bandwidth", 454: "Session Not Found",
    455: "Method Not Valid in This State", 461: "Unsupported Transport", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    505: "RTSP Version Not Supported",
}
_STATUS_LINE = re.compile(rb"RTSP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?\r?\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset by camera",
    errno.ETIMEDOUT: "connect timeout",
    errno.EACCES: "communication administratively prohibited",
    errno.EPERM: "communication administratively prohibited",
}


class _Failed(Exception):
    """Ends a probe with ok=False and this reason (short English, no secrets)."""


def _status_text(code: int, phrase: str) -> str:
    """"404 Not Found": the standard phrase, else the camera's, cut to printable ASCII."""
    text = _PHRASES.get(code) or re.sub(r"[^ -~]", "", phrase)[:40].strip()
    return f"{code} {text}".strip()


@dataclass(slots=True)
class _Response:
    version: str
    status: int
    phrase: str
    headers: list[tuple[str, str]]
    body: bytes
    close: bool  # the camera closes the connection after this response

    def get(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


def _parse_head(head: bytes, max_headers: int) -> tuple[str, int, str, list[tuple[str, str]]]:
    m = _STATUS_LINE.match(head)
    if not m:
        raise _Failed("not an RTSP response")
    version = f"{m[1].decode()}.{m[2].decode()}"
    if version not in ("1.0", "2.0"):
        raise _Failed(f"unsupported RTSP version {version}")
    headers: list[tuple[str, str]] = []
    for line in head[m.end():].decode("utf-8", "replace").splitlines():
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding (RFC 2326 §4.2 via RFC 2616)
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise _Failed("malformed RTSP header")
        headers.append((name.strip().lower(), value.strip()))
    if len(headers) > max_headers:
        raise _Failed(f"too many headers (> {max_headers})")
    return version, int(m[3]), (m[4] or b"").decode("latin-1"), headers


class _Connection:
    """One TCP connection to a camera and the requests on it (sequential, CSeq from 1)."""

    def __init__(self, target: _Target, timeout_s: float, limits: RtspLimits) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.limits = limits
        self.cseq = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connect_ms: float | None = None

    async def _connect(self) -> None:
        started = time.perf_counter()
        try:
            self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port, limit=READ_CHUNK)
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError):
                raise _Failed("connection refused") from None
            raise _Failed(_CONNECT_ERRORS.get(exc.errno or 0, "cannot connect")) from None
        if self.connect_ms is None:
            self.connect_ms = (time.perf_counter() - started) * 1000

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, url: str, headers: dict[str, str]) -> tuple[_Response, float]:
        """Send one request, return the response and its round trip in ms (send to last
        byte). Connects first when needed. Everything within one deadline of timeout_s."""
        phase = "connect"
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.writer is None:
                    await self._connect()
                phase = "response"
                self.cseq += 1
                lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {USER_AGENT}"]
                lines += [f"{k}: {v}" for k, v in headers.items()]
                started = time.perf_counter()
                assert self.writer is not None and self.reader is not None
                self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                response = await self._read_response(self.reader, method)
                elapsed_ms = (time.perf_counter() - started) * 1000
        except TimeoutError:
            self.abort()
            if phase == "connect":
                raise _Failed("connect timeout") from None
            raise _Failed(f"no complete response within {self.timeout_s:g} s") from None
        except ConnectionResetError:
            self.abort()
            raise _Failed("connection reset by camera") from None
        except OSError as exc:
            self.abort()
            raise _Failed(_CONNECT_ERRORS.get(exc.errno or 0, "connection error")) from None
        except _Failed:
            self.abort()
            raise
        cseq = response.get("cseq")
        if cseq and cseq[0] != str(self.cseq):
            self.abort()
            raise _Failed("response CSeq does not match the request")
        if response.close:
            self.close()
        return response, elapsed_ms

    async def _read_response(self, reader: asyncio.StreamReader, method: str) -> _Response:
        limits = self.limits
        buf = bytearray()
        while True:
            if buf[:1] in (b"\r", b"\n"):  # stray line ends (keep-alives) before a response
                del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
            if bytes(buf[:5]) != b"RTSP/"[: len(buf)]:  # garbage is refused at its first bytes
                raise _Failed("not an RTSP response")
            end = _HEADER_END.search(buf)
            if end:
                break
            if buf.count(b"\n") > limits.max_headers + 1:  # endless headers: cut before the byte limit
                raise _Failed(f"too many headers (> {limits.max_headers})")
            if len(buf) > limits.max_response_bytes:
                raise _Failed(f"response too large (> {limits.max_response_bytes} bytes)")
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                raise _Failed("connection closed by camera")
            buf += chunk
        head, rest = bytes(buf[: end.end()]), buf[end.end():]
        version, status, phrase, headers = _parse_head(head, limits.max_headers)
        lengths = [v for k, v in headers if k == "content-length"]
        if lengths and not lengths[0].isdigit():
            raise _Failed("invalid Content-Length")
        length = int(lengths[0]) if lengths else 0  # RFC 2326 §4.3: no Content-Length, no body
        if length > limits.max_sdp_bytes:
            what = "SDP" if method == "DESCRIBE" else "response body"
            raise _Failed(f"{what} too large (> {limits.max_sdp_bytes} bytes)")
        if len(head) + length > limits.max_response_bytes:
            raise _Failed(f"response too large (> {limits.max_response_bytes} bytes)")
        while len(rest) < length:
            chunk = await reader.read(min(READ_CHUNK, length - len(rest)))
            if not chunk:
                raise _Failed("connection closed by camera (incomplete response)")
            rest += chunk
        close = any(v.lower() == "close" for k, v in headers if k == "connection")
        return _Response(version, status, phrase, headers, bytes(rest[:length]), close)


# ---------------------------------------------------------------------------------------------
# The probe.

MEASUREMENT = MeasurementSpec(
    "rtsp",
    "One RTSP check of one camera: OPTIONS then DESCRIBE on one connection (RFC 2326/7826).",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "DESCRIBE answered 200 with at least one video media section"),
        "status_code": FieldSpec("integer", "", "RTSP status code of the last response"),
        "connect_ms": FieldSpec("float", "ms", "TCP connect time"),
        "options_ms": FieldSpec("float", "ms", "OPTIONS round trip (the last, authenticated attempt)"),
        "describe_ms": FieldSpec("float", "ms", "DESCRIBE round trip (the last, authenticated attempt)"),
        "sdp_bytes": FieldSpec("integer", "bytes", "size of the SDP in the DESCRIBE response"),
        "video_codec": FieldSpec("string", "", "RTP encoding name of the first video media (H264, H265, JPEG …)"),
        "width": FieldSpec("integer", "pixels", "video width, when the SDP tells"),
        "height": FieldSpec("integer", "pixels", "video height, when the SDP tells"),
        "framerate": FieldSpec("float", "frames/s", "video frame rate, when the SDP tells"),
    },
)


@dataclass(slots=True)
class _Outcome:
    fields: dict[str, float | int | bool | str] = field(default_factory=lambda: {"up": False})


class RtspProbe:
    """The `rtsp` probe (probes.base.Probe): "video online" per camera (see module docstring).

    Reasons (ok=False): "connection refused", "connect timeout", "no complete response within
    5 s", "connection closed by camera", "not an RTSP response", "response too large (> N
    bytes)", "too many headers (> N)", "SDP too large (> N bytes)", "404 Not Found" (any non-200
    status), "401 Unauthorized (wrong credentials | no credentials configured | no supported
    authentication scheme)", "no SDP in DESCRIBE response", "no video media in SDP", "no
    stream URL".
    """

    name: ClassVar[str] = "rtsp"
    basis: ClassVar[Basis | None] = Basis.VIDEO
    Config: ClassVar[type[RtspConfig]] = RtspConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (MEASUREMENT,)
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ("stream_uri",)

    def __init__(self, cfg: RtspConfig) -> None:
        self.cfg = cfg
        self._targets = _Targets(cfg)
        self._auth: dict[str, _Auth] = {}  # device id → last answered challenge

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._auth.clear()

    def wants(self, device: Device) -> bool:
        return self._targets.wants(device)

    def learn_stream_uri(self, device_id: str, uri: str) -> bool:
        """See _Targets.learn_stream_uri: the ONVIF probe's GetStreamUri result for a device."""
        return self._targets.learn_stream_uri(device_id, uri)

    def learn(self, device_id: str, hint: str, value: str) -> None:
        """probes.base.Learner: the hint `stream_uri` (offered by onvif), see learn_stream_uri."""
        self._targets.learn_stream_uri(device_id, value)

    def budget_s(self, device: Device) -> float:
        """Every attempt of both requests at its full deadline (each may have to reconnect),
        plus 0.5 s for the event loop."""
        return len(REQUESTS) * MAX_ATTEMPTS_PER_REQUEST * self.cfg.timeout_s + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        started = time.time_ns()
        outcome = _Outcome()
        target = self._targets.target(device)
        if target is None:
            return ProbeResult(device.id, self.name, started, False, "no stream URL", outcome.fields)
        conn = _Connection(target, self.cfg.timeout_s, self.cfg.limits)
        try:
            reason = await self._check(device, target, conn, outcome)
            conn.close()  # the exchange ended cleanly: a polite FIN
        except _Failed as failed:
            reason = str(failed)
        finally:
            conn.abort()  # after a failure or a cancel: RST, nothing lingers; no-op after close()
            if conn.connect_ms is not None:
                outcome.fields["connect_ms"] = round(conn.connect_ms, 3)
        ok = reason is None
        outcome.fields["up"] = ok
        return ProbeResult(device.id, self.name, started, ok, reason, outcome.fields)

    async def _check(self, device: Device, target: _Target, conn: _Connection, outcome: _Outcome) -> str | None:
        account = self._targets.account(device)
        options, options_ms = await self._request(device, account, conn, "OPTIONS", target.url, {}, outcome)
        outcome.fields["options_ms"] = round(options_ms, 3)
        if options.status == 401:
            return self._unauthorized(account, options)
        # Any other OPTIONS answer (some cameras say 501) does not stop the check: DESCRIBE decides.
        response, describe_ms = await self._request(
            device, account, conn, "DESCRIBE", target.url, {"Accept": "application/sdp"}, outcome
        )
        outcome.fields["describe_ms"] = round(describe_ms, 3)
        if response.status == 401:
            return self._unauthorized(account, response)
        if response.status != 200:
            return _status_text(response.status, response.phrase)
        if not response.body:
            return "no SDP in DESCRIBE response"
        outcome.fields["sdp_bytes"] = len(response.body)
        video = [m for m in parse_sdp(response.body.decode("utf-8", "replace")) if m.media == "video"]
        if not video:
            return "no video media in SDP"
        first = next((m for m in video if m.codec), video[0])
        if first.codec:
            outcome.fields["video_codec"] = first.codec
        if first.width is not None and first.height is not None:
            outcome.fields["width"], outcome.fields["height"] = first.width, first.height
        if first.framerate is not None:
            outcome.fields["framerate"] = float(first.framerate)
        return None

    def _unauthorized(self, account: tuple[str, str] | None, response: _Response) -> str:
        if account is None:
            return "401 Unauthorized (no credentials configured)"
        if _best_challenge(parse_challenges(response.get("www-authenticate"))) is None:
            return "401 Unauthorized (no supported authentication scheme)"
        return "401 Unauthorized (wrong credentials)"

    async def _request(
        self, device: Device, account: tuple[str, str] | None, conn: _Connection,
        method: str, url: str, headers: dict[str, str], outcome: _Outcome,
    ) -> tuple[_Response, float]:
        """One request with the authentication dance: answer a 401 with its challenge when the
        failed attempt went without credentials, with a remembered (older) challenge, or was
        declared stale; at most MAX_ATTEMPTS_PER_REQUEST attempts."""
        fresh = False  # the challenge in use came from this connection's last 401
        stale_retried = False
        for _ in range(MAX_ATTEMPTS_PER_REQUEST):
            auth = self._auth.get(device.id) if account is not None else None
            sent = dict(headers)
            if auth is not None and account is not None:
                sent["Authorization"] = auth.header(account, method, url)
            response, elapsed_ms = await conn.request(method, url, sent)
            outcome.fields["status_code"] = response.status
            if response.status != 401 or account is None:
                return response, elapsed_ms
            challenge = _best_challenge(parse_challenges(response.get("www-authenticate")))
            if challenge is None:
                return response, elapsed_ms
            stale = challenge.params.get("stale", "").lower() == "true"
            retry = auth is None or not fresh or (stale and not stale_retried)
            self._auth[device.id] = _Auth(challenge)
            if not retry:
                del self._auth[device.id]  # wrong credentials: start over without them next time
                return response, elapsed_ms
            stale_retried = stale_retried or (auth is not None and fresh and stale)
            fresh = True
        return response, elapsed_ms


# ---------------------------------------------------------------------------------------------
# The frame probe (ffmpeg).

FRAME_MEASUREMENT = MeasurementSpec(
    "rtsp_frame",
    "One decoded video frame per camera, fetched with ffmpeg over RTSP/TCP.",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "a video frame was decoded"),
        "frame_ms": FieldSpec("float", "ms", "from starting ffmpeg to the decoded frame"),
        "width": FieldSpec("integer", "pixels", "width of the decoded frame"),
        "height": FieldSpec("integer", "pixels", "height of the decoded frame"),
        "bytes": FieldSpec("integer", "bytes", "stream bytes ffmpeg demuxed (RTP payload, not TCP overhead)"),
        "received_bytes": FieldSpec("integer", "bytes", "TCP payload the check received (ffmpeg: kernel tcp_info, "
                                    "last poll; pyav: the packets and their RTP/TCP framing)"),
        "over_budget": FieldSpec("boolean", "", "the decoder was stopped at max_check_bytes"),
        "decode_cpu_ms": FieldSpec("float", "ms", "CPU time of the in-process decoding (decoder pyav)"),
    },
)
_PGM_HEADER = re.compile(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s")
_DEMUXED = re.compile(rb"Total: \d+ packets \((\d+) bytes\) demuxed")
_FFMPEG_REASONS = (  # ffmpeg's stderr → our reason; the stderr itself may contain the URL
    (re.compile(rb"401 Unauthorized"), "401 Unauthorized"),
    (re.compile(rb"404 Not Found"), "404 Not Found"),
    (re.compile(rb"Connection refused"), "connection refused"),
    (re.compile(rb"Connection timed out|timed out", re.I), "connect timeout"),
    (re.compile(rb"No route to host"), "host unreachable"),
)
STDERR_CAP = 256 << 10
PYAV_READ_S = 5.0  # one blocking read or connect of PyAV's (its interrupt callback), at most
BUDGET_POLL_S = 0.2  # at 10 Mbit/s, 250 kB between two looks at the byte count


class RtspFrameProbe:
    """The `rtsp_frame` probe: decode one frame per camera with ffmpeg (RTSP over TCP).

    The stream URL, credentials included, never appears in ffmpeg's argv: /proc/<pid>/cmdline
    is readable by every local user. ffmpeg reads it from its stdin, a pipe, as a one-entry
    ffconcat list (`-f concat -i pipe:0`, see `_input_list`); the environment was no option
    (ffmpeg 5.1 reads no URL from it) and a file would put the password on disk. The pipe is
    filled and closed before ffmpeg starts, so nothing else can read it; ffmpeg's stderr may
    name the URL and is only matched, never logged or put into reasons. At most
    `max_concurrency` ffmpeg processes run; each is killed
    at `timeout_s` or when probe() is cancelled. `-probesize max_bytes` bounds what ffmpeg
    reads to find the stream; the frame is output as a PGM to a pipe whose header gives the
    size (the pixels are read and dropped, memory stays bounded).

    Reasons: "timeout (no frame within 15 s)", "connection refused", "401 Unauthorized",
    "404 Not Found", "no frame decoded", "ffmpeg not found", "no stream URL".
    """

    name: ClassVar[str] = "rtsp_frame"
    basis: ClassVar[Basis | None] = Basis.VIDEO
    Config: ClassVar[type[RtspFrameConfig]] = RtspFrameConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (FRAME_MEASUREMENT, VQD_MEASUREMENT)
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ("stream_uri", "sub_stream_uri")

    def __init__(self, cfg: RtspFrameConfig, ffmpeg: str = FFMPEG) -> None:
        self.cfg = cfg
        self.ffmpeg = ffmpeg
        self._targets = _Targets(cfg)
        self._streams = [(o.match.selector(), o.stream) for o in cfg.stream_overrides]
        self._slots = asyncio.Semaphore(cfg.max_concurrency)
        self._queued = 0  # probe() calls waiting for or holding a slot
        self._vqd = None  # probes.vqd.runner.VqdRunner while entered with vqd enabled
        self._received: dict[int, tuple[int, bool]] = {}  # ffmpeg pid → (bytes received, stopped at the budget)
        self._decoders: ThreadPoolExecutor | None = None  # PyAV's threads while entered with vqd and pyav
        self._running: set[threading.Event] = set()  # the cancel flags of the grabs under way

    async def __aenter__(self) -> Self:
        if self.cfg.vqd.enabled:  # OpenCV is loaded only here
            from probes.vqd.runner import VqdRunner

            thumbs = None
            if self.cfg.thumbnail_dir is not None:
                from probes.vqd.thumbs import ThumbnailStore

                thumbs = ThumbnailStore(self.cfg.thumbnail_dir, self.cfg.thumbnail_max_count,
                                        self.cfg.thumbnail_max_bytes)
            self._vqd = VqdRunner(self.cfg.vqd, thumbs)
            if self.cfg.decoder == "pyav":
                self._decoders = ThreadPoolExecutor(self.cfg.max_concurrency, thread_name_prefix="vqd-decode")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._decoders is not None:
            for flag in self._running:
                flag.set()
            self._decoders.shutdown(wait=False, cancel_futures=True)
            self._decoders = None
        if self._vqd is not None:
            self._vqd.close()
            self._vqd = None

    def wants(self, device: Device) -> bool:
        return self._targets.wants(device)

    def learn_stream_uri(self, device_id: str, uri: str, sub: bool = False) -> bool:
        """See _Targets.learn_stream_uri: the main (or `sub`) stream URI ONVIF reported."""
        return self._targets.learn_stream_uri(device_id, uri, sub)

    def learn(self, device_id: str, hint: str, value: str) -> None:
        """probes.base.Learner: the hints `stream_uri` (main stream) and `sub_stream_uri` (the
        stream the check prefers with `stream: sub`), both offered by onvif."""
        self._targets.learn_stream_uri(device_id, value, sub=hint == "sub_stream_uri")

    def stream_for(self, device: Device) -> Literal["sub", "main"]:
        """The stream the check reads on `device`: `stream` of the first of `stream_overrides`
        whose selector picks it, else the config's `stream`."""
        return next((stream for selector, stream in self._streams if selector.matches(device)), self.cfg.stream)

    def budget_s(self, device: Device) -> float:
        """The decoder's deadline, times the rounds of the slot queue as it is now (call right
        before probe()), plus 1 s to kill and reap ffmpeg; PyAV's grab may end one blocking
        read (PYAV_READ_S) after its deadline, as it checks the deadline between packets."""
        deadline = self.cfg.timeout_s
        if self.cfg.vqd.enabled and self.cfg.decoder == "pyav":
            deadline += min(self.cfg.timeout_s, PYAV_READ_S)
        rounds = 1 + self._queued // self.cfg.max_concurrency
        analysis = 2.0 if self.cfg.vqd.enabled else 0.0  # the worker thread's queue, one analysis at a time
        return rounds * deadline + 1.0 + analysis

    def _stream_url(self, device: Device, target: _Target) -> str:
        """The stream URL with the device's account as userinfo (percent-encoded)."""
        url = target.url
        account = self._targets.account(device)
        if account is not None:
            parts = urlsplit(url)
            userinfo = f"{quote(account[0], safe='')}:{quote(account[1], safe='')}@"
            url = urlunsplit((parts.scheme, userinfo + parts.netloc, parts.path, parts.query, ""))
        return url

    def _input_list(self, url: str) -> bytes:
        """The ffconcat list ffmpeg reads on stdin: the one stream, with the RTSP and probing
        options that apply to it (the concat demuxer opens it: options outside the list would
        not reach it). Raises ValueError for a URL with control characters (a line break
        would start a directive of its own)."""
        if _CONTROL.search(url):
            raise ValueError("control characters in the stream URL")
        quoted = "'" + url.replace("'", "'\\''") + "'"  # ffconcat (av_get_token) quoting: \' outside quotes
        return (
            "ffconcat version 1.0\n"
            f"file {quoted}\n"
            "option rtsp_transport tcp\n"
            f"option timeout {int(self.cfg.timeout_s * 1e6)}\n"  # socket I/O timeout, µs
            f"option probesize {self.cfg.max_bytes}\n"
            "option analyzeduration 1000000\n"
        ).encode()

    def _command(self) -> list[str]:
        """ffmpeg's argv: no URL in it; the input is the list on stdin (`_input_list`)."""
        head = [
            self.ffmpeg, "-nostdin", "-hide_banner", "-v", "verbose",
            # -safe 0: the list names a URL, not a relative file name; only the protocols needed.
            "-f", "concat", "-safe", "0", "-protocol_whitelist", "pipe,rtsp,tcp",
        ]
        if self._vqd is not None:
            from probes.vqd.grab import ffmpeg_input_args, ffmpeg_output_args

            return [*head, *ffmpeg_input_args(self.cfg.vqd), "-i", "pipe:0", *ffmpeg_output_args(self.cfg.vqd)]
        return [*head, "-i", "pipe:0", "-map", "0:v:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "pgm",
                "-pix_fmt", "gray", "-"]

    async def probe(self, device: Device) -> ProbeResult:
        started = time.time_ns()
        target = self._targets.target(device, sub=self.stream_for(device) == "sub")
        if target is None:
            return ProbeResult(device.id, self.name, started, False, "no stream URL", {"up": False})
        self._queued += 1
        try:
            async with self._slots:
                try:
                    listing = self._input_list(self._stream_url(device, target))
                except ValueError as exc:
                    fields, reason, series = {"up": False}, f"bad stream URL ({exc})", ()
                else:
                    if self._decoders is not None:
                        fields, reason, series = await self._run_pyav(self._stream_url(device, target), device)
                    else:
                        fields, reason, series = await self._run(self._command(), listing, device)
        finally:
            self._queued -= 1
        return ProbeResult(device.id, self.name, started, reason is None, reason, fields, series)

    async def _run(
        self, cmd: list[str], listing: bytes, device: Device,
    ) -> tuple[dict[str, float | int | bool | str], str | None, tuple[Series, ...]]:
        t0 = time.perf_counter()
        # The list (a few hundred bytes) fits the pipe's buffer: written and closed before ffmpeg starts.
        read_end, write_end = os.pipe()
        try:
            with os.fdopen(write_end, "wb") as w:
                w.write(listing)
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=read_end, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )
        except OSError:
            return {"up": False}, "ffmpeg not found", ()
        finally:
            os.close(read_end)
        fields: dict[str, float | int | bool | str] = {"up": False}
        frames: list = []
        budget = asyncio.create_task(self._hold_budget(proc))
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                if self._vqd is not None:
                    (size, frame_ms, frames), stderr, _ = await asyncio.gather(
                        _read_burst(proc, t0), _read_tail(proc), proc.wait()
                    )
                else:
                    (size, frame_ms), stderr, _ = await asyncio.gather(
                        _read_frame(proc, t0), _read_tail(proc), proc.wait()
                    )
        except TimeoutError:
            return fields, f"timeout (no frame within {self.cfg.timeout_s:g} s)", ()
        finally:
            budget.cancel()
            received, over = self._received.pop(proc.pid, (None, False))
            if received is not None:  # also on the timeout's result (the same dict)
                fields["received_bytes"] = received
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                # Reaping takes milliseconds after SIGKILL; shielded so a cancel leaves no zombie.
                await asyncio.shield(proc.wait())
        if m := _DEMUXED.search(stderr):
            fields["bytes"] = int(m[1])
        if over:
            fields["over_budget"] = True
            if size is None:
                return fields, f"byte budget exceeded before a frame ({self.cfg.max_check_bytes:,} bytes)", ()
        elif size is None or proc.returncode != 0:
            for pattern, reason in _FFMPEG_REASONS:
                if pattern.search(stderr):
                    return fields, reason, ()
            return fields, "no frame decoded", ()
        fields.update(up=True, frame_ms=round(frame_ms, 3), width=size[0], height=size[1])
        if self._vqd is not None:
            if m := _SOURCE_SIZE.search(stderr):  # the camera's size, not the scaled frames'
                fields.update(width=int(m[1]), height=int(m[2]))
            from probes.vqd.grab import decode_errors

            series = await self._vqd.series(device, frames, decode_errors(stderr))
            return fields, None, (series,) if series is not None else ()
        return fields, None, ()

    async def _run_pyav(
        self, url: str, device: Device,
    ) -> tuple[dict[str, float | int | bool | str], str | None, tuple[Series, ...]]:
        """The vqd burst decoded by PyAV on a worker thread (probes.vqd.decode.grab). The grab
        ends by itself within timeout_s + one read timeout; a cancelled probe() sets its flag
        and the thread stops at its next packet. The worker pool has max_concurrency threads,
        so grabs never outnumber the slots even while a cancelled one winds down."""
        from probes.vqd.decode import Limits, grab

        assert self._decoders is not None and self._vqd is not None
        limits = Limits(timeout_s=self.cfg.timeout_s, read_s=min(self.cfg.timeout_s, PYAV_READ_S),
                        gap_s=self.cfg.vqd.burst_gap_s, max_bytes=self.cfg.max_check_bytes,
                        probe_bytes=self.cfg.max_bytes, max_pixels=self.cfg.vqd.max_pixels,
                        keyframes_only=self.cfg.vqd.keyframes_only)
        flag = threading.Event()
        self._running.add(flag)
        try:
            burst = await asyncio.get_running_loop().run_in_executor(self._decoders, grab, url, limits, flag)
        finally:
            flag.set()
            self._running.discard(flag)
        fields: dict[str, float | int | bool | str] = {
            "up": False, "received_bytes": burst.received_bytes, "bytes": burst.packet_bytes,
            "decode_cpu_ms": round(burst.cpu_ms, 3),
        }
        if burst.width is not None and burst.height is not None:
            fields.update(width=burst.width, height=burst.height)  # the camera's size, not the scaled frames'
        if burst.over_budget:
            fields["over_budget"] = True
        if not burst.frames:
            if burst.over_budget:
                return fields, f"byte budget exceeded before a frame ({self.cfg.max_check_bytes:,} bytes)", ()
            if burst.reason == "timeout":
                return fields, f"timeout (no frame within {self.cfg.timeout_s:g} s)", ()
            return fields, burst.reason, ()
        fields.update(up=True, frame_ms=round(burst.frame_ms, 3))
        series = await self._vqd.series(device, burst.frames, burst.decode_errors)
        return fields, None, (series,) if series is not None else ()


    async def _hold_budget(self, proc: asyncio.subprocess.Process) -> None:
        """Poll the bytes ffmpeg has received (probes._sockdiag) every BUDGET_POLL_S and kill
        it beyond max_check_bytes; the last count and whether it was killed go to
        self._received[pid]. Ends when cancelled or when the kernel cannot tell."""
        from probes._sockdiag import received_bytes

        seen = 0
        try:
            while proc.returncode is None:
                count = received_bytes(proc.pid)  # a netlink dump of a few sockets: well under a millisecond
                if count is None:
                    return
                seen = max(seen, count)
                self._received[proc.pid] = (seen, False)
                if self.cfg.max_check_bytes is not None and seen > self.cfg.max_check_bytes:
                    self._received[proc.pid] = (seen, True)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    return
                await asyncio.sleep(BUDGET_POLL_S)
        except asyncio.CancelledError:
            pass


async def _read_frame(proc: asyncio.subprocess.Process, t0: float) -> tuple[tuple[int, int] | None, float]:
    """Read ffmpeg's stdout to the end, keeping only the PGM header: (width, height) or None,
    and the ms from t0 to the first output byte (the frame is decoded then)."""
    assert proc.stdout is not None
    head = bytearray()
    first_ms = 0.0
    while chunk := await proc.stdout.read(65536):
        if not head:
            first_ms = (time.perf_counter() - t0) * 1000
        if len(head) < 64:
            head += chunk[: 64 - len(head)]
    m = _PGM_HEADER.match(head)
    return ((int(m[1]), int(m[2])) if m else None), first_ms


_SOURCE_SIZE = re.compile(rb"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})")


async def _read_burst(proc: asyncio.subprocess.Process, t0: float) -> tuple[tuple[int, int] | None, float, list]:
    """The vqd burst from ffmpeg's stdout (probes.vqd.grab.read_ppm_frames): (width, height) of
    the first frame as scaled or None, ms to the first frame, the frames (BGR arrays). A stream
    that is not PPM counts as no frame."""
    from probes.vqd.grab import FrameError, read_ppm_frames

    assert proc.stdout is not None
    try:
        frames = await read_ppm_frames(proc.stdout)
    except FrameError:
        while await proc.stdout.read(65536):
            pass
        return None, 0.0, []
    ms = (time.perf_counter() - t0) * 1000
    return ((frames[0].shape[1], frames[0].shape[0]) if frames else None), ms, frames


async def _read_tail(proc: asyncio.subprocess.Process) -> bytes:
    """ffmpeg's stderr to the end, keeping the last STDERR_CAP bytes (the summary is last)."""
    assert proc.stderr is not None
    tail = bytearray()
    while chunk := await proc.stderr.read(65536):
        tail += chunk
        del tail[: max(0, len(tail) - STDERR_CAP)]
    return bytes(tail)
