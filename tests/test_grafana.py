"""Grafana dashboards as code (deploy/grafana): the committed JSON is what the generator makes and
passes the SDK's own model check; every panel's InfluxQL, with the template variables resolved as
Grafana resolves them, runs on a real InfluxDB filled by the daemon on a lab fleet and returns
data — unless the panel waits for a measurement (or tag) that monitor/schema.py does not declare
yet. A panel whose needs are all declared must return data: the waiting list cannot rot."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from lab.fleet import LabFleet, build_small_fleet
from lab.influxdb import InfluxServer
from lab.net import LabNet
from monitor.config import InfluxDBConfig, load_config
from monitor.daemon import Daemon
from monitor.inventory import load_inventory
from monitor.model import Device
from monitor.schema import MEASUREMENTS

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"


def _load_generator():
    spec = importlib.util.spec_from_file_location("fleetmon_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
BOARDS = gen.boards()
PANELS = [panel for board in BOARDS for panel in board.panels]

# Grafana's InfluxQL substitutions for a dashboard showing the last hour with a 10 s interval.
TIME_FILTER = "time >= now() - 1h"
INTERVAL = "10s"


# -- what a panel needs and what the schema declares -------------------------------------------


def undeclared(need: str) -> bool:
    """`need` is a measurement, or `measurement.key` for one of its tags or fields."""
    measurement, _, key = need.partition(".")
    spec = MEASUREMENTS.get(measurement)
    return spec is None or bool(key) and key not in spec.tags and key not in spec.fields


def waiting_for(panel) -> set[str]:
    return {need for need in panel.needs if undeclared(need)}


def waiting_report() -> str:
    lines = [f"  {p.dashboard_uid} / {p.title}: {', '.join(sorted(waiting_for(p)))}" for p in PANELS if waiting_for(p)]
    return "panels waiting for what monitor/schema.py does not declare yet:\n" + ("\n".join(lines) or "  (none)")


def queried_measurements(query: str) -> set[str]:
    return set(re.findall(r'\bFROM "(\w+)"', query))


def identifiers(query: str) -> set[str]:
    """Double-quoted identifiers a query reads (tags, fields, measurements), without its aliases."""
    return set(re.findall(r'"(\w+)"', query)) - set(re.findall(r'\bAS "(\w+)"', query))


# -- static checks ------------------------------------------------------------------------------


def test_committed_dashboards_equal_a_fresh_generation():
    expected = {gen.path_of(board).name: gen.render(board) for board in BOARDS}
    committed = {path.name: path.read_text(encoding="utf-8") for path in (GRAFANA / "dashboards").glob("*.json")}
    assert set(committed) == set(expected), "run: python deploy/grafana/generate.py"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/generate.py"
    assert gen.main(["--check"]) == 0


def _sdk_round_trip(data: dict) -> tuple[Dashboard, dict]:
    model = Dashboard.from_json(data)
    return model, json.loads(json.dumps(model, cls=JSONEncoder))


def test_dashboards_pass_the_sdk_model_check():
    """Decoding through the SDK's typed models (panel options and field config per panel type,
    InfluxQL targets via our registered variant) and encoding again gives the same JSON: no key
    the models do not know, no value of the wrong shape."""
    register_default_plugins()
    gen.register_influxql()
    uids = set()
    for board in BOARDS:
        data = json.loads(gen.path_of(board).read_text(encoding="utf-8"))
        model, again = _sdk_round_trip(data)
        assert again == data, board.uid
        uids.add(model.uid)
        panels = [p for p in model.panels if p.type_val != "row"]
        assert len(panels) == len(board.panels) and panels
        for panel in panels:
            assert panel.datasource.uid == gen.DATASOURCE_UID and panel.datasource.type_val == "influxdb"
            assert panel.targets and all(isinstance(t, gen.InfluxQLTarget) for t in panel.targets), panel.title
            assert all(t.datasource.uid == gen.DATASOURCE_UID for t in panel.targets)
            assert len({t.ref_id for t in panel.targets}) == len(panel.targets)
        assert len({p.id_val for p in model.panels}) == len(model.panels), "panel ids are unique"
        for panel in panels:  # the grid is 24 wide
            assert panel.grid_pos.x + panel.grid_pos.w <= 24, panel.title
        for variable in model.templating.list_val:
            assert variable.datasource.uid == gen.DATASOURCE_UID
    assert uids == {board.uid for board in BOARDS} and len(uids) == len(BOARDS)


def test_the_model_check_fails_on_unknown_options_and_bad_targets():
    register_default_plugins()
    gen.register_influxql()
    data = json.loads(gen.path_of(BOARDS[0]).read_text(encoding="utf-8"))
    stat_panel = next(p for p in data["panels"] if p["type"] == "stat")
    broken = copy.deepcopy(data)
    next(p for p in broken["panels"] if p["id"] == stat_panel["id"])["options"]["colourMode"] = "background"
    assert _sdk_round_trip(broken)[1] != broken  # the typed stat options drop what they do not know

    target = stat_panel["targets"][0]
    with pytest.raises(ValueError, match="rawQuery must be true"):
        gen.InfluxQLTarget.from_json({**target, "rawQuery": False})
    with pytest.raises(ValueError, match="resultFormat must be one of"):
        gen.InfluxQLTarget.from_json({**target, "resultFormat": "logs"})
    with pytest.raises(ValueError, match="unknown keys"):
        gen.InfluxQLTarget.from_json({**target, "measurement": "icmp"})
    with pytest.raises(ValueError, match="needs a query"):
        gen.InfluxQLTarget.from_json({**target, "query": " "})


def test_needs_name_exactly_what_the_queries_read():
    for panel in PANELS:
        queries = [t.query for t in panel.targets]
        read = set().union(*map(queried_measurements, queries))
        assert {need.partition(".")[0] for need in panel.needs} == read, panel.title
        for need in panel.needs:
            measurement, _, key = need.partition(".")
            if key:
                assert any(f'"{key}"' in q for q in queries), f"{panel.title}: {need} is not used"
        if waiting_for(panel):
            continue
        # Every tag and field it reads is declared: a renamed field fails here, not on the wall.
        declared = set().union(*(set(MEASUREMENTS[m].tags) | set(MEASUREMENTS[m].fields) for m in read))
        unknown = set().union(*map(identifiers, queries)) - declared - read
        assert not unknown, f"{panel.title}: {sorted(unknown)} not declared in monitor/schema.py"


def test_template_variables_and_queries_use_grafana_macros_only_where_grafana_expands_them():
    for panel in PANELS:
        for target in panel.targets:
            assert "$timeFilter" in target.query, panel.title
            names = set(re.findall(r"\$(\w+)", target.query)) - {"timeFilter", "__interval"}
            board = next(b for b in BOARDS if b.uid == panel.dashboard_uid)
            variables = {v.name for v in board.build().templating.list_val}
            assert names <= variables, f"{panel.title}: {names - variables}"


def test_provisioning_matches_the_dashboards_and_the_daemon_defaults():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "fleetmon.yaml").read_text())
    [ds] = datasources["datasources"]
    assert ds["uid"] == gen.DATASOURCE_UID and ds["type"] == "influxdb"
    assert ds["jsonData"]["dbName"] == InfluxDBConfig().database and ds["jsonData"]["version"] == "InfluxQL"
    assert ds["url"] == "http://127.0.0.1:8086"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "fleetmon.yaml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "fleetmon"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/fleetmon"


# -- on a real InfluxDB filled by the daemon ----------------------------------------------------

FAILED = ("SW-002", "CAM-0016")  # a switch with its UPS and cameras; one camera of the last site
# Probe settings of the lab run; other probes join here as the lab fleet learns to serve them.
PROBES = {"icmp": {"interval_s": 1.0, "count": 2, "echo_interval_ms": 50, "timeout_s": 0.3}}


@dataclass(frozen=True)
class Filled:
    influx: InfluxServer
    db: str
    fleet: LabFleet

    def run(self, influxql: str) -> list[dict]:
        return self.influx.query(influxql, self.db)[0].get("series", [])


async def _run_daemon(config: Path, cycles: int) -> None:
    cfg = load_config(config)
    stop = asyncio.Event()
    seen = 0

    def on_snapshot(_snapshot) -> None:
        nonlocal seen
        seen += 1
        if seen >= cycles:
            stop.set()

    await asyncio.wait_for(Daemon(cfg, load_inventory(cfg), on_snapshot=on_snapshot).run(stop), 30)


@pytest.fixture(scope="module")
def filled(influx: InfluxServer, _lab_stale_cleaned: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    if os.geteuid() != 0:
        pytest.skip("the lab network needs root")
    net = LabNet(workdir=tmp_path_factory.mktemp("lab"))
    db = "grafana_panels"
    try:
        fleet = build_small_fleet(net)
        fleet.fail(FAILED[0])
        fleet.fail(FAILED[1], cascade=False)
        workdir = tmp_path_factory.mktemp("daemon")
        fleet.write_point_list(workdir / "points.csv")
        config = {
            "inventory": {"point_lists": ["points.csv"]},
            "probes": PROBES,
            "scheduler": {"spread": 0.2},
            "state": {"database": "state.db", "down_after": 1, "up_after": 1},
            "influxdb": {"url": influx.url, "database": db, "flush_interval_s": 0.2},
            "api": {"port": 0},
            # Raised at once: the fault tables of the command hall get rows within the run.
            "rules": [{"name": "device-down", "type": "device_down", "for_s": 0}],
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        influx.create_database(db)
        asyncio.run(_run_daemon(workdir / "config.yaml", cycles=3))
        yield Filled(influx, db, fleet)
    finally:
        influx.drop_database(db)
        net.close()


def _regex_escape(value: str) -> str:
    """Grafana's escapeRegex (@grafana/data), which its InfluxDB datasource applies to the values
    of multi-value and include-all variables."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(), value)


