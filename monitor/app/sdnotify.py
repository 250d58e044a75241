"""systemd's service notification protocol (sd_notify(3)), without libsystemd.

A message is one datagram of newline-separated VAR=VALUE lines sent to the AF_UNIX socket named
by $NOTIFY_SOCKET; a name starting with "@" is in the abstract namespace (the "@" becomes a
NUL byte). Without NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a
no-op. The watchdog (WatchdogSec= in the unit) is enabled when $WATCHDOG_USEC is set and
$WATCHDOG_PID, if set, is this process.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("fleetmon.systemd")


class Notifier:
    """Sends READY=1, RELOADING=1, STOPPING=1, STATUS= and WATCHDOG=1 to systemd.

    `env`: the environment to read (os.environ by default). Send errors are logged once and
    otherwise ignored: systemd going away must not stop monitoring."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address if address[:1] in ("/", "\0") else None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_s: float | None = int(usec) / 1e6 if watched else None
        """WatchdogSec as systemd passed it; None: no watchdog."""
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message of `fields` (READY=1 as ready=1 …, names upper-cased); True when it
        was sent."""
        if self._address is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notification failed: %s (%s)", exc, message.decode(errors="replace"))
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        """Start-up or a reload finished: READY=1 (the watchdog pinged with it)."""
        return self.send(ready=1, status=status, **({"watchdog": 1} if self.watchdog_s else {}))

    def reloading(self) -> bool:
        """A reload begins; MONOTONIC_USEC as systemd ≥ 253 requires with RELOADING=1."""
        return self.send(reloading=1, status="reloading", monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        return self.send(stopping=1, status="stopping")

    def watchdog(self) -> bool:
        """WATCHDOG=1: call only when work got done (a probe cycle finished), never from a
        free-running timer, so that systemd restarts a daemon whose cycles stall."""
        return self.send(watchdog=1) if self.watchdog_s else False
