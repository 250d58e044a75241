"""ONVIF probe (ONVIF Core and Media Service specifications, Profile S) on onvif-zeep-async 4.x.

One probe of one camera, each call bounded by `timeout_s`:

1. GetSystemDateAndTime (no credentials, ONVIF Core §8.3.12; with them if the device insists):
   the device clock against ours, corrected by half the round trip → clock_offset_s. The offset
   shifts the WS-Security `Created` time of every later call (onvif-zeep-async's dt_diff), so a
   camera whose clock drifted still accepts us: cameras refuse a Created outside ±5 min of
   *their* clock (OASIS WSS UsernameToken Profile 1.0 §3.1).
2. GetDeviceInformation (WS-Security UsernameToken, PasswordDigest): manufacturer, model,
   firmware, serial; compared with the point list → inventory_mismatch. Answered = `up`.
3. update_xaddrs (GetServices, else GetCapabilities), GetProfiles, GetStreamUri of the first
   profile (RTP-Unicast over RTSP) → profiles, stream_uri (user:password@ removed). Failures
   here leave `up` true and the fields out (the device answered authenticated).

Safety against hostile or broken devices: every response is read through a transport that
stops at `max_response_bytes` and checks it is well-formed XML without a DTD or entities (a
strict lxml parse, no network, no entity resolution, no huge trees) before zeep sees it; zeep
itself runs with forbid_dtd/forbid_entities and without huge trees. Each call has an overall
deadline (asyncio.timeout), so a server dripping one byte per second is cut like a silent one.
Service addresses the device advertises are pinned to its own address (port and path kept):
a device must not steer our credentials elsewhere.

Cost: an ONVIFCamera (two aiohttp sessions, two zeep clients per service) is made per probe
and closed after it, so memory stays bounded by the probes running at once, not by the fleet;
the parsed WSDLs are cached by onvif-zeep-async for the whole process. zeep costs 7–15 ms of
CPU per probe in long synchronous stretches, so the probes run on an event loop of their own
thread (_Worker), never on the daemon's; the media calls (half the cost) are made at most every
`media_refresh_s` per camera.

Public API: `OnvifConfig`, `OnvifCredentials` (config models, probes.onvif in config.yaml),
`OnvifProbe` (probes.base.Probe), `MEASUREMENT`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Awaitable, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from lxml import etree
from pydantic import Field, SecretStr, model_validator

from monitor.config_base import SelectorConfig, Strict, read_secret, refuse_inline_secrets
from monitor.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.model import Device, Kind, Selector
from probes.base import ProbeResult

# onvif.client calls logging.basicConfig(level=INFO) at import; the daemon owns logging.
_root = logging.getLogger()
_root_handlers, _root_level = list(_root.handlers), _root.level
import zeep.exceptions  # noqa: E402
from onvif import ONVIFCamera  # noqa: E402
from onvif.client import AsyncTransportProtocolErrorHandler, ONVIFService  # noqa: E402
from onvif.exceptions import ONVIFError  # noqa: E402
from zeep.settings import Settings  # noqa: E402

_root.handlers[:] = _root_handlers
_root.setLevel(_root_level)

log = logging.getLogger("fleetmon.onvif")

NS_TER = "http://www.onvif.org/ver10/error"
NS_ENVELOPES = ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/")
MAX_CALLS = 7
"""Most calls in one probe: GetSystemDateAndTime ×2 (without, then with credentials),
GetDeviceInformation, GetServices, GetCapabilities (fallback), GetProfiles, GetStreamUri."""
MAX_TEXT = 128
"""Longest device-supplied string kept (manufacturer, fault text …); hostile devices send more."""


class OnvifCredentials(Strict):
    """Credentials for the devices `match` selects (overrides the defaults; a later match wins)."""

    match: SelectorConfig
    username: str
    password_env: str | None = None
    password_file: Path | None = None

    # Resolved at load time from password_env / password_file; never part of the YAML.
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: object) -> object:
        return refuse_inline_secrets(data, "password")

    @model_validator(mode="after")
    def _resolve(self) -> "OnvifCredentials":
        _resolve_password(self)
        if self.password is None:
            raise ValueError("credentials need password_env or password_file")
        return self


class OnvifConfig(Strict):
    enabled: bool = True
    interval_s: Annotated[float, Field(ge=10, le=86_400)] = 300.0
    """Probe cycle: every camera is asked once per interval."""
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    """Devices probed (those with an address)."""
    port: Annotated[int, Field(ge=1, le=65_535)] = 80
    """HTTP port of the device service (/onvif/device_service)."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Deadline of each SOAP call, whole response included."""
    username: str | None = None
    """Default account; with password_env or password_file. Without one, only the clock is read."""
    password_env: str | None = None
    password_file: Path | None = None
    credentials: list[OnvifCredentials] = []
    """Per-selector accounts, applied in order; a later match wins."""
    max_response_bytes: Annotated[int, Field(ge=16_384, le=64 << 20)] = 1 << 20
    """Longest response read (decompressed); a longer one fails the probe."""
    media_refresh_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 3600.0
    """GetServices, GetProfiles and GetStreamUri at most this often per camera (0: every probe):
    stream URIs rarely change, and these calls are half of a probe's cost."""

    # Resolved at load time from password_env / password_file; never part of the YAML.
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: object) -> object:
        return refuse_inline_secrets(data, "password")

    @model_validator(mode="after")
    def _resolve(self) -> "OnvifConfig":
        _resolve_password(self)
        if (self.username is None) != (self.password is None):
            raise ValueError("give username together with password_env or password_file")
        return self


