"""TLS certificate check: how many days until the certificate of a TLS service runs out
(到期前1个月提醒, CONTRACTS.md D), who issued it, whether its chain verifies and whether it
names the host it serves. Any implicit-TLS service: HTTPS (443, 8443), SMTPS (465), IMAPS
(993), LDAPS (636), an NVR's HTTPS. STARTTLS (SMTP on 25/587) is not spoken.

Endpoints per device: its point-list `url` when it is https:// (that host and port, the URL's
host as server name: SNI and the name checked), unless `from_urls: false`; plus the ports of
every matching `checks` entry at the device's address (server name: the entry's
`server_name`, else the url's host, else the address). All endpoints at once.

Per endpoint: a handshake that verifies the chain against the system's CAs (and `ca_file`);
when it fails verification, a second one without verification reads the certificate anyway
(an expired or self-signed certificate still has a date). The certificate (DER) is parsed with
`cryptography`. The name is checked by fleetmon (RFC 6125 §6.4: DNS subjectAltNames, a
wildcard only as the whole left-most label; IP addresses against IP subjectAltNames; the
subject CN only when the certificate has no DNS or IP subjectAltName, as NVRs' self-signed
certificates often do). Each connection is bounded by `timeout_s`, so a silent or dripping
server is cut; a peer that speaks no TLS fails the handshake.

Results: fields of `tls` (up: every endpoint gave its certificate; min_days_left) and one
`tls_certificate` series per endpoint (tag `endpoint`: host:port): days_left, not_after,
issuer, subject, san, chain_verified, hostname_match, verify_error, tls_version,
handshake_ms. The rules `tls_expiry` and `tls_untrusted` (rules/families/platform.py) judge them.

Public API: `TlsConfig`, `TlsCheck`, `TlsProbe`, `MEASUREMENTS`, `hostname_matches`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import ipaddress
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterable, Self
from urllib.parse import urlsplit

from pydantic import Field

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Selector
from probes.base import FieldValue, ProbeResult, Series

Port = Annotated[int, Field(ge=1, le=65_535)]
MAX_TEXT = 300  # issuer, subject, SAN list: a hostile certificate must not bloat the metrics


class TlsCheck(Strict):
    """TLS ports of the devices `match` selects."""

    match: SelectorConfig
    ports: Annotated[list[Port], Field(min_length=1, max_length=16)] = [443]
    server_name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """SNI and the name the certificate must carry; default: the device's url host, else its address."""


class TlsConfig(Strict):
    """probes.tls in config.yaml."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=60, le=7 * 86_400)] = 3600.0
    """Certificates change rarely: hourly is plenty for a reminder a month ahead."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Deadline of each connection (TCP and handshake)."""
    from_urls: bool = True
    """Check the certificate of every device whose point-list url is https://."""
    ca_file: Path | None = None
    """PEM file of further CAs to trust (a platform's own CA)."""
    checks: list[TlsCheck] = []


MEASUREMENTS = (
    MeasurementSpec("tls", "One TLS certificate check of a device (every endpoint).", DEVICE_TAGS, {
        "up": FieldSpec("boolean", "", "every endpoint completed a handshake and gave its certificate"),
        "endpoints": FieldSpec("integer", "", "endpoints checked"),
        "min_days_left": FieldSpec("float", "d", "the soonest expiry among the endpoints, in days (negative: expired)"),
    }),
    MeasurementSpec("tls_certificate", "The certificate of one TLS endpoint.",
                    {**DEVICE_TAGS, "endpoint": "host:port checked"}, {
        "up": FieldSpec("boolean", "", "the handshake completed and the certificate was read"),
        "days_left": FieldSpec("float", "d", "notAfter − now in days (negative: expired)"),
        "not_after": FieldSpec("string", "", "notAfter, ISO 8601 UTC"),
        "issuer": FieldSpec("string", "", "issuer DN (RFC 4514), at most 300 characters"),
        "subject": FieldSpec("string", "", "subject DN (RFC 4514), at most 300 characters"),
        "san": FieldSpec("string", "", "DNS and IP subjectAltNames, comma-separated, at most 300 characters"),
        "chain_verified": FieldSpec("boolean", "", "the chain verifies against the trusted CAs (dates included)"),
        "hostname_match": FieldSpec("boolean", "", "the certificate names the server name (RFC 6125)"),
        "verify_error": FieldSpec("string", "", "why the chain did not verify (OpenSSL's words); '' when it did"),
        "tls_version": FieldSpec("string", "", "negotiated protocol (TLSv1.3 …)"),
        "handshake_ms": FieldSpec("float", "ms", "TCP connect and TLS handshake of the first connection"),
    }),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # where to connect (a name or an address)
    port: int
    server_name: str  # SNI (not sent for an address) and the name checked

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Failed(Exception):
    """The endpoint gave no certificate; the message is the reason."""


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
}


