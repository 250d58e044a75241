"""Hostile input for fleetmon's config and point-list loaders (issue 13, "bad input"): the
configs QA used to crash or exhaust `fleetmon check-config`, built in a directory of the
caller's, and a runner that reports what check-config did with each.

Shared by tests/test_fault_input.py (each case must end in exit 2 with a located message, never
a traceback) and bench/faults/input.py (the figures: tracebacks, time, peak RSS).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import openpyxl

HEADER = "id,kind,address,site,region,parent\n"


@dataclass(frozen=True)
class Case:
    """One hostile config: `name`, a function writing it into a directory and returning the
    config's path, and a text the located error must contain ("{path}" stands for the config's
    path, "{dir}" for the directory)."""

    name: str
    write: Callable[[Path], Path]
    expect: str


@dataclass(frozen=True)
class Outcome:
    """What `fleetmon check-config` did: exit status, stderr, wall time (s), peak RSS (MB)."""

    returncode: int
    stderr: str
    seconds: float
    peak_rss_mb: float

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def _config(text: str, name: str = "config.yaml") -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        path = directory / name
        path.write_text(text, encoding="utf-8")
        (directory / "wecom.key").write_text("a-robot-key\n")
        return path

    return write


def _wecom(extra: str) -> str:
    return f"notify:\n  routes:\n    - {{name: duty, type: wecom, key_file: wecom.key, {extra}}}\n"


def _devices(address: str, allow_loopback: bool = False) -> str:
    opt = "  allow_loopback: true\n" if allow_loopback else ""
    return f"inventory:\n{opt}  devices:\n    - {{id: CAM-1, kind: camera, address: '{address}', site: s, region: r}}\n"


def _window(start: str, end: str) -> str:
    return f"maintenance:\n  - {{match: {{}}, start: '{start}', end: '{end}', reason: 割接}}\n"


def yaml_bomb(entries: int = 1000, keys: int = 1000) -> str:
    """A "billion laughs" of a dozen kilobytes: one mapping of `keys` unknown keys, aliased
    `entries` times in a list. Expanded: entries × keys × 2 nodes, and as many errors."""
    mapping = ", ".join(f"k{i}: 1" for i in range(keys))
    return f"maintenance: [&m {{{mapping}}}, {', '.join(['*m'] * entries)}]\n"


def _secret_file(target: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        secret = target(directory)
        path = directory / "config.yaml"
        path.write_text(f"influxdb:\n  username: fleetmon\n  password_file: {secret}\n", encoding="utf-8")
        return path

    return write


def _fifo(directory: Path) -> Path:
    path = directory / "secret.fifo"
    if not path.exists():
        os.mkfifo(path)
    return path


def _big(directory: Path) -> Path:
    path = directory / "big.secret"
    path.write_bytes(b"x" * (1024 * 1024))
    return path


def _fifo_config(directory: Path) -> Path:
    path = directory / "config.yaml"
    os.mkfifo(path)
    return path


def _zero_point_list(directory: Path) -> Path:
    (directory / "points.csv").symlink_to("/dev/zero")
    path = directory / "config.yaml"
    path.write_text("inventory:\n  point_lists: [points.csv]\n", encoding="utf-8")
    return path


def _xlsx_formula(directory: Path) -> Path:
    """A point list whose 上级 (parent) is a formula without a saved value, as openpyxl or a
    script writes it: Excel would compute it on opening; fleetmon must not read it as empty."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["编号", "类型", "IP地址", "站点", "乡镇", "上级"])
    sheet.append(["SW-1", "交换机", "10.1.0.1", "站点一", "城关镇", None])
    sheet.append(["CAM-1", "摄像机", "10.1.0.2", "站点一", "城关镇", "=A2"])
    book.save(directory / "points.xlsx")
    path = directory / "config.yaml"
    path.write_text("inventory:\n  point_lists: [points.xlsx]\n", encoding="utf-8")
    return path


