"""The WeCom (企业微信) group-robot route: fault events as Chinese (or English) messages in the duty
engineers' WeCom group, within the robot's size and rate limits, with @mentions of who is on duty.

The robot API (群机器人配置说明, https://developer.work.weixin.qq.com/document/path/91770; error
codes: 全局错误码, https://developer.work.weixin.qq.com/document/path/90313):
- `POST {url}?key=KEY`, UTF-8 JSON: `{"msgtype": "markdown", "markdown": {"content": …}}` or
  `{"msgtype": "text", "text": {"content": …, "mentioned_mobile_list": ["138…"]}}`.
- content at most 4096 bytes (markdown) or 2048 bytes (text), UTF-8 bytes; 20 messages per robot
  per minute.
- The answer is HTTP 200 even for errors; the body's errcode decides: 0 ok; 45009 over the rate
  limit; 40058 content too long or invalid; 93000 invalid webhook url (key wrong or robot
  removed). A 200 with errcode ≠ 0 is a failure.

What the route does with that (the outbox owns durability and calls `deliver()` again after
`retry_after_s`):
- Rate: each robot key has a window of its requests in the last 60 s, shared by every route
  using that key; at most `rate_per_minute` in any 60 s. A refilling token bucket (capacity 20,
  one token per 3 s) would allow 39 messages in the first minute, which WeCom answers with
  45009, hence the sliding window.
- Digest: when the pending events need more messages than the window has room for, they are
  packed in order into digest messages ("5 条告警：" and one line per event), each within the size
  limit, so nothing is dropped or reordered. A digest delivers all its events at once.
- Size: one event is rendered with at most 10 affected points listed (then 5, then none) and, if
  still too long, truncated with a visible marker. 40058 halves the route's byte budget (down to
  512 bytes) and the events are rendered again, split into smaller digests; the smaller budget
  stays for the route's life (logged once per halving). A message of 512 bytes or less still
  refused is an error.
- 45009: nothing more to this key for a whole window; retry_after ≈ 60 s, with the error (WeCom
  counted messages this route did not send: somebody else uses the robot).
- 93000: `Delivery(disabled=…)`: the outbox stops the route and raises the local alarm.
- A definite failure: no connection within CONNECT_TIMEOUT_S (nothing was sent), an HTTP
  status ≠ 200 other than 504 (redirects are not followed: the key is in the query), a body
  that is not a WeCom answer, other errcodes: an error without retry_after, so the outbox's
  backoff (exponential, with jitter) applies, as for the other routes.
- An uncertain failure: the request went out and no answer came within `timeout_s` (or the
  connection broke, or a gateway answered 504). WeCom may well have posted the message, as
  it did when it answered late (issue 13: a message posted 6 times, because a 10 s timeout
  was followed by quick retries). Such a request is sent again only after `resend_after_s`,
  doubled for each further uncertain attempt of the same event (at most MAX_RESEND_S), never
  at the outbox's quick backoff.
- Repeats: delivery is at least once and WeCom has no idempotency key, so every message names
  its events' ids ("通知编号：#17", a digest line ends in "#17"): people and tools can see a
  repeat for what it is. A repeat happens only (a) when fleetmon dies (kill -9, power) between
  WeCom posting a message and the outbox recording it: each accepted message is reported to
  the outbox at once (`progress`), so only the message in flight repeats, once per crash; or
  (b) when WeCom posts a message but answers later than `timeout_s` (default 30 s; WeCom
  answers within a second normally): then at most once per uncertain attempt, the attempts
  `resend_after_s`, 2 × `resend_after_s`, … apart.
- Logging: the outbox logs failure episodes, recoveries and the disabling; the route itself logs
  only what the outbox cannot see (a smaller byte budget after 40058).
- @mention: text messages carry `mentioned_mobile_list`. WeCom markdown can only @ by userid
  (`<@userid>`), and the duty roster knows mobiles, so on a markdown route a message that needs a
  mention is preceded by a short text message with the mentions ("请值班人员处理：…"), and both
  count against the rate limit. The ping goes first: its event stays pending until the details
  went out too, so a failed ping is retried by the outbox like any undelivered event; pinged
  event ids are remembered so that a retry of the details does not ping again (after a restart
  between the two requests the ping repeats: a second ping rather than none). Mentions go to
  whoever is on duty when the message is sent, for firing, reminder, escalated and work-order
  SLA (warning, breach) events at least `mention_min_severity`; resolutions and
  acknowledgements never wake anybody.
- Work-order SLA events carry their own fact lines (`details["facts"]`, in the order book's
  language): the headline is the order's title, the lines are shown as given.
- The key never leaves this module except in the request: logs and errors show the URL with
  `key=***`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets, is_http_url, url_secret_problem
from monitor.core.timecheck import ZoneName
from rules.alerting.duty import DutyRoster
from rules.model import EventKind, FaultEvent, Severity
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase
from rules.alerting.notifiers.texts import MENTIONED_KINDS, Renderer, utf8_len

log = logging.getLogger("fleetmon.wecom")

DEFAULT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
MAX_BYTES = {"markdown": 4096, "text": 2048}
"""Content limits of the robot API, in UTF-8 bytes."""
RATE_WINDOW_S = 60.0
"""WeCom's rate window: `rate_per_minute` requests per robot key in any such window."""

