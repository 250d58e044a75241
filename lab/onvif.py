"""An ONVIF device simulator (Profile S subset) for tests, the lab fleet and bench/.

No real ONVIF device server can be installed here, so this one speaks the published protocol
from the ONVIF WSDLs that onvif-zeep-async ships (devicemgmt.wsdl, media.wsdl, onvif.xsd):
SOAP 1.2 over HTTP (`application/soap+xml`), POST to

- /onvif/device_service: GetSystemDateAndTime, GetCapabilities, GetServices (PRE_AUTH: no
  credentials needed, ONVIF Core §5.9.4.3) and GetDeviceInformation (authenticated);
- /onvif/media_service: GetProfiles and GetStreamUri (authenticated);
- for a recorder with `recordings` (ONVIF Profile G: Recording Control and Recording Search
  Service specifications): /onvif/recording_service GetRecordings, GetRecordingJobs and
  /onvif/search_service GetRecordingSummary, GetRecordingInformation (authenticated); both are
  then listed by GetServices. Without recordings they are not offered (ActionNotSupported).

Authentication is the WS-Security UsernameToken with PasswordDigest (OASIS WSS UsernameToken
Profile 1.0 §3.1: Base64(SHA-1(nonce + created + password))), checked the way cameras do it:
the digest, the `Created` time within ±`FRESHNESS_S` of the *device's* clock (so a camera whose
clock drifted refuses a client that does not compensate), and no nonce twice within that
window. Any failure is the fault env:Sender / ter:NotAuthorized (Core §5.11.2.4; the text
never says which check failed, like a real device; `OnvifSimulator.auth_failures` does, for
tests). PasswordText is refused.

Faults (SOAP 1.2 Part 1 §5.4, Core §5.11.2): unknown operations → env:Receiver /
ter:ActionNotSupported; a GetStreamUri for an unknown profile → env:Sender / ter:InvalidArgVal /
ter:NoProfile; malformed XML or a DTD in the request → env:Sender / ter:WellFormed; a SOAP 1.1
envelope → env:VersionMismatch. HTTP status per the SOAP 1.2 HTTP binding (Part 2 §7.5.2.2):
400 for env:Sender, 500 otherwise. Requests are parsed without DTDs, entities or the network.

Many devices in one process: the identity answering a request is chosen by the local address
the request arrived on (the socket's sockname), so one process bound to 0.0.0.0 inside a lab
namespace (lab/net.py: device addresses are `local` routes on lo) serves thousands of cameras.
Configuration (a dict, or the same as a JSON file for the command line):

    {"default": {...identity...},
     "devices": {"198.18.0.5": {...identity...}, ...}}

Identity keys (all optional, see `Identity`): manufacturer, model, firmware, serial,
hardware_id, clock_offset_s, username, password, stream_path, rtsp_port, profiles, media (a list
of `MediaProfile` dicts: width, height, uri; replaces `profiles`), behaviour, recordings (a list
of `Recording` dicts: source, earliest_days, latest_s, status, job).
A device entry starts from the default identity and overrides what it names.

Hostile `behaviour`s for the probe's tests: "billion_laughs" (entity-expansion DTD in the
response), "huge" (`HUGE_BYTES`, chunked, no Content-Length), "slow_drip" (one byte per second),
"garbage" (a 200 that is not XML), "hang" (reads the request, never answers), "fault_all"
(every call an env:Receiver fault).

Use:
- in-process: `async with OnvifSimulator(config, hosts=["127.0.0.1"]) as sim:` (a free port,
  `sim.port`);
- as a process, e.g. inside a lab namespace:
  `ip netns exec NS python -m lab.onvif --config FILE --bind 0.0.0.0 --port 80`, which prints
  `READY <port>` once it listens; `OnvifSimulatorProcess` does that for you.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Self, Sequence
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

from lab.process import ServerProcess

NS_ENV = "http://www.w3.org/2003/05/soap-envelope"
NS_ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"
NS_TRT = "http://www.onvif.org/ver10/media/wsdl"
NS_TRC = "http://www.onvif.org/ver10/recording/wsdl"
NS_TSE = "http://www.onvif.org/ver10/search/wsdl"
NS_TT = "http://www.onvif.org/ver10/schema"
NS_TER = "http://www.onvif.org/ver10/error"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
RECORDING_PATH = "/onvif/recording_service"
SEARCH_PATH = "/onvif/search_service"
FRESHNESS_S = 300.0
"""Accepted distance of a UsernameToken's Created from the device clock (cameras use ±5 min)."""
MAX_NONCES = 10_000
"""Nonces remembered per identity (oldest forgotten first); a bound against memory growth."""
MAX_REQUEST_BYTES = 64 * 1024
HUGE_BYTES = 8 << 20
BEHAVIOURS = frozenset({"", "billion_laughs", "huge", "slow_drip", "garbage", "hang", "fault_all"})
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"


