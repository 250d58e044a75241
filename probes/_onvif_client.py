"""The part of the ONVIF probe that needs zeep and onvif-zeep-async: the checked transport, the
camera, the reasons of failures and one probe of one camera (probe_camera). The calls, the fields
and the safety rules are described in probes/onvif.py.

Private to probes.onvif, which imports it only in OnvifProbe.__aenter__: these libraries cost
about 8 MB of RSS, which a daemon that does not run the ONVIF probe must not pay. What it shares
with probes.onvif is in probes/onvif_model.py: it imports nothing back from probes.onvif.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import os
import re
import time
from typing import Any, Awaitable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from lxml import etree
from pydantic import SecretStr

from monitor.core.model import Device
from probes.base import ProbeResult
from probes.onvif_model import (
    PROBE_NAME, OnvifConfig, inventory_mismatch, pick_analysis_profile, profile_size, rtsp_uri, strip_userinfo,
)

# onvif.client calls logging.basicConfig(level=INFO) at import; the daemon owns logging.
_root = logging.getLogger()
_root_handlers, _root_level = list(_root.handlers), _root.level
import onvif.client  # noqa: E402
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
MAX_TEXT = 128
"""Longest device-supplied string kept (manufacturer, fault text …); hostile devices send more."""


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


class _Service(ONVIFService):
    """ONVIFService that closes its aiohttp session when setup() does not finish.

    onvif-zeep-async opens a service's session in __init__ but registers the service with its
    camera (whose close() closes it) only after setup(), which parses the service's WSDL in a
    thread the first time: a probe cancelled in between (a daemon stopped or reloaded within
    its first seconds) leaked the session ("Unclosed client session" at exit)."""

    async def setup(self) -> None:
        try:
            await super().setup()
        except BaseException:
            await self.close()
            raise


# The library makes its services by this module-level name (ONVIFCamera.create_onvif_service);
# only this probe uses the library in fleetmon, and only through OnvifDevice.
onvif.client.ONVIFService = _Service


class OnvifDevice(ONVIFCamera):
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


class CallFailed(Exception):
    """A SOAP call failed; `reason` says why in one line (reason_of)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# One probe of one camera.


async def probe_camera(cfg: OnvifConfig, device: Device, account: tuple[str, SecretStr] | None,
                       media_due: dict[str, float]) -> ProbeResult:
    """Ask the camera (see probes/onvif.py) with `account` (OnvifProbe.account). `media_due` maps
    device ids to the monotonic time of their next media read; updated here. Never raises for a
    dead, slow, hostile or misconfigured device: ok=False with a reason."""
    started = time.time_ns()
    if device.address is None:
        return ProbeResult(device.id, PROBE_NAME, started, False, "no address", {"up": False})
    user, password = (account[0], account[1].get_secret_value()) if account else (None, None)
    fields: dict[str, Any] = {"up": False}
    t0 = time.monotonic()
    camera = OnvifDevice(str(device.address), cfg.port, user, password, cfg.max_response_bytes, cfg.timeout_s)
    try:
        reason = await _run(cfg, camera, device, fields, account is not None, media_due)
    finally:
        fields["response_ms"] = round((time.monotonic() - t0) * 1000, 3)
        await camera.close()
    return ProbeResult(device.id, PROBE_NAME, started, reason is None, reason, fields)


async def bounded_call(awaitable: Awaitable[_T], timeout_s: float, has_credentials: bool) -> _T:
    """One SOAP call under the per-call deadline; device failures become CallFailed."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except Exception as exc:  # CancelledError (the caller's budget) is not an Exception
        reason = reason_of(exc, has_credentials)
        if reason is None:
            raise
        raise CallFailed(reason) from None


async def _run(cfg: OnvifConfig, camera: OnvifDevice, device: Device, fields: dict[str, Any], has_credentials: bool,
               media_due: dict[str, float]) -> str | None:
    def call(awaitable: Awaitable[_T]) -> Awaitable[_T]:
        return bounded_call(awaitable, cfg.timeout_s, has_credentials)

    try:
        devicemgmt = await camera.create_devicemgmt_service()
        await read_clock(camera, devicemgmt, fields, cfg.timeout_s, has_credentials)
        info = await call(devicemgmt.GetDeviceInformation())
    except CallFailed as failed:
        return failed.reason
    fields["up"] = True
    reported = {
        "manufacturer": _text(info.Manufacturer), "model": _text(info.Model),
        "firmware": _text(info.FirmwareVersion), "serial": _text(info.SerialNumber),
    }
    fields.update({k: v for k, v in reported.items() if v})
    fields["inventory_mismatch"] = inventory_mismatch(device, reported)
    if time.monotonic() < media_due.get(device.id, 0.0):
        return None
    try:
        await call(camera.update_xaddrs())
        camera.pin_xaddrs()
        media = await camera.create_media_service()
        profiles = await call(media.GetProfiles()) or []
        fields["profiles"] = len(profiles)
        if profiles:
            setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            answer = await call(media.GetStreamUri({"StreamSetup": setup, "ProfileToken": profiles[0].token}))
            uri = _text(strip_userinfo(str(answer.Uri or ""))) if answer is not None else ""
            if uri:
                fields["stream_uri"] = uri
            sub = await _sub_stream_uri(call, media, profiles, setup)
            if sub or rtsp_uri(uri):
                fields["sub_stream_uri"] = sub or rtsp_uri(uri)
        media_due[device.id] = time.monotonic() + cfg.media_refresh_s
    except (CallFailed, ONVIFError) as failed:
        # The device is up (it answered GetDeviceInformation); its media part is not.
        log.debug("%s: media service: %s", device.id, getattr(failed, "reason", "not offered"))
    return None


async def _sub_stream_uri(call: Any, media: ONVIFService, profiles: list[Any], setup: dict[str, Any]) -> str:
    """The RTSP URI of the profile the frame check prefers (pick_analysis_profile: the
    smallest at least 480 px wide), or "" when that is the first profile (its URI is the
    main one, no second call) or the camera's answer is a fault or not an rtsp:// URL: the
    caller then offers the main stream's."""
    index = pick_analysis_profile([profile_size(p) for p in profiles])
    if index == 0:
        return ""
    try:
        answer = await call(media.GetStreamUri({"StreamSetup": setup, "ProfileToken": profiles[index].token}))
    except CallFailed as failed:
        log.debug("sub-stream URI: %s", failed.reason)
        return ""
    return rtsp_uri(_text(answer.Uri or "")) if answer is not None else ""


async def read_clock(camera: OnvifDevice, devicemgmt: ONVIFService, fields: dict[str, Any], timeout_s: float,
                      has_credentials: bool) -> None:
    """clock_offset_s from GetSystemDateAndTime (without credentials; with them on a
    fault) and the camera signs later calls with it. A device that faults both ways or has
    no UTCDateTime leaves the fields out; transport failures end the probe (CallFailed)."""
    for attempt in (devicemgmt.authless_GetSystemDateAndTime, devicemgmt.GetSystemDateAndTime):
        sent_wall, sent = time.time(), time.monotonic()
        try:
            answer = await bounded_call(attempt(), timeout_s, has_credentials)
            break
        except CallFailed as failed:
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
