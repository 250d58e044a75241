"""The lab's RTSP service: GStreamer's RTSP server (lab/rtsp_server.py) as a managed process,
and cameras that "ping but send no video".

- `RtspServer`: a context manager that starts lab/rtsp_server.py with Debian's /usr/bin/python3
  (the venv python cannot import `gi`), waits for its READY line and stops it at exit.
  (a) tests: `RtspServer()` on 127.0.0.1 and a free port;
  (b) lab fleets: `RtspServer(netns=ns, bind="0.0.0.0", port=554)` inside a LabNet namespace,
      where every lab address is a `local` route on lo, so one server answers on all of them.
  Mounts /Streaming/Channels/101 (H.264) and /102 (MJPEG), 320x240 at 5 fps, shared media.
  With `scenes` (PNG photographs, lab/vqd_streams.py) they show a photograph, 480x360, and
  `defects` {address: defect} (rtsp_server.DEFECTS) spoils chosen cameras' pictures;
  `set_defects()` changes them while it runs (new sessions see the change). `files`
  {mount path: H.264 MP4} serves files as streams too (hostile pictures in tests).
- `block_video(ns, addresses)` / `unblock_video(ns, addresses)`: nftables in that namespace
  rejects (TCP RST: "connection refused") or drops (silence: "connect timeout") TCP to the RTSP
  port of chosen addresses, which still answer ICMP echo.

Needs root for namespaces and nftables; the 127.0.0.1 server does not.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Literal, Self

from lab.process import ServerProcess, free_ports

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
MAIN_STREAM = "/Streaming/Channels/101"
SUB_STREAM = "/Streaming/Channels/102"
START_TIMEOUT_S = 15.0
NFT_TABLE = "fmlab_rtsp"


class RtspServerError(RuntimeError):
    """The RTSP server did not start; the message has the tail of its log."""


class RtspServer(ServerProcess):
    """GStreamer RTSP server for tests and the lab.

    - bind / port: listening address and port; port None = a free loopback port (only for
      127.0.0.1 in the root namespace).
    - auth: "none", "basic" (RFC 7617) or "digest" (RFC 2617, MD5, no qop: GStreamer's);
      user/password: the one account (the password goes to a 0600 file, not the command line).
    - netns: run inside this network namespace (`ip netns exec`).
    Raises RtspServerError at start when the server exits or prints no READY in time.
    """

    stop_timeout_s = 5.0

    def __init__(
        self, *, bind: str = "127.0.0.1", port: int | None = None, auth: Literal["none", "basic", "digest"] = "none",
        user: str = "admin", password: str | None = None, netns: str | None = None,
        scenes: Iterable[Path] = (), defects: dict[str, str] | None = None, files: dict[str, Path] | None = None,
    ) -> None:
        if auth != "none" and not password:
            raise ValueError("auth basic/digest needs a password")
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="fmlab-rtsp-"))
        self.bind, self.auth, self.user, self.password, self.netns = bind, auth, user, password, netns
        self.port = port if port is not None else free_ports(1)[0]
        self.log_path = self.dir / "rtsp_server.log"
        self.scenes = [Path(p) for p in scenes]
        self.files = dict(files or {})
        self.defects_path = self.dir / "defects.json"
        self.defects: dict[str, str] = {}
        self._write_defects(defects or {})

    def url(self, path: str = MAIN_STREAM, host: str | None = None) -> str:
        """rtsp:// URL of a mount on `host` (default: the bind address)."""
        host = host or self.bind
        if ":" in host:
            host = f"[{host}]"
        return f"rtsp://{host}:{self.port}{path}"

    def start(self) -> Self:
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--bind", self.bind, "--port", str(self.port), "--auth", self.auth]
        if self.auth != "none":
            secret = self.dir / "password"
            secret.touch(mode=0o600)
            secret.write_text(self.password or "", encoding="utf-8")
            cmd += ["--user", self.user, "--password-file", str(secret)]
        for scene in self.scenes:
            cmd += ["--scene", str(scene)]
        for mount, file in self.files.items():
            cmd += ["--file", f"{mount}={file}"]
        if self.scenes:
            cmd += ["--defects", str(self.defects_path)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C meant for the test run does not kill it before an orderly stop.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_defects(self, defects: dict[str, str]) -> None:
        """The server's defects file, replaced whole (rename: the server never reads half of it)."""
        partial = self.defects_path.with_suffix(".tmp")
        partial.write_text(json.dumps({str(k): v for k, v in defects.items()}), encoding="utf-8")
        partial.replace(self.defects_path)
        self.defects = dict(defects)

    def set_defects(self, defects: dict[str, str]) -> None:
        """Show these defects {address: defect} from now on (the other cameras clean): the file
        is rewritten and the server re-reads it on SIGHUP; returns once it said RELOADED.
        Raises RtspServerError when it does not within START_TIMEOUT_S."""
        if not self.scenes:
            raise ValueError("defects need scenes")
        self._write_defects(defects)
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)
        self._wait_line(b"RELOADED")

    def _wait_ready(self) -> None:
        self._wait_line(b"READY")

    def _wait_line(self, word: bytes) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        out = b""
        while b"\n" not in out:
            left = deadline - time.monotonic()
            ready = select.select([self._proc.stdout], [], [], left)[0] if left > 0 else []
            chunk = os.read(self._proc.stdout.fileno(), 1) if ready else b""  # a line at a time: the next is another answer
            if not chunk:
                why = "exited" if self._proc.poll() is not None else f"printed no {word.decode()} within {START_TIMEOUT_S:g} s"
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RtspServerError(f"RTSP server {why}; log {self.log_path}:\n{tail}")
            out += chunk
        if not out.startswith(word):
            raise RtspServerError(f"RTSP server said {out[:200]!r} instead of {word.decode()}")

    def stop(self, timeout_s: float | None = None) -> None:
        proc = self._proc
        super().stop(timeout_s)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()


# --- cameras without video -------------------------------------------------------------------


def _nft(ns: str, script: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nft in {ns} failed: {proc.stderr.strip()}")
    return proc.stdout


def _ensure_table(ns: str, port: int) -> None:
    """The table with one set per action and IP version; its chain is rebuilt (idempotent)."""
    _nft(ns, f"""
table inet {NFT_TABLE} {{
  set reject4 {{ type ipv4_addr; }}
  set reject6 {{ type ipv6_addr; }}
  set drop4 {{ type ipv4_addr; }}
  set drop6 {{ type ipv6_addr; }}
  chain input {{ type filter hook input priority 0; policy accept; }}
}}
flush chain inet {NFT_TABLE} input
add rule inet {NFT_TABLE} input tcp dport {port} ip daddr @reject4 reject with tcp reset
add rule inet {NFT_TABLE} input tcp dport {port} ip6 daddr @reject6 reject with tcp reset
add rule inet {NFT_TABLE} input tcp dport {port} ip daddr @drop4 drop
add rule inet {NFT_TABLE} input tcp dport {port} ip6 daddr @drop6 drop
""")


def _elements(ns: str, set_name: str) -> set[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", NFT_TABLE, set_name],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return set()
    for item in json.loads(out.stdout)["nftables"]:
        if "set" in item:
            return {str(e) for e in item["set"].get("elem", [])}
    return set()


def block_video(ns: str, addresses: Iterable[str | object], how: Literal["reject", "drop"] = "reject",
                port: int = 554) -> None:
    """Make these addresses of namespace `ns` refuse (TCP RST) or ignore (drop) TCP to `port`:
    the camera pings but sends no video. Idempotent; raises RuntimeError when nft fails."""
    by_version: dict[int, list[str]] = {4: [], 6: []}
    for address in addresses:
        text = str(address)
        by_version[6 if ":" in text else 4].append(text)
    _ensure_table(ns, port)
    lines = [f"add element inet {NFT_TABLE} {how}{v} {{ {', '.join(a)} }}" for v, a in by_version.items() if a]
    if lines:
        _nft(ns, "\n".join(lines) + "\n")


def unblock_video(ns: str, addresses: Iterable[str | object]) -> None:
    """Undo block_video for these addresses (whichever action blocked them); others stay."""
    wanted = {str(a) for a in addresses}
    lines = []
    for set_name in ("reject4", "reject6", "drop4", "drop6"):
        present = sorted(_elements(ns, set_name) & wanted)
        if present:
            lines.append(f"delete element inet {NFT_TABLE} {set_name} {{ {', '.join(present)} }}")
    if lines:
        _nft(ns, "\n".join(lines) + "\n")
