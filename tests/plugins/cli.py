"""`fleetmon ARGS` run inside the test process: `run_cli(*args, cwd=folder)`.

A subprocess costs a fresh interpreter and fleetmon's imports (seconds on a loaded 2-core
machine) and proves nothing more about a command's answer; the tests that are about the
console script itself (exit status through sys.exit, the entry point) keep a real subprocess.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

from monitor.app.cli import main


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """What `fleetmon ARGS` run in `cwd` would give: its exit status (argparse's SystemExit
    included), stdout and stderr as text. Changes the process's working directory and
    sys.stdout/sys.stderr while it runs: call it from one thread at a time (an async test runs
    it with asyncio.to_thread, since the commands run their own event loop)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["fleetmon", *args], status, out.getvalue(), err.getvalue())