ERR_OK = 0
ERR_TOO_LONG = 40058
ERR_RATE = 45009
ERR_BAD_KEY = 93000
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # an image message's picture, before base64 ("最大不能超过2M")

_MIN_BYTES = 512  # 40058 shrinking stops here: smaller than any plausible real limit
_ERRMSG_LIMIT = 200  # characters of a peer's answer kept in an error
CONNECT_TIMEOUT_S = 5.0
"""Connecting to WeCom: a failure here is definite (nothing was sent)."""
MAX_RESEND_S = 3600.0
"""The longest wait before sending again a request that got no answer."""


class WeComConfig(RouteConfigBase, WithSecrets):
    """A WeCom group-robot route (config `notify.routes[]` with `type: wecom`).

    - url: the robot send endpoint, without the key (WeCom's by default).
    - key_env / key_file: where the robot key (the `key=` of the webhook URL) is; exactly one.
      Resolved at load time into `key` (SecretStr, never printed).
    - msgtype: "markdown" (default, colours and bold) or "text".
    - rate_per_minute: this route's own limit per robot key, ≤ 20 (WeCom's); at least 2, so that
      a markdown message and its @mention fit in one minute.
    - mention_min_severity: @mention the on-duty engineers for faults at least this severe
      (None: never).
    - language / timezone: of the message texts and the times in them.
    - timeout_s: how long one request waits for WeCom's answer (connecting takes at most
      CONNECT_TIMEOUT_S of it); longer than WeCom's slowest answers, because a request given up
      on may still have been posted.
    - resend_after_s: after a request got no answer (it may have been posted), wait this long
      before sending it again; doubled for each further such attempt of the same event.
    """

    # An error must not echo its input: it may be an inline key. Merged with Strict's config.
    model_config = ConfigDict(hide_input_in_errors=True)

    secrets = ("key",)

    type: Literal["wecom"]
    url: str = DEFAULT_URL
    key_env: str | None = None
    key_file: Path | None = None
    msgtype: Literal["markdown", "text"] = "markdown"
    rate_per_minute: Annotated[int, Field(ge=2, le=20)] = 20
    mention_min_severity: Severity | None = Severity.MAJOR
    language: Literal["zh", "en"] = "zh"
    timezone: ZoneName = "Asia/Shanghai"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 30.0
    resend_after_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    thumbnail_dir: Path | None = None
    """The frame check's thumbnails (probes.rtsp_frame.thumbnail_dir, which it is by default
    when the frame check's vqd is on): after the message of a video-quality fault that fires
    (rule types video_*), the camera's picture follows as an image message. Best effort: skipped when the rate window has no room left, the file is
    missing or larger than WeCom's 2 MB; a refused image is logged, the fault's message stands."""

    key: ResolvedSecret = None

    @field_validator("url")
    @classmethod
    def _send_url(cls, url: str) -> str:
        if not is_http_url(url):
            raise ValueError("must look like https://qyapi.weixin.qq.com/cgi-bin/webhook/send")
        if urlsplit(url).query:
            # The URL itself is not echoed: its query may be the key.
            raise ValueError("must not have a query: the robot key goes in key_env or key_file")
        if (problem := url_secret_problem(url)) is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _key_required(self) -> WeComConfig:
        if self.key is None:
            raise ValueError("give the robot key as key_env or as key_file (exactly one)")
        return self


# -- rate window ------------------------------------------------------------------------------------


