"""HTTP(S) check: is a platform's web page or interface answering as it should (aiohttp).

One GET per device and cycle to its URL: the point list's `url` (检测地址) or the URL template of
the last matching `overrides` entry (`url: "https://{host}/api/health"`, {host} = the device's
address). "Up" = the final answer (after redirects) has an expected status (`expect_status`,
default 200) and, when asked, its body contains `body_contains` and matches `body_regex`.

- Redirects (301, 302, 303, 307, 308) are followed by hand, at most `max_redirects`; a URL seen
  twice is a loop; only http(s) targets; credentials are not sent to another origin (RFC 9110
  §15.4).
- TLS: certificates verified by default (the system's CAs, or `ca_file`); `verify_tls: false`
  only checks that TLS answers. The certificate's days left are the `tls` probe's business.
- Hostile servers: ONE deadline (`timeout_s`) for the whole check, redirects and body included,
  so a server dripping bytes (slowloris) is cut like a silent one; the body is read up to
  `max_body_bytes` (the rest is not read: `truncated`), status line and headers are bounded by
  aiohttp (8 KiB lines, 128 headers), decompression is bounded per chunk by aiohttp.
- Credentials: Basic (RFC 7617) from `username` + `password_env`/`password_file` of an
  override; URLs with user:password@ are refused. Neither the password nor a URL's query ever
  appears in a reason or a log line.

Public API: `HttpConfig`, `HttpOverride`, `HttpProbe`, `MEASUREMENT`.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import re
import ssl
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import ConfigDict, Field, field_validator

from monitor.core.config_base import ResolvedSecret, SelectorConfig, Strict, WithSecrets, check_http_url
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Selector
from probes.base import FieldValue, ProbeResult

REDIRECTS = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 65536
USER_AGENT = "fleetmon"


def _check_template(template: str) -> str:
    """An http(s) URL template with {host} (the device's address) as its only placeholder;
    the message never echoes the template (a password may have been pasted into it)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        raise ValueError("url has unbalanced braces (write {{ and }} for literal ones)") from None
    if names - {"host"}:
        raise ValueError(f"url may only use the placeholder {{host}}, not {sorted(names - {'host'})}")
    check_http_url(template.format(host="198.18.0.1"))
    return template


StatusSpec = Annotated[int, Field(ge=100, le=599)] | Annotated[str, Field(pattern=r"^[1-5]xx$")]


class _CheckFields(WithSecrets):
    """What an override may change; None = keep the default's."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    secrets = ("password",)
    url: str | None = None
    """URL template for devices without a point-list url: "https://{host}/login"."""
    expect_status: list[StatusSpec] | None = None
    """Statuses that count as up: codes (200) or classes ("2xx")."""
    body_contains: Annotated[str, Field(min_length=1)] | None = None
    body_regex: Annotated[str, Field(min_length=1)] | None = None
    """A Python regular expression searched in the decoded body (re.search)."""
    verify_tls: bool | None = None
    max_redirects: Annotated[int, Field(ge=0, le=20)] | None = None
    username: Annotated[str, Field(min_length=1)] | None = None
    password_env: str | None = None
    password_file: Path | None = None
    password: ResolvedSecret = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else _check_template(url)

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"body_regex is not a regular expression: {exc}") from None
        return pattern


class HttpOverride(_CheckFields):
    """Changes for the devices `match` selects, applied in order (a later match wins)."""

    match: SelectorConfig


class HttpConfig(Strict):
    """probes.http in config.yaml. Devices are checked when they have a URL: the point list's
    `url`, or an override's `url` template."""

    # Errors must not echo an override's url into which someone pasted a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=5, le=86_400)] = 60.0
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Deadline of the whole check: connecting, TLS, every redirect, the body."""
    expect_status: list[StatusSpec] = [200]
    verify_tls: bool = True
    ca_file: Path | None = None
    """PEM file of further CAs to trust (a platform's own CA); the system's are trusted too."""
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 << 20)] = 1 << 20
    """Body bytes read at most (after decompression); body checks see only these."""
    overrides: list[HttpOverride] = []


MEASUREMENT = MeasurementSpec(
    "http",
    "One HTTP(S) check of a device's URL (point list `url` or an override's template).",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "expected status and body, within timeout_s"),
        "status_code": FieldSpec("integer", "", "HTTP status of the final answer (after redirects)"),
        "response_ms": FieldSpec("float", "ms", "start to the final answer's headers, redirects included"),
        "total_ms": FieldSpec("float", "ms", "start to the end of the body read"),
        "body_bytes": FieldSpec("integer", "bytes", "body bytes read (at most max_body_bytes)"),
        "truncated": FieldSpec("boolean", "", "the body was longer than max_body_bytes (the rest was not read)"),
        "redirects": FieldSpec("integer", "", "redirects followed"),
        "body_match": FieldSpec("boolean", "", "body_contains / body_regex found (only when configured)"),
    },
)


@dataclass(frozen=True, slots=True)
class _Check:
    """The effective check of one device."""

    url: str | None
    expect: tuple[int | str, ...]
    body_contains: str | None
    body_regex: re.Pattern[str] | None
    verify_tls: bool
    max_redirects: int
    auth: tuple[str, str] | None  # (username, password): Basic

    def expected(self, status: int) -> bool:
        return any(status == e if isinstance(e, int) else str(status)[0] == e[0] for e in self.expect)


class _Failed(Exception):
    """The check failed; the message is the reason."""


class HttpProbe:
    """The `http` probe (probes.base.Probe); see the module doc. Basis: service, since the
    platform's web front end or API answering as it should is what 服务在线 means for it, as
    ONVIF is for a camera; it polls only devices with a URL, so no camera's service basis
    changes and the contract's online (network and video by default) is untouched."""

    name: ClassVar[str] = "http"
    Config: ClassVar[type[HttpConfig]] = HttpConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (MEASUREMENT,)
    basis: ClassVar[Basis | None] = Basis.SERVICE
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: HttpConfig) -> None:
        self.cfg = cfg
        self._overrides: list[tuple[Selector, HttpOverride]] = [(o.match.selector(), o) for o in cfg.overrides]
        self._checks: dict[Device, _Check] = {}  # by the device itself: a reload brings new ones
        self._session: Any = None
        self._ssl: ssl.SSLContext | bool = True

    async def __aenter__(self) -> Self:
        import aiohttp

        context = ssl.create_default_context()
        if self.cfg.ca_file is not None:
            context.load_verify_locations(cafile=str(self.cfg.ca_file))
        self._ssl = context
        # force_close: a fresh connection each check (connect and TLS are part of what is
        # measured, and a fleet of idle keep-alive sockets is no use at 60 s intervals);
        # limit=0: the scheduler bounds the checks in flight.
        connector = aiohttp.TCPConnector(limit=0, force_close=True, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_for(self, device: Device) -> _Check:
        """The device's effective check: the defaults, then each matching override in order."""
        check = self._checks.get(device)
        if check is None:
            cfg = self.cfg
            template, expect, contains, regex = None, tuple(cfg.expect_status), None, None
            verify, redirects, auth = cfg.verify_tls, cfg.max_redirects, None
            for selector, o in self._overrides:
                if not selector.matches(device):
                    continue
                template = o.url if o.url is not None else template
                expect = tuple(o.expect_status) if o.expect_status is not None else expect
                contains = o.body_contains if o.body_contains is not None else contains
                regex = o.body_regex if o.body_regex is not None else regex
                verify = o.verify_tls if o.verify_tls is not None else verify
                redirects = o.max_redirects if o.max_redirects is not None else redirects
                if o.username is not None and o.password is not None:
                    auth = (o.username, o.password.get_secret_value())
            url = device.url
            if url is None and template is not None and device.address is not None:
                host = f"[{device.address}]" if device.address.version == 6 else str(device.address)
                url = template.format(host=host)
            check = _Check(url, expect, contains, re.compile(regex) if regex else None, verify, redirects, auth)
            self._checks[device] = check
        return check

    def wants(self, device: Device) -> bool:
        """Devices with a URL: the point list's, or an override's template (with an address)."""
        return self.check_for(device).url is not None

    def budget_s(self, device: Device) -> float:
        """The one deadline, plus 0.5 s to close the connection."""
        return self.cfg.timeout_s + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        """GET the device's URL (see the module doc). Never raises for a dead, slow or hostile
        server: ok=False with a reason."""
        started = time.time_ns()
        if self._session is None:
            raise RuntimeError("HttpProbe used outside `async with`")
        check = self.check_for(device)
        if check.url is None:
            return ProbeResult(device.id, self.name, started, False, "no URL", {"up": False})
        fields: dict[str, FieldValue] = {"up": False}
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                reason = await self._get(check, fields, t0)
        except TimeoutError:
            reason = f"timeout (no complete answer within {self.cfg.timeout_s:g} s)"
        except _Failed as exc:
            reason = str(exc)
        fields["up"] = reason is None
        return ProbeResult(device.id, self.name, started, reason is None, reason, fields)

    async def _get(self, check: _Check, fields: dict[str, FieldValue], t0: float) -> str | None:
        """Follow the URL to its final answer, read the body, judge; fills `fields`. Returns the
        reason of a failure or None. Raises _Failed for what ends the check early."""
        import aiohttp
        from yarl import URL

        url = URL(check.url, encoded=False)
        origin = url.origin()
        seen = {str(url)}
        for hop in range(check.max_redirects + 1):
            headers = {}
            if check.auth is not None and url.origin() == origin:
                headers["Authorization"] = "Basic " + base64.b64encode(":".join(check.auth).encode()).decode()
            try:
                response = await self._session.get(
                    url, allow_redirects=False, ssl=self._ssl if check.verify_tls else False, headers=headers,
                )
            except aiohttp.ClientError as exc:
                raise _Failed(_client_error(exc)) from None
            except ValueError:  # yarl/aiohttp refusing a malformed Location-made URL
                raise _Failed("malformed URL") from None
            async with response:
                fields["response_ms"] = round((time.perf_counter() - t0) * 1000, 3)
                if response.status in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise _Failed(f"HTTP {response.status} redirect without Location")
                    if hop == check.max_redirects:
                        fields["status_code"], fields["redirects"] = response.status, hop
                        raise _Failed(f"too many redirects (more than {check.max_redirects})")
                    try:
                        url = url.join(URL(location))
                    except ValueError:
                        raise _Failed("redirect to a malformed URL") from None
                    if url.scheme not in ("http", "https") or not url.host:
                        raise _Failed("redirect to a non-HTTP URL")
                    if str(url) in seen:
                        fields["status_code"], fields["redirects"] = response.status, hop + 1
                        raise _Failed("redirect loop")
                    seen.add(str(url))
                    continue
                fields["status_code"], fields["redirects"] = response.status, hop
                body, truncated = await _read_body(response, self.cfg.max_body_bytes)
                fields["total_ms"] = round((time.perf_counter() - t0) * 1000, 3)
                fields["body_bytes"], fields["truncated"] = len(body), truncated
                return _judge(check, response, body, fields)
        raise AssertionError("unreachable: the loop returns or raises")


async def _read_body(response: Any, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body and whether more was left unread."""
    import aiohttp

    body = bytearray()
    try:
        while len(body) < limit:
            chunk = await response.content.read(min(READ_CHUNK, limit - len(body)))
            if not chunk:
                return bytes(body), False
            body += chunk
        return bytes(body), not response.content.at_eof()
    except aiohttp.ClientError as exc:
        raise _Failed(_client_error(exc)) from None


def _judge(check: _Check, response: Any, body: bytes, fields: dict[str, FieldValue]) -> str | None:
    status = response.status
    if not check.expected(status):
        expected = ", ".join(str(e) for e in check.expect)
        return f"HTTP {status} (expected {expected})"
    if check.body_contains is None and check.body_regex is None:
        return None
    text = _decode(body, response.charset)
    found = (check.body_contains is None or check.body_contains in text) and (
        check.body_regex is None or check.body_regex.search(text) is not None
    )
    fields["body_match"] = found
    if found:
        return None
    return "body does not contain the expected text" if check.body_regex is None else "body does not match"


def _decode(body: bytes, charset: str | None) -> str:
    """The body as text: its declared charset, else UTF-8, else GB18030 (Chinese platforms
    that declare nothing serve GBK)."""
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return body.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    return body.decode("gb18030", errors="replace")


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "connect timed out",
}


def _client_error(exc: Exception) -> str:
    """A short reason for an aiohttp error; never a URL (its query may carry a key)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or "verify failed"
        return f"TLS certificate not trusted: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError) or isinstance(exc, aiohttp.ClientSSLError):
        inner = getattr(exc, "os_error", None) or exc
        detail = getattr(inner, "reason", None) or type(inner).__name__
        return f"TLS handshake failed: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _ERRNO_REASONS.get(exc.os_error.errno or 0, f"cannot connect: {exc.os_error.strerror or 'error'}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the server"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP response ({exc.message})" if exc.message else "malformed HTTP response"
    if isinstance(exc, aiohttp.ClientOSError):
        return _ERRNO_REASONS.get(exc.errno or 0, "connection error")
    return f"HTTP error: {type(exc).__name__}"


__all__ = ["HttpConfig", "HttpOverride", "HttpProbe", "MEASUREMENT"]
