"""The TLS certificate check against real TLS servers on loopback, with certificates made here
(lab/certs.py): valid, self-signed, expired, near expiry, for another name, CN only; and
hostile peers (no TLS at all, silence, a drip). The name check (RFC 6125) on its own."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from lab.certs import make_ca, make_cert, server_context
from probes.tls import TlsConfig, TlsProbe, hostname_matches
from tests.plugins.factories import device, schema_checked


async def tls_server(context: ssl.SSLContext | None, handler=None) -> tuple[asyncio.Server, int]:
    async def default(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler or default, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def check(port: int | list[int], **cfg: object):
    ports = port if isinstance(port, list) else [port]
    config = TlsConfig(timeout_s=1.0, checks=[{"match": {"kind": ["platform"]}, "ports": ports}], **cfg)
    async with TlsProbe(config) as probe:
        target = device("plt", "platform", address="127.0.0.1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = schema_checked(await probe.probe(target))
        return result, loop.time() - started, probe.budget_s(target)


def cert_of(result, port: int) -> dict:
    (series,) = [s for s in result.series if s.tags["endpoint"] == f"127.0.0.1:{port}"]
    return dict(series.fields)


@pytest.fixture(scope="module")
def ca():
    return make_ca("fleetmon test CA")


@pytest.mark.parametrize(("leaf", "verified", "error", "days", "name_ok"), [
    (dict(names=["127.0.0.1"], signed=True), True, "", 365, True),
    (dict(names=["127.0.0.1"], signed=False), False, "self-signed certificate", 365, True),
    (dict(names=["127.0.0.1"], signed=True, days=(-40, -3)), False, "certificate has expired", -3, True),
    (dict(names=["127.0.0.1"], signed=True, days=(-300, 10)), True, "", 10, True),
    (dict(names=["platform.example"], signed=True), True, "", 365, False),
    (dict(names=["127.0.0.1"], signed=True, san=False), True, "", 365, True),  # CN only, as NVRs do
], ids=["valid", "self-signed", "expired", "near-expiry", "other-name", "cn-only"])
async def test_certificate_facts(tmp_path: Path, ca, leaf, verified, error, days, name_ok):
    cert = make_cert(leaf["names"], issuer=ca if leaf["signed"] else None, days=leaf.get("days", (-1, 365)),
                     san=leaf.get("san", True))
    server, port = await tls_server(server_context(cert, tmp_path))
    try:
        result, took, budget = await check(port, ca_file=ca.write(tmp_path / "ca.pem"))
    finally:
        server.close()
    assert result.ok and result.reason is None, result.reason
    fields = cert_of(result, port)
    assert fields["chain_verified"] is verified and fields["verify_error"] == error
    assert fields["days_left"] == pytest.approx(days, abs=0.01)
    assert result.fields["min_days_left"] == fields["days_left"]
    assert fields["hostname_match"] is name_ok
    assert "fleetmon test CA" in fields["issuer"] if leaf["signed"] else fields["issuer"] == fields["subject"]
    assert fields["tls_version"].startswith("TLSv1") and fields["handshake_ms"] > 0
    assert took <= budget


async def test_without_the_ca_file_the_lab_chain_does_not_verify(tmp_path: Path, ca):
    server, port = await tls_server(server_context(make_cert(["127.0.0.1"], issuer=ca), tmp_path))
    try:
        result, _, _ = await check(port)
    finally:
        server.close()
    fields = cert_of(result, port)
    assert result.ok and fields["chain_verified"] is False
    assert fields["verify_error"] == "unable to get local issuer certificate"


async def test_the_url_host_is_sent_as_sni_and_checked(tmp_path: Path, ca):
    asked: list[str | None] = []
    context = server_context(make_cert(["platform.example"], issuer=ca), tmp_path)
    context.sni_callback = lambda sslobj, name, ctx: asked.append(name)
    server, port = await tls_server(context)
    config = TlsConfig(timeout_s=1.0, ca_file=ca.write(tmp_path / "ca.pem"), checks=[
        {"match": {"kind": ["platform"]}, "ports": [port], "server_name": "platform.example"}])
    try:
        async with TlsProbe(config) as probe:
            result = await probe.probe(device("plt", "platform", address="127.0.0.1"))
            # A point-list url on an address: the endpoint is that address and port, no SNI.
            by_url = await probe.probe(device("web", "server", url=f"https://127.0.0.1:{port}/login"))
    finally:
        server.close()
    assert cert_of(result, port)["hostname_match"] is True
    assert asked[0] == "platform.example"
    assert [s.tags["endpoint"] for s in by_url.series] == [f"127.0.0.1:{port}"]
    assert by_url.ok and cert_of(by_url, port)["hostname_match"] is False  # 127.0.0.1 is not platform.example


async def test_each_endpoint_is_reported_and_the_soonest_expiry_is_the_devices(tmp_path: Path, ca):
    soon, late = make_cert(["127.0.0.1"], issuer=ca, days=(-1, 5)), make_cert(["127.0.0.1"], issuer=ca, days=(-1, 90))
    (s1, p1), (s2, p2) = await tls_server(server_context(soon, tmp_path)), await tls_server(server_context(late, tmp_path))
    closed = (await tls_server(None))[0]
    p3 = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    try:
        result, _, _ = await check([p1, p2, p3])
    finally:
        s1.close()
        s2.close()
    assert not result.ok and result.reason == f"127.0.0.1:{p3}: connection refused"
    assert result.fields["min_days_left"] == pytest.approx(5, abs=0.01) and result.fields["endpoints"] == 3
    assert cert_of(result, p2)["days_left"] == pytest.approx(90, abs=0.01)
    assert cert_of(result, p3) == {"up": False}


# -- hostile peers ---------------------------------------------------------------------------------


async def plain_text(reader, writer):
    writer.write(b"220 smtp.example ESMTP ready, no TLS here\r\n" * 50)
    await writer.drain()
    await asyncio.sleep(5)


async def silent(reader, writer):
    await asyncio.sleep(30)


async def drip(reader, writer):
    for byte in b"\x16\x03\x03\x00\x40" + b"\x00" * 64:  # a ServerHello record one byte at a time
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.3)


async def hang_up(reader, writer):
    writer.close()


@pytest.mark.parametrize(("handler", "reason"), [
    (plain_text, "TLS handshake failed: "),
    (silent, "timeout (1 s)"),
    (drip, "timeout (1 s)"),
    (hang_up, "TLS handshake failed: connection "),  # closed or reset
], ids=lambda v: getattr(v, "__name__", ""))
async def test_peers_without_tls_fail_with_a_reason_within_the_budget(handler, reason):
    tasks: set[asyncio.Task] = set()

    async def wrapped(reader, writer):
        tasks.add(asyncio.current_task())
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server, port = await tls_server(None, wrapped)
    try:
        result, took, budget = await check(port)
    finally:
        server.close()
        for task in tasks:
            task.cancel()
    assert not result.ok and result.reason.startswith(f"127.0.0.1:{port}: {reason}"), result.reason
    assert took <= budget


# -- names, endpoints, config -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dns", "ips", "cns", "match"), [
    ("platform.example", ["platform.example"], [], [], True),
    ("PLATFORM.example.", ["platform.example"], [], [], True),
    ("a.platform.example", ["*.platform.example"], [], [], True),
    ("a.b.platform.example", ["*.platform.example"], [], [], False),  # one label only
    ("platform.example", ["*.platform.example"], [], [], False),  # not the bare suffix
    ("www.example", ["*.example"], [], [], False),  # no wildcard over a public-suffix-like single label
    ("xn--fiq228c.example", ["*.example"], [], [], False),  # never an IDN A-label
    ("10.0.0.1", ["10.0.0.1"], [], [], False),  # an address only against IP SANs
    ("10.0.0.1", [], ["10.0.0.1"], [], True),
    ("2001:db8::1", [], ["2001:db8:0::1"], [], True),
    ("nvr.local", [], [], ["nvr.local"], True),  # no SAN at all: the CN
    ("nvr.local", ["other.local"], [], ["nvr.local"], False),  # SANs present: the CN is ignored
])
def test_hostname_matching_follows_rfc_6125(name, dns, ips, cns, match):
    assert hostname_matches(name, dns, ips, cns) is match


def test_endpoints_from_urls_and_checks():
    probe = TlsProbe(TlsConfig(checks=[{"match": {"kind": ["nvr"]}, "ports": [443, 8443]},
                                       {"match": {"tags": ["mail"]}, "ports": [465], "server_name": "mail.example"}]))
    web = device("web", "platform", url="https://platform.example:8443/x")
    assert [(e.host, e.port, e.server_name) for e in probe.endpoints_for(web)] == [
        ("platform.example", 8443, "platform.example")]
    assert not probe.wants(device("w2", "platform", url="http://platform.example/"))  # no TLS in that url
    nvr = device("nvr", "nvr", address="10.0.0.9", tags={"mail"})
    assert [e.label for e in probe.endpoints_for(nvr)] == ["10.0.0.9:443", "10.0.0.9:8443", "10.0.0.9:465"]
    assert probe.endpoints_for(nvr)[-1].server_name == "mail.example"
    assert TlsProbe(TlsConfig(from_urls=False)).wants(web) is False


def test_config_is_strict():
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        TlsConfig(checks=[{"match": {}, "ports": [70000]}])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TlsConfig(checks=[{"match": {}, "port": 443}])
