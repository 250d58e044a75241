"""What `fleetmon run` imports and builds before the first device (docs/PERFORMANCE.md "## Memory",
the import floor): the other subcommands' modules stay unloaded, config models build their
validators on first use. Each case in a fresh interpreter (imports are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

OTHERS = ["monitor.app.cli_agent", "monitor.app.cli_faults", "monitor.app.cli_maintenance", "monitor.app.cli_probe",
          "monitor.app.cli_workorder"]

_PARSE = """
import json, sys
from monitor.app import cli
parser = cli.build_parser(run_only=sys.argv[1] == "run")
args = parser.parse_args(["run", "--config", "x.yaml", "--once", "--json"])
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith("monitor.app.cli_")),
                  "args": [str(args.config), args.once, args.json, args.view], "run": args.run.__name__}))
"""


def _parse(which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PARSE, which], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_the_daemons_command_line_loads_no_other_subcommand():
    run, full = _parse("run"), _parse("all")
    assert run["args"] == full["args"] and run["run"] == full["run"] == "cmd_run"
    assert not set(OTHERS) & set(run["loaded"])
    assert set(OTHERS) <= set(full["loaded"])  # what the full command line needs, and the daemon's does not


def test_config_models_build_their_validators_when_first_used():
    script = (
        "from monitor.core.config_base import Strict\n"
        "class Inner(Strict):\n    x: int = 1\n"
        "class Outer(Strict):\n    inner: Inner = Inner()\n"
        "before = Outer.__pydantic_complete__\n"
        "print(before, Outer.model_validate({'inner': {'x': 2}}).inner.x, Outer.__pydantic_complete__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "2", "True"]