CASES: tuple[Case, ...] = (
    Case("timezone: a directory (Asia)", _config("timezone: Asia\n"), "{path}:1: timezone: unknown time zone 'Asia'"),
    Case("timezone: 300 characters", _config(f"timezone: {'A' * 300}\n"), "{path}:1: timezone: time zone name too long"),
    Case("timezone: ../ path", _config("timezone: ../../etc/passwd\n"), "{path}:1: timezone: unknown time zone"),
    Case("WeCom route timezone: Asia", _config(_wecom("timezone: Asia")), "{path}:3: notify.routes[0].timezone"),
    Case("WeCom route timezone: 300 characters", _config(_wecom(f"timezone: {'B' * 300}")),
         "{path}:3: notify.routes[0].timezone: time zone name too long"),
    Case("maintenance window in 2300", _config(_window("2300-01-01T00:00:00+08:00", "2300-01-02T00:00:00+08:00")),
         "{path}:2: maintenance[0].start: 2300-01-01 is out of range"),
    Case("maintenance window ending 9999-12-31", _config(_window("2026-12-01T00:00:00+08:00", "9999-12-31T23:59:59+00:00")),
         "{path}:2: maintenance[0].end: 9999-12-31 is out of range"),
    Case("YAML bomb (aliases: 1000 × 1000 keys)", _config(yaml_bomb()),
         "{path}:1:14: the YAML here expands to more than 250,000 nodes"),
    Case("YAML nested 5000 deep", _config("log: " + "[" * 5000 + "]" * 5000 + "\n"), "YAML nested too deeply"),
    Case("recursive alias", _config("inventory:\n  devices: &d [*d]\n"), "refers to a node that contains it"),
    Case("secret file /dev/zero", _secret_file(lambda d: Path("/dev/zero")),
         "{path}:1: influxdb: password: /dev/zero: is a device, not a regular file"),
    Case("secret file is a FIFO", _secret_file(_fifo), "is a FIFO, not a regular file"),
    Case("secret file is a directory", _secret_file(lambda d: d), "is a directory, not a regular file"),
    Case("secret file of 1 MiB", _secret_file(_big), "is larger than 64 KiB"),
    Case("config file is a FIFO", _fifo_config, "{path}: is a FIFO, not a config file"),
    Case("point list is /dev/zero", _zero_point_list, "{dir}/points.csv: is a device, not a point list"),
    Case("InfluxDB url with user:password@", _config("influxdb:\n  url: http://u:pw@127.0.0.1:8086\n"),
         "{path}:2: influxdb.url: must not carry credentials"),
    Case("InfluxDB url with ?p=", _config("influxdb:\n  url: http://127.0.0.1:8086/?u=a&p=pw\n"),
         "{path}:2: influxdb.url: must not have a query"),
    Case("InfluxDB url with ?token=", _config("influxdb:\n  url: http://127.0.0.1:8086?token=t\n"),
         "{path}:2: influxdb.url: must not have a query"),
    Case("webhook url with ?access_token=",
         _config("notify:\n  routes:\n    - {name: h, type: webhook, url: 'http://127.0.0.1/h?access_token=t'}\n"),
         "{path}:3: notify.routes[0].url: must not carry a secret in the query (access_token=…)"),
    Case("webhook url with user:password@",
         _config("notify:\n  routes:\n    - {name: h, type: webhook, url: 'http://u:pw@127.0.0.1/h'}\n"),
         "{path}:3: notify.routes[0].url: must not carry credentials"),
    Case("webhook header Authorization",
         _config("notify:\n  routes:\n    - {name: h, type: webhook, url: 'http://127.0.0.1/h', headers: {Authorization: Bearer t}}\n"),
         "{path}:3: notify.routes[0].headers: header Authorization would carry a secret"),
    Case("webhook header X-Api-Key",
         _config("notify:\n  routes:\n    - {name: h, type: webhook, url: 'http://127.0.0.1/h', headers: {X-Api-Key: k}}\n"),
         "header X-Api-Key would carry a secret"),
    Case("WeCom url with user:password@", _config(_wecom("url: 'https://u:pw@qyapi.weixin.qq.com/cgi-bin/webhook/send'")),
         "{path}:3: notify.routes[0].url: must not carry credentials"),
    Case("MQTT host with user:password@",
         _config("notify:\n  routes:\n    - {name: m, type: mqtt, host: 'u:pw@127.0.0.1'}\n"),
         "{path}:3: notify.routes[0].host: must be a host name or address only"),
    Case("device url with ?token=",
         _config("inventory:\n  devices:\n    - {id: P, kind: platform, address: 10.0.0.5, site: s, region: r, "
                 "url: 'http://10.0.0.5/status?token=t'}\n"),
         "{path}:3: inventory.devices[0].url: must not carry a secret in the query (token=…)"),
    Case("device address 0.0.0.0", _config(_devices("0.0.0.0")), "inventory.devices[0].address: 0.0.0.0 is the unspecified"),
    Case("device address ::", _config(_devices("::")), "inventory.devices[0].address: :: is the unspecified"),
    Case("device address 255.255.255.255", _config(_devices("255.255.255.255")), "is the broadcast address"),
    Case("device address 224.0.0.1", _config(_devices("224.0.0.1")), "is a multicast address"),
    Case("device address ff02::1", _config(_devices("ff02::1")), "is a multicast address"),
    Case("device address 127.0.0.1", _config(_devices("127.0.0.1")), "is a loopback address"),
    Case("XLSX parent: formula without a saved value", _xlsx_formula,
         "{dir}/points.xlsx:3: 上级: cell F3 holds a formula without a saved value"),
)


def check_config(path: Path, timeout_s: float = 120.0) -> Outcome:
    """Run `python -m monitor.app.cli check-config path` in a child; its time and peak RSS.
    The child's RSS comes from RUSAGE_CHILDREN's high-water mark, so each call runs in a fresh
    grandchild measured by its own small parent."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        f"p = subprocess.run([sys.executable, '-m', 'monitor.app.cli', 'check-config', sys.argv[1]], "
        f"capture_output=True, text=True, timeout={timeout_s})\n"
        "sys.stderr.write(p.stderr[-20000:])\n"
        "print(p.returncode, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                          timeout=timeout_s + 30, env={**os.environ, "PYTHONPATH": _repo_path()})
    code, seconds, rss_kb = done.stdout.split()
    return Outcome(int(code), done.stderr, float(seconds), int(rss_kb) / 1024)


def _repo_path() -> str:
    repo = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{repo}{os.pathsep}{rest}" if rest else repo


def own_peak_rss_mb() -> float:
    """This process's peak RSS so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(fn()'s result or the exception it raised, seconds)."""
    start = time.monotonic()
    try:
        result: object = fn()
    except Exception as exc:  # the caller inspects what came out
        result = exc
    return result, time.monotonic() - start
