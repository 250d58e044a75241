"""What the lab's throw-away servers (influxd, mosquitto) share: free loopback ports, and the
life of one server process in a temporary folder: start (the subclass's), stop, close, and
closing whatever is left at interpreter exit."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import weakref
from pathlib import Path
from typing import Self


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    All sockets are held open together so the ports differ; another process may still take one
    before the server binds it, which the server then reports at start."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_process(proc: subprocess.Popen, timeout_s: float) -> int:
    """SIGTERM, then SIGKILL if it is still running after `timeout_s`; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class ServerProcess:
    """Base of a lab server: the subclass creates `self.dir` (its temporary folder), implements
    `start()` (setting `self._proc`) and calls `super().__init__()`. As a context manager it
    starts, and at exit stops and deletes the folder; servers not closed are closed when the
    interpreter exits."""

    stop_timeout_s = 10.0
    dir: Path

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        _servers.add(self)

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the server (SIGTERM, then SIGKILL after the timeout); its folder and port stay
        for `start()`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, self.stop_timeout_s if timeout_s is None else timeout_s)

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_servers: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


@atexit.register
def _close_leftover_servers() -> None:
    for server in list(_servers):
        server.close()
