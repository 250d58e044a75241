"""The contract thresholds are written once (monitor/core/contract.py): the rules' defaults, the
terminal view, the status page and the Grafana dashboards follow a change of the constants.
Run in a fresh interpreter that changes them before anything reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT

ROOT = Path(__file__).resolve().parents[1]

_DERIVED = """
import importlib.util, json, sys
import monitor.core.contract as contract
contract.ONLINE_RATE_TARGET_PCT, contract.LINE_RTT_LIMIT_MS = 97.5, 150.0

from monitor.app import status_page, view
from rules.config import LatencyRule, OnlineRateRule, default_rules

spec = importlib.util.spec_from_file_location("generate", "deploy/grafana/generate.py")
generate = importlib.util.module_from_spec(spec)
sys.modules["generate"] = generate
spec.loader.exec_module(generate)
rules = {r.name: r for r in default_rules()}
html = next(a.text for a in status_page.load_assets() if a.path == "/status")
boards = json.dumps([b.__dict__ for b in generate.boards()], default=str, ensure_ascii=False)
print(json.dumps({
    "rule_defaults": [OnlineRateRule(name="r").below_pct, LatencyRule(name="l").above_ms],
    "default_rules": [rules["camera-online-rate"].clear_above_pct, rules["link-latency"].clear_below_ms],
    "view": [view.TEXTS[lang][key] for lang in ("zh", "en") for key in ("regions", "links")],
    "page": ['data-online-target-pct="97.5"' in html, 'data-rtt-limit-ms="150"' in html],
    "grafana": [generate.RATE_THRESHOLDS[1][0], generate.RTT_THRESHOLDS[1][0],
                [t for t in ("95 %", "95%", "200 ms") if t in boards], "目标 97.5%" in boards, "限值 150 ms" in boards],
}, ensure_ascii=False))
"""


def test_the_constants_are_the_tender_s() -> None:
    assert (ONLINE_RATE_TARGET_PCT, LINE_RTT_LIMIT_MS) == (95.0, 200.0)


def test_every_place_follows_the_constants() -> None:
    proc = subprocess.run([sys.executable, "-c", _DERIVED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["rule_defaults"] == [97.5, 150.0]
    assert out["default_rules"] == [98.0, 130.0]  # the hysteresis moves with the line
    assert out["view"] == ["各区域在线率（目标 ≥ 97.5%）", "时延最差的链路/设备（上限 150 ms）",
                           "Online rate per region (target ≥ 97.5 %)", "Worst links/devices by RTT (limit 150 ms)"]
    assert out["page"] == [True, True]
    assert out["grafana"] == [97.5, 150.0, [], True, True]
