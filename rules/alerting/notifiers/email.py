"""The e-mail route (Zhangjiagang's tender: "电话、短信和邮件"), and the SMTP submission every
fleetmon e-mail uses (reports too: monitor/reports/delivery.py).

SMTP (RFC 5321) through aiosmtplib, submission on 587 with STARTTLS (RFC 3207) or 465 with
implicit TLS (RFC 8314), AUTH PLAIN/LOGIN when a username is set; the server's certificate is
always verified (system CAs or `ca_file`).

One message per `deliver()` call, with up to `max_events` pending events in order (an outage of
200 cameras is one mail, not 200): subject = the event's tag and title, or "N 条告警通知" for
several; text body = the WeCom route's text rendering (rules.alerting.notifiers.wecom.Renderer,
same words, same times in the route's zone), one block per event. Headers for receivers that
deduplicate: `Message-ID: <fleetmon.events-17-18@sender-domain>` is made of the outbox event
ids, so a message sent again after an unanswered attempt (at-least-once, see
rules/alerting/outbox.py) has the same Message-ID and mail clients show it once; and
`X-Fleetmon-Event-Ids: 17,18`.

What the server answers and what the route reports (reply codes: RFC 5321 §4.2):
- 250 to DATA for at least one recipient: delivered (recipients refused individually are named in
  the error, not retried: the others got it and a retry would repeat it to them).
- 4yz (server busy, greylisting, rate limits): an error, retried with the outbox's backoff.
- 5yz (authentication failed 535, sender or every recipient refused 550, message too big 552 …):
  the server will refuse again until the config changes: an error saying so, retried every
  REJECTED_RETRY_S, never dropped.
- No answer, TLS or certificate failures: an error, the outbox's backoff.
The password never appears in errors or logs.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

import aiosmtplib
from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets
from monitor.core.timecheck import ZoneName
from rules.alerting.duty import DutyRoster
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase
from rules.alerting.notifiers.texts import Renderer
from rules.model import FaultEvent

REJECTED_RETRY_S = 600.0
"""Wait before retrying after a permanent (5yz) refusal: somebody has to fix the config."""
BODY_BUDGET = 64 * 1024
"""Bytes of one event's text in a mail (the renderer's budget; mails have no small limit)."""

_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]+")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_WORDS = {
    "zh": {"many": "{n} 条告警通知"},
    "en": {"many": "{n} alarm notifications"},
}


class SmtpConfig(WithSecrets):
    """An SMTP server and the recipients of what fleetmon mails.

    - host / port: the SMTP server (submission: 587 with STARTTLS, or 465 with TLS).
    - security: "starttls" (default), "tls" (implicit, port 465) or "none" (only for a relay on
      the same host or a lab).
    - username with password_env / password_file (exactly one, when username is set): SMTP
      AUTH. Resolved at load time into `password` (SecretStr, never printed).
    - sender, to, cc: addresses (at least one recipient in `to`).
    - ca_file: PEM file of the CA that signed the server's certificate (a private CA);
      None: the system's CAs. The certificate is always verified.
    - timeout_s: per SMTP operation.
    """

    model_config = ConfigDict(hide_input_in_errors=True)
    secrets = ("password",)

    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65_535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    sender: str
    to: Annotated[list[str], Field(min_length=1)]
    cc: list[str] = []
    ca_file: Path | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0

    password: ResolvedSecret = None

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        if not _HOST.fullmatch(host):
            raise ValueError("must be a host name or an IP address")
        return host

    @field_validator("sender")
    @classmethod
    def _sender(cls, address: str) -> str:
        return _address(address)

    @field_validator("to", "cc")
    @classmethod
    def _recipients(cls, addresses: list[str]) -> list[str]:
        return [_address(a) for a in addresses]

    @model_validator(mode="after")
    def _auth(self) -> Self:
        given = self.password is not None  # resolved by WithSecrets, which refused env and file both
        if self.username is None and given:
            raise ValueError("a password without a username: set username too")
        if self.username is not None and not given:
            raise ValueError("username needs password_env or password_file")
        if self.username is not None and self.security == "none":
            raise ValueError('security "none" would send the SMTP password unencrypted: use starttls or tls')
        if self.ca_file is not None and self.security == "none":
            raise ValueError('ca_file is for starttls or tls, not security "none"')
        return self


def _address(address: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"not an e-mail address: {address!r}")
    return address


class SmtpError(Exception):
    """Sending failed. `code`: the server's reply code (None: no answer, TLS, connection);
    `partial`: some recipients got the message, only those named were refused."""

    def __init__(self, text: str, code: int | None = None, partial: bool = False) -> None:
        super().__init__(text)
        self.code, self.partial = code, partial


async def smtp_send(cfg: SmtpConfig, msg: EmailMessage) -> None:
    """Submit `msg` (From/To/Cc already set) to cfg's server. Raises SmtpError naming the
    server, with its reply code and text or why it could not be reached; never the password."""
    tls = None
    if cfg.security != "none":
        tls = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    server = f"{cfg.host}:{cfg.port}"
    try:
        refused, _reply = await aiosmtplib.send(
            msg, hostname=cfg.host, port=cfg.port, username=cfg.username, password=password,
            use_tls=cfg.security == "tls", start_tls=cfg.security == "starttls", tls_context=tls,
            timeout=cfg.timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        listed = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        code = exc.recipients[0].code if exc.recipients else None
        raise SmtpError(f"{server} refused every recipient: {listed}", code) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SmtpError(f"{server} answered {exc.code} {exc.message}", exc.code) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        text = str(exc)
        if password:
            text = text.replace(password, "***")
        raise SmtpError(f"cannot send through {server}: {type(exc).__name__}: {text}") from None
    if refused:
        listed = "; ".join(f"{addr}: {r.code} {r.message}" for addr, r in refused.items())
        raise SmtpError(f"{server} refused some recipients (the others got it): {listed}", partial=True)


class EmailConfig(RouteConfigBase, SmtpConfig):
    """An e-mail route (config `notify.routes[]` with `type: email`): the SMTP fields of
    SmtpConfig, and

    - max_events: events in one mail at most (the rest go in the next).
    - language / timezone: of the texts and the times in them.
    """

    type: Literal["email"]
    max_events: Annotated[int, Field(ge=1, le=500)] = 50
    language: Literal["zh", "en"] = "zh"
    timezone: ZoneName = "Asia/Shanghai"



def event_message(cfg: EmailConfig, events: Sequence[FaultEvent]) -> EmailMessage:
    """The mail for `events` (module doc): subject, text body, Message-ID from the event ids."""
    renderer = Renderer("text", cfg.language, cfg.timezone)
    blocks = [renderer.single(e, BODY_BUDGET) for e in events]
    first = blocks[0].split("\n", 1)[0]
    msg = EmailMessage()
    msg["Subject"] = first if len(events) == 1 else _WORDS[cfg.language]["many"].format(n=len(events)) + f"：{first}…"
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    if cfg.cc:
        msg["Cc"] = ", ".join(cfg.cc)
    msg["Date"] = formatdate(localtime=False)
    ids = [str(e.id) for e in events]
    msg["Message-ID"] = f"<fleetmon.events-{'-'.join(ids)}@{cfg.sender.rpartition('@')[2]}>"
    msg["X-Fleetmon-Event-Ids"] = ",".join(ids)
    msg.set_content("\n\n".join(blocks) + "\n")
    return msg


class EmailRoute:
    """The `email` route (rules.alerting.notifiers.base.Route); see the module doc."""

    type: ClassVar[str] = "email"

    def __init__(self, cfg: EmailConfig, duty: DutyRoster | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """One mail with the first `max_events` events (module doc for the outcomes). One
        request per call, so `progress` has nothing to report before the call returns."""
        batch = tuple(events[: self.cfg.max_events])
        if not batch:
            return Delivery(())
        try:
            await smtp_send(self.cfg, event_message(self.cfg, batch))
        except SmtpError as exc:
            ids = tuple(e.id for e in batch)
            if exc.partial:
                return Delivery(ids, error=str(exc))
            if exc.code is not None and 500 <= exc.code < 600:
                return Delivery((), retry_after_s=REJECTED_RETRY_S,
                                error=f"{exc} (a permanent refusal: check the route's server, account and addresses)")
            return Delivery((), error=str(exc))
        return Delivery(tuple(e.id for e in batch))