def interpolate(query: str, values: dict[str, str | list[str]]) -> str:
    """Grafana's InfluxQL substitution: $timeFilter and $__interval as for the last hour at 10 s;
    a multi-value (or include-all) variable becomes its escaped value, or `(a|b|…)` for several;
    a single-value variable is inserted as is (our queries quote it: `'$device_id'`)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "timeFilter":
            return TIME_FILTER
        if name == "__interval":
            return INTERVAL
        value = values[name]
        if isinstance(value, str):
            return value
        escaped = [_regex_escape(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return re.sub(r"\$(\w+)", one, query)


def tag_values(filled: Filled, query: str) -> list[str]:
    return [value for series in filled.run(query) for _key, value in series["values"]]


def resolve_variables(filled: Filled, board, selected: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Every multi-value variable of the dashboard in order, each query run with the values
    before it, "All" selected unless `selected` says otherwise. Single-value variables are
    resolved to their options (the caller picks one)."""
    values: dict[str, list[str]] = {}
    for variable in board.build().templating.list_val:
        options = tag_values(filled, interpolate(variable.query, values))
        assert options, f"{board.uid}: variable {variable.name} has no values"
        values[variable.name] = (selected or {}).get(variable.name, options)
    return values


def _pick_device(filled: Filled, options: list[str], kind: str) -> str:
    """The first device of `kind` among the options that answers (what an engineer looks at)."""
    for device_id in options:
        device: Device = filled.fleet.device(device_id)
        if device.kind.value == kind and device.counted and filled.fleet.net.is_up(device.address):
            return device_id
    raise AssertionError(f"no {kind} that is up among {options}")