RECORDING_STATES = frozenset({"Initiated", "Recording", "Stopped", "Removing", "Removed", "Unknown"})
"""tt:RecordingStatus (onvif.xsd)."""


@dataclass(frozen=True)
class Recording:
    """One recording of a simulated recorder (Profile G: one per channel, as NVRs have them).

    - source: the camera's name (tt:RecordingSourceInformation Name).
    - earliest_days: the oldest data, days before the device's now (None: nothing recorded).
    - latest_s: the newest data, seconds before the device's now (None: nothing recorded).
    - status: tt:RecordingStatus. job: the recording job's mode, "Active" or "Idle" ("" no job).
    """

    source: str = "Camera 01"
    earliest_days: float | None = 30.0
    latest_s: float | None = 2.0
    status: str = "Recording"
    job: str = "Active"

    def __post_init__(self) -> None:
        if self.status not in RECORDING_STATES:
            raise ValueError(f"unknown recording status {self.status!r}; one of {sorted(RECORDING_STATES)}")
        if self.job not in ("", "Active", "Idle"):
            raise ValueError("job must be 'Active', 'Idle' or ''")


@dataclass(frozen=True)
class MediaProfile:
    """One media profile of a camera with an explicit profile list (`Identity.media`), for the
    answers real cameras give: e.g. Hikvision 101 main 1920×1080 and 102 sub 640×360, Dahua
    subtype=0/1, a CIF (352×288) sub-stream, or hostile ones.

    - width/height: the encoder's resolution; None leaves tt:Resolution out (a hostile answer).
    - uri: a path ("/Streaming/Channels/102") → rtsp://ADDRESS:rtsp_port/PATH; anything else
      is GetStreamUri's tt:Uri verbatim (a malformed URI: "rtsp://[bad", "http://…", "").
    """

    width: int | None = 1920
    height: int | None = 1080
    uri: str = "/Streaming/Channels/101"


