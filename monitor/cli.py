"""The `fleetmon` command (also `python -m monitor.cli`).

One function per subcommand, `cmd_<name>(args) -> exit status`, and one `_add_<name>(subparsers)`
that declares its arguments; a new subcommand is those two functions plus one entry in
SUBCOMMANDS. Exit status: 0 success, 2 bad input (usage, config or inventory errors).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from monitor.config import ConfigError, FleetmonConfig, load_config
from monitor.inventory import Inventory, load_inventory

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # as argparse uses for usage errors


def cmd_check_config(args: argparse.Namespace) -> int:
    """Load the config and its inventory; print every problem to stderr (exit 2), or a short
    summary of what was loaded to stdout (exit 0)."""
    try:
        cfg = load_config(args.path)
        inventory = load_inventory(cfg)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        count = len(exc.messages)
        print(f"{args.path}: {count} problem{'s' if count != 1 else ''}, nothing loaded", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.path}: OK")
    for line in _summary(cfg, inventory):
        print(f"  {line}")
    return EXIT_OK


def _add_check_config(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="check a config file and its point lists",
        description="Load the config and the inventory it names, report every problem (exit 2) "
        "or summarise what would be monitored (exit 0). Secrets are resolved but never shown.",
    )
    parser.add_argument("path", type=Path, help="the config file (config.yaml)")
    parser.set_defaults(run=cmd_check_config)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_check_config,)


def _summary(cfg: FleetmonConfig, inventory: Inventory) -> list[str]:
    """Lines describing a loaded config: devices per kind, status and region; probes; sinks."""
    devices = inventory.devices.values()
    probes = [name for name, probe in cfg.probes if getattr(probe, "enabled", True)]
    return [
        f"devices: {len(inventory.devices)} from {len(inventory.sources)} source(s)",
        f"  by kind: {_counts(d.kind.value for d in devices)}",
        f"  by status: {_counts(d.status.value for d in devices)}",
        f"  by region: {_counts(d.region for d in devices)}",
        f"probes enabled: {', '.join(probes) or 'none'}",
        f"influxdb: {_influxdb(cfg)}",
        f"state database: {cfg.state.database}",
    ]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetmon", description="Monitoring daemon for video-surveillance fleets.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fleetmon` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
