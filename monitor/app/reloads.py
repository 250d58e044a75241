"""What a reload (SIGHUP) checks before it stops the running daemon, and what it shows after.

A config can validate and still not start: its API port taken by another program, its state
database under a path that cannot be created. `preflight` finds those before the running
daemon is stopped, so that such a reload costs no monitoring at all; whatever it cannot foresee
(a schema the database refuses, a port taken in between) makes the new daemon's start fail,
and monitor.app.supervisor then starts the old config again. Either way the outcome is kept in
a ReloadOutcome, which /healthz shows.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from monitor.app.config import FleetmonConfig


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """The latest reload: `at_ns` (UTC ns) when it ended; `ok`; `error`: why it failed (the
    located messages, one per line), None when it succeeded. The running config is the old one
    exactly when ok is False."""

    at_ns: int
    ok: bool
    error: str | None = None


def preflight(new: FleetmonConfig, old: FleetmonConfig) -> list[str]:
    """Problems that would keep `new` from starting beside what `old` holds, each as
    "FILE:LINE: key: reason"; empty when none is seen. Blocking (a bind, a mkdir): run it in
    a thread. Resources `old` holds already (the same API address, the same database) are not
    checked: they are free once the old daemon stops."""
    problems: list[str] = []
    if new.state.database != old.state.database:
        reason = _not_creatable(new.state.database)
        if reason:
            problems.append(_located(new, ("state", "database"), f"{new.state.database}: {reason}"))
    api_changed = (new.api.listen, new.api.port) != (old.api.listen, old.api.port) or not old.api.enabled
    if new.api.enabled and new.api.port != 0 and api_changed:
        reason = _not_bindable(new.api.listen, new.api.port)
        if reason:
            problems.append(_located(new, ("api", "port"), f"{new.api.listen}:{new.api.port}: {reason}"))
    return problems


def _located(cfg: FleetmonConfig, loc: tuple[str, ...], message: str) -> str:
    source = cfg.inventory.source
    where = f"{source.path}:{source.line(loc)}" if source is not None else "<config>"
    return f"{where}: {'.'.join(loc)}: {message}"


def _not_creatable(path: Path) -> str | None:
    """Why the state database at `path` could not be opened for writing (StateDB creates
    missing parent folders), or None."""
    if path.exists():
        if not path.is_file():
            return "exists and is not a file"
        return None if os.access(path, os.R_OK | os.W_OK) else "not readable and writable by this user"
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot be created: {ancestor} is not writable by this user"
    return None


def _not_bindable(host: str, port: int) -> str | None:
    """Why a TCP listener on host:port cannot be had now (as aiohttp binds: SO_REUSEADDR), or
    None. The socket is closed again at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