@dataclass(frozen=True)
class Identity:
    """What one simulated camera is and how it behaves.

    - clock_offset_s: device clock minus real UTC, seconds (signed; e.g. -3600 = an hour slow).
    - username/password: the one account of the device (WS-Security UsernameToken).
    - stream_path: path of the RTSP URI GetStreamUri returns (rtsp://ADDRESS:rtsp_port/PATH).
    - profiles: 1 (main stream, 2560×1440) or 2 (main + sub stream, 640×360) media profiles,
      H.264; stream_path is the main's, its last 1 made a 2 the sub's.
    - media: an explicit profile list (`MediaProfile`s, tokens Profile_1, Profile_2 …)
      instead; empty: `profiles` decides.
    - behaviour: "" (a well-behaved camera) or one of the hostile behaviours of the module doc.
    - recordings: a recorder's recordings (Profile G); empty for a camera.
    """

    manufacturer: str = "HIKVISION"
    model: str = "DS-2CD2T47G2-L"
    firmware: str = "V5.7.1 build 220601"
    serial: str = "DS-2CD2T47G2-L20220601AACHJ00001"
    hardware_id: str = "88"
    clock_offset_s: float = 0.0
    username: str = "admin"
    password: str = "admin12345"
    stream_path: str = "/Streaming/Channels/101"
    rtsp_port: int = 554
    profiles: int = 2
    media: tuple[MediaProfile, ...] = ()
    behaviour: str = ""
    recordings: tuple[Recording, ...] = ()

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; one of {sorted(BEHAVIOURS - {''})}")
        if self.profiles not in (1, 2):
            raise ValueError("profiles must be 1 or 2")
        if not self.stream_path.startswith("/"):
            raise ValueError("stream_path must start with /")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Identity | None = None) -> Identity:
        """`base` (or the defaults) with the keys of `data`; unknown keys are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown identity keys {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "media" in values:
            values["media"] = tuple(m if isinstance(m, MediaProfile) else MediaProfile(**m) for m in values["media"])
        if "recordings" in values:
            values["recordings"] = tuple(r if isinstance(r, Recording) else Recording(**r) for r in values["recordings"])
        return replace(base or cls(), **values)


def load_config(config: Mapping[str, Any] | None) -> tuple[Identity, dict[str, Identity]]:
    """(default identity, {normalised address: identity}) from a config dict (module doc)."""
    config = dict(config or {})
    unknown = sorted(set(config) - {"default", "devices"})
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: ['default', 'devices']")
    default = Identity.from_dict(config.get("default") or {})
    devices = {
        str(ipaddress.ip_address(address)): Identity.from_dict(entry, default)
        for address, entry in (config.get("devices") or {}).items()
    }
    return default, devices


class SoapFault(Exception):
    """A SOAP 1.2 fault to send: code (env:Sender/env:Receiver/…), ONVIF subcodes, reason text."""

    def __init__(self, code: str, subcodes: Sequence[str], reason: str) -> None:
        super().__init__(reason)
        self.code, self.subcodes, self.reason = code, tuple(subcodes), reason

    def xml(self) -> str:
        subcode = ""
        for value in reversed(self.subcodes):  # innermost last: build from the inside out
            subcode = f"<env:Subcode><env:Value>{value}</env:Value>{subcode}</env:Subcode>"
        return _envelope(
            f"<env:Fault><env:Code><env:Value>{self.code}</env:Value>{subcode}</env:Code>"
            f'<env:Reason><env:Text xml:lang="en">{escape(self.reason)}</env:Text></env:Reason></env:Fault>'
        )

    @property
    def http_status(self) -> int:
        return 400 if self.code == "env:Sender" else 500


def not_authorized() -> SoapFault:
    return SoapFault("env:Sender", ["ter:NotAuthorized"], "Sender not Authorized")


def _envelope(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<env:Envelope xmlns:env="{NS_ENV}" xmlns:tds="{NS_TDS}" xmlns:trt="{NS_TRT}" '
        f'xmlns:trc="{NS_TRC}" xmlns:tse="{NS_TSE}" xmlns:tt="{NS_TT}" xmlns:ter="{NS_TER}"><env:Body>{body}</env:Body></env:Envelope>'
    )


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class _Device:
    """One identity's mutable state: the nonces it has accepted (replay protection)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.nonces: OrderedDict[bytes, float] = OrderedDict()  # nonce -> monotonic time accepted

    def now(self) -> dt.datetime:
        """The device clock: real UTC plus the identity's offset."""
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.identity.clock_offset_s)

    def remember(self, nonce: bytes) -> bool:
        """False when `nonce` was already accepted within the freshness window (a replay)."""
        now = time.monotonic()
        while self.nonces and (now - next(iter(self.nonces.values())) > 2 * FRESHNESS_S
                               or len(self.nonces) >= MAX_NONCES):
            self.nonces.popitem(last=False)
        if nonce in self.nonces:
            return False
        self.nonces[nonce] = now
        return True


_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


