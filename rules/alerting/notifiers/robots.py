"""DingTalk (钉钉) and Feishu (飞书) group custom robots: fault events as text messages in the duty
group, as for WeCom (rules.alerting.notifiers.wecom: the same texts, digests and rate window).

DingTalk custom robot (自定义机器人, https://open.dingtalk.com/document/robots/custom-robot-access):
- `POST https://oapi.dingtalk.com/robot/send?access_token=TOKEN[&timestamp=MS&sign=SIGN]`, JSON
  `{"msgtype": "text", "text": {"content": …}, "at": {"atMobiles": ["138…"], "isAtAll": false}}`;
  a mobile in atMobiles is highlighted when the content also says "@138…".
- 加签 (signing): sign = urlencode(Base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))
  with timestamp in milliseconds, accepted within one hour of DingTalk's clock.
- 20 messages a minute per robot; beyond, the robot is throttled for 10 minutes (errcode 130101
  "send too fast"); content at most 20,000 bytes (460101 "message too long").
- Answers `{"errcode": 0, "errmsg": "ok"}`; 310000 (sign not match, keywords not in content, IP
  not in the whitelist: the robot's security settings), 300001/400101 (access_token does not
  exist), 400102 (robot stopped), 130101 (rate), 460101 (too long), 90030 (webhook over the
  organisation's quota).
Feishu custom bot (自定义机器人, https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
- `POST https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN`, JSON `{"msg_type": "text",
  "content": {"text": …}}` plus `"timestamp": "S", "sign": SIGN` when signing is on:
  sign = Base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg="")), timestamp in seconds within
  one hour.
- 100 requests a minute and 5 a second per bot; body at most 20 KB.
- Answers `{"code": 0, "msg": "success", "data": {}}`; 19021 (sign match fail or timestamp
  outside an hour), 19022 (IP not allowed), 19024 (keywords not found), 19001 (param invalid:
  the webhook token is invalid), 9499 (bad request), 11232 (frequency limited).
  A custom bot cannot @ people by mobile (only by open_id), so Feishu messages carry no mentions.

What the route does with that (the outbox owns durability; see the WeCom route for the shared
parts):
- One text message per event while the robot's window has room, else digests; mentions of the
  on-duty mobiles on DingTalk for events at least `mention_min_severity`.
- Rate limit answers (130101, 11232) block the window and come back as retry_after_s (DingTalk's
  throttle lasts 10 minutes: THROTTLE_S).
- Security-setting refusals (310000, 19021/19022/19024) and a wrong token (300001, 400101,
  19001) or a stopped robot (400102) can't heal by retrying soon: retry_after_s =
  REJECTED_RETRY_S with an error saying what to check (a token that does not exist disables the
  route, like WeCom's 93000).
- Too long: the message budget is halved and the events rendered again (down to 512 bytes).
- No connection (nothing was sent), HTTP status ≠ 200 other than 504, other codes: an error;
  the outbox's backoff.
- No answer after the request went out (timeout, broken connection, 504): the robot may have
  posted it (as WeCom did, issue 13), so it is sent again only after `resend_after_s`, doubled
  for each further such attempt of the same event (at most MAX_RESEND_S), never at the quick
  backoff; every message names its events' ids (#17), so a repeat is visible as one.
The token and secret never appear in logs or errors (the URL is shown with `***`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import aiohttp
from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets, is_bare_http_url
from monitor.core.timecheck import ZoneName
from rules.alerting.duty import DutyRoster
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase
from rules.alerting.notifiers.texts import MENTIONED_KINDS, Renderer, utf8_len
from rules.alerting.notifiers.wecom import CONNECT_TIMEOUT_S, MAX_RESEND_S, robot_window
from rules.model import FaultEvent, Severity

THROTTLE_S = 600.0
"""DingTalk throttles a robot that sent more than 20 messages in a minute for 10 minutes."""
REJECTED_RETRY_S = 600.0
MIN_BYTES = 512
_ERRMSG = 200


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two robots."""

    name: str  # "DingTalk" | "Feishu"
    default_url: str
    max_bytes: int  # content budget
    rate_per_minute: int
    ok: int
    rate: frozenset[int]
    too_long: frozenset[int]
    bad_token: frozenset[int]
    security: frozenset[int]


DINGTALK = Dialect("DingTalk", "https://oapi.dingtalk.com/robot/send", 20_000, 20, 0, frozenset({130101, 90030}),
                   frozenset({460101}), frozenset({300001, 400101}), frozenset({310000, 400102}))
FEISHU = Dialect("Feishu", "https://open.feishu.cn/open-apis/bot/v2/hook", 18_000, 100, 0, frozenset({11232}),
                 frozenset({9499}), frozenset({19001}), frozenset({19021, 19022, 19024}))
