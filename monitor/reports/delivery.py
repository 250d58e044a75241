"""Report files delivered to WeCom groups and by e-mail, with a short summary of the headline
figures.

WeCom (群机器人配置说明, https://developer.work.weixin.qq.com/document/path/91770; error codes:
全局错误码, https://developer.work.weixin.qq.com/document/path/90313). For each file:
1. `POST {upload_url}?key=KEY&type=file`, multipart/form-data with one part named `media`
   carrying `filename` and `filelength` (the file's display name and size). The file must be
   more than 5 bytes and at most 20 MB; the answer is
   `{"errcode": 0, "errmsg": "ok", "type": "file", "media_id": "…", "created_at": "…"}` and
   the media_id is valid for three days, for the robot that uploaded it only.
2. `POST {send_url}?key=KEY` with `{"msgtype": "file", "file": {"media_id": "…"}}`.
Then one markdown message with the summary (at most 4096 UTF-8 bytes). The upload URL is the
route's send URL with `/send` replaced by `/upload_media`; key, URL, timeout and language are
the WeCom route's (config `notify.routes`, named in `reports.delivery.wecom`). Messages share
the robot's 20-per-minute window with the fault route (rules.alerting.notifiers.wecom), and
wait for room in it (at most one window); uploads are not messages and do not count.

Sizes are checked before anything is sent: a file outside 6 B … 20 MB is refused locally,
with its size and the limit. A WeCom answer other than errcode 0 stops that group's delivery
with the errcode and errmsg (93000: the key is wrong or the robot was removed; 45009: the rate
limit, with `retry_after_s`; 40006: the file size; 40007: the media_id is unknown or expired).

E-mail (aiosmtplib): one message per report with the summary as its text and the files
attached; a file larger than `max_attachment_mb` is named in the text instead. STARTTLS or TLS
as configured; the server's certificate is verified against the system's CAs, or `ca_file`.

Every failure raises `DeliveryError` naming the target and the file; the key and the password
never appear in it. The report files are never touched: a failed delivery leaves them in the
reports directory.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import aiohttp

from monitor.reports.config import EmailConfig
from monitor.reports.document import Report
from monitor.reports.text import kpi_text, period_text, verdict, words
from rules.alerting.notifiers.email import SmtpError, smtp_send
from rules.alerting.notifiers.texts import fit_bytes, utf8_len
from rules.alerting.notifiers.wecom import MAX_BYTES, RATE_WINDOW_S, WeComConfig, robot_window

MIN_FILE_BYTES = 6
"""WeCom: "所有类型的文件大小均要求大于5个字节"."""
MAX_FILE_BYTES = 20 * 1024 * 1024
"""WeCom: "普通文件(file)：文件大小不超过20M"."""
MEDIA_TTL_S = 3 * 86_400
"""WeCom: "该media_id仅三天内有效"."""

ERR_RATE = 45009
_ERRMSG_LIMIT = 200
_NOTE_CHARS = 120  # of each part's note in the summary


class DeliveryError(Exception):
    """A report did not reach a target. `target` names it ("wecom:duty-group", "email");
    `retry_after_s` is set when the target asked to wait (WeCom 45009)."""

    def __init__(self, target: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{target}: {message}")
        self.target = target
        self.retry_after_s = retry_after_s


# -- the summary ------------------------------------------------------------------------------------


def summary_lines(report: Report, files: Sequence[Path] = ()) -> list[tuple[str, str, bool | None]]:
    """(label, value, ok) lines of the summary: period, scope, each headline figure with its
    target and verdict (ok: met, missed, or None), each part's note (what could not be seen),
    the file names."""
    w = words(report.language)
    zh = report.language == "zh"

    def aside(text: str) -> str:
        return f"（{text}）" if zh else f" ({text})"

    sep = "，" if zh else ", "
    lines: list[tuple[str, str, bool | None]] = [(w["period"], report.period.label + aside(period_text(report)), None)]
    if report.scope:
        lines.append((w["scope"], report.scope, None))
    for kpi in report.kpis:
        value = kpi_text(kpi, kpi.value, report.language)
        extra = []
        if kpi.target is not None:
            extra.append(f"{w['target']} {kpi_text(kpi, kpi.target, report.language)}")
        if kpi.ok is not None:
            extra.append(verdict(kpi, report.language))
        lines.append((kpi.label, value + (aside(sep.join(extra)) if extra else ""), kpi.ok))
    for part in report.parts:
        if part.note:
            note = part.note if len(part.note) <= _NOTE_CHARS else part.note[: _NOTE_CHARS - 1] + "…"
            lines.append((f"{w['note']}·{part.title}", note, False))
    if files:
        lines.append((w["file"], ("、" if zh else ", ").join(f.name for f in files), None))
    return lines


def summary_markdown(report: Report, files: Sequence[Path] = (), max_bytes: int = MAX_BYTES["markdown"]) -> str:
    """The WeCom markdown summary: the title in bold, one line per summary line, figures that
    miss their target in WeCom's warning colour, met ones in its info colour. At most
    `max_bytes` UTF-8 bytes: lines that do not fit are left out, whole (a cut inside a <font>
    tag would garble the rest), and "…" says so."""
    colon = "：" if report.language == "zh" else ": "
    out = fit_bytes(f"**{_md(report.title)}**", max_bytes - 2, "…")
    for label, value, ok in summary_lines(report, files):
        shown = _md(value)
        if ok is not None:
            shown = f'<font color="{"info" if ok else "warning"}">{shown}</font>'
        line = f"\n> {_md(label)}{colon}{shown}"
        if utf8_len(out) + utf8_len(line) + utf8_len("\n…") > max_bytes:
            return out + "\n…"
        out += line
    return out


def summary_text(report: Report, files: Sequence[Path] = ()) -> str:
    """The same summary as plain text (the e-mail's body)."""
    colon = "：" if report.language == "zh" else ": "
    return "\n".join([report.title, ""] + [f"{label}{colon}{value}" for label, value, _ in summary_lines(report, files)]) + "\n"


def _md(text: str) -> str:
    # WeCom markdown has no escaping; keep a value from opening a tag or a link.
    return text.replace("<", "＜").replace(">", "＞").replace("[", "［").replace("]", "］")


# -- WeCom ------------------------------------------------------------------------------------------


def upload_url(send_url: str) -> str:
    """The robot's upload endpoint for its send endpoint (…/webhook/send → …/webhook/upload_media).
    ValueError when `send_url` does not end in /send."""
    if not send_url.endswith("/send"):
        raise ValueError(f"cannot derive the upload URL from {send_url}: a robot's send URL ends in /send")
    return send_url.removesuffix("/send") + "/upload_media"


async def send_wecom(
    cfg: WeComConfig,
    report: Report,
    files: Sequence[Path],
    *,
    clock: Callable[[], float] = time.monotonic,
    window_s: float = RATE_WINDOW_S,
) -> list[str]:
    """Upload `files` to the WeCom robot of route `cfg`, post each as a file message, then the
    markdown summary. Returns the media_ids. Raises DeliveryError (target "wecom:<route>") at
    the first failure; what went before it stays delivered."""
    target = f"wecom:{cfg.name}"
    assert cfg.key is not None  # resolved by WeComConfig's validator
    key = cfg.key.get_secret_value()
    try:
        upload = upload_url(cfg.url)
    except ValueError as exc:
        raise DeliveryError(target, str(exc)) from None
    sizes = [_size(target, f) for f in files]
    window = robot_window(cfg.url, cfg.key, window_s)
    masked = f"{cfg.url}?key=***"

    def redact(text: str) -> str:
        return text.replace(key, "***")

    async def post(url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with session.post(url, allow_redirects=False, **kwargs) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(target, redact(f"no answer from {url}?key=***: {type(exc).__name__}: {exc}")) from None
        return _answer(target, status, raw)

    async def message(payload: dict[str, Any], what: str) -> None:
        wait = window.wait_s(clock(), cfg.rate_per_minute, 1)
        if wait > 0:
            await asyncio.sleep(min(wait, window_s))
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            answer = await post(
                cfg.url, params={"key": key}, data=body, headers={"Content-Type": "application/json; charset=utf-8"}
            )
        finally:
            window.take(clock())
        errcode = answer["errcode"]
        if errcode == ERR_RATE:
            window.block(clock())
            raise DeliveryError(target, f"{what}: WeCom rate limit (errcode 45009, {answer['errmsg']})", window_s)
        if errcode != 0:
            raise DeliveryError(target, f"{what}: refused by {masked} (errcode {errcode}: {answer['errmsg']})")

    media_ids = []
    # trust_env stays False: never through an http_proxy from the environment.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as session:
        for path, size in zip(files, sizes):
            data = _read(target, path)
            form = aiohttp.MultipartWriter("form-data")
            part = form.append(data, {"Content-Type": "application/octet-stream"})
            part.set_content_disposition("form-data", name="media", filename=path.name, filelength=str(size))
            answer = await post(upload, params={"key": key, "type": "file"}, data=form)
            if answer["errcode"] != 0:
                raise DeliveryError(
                    target,
                    f"upload of {path} ({size:,} bytes) refused by {upload}?key=*** "
                    f"(errcode {answer['errcode']}: {answer['errmsg']}); the report stays at {path}",
                    window_s if answer["errcode"] == ERR_RATE else None,
                )
            media_id = answer.get("media_id")
            if not isinstance(media_id, str) or not media_id:
                raise DeliveryError(target, f"upload of {path}: WeCom answered without a media_id")
            await message({"msgtype": "file", "file": {"media_id": media_id}}, f"file message for {path.name}")
            media_ids.append(media_id)
        summary = summary_markdown(report, files)
        await message({"msgtype": "markdown", "markdown": {"content": summary}}, "summary")
    return media_ids


def _size(target: str, path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DeliveryError(target, f"cannot read {path}: {exc.strerror}") from None
    if size < MIN_FILE_BYTES:
        raise DeliveryError(target, f"{path} has {size} bytes; WeCom takes files of more than 5 bytes")
    if size > MAX_FILE_BYTES:
        raise DeliveryError(
            target,
            f"{path} has {size / 1024 / 1024:.1f} MB; WeCom takes files up to 20 MB. The report stays at {path}",
        )
    return size


def _read(target: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeliveryError(target, f"cannot read {path}: {exc.strerror}") from None


def _answer(target: str, status: int, raw: bytes) -> dict[str, Any]:
    """WeCom's JSON answer with an integer errcode and a string errmsg, else DeliveryError."""
    if status != 200:
        raise DeliveryError(target, f"HTTP {status} instead of a WeCom answer: {raw[:_ERRMSG_LIMIT]!r}")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("errcode"), int):
            raise ValueError
    except ValueError:
        raise DeliveryError(target, f"HTTP 200 without a WeCom answer: {raw[:_ERRMSG_LIMIT]!r}") from None
    doc["errmsg"] = str(doc.get("errmsg", ""))[:_ERRMSG_LIMIT]
    return doc


# -- e-mail -----------------------------------------------------------------------------------------


def email_message(cfg: EmailConfig, report: Report, files: Sequence[Path]) -> EmailMessage:
    """The e-mail for a report: subject "<title> <period label>", the plain summary as text, the
    files attached (those over max_attachment_mb named in the text instead). Raises
    DeliveryError when a file cannot be read."""
    limit = int(cfg.max_attachment_mb * 1024 * 1024)
    attached, too_big = [], []
    for path in files:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DeliveryError("email", f"cannot read {path}: {exc.strerror}") from None
        (attached if size <= limit else too_big).append((path, size))
    body = summary_text(report, [p for p, _ in attached])
    for path, size in too_big:
        body += (
            f"\n{path.name}：{size / 1024 / 1024:.1f} MB，超过邮件附件上限 {cfg.max_attachment_mb:g} MB，未附上；文件保存在服务器 {path}。\n"
            if report.language == "zh"
            else f"\n{path.name}: {size / 1024 / 1024:.1f} MB, over the attachment limit of {cfg.max_attachment_mb:g} MB, "
            f"not attached; it is kept on the server at {path}.\n"
        )
    msg = EmailMessage()
    msg["Subject"] = f"{report.title} {report.period.label}"
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    if cfg.cc:
        msg["Cc"] = ", ".join(cfg.cc)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=cfg.sender.rpartition("@")[2])
    msg.set_content(body)
    for path, _ in attached:
        maintype, subtype = _MIME.get(path.suffix.lower(), ("application", "octet-stream"))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeliveryError("email", f"cannot read {path}: {exc.strerror}") from None
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return msg


_MIME = {
    ".pdf": ("application", "pdf"),
    ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


async def send_email(cfg: EmailConfig, report: Report, files: Sequence[Path]) -> None:
    """Send the report by e-mail (see email_message) through the shared SMTP submission
    (rules.alerting.notifiers.email.smtp_send). Raises DeliveryError (target "email") with the
    server's code and reply, or why it could not be reached."""
    try:
        await smtp_send(cfg, email_message(cfg, report, files))
    except SmtpError as exc:
        raise DeliveryError("email", f"report {report.period.label}: {exc}") from None