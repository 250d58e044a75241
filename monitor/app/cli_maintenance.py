"""`fleetmon maintenance list|add|end`: maintenance windows (维护窗口) through the running
daemon's HTTP API (/api/v1/maintenance).

The daemon holds the maintenance book in memory (it decides each cycle whether a fault is
notified), so writes go through its API, never into the state database behind its back.
`list` falls back to reading the state database read-only when the daemon cannot be reached,
and says so.

- Where: `--url`, else api.listen / api.port of the config file (`--config`, default
  /etc/fleetmon/config.yaml; only those keys, `language`, `timezone` and `state.database` are
  read, raw: the daemon's secrets are not needed here), as `fleetmon workorder` does.
- Who: the bearer token from `--token-file`, else the environment variable FLEETMON_API_TOKEN
  (else FLEETMON_TOKEN, `fleetmon workorder`'s). A personal token records its person; the
  shared write token needs `--by`.
- Output: a table in the config's language (`--lang`), times in its zone; `--json` prints the
  API's JSON (the same shape from the state database).

Exit status: 0 done; 1 the daemon is not reachable (and, for list, no state database either) or
failed; 2 bad input or refused (usage, 4xx: the daemon's reason is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from monitor.app.cli_common import EXIT_CANNOT_RUN, EXIT_OK, add_config_option, config_path
from monitor.app.cli_common import EXIT_USAGE as EXIT_BAD_INPUT
from monitor.app.cli_workorder import CliError, Target, Unreachable, _request, target
from monitor.core.model import Kind
from rules.alerting.recurrence import describe_every

TOKEN_ENVS = ("FLEETMON_API_TOKEN", "FLEETMON_TOKEN")

WORDS = {
    "zh": {
        "columns": ("编号", "范围", "时间", "下次", "原因", "来源"),
        "none": "没有维护窗口。", "count": "维护窗口 {n} 个", "active": "（维护中）",
        "every": "{rule}，{d}", "from": "自{t}", "until": "至{t}", "forever": "长期",
        "source": {"config": "配置", "api": "临时"},
        "scope_all": "全部点位", "devices": "点位", "region": "区域", "site": "站点", "kind": "类型", "tags": "标签",
        "created": "已创建维护窗口 #{id}", "ended": "已结束维护窗口 #{id}",
        "offline_db": "{reason}\n以下读自状态库 {path}（只读）。",
        "no_token": "写操作需要令牌：--token-file 文件，或环境变量 FLEETMON_API_TOKEN",
        "d": "{n}天", "h": "{n}小时", "m": "{n}分", "sep": "",
    },
    "en": {
        "columns": ("id", "scope", "when", "next", "reason", "source"),
        "none": "No maintenance window.", "count": "{n} maintenance window(s)", "active": " (in maintenance)",
        "every": "{rule}, {d}", "from": "from {t}", "until": "until {t}", "forever": "until ended",
        "source": {"config": "config", "api": "ad hoc"},
        "scope_all": "all points", "devices": "points", "region": "regions", "site": "sites", "kind": "kinds",
        "tags": "tags",
        "created": "created maintenance window #{id}", "ended": "ended maintenance window #{id}",
        "offline_db": "{reason}\nRead from the state database {path} (read-only) instead.",
        "no_token": "Writes need a token: --token-file FILE, or the environment variable FLEETMON_API_TOKEN",
        "d": "{n} d", "h": "{n} h", "m": "{n} min", "sep": " ",
    },
}


def _target(args: argparse.Namespace) -> Target:
    t = target(args)
    if args.token_file is None:  # FLEETMON_API_TOKEN first (target() reads only FLEETMON_TOKEN)
        token = next((os.environ[e] for e in TOKEN_ENVS if os.environ.get(e)), None)
        t = Target(t.url, t.language, t.zone, token)
    return t


def _duration(w: dict[str, str], seconds: int) -> str:
    parts, left = [], seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n, left = divmod(left, size)
        if n:
            parts.append(w[unit].format(n=n))
    return w["sep"].join(parts) or w["m"].format(n=0)


def _scope(w: dict[str, Any], match: dict[str, list[str]]) -> str:
    parts = [f"{w[key]} {','.join(match[key])}" for key in ("devices", "region", "site", "kind", "tags")
             if match.get(key)]
    return "; ".join(parts) or w["scope_all"]


def _when(t: Target, w: dict[str, Any], window: dict[str, Any]) -> str:
    if window["every"] is None:
        return f"{t.time(window['start_ns'])} → {t.time(window['end_ns'])}"
    text = w["every"].format(rule=describe_every(window["every"], t.language), d=_duration(w, window["duration_s"]))
    first = t.time(window["start_ns"]).removesuffix(" 00:00")  # from a day, or from when it was created
    span = [w["from"].format(t=first)]
    if window["end_ns"] is None:
        span.append(w["forever"])
    else:  # the schedule ends one duration after the end of its last day (recurrence.span_of)
        last = t.time(window["end_ns"] - window["duration_s"] * 1_000_000_000 - 1)[:10]
        span.append(w["until"].format(t=last))
    return f"{text} ({' '.join(span)})"


def print_windows(t: Target, body: dict[str, Any]) -> None:
    from rich.table import Table

    from monitor.app.cli_workorder import _console

    w = WORDS[t.language]
    windows = body["windows"]
    if not windows:
        print(w["none"])
        return
    # Those running first, then by their next start (the API lists by start).
    windows = sorted(windows, key=lambda x: (not x["active"], x["next"][0]["start_ns"] if x["next"] else 2**63))
    table = Table(title=w["count"].format(n=len(windows)), title_justify="left")
    for name in w["columns"]:
        table.add_column(name, overflow="fold")
    for window in windows:
        nxt = "\n".join(f"{t.time(o['start_ns'])} → {t.time(o['end_ns'])}" for o in window["next"][:2])
        table.add_row(
            f"#{window['id']}" + (w["active"] if window["active"] else ""), _scope(w, window["match"]),
            _when(t, w, window), nxt or "—", window["reason"], w["source"][window["source"]],
        )
    _console().print(table)


def _emit(args: argparse.Namespace, t: Target, body: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print_windows(t, body)


def _state_db(args: argparse.Namespace) -> Path:
    """The state database of the config's raw `state.database` (relative to the config's folder)."""
    path = config_path(args)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raw = None
    state = raw.get("state") if isinstance(raw, dict) else None
    db = Path(str(state.get("database"))) if isinstance(state, dict) and state.get("database") else None
    db = db or Path("/var/lib/fleetmon/state.db")
    return db if db.is_absolute() else path.absolute().parent / db


async def _from_state_db(path: Path, active: bool, language: str) -> dict[str, Any]:
    """The list the API would give, from the state database read-only. Raises CliError (3)."""
    from monitor.app.api_maintenance import WindowListOut, window_out
    from monitor.state.db import StateDB, StateDBError
    from rules.alerting.maintenance import SCHEMA, current_windows

    now = time.time_ns()
    try:
        async with StateDB(path, read_only=True) as db:
            await db.migrate(SCHEMA)
            windows = await db.execute(lambda conn: current_windows(conn, now))
    except StateDBError as exc:
        raise CliError(EXIT_CANNOT_RUN, str(exc)) from None
    if active:
        windows = [x for x in windows if x.active(now)]
    return WindowListOut(windows=[window_out(x, now, language) for x in windows]).model_dump(mode="json")


def cmd_list(args: argparse.Namespace) -> int:
    async def work(t: Target) -> int:
        params = {"active": "true"} if args.active else None
        try:
            body = await _request(t, "GET", "/api/v1/maintenance", params=params)
        except CliError as exc:
            if not isinstance(exc, Unreachable) or args.no_fallback:
                raise
            path = _state_db(args)
            body = await _from_state_db(path, args.active, t.language)
            print(WORDS[t.language]["offline_db"].format(reason=str(exc), path=path), file=sys.stderr)
        _emit(args, t, body)
        return EXIT_OK

    return _run(args, work)


def _match(args: argparse.Namespace) -> dict[str, list[str]]:
    return {key: values for key, values in (("devices", args.device), ("region", args.region), ("site", args.site),
                                            ("kind", args.kind), ("tags", args.tag)) if values}


def cmd_add(args: argparse.Namespace) -> int:
    async def work(t: Target) -> int:
        if t.token is None:
            raise CliError(EXIT_BAD_INPUT, WORDS[t.language]["no_token"])
        body: dict[str, Any] = {"match": _match(args), "reason": args.reason}
        if args.every is not None or args.duration is not None:
            if args.start or args.end:
                raise CliError(EXIT_BAD_INPUT, "give --start/--end (one-off) or --every/--duration (recurring), not both")
            body.update(every=args.every, duration=args.duration)
            if args.from_:
                body["from"] = args.from_
            if args.until:
                body["until"] = args.until
        else:
            if args.from_ or args.until:
                raise CliError(EXIT_BAD_INPUT, "--from/--until go with --every and --duration")
            body.update(start=_at(args.start, t, "--start"), end=_at(args.end, t, "--end"))
        if args.by:
            body["by"] = args.by
        created = await _request(t, "POST", "/api/v1/maintenance", body=body)
        if args.json:
            print(json.dumps(created, ensure_ascii=False, indent=2))
        else:
            print(WORDS[t.language]["created"].format(id=created["id"]))
            print_windows(t, {"windows": [created]})
        return EXIT_OK

    return _run(args, work)


def cmd_end(args: argparse.Namespace) -> int:
    async def work(t: Target) -> int:
        if t.token is None:
            raise CliError(EXIT_BAD_INPUT, WORDS[t.language]["no_token"])
        params = {"by": args.by} if args.by else None
        body = await _request(t, "DELETE", f"/api/v1/maintenance/{args.id}", params=params)
        print(json.dumps(body, ensure_ascii=False) if args.json else WORDS[t.language]["ended"].format(id=args.id))
        return EXIT_OK

    return _run(args, work)


def _at(text: str | None, t: Target, flag: str) -> str:
    """ISO-8601 with offset of "2026-12-01 02:00" (local, the config's zone) or ISO with its own
    offset. Raises CliError."""
    from datetime import datetime

    if not text:
        raise CliError(EXIT_BAD_INPUT, "give --start and --end (one-off) or --every and --duration (recurring)")
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(EXIT_BAD_INPUT, f"{flag} {text!r}: write a time as \"2026-12-01 02:00\" (local time, "
                                       f"{t.zone.key})") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=t.zone)).isoformat()


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        return asyncio.run(work(_target(args)))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status


def add_maintenance(subparsers: argparse._SubParsersAction) -> None:
    """`fleetmon maintenance …` (registered in monitor.app.cli SUBCOMMANDS)."""
    common = argparse.ArgumentParser(add_help=False)
    add_config_option(common)
    common.add_argument("--url", help="the daemon's API instead, e.g. http://127.0.0.1:8080")
    common.add_argument("--token-file", type=Path,
                        help=f"your token (default: the environment variable {TOKEN_ENVS[0]})")
    common.add_argument("--lang", choices=tuple(WORDS), help="output language (default: the config's)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    parser = subparsers.add_parser(
        "maintenance", help="maintenance windows (维护窗口): list, add (one-off or recurring), end",
        description="Maintenance windows through the running daemon's HTTP API: faults of the points covered are "
        "not notified inside them, and reports take their time out. Writes need a token (--token-file or "
        f"{TOKEN_ENVS[0]}).",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    p = sub.add_parser("list", parents=[common], help="windows not yet over, with their next occurrences",
                       description="Windows not yet over. When the daemon cannot be reached, read the state "
                       "database (state.database of the config) read-only instead, and say so on stderr.")
    p.add_argument("--active", action="store_true", help="only windows in force now")
    p.add_argument("--no-fallback", action="store_true", help="fail when the daemon is not reachable")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser(
        "add", parents=[common], help="a one-off (--start/--end) or recurring (--every/--duration) window",
        description='One-off: --start "2026-12-01 02:00" --end "2026-12-01 06:00" (local time). Recurring: '
        '--every "tue 01:00" (or "mon,thu 22:30", "daily 03:00", a 5-field cron "0 1 * * 2") --duration 4h, '
        "optionally --from/--until (local dates, both included). The rule is read in the daemon's zone. "
        "Without --device/--region/--site/--kind/--tag the window covers every point.",
    )
    p.add_argument("--device", action="append", default=[], metavar="ID", help="a point id (repeatable)")
    p.add_argument("--region", action="append", default=[], help="a region (repeatable)")
    p.add_argument("--site", action="append", default=[], help="a site (repeatable)")
    p.add_argument("--kind", action="append", default=[], choices=[k.value for k in Kind], help="a kind (repeatable)")
    p.add_argument("--tag", action="append", default=[], help="a tag the points carry (repeatable: all of them)")
    p.add_argument("--start", help='one-off: "2026-12-01 02:00" (local) or ISO-8601 with an offset')
    p.add_argument("--end", help="one-off: at most 31 days after --start")
    p.add_argument("--every", help='recurring: "tue 01:00", "mon-fri 02:00", "daily 03:00" or "0 1 * * 2"')
    p.add_argument("--duration", help="recurring: one occurrence, e.g. 4h, 90m, 1h30m (at most 31 days)")
    p.add_argument("--from", dest="from_", metavar="DATE", help="recurring: first day, e.g. 2026-12-01 (default: now)")
    p.add_argument("--until", metavar="DATE", help="recurring: last day an occurrence starts (default: until ended)")
    p.add_argument("--reason", required=True, help="why, one line (shown in reports), e.g. 光缆割接")
    p.add_argument("--by", help="who: only with the shared write token (a personal token records you)")
    p.set_defaults(run=cmd_add)

    p = sub.add_parser("end", parents=[common], help="end an ad hoc window now (a recurring one: its schedule)")
    p.add_argument("id", type=int, help="the window's number (fleetmon maintenance list)")
    p.add_argument("--by", help="who ends it (for the log)")
    p.set_defaults(run=cmd_end)
