"""The HTTP(S) check against real servers on loopback: aiohttp applications for the well-behaved
cases (status, body, redirects, Basic auth, TLS with certificates made here), raw asyncio
servers for the hostile ones (slowloris, endless body, silence, garbage, oversized headers).
Each hostile case asserts the reason and that the probe returned within its own budget."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp import web
from pydantic import ValidationError

from lab.certs import make_ca, make_cert, server_context
from probes.http import HttpConfig, HttpProbe
from tests.plugins.factories import device, schema_checked

SECRET = "Pa55-not-for-logs"


async def serve_app(app: web.Application, context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, runner.addresses[0][1]


async def check(url: str, **cfg: object):
    """One probe of a platform at `url` with HttpConfig(**cfg)."""
    async with HttpProbe(HttpConfig(**cfg)) as probe:
        return schema_checked(await probe.probe(device("plt", "platform", url=url)))


@pytest.fixture
async def site():
    """An aiohttp site with the pages the cases ask for; yields its base URL and the requests seen."""
    seen: list[web.Request] = []

    async def page(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        name = request.match_info["name"]
        if name == "ok":
            return web.Response(text="<title>视频监控平台</title> 登录")
        if name == "gbk":  # a Chinese platform that declares no charset
            return web.Response(body="<title>视频监控平台</title>".encode("gbk"), content_type="text/html")
        if name == "busy":
            return web.Response(status=503, text="busy")
        if name == "nocontent":
            return web.Response(status=204)
        if name.startswith("hop"):  # hop3 → hop2 → hop1 → ok
            n = int(name[3:])
            raise web.HTTPFound("/ok" if n <= 1 else f"/hop{n - 1}")
        if name == "loop":
            raise web.HTTPFound("/loop?key=" + SECRET)
        if name == "ftp":
            raise web.HTTPFound("ftp://127.0.0.1/file")
        if name == "noloc":
            return web.Response(status=302)
        if name == "private":
            if request.headers.get("Authorization") != "Basic " + __import__("base64").b64encode(
                f"ops:{SECRET}".encode()).decode():
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
            return web.Response(text="ok")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", page)
    runner, port = await serve_app(app)
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_expected_status_and_body_text_in_any_encoding(site):
    base, _ = site
    good = await check(f"{base}/ok", overrides=[{"match": {}, "body_contains": "视频监控平台"}])
    assert good.ok and good.reason is None
    assert good.fields["status_code"] == 200 and good.fields["body_match"] is True and good.fields["redirects"] == 0
    assert 0 < good.fields["response_ms"] <= good.fields["total_ms"]
    gbk = await check(f"{base}/gbk", overrides=[{"match": {}, "body_regex": r"视频.{2}平台"}])
    assert gbk.ok and gbk.fields["body_match"] is True
    missing = await check(f"{base}/ok", overrides=[{"match": {}, "body_contains": "运维平台"}])
    assert not missing.ok and missing.reason == "body does not contain the expected text"
    assert missing.fields["body_match"] is False and missing.fields["status_code"] == 200


async def test_unexpected_status_and_status_classes(site):
    base, _ = site
    busy = await check(f"{base}/busy")
    assert (busy.ok, busy.reason, busy.fields["status_code"]) == (False, "HTTP 503 (expected 200)", 503)
    assert (await check(f"{base}/nocontent", expect_status=["2xx"])).ok
    assert (await check(f"{base}/missing", expect_status=[200, 404])).ok
    assert (await check(f"{base}/nocontent")).reason == "HTTP 204 (expected 200)"


async def test_redirects_are_followed_and_bounded(site):
    base, _ = site
    followed = await check(f"{base}/hop3")
    assert followed.ok and followed.fields["redirects"] == 3
    too_many = await check(f"{base}/hop3", max_redirects=2)
    assert (too_many.ok, too_many.reason) == (False, "too many redirects (more than 2)")
    loop = await check(f"{base}/loop")
    assert (loop.reason, loop.fields["redirects"]) == ("redirect loop", 2)  # /loop, then /loop?key= twice
    assert (await check(f"{base}/ftp")).reason == "redirect to a non-HTTP URL"
    assert (await check(f"{base}/noloc")).reason == "HTTP 302 redirect without Location"


async def test_basic_auth_from_a_secret_never_leaves_its_origin(site, monkeypatch):
    base, seen = site
    monkeypatch.setenv("PLATFORM_PASSWORD", SECRET)
    account = {"match": {"kind": ["platform"]}, "username": "ops", "password_env": "PLATFORM_PASSWORD"}
    assert (await check(f"{base}/private")).reason == "HTTP 401 (expected 200)"
    assert (await check(f"{base}/private", overrides=[account])).ok

    # The device's URL is on another origin (another port) that redirects to the first server:
    # the password goes to the device's own origin only, not where it is sent on to.
    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request)
        raise web.HTTPFound(f"{base}/private")

    app = web.Application()
    app.router.add_get("/", elsewhere)
    runner, port = await serve_app(app)
    try:
        seen.clear()
        result = await check(f"http://127.0.0.1:{port}/", overrides=[account])
    finally:
        await runner.cleanup()
    assert result.reason == "HTTP 401 (expected 200)"
    assert [r.headers.get("Authorization") is not None for r in seen] == [True, False]
    assert SECRET not in repr(result.to_dict())


async def test_a_secret_in_a_redirect_url_stays_out_of_the_result(site):
    base, _ = site
    result = await check(f"{base}/loop")
    assert SECRET not in repr(result.to_dict())


async def test_tls_is_verified_by_default(tmp_path: Path):
    ca = make_ca()
    app = web.Application()
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    signed = server_context(make_cert(["127.0.0.1"], issuer=ca), tmp_path)
    self_signed = server_context(make_cert(["127.0.0.1"]), tmp_path)
    expired = server_context(make_cert(["127.0.0.1"], issuer=ca, days=(-30, -1)), tmp_path)
    wrong_name = server_context(make_cert(["platform.example"], issuer=ca), tmp_path)
    ca_file = ca.write(tmp_path / "ca.pem")
    outcomes = {}
    for label, context in (("signed", signed), ("self", self_signed), ("expired", expired), ("name", wrong_name)):
        runner, port = await serve_app(app, context)
        try:
            url = f"https://127.0.0.1:{port}/"
            outcomes[label] = (await check(url, ca_file=ca_file), await check(url), await check(url, verify_tls=False))
        finally:
            await runner.cleanup()
    assert [r.ok for r in outcomes["signed"]] == [True, False, True]  # the lab CA is trusted only with ca_file
    assert outcomes["signed"][1].reason.startswith("TLS certificate not trusted: ")
    assert outcomes["self"][0].reason == "TLS certificate not trusted: self-signed certificate"
    assert outcomes["expired"][0].reason == "TLS certificate not trusted: certificate has expired"
    assert outcomes["name"][0].reason.startswith("TLS certificate not trusted: IP address mismatch")
    assert all(outcome[2].ok for outcome in outcomes.values())  # verify_tls: false only asks for TLS


# -- hostile servers ------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"


async def against(handler: Handler, **cfg: object):
    """(result, seconds taken, budget) of a probe of a raw server running `handler`."""
    tasks: set[asyncio.Task] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with HttpProbe(HttpConfig(timeout_s=1.0, **cfg)) as probe:
            target = device("plt", "platform", url=f"http://127.0.0.1:{port}/")
            started = loop.time()
            result = schema_checked(await probe.probe(target))
            return result, loop.time() - started, probe.budget_s(target)
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def slowloris(reader, writer):
    for byte in HEAD + b"Content-Length: 100\r\n\r\n" + b"x" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def silent(reader, writer):
    await asyncio.sleep(30)


async def endless(reader, writer):
    writer.write(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 8192
    for _ in range(100_000):  # far more than the probe reads; bounded all the same
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


async def garbage(reader, writer):
    writer.write(b"\x16\x03\x01\x00\xff garbage, no HTTP here\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def huge_header(reader, writer):
    writer.write(HEAD + b"X-Filler: " + b"a" * 100_000 + b"\r\n\r\nok")
    await writer.drain()
    await asyncio.sleep(5)


async def hangs_up(reader, writer):
    writer.write(HEAD + b"Content-Length: 1000\r\n\r\nonly a little")
    await writer.drain()


@pytest.mark.parametrize(("handler", "reason"), [
    (slowloris, "timeout (no complete answer within 1 s)"),
    (silent, "timeout (no complete answer within 1 s)"),
    (garbage, "malformed HTTP response"),
    (huge_header, "malformed HTTP response"),
    (hangs_up, "broken response body"),
], ids=lambda v: getattr(v, "__name__", ""))
async def test_hostile_servers_fail_with_a_reason_within_the_budget(handler, reason):
    result, took, budget = await against(handler)
    assert not result.ok and result.reason.startswith(reason), result.reason
    assert took <= budget


async def test_an_endless_body_is_read_to_the_limit_only():
    result, took, budget = await against(endless, max_body_bytes=100_000)
    assert result.ok and result.fields["truncated"] is True and result.fields["body_bytes"] == 100_000
    assert took <= budget


# -- which devices, what config ------------------------------------------------------------------


def test_devices_are_checked_with_a_point_list_url_or_an_override_template():
    probe = HttpProbe(HttpConfig(overrides=[{"match": {"kind": ["server"]}, "url": "https://{host}:8443/health"}]))
    assert probe.wants(device("p", "platform", url="https://platform.example/"))
    assert not probe.wants(device("c", "camera"))
    server = device("s", "server", address="2001:db8::5")
    assert probe.wants(server) and probe.check_for(server).url == "https://[2001:db8::5]:8443/health"


@pytest.mark.parametrize(("override", "message"), [
    ({"url": "https://admin:hunter2@{host}/"}, "must not carry credentials"),
    ({"url": "ftp://{host}/"}, "must be an http:// or https:// URL with a host"),
    ({"url": "https://{host}:{port}/"}, "url may only use the placeholder {host}"),
    ({"body_regex": "([unclosed"}, "body_regex is not a regular expression"),
    ({"expect_status": [700]}, "less than or equal to 599"),
    ({"expect_status": ["2xy"]}, "should match pattern"),
    ({"username": "ops"}, None),  # a name without a password is no account: allowed, unused
    ({"password": "inline"}, "must not be written in the config"),
])
def test_bad_overrides_are_refused_without_echoing_the_url(override, message):
    entry = {"match": {"kind": ["platform"]}, **override}
    if message is None:
        HttpConfig(overrides=[entry])
        return
    with pytest.raises(ValidationError) as error:
        HttpConfig(overrides=[entry])
    assert message in str(error.value)
    assert "hunter2" not in str(error.value)
