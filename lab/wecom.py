"""A WeCom (企业微信) group-robot webhook server on loopback, for tests, `make demo` and benchmarks.

It answers `POST /cgi-bin/webhook/send?key=KEY` and `POST /cgi-bin/webhook/upload_media?key=KEY&type=…`
the way the published robot API does (群机器人配置说明,
https://developer.work.weixin.qq.com/document/path/91770; error codes: 全局错误码,
https://developer.work.weixin.qq.com/document/path/90313):

- Every protocol error is HTTP 200 with `{"errcode": N, "errmsg": "…"}`; success is errcode 0,
  `"errmsg": "ok"`. errmsg has WeCom's shape: "<reason>, hint: [<id>], from ip: <ip>, more info at
  https://open.work.weixin.qq.com/devtool/query?e=<N>".
- 93000 "invalid webhook url": no key, or a key that is not (or no longer) a robot.
- 47001 "data format error": the body is not a UTF-8 JSON object.
- 40008 "invalid message type": msgtype is not "text", "markdown", "file" or "image" (the robot
  API has more types, news, template_card…; they are not simulated and are answered 40008).
- 40035 "invalid parameter": `text`/`markdown` is not an object, content is not a string, a
  mentioned list is not a list of strings.
- 44004 "empty content": content missing or empty.
- 40058 "<msgtype>.content exceed max length N. invalid Request Parameter": content longer than
  4096 bytes (markdown) or 2048 bytes (text), counted in UTF-8 bytes as the API documents.
  Servers have been seen accepting text up to 5120 bytes; the documented limit is the default.
- 45009 "api freq out of limit": more than 20 accepted messages for one key in any window of
  `window_s` seconds (60 s at WeCom; injectable with `clock` for fast tests). Rejected requests
  do not count.

File messages and their upload:
- `upload_media`: multipart/form-data with a part named `media` (its Content-Disposition
  carries filename and filelength); `type` is "file" (at most 20 MB) or "voice" (at most 2 MB);
  every file must be more than 5 bytes ("所有类型的文件大小均要求大于5个字节"). Answers:
  `{"errcode": 0, "errmsg": "ok", "type": …, "media_id": …, "created_at": "<unix s>"}`;
  93000 for a bad key; 40005 "invalid file type" for another `type`; 44001 "empty media data"
  when the body is not multipart or has no `media` part; 40006 "invalid file size" outside the
  limits (the global code for file sizes; 40009 is the one for images). Uploads are not
  messages: they do not count against the rate limit.
- `{"msgtype": "file", "file": {"media_id": …}}`: 40035 when `file` is not an object with a
  string media_id; 40007 "invalid media_id" when the id is unknown, older than `media_ttl_s`
  (three days: "该media_id仅三天内有效") or was uploaded by another robot ("media_id只能是对应上传
  文件的机器人可以使用").

Image messages, `{"msgtype": "image", "image": {"base64": …, "md5": …}}` ("图片（base64编码前）
最大不能超过2M，支持JPG,PNG格式"; md5 of the image before encoding): 40035 when `image` is not
an object with string base64 and md5 or base64 does not decode; 44004 for no image data; 40009
"invalid image size" above MAX_IMAGE_BYTES; 40005 "invalid file type" when the bytes are
neither JPEG nor PNG; 301019 "media md5 not match" when the md5 differs (the errmsg WeCom
answers, as clients report it). The image is kept on the message (`image`).

Markdown messages cannot @mention by mobile: their `mentioned_mobile_list` is ignored (recorded as
empty), as WeCom ignores it. Received messages are kept per key, in arrival order, with the
simulator clock's time of arrival.

Fault injection: `fail_with(errcode, for_s=… | times=…)` answers every request with that errcode
for a while; `fail_http(status, body, times=, headers=)` answers with a raw HTTP status and a
non-WeCom body (a proxy's 502, a portal's redirect, a 200 that is not JSON); `delay_s` holds
every answer back (for client timeouts); `hang(times=, after=)` reads requests and never answers
them (nor posts them: a server that stalled before doing anything); `answer_late(seconds,
times=, after=)` posts the message at once, as WeCom does, and answers only after `seconds`
(the client may have given up by then: its retry is a duplicate in the group). Held requests
are let go when the simulator stops.

Use: `async with WeComSimulator() as wecom: key = wecom.add_robot(); … wecom.url …`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.multipart import parse_content_disposition

SEND_PATH = "/cgi-bin/webhook/send"
UPLOAD_PATH = "/cgi-bin/webhook/upload_media"
MAX_BYTES = {"markdown": 4096, "text": 2048}
MAX_MEDIA_BYTES = {"file": 20 * 1024 * 1024, "voice": 2 * 1024 * 1024}
MIN_MEDIA_BYTES = 6  # "大于5个字节"
MEDIA_TTL_S = 3 * 86_400.0
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # before base64
MSGTYPES = ("text", "markdown", "file", "image")
RATE_LIMIT = 20  # messages per robot key
RATE_WINDOW_S = 60.0

ERRMSG = {
    0: "ok",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40035: "invalid parameter",
    40058: "invalid Request Parameter",
    44001: "empty media data",
    44004: "empty content",
    45009: "api freq out of limit",
    47001: "data format error",
    93000: "invalid webhook url",
    301019: "media md5 not match",
    -1: "system busy",
}


@dataclass(frozen=True, slots=True)
class Media:
    """A file uploaded to a robot: its key, media_id, `type` ("file" | "voice"), the filename
    and filelength its form-data part declared (None when absent), the bytes received, and
    the simulator clock at upload."""

    key: str
    media_id: str
    type: str
    filename: str | None
    filelength: str | None
    data: bytes
    at: float


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message the robot posted to its group.

    - at: simulator clock (seconds) at arrival.
    - msgtype: "text" | "markdown" | "file" | "image"; content: as sent (str); for a file message
      the media's filename, and `media` the uploaded file it posted; for an image its md5, and
      `image` the bytes.
    - mentioned_mobile_list / mentioned_list: the @mentions of a text message (empty for markdown,
      which cannot carry them).
    """

    at: float
    msgtype: str
    content: str
    mentioned_mobile_list: tuple[str, ...] = ()
    mentioned_list: tuple[str, ...] = ()
    media: Media | None = None
    image: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What the simulator answered one request: errcode (None = an injected raw HTTP failure)."""

    at: float
    key: str
    errcode: int | None


@dataclass(slots=True)
class _Stall:
    kind: str  # "hang" | "late"
    seconds: float
    times: int
    after: int  # requests answered normally before the stall applies


HANG_MAX_S = 600.0
"""A hung request is answered after this at the latest (bounded; the client has long given up)."""


@dataclass(slots=True)
class _Injection:
    errcode: int
    until: float | None  # simulator clock; None = count-limited
    times: int | None


class WeComSimulator:
    """The robot server. `url` is the send endpoint (http://127.0.0.1:PORT/cgi-bin/webhook/send),
    known after start.

    - clock: seconds, monotonic; arrival times and the rate window use it (a test can pass a fake
      clock and move time instead of sleeping).
    - window_s / rate_limit: the per-key limit, 20 messages in any 60 s at WeCom.
    - markdown_max_bytes / text_max_bytes: content limits in UTF-8 bytes (40058 beyond).
    - delay_s: every answer waits this long first (real seconds), to exercise client timeouts.
    - media_ttl_s: how long a media_id stays valid (three days at WeCom).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = RATE_WINDOW_S,
        rate_limit: int = RATE_LIMIT,
        markdown_max_bytes: int = MAX_BYTES["markdown"],
        text_max_bytes: int = MAX_BYTES["text"],
        delay_s: float = 0.0,
        media_ttl_s: float = MEDIA_TTL_S,
    ) -> None:
        self.clock = clock
        self.window_s = window_s
        self.rate_limit = rate_limit
        self.max_bytes = {"markdown": markdown_max_bytes, "text": text_max_bytes}
        self.delay_s = delay_s
        self.media_ttl_s = media_ttl_s
        self.answers: list[Answer] = []
        self.upload_url = ""
        self._media: dict[str, Media] = {}
        self.url = ""
        self._robots: set[str] = set()
        self._messages: dict[str, list[ReceivedMessage]] = {}
        self._injection: _Injection | None = None
        self._stall: _Stall | None = None
        self._released: asyncio.Event | None = None
        self.stalled: list[tuple[str, float]] = []
        """(kind, simulator clock) of every request held by `hang` or `answer_late`."""
        self._http_failures: list[tuple[int, str, dict[str, str]]] = []
        self._hints = itertools.count(1_700_000_000_000_000_000)
        self._runner: web.AppRunner | None = None

    # -- robots and what they received ---------------------------------------------------------

    def add_robot(self, key: str | None = None) -> str:
        """Create a robot and return its key (a new UUID, like WeCom's, unless given)."""
        key = key or str(uuid.uuid4())
        self._robots.add(key)
        self._messages.setdefault(key, [])
        return key

    def remove_robot(self, key: str) -> None:
        """Remove the robot from its group: later sends with its key get 93000. Its received
        messages stay readable."""
        self._robots.discard(key)

    def messages(self, key: str) -> list[ReceivedMessage]:
        """Messages accepted for `key`, in arrival order (a copy)."""
        return list(self._messages.get(key, ()))

    def uploads(self, key: str) -> list[Media]:
        """Files uploaded with `key`, in arrival order."""
        return [m for m in self._media.values() if m.key == key]

    def errcodes(self, key: str) -> list[int | None]:
        """The errcode of every answer to requests with `key`, in order (None: injected HTTP failure)."""
        return [a.errcode for a in self.answers if a.key == key]

    # -- fault injection -----------------------------------------------------------------------

    def fail_with(self, errcode: int, *, for_s: float | None = None, times: int | None = None) -> None:
        """Answer every request with `errcode` (HTTP 200, WeCom's errmsg) for the next `for_s`
        seconds of the simulator clock, or the next `times` requests (one of the two; `times=1`
        when neither). Replaces an earlier injection; `fail_with(0, times=0)` clears it."""
        if for_s is not None and times is not None:
            raise ValueError("give for_s or times, not both")
        if for_s is None and times is None:
            times = 1
        until = self.clock() + for_s if for_s is not None else None
        self._injection = _Injection(errcode, until, times)

    def fail_http(
        self,
        status: int,
        body: str = "<html><body>502 Bad Gateway</body></html>",
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests with HTTP `status`, `headers` and `body` as text/html
        (not a WeCom answer), as a proxy, a captive portal (302 + Location) or a broken gateway
        would; status 200 makes a 200 that is not JSON."""
        self._http_failures += [(status, body, headers or {})] * times

    def hang(self, *, times: int = 1, after: int = 0) -> None:
        """After `after` requests answered normally, read the next `times` send requests and
        answer none of them (nothing is posted); the client's timeout decides. Replaces an
        earlier hang or late answer."""
        self._stall = _Stall("hang", HANG_MAX_S, times, after)

    def answer_late(self, seconds: float, *, times: int = 1, after: int = 0) -> None:
        """After `after` requests answered normally, process the next `times` send requests at
        once (a valid message is posted to the group) and answer each only after `seconds`.
        Replaces an earlier hang or late answer."""
        self._stall = _Stall("late", seconds, times, after)

    def answer_normally(self) -> None:
        """End a hang or late-answer injection (requests already held stay held)."""
        self._stall = None

    def _next_stall(self) -> _Stall | None:
        stall = self._stall
        if stall is None:
            return None
        if stall.after > 0:
            stall.after -= 1
            return None
        stall.times -= 1
        if stall.times <= 0:
            self._stall = None
        return stall

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds`, or until the simulator stops."""
        assert self._released is not None
        try:
            await asyncio.wait_for(self._released.wait(), seconds)
        except TimeoutError:
            pass

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> Self:
        # Room for a file above WeCom's 20 MB, so that the simulator, not aiohttp, refuses it.
        app = web.Application(client_max_size=2 * MAX_MEDIA_BYTES["file"])
        app.router.add_post(SEND_PATH, self._send)
        app.router.add_post(UPLOAD_PATH, self._upload)
        self._released = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None)  # quiet: tests read `answers` instead
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{SEND_PATH}"
        self.upload_url = f"http://127.0.0.1:{port}{UPLOAD_PATH}"
        return self

    async def stop(self) -> None:
        if self._released is not None:
            self._released.set()  # held requests end now, not at their time
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- the endpoint ----------------------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        raw = await request.read()
        key = request.query.get("key", "")
        now = self.clock()
        stall = self._next_stall()
        if stall is not None:
            self.stalled.append((stall.kind, now))
            if stall.kind == "hang":
                await self._hold(stall.seconds)
                return web.Response(status=504, text="held by the simulator", content_type="text/plain")
        if self._http_failures:
            return self._http_failure(now, key)
        errcode, detail = self._check(key, raw, now)
        self.answers.append(Answer(now, key, errcode))
        if stall is not None:  # late: posted already, answered only now
            await self._hold(stall.seconds)
        return web.json_response({"errcode": errcode, "errmsg": self._errmsg(errcode, detail)})

    async def _upload(self, request: web.Request) -> web.Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        key = request.query.get("key", "")
        kind = request.query.get("type", "")
        now = self.clock()
        if self._http_failures:
            await request.read()
            return self._http_failure(now, key)
        part = await _media_part(request)  # read in any case: a client must get its answer
        errcode = self._injected(now)
        if errcode is None:
            if key not in self._robots:
                errcode = 93000
            elif kind not in MAX_MEDIA_BYTES:
                errcode = 40005
            elif part is None:
                errcode = 44001
            elif not MIN_MEDIA_BYTES <= len(part[2]) <= MAX_MEDIA_BYTES[kind]:
                errcode = 40006
            else:
                errcode = 0
        self.answers.append(Answer(now, key, errcode))
        if errcode != 0:
            return web.json_response({"errcode": errcode, "errmsg": self._errmsg(errcode, None)})
        assert part is not None
        filename, filelength, data = part
        media = Media(key, uuid.uuid4().hex + uuid.uuid4().hex[:12], kind, filename, filelength, data, now)
        self._media[media.media_id] = media
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "type": kind,
                "media_id": media.media_id,
                "created_at": str(int(time.time())),
            }
        )

    def _http_failure(self, now: float, key: str) -> web.Response:
        status, body, headers = self._http_failures.pop(0)
        self.answers.append(Answer(now, key, None))
        return web.Response(status=status, text=body, content_type="text/html", headers=headers)

    def _check(self, key: str, raw: bytes, now: float) -> tuple[int, str | None]:
        """(errcode, reason override) for one request, in the order WeCom reports them; an
        accepted message (errcode 0) is stored."""
        injected = self._injected(now)
        if injected is not None:
            return injected, None
        if key not in self._robots:
            return 93000, None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 47001, None
        if not isinstance(body, dict):
            return 47001, None
        msgtype = body.get("msgtype")
        if msgtype not in MSGTYPES:
            return 40008, None
        if msgtype == "file":
            return self._file_message(key, body.get("file"), now)
        if msgtype == "image":
            return self._image_message(key, body.get("image"), now)
        part = body.get(msgtype)
        if part is None or isinstance(part, dict) and not part.get("content"):
            return 44004, None
        if not isinstance(part, dict) or not isinstance(part["content"], str):
            return 40035, None
        mentions = {name: part.get(name, []) for name in ("mentioned_mobile_list", "mentioned_list")}
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in mentions.values()):
            return 40035, None
        limit = self.max_bytes[msgtype]
        if len(part["content"].encode("utf-8")) > limit:
            return 40058, f"{msgtype}.content exceed max length {limit}. invalid Request Parameter"
        if self._in_window(key, now) >= self.rate_limit:
            return 45009, None
        if msgtype == "markdown":  # WeCom markdown cannot @ by mobile or userid list: ignored
            mentions = {name: [] for name in mentions}
        self._messages[key].append(
            ReceivedMessage(
                now,
                msgtype,
                part["content"],
                tuple(mentions["mentioned_mobile_list"]),
                tuple(mentions["mentioned_list"]),
            )
        )
        return 0, None

    def _file_message(self, key: str, part: object, now: float) -> tuple[int, str | None]:
        if not isinstance(part, dict) or not isinstance(part.get("media_id"), str):
            return 40035, None
        media = self._media.get(part["media_id"])
        if media is None or media.key != key or now - media.at > self.media_ttl_s:
            return 40007, None
        if self._in_window(key, now) >= self.rate_limit:
            return 45009, None
        self._messages[key].append(ReceivedMessage(now, "file", media.filename or "", media=media))
        return 0, None

    def _image_message(self, key: str, part: object, now: float) -> tuple[int, str | None]:
        if not isinstance(part, dict) or not isinstance(part.get("base64"), str) or not isinstance(part.get("md5"), str):
            return 40035, None
        try:
            data = base64.b64decode(part["base64"], validate=True)
        except (binascii.Error, ValueError):
            return 40035, None
        if not data:
            return 44004, None
        if len(data) > MAX_IMAGE_BYTES:
            return 40009, None
        if not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
            return 40005, None
        if hashlib.md5(data).hexdigest() != part["md5"].lower():
            return 301019, None
        if self._in_window(key, now) >= self.rate_limit:
            return 45009, None
        self._messages[key].append(ReceivedMessage(now, "image", part["md5"].lower(), image=data))
        return 0, None

    def _injected(self, now: float) -> int | None:
        inj = self._injection
        if inj is None:
            return None
        if inj.until is not None and now >= inj.until or inj.times is not None and inj.times <= 0:
            self._injection = None
            return None
        if inj.times is not None:
            inj.times -= 1
        return inj.errcode

    def _in_window(self, key: str, now: float) -> int:
        """Messages accepted for `key` in the window (now - window_s, now]."""
        return sum(1 for m in self._messages[key] if m.at > now - self.window_s)

    def _errmsg(self, errcode: int, detail: str | None) -> str:
        if errcode == 0:
            return "ok"
        reason = detail or ERRMSG.get(errcode, "unknown error")
        return (
            f"{reason}, hint: [{next(self._hints)}], from ip: 127.0.0.1, "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        )


async def _media_part(request: web.Request) -> tuple[str | None, str | None, bytes] | None:
    """(filename, filelength, bytes) of the multipart body's `media` part; None when the body is
    not multipart/form-data or has no such part. Reads the whole body."""
    if not request.content_type.startswith("multipart/"):
        await request.read()
        return None
    found = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read()
            if part.name == "media" and found is None:
                _, params = parse_content_disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
                found = (part.filename, params.get("filelength"), bytes(data))
    except ValueError:  # a malformed multipart body
        return None
    return found