# Feishu's 20 KB is the whole body: 18,000 bytes of text leave room for JSON escaping and the
# signature. Its 9499 "Bad Request" is also what an oversized body gets.


class _RobotConfig(RouteConfigBase, WithSecrets):
    model_config = ConfigDict(hide_input_in_errors=True)
    secrets = ("token", "secret")

    url: str | None = None
    token_env: str | None = None
    token_file: Path | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    language: Literal["zh", "en"] = "zh"
    timezone: ZoneName = "Asia/Shanghai"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 30.0
    resend_after_s: Annotated[float, Field(gt=0, le=3600)] = 120.0

    token: ResolvedSecret = None
    secret: ResolvedSecret = None

    @field_validator("url")
    @classmethod
    def _plain_url(cls, url: str | None) -> str | None:
        if url is not None and not is_bare_http_url(url):
            raise ValueError("must be the robot's http(s) address without the token: the token goes in token_env or token_file")
        return url

    @model_validator(mode="after")
    def _token_required(self) -> Self:
        if self.token is None:
            raise ValueError("give the robot's token (access_token / hook id) as token_env or token_file")
        return self


class DingTalkConfig(_RobotConfig):
    """A DingTalk robot route (`type: dingtalk`): url (DingTalk's by default), token_env/_file
    (the access_token), secret_env/_file (the 加签 secret, when signing is on), rate_per_minute
    (≤ 20), mention_min_severity (@ the on-duty mobiles), language, timezone, timeout_s."""

    type: Literal["dingtalk"]
    rate_per_minute: Annotated[int, Field(ge=1, le=20)] = 20
    mention_min_severity: Severity | None = Severity.MAJOR