def _resolve_password(model: OnvifConfig | OnvifCredentials) -> None:
    if model.password_env and model.password_file:
        raise ValueError("give the password either as password_env or as password_file, not both")
    object.__setattr__(model, "password", read_secret(model.password_env, model.password_file, "password"))


MEASUREMENT = MeasurementSpec(
    "onvif",
    "One ONVIF probe of one camera: clock, device information (vs the point list), first media profile.",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "GetDeviceInformation answered with our credentials"),
        "response_ms": FieldSpec("float", "ms", "duration of the whole probe (all calls)"),
        "clock_offset_s": FieldSpec(
            "float", "s", "device UTC clock − fleetmon's, corrected by half the round trip (signed; ±0.5 s)"
        ),
        "clock_drift_s": FieldSpec("float", "s", "|clock_offset_s|"),
        "manufacturer": FieldSpec("string", "", "GetDeviceInformation Manufacturer"),
        "model": FieldSpec("string", "", "GetDeviceInformation Model"),
        "firmware": FieldSpec("string", "", "GetDeviceInformation FirmwareVersion"),
        "serial": FieldSpec("string", "", "GetDeviceInformation SerialNumber"),
        "inventory_mismatch": FieldSpec(
            "string", "", "'' or 'field: device value ≠ point-list value (点位表)', '; '-separated"
        ),
        "profiles": FieldSpec("integer", "", "media profiles (GetProfiles)"),
        "stream_uri": FieldSpec("string", "", "RTSP URI of the first profile, without user:password@"),
    },
)


# ---------------------------------------------------------------------------------------------
# Transport and camera: onvif-zeep-async with bounded, checked responses.


class ResponseRefused(Exception):
    """A response the probe will not hand to zeep; str() is the reason."""


_SAFE_SETTINGS = Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True,
                          forbid_external=True)
# strict=False as onvif-zeep-async has it: cameras' responses often bend the schema.
_CHECK_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False)


