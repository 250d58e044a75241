"""`fleetmon probe icmp|rtsp|onvif|snmp TARGET…`: the duty engineer's one-shot probe.

A TARGET is a point id from the config's point list (点位编号) or an IP address. An address that
is in the point list is probed as that point (its kind, stream URL, credentials); any other
address as a bare device of the probe's usual kind. ICMP needs the config only for point ids;
rtsp, onvif and snmp always read it: they use its probe sections (timeouts, credentials, the
SNMP profiles) and the existing probe classes, one device at a time, exactly as the daemon
does. Credentials are never printed: string fields with a URL lose their userinfo.

Output: a table (Chinese by default, --lang en) or --json, a list of
{"target", "device_id", "ok", "reason", "fields"}. Exit (monitor.app.cli_common): 0 every
target answered, 1 one did not (or the config is invalid), 2 a target that is neither a point
id nor an address, 3 no permission (ICMP sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from monitor.app.cli_common import (
    EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, add_config_option, add_progress_option, config_path,
    progress_printer,
)

HEADERS = {
    "zh": ("目标", "点位", "状态", "原因", "测量值"),
    "en": ("target", "point", "state", "reason", "measurements"),
}
ICMP_HEADERS = {
    "zh": ("目标", "地址", "状态", "发送/接收", "丢包 %", "最小 ms", "平均 ms", "最大 ms", "抖动 ms", "原因"),
    "en": ("target", "address", "state", "sent/recv", "loss %", "min ms", "avg ms", "max ms", "jitter ms", "reason"),
}
STATES = {"zh": ("在线", "离线"), "en": ("up", "down")}
# The kind a bare address is probed as (one not in the point list).
BARE_KIND = {"rtsp": "camera", "onvif": "camera", "snmp": "switch"}


def bounded(cast: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: `cast(text)` within [low, high], else a usage error."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low:g}…{high:g}")
        return value

    return parse


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _redact(value: Any) -> Any:
    """A string field as printed: a URL's user and password dropped."""
    if not isinstance(value, str) or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.username is None and parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _console():
    from rich.console import Console

    # Piped output (scripts, tickets) gets full columns instead of rich's 80-column default.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _load(args: argparse.Namespace):
    """(config, inventory) or None after printing the config's problems."""
    from monitor.app.config import load_config
    from monitor.core.config_base import ConfigError
    from monitor.fleet.inventory import load_inventory

    path = config_path(args)
    try:
        cfg = load_config(path)
        return cfg, load_inventory(cfg, progress=progress_printer(args))
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        print(f"{path}: {len(exc.messages)} problem(s), nothing probed", file=sys.stderr)
        return None


def _unknown(targets: list[str]) -> int:
    print(f"neither a point id of the config's point list nor an IP address: {', '.join(targets)}", file=sys.stderr)
    return EXIT_USAGE


# --- icmp ----------------------------------------------------------------------------------------


def cmd_icmp(args: argparse.Namespace) -> int:
    """Ping each target once with fleetmon's own ICMP engine (PingParams from the options)."""
    from probes.icmp import IcmpEngine, IcmpPermissionError, PingParams

    addresses: dict[str, str] = {}  # target → address
    ids = [t for t in args.targets if not _is_address(t)]
    inventory, language = None, args.lang or "zh"
    if ids:
        loaded = _load(args)
        if loaded is None:
            return EXIT_PROBLEMS
        inventory, language = loaded[1], args.lang or loaded[0].language
    unknown = []
    for t in args.targets:
        if _is_address(t):
            addresses[t] = t
            continue
        device = inventory.devices.get(t) if inventory is not None else None
        if device is None or device.address is None:
            unknown.append(t)
        else:
            addresses[t] = str(device.address)
    if unknown:
        return _unknown(unknown)
    params = PingParams(count=args.count, echo_interval_s=args.interval / 1000, timeout_s=args.timeout,
                        retries=args.retries, payload_size=args.size)

    unique = list(dict.fromkeys(addresses.values()))

    async def sweep():
        async with IcmpEngine(mode=args.mode, packets_per_second=args.pps) as engine:
            return await engine.ping_many(unique, params)

    try:
        by_address = dict(zip(unique, asyncio.run(sweep())))  # ping_many answers in the order asked
    except IcmpPermissionError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CANNOT_RUN
    rows = [(t, by_address[a]) for t, a in addresses.items()]
    if args.json:
        print(json.dumps([{"target": t, "address": s.address, "ok": s.up, "reason": s.reason,
                           "sent": s.sent, "received": s.received, "loss_pct": s.loss_pct, "fields": s.fields()}
                          for t, s in rows], ensure_ascii=False, indent=2))
    else:
        from rich.table import Table

        table = Table(*ICMP_HEADERS[language])
        up_text, down_text = STATES[language]
        for t, stats in rows:
            f = stats.fields()
            table.add_row(
                t, stats.address,
                f"[green]{up_text}[/green]" if stats.up else f"[red]{down_text}[/red]",
                f"{stats.sent}/{stats.received}", f"{stats.loss_pct:.0f}",
                *(f"{f[k]:.2f}" if k in f else "—" for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "jitter_ms")),
                stats.reason or "",
            )
        _console().print(table)
    return EXIT_OK if all(s.up for _, s in rows) else EXIT_PROBLEMS