class FeishuConfig(_RobotConfig):
    """A Feishu bot route (`type: feishu`): url (Feishu's hook base by default), token_env/_file
    (the hook id after /hook/), secret_env/_file (签名校验 secret), rate_per_minute (≤ 100),
    language, timezone, timeout_s."""

    type: Literal["feishu"]
    rate_per_minute: Annotated[int, Field(ge=1, le=100)] = 100


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: Base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}")) (not yet URL-encoded)."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名校验: Base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=""))."""
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class _RobotRoute:
    type: ClassVar[str]
    dialect: ClassVar[Dialect]

    def __init__(self, cfg: DingTalkConfig | FeishuConfig, duty: DutyRoster | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert cfg.token is not None
        self.cfg = cfg
        self.name = cfg.name
        self._duty = duty
        self._clock = clock
        self._renderer = Renderer("text", cfg.language, cfg.timezone)
        self._budget = self.dialect.max_bytes
        self._url = cfg.url or self.dialect.default_url
        self._window = robot_window(self._url, cfg.token)
        self._session: aiohttp.ClientSession | None = None
        self._uncertain: dict[int, int] = {}  # first event id of a message → answerless attempts

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=self.cfg.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.cfg.timeout_s)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """As many of `events` as the window allows, singly when they fit, else as digests;
        `progress(ids)` after each message the robot accepted."""
        delivered: list[int] = []
        pending = list(events)
        while pending:
            free = self._window.free(self._clock(), self.cfg.rate_per_minute)
            if free < 1:
                return Delivery(tuple(delivered), retry_after_s=self._window.wait_s(
                    self._clock(), self.cfg.rate_per_minute, 1))
            if len(pending) <= free:
                plan = [((e,), self._renderer.single(e, self._budget)) for e in pending]
            else:
                plan = list(self._renderer.digest(pending, self._budget))[:free]
            for group, content in plan:
                code, message, uncertain = await self._post(self._payload(group, content))
                if uncertain:
                    attempts = self._uncertain[group[0].id] = self._uncertain.get(group[0].id, 0) + 1
                    wait = min(MAX_RESEND_S, self.cfg.resend_after_s * 2 ** (attempts - 1))
                    return Delivery(tuple(delivered), retry_after_s=wait, error=(
                        f"{self.dialect.name} {message}; it may have been posted: sent again in {wait:g} s, so a "
                        f"repeat is possible (event #{group[0].id}, no answer {attempts}×)"))
                if code == self.dialect.ok:
                    self._uncertain.pop(group[0].id, None)
                    delivered += [e.id for e in group]
                    del pending[: len(group)]
                    if progress is not None:
                        await progress([e.id for e in group])
                    continue
                if code in self.dialect.too_long and self._budget > MIN_BYTES:
                    self._budget = max(MIN_BYTES, min(self._budget, utf8_len(content)) // 2)
                    break  # plan again, smaller
                return self._failed(delivered, code, message)
        return Delivery(tuple(delivered))

    def _failed(self, delivered: list[int], code: int | None, message: str) -> Delivery:
        what = f"{self.dialect.name} " + (f"code {code}: {message}" if code is not None else message)
        if code in self.dialect.rate:
            now = self._clock()
            self._window.block(now)
            wait = THROTTLE_S if self.dialect is DINGTALK and code == 130101 else self._window.wait_s(
                now, self.cfg.rate_per_minute, 1)
            return Delivery(tuple(delivered), retry_after_s=wait, error=f"{what} (rate limit)")
        if code in self.dialect.bad_token:
            reason = f"{what}: the robot's token is wrong or the robot was removed ({self._masked()})"
            return Delivery(tuple(delivered), disabled=reason, error=reason)
        if code in self.dialect.security:
            return Delivery(tuple(delivered), retry_after_s=REJECTED_RETRY_S,
                            error=f"{what}: check the robot's security settings (signing secret, keywords, IP whitelist)")
        return Delivery(tuple(delivered), error=what)

    async def _post(self, payload: dict[str, Any]) -> tuple[int | None, str, bool]:
        """(code, message, uncertain): code None = no robot answer; uncertain = the request went
        out and no answer came (the robot may have posted it)."""
        assert self._session is not None
        url, params = self._target(payload)
        body = json.dumps(payload, ensure_ascii=False).encode()
        try:
            async with self._session.post(url, params=params, data=body, allow_redirects=False,
                                          headers={"Content-Type": "application/json; charset=utf-8"}) as resp:
                raw, status = await resp.content.read(65_536), resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return None, f"cannot connect to {self._masked()}: {type(exc).__name__}", False
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, f"no answer from {self._masked()}: {type(exc).__name__}", True
        finally:
            self._window.take(self._clock())
        if status != 200:
            return None, f"HTTP {status} from {self._masked()}", status == 504
        try:
            doc = json.loads(raw)
            code = doc["errcode" if self.dialect is DINGTALK else "code"]
            if not isinstance(code, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return None, f"HTTP 200 without a {self.dialect.name} answer: {raw[:_ERRMSG]!r}", False
        return code, str(doc.get("errmsg" if self.dialect is DINGTALK else "msg", ""))[:_ERRMSG], False

    def _masked(self) -> str:
        return f"{self._url}{'?access_token=***' if self.dialect is DINGTALK else '/***'}"

    def _target(self, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def _payload(self, events: tuple[FaultEvent, ...], content: str) -> dict[str, Any]:
        raise NotImplementedError


class DingTalkRoute(_RobotRoute):
    """The `dingtalk` route (rules.alerting.notifiers.base.Route); see the module doc."""

    type: ClassVar[str] = "dingtalk"
    dialect: ClassVar[Dialect] = DINGTALK

    def _target(self, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
        assert self.cfg.token is not None
        params = {"access_token": self.cfg.token.get_secret_value()}
        if self.cfg.secret is not None:
            stamp = time.time_ns() // 1_000_000  # DingTalk checks it against its wall clock
            params |= {"timestamp": str(stamp), "sign": dingtalk_sign(self.cfg.secret.get_secret_value(), stamp)}
        return self._url, params

    def _payload(self, events: tuple[FaultEvent, ...], content: str) -> dict[str, Any]:
        assert isinstance(self.cfg, DingTalkConfig)
        floor = self.cfg.mention_min_severity
        urgent = floor is not None and self._duty is not None and any(
            e.kind in MENTIONED_KINDS and e.fault.severity.rank <= floor.rank for e in events)
        mobiles = list(dict.fromkeys(s.mobile for s in self._duty.on_duty(time.time_ns()))) if urgent and self._duty else []
        if mobiles:
            content += "\n" + " ".join(f"@{m}" for m in mobiles)
        return {"msgtype": "text", "text": {"content": content}, "at": {"atMobiles": mobiles, "isAtAll": False}}


class FeishuRoute(_RobotRoute):
    """The `feishu` route (rules.alerting.notifiers.base.Route); see the module doc."""

    type: ClassVar[str] = "feishu"
    dialect: ClassVar[Dialect] = FEISHU

    def _target(self, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
        assert self.cfg.token is not None
        if self.cfg.secret is not None:
            stamp = time.time_ns() // 1_000_000_000  # Feishu checks it against its wall clock
            payload |= {"timestamp": str(stamp), "sign": feishu_sign(self.cfg.secret.get_secret_value(), stamp)}
        return f"{self._url.rstrip('/')}/{self.cfg.token.get_secret_value()}", {}

    def _payload(self, events: tuple[FaultEvent, ...], content: str) -> dict[str, Any]:
        return {"msg_type": "text", "content": {"text": content}}
