"""The generic JSON webhook route: one HTTP POST per fault event, for systems that are neither
WeCom nor MQTT (ticketing, a command-hall bridge, a script).

Request: `POST {url}` with `Content-Type: application/json; charset=utf-8`, the configured
`headers`, `Authorization: Bearer <token>` (or the token as `token_header`) when token_env / token_file is set (RFC 6750 §2.1),
`Idempotency-Key: <id>` (the event id, as in the IETF httpapi draft "The Idempotency-Key HTTP
Header Field"), and the body `event_document(event)` (UTF-8, Chinese text as is):

    {"id": 17,                 # outbox row id = the Idempotency-Key: the same in every resend
     "event": "firing",        # rules.model.EventKind: firing|resolved|reminder|escalated|acknowledged|
                               #   sla_warning|sla_breached (work orders: "fault" is the order)
     "ts_ns": 1764000000000000000,    # when it happened, UTC ns since the epoch
     "fault": {...},           # rules.model.Fault.to_dict() as it was at that moment
     "source": "fleetmon"}

Events of a route are posted one at a time, oldest first; the first failure ends the attempt, so
the receiver sees them in order. Delivery is at least once (see rules/alerting/outbox.py): an
event whose answer never came (timeout_s) is posted again, and after a crash the event in
flight is; a receiver that must act once drops a repeated Idempotency-Key.

What the receiver answers, and what the route reports (status semantics: RFC 9110 §15):
- 2xx: delivered.
- 408, 429, 5xx: not delivered, retried. `Retry-After` (delay-seconds or HTTP-date, RFC 9110
  §10.2.3) becomes `retry_after_s`, at most MAX_RETRY_AFTER_S; without it the outbox backs off.
- No answer (connection refused or reset, timeout_s exceeded): retried with the outbox's backoff.
- Anything else (3xx, since redirects are not followed; other 4xx such as 400, 401, 404):
  the receiver refuses this request and will go on refusing it until somebody fixes the route's
  config or the receiver. The event is NOT dropped: it stays queued and is retried every
  REJECTED_RETRY_S, with an error that says what to fix, so that a mistyped URL or token costs
  a delay and a log line, never a lost notification.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import (
    ResolvedSecret,
    WithSecrets,
    header_secret_problem,
    is_http_url,
    url_secret_problem,
)
from rules.alerting.duty import DutyRoster
from rules.model import FaultEvent
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase

REJECTED_RETRY_S = 600.0
"""Wait before retrying an event the receiver refused (3xx, 4xx other than 408/429)."""
MAX_RETRY_AFTER_S = 3600.0
"""A longer Retry-After is cut to this: a receiver must not hold notifications back for days."""

_TRANSIENT = frozenset({408, 429})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2 token
_SET_BY_FLEETMON = frozenset({"content-type", "content-length", "host", "idempotency-key"})
_SNIPPET_CHARS = 200


def event_document(event: FaultEvent) -> dict[str, Any]:
    """The JSON document of one event, shared by the webhook and MQTT routes."""
    return {**event.to_dict(), "source": "fleetmon"}


def event_json(event: FaultEvent) -> bytes:
    """`event_document(event)` as UTF-8 JSON."""
    return json.dumps(event_document(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookConfig(RouteConfigBase, WithSecrets):
    """A webhook route (config `notify.routes[]` with `type: webhook`).

    - url: http:// or https://, without secrets: user:password@ and query parameters named like
      secrets (?token=, ?key=, ?sign= …) are refused (docs/OPERATIONS.md "Secrets").
    - token_env / token_file: the receiver's secret, sent as `Authorization: Bearer <token>`
      (RFC 6750 §2.1), or as the value of the header `token_header` when that names another
      header (a receiver's API key header, e.g. `token_header: X-Api-Key`).
    - timeout_s: per request, connecting included.
    - headers: extra request headers, without secrets (e.g. `X-Site: 城区`); Content-Type,
      Content-Length, Host and Idempotency-Key are fleetmon's; headers named like secrets
      (Authorization, Cookie, X-Api-Key, X-Auth-Token …) are refused: use the token and
      `token_header`.
    """

    # Errors must not echo their input: a URL or host may carry a secret. Merged with Strict's config.
    model_config = ConfigDict(hide_input_in_errors=True)

    secrets = ("token",)

    type: Literal["webhook"]
    url: str
    token_env: str | None = None
    token_file: Path | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    headers: dict[str, str] = {}
    token_header: str = "Authorization"

    token: ResolvedSecret = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # The URL itself is never echoed: it may carry user:password@ or a key in the query.
        if not is_http_url(url):
            raise ValueError("must look like http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")
        if (problem := url_secret_problem(url)) is not None:
            raise ValueError(problem)
        return url

    @field_validator("token_header")
    @classmethod
    def _token_header(cls, name: str) -> str:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if name.lower() in _SET_BY_FLEETMON:
            raise ValueError(f"header {name} is set by fleetmon")
        return name

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in _SET_BY_FLEETMON:
                raise ValueError(f"header {name} is set by fleetmon")
            if (problem := header_secret_problem(name)) is not None:
                raise ValueError(problem)
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name}: the value must not contain CR, LF or NUL")
        return headers

    @model_validator(mode="after")
    def _token_header_not_twice(self) -> Self:
        if self.token is not None and any(name.lower() == self.token_header.lower() for name in self.headers):
            raise ValueError(f"the header {self.token_header} carries the token: do not set it in headers too")
        return self


class WebhookRoute:
    """Posts fault events to a webhook (see the module docstring). One aiohttp session between
    `__aenter__` and `__aexit__`. `duty` is accepted for the Route constructor contract; the
    JSON carries no @mentions."""

    type: ClassVar[str] = "webhook"

    def __init__(self, cfg: WebhookConfig, duty: DutyRoster | None = None) -> None:
        self.name = cfg.name
        self._cfg = cfg
        self._where = _public_url(cfg.url)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        headers = {**self._cfg.headers, "Content-Type": "application/json; charset=utf-8"}
        if self._cfg.token is not None:
            secret = self._cfg.token.get_secret_value()
            bearer = self._cfg.token_header.lower() == "authorization"
            headers[self._cfg.token_header] = f"Bearer {secret}" if bearer else secret
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s), headers=headers
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """POST the events one by one, oldest first, until one fails; `progress([id])` after
        each one the receiver took."""
        delivered: list[int] = []
        for event in events:
            failure = await self._post(event)
            if failure is not None:
                retry_after_s, error = failure
                return Delivery(tuple(delivered), retry_after_s=retry_after_s, error=error)
            delivered.append(event.id)
            if progress is not None:
                await progress((event.id,))
        return Delivery(tuple(delivered))

    async def _post(self, event: FaultEvent) -> tuple[float | None, str] | None:
        """POST one event: None when the receiver took it, else (retry_after_s, error)."""
        assert self._session is not None, "WebhookRoute used outside its context"
        try:
            # Redirects are not followed: aiohttp would turn a 303 into a GET without the body.
            async with self._session.post(
                self._cfg.url, data=event_json(event), headers={"Idempotency-Key": str(event.id)}, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return None
                body = await resp.text(errors="replace")
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"webhook {self._where}: {_transport_error(exc, self._cfg.timeout_s)}"
        return _refusal(self._where, resp.status, body, retry_after)


def _refusal(where: str, status: int, body: str, retry_after: str | None) -> tuple[float | None, str]:
    """(retry_after_s, error) for a non-2xx answer."""
    answer = f"webhook {where} answered HTTP {status}"
    snippet = " ".join(body.split())[:_SNIPPET_CHARS]
    if snippet:
        answer += f" ({snippet})"
    if status in _TRANSIENT or 500 <= status < 600:
        return _retry_after_s(retry_after), answer
    if 300 <= status < 400:
        hint = "the url redirects: configure the final url"
    elif status in (401, 403):
        hint = "check the route's token_env / token_file and headers"
    else:
        hint = "the receiver refuses the request: check the route's url and the receiver"
    return REJECTED_RETRY_S, f"{answer}; {hint}; the event stays queued, retried every {REJECTED_RETRY_S:.0f} s"


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110
    §10.2.3), at most MAX_RETRY_AFTER_S; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    with contextlib.suppress(TypeError, ValueError):
        delay = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        return min(max(0.0, delay), MAX_RETRY_AFTER_S)
    return None


def _transport_error(exc: BaseException, timeout_s: float) -> str:
    """What went wrong with a request that got no HTTP answer."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__


def _public_url(url: str) -> str:
    """`url` without user:password@ and without the query (either may hold a secret)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
