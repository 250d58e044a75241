"""DingTalk and Feishu group-robot simulators for tests, from their published custom-robot
documents (request shapes, signing, limits and error codes: rules/alerting/notifiers/robots.py).

`RobotServer(token=…, secret=…)` on the running loop serves both:
- DingTalk: `POST /robot/send?access_token=…[&timestamp=&sign=]`, answers {"errcode", "errmsg"};
- Feishu: `POST /open-apis/bot/v2/hook/{token}` with timestamp/sign in the body, answers
  {"code", "msg", "data"}.
It checks the token (DingTalk 300001, Feishu 19001), the signature when `secret` is set
(timestamp within an hour; DingTalk 310000 "sign not match", Feishu 19021), `keywords` (DingTalk
310000 "keywords not in content", Feishu 19024), the size (DingTalk 460101 over 20,000 bytes of
content, Feishu 9499 over a 20 KB body), and the rate: more than `per_minute` messages in 60 s
(default: DingTalk 20, Feishu 100) → DingTalk 130101 and a 10-minute throttle
(`throttled_until`), Feishu 11232. Scripted faults, consumed in order by `fail_next`: "http500",
"hang" (never answers), "late:S" (delivers, then answers after S seconds).
Accepted messages are in `received` (dialect, the JSON document).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class RobotServer:
    token: str = "robot-token-5d1e"
    secret: str | None = None
    keywords: tuple[str, ...] = ()
    per_minute: dict[str, int] = field(default_factory=lambda: {"dingtalk": 20, "feishu": 100})
    fail_next: list[str] = field(default_factory=list)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: int = 0
    throttled_until: float = 0.0
    url: str = ""
    _sent: dict[str, deque[float]] = field(default_factory=lambda: {"dingtalk": deque(), "feishu": deque()})
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _fault(self) -> tuple[str, float]:
        self.requests += 1
        fault = self.fail_next.pop(0) if self.fail_next else ""
        if fault == "hang":
            await self._closing.wait()
        if fault.startswith("late:"):
            return "late", float(fault[5:])
        return fault, 0.0

    def _rate(self, dialect: str) -> bool:
        """True when this message is over the limit (and counts it otherwise)."""
        now = time.monotonic()
        sent = self._sent[dialect]
        while sent and sent[0] <= now - 60:
            sent.popleft()
        if dialect == "dingtalk" and now < self.throttled_until:
            return True
        if len(sent) >= self.per_minute[dialect]:
            if dialect == "dingtalk":
                self.throttled_until = now + 600
            return True
        sent.append(now)
        return False

    async def _dingtalk(self, request: web.Request) -> web.Response:
        fault, delay = await self._fault()
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        raw = await request.read()

        def answer(code: int, msg: str) -> web.Response:
            return web.json_response({"errcode": code, "errmsg": msg})

        if request.query.get("access_token") != self.token:
            return answer(300001, "token is not exist")
        if self.secret is not None:
            try:
                stamp = int(request.query.get("timestamp", ""))
            except ValueError:
                return answer(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
            mac = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256).digest()
            given = request.query.get("sign", "")  # URL-decoded once, as DingTalk does
            if abs(time.time() * 1000 - stamp) > 3_600_000 or not hmac.compare_digest(given, base64.b64encode(mac).decode()):
                return answer(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
        try:
            doc = json.loads(raw)
            content = doc["text"]["content"] if doc.get("msgtype") == "text" else doc["markdown"]["text"]
        except (ValueError, KeyError, TypeError):
            return answer(40035, "缺少参数 json")
        if self.keywords and not any(k in content for k in self.keywords):
            return answer(310000, "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
        if len(content.encode()) > 20_000:
            return answer(460101, "message too long, exceed 20000 bytes")
        if self._rate("dingtalk"):
            return answer(130101, "send too fast, exceed 20 times per minute")
        self.received.append(("dingtalk", doc))
        if delay:
            await asyncio.sleep(delay)
        return answer(0, "ok")

    async def _feishu(self, request: web.Request) -> web.Response:
        fault, delay = await self._fault()
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        raw = await request.read()

        def answer(code: int, msg: str) -> web.Response:
            return web.json_response({"code": code, "msg": msg, "data": {}})

        if request.match_info["token"] != self.token:
            return answer(19001, "param invalid: incoming webhook access token invalid")
        if len(raw) > 20 * 1024:
            return answer(9499, "Bad Request")
        try:
            doc = json.loads(raw)
            content = doc["content"]["text"]
        except (ValueError, KeyError, TypeError):
            return answer(9499, "Bad Request")
        if self.secret is not None:
            try:
                stamp = int(doc.get("timestamp", ""))
            except (ValueError, TypeError):
                return answer(19021, "sign match fail or timestamp is not within one hour from current time")
            mac = hmac.new(f"{stamp}\n{self.secret}".encode(), b"", hashlib.sha256).digest()
            if abs(time.time() - stamp) > 3600 or not hmac.compare_digest(str(doc.get("sign", "")), base64.b64encode(mac).decode()):
                return answer(19021, "sign match fail or timestamp is not within one hour from current time")
        if self.keywords and not any(k in content for k in self.keywords):
            return answer(19024, "Key Words Not Found")
        if self._rate("feishu"):
            return answer(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]")
        self.received.append(("feishu", doc))
        if delay:
            await asyncio.sleep(delay)
        return answer(0, "success")