def check_response(content: bytes) -> None:
    """Raise ResponseRefused unless `content` is well-formed XML with a SOAP envelope root and
    no DTD (hence no entities)."""
    try:
        root = etree.fromstring(content, etree.XMLParser(**_CHECK_PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        if b"<!DOCTYPE" in content[:4096] or b"<!ENTITY" in content[:4096]:
            raise ResponseRefused("XML with DTD/entities refused") from None
        raise ResponseRefused("malformed XML") from None
    if root.getroottree().docinfo.doctype or root.getroottree().docinfo.internalDTD is not None:
        raise ResponseRefused("XML with DTD/entities refused")
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace not in NS_ENVELOPES:
        raise ResponseRefused("not a SOAP response")


class _BoundedTransport(AsyncTransportProtocolErrorHandler):
    """onvif-zeep-async's transport (retry once on a dropped keep-alive connection) reading at
    most `max_bytes` of each response and checking it (check_response) before zeep parses it."""

    def __init__(self, session: aiohttp.ClientSession, max_bytes: int, timeout_s: float) -> None:
        super().__init__(session=session, verify_ssl=False, cache=None)
        self.max_bytes = max_bytes
        self._client_timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _post_internal(self, address: str, message: str | bytes,
                             headers: dict[str, str]) -> tuple[aiohttp.ClientResponse, bytes]:
        # Like AIOHTTPTransport._post_internal, minus its debug log of the message (which holds
        # the WS-Security digest and nonce), plus the size limit and the check.
        headers = headers or {}
        headers.setdefault("Content-Type", 'application/soap+xml; charset="utf-8"')
        data = message.encode("utf-8") if isinstance(message, str) else message
        response = await self.session.post(address, data=data, headers=headers, timeout=self._client_timeout)
        try:
            if response.content_length is not None and response.content_length > self.max_bytes:
                raise ResponseRefused(f"response too large (> {self.max_bytes} bytes)")
            chunks, size = [], 0
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ResponseRefused(f"response too large (> {self.max_bytes} bytes)")
                chunks.append(chunk)
        except BaseException:
            response.close()  # drop the connection: the rest of the body is not wanted
            raise
        response.release()
        content = b"".join(chunks)
        try:
            check_response(content)
        except ResponseRefused as refused:
            if response.status == 200 or "DTD" in str(refused):
                raise
            # An error page, not a SOAP fault: say what HTTP said (ONVIF switched off, HTTP auth).
            raise ResponseRefused(http_reason(response.status)) from None
        return response, content


def http_reason(status: int) -> str:
    """Reason for an HTTP error status that came without a SOAP answer."""
    if status == 401:
        return "HTTP 401 Unauthorized (device wants HTTP authentication)"
    if status == 404:
        return "HTTP 404 Not Found (ONVIF service not enabled?)"
    return f"HTTP {status} without SOAP answer"


class _Camera(ONVIFCamera):
    """ONVIFCamera whose services use _BoundedTransport and safe zeep settings, sign with the
    measured clock offset, and only talk to the device's own address."""

    def __init__(self, host: str, port: int, username: str | None, password: str | None,
                 max_bytes: int, timeout_s: float) -> None:
        # ONVIFCamera.__init__ deletes http(s)_proxy from the environment of the whole process.
        saved = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
        super().__init__(host, port, username, password, no_cache=True)
        os.environ.update(saved)
        self._max_bytes, self._timeout_s = max_bytes, timeout_s
        self.clock_offset: dt.timedelta | None = None

    async def create_onvif_service(self, name: str, port_type: str | None = None,
                                   read_timeout: int | None = None, write_timeout: int | None = None) -> ONVIFService:
        service = await super().create_onvif_service(name, port_type, read_timeout, write_timeout)
        if not isinstance(service.transport, _BoundedTransport):
            transport = _BoundedTransport(service._session, self._max_bytes, self._timeout_s)
            service.transport = transport
            for client in (service.zeep_client, service.zeep_client_authless):
                client.transport, client.settings = transport, _SAFE_SETTINGS
            if self.user is None:
                service.zeep_client.wsse = None  # no account: send no UsernameToken at all
            else:
                service.zeep_client.wsse.dt_diff = self.clock_offset
        return service

    def set_clock_offset(self, offset: dt.timedelta) -> None:
        """Sign every later call (existing services too) with our clock + offset."""
        self.clock_offset = offset
        for service in self.services.values():
            if service.zeep_client is not None and service.zeep_client.wsse is not None:
                service.zeep_client.wsse.dt_diff = offset

    def pin_xaddrs(self) -> None:
        """Point every advertised service address at the device's own address (port and path
        kept): a hostile device must not send our signed requests to another host."""
        for namespace, xaddr in list(self.xaddrs.items()):
            parts = urlsplit(xaddr)
            host = f"[{self.host}]" if ":" in self.host else self.host
            netloc = f"{host}:{parts.port}" if parts.port else host
            self.xaddrs[namespace] = urlunsplit(("http", netloc, parts.path, parts.query, ""))


# ---------------------------------------------------------------------------------------------
# Reasons.

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _text(value: object) -> str:
    """A device-supplied value as a short, single-line string."""
    return _CONTROL.sub(" ", str(value if value is not None else "")).strip()[:MAX_TEXT]


def _fault_code(fault: zeep.exceptions.Fault) -> str:
    """The most specific code of a SOAP fault: its innermost ONVIF subcode (ter:…), else the
    code (env:Sender …)."""
    for qname in reversed(fault.subcodes or []):
        prefix = "ter:" if qname.namespace == NS_TER else ""
        return f"{prefix}{_text(qname.localname)}"
    return _text(fault.code or "unknown")


_ERRNO = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "timeout",
}


def reason_of(exc: BaseException, has_credentials: bool) -> str | None:
    """Short English reason for an exception of a SOAP call, or None when it is none of the
    failures a device can cause (a bug, to be raised). Never includes credentials."""
    if isinstance(exc, ONVIFError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, ResponseRefused):
        return str(exc)
    if isinstance(exc, (zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden)):
        return "XML with DTD/entities refused"
    if isinstance(exc, zeep.exceptions.Fault):
        code = _fault_code(exc)
        if code == "ter:NotAuthorized":
            return "401 NotAuthorized (" + ("wrong credentials)" if has_credentials else "no credentials configured)")
        return f"SOAP fault: {code}: {_text(exc.message)}"
    if isinstance(exc, zeep.exceptions.TransportError):
        return http_reason(exc.status_code) if exc.status_code else "malformed XML"
    if isinstance(exc, zeep.exceptions.Error):  # validation, lookup: answers zeep cannot read
        return "unexpected SOAP response"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _ERRNO.get(exc.os_error.errno or 0, "connection failed")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by device"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP protocol error ({exc.status})" if exc.status else "HTTP protocol error"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "HTTP protocol error"
    if isinstance(exc, aiohttp.ClientError):
        return "connection failed"
    if isinstance(exc, OSError):
        return _ERRNO.get(exc.errno or 0, "connection failed")
    return None


class _CallFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# The probe.


def strip_userinfo(uri: str) -> str:
    """`uri` without user:password@ (cameras put their credentials in stream URIs)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


_INVENTORY = ("manufacturer", "model", "firmware", "serial")
# Point lists name brands in Chinese, devices report them in English over ONVIF.
_BRANDS = {
    "海康": "hikvision", "海康威视": "hikvision", "大华": "dahua", "浙江大华": "dahua", "宇视": "uniview",
    "华为": "huawei", "天地伟业": "tiandy", "科达": "kedacom", "萤石": "ezviz", "中维世纪": "jovision",
}


def _same(field: str, value: str, listed: str) -> bool:
    value, listed = value.strip().casefold(), listed.strip().casefold()
    if field == "manufacturer":
        value, listed = _BRANDS.get(value, value), _BRANDS.get(listed, listed)
    return value == listed


def inventory_mismatch(device: Device, reported: dict[str, str]) -> str:
    """'' when what the device reports agrees with the point list (trimmed, case-insensitive,
    Chinese brand names equal to their English ones, fields the point list leaves empty
    ignored), else e.g. 'firmware: V5.5.0 ≠ V5.7.1 (点位表)' (device value first),
    '; '-separated in a fixed order."""
    out = []
    for field in _INVENTORY:
        listed = (getattr(device, field) or "").strip()
        value = reported.get(field, "")
        if listed and not _same(field, value, listed):
            out.append(f"{field}: {value[:40]} ≠ {listed[:40]} (点位表)")
    return "; ".join(out)


class _Worker:
    """An event loop on a thread of its own for onvif-zeep-async. Building zeep clients and
    parsing SOAP costs about 15 ms of CPU per camera in long synchronous stretches (measured:
    event-loop stalls of several seconds with 1,850 cameras); on the daemon's loop that delays
    every ICMP reply and makes healthy links look dead. Here the interpreter switches threads
    every few ms (sys.getswitchinterval), so the daemon's loop keeps its pace."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="onvif", daemon=True)
        self._thread.start()

    async def run(self, coro: Awaitable[_T]) -> _T:
        """Run `coro` on the worker's loop; cancelling the caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        """Cancel what still runs there, stop the loop, join the thread (blocking)."""
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


class OnvifProbe:
    """The `onvif` probe (probes.base.Probe); see the module doc for the calls and the fields."""

    name: ClassVar[str] = "onvif"
    Config: ClassVar[type[OnvifConfig]] = OnvifConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (MEASUREMENT,)

    def __init__(self, cfg: OnvifConfig) -> None:
        self.cfg = cfg
        self._match = cfg.match.selector()
        self._overrides: list[tuple[Selector, OnvifCredentials]] = [(c.match.selector(), c) for c in cfg.credentials]
        self._accounts: dict[tuple, tuple[str, SecretStr] | None] = {}
        self._media_due: dict[str, float] = {}  # device id → monotonic time of its next media read

    async def __aenter__(self) -> "OnvifProbe":
        self._worker = _Worker()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._worker.stop)

    def wants(self, device: Device) -> bool:
        """Devices the config's `match` selects (cameras by default) that have an address and
        credentials: without them every probe would fail alike and the service online rate
        would read 0 % on a fleet whose ONVIF was simply not configured."""
        return device.address is not None and self._match.matches(device) and self.account(device) is not None

    def budget_s(self, device: Device) -> float:
        """Worst case of probe(): MAX_CALLS calls of timeout_s each, plus closing."""
        return MAX_CALLS * self.cfg.timeout_s + 0.5

    def account(self, device: Device) -> tuple[str, SecretStr] | None:
        """(username, password) for `device`: the defaults, then the last matching override."""
        key = (device.region, device.site, device.kind, device.tags)
        if key not in self._accounts:
            account = (self.cfg.username, self.cfg.password) if self.cfg.username and self.cfg.password else None
            for selector, creds in self._overrides:
                if selector.matches(device) and creds.password is not None:
                    account = (creds.username, creds.password)
            self._accounts[key] = account
        return self._accounts[key]

    async def _call(self, awaitable: Awaitable[_T], has_credentials: bool) -> _T:
        """One SOAP call under the per-call deadline; device failures become _CallFailed."""
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                return await awaitable
        except Exception as exc:  # CancelledError (the caller's budget) is not an Exception
            reason = reason_of(exc, has_credentials)
            if reason is None:
                raise
            raise _CallFailed(reason) from None

    async def probe(self, device: Device) -> ProbeResult:
        """Ask the camera (see the module doc). Never raises for a dead, slow, hostile or
        misconfigured device: ok=False with a reason. Runs on the probe's own thread (_Worker);
        cancelling it cancels the probe there."""
        return await self._worker.run(self._probe(device))

    async def _probe(self, device: Device) -> ProbeResult:
        started = time.time_ns()
        if device.address is None:
            return ProbeResult(device.id, self.name, started, False, "no address", {"up": False})
        account = self.account(device)
        user, password = (account[0], account[1].get_secret_value()) if account else (None, None)
        fields: dict[str, Any] = {"up": False}
        t0 = time.monotonic()
        camera = _Camera(str(device.address), self.cfg.port, user, password, self.cfg.max_response_bytes,
                         self.cfg.timeout_s)
        try:
            reason = await self._run(camera, device, fields, account is not None)
        finally:
            fields["response_ms"] = round((time.monotonic() - t0) * 1000, 3)
            await camera.close()
        return ProbeResult(device.id, self.name, started, reason is None, reason, fields)

    async def _run(self, camera: _Camera, device: Device, fields: dict[str, Any], has_credentials: bool) -> str | None:
        call = self._call
        try:
            devicemgmt = await camera.create_devicemgmt_service()
            await self._read_clock(camera, devicemgmt, fields, has_credentials)
            info = await call(devicemgmt.GetDeviceInformation(), has_credentials)
        except _CallFailed as failed:
            return failed.reason
        fields["up"] = True
        reported = {
            "manufacturer": _text(info.Manufacturer), "model": _text(info.Model),
            "firmware": _text(info.FirmwareVersion), "serial": _text(info.SerialNumber),
        }
        fields.update({k: v for k, v in reported.items() if v})
        fields["inventory_mismatch"] = inventory_mismatch(device, reported)
        if time.monotonic() < self._media_due.get(device.id, 0.0):
            return None
        try:
            await call(camera.update_xaddrs(), has_credentials)
            camera.pin_xaddrs()
            media = await camera.create_media_service()
            profiles = await call(media.GetProfiles(), has_credentials) or []
            fields["profiles"] = len(profiles)
            if profiles:
                setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
                answer = await call(media.GetStreamUri({"StreamSetup": setup, "ProfileToken": profiles[0].token}),
                                    has_credentials)
                uri = _text(strip_userinfo(str(answer.Uri or ""))) if answer is not None else ""
                if uri:
                    fields["stream_uri"] = uri
            self._media_due[device.id] = time.monotonic() + self.cfg.media_refresh_s
        except (_CallFailed, ONVIFError) as failed:
            # The device is up (it answered GetDeviceInformation); its media part is not.
            log.debug("%s: media service: %s", device.id, getattr(failed, "reason", "not offered"))
        return None

    async def _read_clock(self, camera: _Camera, devicemgmt: ONVIFService, fields: dict[str, Any],
                          has_credentials: bool) -> None:
        """clock_offset_s from GetSystemDateAndTime (without credentials; with them on a
        fault) and the camera signs later calls with it. A device that faults both ways or has
        no UTCDateTime leaves the fields out; transport failures end the probe (_CallFailed)."""
        for attempt in (devicemgmt.authless_GetSystemDateAndTime, devicemgmt.GetSystemDateAndTime):
            sent_wall, sent = time.time(), time.monotonic()
            try:
                answer = await self._call(attempt(), has_credentials)
                break
            except _CallFailed as failed:
                if not failed.reason.startswith(("SOAP fault", "401 NotAuthorized")):
                    raise
        else:
            return
        rtt = time.monotonic() - sent
        utc = getattr(answer, "UTCDateTime", None)
        try:
            device_time = dt.datetime(utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute,
                                      utc.Time.Second, tzinfo=dt.timezone.utc).timestamp()
        except (AttributeError, TypeError, ValueError, OverflowError):
            return  # no or nonsensical UTCDateTime (ONVIF < 2.0 devices may only give local time)
        # tt:DateTime has whole seconds: the device read its clock somewhere in
        # [device_time, device_time + 1), best guess the middle, at our midpoint of the call.
        offset = device_time + 0.5 - (sent_wall + rtt / 2)
        fields["clock_offset_s"] = round(offset, 3)
        fields["clock_drift_s"] = round(abs(offset), 3)
        camera.set_clock_offset(dt.timedelta(seconds=offset))
