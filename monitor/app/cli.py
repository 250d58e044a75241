"""The `fleetmon` command (also `python -m monitor.app.cli`).

One function per subcommand, `cmd_<name>(args) -> exit status`, and one `_add_<name>(subparsers)`
that declares its arguments; a new subcommand is those two functions plus one entry in
SUBCOMMANDS. Every subcommand takes `-c/--config PATH` (default $FLEETMON_CONFIG, else
/etc/fleetmon/config.yaml) and every read command `--json`. Exit statuses, the same for all:
monitor.app.cli_common (0 ok, 1 problems found, 2 usage error, 3 cannot run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from monitor.app import version
from monitor.app.cli_common import (
    EXIT_CANNOT_RUN, EXIT_EPILOG, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, add_config_option, add_progress_option,
    config_path, progress_printer,
)
from monitor.app.agent_config import ownership
from monitor.app.config import FleetmonConfig, check_maintenance_devices, load_config
from monitor.core.config_base import ConfigError
from monitor.fleet.inventory import Inventory, load_inventory
from monitor.core.model import Status
from probes import REGISTRY

log = logging.getLogger("fleetmon.cli")


def _load(path: Path, progress: Callable[[int, int], None] | None = None) -> tuple[FleetmonConfig, Inventory]:
    cfg = load_config(path)
    inventory = load_inventory(cfg, progress=progress)
    check_maintenance_devices(cfg, inventory)
    ownership(cfg.mqtt_agents, inventory, cfg.inventory.source)  # each device one agent's at most
    return cfg, inventory


def _print_config_errors(path: Path, exc: ConfigError) -> None:
    for message in exc.messages:
        print(message, file=sys.stderr)
    count = exc.total
    print(f"{path}: {count} problem{'s' if count != 1 else ''}, nothing loaded", file=sys.stderr)


def load_or_complain(args: argparse.Namespace) -> tuple[FleetmonConfig, Inventory] | None:
    """The config of `args` (-c, $FLEETMON_CONFIG, the default) and its point lists, with
    progress lines as --progress or a terminal asks; None after printing its problems."""
    path = config_path(args)
    try:
        return _load(path, progress_printer(args))
    except ConfigError as exc:
        _print_config_errors(path, exc)
        return None


# "FILE:LINE[:COL]: yaml.path: message", "FILE:LINE: message" or "FILE: message" (ConfigError).
_PROBLEM = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+)(?::\d+)?)?: (?:(?P<path>[\w.\[\]-]+): )?(?P<message>.+)$")


def config_problem(message: str) -> dict[str, Any]:
    """One ConfigError line as {"file", "line", "path", "message"} (line and path null where the
    problem has none, e.g. an unreadable file or a YAML syntax error)."""
    m = _PROBLEM.match(message)
    if m is None:
        return {"file": None, "line": None, "path": None, "message": message}
    line = m["line"]
    return {"file": m["file"], "line": int(line) if line else None, "path": m["path"], "message": m["message"]}


def cmd_check_config(args: argparse.Namespace) -> int:
    """Load the config and its inventory; print every problem to stderr (exit 1), or a short
    summary of what was loaded to stdout (exit 0). --json: {"config", "ok", "errors": [{file,
    line, path, message}], "summary": [lines]} on stdout either way."""
    import json

    path = args.path if args.path is not None else config_path(args)
    try:
        cfg, inventory = _load(path, progress_printer(args))
    except ConfigError as exc:
        if args.json:
            doc = {"config": str(path), "ok": False, "errors": [config_problem(m) for m in exc.messages], "summary": []}
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            _print_config_errors(path, exc)
        return EXIT_PROBLEMS
    summary = _summary(cfg, inventory)
    if args.json:
        print(json.dumps({"config": str(path), "ok": True, "errors": [], "summary": summary}, ensure_ascii=False,
                         indent=2))
        return EXIT_OK
    print(f"{path}: OK")
    for line in summary:
        print(f"  {line}")
    return EXIT_OK


def _add_check_config(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="check a config file and its point lists",
        description="Load the config and the inventory it names, report every problem (exit 1) "
        "or summarise what would be monitored (exit 0). Secrets are resolved but never shown.",
    )
    parser.add_argument("path", type=Path, nargs="?", default=None,
                        help="the config file: the old form of -c PATH, still accepted")
    add_config_option(parser)
    parser.add_argument("--json", action="store_true",
                        help="print {config, ok, errors: [{file, line, path, message}], summary} on stdout")
    add_progress_option(parser)
    parser.set_defaults(run=cmd_check_config)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT. SIGHUP reloads the config and the inventory; a
    reload that fails is logged and the running config is kept (monitor.app.supervisor). --once: one cycle of every
    probe, its summary, exit (monitor.app.run_once)."""
    from monitor.app import malloc

    malloc.tune()  # before the point list is read (its big blocks) and before any thread starts
    loaded = load_or_complain(args)
    if loaded is None:
        return EXIT_PROBLEMS
    cfg, inventory = loaded
    if args.once:
        from monitor.app.run_once import run_once

        return run_once(cfg, inventory, json_out=args.json)
    return asyncio.run(_serve(config_path(args), cfg, inventory, view=args.view))