def parse_request(body: bytes) -> etree._Element:
    """The SOAP 1.2 Body's first child of a request. Raises SoapFault for malformed XML, a DTD,
    a SOAP 1.1 or missing envelope, or an empty Body."""
    try:
        root = etree.fromstring(body, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        raise SoapFault("env:Sender", ["ter:WellFormed"], "XML Well-formed violation") from None
    if root.getroottree().docinfo.doctype:
        raise SoapFault("env:Sender", ["ter:WellFormed"], "DTD not allowed")
    if root.tag == f"{{{NS_ENV11}}}Envelope":
        raise SoapFault("env:VersionMismatch", [], "SOAP 1.2 envelope expected")
    if root.tag != f"{{{NS_ENV}}}Envelope":
        raise SoapFault("env:Sender", ["ter:WellFormed"], "not a SOAP envelope")
    body_el = root.find(f"{{{NS_ENV}}}Body")
    if body_el is None or len(body_el) == 0:
        raise SoapFault("env:Sender", ["ter:WellFormed"], "empty SOAP Body")
    return body_el[0]


def check_username_token(envelope_child: etree._Element, device: _Device) -> str | None:
    """None when the request's WS-Security UsernameToken authenticates against `device`,
    else why not (for OnvifSimulator.auth_failures; the client only sees NotAuthorized)."""
    ident = device.identity
    token = envelope_child.getroottree().find(f"{{{NS_ENV}}}Header/{{{NS_WSSE}}}Security/{{{NS_WSSE}}}UsernameToken")
    if token is None:
        return "no UsernameToken"
    username = token.findtext(f"{{{NS_WSSE}}}Username") or ""
    password_el = token.find(f"{{{NS_WSSE}}}Password")
    nonce_text = token.findtext(f"{{{NS_WSSE}}}Nonce")
    created_text = token.findtext(f"{{{NS_WSU}}}Created")
    if password_el is None or password_el.get("Type") != PASSWORD_DIGEST:
        return "not a PasswordDigest"
    if nonce_text is None or created_text is None:
        return "Nonce or Created missing"
    try:
        nonce = base64.b64decode(nonce_text.strip(), validate=True)
        created = dt.datetime.fromisoformat(created_text.strip())
    except ValueError:
        return "bad Nonce or Created"
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    if abs((created - device.now()).total_seconds()) > FRESHNESS_S:
        return "stale Created"
    expected = base64.b64encode(
        hashlib.sha1(nonce + created_text.strip().encode() + ident.password.encode()).digest()
    ).decode()
    if not (hmac.compare_digest(username.encode(), ident.username.encode())
            and hmac.compare_digest((password_el.text or "").strip().encode(), expected.encode())):
        return "wrong username or digest"
    if not device.remember(nonce):
        return "nonce replay"
    return None


# ---------------------------------------------------------------------------------------------
# Responses (element order as in onvif.xsd, devicemgmt.wsdl, media.wsdl).


def _date_time(when: dt.datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute>"
        f"<tt:Second>{when.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{when.month}</tt:Month>"
        f"<tt:Day>{when.day}</tt:Day></tt:Date>"
    )


def system_date_and_time(device: _Device) -> str:
    utc = device.now()
    local = utc + dt.timedelta(hours=8)  # TZ CST-8: China Standard Time, no DST
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone>"
        f"<tt:UTCDateTime>{_date_time(utc)}</tt:UTCDateTime>"
        f"<tt:LocalDateTime>{_date_time(local)}</tt:LocalDateTime>"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def capabilities(base_url: str, categories: Sequence[str]) -> str:
    wanted = set(categories) or {"All"}
    if not wanted <= {"All", "Device", "Media"}:
        raise SoapFault("env:Receiver", ["ter:ActionNotSupported", "ter:NoSuchService"], "The requested WSDL service category is not supported by the device")
    parts = []
    if wanted & {"All", "Device"}:
        parts.append(f"<tt:Device><tt:XAddr>{base_url}{DEVICE_PATH}</tt:XAddr></tt:Device>")
    if wanted & {"All", "Media"}:
        parts.append(
            f"<tt:Media><tt:XAddr>{base_url}{MEDIA_PATH}</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
        )
    return f"<tds:GetCapabilitiesResponse><tds:Capabilities>{''.join(parts)}</tds:Capabilities></tds:GetCapabilitiesResponse>"


def services(base_url: str, ident: Identity) -> str:
    # IncludeCapability is ignored: no service capabilities are returned (the element is optional).
    offered = [(NS_TDS, DEVICE_PATH), (NS_TRT, MEDIA_PATH)]
    if ident.recordings:
        offered += [(NS_TRC, RECORDING_PATH), (NS_TSE, SEARCH_PATH)]
    entries = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base_url}{path}</tds:XAddr>"
        "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
        for ns, path in offered
    )
    return f"<tds:GetServicesResponse>{entries}</tds:GetServicesResponse>"


