"""systemd integration without systemd: sd_notify datagrams received on a real AF_UNIX socket
standing in for systemd's (path and abstract namespace), the daemon's READY/RELOADING/STOPPING
sequence and its watchdog pings (from the cycle path: they stop when cycles stall while the
event loop runs on), and journald's priority prefixes."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.faults_reload import config_doc, point_rows, write_config, write_points
from lab.process import free_ports
from monitor.app import logs
from monitor.app.config import LogConfig
from monitor.app.sdnotify import Notifier
from monitor.app.supervisor import Supervisor, load


class FakeSystemd:
    """A SOCK_DGRAM unix socket as systemd's notify socket; `messages()` drains it."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.env = {"NOTIFY_SOCKET": address}

    def messages(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(str(tmp_path / "notify.sock"))
    yield fake
    fake.close()


def test_notify_sends_one_datagram_of_lines_to_a_path_socket(systemd):
    notifier = Notifier(systemd.env)
    assert notifier.enabled and notifier.ready("monitoring 5 devices")
    assert notifier.stopping()
    assert systemd.messages() == [{"READY": "1", "STATUS": "monitoring 5 devices"},
                                  {"STOPPING": "1", "STATUS": "stopping"}]


def test_notify_reaches_an_abstract_namespace_socket():
    fake = FakeSystemd(f"@fleetmon-test-{os.getpid()}")
    try:
        assert Notifier(fake.env).reloading()
        (message,) = fake.messages()
        assert message["RELOADING"] == "1"
        now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert 0 <= now_us - int(message["MONOTONIC_USEC"]) < 5_000_000
    finally:
        fake.close()


def test_without_notify_socket_nothing_is_sent_and_the_watchdog_is_off():
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready("x") and not notifier.watchdog()


def test_watchdog_only_for_this_pid_and_a_positive_interval(systemd):
    env = {**systemd.env, "WATCHDOG_USEC": "180000000"}
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 180.0
    assert Notifier(env).watchdog_s == 180.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_s is None
    assert Notifier({**env, "WATCHDOG_USEC": "0"}).watchdog_s is None
    assert not Notifier({**env, "WATCHDOG_PID": "1"}).watchdog() and systemd.messages() == []


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notifier.ready("x") and not notifier.stopping()
    assert caplog.text.count("systemd notification failed") == 1


@pytest.mark.root  # raw ICMP to 127.0.0.1
async def test_daemon_tells_systemd_ready_reloading_stopping_and_pings_only_while_cycles_finish(systemd, tmp_path):
    (port,) = free_ports(1)
    write_points(tmp_path / "points.csv", point_rows(5))
    config = tmp_path / "config.yaml"
    write_config(config, config_doc(port))
    notifier = Notifier({**systemd.env, "WATCHDOG_USEC": "10000000"})
    supervisor = Supervisor(config, notifier=notifier)
    serving = asyncio.create_task(supervisor.serve(*load(config)))

    async def until(predicate, timeout_s: float = 15.0) -> list[dict[str, str]]:
        seen: list[dict[str, str]] = []
        async with asyncio.timeout(timeout_s):
            while not predicate(seen):
                await asyncio.sleep(0.05)
                seen += systemd.messages()
        return seen

    try:
        first = await until(lambda m: sum("WATCHDOG" in x for x in m) >= 3)  # 1 s cycles
        assert first[0]["READY"] == "1" and "5 devices (3 probed)" in first[0]["STATUS"]

        supervisor._on_hup()  # as the SIGHUP handler does
        reload = await until(lambda m: any("READY" in x for x in m))
        assert [x for x in reload if "WATCHDOG" not in x or "READY" in x][0]["RELOADING"] == "1"
        await until(lambda m: any("WATCHDOG" in x for x in m))  # the new daemon's cycles ping

        # Stall the probe cycles (the scheduler task dies) while the event loop runs on: the
        # pings stop, as systemd's watchdog needs them to.
        for task in asyncio.all_tasks():
            if task.get_name() == "scheduler-icmp":
                task.cancel()
        await asyncio.sleep(0.5)
        systemd.messages()
        await asyncio.sleep(2.5)
        assert [x for x in systemd.messages() if "WATCHDOG" in x] == []
    finally:
        supervisor._on_stop()
        assert await asyncio.wait_for(serving, 30) == 0
    assert systemd.messages()[-1] == {"STOPPING": "1", "STATUS": "stopping"}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_carry_syslog_priorities_only_on_the_journal_stream(tmp_path, monkeypatch, fmt):
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.setup(LogConfig(format=fmt, level="debug"), stream)
        log = logging.getLogger("fleetmon.test")
        log.error("two\nlines")
        log.warning("w")
        log.info("i")
        log.debug("d")
        log.critical("c")
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == (["<3>", "<3>", "<4>", "<6>", "<7>", "<2>"] if fmt == "text"
                                             else ["<3>", "<4>", "<6>", "<7>", "<2>"])
    if fmt == "text":  # the journal stamps entries itself
        assert lines[0] == "<3>ERROR   fleetmon.test: two" and lines[1] == "<3>lines"

    # Another stream (stderr redirected: the variable inherited but not ours): no prefixes.
    other = io.StringIO()
    logs.setup(LogConfig(format=fmt), other)
    logging.getLogger("fleetmon.test").error("e")
    assert not other.getvalue().startswith("<")


def test_the_unit_is_type_notify_with_a_watchdog():
    unit = (Path(__file__).parent.parent / "deploy" / "fleetmon.service").read_text()
    assert "\nType=notify\n" in unit and "\nWatchdogSec=" in unit and "\nNotifyAccess=main\n" in unit


UNITS = ("fleetmon.service", "fleetmon-backup.service", "fleetmon-backup.timer")


def _verify(tmp_path: Path, edit=lambda name, text: text) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on the deploy/ units, /opt/fleetmon/venv/bin/fleetmon pointing at
    this venv's."""
    deploy = Path(__file__).parent.parent / "deploy"
    fleetmon = str(Path(sys.executable).with_name("fleetmon"))
    for name in UNITS:
        text = (deploy / name).read_text().replace("/opt/fleetmon/venv/bin/fleetmon", fleetmon)
        (tmp_path / name).write_text(edit(name, text))
    return subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_units_verify_and_a_broken_one_would_not(tmp_path):
    result = _verify(tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    (tmp_path / "typo").mkdir()
    typo = _verify(tmp_path / "typo", lambda name, text: text.replace("OnCalendar=", "OnCalender="))
    assert "Unknown key 'OnCalender'" in typo.stderr
