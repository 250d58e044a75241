"""The generic JSON webhook route against a real aiohttp receiver on loopback: the document it
posts, the bearer token, what it reports for each kind of answer, and retries through the
outbox."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from lab.process import free_ports
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.model import FaultEvent, Severity
from rules.alerting.notifiers.webhook import (
    REJECTED_RETRY_S,
    WebhookConfig,
    WebhookRoute,
    event_document,
)
from rules.alerting.outbox import OutboxWorker
from tests.plugins.factories import fault_event

TOKEN = "hook-token-3f9a"


def event(n: int, region: str | None = "城关镇") -> FaultEvent:
    return fault_event(n, severity=Severity.CRITICAL, title=f"交换机SW-{n:03d}离线，影响40路摄像机", region=region,
                       affected=("CAM-1", "CAM-2"))


@dataclass
class Seen:
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class Receiver:
    """A webhook receiver: answers the scripted (status, headers) first, then 200; `delay_s`
    holds every answer back."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.delay_s)
        status, headers = self.script.pop(0) if self.script else (200, {})
        self.seen.append(Seen(dict(request.headers), body, status))
        return web.json_response({"ok": status < 300, "detail": "scripted"}, status=status, headers=headers)

    def delivered_ids(self) -> list[int]:
        return [s.body["id"] for s in self.seen if s.status < 300]


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/hooks/fleetmon")