# --- rtsp, onvif, snmp: the daemon's probe classes, one device each ----------------------------


def cmd_device_probe(args: argparse.Namespace) -> int:
    """Probe each target with the probe class `args.kind` configured as in the config."""
    from monitor.core.model import Device, Kind
    from probes import REGISTRY

    loaded = _load(args)
    if loaded is None:
        return EXIT_PROBLEMS
    cfg, inventory = loaded
    devices: dict[str, Device] = {}
    unknown = []
    for t in args.targets:
        device = inventory.devices.get(t)
        if device is None and _is_address(t):
            device = inventory.by_address(t) or Device(
                id=t, name=t, kind=Kind(BARE_KIND[args.kind]), address=ipaddress.ip_address(t), site="-", region="-")
        if device is None:
            unknown.append(t)
        else:
            devices[t] = device
    if unknown:
        return _unknown(unknown)
    probe = REGISTRY[args.kind](getattr(cfg.probes, args.kind))
    results = asyncio.run(_probe_all(probe, devices))
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        from rich.markup import escape
        from rich.table import Table

        language = args.lang or cfg.language
        table = Table(*HEADERS[language])
        up_text, down_text = STATES[language]
        for r in results:
            measured = ", ".join(f"{k}={_short(v)}" for k, v in r["fields"].items() if k != "up")
            table.add_row(escape(r["target"]), escape(r["device_id"]),
                          f"[green]{up_text}[/green]" if r["ok"] else f"[red]{down_text}[/red]",
                          escape(r["reason"] or ""), escape(measured))
        _console().print(table)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_PROBLEMS


def _short(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


async def _probe_all(probe: Any, devices: dict[str, Any]) -> list[dict[str, Any]]:
    """Every device probed at once, each within its budget (as the scheduler bounds it)."""
    async def one(target: str, device: Any) -> dict[str, Any]:
        base = {"target": target, "device_id": device.id}
        if not probe.wants(device):
            return {**base, "ok": False, "fields": {},
                    "reason": f"not probed by {probe.name}: the config's probes.{probe.name} does not select this "
                              "device (kind, match, credentials)"}
        try:
            async with asyncio.timeout(probe.budget_s(device) + 1.0):
                result = await probe.probe(device)
        except TimeoutError:
            return {**base, "ok": False, "reason": "caller timeout", "fields": {}}
        return {**base, "ok": result.ok, "reason": result.reason,
                "fields": {k: _redact(v) for k, v in result.fields.items()}}

    async with probe:
        return list(await asyncio.gather(*(one(t, d) for t, d in devices.items())))


def add_probe_kinds(kinds: argparse._SubParsersAction) -> None:
    """`probe icmp|rtsp|onvif|snmp` under `fleetmon probe` (monitor.app.cli adds vqd)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("targets", nargs="+", metavar="TARGET", help="a point id of the point list, or an IP address")
    add_config_option(common)
    common.add_argument("--json", action="store_true", help="JSON instead of a table")
    common.add_argument("--lang", choices=("zh", "en"), help="table language (default: the config's, else zh)")
    add_progress_option(common)
    icmp = kinds.add_parser(
        "icmp", parents=[common],
        help="ping points or addresses once",
        description="Ping each target with fleetmon's ICMP engine; print RTT min/avg/max, jitter and "
        "loss. Point ids need the config; addresses do not. Exit 0 when all answered, 1 when one did "
        "not, 2 for an unknown target, 3 without permission for ICMP sockets.",
    )
    icmp.add_argument("--count", type=bounded(int, 1, 100), default=5, help="echo requests per address (5)")
    icmp.add_argument("--size", type=bounded(int, 0, 65_000), default=56, help="payload bytes (56; 20000 for line tests)")
    icmp.add_argument("--interval", type=bounded(float, 1, 60_000), default=200.0, help="ms between echoes (200)")
    icmp.add_argument("--timeout", type=bounded(float, 0.01, 60), default=1.0, help="seconds to wait per reply (1)")
    icmp.add_argument("--retries", type=bounded(int, 0, 10), default=0, help="extra echoes when none answered (0)")
    icmp.add_argument("--pps", type=bounded(float, 1, 1_000_000), default=5000.0, help="packets per second (5000)")
    icmp.add_argument("--mode", choices=("auto", "raw", "dgram"), default="auto", help="socket type (auto)")
    icmp.set_defaults(run=cmd_icmp)
    for kind, what in (("rtsp", "RTSP: OPTIONS/DESCRIBE of the stream (视频)"),
                       ("onvif", "ONVIF: device information, time, profiles (服务)"),
                       ("snmp", "SNMP: the device's profile (interfaces, power, storage …)")):
        p = kinds.add_parser(
            kind, parents=[common], help=f"probe points or addresses once with {what}",
            description=f"Probe each target once with fleetmon's {kind} probe, configured as probes.{kind} of the "
            "config (timeouts, credentials: never printed). An address in the point list is probed as that "
            f"point; another as a bare {BARE_KIND[kind]}. Exit 0 when all answered, 1 when one did not (or the "
            "config is invalid), 2 for an unknown target.",
        )
        p.set_defaults(run=cmd_device_probe, kind=kind)
