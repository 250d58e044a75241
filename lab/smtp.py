"""A real SMTP server on loopback (aiosmtpd), for the report e-mail tests and the demo.

`SmtpServer(tls=…, users=…, refuse=…)` on the running event loop:
- tls: "none" (plain SMTP), "starttls" (STARTTLS required before MAIL and AUTH) or "tls"
  (implicit TLS, as on port 465), with a self-signed certificate for 127.0.0.1 made at start
  (`ca_file`: the PEM to trust it with);
- users: {login: password} accepted by AUTH PLAIN/LOGIN (then AUTH is required); else no AUTH;
- refuse: recipient addresses answered "550 5.1.1 mailbox unavailable";
- busy: the first `busy` messages are answered "451 4.3.0" at DATA (greylisting, a busy server).
Accepted messages are kept in `messages` (sender, recipients, the parsed EmailMessage).

Use: `async with SmtpServer(tls="starttls", users={"u": "pw"}) as smtp: … smtp.port …`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
import warnings
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted message: envelope sender and recipients, and the message parsed."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope: Envelope, address: str, rcpt_options) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        if self.server.busy > 0:
            self.server.busy -= 1
            return "451 4.3.0 Temporary failure, try again later"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.server.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpServer:
    """See the module docstring. `host`, `port` and `ca_file` are known after start."""

    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "tls"] = "none",
        users: dict[str, str] | None = None,
        refuse: tuple[str, ...] = (),
        busy: int = 0,
    ) -> None:
        self.tls = tls
        self.busy = busy
        self.users = dict(users or {})
        self.refuse = set(refuse)
        self.messages: list[Received] = []
        self.host = "127.0.0.1"
        self.port = 0
        self.ca_file: Path | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> Self:
        context = self._tls_context() if self.tls != "none" else None
        handler = _Handler(self)

        def protocol() -> SMTP:
            with warnings.catch_warnings():
                # aiosmtpd warns of AUTH without STARTTLS; under implicit TLS that is fine.
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                return self._protocol(handler, context)

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self.host, 0, ssl=context if self.tls == "tls" else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _protocol(self, handler: _Handler, context: ssl.SSLContext | None) -> SMTP:
        return SMTP(
            handler,
            hostname="fleetmon-lab-smtp",
            tls_context=context if self.tls == "starttls" else None,
            require_starttls=self.tls == "starttls",
            auth_required=bool(self.users),
            # Under implicit TLS aiosmtpd does not see the TLS: AUTH is encrypted all the same.
            auth_require_tls=self.tls == "starttls",
            authenticator=self._authenticate if self.users else None,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _tls_context(self) -> ssl.SSLContext:
        """A server context with a fresh self-signed certificate for 127.0.0.1; its PEM is
        `ca_file`."""
        self._dir = tempfile.TemporaryDirectory(prefix="fleetmon-smtp-")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetmon lab SMTP")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(self.host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_file = Path(self._dir.name) / "smtp.pem"
        key_file = Path(self._dir.name) / "smtp.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        self.ca_file = cert_file
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context