@pytest.fixture
async def receiver():
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/fleetmon", rec.handle)
    app.router.add_post("/old", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/fleetmon"
    yield rec
    await runner.cleanup()


def config(url: str, **kw: Any) -> WebhookConfig:
    return WebhookConfig(name="hook", type="webhook", url=url, **kw)


async def deliver(cfg: WebhookConfig, *events: FaultEvent):
    async with WebhookRoute(cfg, None) as route:
        return await route.deliver(list(events))


async def test_each_event_is_one_json_document_with_the_bearer_token(receiver, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = config(receiver.url, token_file=tmp_path / "token", headers={"X-Site": "县公安局"})
    events = [event(1), event(2, region=None)]
    result = await deliver(cfg, *events)
    assert result.delivered == (1, 2) and result.error is None
    assert [s.body for s in receiver.seen] == [
        {**e.to_dict(), "source": "fleetmon"} for e in events
    ]
    assert receiver.seen[0].body["fault"]["title"] == "交换机SW-001离线，影响40路摄像机"
    assert FaultEvent.from_dict(receiver.seen[1].body) == events[1]
    headers = receiver.seen[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json; charset=utf-8" and headers["X-Site"] == "县公安局"
    # The event id is the idempotency key, in the header and the body, the same in every resend.
    assert [s.headers["Idempotency-Key"] for s in receiver.seen] == ["1", "2"]
    assert [s.body["id"] for s in receiver.seen] == [1, 2]


async def test_no_token_means_no_authorization_header(receiver):
    await deliver(config(receiver.url), event(1))
    assert "Authorization" not in receiver.seen[0].headers


async def test_503_then_200_is_retried_through_the_outbox_in_order_once(receiver, tmp_path):
    receiver.script = [(503, {}), (503, {})]
    async with StateDB(tmp_path / "state.db") as db, WebhookRoute(config(receiver.url), None) as route:
        await db.migrate(outbox.SCHEMA)

        def op(conn):
            return [outbox.enqueue(conn, "hook", e.kind, e.ts_ns, e.fault) for e in (event(1), event(2), event(3))]

        ids = await db.execute(op)
        async with OutboxWorker(db, {"hook": route}, backoff_initial_s=0.01, backoff_max_s=0.05, poll_s=0.05) as worker:
            deadline = time.monotonic() + 10
            while await worker.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert await worker.pending() == 0
    assert [(s.body["id"], s.status) for s in receiver.seen] == [
        (ids[0], 503), (ids[0], 503), (ids[0], 200), (ids[1], 200), (ids[2], 200)
    ]


async def test_retry_after_in_seconds_is_reported_after_the_delivered_prefix(receiver):
    receiver.script = [(200, {}), (429, {"Retry-After": "7"})]
    result = await deliver(config(receiver.url), event(1), event(2), event(3))
    assert result.delivered == (1,) and result.retry_after_s == 7.0
    assert "HTTP 429" in result.error and "scripted" in result.error
    assert len(receiver.seen) == 2  # the third event is not tried after a refusal


async def test_retry_after_as_an_http_date_and_a_503_without_it(receiver):
    in_two_minutes = email.utils.formatdate(time.time() + 120, usegmt=True)
    receiver.script = [(503, {"Retry-After": in_two_minutes}), (500, {})]
    dated = await deliver(config(receiver.url), event(1))
    plain = await deliver(config(receiver.url), event(1))
    assert 60 < dated.retry_after_s <= 120
    assert plain.retry_after_s is None and "HTTP 500" in plain.error  # the outbox's backoff decides


@pytest.mark.parametrize(
    ("status", "hint"),
    [(404, "check the route's url"), (401, "token_env / token_file"), (400, "check the route's url")],
)
async def test_other_4xx_are_kept_for_a_long_retry_with_a_clear_error(receiver, status, hint):
    receiver.script = [(status, {})]
    result = await deliver(config(receiver.url), event(1))
    assert result.delivered == () and result.retry_after_s == REJECTED_RETRY_S and result.disabled is None
    assert f"HTTP {status}" in result.error and hint in result.error and "stays queued" in result.error


async def test_a_redirect_is_not_followed(receiver):
    result = await deliver(config(receiver.url.replace("/hooks/fleetmon", "/old")), event(1))
    assert result.delivered == () and "redirects" in result.error and receiver.seen == []


async def test_unreachable_and_silent_receivers_are_retried(receiver):
    (closed,) = free_ports(1)
    refused = await deliver(config(f"http://127.0.0.1:{closed}/hook"), event(1))
    assert refused.delivered == () and refused.retry_after_s is None and "cannot connect" in refused.error
    receiver.delay_s = 1.0
    silent = await deliver(config(receiver.url, timeout_s=0.2), event(1))
    assert silent.delivered == () and "no answer within 0.2 s" in silent.error


async def test_errors_never_show_url_credentials_or_query(receiver):
    (closed,) = free_ports(1)
    # The config refuses such a URL (test_config_errors); the route must not leak one built in code either.
    url = f"http://user:pw-secret@127.0.0.1:{closed}/hook?key=k-secret"
    cfg = WebhookConfig.model_construct(name="hook", type="webhook", url=url, headers={}, token=None,
                                        token_header="Authorization", timeout_s=10.0)
    result = await deliver(cfg, event(1))
    assert "secret" not in result.error and f"http://127.0.0.1:{closed}/hook" in result.error


def test_event_document_is_the_event_plus_its_source():
    doc = event_document(event(4))
    assert doc["source"] == "fleetmon" and doc["id"] == 4 and doc["event"] == "firing" and doc["ts_ns"] == 34


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"url": "ftp://example.org/x"}, "http://HOST"),
        ({"token": "inline"}, "must not be written in the config"),
        ({"token_env": "HOOK_TOKEN", "token_file": "/tmp/x"}, "not both"),
        ({"token_env": "HOOK_TOKEN", "headers": {"Authorization": "Basic x"}}, "would carry a secret"),
        ({"headers": {"Content-Type": "text/plain"}}, "set by fleetmon"),
        ({"headers": {"idempotency-key": "x"}}, "set by fleetmon"),
        ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "CR, LF"),
        ({"token_env": "HOOK_TOKEN_UNSET"}, "is not set"),
    ],
)
def test_config_errors(monkeypatch, extra, message):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    with pytest.raises(ValidationError, match=message):
        WebhookConfig(**{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x", **extra})


def test_the_token_is_never_dumped_or_shown(monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = config("http://127.0.0.1:9/x", token_env="HOOK_TOKEN")
    assert cfg.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(cfg) and TOKEN not in cfg.model_dump_json()