async def _serve(path: Path, cfg: FleetmonConfig, inventory: Inventory, *, view: bool) -> int:
    # Imported here: check-config and probe need none of the daemon's machinery.
    from monitor.app.supervisor import Supervisor

    return await Supervisor(path, view=view).serve(cfg, inventory)


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the monitoring daemon",
        description="Probe the fleet, keep device state, write metrics. Stops cleanly on SIGTERM "
        "(pending writes are flushed); SIGHUP reloads the config. Exit 3 when it cannot start (state "
        "database, sockets). --once: one cycle of every enabled probe, without the state database, "
        "InfluxDB or notifications; prints the online rates and the faults that would fire; exit 0 "
        "when all is well, 1 when a device is down or a fault would fire.",
    )
    add_config_option(parser)
    parser.add_argument("--view", action="store_true", help="show a live terminal view (online rates, worst links)")
    parser.add_argument("--once", action="store_true", help="one cycle of every enabled probe, a summary, exit")
    parser.add_argument("--json", action="store_true", help="with --once: the summary as JSON")
    add_progress_option(parser)
    parser.set_defaults(run=cmd_run)


def _add_probe(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("probe", help="probe devices once (on-duty tool)",
                                   description="Probe points (ids from the config's point list) or addresses once, "
                                   "with fleetmon's own probes and the config's credentials (never printed).")
    from monitor.app.cli_probe import add_probe_kinds, bounded as _bounded

    kinds = parser.add_subparsers(title="probe types", metavar="PROBE", required=True)
    add_probe_kinds(kinds)
    vqd = kinds.add_parser(
        "vqd",
        help="video-quality diagnosis of images or streams",
        description="Score an image file or an rtsp:// stream (two frames GAP s apart) for blur, occlusion, "
        "frozen picture, darkness, glare, colour cast, noise, lost signal and (with --reference) a moved "
        "camera. Exit 0 when all are normal, 1 when one is not, 2 for bad arguments.",
    )
    vqd.add_argument("targets", nargs="+", metavar="IMAGE|rtsp://…", help="image file or stream URL")
    vqd.add_argument("--reference", type=Path, help="the camera's reference picture (moved camera, occlusion, cast)")
    vqd.add_argument("--gap", type=_bounded(float, 1, 30),
                     help="seconds between the two frames (burst_gap_s's default, 2)")
    vqd.add_argument("--timeout", type=_bounded(float, 2, 120), default=20.0, help="seconds per stream (20)")
    vqd.add_argument("--json", action="store_true", help="JSON instead of a table")
    vqd.add_argument("--lang", choices=("zh", "en"), default="zh", help="table language (zh)")
    add_config_option(vqd)  # accepted for uniformity: the diagnosis of files and URLs reads no config
    vqd.set_defaults(run=cmd_probe_vqd)


def cmd_probe_vqd(args: argparse.Namespace) -> int:
    """Video-quality diagnosis of image files or rtsp:// streams (a burst of two frames decoded
    by PyAV, as the frame check takes it): each score and verdict, as a table or JSON. Exit 0 when every picture is normal,
    1 when one has a fault or could not be read, 2 for bad arguments."""
    import json

    from probes.vqd import measures
    from probes.vqd.config import VqdConfig
    from probes.vqd.diagnose import TITLES, diagnose
    from probes.vqd.grab import FrameError, read_image

    cfg = VqdConfig(enabled=True, **({} if args.gap is None else {"burst_gap_s": args.gap}))
    reference = None
    try:
        if args.reference is not None:
            reference = measures.reference(measures.prepare(read_image(args.reference, cfg.max_pixels)))
    except (FrameError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    reports, status = [], EXIT_OK
    for target in args.targets:
        try:
            if target.lower().startswith("rtsp://"):
                images, errors = _grab_stream(target, cfg, args.timeout)
            else:
                images, errors = [read_image(Path(target), cfg.max_pixels)], None
            d = diagnose(images, reference, cfg.thresholds, errors)
            report = {"target": _redact(target), "ok": d.ok, "faults": list(d.faults), "scores": dict(d.scores),
                      "frames": len(images), "size": [d.width, d.height]}
        except (FrameError, ValueError, TimeoutError) as exc:
            report = {"target": _redact(target), "ok": False, "error": str(exc) or "timeout"}
        status = max(status, EXIT_OK if report["ok"] else EXIT_PROBLEMS)
        reports.append(report)
    if args.json:
        print(json.dumps(reports, ensure_ascii=False, indent=2))
        return status
    titles = TITLES[args.lang]
    for r in reports:
        if "error" in r:
            print(f"{r['target']}: {r['error']}")
            continue
        verdict = "、".join(titles[f] for f in r["faults"]) or ("画面正常" if args.lang == "zh" else "picture normal")
        print(f"{r['target']}: {verdict}")
        for name, score in r["scores"].items():
            mark = " *" if name in r["faults"] else ""
            print(f"  {titles[name]:<12} {score:>8.3f} / {getattr(cfg.thresholds, name):g}{mark}")
    return status


def _redact(target: str) -> str:
    """A target as printed: a URL's password replaced by ***."""
    parts = urlsplit(target)
    if parts.scheme.lower() != "rtsp" or parts.password is None:
        return target
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _grab_stream(url: str, cfg, timeout_s: float):
    """The burst of `url` as the frame check takes it (probes.vqd.decode.grab, PyAV in this
    process: the URL reaches no other process's argv): (frames, decoder errors). Raises
    ValueError with the reason when no frame was decoded."""
    import threading

    from probes.vqd.decode import Limits, grab

    limits = Limits(timeout_s=timeout_s, read_s=min(timeout_s, 5.0), gap_s=cfg.burst_gap_s, max_bytes=None,
                    probe_bytes=2_000_000, max_pixels=cfg.max_pixels, keyframes_only=cfg.keyframes_only)
    burst = grab(url, limits, threading.Event())
    if not burst.frames:
        raise ValueError(burst.reason or "no frame decoded")
    return burst.frames, burst.decode_errors


# --- the assessment: read from the state database, beside the running daemon -------------------


def _assess(args: argparse.Namespace, answer: Callable[[Any], Awaitable[Any]],
            text: Callable[[Any, FleetmonConfig], list[str]]) -> int:
    """Load the config, open the state database read-only, answer with
    monitor.app.assess_views (the documents of the HTTP API): `--json` prints the document,
    else `text(document, cfg)` in the config's language. Exit 1 for an invalid config, 2 for bad
    arguments (period, unknown point or group, a metric without value), 3 when the database
    cannot be read."""
    from monitor.app.assess_views import RequestError
    from monitor.assess.periods import PeriodError, parse_period
    from monitor.state.db import StateDBError

    loaded = load_or_complain(args)
    if loaded is None:
        return EXIT_PROBLEMS
    cfg, inventory = loaded
    try:
        if getattr(args, "period", None) is not None:
            parse_period(args.period, cfg.timezone)  # a bad period is said before the database is opened
        doc = asyncio.run(_read_only(cfg, inventory, answer))
    except PeriodError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except RequestError as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_USAGE
    except StateDBError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.json:
        print(doc.model_dump_json(indent=2))
    else:
        print("\n".join(text(doc, cfg)))
    return EXIT_OK


async def _read_only(cfg: FleetmonConfig, inventory: Inventory, answer: Callable[[Any], Awaitable[Any]]) -> Any:
    """`answer(assessment)` over a read-only connection to the config's state database and a
    work-order book that only reads (no orders opened, nothing written)."""
    from monitor.assess.assessment import Assessment
    from monitor.assess.workorders import WorkOrderBook
    from monitor.metrics.results import InfluxResults
    from monitor.state.db import StateDB

    async with StateDB(cfg.state.database, read_only=True) as db:
        book = await WorkOrderBook.load(db, inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone),
                                        language=cfg.language, timezone=cfg.timezone)
        assessment = Assessment(
            db, inventory, cfg.assessment, book, timezone=cfg.timezone,
            online_requires=cfg.availability.online_requires,
            results=InfluxResults(cfg.influxdb) if cfg.influxdb.enabled else None,
        )
        return await answer(assessment)


def _query(model: Any, **fields: Any) -> Any:
    """The request model of assess_views from command-line values; its problems as the
    RequestError a bad HTTP query gets (printed, exit 2)."""
    from pydantic import ValidationError

    from monitor.app.assess_views import RequestError

    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise RequestError(400, problems) from None


def cmd_availability(args: argparse.Namespace) -> int:
    """The online rate of a period per group (and point) on one basis."""
    from monitor.app import assess_text, assess_views

    async def answer(assessment: Any) -> Any:
        q = _query(assess_views.AvailabilityQuery, period=args.period, scope=args.scope, group=args.group,
                   kind=args.kind, basis=args.basis, points=args.points)
        return await assess_views.availability(assessment, q)

    return _assess(args, answer, lambda doc, cfg: assess_text.availability_text(doc, cfg.language))


def cmd_score(args: argparse.Namespace) -> int:
    """The score of a period under the configured scheme, with the evidence."""
    from monitor.app import assess_text, assess_views

    async def answer(assessment: Any) -> Any:
        q = _query(assess_views.ScoreQuery, period=args.period, evidence=args.evidence or args.json,
                   manual=",".join(args.manual) if args.manual else None)
        return await assess_views.score(assessment, q)

    return _assess(args, answer, lambda doc, cfg: assess_text.score_text(doc, cfg.language))


def cmd_spot_check(args: argparse.Namespace) -> int:
    """One point at one moment (抽查)."""
    from monitor.app import assess_text, assess_views

    async def answer(assessment: Any) -> Any:
        return await assess_views.spot_check(assessment, args.device_id, args.at)

    return _assess(args, answer, lambda doc, cfg: assess_text.spot_check_text(doc, cfg.language, cfg.timezone))


def cmd_long_offline(args: argparse.Namespace) -> int:
    """Points offline for the configured days (a week) or more."""
    from monitor.app import assess_text, assess_views

    return _assess(args, assess_views.long_offline,
                   lambda doc, cfg: assess_text.long_offline_text(doc, cfg.language, cfg.timezone))


def _assess_parser(subparsers: argparse._SubParsersAction, name: str, help: str, description: str,
                   run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help, description=description + " Reads the state database (read-only: "
                                   "safe beside the running daemon). Exit 1 for an invalid config, 2 for bad "
                                   "arguments, 3 when the database cannot be read.")
    add_config_option(parser)
    add_progress_option(parser)
    parser.add_argument("--json", action="store_true", help="print the JSON document (as the HTTP API answers)")
    parser.set_defaults(run=run)
    return parser


PERIOD_HELP = "2026-12-01, 2026-W49, 2026-12, 2026Q4, 2026H2, 2026, or 2026-10-01..2026-12-31 (the config's zone)"


def _add_availability(subparsers: argparse._SubParsersAction) -> None:
    parser = _assess_parser(subparsers, "availability", "online rate of a period (考核在线率)",
                            "Time excluded, unknown and counted, and the online rate, per group and point.",
                            cmd_availability)
    parser.add_argument("--period", required=True, help=PERIOD_HELP)
    parser.add_argument("--scope", choices=("fleet", "region", "site"), default="fleet", help="groups shown (fleet)")
    parser.add_argument("--group", help="one region or site (with --scope region|site)")
    parser.add_argument("--kind", help="only points of this kind (camera, switch, ups, link, server, platform)")
    parser.add_argument("--basis", default="online", help="online (default), network, service, video or picture (画面正常)")
    parser.add_argument("--points", action="store_true", help="every point too, with its outages")


def _add_score(subparsers: argparse._SubParsersAction) -> None:
    parser = _assess_parser(subparsers, "score", "the assessment score of a period (考核得分)",
                            "Each item of the configured scheme (assessment.score): its figure, tier, deduction; "
                            "the total and the payment.", cmd_score)
    parser.add_argument("--period", required=True, help=PERIOD_HELP)
    parser.add_argument("--evidence", action="store_true", help="list what every figure stands on (--json: always)")
    parser.add_argument("--manual", action="append", metavar="NAME=VALUE",
                        help="a figure fleetmon does not measure: report_nonconformities, serious_incidents, "
                             "data_leaks (repeatable)")


def _add_spot_check(subparsers: argparse._SubParsersAction) -> None:
    parser = _assess_parser(subparsers, "spot-check", "one point at one moment (抽查)",
                            "The point's state on each basis as seen and as counted, the probes' transitions around "
                            "the moment, exclusions in force, the monitoring session, raw results from InfluxDB.",
                            cmd_spot_check)
    parser.add_argument("device_id", metavar="ID", help="the point's id (点位编号)")
    parser.add_argument("--at", required=True, help='local time, e.g. "2026-12-01 10:00"')


def _add_long_offline(subparsers: argparse._SubParsersAction) -> None:
    _assess_parser(subparsers, "long-offline", "points offline for a week or more",
                   "Points offline at least assessment.workorders.long_offline.days (the preset's, else 7), with "
                   "their work order and cause.", cmd_long_offline)


# --- reports ------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """Make one report now from the state database (read-only, beside the running daemon) and
    write it: to --out (a file, or a directory for the usual name), else into the reports
    directory (reports.directory). Exit 1 for an invalid config, 2 for bad arguments (period, an
    empty point list), 3 when the database cannot be read or the file cannot be rendered or
    written."""
    import time

    from monitor.app.reports import ReportMaker, report_period
    from monitor.assess.availability import AvailabilityError
    from monitor.assess.periods import PeriodError
    from monitor.reports.delivery import summary_lines
    from monitor.reports.render import render
    from monitor.reports.store import ReportStore, StoreError, file_name
    from monitor.state.db import StateDBError

    loaded = load_or_complain(args)
    if loaded is None:
        return EXIT_PROBLEMS
    cfg, inventory = loaded
    try:
        period = report_period(cfg.timezone, args.kind, args.period, time.time_ns())  # before the database is opened

        async def answer(assessment: Any) -> Any:
            return await ReportMaker(cfg, assessment).make(args.kind, period, language=args.lang)

        report = asyncio.run(_read_only(cfg, inventory, answer))
    except (PeriodError, AvailabilityError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except StateDBError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        data = render(report, args.format, pdf_max_rows=cfg.reports.pdf_max_rows)
    except RuntimeError as exc:  # charts.FontMissing: says what to install
        print(f"cannot render the {args.format}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    name = file_name(args.kind, period.label, args.format)
    if args.out is not None:
        target = args.out / name if args.out.is_dir() else args.out
        try:
            target.write_bytes(data)
        except OSError as exc:
            print(f"cannot write {target}: {exc.strerror}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    else:
        try:
            target = ReportStore(cfg.reports.directory, cfg.reports.keep_days).save(args.kind, period.label, args.format,
                                                                                   data)
        except StoreError as exc:
            print(f"{exc}; give --out PATH to write the report elsewhere", file=sys.stderr)
            return EXIT_CANNOT_RUN
    print(target)
    colon = "：" if report.language == "zh" else ": "
    for label, value, _ in summary_lines(report):
        print(f"  {label}{colon}{value}")
    return EXIT_OK


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="make a report now (巡检日报 … 年报, PDF or XLSX)",
        description="Make a report from the state database (read-only: safe beside the running daemon), as the "
        "schedule and GET /api/v1/reports/{kind} make it, and write it to --out or into reports.directory. Exit 1 "
        "for an invalid config, 2 for bad arguments, 3 when the database cannot be read or the file cannot be "
        "written.")
    parser.add_argument("kind", choices=("daily", "weekly", "monthly", "quarterly", "half-year", "annual"),
                        help="巡检日报, 统计分析周报, 月报, 季度考核, 半年报, 年报")
    parser.add_argument("--period", help=PERIOD_HELP + "; default: the last whole period (yesterday, the week before …)")
    parser.add_argument("--format", choices=("pdf", "xlsx"), default="pdf", help="the file's format (pdf)")
    parser.add_argument("--out", type=Path, help="write here (a file, or a directory for the usual name, e.g. "
                        "monthly_2026-12.pdf) instead of into reports.directory")
    parser.add_argument("--lang", choices=("zh", "en"), help="the report's language (default: the config's)")
    add_config_option(parser)
    add_progress_option(parser)
    parser.set_defaults(run=cmd_report)


def cmd_completion(args: argparse.Namespace) -> int:
    """The shell completion script of this parser (shtab), on stdout."""
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


def _add_completion(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "completion", help="print the shell completion script (bash, zsh)",
        description="Print a completion script for every command and option. bash: "
        "`fleetmon completion bash > /etc/bash_completion.d/fleetmon`; zsh: "
        "`fleetmon completion zsh > \"${fpath[1]}/_fleetmon\"`.",
    )
    parser.add_argument("shell", choices=("bash", "zsh"))
    add_config_option(parser)  # accepted for uniformity: the script does not depend on the config
    parser.set_defaults(run=cmd_completion)


def cmd_backup(args: argparse.Namespace) -> int:
    """An online backup of the config's state database (monitor.state.backup), safe while the
    daemon runs; keeps the newest --keep. Prints the new file and what was deleted. Exit 1 for
    a bad config, 3 when the backup failed (nothing deleted then)."""
    from monitor.state.backup import BackupError, backup

    path = config_path(args)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _print_config_errors(path, exc)
        return EXIT_PROBLEMS
    database = cfg.state.database
    try:
        result = backup(database, args.dir or database.parent / "backups", keep=args.keep)
    except BackupError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(f"{result.path} ({result.size} bytes)")
    for path in result.deleted:
        print(f"deleted {path}")
    return EXIT_OK


def _add_backup(subparsers: argparse._SubParsersAction) -> None:
    from monitor.app.cli_probe import bounded as _bounded

    parser = subparsers.add_parser(
        "backup",
        help="back up the state database (online, beside the running daemon)",
        description="Copy the state database with SQLite's backup API while the daemon writes, check the "
        "copy (integrity_check) and keep the newest --keep backups. Restore: docs/OPERATIONS.md.",
    )
    add_config_option(parser)
    parser.add_argument("--dir", type=Path, help="where backups go (default: backups/ beside the state database)")
    parser.add_argument("--keep", type=_bounded(int, 1, 10_000), default=14, help="backups kept, newest first (14)")
    parser.set_defaults(run=cmd_backup)


# The subcommands' own modules are imported when their parser is built: `fleetmon run` builds
# its own only (main), and the daemon then never holds the others' code (~1.5 MB of RSS).
def _add_agent(subparsers: argparse._SubParsersAction) -> None:
    from monitor.app.cli_agent import add_agent

    add_agent(subparsers)


def _add_faults(subparsers: argparse._SubParsersAction) -> None:
    from monitor.app.cli_faults import add_faults

    add_faults(subparsers)


def _add_workorder(subparsers: argparse._SubParsersAction) -> None:
    from monitor.app.cli_workorder import add_workorder

    add_workorder(subparsers)


def _add_maintenance(subparsers: argparse._SubParsersAction) -> None:
    from monitor.app.cli_maintenance import add_maintenance

    add_maintenance(subparsers)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_check_config, _add_run, _add_agent, _add_probe, _add_faults, _add_workorder, _add_maintenance,
    _add_availability, _add_score, _add_spot_check, _add_long_offline, _add_report, _add_backup, _add_completion,
)


def _summary(cfg: FleetmonConfig, inventory: Inventory) -> list[str]:
    """Lines describing a loaded config: devices per kind, status and region; probes; sinks."""
    devices = inventory.devices.values()
    # The devices each enabled probe would poll (a probe without credentials polls none).
    probes = [
        f"{name} {sum(1 for d in devices if d.status is not Status.REMOVED and probe.wants(d))}"
        for name, probe_cls in REGISTRY.items()
        if getattr(cfg.probes, name).enabled and (probe := probe_cls(getattr(cfg.probes, name)))
    ]
    return [
        f"devices: {len(inventory.devices)} from {len(inventory.sources)} source(s)",
        f"  by kind: {_counts(d.kind.value for d in devices)}",
        f"  by status: {_counts(d.status.value for d in devices)}",
        f"  by region: {_counts(d.region for d in devices)}",
        f"probes enabled (devices polled): {', '.join(probes) or 'none'}",
        f"influxdb: {_influxdb(cfg)}",
        f"state database: {cfg.state.database}",
        f"rules: {', '.join(r.name for r in cfg.rules) or 'none'}",
        f"notify routes: {', '.join(f'{r.name} ({r.type})' for r in cfg.notify.routes) or 'none'}",
        f"api: {_api(cfg)}",
        *_agents(cfg, inventory),
        *_assessment(cfg),
    ]


def _agents(cfg: FleetmonConfig, inventory: Inventory) -> list[str]:
    """The probe agents and how many devices each owns (never probed by this daemon)."""
    if not cfg.mqtt_agents.enabled:
        return []
    owned = Counter(ownership(cfg.mqtt_agents, inventory).values())
    b = cfg.mqtt_agents.broker
    assert b is not None
    agents = ", ".join(f"{a.name} ({owned[a.name]} devices, {'/'.join(a.probes)})" for a in cfg.mqtt_agents.agents)
    return [f"probe agents via {b.host}:{b.port} ({'TLS' if b.tls else 'plain TCP'}): {agents}"]


def _assessment(cfg: FleetmonConfig) -> list[str]:
    """The assessment section in a few lines: the online-rate definition, work orders, the
    SLA clocks, the scheme."""
    a = cfg.assessment
    av = a.availability
    checks = f" at {', '.join(av.daily_check_times)}" if av.definition.value == "daily_snapshot" else ""
    wo = a.workorders
    opening = f"{len(wo.open_on)} rule(s)" if wo.open_on else "manual reports only"
    sla = a.sla
    calendar = f", holidays {sla.calendar.file}" if sla.calendar.file is not None else ""
    warn = f"warn at {sla.warn_at_pct:g} %" if sla.warn_at_pct is not None else "no early warning"
    if a.score is None:
        score = "not configured (assessment.score)"
    else:
        scheme = a.score.scheme
        score = (f"scheme {scheme.name} ({scheme.title.zh}), {len(scheme.items)} items, per "
                 f"{scheme.period.replace('_', '-')}, fee {a.score.fee_per_period_yuan} 元, systems by {a.score.systems}")
    return [
        f"assessment: online rate {av.definition.value}{checks}, unknown time {av.unknown_policy.value}",
        f"  work orders: open on {opening}, auto close {wo.auto_close}, notices to "
        f"{', '.join(wo.routes) or 'no route'}, long offline {wo.long_offline.escalate}",
        f"  SLA: preset {sla.preset or 'none'}{f' + {len(sla.policies)} own' if sla.policies else ''}, "
        f"{warn}{calendar}",
        f"  score: {score}",
    ]


def _api(cfg: FleetmonConfig) -> str:
    api = cfg.api
    if not api.enabled:
        return "disabled"
    host = f"[{api.listen}]" if ":" in api.listen else api.listen
    writes = "writes need the bearer token" if api.token is not None else "read-only (no token configured)"
    if api.people:
        roles = _counts(r.value for person in api.people for r in person.roles)
        shared = "the shared one or " if api.token is not None else ""
        writes = f"writes need a token ({shared}{len(api.people)} personal: {roles})"
    return f"http://{host}:{api.port}/, {writes}"


def _counts(values: Iterable[str]) -> str:
    """"a 3, b 1" in descending count, or "-" for nothing."""
    return ", ".join(f"{value} {n}" for value, n in Counter(values).most_common()) or "-"


def _influxdb(cfg: FleetmonConfig) -> str:
    influx = cfg.influxdb
    if not influx.enabled:
        return "disabled"
    parts = urlsplit(influx.url)
    # Credentials in the URL (user:password@) are not shown; hostname drops them.
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    target = f"database {influx.database}" if influx.api == "v1" else f"org {influx.org}, bucket {influx.bucket}"
    return f"api {influx.api}, {url}, {target}"


def build_parser(*, run_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line; `run_only`: the `run` subcommand alone (what the daemon parses)."""
    parser = argparse.ArgumentParser(prog="fleetmon", description="Monitoring daemon for video-surveillance fleets.",
                                     epilog=EXIT_EPILOG)
    parser.add_argument("--version", action="version", version=f"fleetmon {version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in (_add_run,) if run_only else SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fleetmon` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(run_only=argv[:1] == ["run"]).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