class TlsProbe:
    """The `tls` probe (probes.base.Probe); see the module doc. Basis: none. A certificate
    running out is a value for the rules (`tls_expiry`), not an outage: the service answers
    until the day it expires, and its availability is the `http` or `tcp` check's."""

    name: ClassVar[str] = "tls"
    Config: ClassVar[type[TlsConfig]] = TlsConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = MEASUREMENTS
    basis: ClassVar[Basis | None] = None
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TlsConfig) -> None:
        self.cfg = cfg
        self._checks: list[tuple[Selector, TlsCheck]] = [(c.match.selector(), c) for c in cfg.checks]
        self._endpoints: dict[Device, tuple[Endpoint, ...]] = {}
        self._verified: ssl.SSLContext | None = None
        self._unverified: ssl.SSLContext | None = None

    async def __aenter__(self) -> Self:
        verified = ssl.create_default_context()
        if self.cfg.ca_file is not None:
            verified.load_verify_locations(cafile=str(self.cfg.ca_file))
        verified.check_hostname = False  # the name is checked by hostname_matches, reported apart
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        # Old NVRs and platforms serve TLS 1.0 and small keys: read their certificates too.
        unverified.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        unverified.set_ciphers("DEFAULT:@SECLEVEL=0")
        self._verified, self._unverified = verified, unverified
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._verified = self._unverified = None

    def endpoints_for(self, device: Device) -> tuple[Endpoint, ...]:
        """The device's endpoints (see the module doc), each host:port once."""
        found = self._endpoints.get(device)
        if found is None:
            url_host = None
            out: dict[tuple[str, int], Endpoint] = {}
            if device.url:
                parts = urlsplit(device.url)
                url_host = parts.hostname
                if self.cfg.from_urls and parts.scheme.lower() == "https" and url_host:
                    out[(url_host, parts.port or 443)] = Endpoint(url_host, parts.port or 443, url_host)
            if device.address is not None:
                address = str(device.address)
                for selector, check in self._checks:
                    if selector.matches(device):
                        name = check.server_name or url_host or address
                        for port in check.ports:
                            out.setdefault((address, port), Endpoint(address, port, name))
            found = self._endpoints[device] = tuple(out.values())
        return found

    def wants(self, device: Device) -> bool:
        return bool(self.endpoints_for(device))

    def budget_s(self, device: Device) -> float:
        """Endpoints at once; per endpoint at most two connections one after the other."""
        return 2 * self.cfg.timeout_s + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        started = time.time_ns()
        if self._verified is None:
            raise RuntimeError("TlsProbe used outside `async with`")
        endpoints = self.endpoints_for(device)
        if not endpoints:
            return ProbeResult(device.id, self.name, started, False, "no TLS endpoint", {"up": False})
        outcomes = await asyncio.gather(*(self._check(e) for e in endpoints))
        series, reasons, days = [], [], []
        for endpoint, (fields, reason) in zip(endpoints, outcomes):
            if reason is not None:
                reasons.append(f"{endpoint.label}: {reason}")
            elif isinstance(left := fields.get("days_left"), float):
                days.append(left)
            series.append(Series("tls_certificate", {"endpoint": endpoint.label}, fields))
        own: dict[str, FieldValue] = {"up": not reasons, "endpoints": len(endpoints)}
        if days:
            own["min_days_left"] = min(days)
        return ProbeResult(device.id, self.name, started, not reasons, "; ".join(reasons) or None, own, tuple(series))

    async def _check(self, endpoint: Endpoint) -> tuple[dict[str, FieldValue], str | None]:
        fields: dict[str, FieldValue] = {"up": False}
        assert self._verified is not None and self._unverified is not None
        t0 = time.perf_counter()
        try:
            try:
                der, version = await self._handshake(endpoint, self._verified)
                verified, error = True, ""
            except ssl.SSLCertVerificationError as exc:
                verified, error = False, (exc.verify_message or exc.reason or "verify failed")[:MAX_TEXT]
                fields["handshake_ms"] = round((time.perf_counter() - t0) * 1000, 3)
                der, version = await self._handshake(endpoint, self._unverified)
        except _Failed as exc:
            return fields, str(exc)
        fields.setdefault("handshake_ms", round((time.perf_counter() - t0) * 1000, 3))
        try:
            fields.update(certificate_fields(der, endpoint.server_name, dt.datetime.now(dt.UTC)))
        except ValueError:
            return fields, "certificate not readable (not X.509 DER)"
        fields.update(up=True, chain_verified=verified, verify_error=error, tls_version=version)
        return fields, None

    async def _handshake(self, endpoint: Endpoint, context: ssl.SSLContext) -> tuple[bytes, str]:
        """(the peer's certificate in DER, the protocol version). Raises
        ssl.SSLCertVerificationError (verified context only) or _Failed."""
        writer = None
        sni = None if _is_address(endpoint.server_name) else endpoint.server_name
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                _, writer = await asyncio.open_connection(
                    endpoint.host, endpoint.port, ssl=context, server_hostname=sni or "",
                    ssl_handshake_timeout=self.cfg.timeout_s,
                )
            sslobj = writer.get_extra_info("ssl_object")
            der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
            if not der:
                raise _Failed("no certificate offered")
            return der, sslobj.version() or ""
        except ssl.SSLCertVerificationError:
            raise
        except TimeoutError:
            raise _Failed(f"timeout ({self.cfg.timeout_s:g} s)") from None
        except ssl.SSLError as exc:
            raise _Failed(f"TLS handshake failed: {exc.reason or type(exc).__name__}") from None
        except ConnectionResetError:
            raise _Failed("TLS handshake failed: connection reset") from None
        except OSError as exc:
            if exc.errno is None:  # asyncio's "connection lost during handshake" and the like
                raise _Failed("TLS handshake failed: connection closed") from None
            raise _Failed(_ERRNO_REASONS.get(exc.errno, exc.strerror or "connect failed")) from None
        finally:
            if writer is not None:
                writer.close()


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def certificate_fields(der: bytes, server_name: str, now: dt.datetime) -> dict[str, FieldValue]:
    """days_left, not_after, issuer, subject, san and hostname_match of a DER certificate seen
    at `now` (aware, UTC). Raises ValueError for bytes that are no certificate."""
    from cryptography import x509  # here: only a daemon that checks certificates loads it

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [n for n in san.get_values_for_type(x509.DNSName) if isinstance(n, str)]
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except (x509.ExtensionNotFound, ValueError):
        dns, ips = [], []
    common = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
    return {
        "days_left": round((not_after - now).total_seconds() / 86_400, 3),
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuer": cert.issuer.rfc4514_string()[:MAX_TEXT],
        "subject": cert.subject.rfc4514_string()[:MAX_TEXT],
        "san": ",".join((*dns, *ips))[:MAX_TEXT],
        "hostname_match": hostname_matches(server_name, dns, ips, [c for c in common if isinstance(c, str)]),
    }


def hostname_matches(name: str, dns: Iterable[str], ips: Iterable[str], common_names: Iterable[str] = ()) -> bool:
    """Whether a certificate with these subjectAltNames (and subject CNs) is valid for `name`
    (RFC 6125 §6.4): an address only against IP SANs; a host name against DNS SANs, case
    insensitive, a wildcard only as the whole left-most label and never matching an IDN
    A-label's or a bare suffix; the CNs only when there is no DNS or IP SAN."""
    dns, ips = list(dns), list(ips)
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        candidates = ips if dns or ips else list(common_names)
        return any(_same_address(address, c) for c in candidates)
    wanted = name.rstrip(".").lower()
    patterns = dns if dns or ips else list(common_names)
    return any(_dns_match(wanted, p.rstrip(".").lower()) for p in patterns)


def _same_address(address: Any, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == address
    except ValueError:
        return False


def _dns_match(name: str, pattern: str) -> bool:
    if "*" not in pattern:
        return name == pattern
    head, _, rest = pattern.partition(".")
    if head != "*" or not rest or "*" in rest or rest.count(".") < 1:
        return False  # only "*.example.com": no "w*.x", no "*.com"
    label, _, tail = name.partition(".")
    return bool(label) and tail == rest and not label.startswith("xn--")