class SendWindow:
    """The requests sent to one robot key in the last `window_s` seconds (times on the route's
    clock, taken when the answer came, so the server has surely counted them by then)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._sent: deque[float] = deque()
        self._blocked_until = float("-inf")

    def free(self, now: float, limit: int) -> int:
        """How many requests may go now without exceeding `limit` in any window."""
        if now < self._blocked_until:
            return 0
        self._expire(now)
        return max(0, limit - len(self._sent))

    def wait_s(self, now: float, limit: int, need: int) -> float:
        """Seconds until `need` (≤ limit) requests may go."""
        self._expire(now)
        at = now
        excess = len(self._sent) + need - limit  # how many of the sent must leave the window first
        if excess > 0:
            at = self._sent[excess - 1] + self.window_s
        return max(at, self._blocked_until) - now

    def take(self, now: float) -> None:
        self._sent.append(now)

    def block(self, now: float) -> None:
        """WeCom said 45009: somebody else uses this robot too; send nothing for a whole window."""
        self._blocked_until = now + self.window_s

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()


# One window per robot: WeCom's limit is per key, whichever route (or escalation route) sends.
_windows: dict[tuple[str, str, float], SendWindow] = {}


def robot_window(url: str, key: SecretStr, window_s: float = RATE_WINDOW_S) -> SendWindow:
    """The rate window of the robot with `key` at `url`, shared by everything in this process
    that sends to it (fault routes, escalations, monitor.reports' delivery)."""
    digest = hashlib.sha256(key.get_secret_value().encode()).hexdigest()
    return _windows.setdefault((url, digest, window_s), SendWindow(window_s))


# -- the route --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    """One planned request and what it delivers. mention: the @mention text message that must go
    first (markdown routes), None when nobody is (or is still) to be mentioned."""

    events: tuple[FaultEvent, ...]
    payload: dict[str, Any]
    size: int  # content bytes
    mention: dict[str, Any] | None

    @property
    def cost(self) -> int:
        """Requests it takes from the rate window."""
        return 1 if self.mention is None else 2


@dataclass(frozen=True, slots=True)
class _Reply:
    """How one request ended: errcode None = no WeCom answer (message says why); uncertain: the
    request went out and WeCom may have posted it (no answer in time, a broken connection, a
    gateway's 504)."""

    errcode: int | None
    message: str
    uncertain: bool = False


@dataclass(frozen=True, slots=True)
class _Stop:
    """Why `deliver` stops before everything went out (Delivery's fields but `delivered`)."""

    retry_after_s: float | None = None
    disabled: str | None = None
    error: str | None = None

    def delivery(self, delivered: list[int]) -> Delivery:
        return Delivery(tuple(delivered), self.retry_after_s, self.disabled, self.error)


class WeComRoute:
    """The WeCom group-robot route (see the module docstring for the protocol and the choices).

    `WeComRoute(cfg, duty)`; tests may pass `clock` (monotonic seconds) and `window_s` to run the
    rate window on a fake clock. Use as `async with route:`; `deliver()` outside raises RuntimeError.
    """

    type: ClassVar[str] = "wecom"

    def __init__(
        self,
        cfg: WeComConfig,
        duty: DutyRoster,
        *,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = RATE_WINDOW_S,
    ) -> None:
        assert cfg.key is not None  # resolved by WeComConfig's validator
        self.name = cfg.name
        self._cfg = cfg
        self._key = cfg.key
        self._duty = duty
        self._clock = clock
        self._window = robot_window(cfg.url, cfg.key, window_s)
        self._renderer = Renderer(cfg.msgtype, cfg.language, cfg.timezone)
        self._budget = MAX_BYTES[cfg.msgtype]
        self._pinged: set[int] = set()  # events whose @mention went out, their message not yet
        self._uncertain: dict[int, int] = {}  # event id → its requests that got no answer so far
        self._session: aiohttp.ClientSession | None = None

    @property
    def masked_url(self) -> str:
        """The webhook URL as it may be shown: the key replaced by ***."""
        return f"{self._cfg.url}?key=***"

    def __repr__(self) -> str:
        return f"WeComRoute(name={self.name!r}, url={self.masked_url!r}, msgtype={self._cfg.msgtype!r})"

    async def __aenter__(self) -> Self:
        # trust_env stays False: never through an http_proxy from the environment.
        timeout = aiohttp.ClientTimeout(total=self._cfg.timeout_s, sock_connect=min(CONNECT_TIMEOUT_S, self._cfg.timeout_s))
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """Send as many of `events` (oldest first) as the rate window allows, singly when all fit,
        else as digests; returns the delivered prefix of their ids and, when not all went out,
        when to call again or why never; `progress(ids)` after each message WeCom accepted.
        Never raises for WeCom's or the network's failures."""
        if self._session is None:
            raise RuntimeError("WeComRoute.deliver() outside `async with route`")
        delivered: list[int] = []
        pending = list(events)
        while pending:
            now = self._clock()
            for msg in self._plan(pending, self._window.free(now, self._cfg.rate_per_minute)):
                now = self._clock()
                if self._window.free(now, self._cfg.rate_per_minute) < msg.cost:
                    return self._wait(now, msg.cost).delivery(delivered)
                ids = [e.id for e in msg.events]
                if msg.mention is not None:
                    stop = self._judge(await self._post(msg.mention), ids)
                    if stop is not None:
                        return stop.delivery(delivered)
                    self._pinged.update(ids)
                reply = await self._post(msg.payload)
                if reply.errcode == ERR_TOO_LONG:
                    stop = self._shrink(msg.size, reply)
                    if stop is None:
                        break  # plan again with the smaller budget
                    return stop.delivery(delivered)
                stop = self._judge(reply, ids)
                if stop is not None:
                    return stop.delivery(delivered)
                delivered += ids
                self._pinged.difference_update(ids)
                for event_id in ids:
                    self._uncertain.pop(event_id, None)
                if progress is not None:
                    await progress(ids)
                del pending[: len(msg.events)]
                if len(msg.events) == 1:
                    await self._send_picture(msg.events[0])
        return Delivery(tuple(delivered))

    # -- planning --------------------------------------------------------------------------------

    def _plan(self, events: Sequence[FaultEvent], free: int) -> list[_Message]:
        """The messages for `events`, in order: one per event when they all fit in `free`
        requests, else digests (at most `free` of them, at least one so that the caller learns
        what the first one needs)."""
        if len(events) <= free:
            singles = [self._message((e,), self._renderer.single(e, self._budget)) for e in events]
            if sum(m.cost for m in singles) <= free:
                return singles
        digests = islice(self._renderer.digest(events, self._budget), max(free, 1))
        return [self._message(group, content) for group, content in digests]

    def _message(self, events: tuple[FaultEvent, ...], content: str) -> _Message:
        urgent = [e for e in events if self._wants_mention(e) and e.id not in self._pinged]
        mobiles = self._on_duty_mobiles() if urgent else []
        if self._cfg.msgtype == "text":
            text: dict[str, Any] = {"content": content}
            if mobiles:
                text["mentioned_mobile_list"] = mobiles
            return _Message(events, {"msgtype": "text", "text": text}, utf8_len(content), None)
        mention = None
        if mobiles:
            mention_text = self._renderer.mention(urgent, MAX_BYTES["text"])
            mention = {"msgtype": "text", "text": {"content": mention_text, "mentioned_mobile_list": mobiles}}
        return _Message(events, {"msgtype": "markdown", "markdown": {"content": content}}, utf8_len(content), mention)

    def _wants_mention(self, event: FaultEvent) -> bool:
        floor = self._cfg.mention_min_severity
        return floor is not None and event.kind in MENTIONED_KINDS and event.fault.severity.rank <= floor.rank

    def _on_duty_mobiles(self) -> list[str]:
        """Mobiles of the engineers on duty now, in roster order, each once."""
        return list(dict.fromkeys(s.mobile for s in self._duty.on_duty(time.time_ns())))

    # -- sending ---------------------------------------------------------------------------------

    async def _send_picture(self, event: FaultEvent) -> None:
        """The camera's thumbnail as an image message after a firing video-quality fault
        (WeCom: base64 of a JPG or PNG ≤ 2 MB and the md5 of its bytes)."""
        fault = event.fault
        folder = self._cfg.thumbnail_dir
        if folder is None or event.kind is not EventKind.FIRING or not fault.kind.startswith("video_"):
            return
        if fault.device_id is None or self._window.free(self._clock(), self._cfg.rate_per_minute) < 1:
            return
        from probes.vqd.thumbs import thumbnail_name

        try:
            data = (folder / thumbnail_name(fault.device_id)).read_bytes()
        except OSError:
            return  # no picture of this camera (yet)
        if not data or len(data) > MAX_IMAGE_BYTES:
            return
        payload = {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode("ascii"),
                                                 "md5": hashlib.md5(data).hexdigest()}}
        reply = await self._post(payload)
        if reply.errcode != 0:
            log.warning("route %s: the picture of %s was not sent: %s", self.name, fault.id,
                        reply.message or f"errcode {reply.errcode}")

    async def _post(self, payload: dict[str, Any]) -> _Reply:
        """One request; every attempt counts against the rate window."""
        assert self._session is not None
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        params = {"key": self._key.get_secret_value()}
        try:
            # No redirects: the key is in the query, and a portal's Location must not receive it.
            async with self._session.post(
                self._cfg.url, params=params, data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Not connected: nothing was sent. (ConnectionTimeoutError is a TimeoutError too.)
            return _Reply(None, self._redact(f"cannot connect to {self.masked_url}: {type(exc).__name__}: {exc}"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            # aiohttp's ClientResponseError (a peer not speaking HTTP) names the URL with its query.
            what = f"no answer within {self._cfg.timeout_s:g} s" if isinstance(exc, TimeoutError) else "no answer"
            return _Reply(None, self._redact(f"{what} from {self.masked_url}: {type(exc).__name__}: {exc}"), True)
        finally:
            self._window.take(self._clock())
        return _parse_reply(status, raw)

    def _wait(self, now: float, need: int) -> _Stop:
        """The rate window has no room for `need` requests: when it will. No error: the route's own
        limit is normal operation, and the outbox counts a retry_after without error as a rate
        limit, not a failure."""
        return _Stop(retry_after_s=self._window.wait_s(now, self._cfg.rate_per_minute, need))

    def _judge(self, reply: _Reply, ids: Sequence[int]) -> _Stop | None:
        """None when the request (for the events `ids`) succeeded; else what to tell the outbox."""
        if reply.errcode == ERR_OK:
            return None
        if reply.uncertain:
            # WeCom may have posted it: sent again only after a conservative delay.
            attempts = self._uncertain[ids[0]] = self._uncertain.get(ids[0], 0) + 1
            wait = min(MAX_RESEND_S, self._cfg.resend_after_s * 2 ** (attempts - 1))
            return _Stop(retry_after_s=wait, error=(
                f"{reply.message}; WeCom may have posted it: sent again in {wait:g} s, so a repeat is possible "
                f"(event #{ids[0]}, no answer {attempts}×)"))
        if reply.errcode == ERR_BAD_KEY:
            reason = f"WeCom rejects the robot key (errcode 93000, {reply.message}); url {self.masked_url}"
            return _Stop(disabled=reason, error=reason)
        if reply.errcode == ERR_RATE:
            now = self._clock()
            self._window.block(now)
            wait = self._window.wait_s(now, self._cfg.rate_per_minute, 1)
            return _Stop(retry_after_s=wait, error=f"WeCom rate limit (errcode 45009, {reply.message})")
        return _Stop(error=reply.message if reply.errcode is None else f"errcode {reply.errcode}: {reply.message}")

    def _shrink(self, size: int, reply: _Reply) -> _Stop | None:
        """40058 for a message of `size` bytes: halve the budget and plan again (None), or an
        error when it can shrink no further."""
        smaller = max(_MIN_BYTES, min(self._budget, size) // 2)
        if smaller >= size:
            return _Stop(error=f"WeCom refuses even a {size}-byte message (errcode 40058, {reply.message})")
        log.warning(
            "wecom route %s: WeCom refused a %d-byte message as too long (40058); messages now at most %d bytes",
            self.name,
            size,
            smaller,
        )
        self._budget = smaller
        return None

    def _redact(self, text: str) -> str:
        return text.replace(self._key.get_secret_value(), "***")


def _parse_reply(status: int, raw: bytes) -> _Reply:
    """WeCom's answer: HTTP 200 and a JSON object with an integer errcode, else no answer."""
    if status != 200:
        # 504: a gateway gave up waiting for WeCom, which may have posted the message.
        return _Reply(None, f"HTTP {status}: {raw[:_ERRMSG_LIMIT]!r}", uncertain=status == 504)
    try:
        doc = json.loads(raw)
        errcode = doc["errcode"]
        if not isinstance(errcode, int):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return _Reply(None, f"HTTP 200 without a WeCom answer: {raw[:_ERRMSG_LIMIT]!r}")
    return _Reply(errcode, str(doc.get("errmsg", ""))[:_ERRMSG_LIMIT])