def device_information(ident: Identity) -> str:
    return (
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{escape(ident.manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{escape(ident.model)}</tds:Model>"
        f"<tds:FirmwareVersion>{escape(ident.firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(ident.serial)}</tds:SerialNumber>"
        f"<tds:HardwareId>{escape(ident.hardware_id)}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


_STREAMS = (  # token suffix, name, width, height, bitrate kbit/s
    ("1", "mainStream", 2560, 1440, 4096),
    ("2", "subStream", 640, 360, 512),
)


def _media(ident: Identity, address: str) -> dict[str, tuple[str, int | None, int | None, int, str]]:
    """{token: (name, width, height, kbit/s, GetStreamUri's Uri)} of the identity's profiles."""
    base = f"rtsp://{_url_host(address)}:{ident.rtsp_port}"
    if ident.media:
        return {f"Profile_{n}": (f"stream{n}", m.width, m.height, 4096 >> (n - 1),
                                 base + m.uri if m.uri.startswith("/") else m.uri)
                for n, m in enumerate(ident.media, 1)}
    sub_path = ident.stream_path.rstrip("1") + "2"
    return {f"Profile_{suffix}": (name, width, height, kbps, base + (ident.stream_path if suffix == "1" else sub_path))
            for suffix, name, width, height, kbps in _STREAMS[: ident.profiles]}


def profiles(ident: Identity, address: str) -> str:
    out = []
    media = _media(ident, address)
    for token, (name, width, height, kbps, _) in media.items():
        resolution = ("" if width is None or height is None else
                      f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution>")
        suffix = token.removeprefix("Profile_")
        out.append(
            f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
            '<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name>'
            f"<tt:UseCount>{len(media)}</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="2560" height="1440"/></tt:VideoSourceConfiguration>'
            f'<tt:VideoEncoderConfiguration token="VideoEncoderToken_{suffix}"><tt:Name>VideoEncoder_{suffix}</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
            f"{resolution}"
            "<tt:Quality>3</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
            f"<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{kbps}</tt:BitrateLimit></tt:RateControl>"
            "<tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
            "<tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration></trt:Profiles>"
        )
    return f"<trt:GetProfilesResponse>{''.join(out)}</trt:GetProfilesResponse>"


def stream_uri(request: etree._Element, ident: Identity, address: str) -> str:
    token = (request.findtext(f"{{{NS_TRT}}}ProfileToken") or "").strip()
    media = _media(ident, address)
    if token not in media:
        raise SoapFault("env:Sender", ["ter:InvalidArgVal", "ter:NoProfile"], "The requested profile token does not exist")
    setup = request.find(f"{{{NS_TRT}}}StreamSetup")
    stream = setup.findtext(f"{{{NS_TT}}}Stream") if setup is not None else None
    protocol = setup.findtext(f"{{{NS_TT}}}Transport/{{{NS_TT}}}Protocol") if setup is not None else None
    if stream != "RTP-Unicast" or protocol not in ("UDP", "TCP", "RTSP", "HTTP"):
        raise SoapFault("env:Sender", ["ter:InvalidArgVal", "ter:InvalidStreamSetup"], "Specification of StreamType or Transport part in StreamSetup is not supported")
    uri = media[token][4]
    return (
        f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
    )


def _xs_time(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _source(rec: Recording, n: int) -> str:
    return (
        f"<tt:SourceId>urn:uuid:00000000-0000-0000-0000-{n:012d}</tt:SourceId><tt:Name>{escape(rec.source)}</tt:Name>"
        f"<tt:Location>Site</tt:Location><tt:Description>Channel {n}</tt:Description>"
        f"<tt:Address>http://camera{n}.local/onvif/device_service</tt:Address>"
    )


def _span(rec: Recording, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    earliest = now - dt.timedelta(days=rec.earliest_days) if rec.earliest_days is not None else None
    latest = now - dt.timedelta(seconds=rec.latest_s) if rec.latest_s is not None else None
    return earliest, latest


def recording_answer(name: str, request: etree._Element, ident: Identity, now: dt.datetime) -> str:
    """Profile G answers: GetRecordings, GetRecordingJobs (recording service), GetRecordingSummary,
    GetRecordingInformation (search service). Recording n has the token REC_n."""
    recs = ident.recordings
    if name == "GetRecordings":
        items = "".join(
            f"<trc:RecordingItem><tt:RecordingToken>REC_{n}</tt:RecordingToken><tt:Configuration>"
            f"<tt:Source>{_source(rec, n)}</tt:Source><tt:Content>Recording {n}</tt:Content>"
            "<tt:MaximumRetentionTime>PT0S</tt:MaximumRetentionTime></tt:Configuration><tt:Tracks>"
            f"<tt:Track><tt:TrackToken>VIDEO00{n}</tt:TrackToken><tt:Configuration><tt:TrackType>Video</tt:TrackType>"
            "<tt:Description>video</tt:Description></tt:Configuration></tt:Track></tt:Tracks></trc:RecordingItem>"
            for n, rec in enumerate(recs, 1)
        )
        return f"<trc:GetRecordingsResponse>{items}</trc:GetRecordingsResponse>"
    if name == "GetRecordingJobs":
        jobs = "".join(
            f"<trc:JobItem><tt:JobToken>JOB_{n}</tt:JobToken><tt:JobConfiguration>"
            f"<tt:RecordingToken>REC_{n}</tt:RecordingToken><tt:Mode>{rec.job}</tt:Mode><tt:Priority>1</tt:Priority>"
            "</tt:JobConfiguration></trc:JobItem>"
            for n, rec in enumerate(recs, 1) if rec.job
        )
        return f"<trc:GetRecordingJobsResponse>{jobs}</trc:GetRecordingJobsResponse>"
    if name == "GetRecordingSummary":
        spans = [_span(rec, now) for rec in recs]
        firsts = [e for e, _ in spans if e is not None]
        lasts = [latest for _, latest in spans if latest is not None]
        return (
            "<tse:GetRecordingSummaryResponse><tse:Summary>"
            f"<tt:DataFrom>{_xs_time(min(firsts, default=now))}</tt:DataFrom>"
            f"<tt:DataUntil>{_xs_time(max(lasts, default=now))}</tt:DataUntil>"
            f"<tt:NumberRecordings>{len(recs)}</tt:NumberRecordings></tse:Summary></tse:GetRecordingSummaryResponse>"
        )
    token = (request.findtext(f"{{{NS_TSE}}}RecordingToken") or "").strip()  # GetRecordingInformation
    n = int(token[4:]) if token.startswith("REC_") and token[4:].isdigit() else 0
    if not 1 <= n <= len(recs):
        raise SoapFault("env:Sender", ["ter:InvalidArgVal", "ter:NoRecording"], "The RecordingToken does not reference an existing recording")
    rec = recs[n - 1]
    earliest, latest = _span(rec, now)
    span = (f"<tt:EarliestRecording>{_xs_time(earliest)}</tt:EarliestRecording>" if earliest else "") + (
        f"<tt:LatestRecording>{_xs_time(latest)}</tt:LatestRecording>" if latest else "")
    return (
        "<tse:GetRecordingInformationResponse><tse:RecordingInformation>"
        f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Source>{_source(rec, n)}</tt:Source>{span}"
        f"<tt:Content>Recording {n}</tt:Content><tt:RecordingStatus>{rec.status}</tt:RecordingStatus>"
        "</tse:RecordingInformation></tse:GetRecordingInformationResponse>"
    )


PRE_AUTH = {(DEVICE_PATH, "GetSystemDateAndTime"), (DEVICE_PATH, "GetCapabilities"), (DEVICE_PATH, "GetServices")}
AUTHENTICATED = {(DEVICE_PATH, "GetDeviceInformation"), (MEDIA_PATH, "GetProfiles"), (MEDIA_PATH, "GetStreamUri")}
PROFILE_G = {(RECORDING_PATH, "GetRecordings"), (RECORDING_PATH, "GetRecordingJobs"),
             (SEARCH_PATH, "GetRecordingSummary"), (SEARCH_PATH, "GetRecordingInformation")}
_SERVICE_NS = {DEVICE_PATH: NS_TDS, MEDIA_PATH: NS_TRT, RECORDING_PATH: NS_TRC, SEARCH_PATH: NS_TSE}

_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE env:Envelope [\n<!ENTITY lol "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n"
)


# ---------------------------------------------------------------------------------------------
# The server.


class OnvifSimulator:
    """The simulator in this process: one aiohttp server listening on `hosts` (all on one port).

    - config: see the module doc (default identity + per-address identities).
    - hosts: local addresses to listen on ("0.0.0.0" for all of a namespace's addresses).
    - port: 0 = a free port (then `port` tells which).
    Attributes for tests: `requests` (count per (address, operation)), `auth_failures`
    (list of (address, operation, why)). Async context manager; `close()` ends hanging and
    dripping responses at once.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, hosts: Sequence[str] = ("127.0.0.1",),
                 port: int = 0) -> None:
        default, devices = load_config(config)
        self._default = _Device(default)
        self._devices = {address: _Device(identity) for address, identity in devices.items()}
        self.hosts = list(hosts)
        self.port = port
        self.requests: dict[tuple[str, str], int] = {}
        self.auth_failures: list[tuple[str, str, str]] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def device(self, address: str) -> _Device:
        return self._devices.get(address) or self._default

    def url(self, host: str | None = None) -> str:
        """Base URL (http://HOST:PORT) of the simulator on `host` (the first listening host)."""
        return f"http://{_url_host(host or self.hosts[0])}:{self.port}"

    async def start(self) -> Self:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post(DEVICE_PATH, self._handle)
        app.router.add_post(MEDIA_PATH, self._handle)
        app.router.add_post(RECORDING_PATH, self._handle)
        app.router.add_post(SEARCH_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, self.port))
            except OSError:
                sock.close()
                await self.close()
                raise
            self.port = sock.getsockname()[1]  # the first bind picks the port for all hosts
            await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        address = str(ipaddress.ip_address(sockname[0].partition("%")[0])) if sockname else "127.0.0.1"
        port = sockname[1] if sockname else self.port
        device = self.device(address)
        body = await request.read()
        behaviour = device.identity.behaviour
        if behaviour == "hang":
            await self._closing.wait()
            return web.Response(status=503)
        if behaviour == "garbage":
            return web.Response(body=b"\x00\xffHTTP/1.1 lorem <<<>>> ipsum \xfe" * 64, content_type="application/soap+xml")
        try:
            operation = self._operation(request.path, body, address)
            if behaviour == "fault_all":
                raise SoapFault("env:Receiver", [], "Internal error")
            base_url = f"http://{_url_host(address)}" + ("" if port == 80 else f":{port}")
            xml = _envelope(self._answer(request.path, operation, device, address, base_url))
            status = 200
        except SoapFault as fault:
            xml, status = fault.xml(), fault.http_status
        if behaviour == "billion_laughs":
            xml = _LAUGHS + xml.split("?>", 1)[1].replace("<env:Body>", "<env:Body>&lol9;", 1)
        if behaviour == "huge":
            return await self._huge(request)
        if behaviour == "slow_drip":
            return await self._drip(request, xml.encode(), status)
        return web.Response(status=status, body=xml.encode(), headers={"Content-Type": SOAP_CONTENT_TYPE})

    def _operation(self, path: str, body: bytes, address: str) -> tuple[str, etree._Element]:
        child = parse_request(body)
        qname = etree.QName(child)
        name = qname.localname
        key = (address, name)
        self.requests[key] = self.requests.get(key, 0) + 1
        offered = PRE_AUTH | AUTHENTICATED | (PROFILE_G if self.device(address).identity.recordings else set())
        if qname.namespace != _SERVICE_NS[path] or (path, name) not in offered:
            raise SoapFault("env:Receiver", ["ter:ActionNotSupported"], "Optional Action Not Implemented")
        return name, child

    def _answer(self, path: str, operation: tuple[str, etree._Element], device: _Device, address: str,
                base_url: str) -> str:
        name, request = operation
        ident = device.identity
        if (path, name) in AUTHENTICATED | PROFILE_G:
            why = check_username_token(request, device)
            if why is not None:
                self.auth_failures.append((address, name, why))
                raise not_authorized()
        if name == "GetSystemDateAndTime":
            return system_date_and_time(device)
        if name == "GetCapabilities":
            return capabilities(base_url, [c.text or "" for c in request.findall(f"{{{NS_TDS}}}Category")])
        if name == "GetServices":
            return services(base_url, ident)
        if name == "GetDeviceInformation":
            return device_information(ident)
        if name == "GetProfiles":
            return profiles(ident, address)
        if name == "GetStreamUri":
            return stream_uri(request, ident, address)
        return recording_answer(name, request, ident, device.now())  # Profile G

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        """HUGE_BYTES of a well-formed response, chunked (no Content-Length to refuse early)."""
        response = web.StreamResponse(headers={"Content-Type": SOAP_CONTENT_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        head, tail = _envelope("<tds:GetDeviceInformationResponse><tds:Manufacturer>|").split("|")
        filler = b"A" * 65536
        try:
            await response.write(head.encode())
            for _ in range(HUGE_BYTES // len(filler)):
                if self._closing.is_set():
                    break
                await response.write(filler)
            await response.write(b"</tds:Manufacturer></tds:GetDeviceInformationResponse>" + tail.encode())
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client gave up: that is the point
            pass
        return response

    async def _drip(self, request: web.Request, body: bytes, status: int) -> web.StreamResponse:
        """One byte per second of a valid response, until done, the client leaves, or close()."""
        response = web.StreamResponse(status=status, headers={"Content-Type": SOAP_CONTENT_TYPE})
        response.content_length = len(body)
        await response.prepare(request)
        try:
            for i in range(len(body)):
                await response.write(body[i:i + 1])
                try:
                    await asyncio.wait_for(self._closing.wait(), 1.0)
                    break
                except TimeoutError:
                    pass
            else:
                await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response


# ---------------------------------------------------------------------------------------------
# As a process (lab namespaces).


class OnvifSimulatorError(RuntimeError):
    """The simulator process did not start (its stderr tail says why)."""


class OnvifSimulatorProcess(ServerProcess):
    """`python -m lab.onvif` as a child process, optionally inside network namespace `netns`
    (`ip netns exec`): `with OnvifSimulatorProcess(config, netns=ns, bind="0.0.0.0", port=80):`.
    Waits for its `READY <port>` line (`port` is then the port it listens on); the child stops
    on SIGTERM and by itself when this process goes away."""

    stop_timeout_s = 5.0

    def __init__(self, config: Mapping[str, Any] | None = None, *, netns: str | None = None,
                 bind: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 15.0) -> None:
        load_config(config)  # a bad config fails here, not in the child
        self.dir = Path(tempfile.mkdtemp(prefix="fleetmon-onvif-"))
        super().__init__()
        self.config_path = self.dir / "onvif.json"
        self.config_path.write_text(json.dumps(config or {}), encoding="utf-8")
        self.log_path = self.dir / "onvif.log"
        self.netns, self.bind, self.port = netns, bind, port
        self._start_timeout_s = start_timeout_s

    def start(self) -> Self:
        repo = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "lab.onvif", "--config", str(self.config_path), "--bind", self.bind,
               "--port", str(self.port), "--parent-pid", str(os.getpid())]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                          env=env, start_new_session=True)
        line = self._read_line(self._start_timeout_s)
        if not line.startswith("READY "):
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise OnvifSimulatorError(f"ONVIF simulator did not start ({line or 'no READY line'}):\n{tail}")
        self.port = int(line.split()[1])
        return self

    def _read_line(self, timeout_s: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        fd, buffer = self._proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            buffer += chunk
        return buffer.split(b"\n", 1)[0].decode(errors="replace").strip()

    def stop(self, timeout_s: float | None = None) -> None:
        proc = self._proc
        super().stop(timeout_s)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()


async def _serve(config: Mapping[str, Any], bind: str, port: int, parent_pid: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with OnvifSimulator(config, hosts=[bind], port=port) as sim:
        print(f"READY {sim.port}", flush=True)
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # reparented: whoever started us is gone
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.onvif", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON file: {default: {...}, devices: {address: {...}}}")
    parser.add_argument("--bind", default="127.0.0.1", help="local address to listen on (0.0.0.0 = all)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--parent-pid", type=int, help="stop when this process is no longer our parent")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
        load_config(config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: bad config: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(config, args.bind, args.port, args.parent_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
