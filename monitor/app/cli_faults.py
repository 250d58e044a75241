"""`fleetmon faults [--all] [--region R] [--json] [--fail-on-faults]`: the open faults (故障).

Where from: the running daemon's API (GET /api/v1/faults; its faults in memory run ahead of
the database while a write fails) when it answers; else, when it does not answer at all, the
state database, read-only (safe beside a daemon that is starting or stuck). The address, the
language and the zone come from the config's raw keys as for `fleetmon workorder`
(monitor.app.cli_workorder.target); the database fallback validates the config to find the
database. `--all`: resolved faults too (the newest `--limit`).

Output: a table in the config's language (Chinese by default, `--lang`), times in its zone;
`--json`: {"source": "daemon"|"state database", "faults": [the API's FaultOut documents]}.
Exit (monitor.app.cli_common): 0; 1 with --fail-on-faults when an open fault is listed, or an
invalid config; 2 usage; 3 neither the daemon nor the state database can be read, or a token
is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from monitor.app.cli_common import EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS, add_config_option, config_path
from monitor.app.cli_probe import bounded
from monitor.app.cli_workorder import TOKEN_ENV, WORDS, CliError, Target, Unreachable, _console, _request, target

COLUMNS = {
    "zh": ("编号", "级别", "状态", "标题", "点位", "区域", "首次发现", "认领"),
    "en": ("id", "severity", "state", "title", "point", "region", "first seen", "acknowledged"),
}
STATE_WORDS = {
    "zh": {"pending": "待确认", "firing": "告警中", "resolved": "已恢复"},
    "en": {"pending": "pending", "firing": "firing", "resolved": "resolved"},
}
TITLE = {"zh": "故障 {n} 个（{what}，来源：{source}）", "en": "{n} faults ({what}, from {source})"}
WHAT = {"zh": {False: "未恢复", True: "全部"}, "en": {False: "open", True: "all"}}
SOURCE = {"zh": {"daemon": "守护进程", "state database": "状态数据库"},
          "en": {"daemon": "the daemon", "state database": "the state database"}}
NONE = {"zh": "没有故障。", "en": "No faults."}
FALLBACK = {"zh": "{reason}\n改为读取状态数据库（只读）。", "en": "{reason}\nReading the state database instead (read-only)."}


async def _from_daemon(t: Target, args: argparse.Namespace) -> list[dict[str, Any]]:
    params = {"state": "all" if args.all else "open", "limit": str(args.limit)}
    return (await _request(t, "GET", "/api/v1/faults", params=params))["faults"]


def _from_database(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The faults from the state database, as the API's FaultOut documents. Raises CliError."""
    from monitor.app.api import _fault_out
    from monitor.app.config import load_config
    from monitor.core.config_base import ConfigError
    from monitor.state.db import StateDB, StateDBError
    from rules.alerting import faults as fault_store
    from rules.model import Fault

    path = config_path(args)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise CliError(EXIT_PROBLEMS, "\n".join(exc.messages)) from None

    async def read() -> list[Fault]:
        sql = "SELECT doc FROM faults" + ("" if args.all else " WHERE state != 'resolved'") + " ORDER BY id DESC LIMIT ?"
        async with StateDB(cfg.state.database, read_only=True) as db:
            await db.migrate(fault_store.SCHEMA)
            rows = await db.execute(lambda conn: conn.execute(sql, (args.limit,)).fetchall())
        return [Fault.from_dict(json.loads(doc)) for (doc,) in rows]

    try:
        found = asyncio.run(read())
    except StateDBError as exc:
        raise CliError(EXIT_CANNOT_RUN, str(exc)) from None
    if not args.all:  # as the daemon orders open faults: most severe first, then newest
        found.sort(key=lambda f: (f.severity.rank, -f.first_seen_ns))
    return [_fault_out(f, cfg.language).model_dump(mode="json") for f in found]


def cmd_faults(args: argparse.Namespace) -> int:
    try:
        t = target(args)
        try:
            faults, source = asyncio.run(_from_daemon(t, args)), "daemon"
        except Unreachable as exc:
            print(FALLBACK[t.language].format(reason=exc), file=sys.stderr)
            faults, source = _from_database(args), "state database"
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status
    if args.region is not None:
        faults = [f for f in faults if f["region"] == args.region]
    if args.json:
        print(json.dumps({"source": source, "faults": faults}, ensure_ascii=False, indent=2))
    else:
        _print_table(t, faults, source, args.all)
    still_open = [f for f in faults if f["state"] != "resolved"]
    return EXIT_PROBLEMS if args.fail_on_faults and still_open else EXIT_OK


def _print_table(t: Target, faults: list[dict[str, Any]], source: str, everything: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    lang = t.language
    console = _console()
    if not faults:
        console.print(NONE[lang])
        return
    table = Table(*COLUMNS[lang], title=TITLE[lang].format(n=len(faults), what=WHAT[lang][everything],
                                                           source=SOURCE[lang][source]))
    colours = {"critical": "red", "major": "yellow", "minor": "cyan"}
    for f in faults:
        severity = WORDS[lang]["severity"][f["severity"]]
        acked = f"{f['acked_by']} {t.time(f['acked_ns'])}" if f["acked_by"] else "—"
        table.add_row(f["id"], f"[{colours[f['severity']]}]{severity}[/]", STATE_WORDS[lang][f["state"]],
                      escape(f["title"]), escape(f["device_id"] or "—"), escape(f["region"] or "—"),
                      t.time(f["first_seen_ns"]), escape(acked))
    console.print(table)


def add_faults(subparsers: argparse._SubParsersAction) -> None:
    """`fleetmon faults` (registered in monitor.app.cli SUBCOMMANDS)."""
    parser = subparsers.add_parser(
        "faults", help="open faults (故障), from the daemon or the state database",
        description="The open faults, most severe first: from the running daemon's API, else (when it does "
        "not answer) from the state database, read-only. Exit 1 with --fail-on-faults when one is open, "
        "3 when neither can be read.",
    )
    add_config_option(parser)
    parser.add_argument("--all", action="store_true", help="resolved faults too, newest first")
    parser.add_argument("--region", help="only faults of this region (区域)")
    parser.add_argument("--limit", type=bounded(int, 1, 10_000), default=500, help="most faults read (500)")
    parser.add_argument("--fail-on-faults", action="store_true", help="exit 1 when an open fault is listed")
    parser.add_argument("--json", action="store_true", help='{"source", "faults": [as GET /api/v1/faults]}')
    parser.add_argument("--url", help="the daemon's API instead of the config's api.listen/port")
    parser.add_argument("--token-file", type=Path, help=f"a read token (default: ${TOKEN_ENV})")
    parser.add_argument("--lang", choices=tuple(WORDS), help="output language (default: the config's)")
    parser.set_defaults(run=cmd_faults)
