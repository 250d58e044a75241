"""What every `fleetmon` subcommand shares: exit statuses, where the config is, progress lines.

Exit statuses (the same for every subcommand; `fleetmon --help` and README list them):

    0  ok
    1  problems found: an invalid config or point list, a probe that failed, open faults with
       --fail-on-faults, problems seen by `run --once`, a request the daemon refused (409)
    2  usage error: argparse's own, and arguments that name nothing (a bad address, period,
       unknown point id or work order)
    3  cannot run: no permission (raw sockets, a token refused), the state database missing or
       unreadable, the daemon unreachable where it is required, a file that cannot be written
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, TextIO

from monitor.fleet.inventory import PROGRESS_ROWS

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3

CONFIG_ENV = "FLEETMON_CONFIG"
DEFAULT_CONFIG = Path("/etc/fleetmon/config.yaml")

EXIT_EPILOG = (
    "exit status: 0 ok; 1 problems found (invalid config, probe failures, open faults with "
    "--fail-on-faults); 2 usage error; 3 cannot run (no permission, state database missing, "
    "daemon unreachable where required)"
)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`-c/--config PATH`; resolved by `config_path` (the option, else $FLEETMON_CONFIG, else
    /etc/fleetmon/config.yaml) so that the environment is read when the command runs."""
    parser.add_argument("--config", "-c", type=Path, default=None, metavar="PATH",
                        help=f"the config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")


def config_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None)
    if given is not None:
        return given
    return Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else DEFAULT_CONFIG


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action="store_true", default=None,
                        help=f"report loading a long point list on stderr every {PROGRESS_ROWS:,} rows "
                             "(default: when stderr is a terminal)")


def progress_printer(args: argparse.Namespace, stream: TextIO | None = None) -> Callable[[int, int], None] | None:
    """The point-list loader's progress callback `(rows done, rows in all)`: lines on `stream`
    (stderr) when --progress is given or the stream is a terminal; None (silent) otherwise."""
    out = stream if stream is not None else sys.stderr
    wanted = getattr(args, "progress", None)
    if not wanted and not (wanted is None and out.isatty()):
        return None

    def report(done: int, total: int) -> None:
        print(f"point list: {done:,} / {total:,} rows", file=out, flush=True)

    return report
