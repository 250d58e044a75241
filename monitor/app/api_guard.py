"""What keeps the HTTP API from starving the probes: a cap on open connections, a deadline for
a request's headers, and log lines that count instead of repeating.

Every connection costs a file descriptor, and so does every probe's socket, ffmpeg pipe and
database file. Without limits, slow or silent clients (slowloris: headers a byte every few
seconds; sockets opened and left idle) hold descriptors until RLIMIT_NOFILE is reached and a
camera's RTSP check fails with EMFILE. So:

- `connection_cap`: at most this many API connections at once, by default a quarter of the
  soft RLIMIT_NOFILE (between 4 and 256): the other three quarters stay for the probes. A
  connection beyond the cap is answered 503 at once and closed (no request is read). One
  client address may hold at most a quarter of the cap (`per_address`), so that one client's
  slow or idle sockets leave room for the others (the duty engineer's phone, /healthz).
- `Guard.protocol`: a connection must deliver its first request's headers within
  `header_timeout_s`, else it is closed; aiohttp's keep-alive timeout (`idle_timeout_s`,
  monitor.app.api) closes a connection idle between requests or slow with a later request's
  headers (aiohttp ≥ 3.10 arms it for any connection waiting for a request).
- `Tally`: events of a kind (connections refused, requests refused) counted over a window
  and logged as one line ("N … from M addresses in the last 60 s") instead of one line each;
  the first event of a window is still logged at once, by the caller, with its details.
- `AcceptErrors`: the event loop's exception handler for `accept()` failing (EMFILE, ENFILE,
  ENOBUFS): asyncio already pauses accepting for a second; this makes it one warning per
  window without a traceback instead of an error with one each time.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, Callable

log = logging.getLogger("fleetmon.api")

CAP_SHARE = 4
"""The API may hold 1/CAP_SHARE of the descriptors (soft RLIMIT_NOFILE)."""
CAP_MIN, CAP_MAX = 4, 256
ADDRESS_SHARE = 4
"""One client address may hold 1/ADDRESS_SHARE of the cap (at least 1)."""
SUMMARY_WINDOW_S = 60.0
"""Counted events are logged once per this many seconds."""
_END_OF_HEADERS = b"\r\n\r\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 5\r\nContent-Length: 62\r\n\r\n"
    b'{"error": "too many connections to the API: try again later"}\n'
)


def connection_cap(configured: int | None, nofile_soft: int | None = None) -> int:
    """The most API connections open at once: `configured` (config api.max_connections) when
    given, else a quarter of the soft RLIMIT_NOFILE (`nofile_soft`, read from the process when
    None), clamped to [CAP_MIN, CAP_MAX]; an unlimited limit gives CAP_MAX."""
    if configured is not None:
        return configured
    if nofile_soft is None:
        nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile_soft == resource.RLIM_INFINITY:
        return CAP_MAX
    return max(CAP_MIN, min(CAP_MAX, nofile_soft // CAP_SHARE))


class Tally:
    """Events of one kind counted per window: `note(address)` is True for the window's first
    event (log it in full), `take()` returns (events, distinct addresses) and starts a new
    window."""

    def __init__(self) -> None:
        self.events = 0
        self.total = 0  # since start, for the final line and tests
        self._addresses: set[str] = set()

    def note(self, address: str | None) -> bool:
        self.events += 1
        self.total += 1
        self._addresses.add(address or "?")
        return self.events == 1

    def take(self) -> tuple[int, int]:
        out = (self.events, len(self._addresses))
        self.events = 0
        self._addresses.clear()
        return out


class Guard:
    """Connection limits of one server: `protocol(inner)` wraps aiohttp's protocol factory's
    product. `active`: connections open now (`by_address`: per client address); tallies of
    connections refused over the cap (or their address's share, `per_address`) and closed for
    slow or missing headers."""

    def __init__(self, cap: int, header_timeout_s: float) -> None:
        self.cap = cap
        self.per_address = max(1, cap // ADDRESS_SHARE)
        self.header_timeout_s = header_timeout_s
        self.active = 0
        self.by_address: dict[str, int] = {}
        self.over_cap = Tally()
        self.slow = Tally()

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_server: `inner()` (aiohttp's RequestHandler) is
        made only for connections within the cap."""
        return lambda: _Guarded(self, inner)


class _Guarded(asyncio.Protocol):
    """One connection: refused over the cap, closed without complete headers in time, else
    everything forwarded to aiohttp's protocol."""

    def __init__(self, guard: Guard, make_inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for an end of headers split across reads
        self._transport: asyncio.Transport | None = None
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        self._transport = transport
        peer = self._peer = _peer(transport)
        held = guard.by_address.get(peer, 0)
        if guard.active >= guard.cap or held >= guard.per_address:
            if guard.over_cap.note(peer):
                log.warning("API connection from %s refused: %d connections open (%d from it); at most %d, "
                            "%d per address (api.max_connections)", peer, guard.active, held, guard.cap,
                            guard.per_address)
            transport.write(_BUSY)
            transport.close()  # after the buffered answer; nothing is read
            return
        guard.active += 1
        guard.by_address[peer] = held + 1
        self._timer = asyncio.get_running_loop().call_later(guard.header_timeout_s, self._too_slow)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._timer = None
        assert self._transport is not None
        if self._guard.slow.note(self._peer):
            log.warning("API connection from %s closed: no complete request headers within %g s (further ones "
                        "counted, logged once a minute)", self._peer, self._guard.header_timeout_s)
        self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEADERS in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inner is not None:
            guard = self._guard
            guard.active -= 1
            if guard.by_address[self._peer] <= 1:
                del guard.by_address[self._peer]
            else:
                guard.by_address[self._peer] -= 1
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


_ACCEPT_ERRORS = ("socket.accept() out of system resource",)  # asyncio.selector_events' message


class AcceptErrors:
    """An event loop exception handler: accept() failures (asyncio's "out of system resource"
    context: EMFILE, ENFILE, ENOBUFS, ENOMEM) are counted and logged as one warning per window,
    without a traceback; every other context goes to the handler there was before."""

    def __init__(self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None) -> None:
        self.previous = previous
        self.tally = Tally()
        self._last_error = ""

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") in _ACCEPT_ERRORS:
            exc = context.get("exception")
            self._last_error = f"{type(exc).__name__}: {exc}" if exc is not None else "?"
            if self.tally.note(None):
                log.warning("the API cannot accept connections (%s): asyncio retries each second; "
                            "counted, not logged each time", self._last_error)
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def summary(self) -> str | None:
        events, _ = self.tally.take()
        return f"accept() failed {events} times ({self._last_error})" if events else None


class Summaries:
    """Logs what the tallies counted, one line per window (every `window_s`, and at close)."""

    def __init__(self, window_s: float = SUMMARY_WINDOW_S) -> None:
        self.window_s = window_s
        self._parts: list[Callable[[], str | None]] = []
        self._started = time.monotonic()

    def add(self, part: Callable[[], str | None]) -> None:
        self._parts.append(part)

    def flush(self) -> None:
        now = time.monotonic()
        lines = [line for part in self._parts if (line := part()) is not None]
        if lines:
            log.warning("API: %s in the last %.0f s", "; ".join(lines), now - self._started)
        self._started = now

    async def run(self) -> None:
        """Flush every window until cancelled."""
        while True:
            await asyncio.sleep(self.window_s)
            self.flush()


def tally_line(tally: Tally, what: str) -> Callable[[], str | None]:
    """A Summaries part: "N <what> from M addresses", or None when nothing happened."""

    def part() -> str | None:
        events, addresses = tally.take()
        return f"{events} {what} from {addresses} address{'es' if addresses != 1 else ''}" if events else None

    return part


class BadRequests(logging.Filter):
    """A filter for aiohttp's "aiohttp.server" logger: a request aiohttp's parser refused (the
    client's fault: bad request line, bad header, too long …; answered 400 by aiohttp) is
    counted; the window's first is logged as one warning line without the traceback aiohttp
    attaches, the others dropped. Every other record passes unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = Tally()

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        peer = str(record.args[0]) if isinstance(record.args, tuple) and record.args else None
        if not self.tally.note(peer):
            return False
        reason = " ".join(str(exc.message).split())[:200]
        record.msg, record.args = "bad request from %s answered %d: %s (further ones counted, logged once a minute)", (
            peer or "?", exc.code, reason)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True
