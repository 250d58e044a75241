"""`fleetmon agent`: run a probe agent (monitor.app.agent) from its own config file, or only
check that file (--check). Its own systemd unit: deploy/fleetmon-agent.service."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from monitor.app.cli_common import EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS
from monitor.core.config_base import ConfigError

AGENT_CONFIG = Path("/etc/fleetmon/agent.yaml")


def cmd_agent(args: argparse.Namespace) -> int:
    """Load agent.yaml and its point list; --check: print what it would run (exit 0) or every
    problem (exit 1). Else run until SIGTERM/SIGINT; exit 3 when it cannot start (spool in use,
    no ICMP sockets)."""
    from monitor.app.agent_file import load_agent

    try:
        cfg, devices = load_agent(args.config)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        print(f"{args.config}: {exc.total} problem{'s' if exc.total != 1 else ''}, nothing loaded", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.check:
        b = cfg.broker
        print(f"{args.config}: OK")
        print(f"  agent {cfg.agent.name}: {len(devices)} devices, probes {', '.join(cfg.agent.probes)}")
        print(f"  broker {b.host}:{b.port} ({'TLS' if b.tls else 'plain TCP'}, MQTT {b.protocol}), topics "
              f"{cfg.topic_prefix}/{cfg.agent.name}/…")
        print(f"  spool {cfg.agent.spool_dir} (at most {cfg.agent.spool_max_bytes >> 20} MiB)")
        return EXIT_OK
    return asyncio.run(_run(cfg, devices))


async def _run(cfg, devices) -> int:
    from monitor.app import logs
    from monitor.app.agent import Agent
    from monitor.app.sdnotify import Notifier
    from monitor.metrics.spool import SpoolError

    logs.setup(cfg.log)
    notifier = Notifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(cfg, devices)
    try:
        await agent.run(stop, ready=lambda: notifier.ready(f"agent {agent.name}: {len(devices)} devices"))
    except (SpoolError, PermissionError, OSError) as exc:
        print(f"fleetmon agent cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    finally:
        notifier.stopping()
    return EXIT_OK


def add_agent(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run a probe agent that publishes results over MQTT",
        description="Probe the devices of the agent's sites (agent.select over its point list) and publish the "
        "results to the central daemon over MQTT (QoS 1, persistent session; topics in docs/OPERATIONS.md). "
        "Results wait in an on-disk spool while the broker is unreachable and are replayed in order. Stops "
        "cleanly on SIGTERM. Exit 1 for an invalid config, 3 when it cannot start.",
    )
    parser.add_argument("-c", "--config", type=Path, default=AGENT_CONFIG,
                        help=f"the agent's config file (default {AGENT_CONFIG})")
    parser.add_argument("--check", action="store_true", help="check the config and its point list, print a summary, exit")
    parser.set_defaults(run=cmd_agent)
