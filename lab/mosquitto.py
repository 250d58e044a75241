"""A real MQTT broker for tests and the demo: Debian's mosquitto (2.0.11) on a free loopback port.

`MosquittoServer` writes a throw-away config (`listener PORT 127.0.0.1`, `persistence false`,
`log_dest file`) and, when `users` are given, a password file made by `mosquitto_passwd`, with
anonymous clients refused; otherwise `allow_anonymous true`. The port is picked at construction,
so a client can be pointed at a broker that is not up yet; `stop()` and `start()` again serve
the same port (how tests make the broker "go away"). Quiet: mosquitto's log and its stderr go to
`log_path`, never to the terminal.

Run as root, mosquitto drops to the `mosquitto` account before it opens its log and password
files (mosquitto.conf(5), `user`), so the temporary folder is handed to that account then.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from lab.process import ServerProcess, free_ports

MOSQUITTO = "mosquitto"
MOSQUITTO_PASSWD = "mosquitto_passwd"
_DROP_TO = "mosquitto"  # the account mosquitto switches to when started as root


class MosquittoError(RuntimeError):
    """mosquitto did not start, or its password file could not be made."""


class MosquittoServer(ServerProcess):
    """One mosquitto process with its own temporary folder; `host`/`port` say where it listens.

    - users: {username: password}; when given, only these may connect (password_file,
      allow_anonymous false);
    - persistence: keep sessions and queued messages across a clean stop/start;
    - tls: (certificate, key) PEM files: the listener speaks TLS only.
    Context manager: starts, and at exit stops and deletes the folder.
    """

    host = "127.0.0.1"

    stop_timeout_s = 5.0

    def __init__(self, *, users: Mapping[str, str] | None = None, start_timeout_s: float = 10.0,
                 persistence: bool = False, tls: tuple[Path, Path] | None = None, host: str | None = None) -> None:
        if host is not None:  # another local address (a namespace's peer reaches it), still this machine's
            self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="fleetmon-mosquitto-"))
        (self.port,) = free_ports(1)
        self.log_path = self.dir / "mosquitto.log"
        self._start_timeout_s = start_timeout_s
        super().__init__()
        lines = [
            f"listener {self.port} {self.host}",
            f"log_dest file {self.log_path}",
        ]
        if tls is not None:  # (certificate chain, key), PEM files, e.g. from lab.certs
            for name, source in zip(("cert.pem", "key.pem"), tls):
                shutil.copyfile(source, self.dir / name)
            lines += [f"certfile {self.dir / 'cert.pem'}", f"keyfile {self.dir / 'key.pem'}"]
        if persistence:
            # Sessions and their queued QoS 1 messages survive a clean restart (saved at SIGTERM).
            lines += ["persistence true", f"persistence_location {self.dir}/"]
        else:
            lines.append("persistence false")
        if users:
            password_file = self.dir / "passwd"
            _make_password_file(password_file, users)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self._config_path = self.dir / "mosquitto.conf"
        self._config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # Shared by mosquitto's own log and its stderr (which we open before it drops root).
        self.log_path.touch()
        if os.geteuid() == 0:
            _hand_over(self.dir, _DROP_TO)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start mosquitto (no-op when running) and wait until it accepts TCP connections.
        Raises MosquittoError with the tail of its log when it exits or does not listen."""
        if self.running:
            return self
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self._config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C reaches Python only, which stops mosquitto itself
            )
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise MosquittoError(f"mosquitto exited with status {self._proc.returncode}:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.01)  # not listening yet
        self.stop()
        raise MosquittoError(f"mosquitto did not listen within {self._start_timeout_s} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _make_password_file(path: Path, users: Mapping[str, str]) -> None:
    """A mosquitto password file (salted hashes) for `users`, made by mosquitto_passwd."""
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        done = subprocess.run(
            [MOSQUITTO_PASSWD, "-b", *create, str(path), user, password], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise MosquittoError(f"mosquitto_passwd failed for user {user!r}: {done.stderr.strip()}")


def _hand_over(folder: Path, account: str) -> None:
    """Give `folder` and its files to `account` (mosquitto's unprivileged user)."""
    try:
        pwd.getpwnam(account)
    except KeyError:
        raise MosquittoError(f"mosquitto runs as {account!r} when started as root, but there is no such account") from None
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, user=account, group=None)
