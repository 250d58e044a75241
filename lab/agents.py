"""The probe agents' test bed, shared by tests/test_agents*.py and bench/agents.py: a point
list of loopback devices (real ICMP), a central config with `mqtt_agents` and an agent.yaml, and
the checks on what came out (results lost, duplicated, false downs, blind periods, faults)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from probes import REGISTRY

AGENT = "forest"


def probes_section(interval_s: float) -> dict[str, Any]:
    """ICMP only, fast: the other probes off."""
    return {
        "icmp": {"interval_s": interval_s, "count": 1, "timeout_s": 0.3, "echo_interval_ms": 10},
        **{name: {"enabled": False} for name in REGISTRY if name != "icmp"},
    }


def write_lab(
    tmp_path: Path, broker_host: str, broker_port: int, *, agent_port: int | None = None, local: int = 2,
    remote: int = 6, interval_s: float = 1.0, silent_after_s: float = 3.0, heartbeat_s: float = 0.5,
    central_extra: dict[str, Any] | None = None, agent_extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """points.csv (`local` devices at site hq on 127.0.0.x, `remote` at site forest on 127.0.x.y),
    config.yaml (central) and agent.yaml; returns (config, agent config). `agent_port`: where
    the agent finds the broker (a relay in between), default the broker itself."""
    rows = ["id,name,kind,address,site,region"]
    rows += [f"hq-{i},hq {i},switch,127.0.0.{i + 2},hq,城关镇" for i in range(local)]
    rows += [f"fo-{i},forest {i},switch,127.0.{1 + i // 250}.{1 + i % 250},forest,林区" for i in range(remote)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    probes = probes_section(interval_s)
    broker = {"host": broker_host, "port": broker_port, "keepalive_s": 5, "timeout_s": 2}
    central = {
        "inventory": {"point_lists": ["points.csv"], "allow_loopback": True},
        "probes": probes,
        "state": {"database": "state.db", "down_after": 2, "up_after": 1},
        "influxdb": {"enabled": False},
        "api": {"enabled": False},
        "mqtt_agents": {
            "broker": {**broker, "client_id": f"central-{tmp_path.name[-20:]}"},
            "silent_after_s": silent_after_s,
            "fault_after_s": 1.0,
            "agents": [{"name": AGENT, "select": {"site": ["forest"]}, "probes": ["icmp"]}],
        },
        **(central_extra or {}),
    }
    agent = {
        "agent": {"name": AGENT, "select": {"site": ["forest"]}, "probes": ["icmp"], "heartbeat_s": heartbeat_s,
                  "spool_dir": "agent-spool", "batch_max": 500},
        "broker": {**broker, "port": agent_port or broker_port, "client_id": f"agent-{tmp_path.name[-20:]}"},
        "inventory": {"point_lists": ["points.csv"], "allow_loopback": True},
        "probes": probes,
        **(agent_extra or {}),
    }
    config, agent_config = tmp_path / "config.yaml", tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(central, allow_unicode=True), encoding="utf-8")
    agent_config.write_text(yaml.safe_dump(agent, allow_unicode=True), encoding="utf-8")
    return config, agent_config


@dataclass
class Outcome:
    """What a run shows. Results are keyed (device id, ts_ns)."""

    produced: int
    received: int
    lost: int
    duplicated: int
    false_downs: int
    blind_transitions: int
    blind_periods: list[tuple[int, int | None]]
    agent_faults: list[tuple[str, str, int, int | None]]  # (scope, state, first_seen_ns, resolved_ns)


def outcome(produced: Iterable[tuple[str, int]], received: list[tuple[str, int]], state_db: Path,
            blind_periods: list[tuple[int, int | None]]) -> Outcome:
    produced_set = set(produced)
    received_set = set(received)
    with sqlite3.connect(state_db) as db:
        downs = db.execute("SELECT count(*) FROM transitions WHERE to_state IN ('down', 'unreachable')").fetchone()[0]
        blind = db.execute("SELECT count(*) FROM transitions WHERE to_state='unknown' AND reason LIKE 'monitor blind%'").fetchone()[0]
        faults = db.execute("SELECT scope, state, first_seen_ns, resolved_ns FROM faults WHERE rule='probe_agent' "
                            "ORDER BY id").fetchall()
    return Outcome(
        len(produced_set), len(received), len(produced_set - received_set), len(received) - len(received_set),
        downs, blind, blind_periods, faults,
    )


def blind_periods_of(state_db: Path) -> list[tuple[int, int | None, int]]:
    """The blind periods stored in the state DB: (start ns, end ns or None, devices), one per
    distinct start moment of "monitor blind" transitions; a device's period ends at its next
    transition."""
    with sqlite3.connect(state_db) as db:
        rows = db.execute(
            "SELECT t.device_id, t.ts_ns, (SELECT min(n.ts_ns) FROM transitions n WHERE n.device_id = t.device_id "
            "AND n.probe = t.probe AND n.id > t.id) FROM transitions t "
            "WHERE t.to_state = 'unknown' AND t.reason LIKE 'monitor blind%' ORDER BY t.ts_ns"
        ).fetchall()
    periods: dict[int, list[int | None]] = {}
    counts: dict[int, int] = {}
    for _, start, end in rows:
        # One silence blinds every device in the same call: the same start moment.
        key = start
        periods.setdefault(key, [])
        periods[key].append(end)
        counts[key] = counts.get(key, 0) + 1
    out = []
    for start, ends in periods.items():
        ended = [e for e in ends if e is not None]
        out.append((start, max(ended) if len(ended) == len(ends) else None, counts[start]))
    return out
