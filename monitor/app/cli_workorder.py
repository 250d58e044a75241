"""`fleetmon workorder list|show|report|ack|arrive|restore|replace|classify|note|assign|close`:
work orders (工单) through the running daemon's HTTP API (monitor.app.api_workorders).

Reads and writes both go through the API: the daemon's work-order book is the single writer
(it allocates reference numbers in memory), and one path for both keeps what the CLI shows
what the daemon holds.

- Where: `--url`, else api.listen / api.port of the config file (`--config`, default
  /etc/fleetmon/config.yaml). Only those keys, `language` and `timezone` are read from it, raw:
  validating the whole file would resolve the daemon's secrets, which a duty engineer's shell
  does not hold.
- Who: the bearer token from `--token-file` or the environment variable FLEETMON_TOKEN: a
  personal token records its person; the shared write token needs `--by`. Reads need a token
  only when the daemon has a status token.
- Output: Chinese by default (the config's `language`, `--lang`), times in the config's zone;
  `--json` prints the API's JSON as it came.

Exit status: 0 done; 1 the daemon is not reachable or failed (5xx, 503 work orders not
enabled); 2 bad input or refused (usage, 4xx: the daemon's reason is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote
from zoneinfo import ZoneInfo

import yaml

from monitor.core.timecheck import check_zone

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
TOKEN_ENV = "FLEETMON_TOKEN"
TIMEOUT_S = 30.0
DEFAULT_CONFIG = Path("/etc/fleetmon/config.yaml")

WORDS = {
    "zh": {
        "stage": {"reported": "已报障", "acknowledged": "已响应", "arrived": "已到场", "restored": "已修复",
                  "closed": "已关闭"},
        "action": {"opened": "报障", "assigned": "指派", "acknowledged": "响应", "arrived": "到场", "restored": "修复",
                   "replaced": "更换", "replacement_proposed": "疑似更换", "classified": "分类", "noted": "备注",
                   "close_proposed": "建议关闭", "closed": "关闭", "sla_notice": "时限提醒", "escalated": "升级"},
        "clock_state": {"ok": "正常", "warning": "将到期", "breached": "已超时", "met": "按时", "missed": "超时"},
        "severity": {"critical": "紧急", "major": "严重", "minor": "一般"},
        "resolution": {"remote": "远程", "on_site": "现场"},
        "source": {"manual": "故障申告", "fault": "故障告警", "long_offline": "长期离线", "serial_change": "序列号变化"},
        "clock": {},  # the contract's own words, as the API gives them
        "columns": ("编号", "级别", "阶段", "设备", "标题", "报障时间", "负责人", "时限"),
        "clock_columns": ("时限", "截止时间", "状态", "剩余/超出"),
        "event_columns": ("时间", "动作", "人员", "内容"),
        "orders": "工单 {n} 个（{state}）", "open": "未关闭", "closed": "已关闭", "all": "全部",
        "none": "没有工单。", "more": "另有 {n} 个未显示（--limit）",
        "left": "剩{d}", "over": "超时{d}", "unassigned": "未指派",
        "fields": {"title": "标题", "severity": "级别", "stage": "阶段", "source": "来源", "devices": "设备",
                   "reported": "报障", "assignee": "负责人", "acknowledged": "响应", "arrived": "到场",
                   "restored": "修复", "cause": "原因", "replacements": "更换", "closed": "关闭"},
        "excluded": "（不计入考核）", "cancelled": "（作废）",
        "done": {"report": "已报障", "ack": "已认领", "arrive": "已记录到场", "restore": "已记录修复",
                 "replace": "已记录更换", "classify": "已分类", "note": "已添加备注", "assign": "已指派",
                 "close": "已关闭"},
        "unreachable": "无法连接 fleetmon 守护进程 {url}（{reason}）：守护进程在运行吗？（systemctl status fleetmon）",
        "refused_connection": "连接被拒绝",
        "refused": "被拒绝（{status}）：{error}",
        "failed": "守护进程出错（{status}）：{error}",
        "no_token": "写操作需要令牌：--token-file 文件，或环境变量 FLEETMON_TOKEN",
        "d": "{n}天", "h": "{n}小时", "m": "{n}分", "s": "{n}秒", "sep": "",
    },
    "en": {
        "stage": {"reported": "reported", "acknowledged": "acknowledged", "arrived": "on site",
                  "restored": "restored", "closed": "closed"},
        "action": {"opened": "reported", "assigned": "assigned", "acknowledged": "acknowledged",
                   "arrived": "arrived", "restored": "restored", "replaced": "replaced",
                   "replacement_proposed": "replacement proposed", "classified": "classified", "noted": "note",
                   "close_proposed": "close proposed", "closed": "closed", "sla_notice": "SLA notice",
                   "escalated": "escalated"},
        "clock_state": {"ok": "ok", "warning": "due soon", "breached": "overdue", "met": "met", "missed": "missed"},
        "severity": {"critical": "critical", "major": "major", "minor": "minor"},
        "resolution": {"remote": "remote", "on_site": "on site"},
        "source": {"manual": "manual report", "fault": "fault", "long_offline": "long offline",
                   "serial_change": "serial changed"},
        "clock": {"response": "response", "arrival": "arrival", "restore": "restore", "replacement": "replacement"},
        "columns": ("ref", "severity", "stage", "devices", "title", "reported", "assignee", "deadline"),
        "clock_columns": ("clock", "deadline", "state", "left/over"),
        "event_columns": ("time", "action", "by", "details"),
        "orders": "{n} work orders ({state})", "open": "open", "closed": "closed", "all": "all",
        "none": "No work orders.", "more": "{n} more not shown (--limit)",
        "left": "{d} left", "over": "{d} over", "unassigned": "unassigned",
        "fields": {"title": "title", "severity": "severity", "stage": "stage", "source": "source",
                   "devices": "devices", "reported": "reported", "assignee": "assignee",
                   "acknowledged": "acknowledged", "arrived": "arrived", "restored": "restored", "cause": "cause",
                   "replacements": "replaced", "closed": "closed"},
        "excluded": " (excluded from the assessment)", "cancelled": " (cancelled)",
        "done": {"report": "Reported", "ack": "Acknowledged", "arrive": "Arrival recorded",
                 "restore": "Restore recorded", "replace": "Replacement recorded", "classify": "Classified",
                 "note": "Note added", "assign": "Assigned", "close": "Closed"},
        "unreachable": "Cannot reach the fleetmon daemon at {url} ({reason}): is it running? "
                       "(systemctl status fleetmon)",
        "refused_connection": "connection refused",
        "refused": "Refused ({status}): {error}",
        "failed": "The daemon failed ({status}): {error}",
        "no_token": "Writes need a token: --token-file FILE, or the environment variable FLEETMON_TOKEN",
        "d": "{n} d", "h": "{n} h", "m": "{n} min", "s": "{n} s", "sep": " ",
    },
}


class CliError(Exception):
    """Stop with `message` on stderr and exit status `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """The daemon's API and how to talk to people about it."""

    url: str
    language: str
    zone: ZoneInfo
    token: str | None

    @property
    def w(self) -> dict[str, Any]:
        return WORDS[self.language]

    def time(self, ns: int | None, seconds: bool = False) -> str:
        if ns is None:
            return "—"
        local = datetime.fromtimestamp(ns // 1_000_000_000, UTC).astimezone(self.zone)
        return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def clock(self, c: dict[str, Any]) -> str:
        """A clock's name: the contract's word (the API's label) in Chinese, the plain name in English."""
        return self.w["clock"].get(c["clock"], c["label"])

    def duration(self, seconds: float) -> str:
        """The two largest units: 1小时20分 / 1 h 20 min."""
        left, parts = max(0, int(abs(seconds))), []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            n, left = divmod(left, size)
            if n or (unit == "s" and not parts):
                parts.append(self.w[unit].format(n=n))
        return self.w["sep"].join(parts[:2])


# --- where and who ------------------------------------------------------------------------------


def target(args: argparse.Namespace) -> Target:
    """The API's URL, the language and zone (from --url/--lang and the config's raw keys) and
    the token. Raises CliError (2) for an unreadable config or token file."""
    raw: dict[str, Any] = {}
    if args.url is None or args.config is not None:
        path = args.config or DEFAULT_CONFIG
        try:
            loaded = _load_bounded(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
            raise CliError(EXIT_BAD_INPUT, f"{path}: cannot read the config ({reason}); or give --url") from None
        raw = loaded if isinstance(loaded, dict) else {}
    url = args.url.rstrip("/") if args.url else _api_url(raw.get("api") or {}, args.config or DEFAULT_CONFIG)
    language = args.lang or (raw.get("language") if raw.get("language") in WORDS else "zh")
    try:
        zone = ZoneInfo(check_zone(str(raw.get("timezone") or "Asia/Shanghai")))
    except ValueError:  # check-config says why; the client need not
        zone = ZoneInfo("Asia/Shanghai")
    return Target(url, language, zone, _token(args))


def _load_bounded(text: str) -> Any:
    """yaml.safe_load, refusing a document whose aliases expand beyond the config's bound
    (ValueError): this client reads the same file as the daemon."""
    from monitor.core.config_base import expansion_problem  # here: pydantic only when a config is read

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None and (too_large := expansion_problem(root)) is not None:
        raise ValueError(f"line {too_large[0].line + 1}: {too_large[1]}")
    return yaml.safe_load(text)


def _api_url(api: Any, path: Path) -> str:
    """http://HOST:PORT of the config's `api` section (a wildcard listen address is reached on
    loopback). Raises CliError for a disabled API or values the daemon would refuse too."""
    if not isinstance(api, dict):
        raise CliError(EXIT_BAD_INPUT, f"{path}: api must be a mapping")
    if api.get("enabled") is False:
        raise CliError(EXIT_BAD_INPUT, f"{path}: the daemon's HTTP API is disabled (api.enabled: false)")
    try:
        address = ipaddress.ip_address(str(api.get("listen", "127.0.0.1")))
        port = int(api.get("port", 8080))
    except ValueError:
        raise CliError(EXIT_BAD_INPUT, f"{path}: api.listen must be an IP address and api.port a number") from None
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CliError(EXIT_BAD_INPUT, f"{args.token_file}: cannot read the token ({reason})") from None
        if not token:
            raise CliError(EXIT_BAD_INPUT, f"{args.token_file}: the token file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _at(text: str | None, zone: ZoneInfo) -> str | None:
    """ISO-8601 with offset of a time given as "2026-12-01 10:00", "10:00" (today) or ISO with
    its own offset; local times are in `zone`. Raises CliError."""
    if text is None:
        return None
    text = text.strip()
    try:
        if len(text) in (4, 5) and ":" in text:  # HH:MM today
            hour, minute = (int(p) for p in text.split(":"))
            dt = datetime.now(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
        else:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=zone)
    except ValueError:
        raise CliError(EXIT_BAD_INPUT, f"--at {text!r}: write a time as \"2026-12-01 10:00\" or \"10:00\" "
                                       f"(local time, {zone.key})") from None
    return dt.isoformat()


# --- talking to the daemon ------------------------------------------------------------------------


async def _request(t: Target, method: str, path: str, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None) -> Any:
    """The API's JSON answer. Raises CliError: 1 unreachable or 5xx, 2 for 4xx."""
    import aiohttp

    headers = {"Accept": "application/json"}
    if t.token is not None:
        headers["Authorization"] = f"Bearer {t.token}"
    url = t.url + path
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
            async with http.request(method, url, json=body, params=params, headers=headers) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                status = resp.status
    except aiohttp.ClientConnectorError as exc:
        code = exc.os_error.errno if exc.os_error is not None else None
        reason = t.w["refused_connection"] if code == errno.ECONNREFUSED else os.strerror(code) if code else str(exc)
        raise CliError(EXIT_FAILED, t.w["unreachable"].format(url=t.url, reason=reason)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CliError(EXIT_FAILED, t.w["unreachable"].format(url=t.url, reason=type(exc).__name__)) from None
    if status < 400 and isinstance(answer, dict):
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    error = error if isinstance(error, str) else f"not a fleetmon answer from {url}"
    if 400 <= status < 500:
        raise CliError(EXIT_BAD_INPUT, t.w["refused"].format(status=status, error=error))
    raise CliError(EXIT_FAILED, t.w["failed"].format(status=status, error=error))


def _ref(ref: str) -> str:
    return quote(ref.strip(), safe="")


# --- output ---------------------------------------------------------------------------------------


def _console():
    from rich.console import Console

    # Piped output (scripts, tickets) gets full columns instead of rich's 80-column default.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _devices(order: dict[str, Any]) -> str:
    return "、".join(f"{d['name'] or d['id']}（{d['id']}）" if d["name"] else d["id"] for d in order["devices"])


def _deadline(t: Target, order: dict[str, Any], now_ns: int) -> str:
    """The clock that matters now: the most urgent running one, else a missed one."""
    from rich.markup import escape

    running = [c for c in order["clocks"] if c["stopped_ns"] is None]
    if running:
        c = min(running, key=lambda c: c["deadline_ns"])
        left_s = (c["deadline_ns"] - now_ns) / 1e9
        text = t.w["left" if left_s >= 0 else "over"].format(d=t.duration(left_s))
        colour = "red" if left_s < 0 else "yellow" if c["state"] == "warning" else "green"
        return f"[{colour}]{escape(t.clock(c))} {text}[/{colour}]"
    missed = [escape(t.clock(c)) for c in order["clocks"] if c["state"] == "missed"]
    return f"[red]{'、'.join(missed)} {t.w['clock_state']['missed']}[/red]" if missed else "—"


def print_list(t: Target, body: dict[str, Any], state: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    w, console = t.w, _console()
    orders = body["orders"]
    if not orders:
        console.print(w["none"])
        return
    table = Table(*w["columns"], title=w["orders"].format(n=body["total"], state=w[state]))
    for o in orders:
        table.add_row(o["ref"], w["severity"][o["severity"]], w["stage"][o["stage"]], escape(_devices(o)),
                      escape(o["title"]), t.time(o["reported_ns"]), escape(o["assignee"] or w["unassigned"]),
                      _deadline(t, o, body["now_ns"]))
    console.print(table)
    if body["total"] > len(orders):
        console.print(w["more"].format(n=body["total"] - len(orders)))


def print_order(t: Target, o: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    w, f, console = t.w, t.w["fields"], _console()

    def stamp(ns: int | None, by: str | None) -> str:
        return "—" if ns is None else f"{t.time(ns)} · {escape(by or '')}"

    cause = (escape(o["cause_label"]) + (w["excluded"] if o["cause_excluded"] else "")) if o["cause"] else "—"
    lines = [
        (f["title"], escape(o["title"])),
        (f["severity"], w["severity"][o["severity"]]),
        (f["stage"], w["stage"][o["stage"]] + (w["cancelled"] if o["cancelled"] else "")),
        (f["source"], w["source"].get(o["source"], o["source"]) + (f" {o['source_ref']}" if o["source_ref"] else "")),
        (f["devices"], escape(_devices(o))),
        (f["reported"], stamp(o["reported_ns"], o["reported_by"])),
        (f["assignee"], escape(o["assignee"] or w["unassigned"])),
        (f["acknowledged"], stamp(o["acknowledged_ns"], o["acknowledged_by"])),
        (f["arrived"], stamp(o["arrived_ns"], o["arrived_by"])),
        (f["restored"], stamp(o["restored_ns"], o["restored_by"])
         + (f" · {w['resolution'][o['resolution']]}" if o["resolution"] else "")),
        (f["cause"], cause),
        *((f["replacements"], escape(f"{r['device']} {r['old_serial']} → {r['new_serial']}") + " · "
           + stamp(r["at_ns"], r["by"])) for r in o["replacements"]),
        (f["closed"], stamp(o["closed_ns"], o["closed_by"])),
    ]
    console.print(f"[bold]{o['ref']}[/bold]")
    for label, value in lines:
        console.print(f"  {label}：{value}" if t.language == "zh" else f"  {label}: {value}")
    if o["clocks"]:
        clocks = Table(*w["clock_columns"])
        for c in o["clocks"]:
            # remaining_s: to the deadline from now (running) or from the stop (negative when missed)
            left = w["left" if c["remaining_s"] >= 0 else "over"].format(d=t.duration(c["remaining_s"]))
            colour = {"ok": "green", "met": "green", "warning": "yellow"}.get(c["state"], "red")
            clocks.add_row(escape(t.clock(c)), t.time(c["deadline_ns"]),
                           f"[{colour}]{w['clock_state'][c['state']]}[/{colour}]",
                           left if c["stopped_ns"] is None or c["state"] == "missed" else "—")
        console.print(clocks)
    events = Table(*w["event_columns"])
    for e in o.get("events", []):
        details = " · ".join(f"{k}={v}" for k, v in e["payload"].items()
                             if v is not None and k not in ("devices", "kind", "source", "source_ref"))
        events.add_row(t.time(e["at_ns"], seconds=True), w["action"].get(e["action"], e["action"]), escape(e["by"]),
                       escape(details))
    console.print(events)


# --- subcommands ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace, work: Callable[[Target], Any]) -> int:
    try:
        t = target(args)
        return asyncio.run(work(t))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status


def _emit(args: argparse.Namespace, t: Target, body: dict[str, Any], done: str | None = None) -> int:
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif done is not None:
        from rich.markup import escape

        _console().print(f"{t.w['done'][done]} [bold]{body['ref']}[/bold] · {escape(body['title'])}")
        print_order(t, body)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    async def work(t: Target) -> int:
        params = {"state": args.state, "days": str(args.days), "limit": str(args.limit)}
        if args.device:
            params["device"] = args.device
        body = await _request(t, "GET", "/api/v1/workorders", params=params)
        if args.json:
            return _emit(args, t, body)
        print_list(t, body, args.state)
        return EXIT_OK

    return _run(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(t: Target) -> int:
        body = await _request(t, "GET", f"/api/v1/workorders/{_ref(args.ref)}")
        if args.json:
            return _emit(args, t, body)
        print_order(t, body)
        return EXIT_OK

    return _run(args, work)


def _write(args: argparse.Namespace, done: str, path: Callable[[argparse.Namespace], str],
           body: Callable[[argparse.Namespace, Target], dict[str, Any]]) -> int:
    """POST `body(args, target)` to `path(args)`, with `by` when given; print the order."""
    async def work(t: Target) -> int:
        if t.token is None:
            raise CliError(EXIT_BAD_INPUT, t.w["no_token"])
        payload = {k: v for k, v in body(args, t).items() if v is not None}
        if args.by is not None:
            payload["by"] = args.by
        answer = await _request(t, "POST", path(args), payload)
        return _emit(args, t, answer, done)

    return _run(args, work)


def _on(action: str) -> Callable[[argparse.Namespace], str]:
    return lambda args: f"/api/v1/workorders/{_ref(args.ref)}/{action}"


def cmd_report(args: argparse.Namespace) -> int:
    return _write(args, "report", lambda a: "/api/v1/workorders", lambda a, t: {
        "devices": a.devices, "title": a.title, "severity": a.severity, "assignee": a.assignee,
        "reported": _at(a.at, t.zone)})


def cmd_ack(args: argparse.Namespace) -> int:
    return _write(args, "ack", _on("acknowledge"), lambda a, t: {"at": _at(a.at, t.zone)})


def cmd_arrive(args: argparse.Namespace) -> int:
    return _write(args, "arrive", _on("arrive"), lambda a, t: {"at": _at(a.at, t.zone)})


def cmd_restore(args: argparse.Namespace) -> int:
    return _write(args, "restore", _on("restore"), lambda a, t: {"at": _at(a.at, t.zone),
                                                                  "resolution": a.resolution})


def cmd_replace(args: argparse.Namespace) -> int:
    return _write(args, "replace", _on("replace"), lambda a, t: {
        "at": _at(a.at, t.zone), "device": a.device, "old_serial": a.old_serial, "new_serial": a.new_serial,
        "old_model": a.old_model, "new_model": a.new_model})


def cmd_classify(args: argparse.Namespace) -> int:
    return _write(args, "classify", _on("classify"), lambda a, t: {
        "cause": a.cause, "resolution": a.resolution, "no_spare": a.no_spare})


def cmd_note(args: argparse.Namespace) -> int:
    return _write(args, "note", _on("note"), lambda a, t: {"text": a.text})


def cmd_assign(args: argparse.Namespace) -> int:
    return _write(args, "assign", _on("assign"), lambda a, t: {"assignee": a.assignee})


def cmd_close(args: argparse.Namespace) -> int:
    return _write(args, "close", _on("close"), lambda a, t: {
        "at": _at(a.at, t.zone), "cancelled": a.cancelled or None, "note": a.note})


def add_workorder(subparsers: argparse._SubParsersAction) -> None:
    """`fleetmon workorder …` (registered in monitor.app.cli SUBCOMMANDS)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", type=Path, default=None,
                        help=f"the daemon's config file, for api.listen/port, language, timezone ({DEFAULT_CONFIG})")
    common.add_argument("--url", help="the daemon's API instead, e.g. http://127.0.0.1:8080")
    common.add_argument("--token-file", type=Path, help=f"your token (default: the environment variable {TOKEN_ENV})")
    common.add_argument("--lang", choices=tuple(WORDS), help="output language (default: the config's)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    writer = argparse.ArgumentParser(add_help=False, parents=[common])
    writer.add_argument("--by", help="who acts: only with the shared write token (a personal token records you)")
    stamped = argparse.ArgumentParser(add_help=False, parents=[writer])
    stamped.add_argument("--at", help='when it happened if not now: "2026-12-01 10:00" or "10:00" (local time)')

    parser = subparsers.add_parser(
        "workorder", help="work orders (工单): list, show, report, ack, arrive, restore, replace, close",
        description="Work orders through the running daemon's HTTP API. Writes need a token "
        f"(--token-file or {TOKEN_ENV}); a personal token records who acted.",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    p = sub.add_parser("list", parents=[common], help="list orders with their nearest deadline")
    p.add_argument("--state", choices=("open", "closed", "all"), default="open")
    p.add_argument("--device", help="only orders of this device id")
    p.add_argument("--days", type=int, default=90, help="closed/all: orders open in the last N days (90)")
    p.add_argument("--limit", type=int, default=200, help="most orders shown (200)")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("show", parents=[common], help="one order: stamps, SLA clocks, events")
    p.add_argument("ref", help="reference, e.g. WO-20261204-0007")
    p.set_defaults(run=cmd_show)

    p = sub.add_parser("report", parents=[stamped], help="a manual fault report (故障申告)")
    p.add_argument("devices", nargs="+", metavar="DEVICE", help="device id(s), the main one first")
    p.add_argument("--title", required=True, help="what was reported, one line")
    p.add_argument("--severity", choices=("critical", "major", "minor"), default="major")
    p.add_argument("--assignee", help="who should take it")
    p.set_defaults(run=cmd_report)

    for name, help_text, run in (("ack", "acknowledge (响应/认领)", cmd_ack),
                                 ("arrive", "arrived on site (到场)", cmd_arrive)):
        p = sub.add_parser(name, parents=[stamped], help=help_text)
        p.add_argument("ref")
        p.set_defaults(run=run)

    p = sub.add_parser("restore", parents=[stamped], help="the device works again (修复)")
    p.add_argument("ref")
    p.add_argument("--resolution", choices=("remote", "on_site"), help="default: on_site after an arrival")
    p.set_defaults(run=cmd_restore)

    p = sub.add_parser("replace", parents=[stamped], help="a device exchanged (更换)")
    p.add_argument("ref")
    p.add_argument("--device", required=True, help="the device exchanged (one of the order's)")
    p.add_argument("--old-serial", required=True)
    p.add_argument("--new-serial", required=True)
    p.add_argument("--old-model", help="default: the point list's")
    p.add_argument("--new-model")
    p.set_defaults(run=cmd_replace)

    p = sub.add_parser("classify", parents=[writer], help="cause class, resolution class, no spare part")
    p.add_argument("ref")
    p.add_argument("--cause", choices=("municipal", "power", "vandalism", "force_majeure", "carrier", "buyer",
                                       "device", "line", "software", "other"),
                   help="the first six are excluded from the assessment (manager role)")
    p.add_argument("--resolution", choices=("remote", "on_site"))
    p.add_argument("--no-spare", action=argparse.BooleanOptionalAction, default=None, help="no spare part (无备件)")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("note", parents=[writer], help="add a note")
    p.add_argument("ref")
    p.add_argument("text")
    p.set_defaults(run=cmd_note)

    p = sub.add_parser("assign", parents=[writer], help="give the order to someone")
    p.add_argument("ref")
    p.add_argument("assignee")
    p.set_defaults(run=cmd_assign)

    p = sub.add_parser("close", parents=[stamped], help="close after the restore, or --cancelled (误报/重复)")
    p.add_argument("ref")
    p.add_argument("--cancelled", action="store_true", help="a false or duplicate report (manager role)")
    p.add_argument("--note")
    p.set_defaults(run=cmd_close)