def _has_data(series: list[dict]) -> bool:
    return any(
        value is not None
        for s in series for row in s["values"] for column, value in zip(s["columns"], row) if column != "time"
    )


@pytest.mark.root
def test_template_variables_resolve_to_the_lab_fleet(filled: Filled):
    probed = [d for d in filled.fleet.devices if d.address is not None]
    regions = sorted({d.region for d in probed})
    board = next(b for b in BOARDS if b.uid == "fleetmon-device")
    every = resolve_variables(filled, board)
    assert sorted(every["region"]) == regions
    assert sorted(every["site"]) == sorted({d.site for d in probed})
    assert sorted(every["device_id"]) == sorted(d.id for d in probed)
    one = resolve_variables(filled, board, {"region": [regions[1]]})
    assert sorted(one["site"]) == sorted({d.site for d in probed if d.region == regions[1]})
    assert sorted(one["device_id"]) == sorted(d.id for d in probed if d.region == regions[1])
    links = resolve_variables(filled, next(b for b in BOARDS if b.uid == "fleetmon-links"))
    assert sorted(links["link"]) == sorted(d.id for d in probed if d.kind.value == "link")


@pytest.mark.root
def test_offline_points_table_lists_exactly_the_devices_down(filled: Filled):
    fleet = filled.fleet
    down = {FAILED[0], FAILED[1], *(d.id for d in fleet.behind(FAILED[0]))}
    expected = {i for i in down if fleet.device(i).counted}
    panel = next(p for p in PANELS if p.dashboard_uid == "fleetmon-hall" and p.title == "离线点位")
    board = next(b for b in BOARDS if b.uid == "fleetmon-hall")
    rows = filled.run(interpolate(panel.targets[0].query, resolve_variables(filled, board)))
    assert {s["tags"]["device_id"] for s in rows} == expected
    assert {s["values"][0][1] for s in rows} == {"down", "unreachable"}
    # Filtered to the region of the last site: only its camera.
    region = fleet.device(FAILED[1]).region
    rows = filled.run(interpolate(panel.targets[0].query, resolve_variables(filled, board, {"region": [region]})))
    assert {s["tags"]["device_id"] for s in rows} == {i for i in expected if fleet.device(i).region == region}


@pytest.mark.root
def test_every_panel_returns_data_or_waits_for_an_undeclared_measurement(filled: Filled):
    print("\n" + waiting_report())
    empty, checked = [], 0
    for board in BOARDS:
        values = resolve_variables(filled, board)
        for panel in board.panels:
            chosen: dict[str, str | list[str]] = dict(values)
            if panel.device_kind is not None:
                chosen["device_id"] = _pick_device(filled, values["device_id"], panel.device_kind)
            for target in panel.targets:
                query = interpolate(target.query, chosen)
                assert "$" not in query.replace("$/", ""), query  # nothing left for Grafana
                series = filled.run(query)  # raises InfluxError on a query InfluxDB refuses
                checked += 1
                if not waiting_for(panel) and not _has_data(series):
                    empty.append(f"{board.uid} / {panel.title} [{target.ref_id}] needs {sorted(panel.needs)}: {query}")
    assert checked == sum(len(p.targets) for p in PANELS)
    assert not empty, "panels whose measurements are declared in monitor/schema.py but return no data:\n" + "\n".join(
        empty
    )
