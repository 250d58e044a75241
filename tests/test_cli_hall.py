"""The command line's conventions (issue 15, items 4 and 6): --version, -c/--config everywhere
($FLEETMON_CONFIG), --json, exit statuses 0/1/2/3, completion, progress on long point lists,
`faults`, `probe … TARGET` by point id, `run --once`; and the daemon's /metrics, scraped from
a real daemon and parsed with prometheus_client's own parser.

In-process `main(argv)` where possible (in a thread when a server runs on the test's loop),
the console script as its own process for --version, completion and the faults fallback."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.onvif import OnvifSimulator
from lab.process import free_ports
from monitor.app.cli import build_parser, main
from monitor.app.cli_common import progress_printer
from tests.plugins.daemon import running_daemon

REPO = Path(__file__).resolve().parent.parent
FLEETMON = str(Path(sys.executable).with_name("fleetmon"))
SECRET = "Onvif-Secret-Never-Printed-42"
STATUS_TOKEN = "status-token-for-the-metrics-test-0123456789"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def write_config(path: Path, body: str = "") -> Path:
    path.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n"
        "    - {id: C1, name: 东关, kind: camera, address: 127.0.0.1, site: s1, region: 城关镇}\n"
        f"state:\n  database: {path.parent / 'state.db'}\ninfluxdb:\n  enabled: false\n" + body,
        encoding="utf-8")
    return path


def subcommand_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every leaf (sub)command's parser with its words, e.g. ("workorder", "ack")."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix, parser
    for action in actions:
        for name, sub in action.choices.items():
            yield from subcommand_parsers(sub, (*prefix, name))


# --- conventions ----------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(capsys):
    status, out, _ = run(capsys, "--version")
    assert (status, out.strip()) == (0, f"fleetmon {version('fleetmon')}")


def test_help_documents_the_exit_statuses_and_every_command_takes_config(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    flat = " ".join(out.split())
    assert "exit status: 0 ok; 1 problems found" in flat and "2 usage error; 3 cannot run" in flat
    leaves = dict(subcommand_parsers(build_parser()))
    assert len(leaves) > 20  # workorder actions and probe kinds included
    for words, parser in leaves.items():
        options = {s for a in parser._actions for s in a.option_strings}
        assert {"-c", "--config"} <= options, words


def test_every_read_command_has_json():
    reads = {("check-config",), ("probe", "icmp"), ("probe", "rtsp"), ("probe", "onvif"), ("probe", "snmp"),
             ("probe", "vqd"), ("faults",), ("availability",), ("score",), ("spot-check",), ("long-offline",),
             ("workorder", "list"), ("workorder", "show"), ("run",)}
    for words, parser in subcommand_parsers(build_parser()):
        if words in reads:
            assert "--json" in {s for a in parser._actions for s in a.option_strings}, words


def test_config_from_the_option_the_environment_or_the_old_positional(tmp_path, capsys, monkeypatch):
    good = write_config(tmp_path / "good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: Mars/Base\nprobes:\n  icmp:\n    cuont: 3\n")
    monkeypatch.setenv("FLEETMON_CONFIG", str(good))
    status, out, _ = run(capsys, "check-config")
    assert status == 0 and out.startswith(f"{good}: OK")
    status, _, err = run(capsys, "check-config", "-c", str(bad))  # the option wins over the environment
    assert status == 1 and f"{bad}:4: probes.icmp.cuont: unknown key" in err
    status, out, _ = run(capsys, "check-config", str(good))  # the old form
    assert status == 0 and out.startswith(f"{good}: OK")
    monkeypatch.delenv("FLEETMON_CONFIG")
    status, _, err = run(capsys, "check-config")
    assert status == 1 and "/etc/fleetmon/config.yaml: cannot read" in err


def test_check_config_json_lists_each_problem_located(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: Mars/Base\nprobes:\n  icmp:\n    cuont: 3\n")
    status, out, err = run(capsys, "check-config", "-c", str(bad), "--json")
    doc = json.loads(out)
    assert status == 1 and err == "" and doc["ok"] is False
    assert doc["errors"][1] == {"file": str(bad), "line": 4, "path": "probes.icmp.cuont",
                                "message": "unknown key, did you mean 'count'?"}
    assert doc["errors"][0]["path"] == "timezone" and doc["errors"][0]["line"] == 1
    good = write_config(tmp_path / "good.yaml")
    status, out, _ = run(capsys, "check-config", "-c", str(good), "--json")
    doc = json.loads(out)
    assert status == 0 and doc["ok"] is True and doc["errors"] == [] and doc["summary"][0].startswith("devices: 1")


def test_exit_statuses_usage_and_cannot_run(tmp_path, capsys):
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "availability")[0] == 2  # --period missing: argparse
    config = write_config(tmp_path / "config.yaml")
    status, _, err = run(capsys, "long-offline", "-c", str(config))  # no state database yet
    assert status == 3 and "no state database yet" in err
    status, _, err = run(capsys, "probe", "icmp", "NOPE-1", "-c", str(config))
    assert status == 2 and "neither a point id of the config's point list nor an IP address: NOPE-1" in err


def test_completion_scripts_for_bash_and_zsh(capsys):
    status, bash, _ = run(capsys, "completion", "bash")
    assert status == 0 and "workorder" in bash and "check-config" in bash and "--fail-on-faults" in bash
    checked = subprocess.run(["bash", "-n"], input=bash, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    status, zsh, _ = run(capsys, "completion", "zsh")
    assert status == 0 and zsh.startswith("#compdef fleetmon") and "spot-check" in zsh


def test_progress_lines_on_a_long_point_list(tmp_path, capsys):
    rows = ["id,kind,address,site,region"] + [f"C{i:05d},camera,10.1.{i // 250}.{i % 250 + 1},s,r"
                                              for i in range(25_000)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("inventory:\n  point_lists: [points.csv]\n")
    status, _, err = run(capsys, "check-config", "-c", str(config), "--progress")
    assert status == 0
    assert err.splitlines() == [f"point list: {n} / 25,000 rows" for n in ("0", "10,000", "20,000", "25,000")]
    status, _, err = run(capsys, "check-config", "-c", str(config))  # stderr is not a terminal here: quiet
    assert (status, err) == (0, "")


def test_progress_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = argparse.Namespace(progress=None)
    assert progress_printer(quiet, io.StringIO()) is None
    tty = Tty()
    report = progress_printer(quiet, tty)
    assert report is not None
    report(10_000, 100_000)
    assert tty.getvalue() == "point list: 10,000 / 100,000 rows\n"


# --- probe by point id ---------------------------------------------------------------------------


async def test_probe_onvif_by_point_id_and_address_with_the_configs_credentials(tmp_path, capsys, monkeypatch):
    identity = {"manufacturer": "HIKVISION", "model": "DS-2CD2T47G2-L", "firmware": "V5.7.1", "serial": "SN0001",
                "username": "admin", "password": SECRET, "stream_path": "/Streaming/Channels/101"}
    sim = await OnvifSimulator({"default": identity}).start()
    try:
        monkeypatch.setenv("FLEETMON_TEST_ONVIF", SECRET)
        config = write_config(tmp_path / "config.yaml", "probes:\n  onvif:\n"
                              f"    port: {sim.port}\n    timeout_s: 3\n    username: admin\n"
                              "    password_env: FLEETMON_TEST_ONVIF\n")
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["probe", "onvif", "C1", "127.0.0.1", "-c", str(config), "--json"])
        out, err = capsys.readouterr()
        assert status == 0, err
        by_target = {r["target"]: r for r in json.loads(out)}
        assert by_target["C1"]["ok"] and by_target["C1"]["device_id"] == "C1"
        assert by_target["127.0.0.1"]["device_id"] == "C1"  # the address of a point is that point
        assert by_target["C1"]["fields"]["serial"] == "SN0001"
        assert SECRET not in out + err
        # A wrong password: the table says why, exit 1, the secret still unprinted.
        monkeypatch.setenv("FLEETMON_TEST_ONVIF", "wrong-" + SECRET)
        status = await asyncio.to_thread(main, ["probe", "onvif", "C1", "-c", str(config), "--lang", "en"])
        out, err = capsys.readouterr()
        assert status == 1 and "down" in out and "C1" in out and SECRET not in out + err
    finally:
        await sim.close()


async def test_probe_rtsp_of_a_closed_port_is_a_failure_exit_1(tmp_path, capsys):
    (port,) = free_ports(1)
    config = write_config(tmp_path / "config.yaml", f"probes:\n  rtsp:\n    port: {port}\n    timeout_s: 2\n")
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["probe", "rtsp", "C1", "-c", str(config), "--json"])
    out, _ = capsys.readouterr()
    (result,) = json.loads(out)
    assert status == 1 and result["ok"] is False and result["reason"] == "connection refused"


@pytest.mark.root
def test_probe_icmp_resolves_a_point_id(tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml")
    status, out, err = run(capsys, "probe", "icmp", "C1", "::1", "-c", str(config), "--count", "1", "--json")
    assert status == 0, err
    rows = json.loads(out)
    assert [(r["target"], r["address"], r["ok"]) for r in rows] == [("C1", "127.0.0.1", True), ("::1", "::1", True)]


# --- run --once ---------------------------------------------------------------------------------


@pytest.mark.root
def test_run_once_summarises_one_cycle_and_exits_1_on_problems(tmp_path, capsys):
    (port,) = free_ports(1)
    config = write_config(tmp_path / "config.yaml", f"probes:\n  rtsp:\n    port: {port}\n    timeout_s: 2\n")
    status, out, err = run(capsys, "run", "--once", "-c", str(config), "--json")
    doc = json.loads(out)
    assert status == 1, err
    assert doc["probes"]["icmp"] == {"targets": 1, "ok": 1, "failed": 0, "duration_s": doc["probes"]["icmp"]["duration_s"]}
    assert doc["probes"]["rtsp"]["failed"] == 1
    assert {"probe": "rtsp", "device_id": "C1", "reason": "connection refused"} in doc["down"]
    assert any(f["rule"] == "camera-video-down" for f in doc["faults"])
    network = next(r for r in doc["rates"] if r["basis"] == "network" and r["scope"] == "fleet")
    assert network["rate_pct"] == 100.0
    assert not (tmp_path / "state.db").exists()  # nothing written
    # Only ICMP, which answers: all well, exit 0, the Chinese summary.
    quiet = write_config(tmp_path / "quiet.yaml", "probes:\n  rtsp:\n    enabled: false\n")
    status, out, err = run(capsys, "run", "--once", "-c", str(quiet))
    assert status == 0, out + err
    assert "icmp：1 个目标，1 个正常，0 个失败" in out and out.rstrip().endswith("全部正常")


# --- faults and /metrics against a real daemon ------------------------------------------------------


async def scrape(url: str, token: str | None) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            return resp.status, resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.root
async def test_metrics_and_faults_from_a_running_daemon_then_from_the_state_database(tmp_path, capsys, monkeypatch):
    rtsp_port, api_port, influx_port, hook_port = free_ports(4)
    monkeypatch.setenv("FLEETMON_TEST_STATUS_TOKEN", STATUS_TOKEN)
    config = tmp_path / "config.yaml"
    config.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n"
        "    - {id: C1, name: 东关, kind: camera, address: 127.0.0.1, site: s1, region: 城关镇}\n"
        f"state:\n  database: {tmp_path / 'state.db'}\n  down_after: 1\n  up_after: 1\n"
        f"influxdb:\n  url: http://127.0.0.1:{influx_port}\n"
        "probes:\n  icmp:\n    interval_s: 1\n    count: 1\n"
        f"  rtsp:\n    interval_s: 1\n    port: {rtsp_port}\n    timeout_s: 1\n"
        "rules:\n  - {name: video, type: video_down, for_s: 0, clear_for_s: 60}\n"
        f"notify:\n  routes:\n    - {{name: hall, type: webhook, url: 'http://127.0.0.1:{hook_port}/'}}\n"
        f"api:\n  port: {api_port}\n  status_token_env: FLEETMON_TEST_STATUS_TOKEN\n", encoding="utf-8")
    url = f"http://127.0.0.1:{api_port}/metrics"
    monkeypatch.setenv("FLEETMON_TOKEN", STATUS_TOKEN)

    def fired(d) -> bool:
        return d.snapshot is not None and any(f.state.value == "firing" for f in d._alerting.faults.open_faults())

    async with running_daemon(config, fired, "the video fault", timeout_s=30):
        assert (await scrape(url, None))[0] == 401  # a read like the others: the status token
        page: dict = {}

        async def scraped() -> bool:
            status, content_type, text = await scrape(url, STATUS_TOKEN)
            assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
            page.update(samples(text))
            return page.get(("fleetmon_outbox_backlog", (("route", "hall"),)), 0) >= 1 and \
                page.get(("fleetmon_probe_cycles_total", (("probe", "rtsp"),)), 0) >= 2

        for _ in range(100):  # bounded: 10 s
            if await scraped():
                break
            await asyncio.sleep(0.1)
        assert page[("fleetmon_probe_cycles_total", (("probe", "icmp"),))] >= 1
        assert page[("fleetmon_probe_last_cycle_duration_seconds", (("probe", "rtsp"),))] >= 0
        assert 0 <= page[("fleetmon_probe_last_cycle_age_seconds", (("probe", "icmp"),))] < 30
        assert page[("fleetmon_probe_interval_seconds", (("probe", "rtsp"),))] == 1.0
        assert page[("fleetmon_scheduler_targets", (("probe", "icmp"),))] == 1
        assert ("fleetmon_scheduler_waiting", (("probe", "icmp"),)) in page
        assert page[("fleetmon_faults_open", (("severity", "major"), ("state", "firing")))] == 1
        assert page[("fleetmon_outbox_oldest_age_seconds", (("route", "hall"),))] > 0
        assert page[("fleetmon_outbox_route_disabled", (("route", "hall"),))] == 0
        assert page[("fleetmon_sink_reachable", ())] == 0  # nothing listens on the InfluxDB port
        assert page[("fleetmon_sink_buffered_lines", ())] > 0 and page[("fleetmon_sink_spool_bytes", ())] > 0
        assert page[("fleetmon_sink_written_lines_total", ())] == 0
        assert page[("process_resident_memory_bytes", ())] > 10e6 and page[("process_open_fds", ())] > 3
        assert page[("fleetmon_build_info", (("version", version("fleetmon")),))] == 1

        capsys.readouterr()
        status = await asyncio.to_thread(main, ["faults", "-c", str(config), "--json", "--fail-on-faults"])
        doc = json.loads(capsys.readouterr().out)
        assert status == 1 and doc["source"] == "daemon"
        (fault,) = doc["faults"]
        assert fault["rule"] == "video" and fault["device_id"] == "C1" and fault["region"] == "城关镇"
        status = await asyncio.to_thread(main, ["faults", "-c", str(config), "--region", "东湖镇", "--fail-on-faults"])
        assert status == 0 and "没有故障" in capsys.readouterr().out
        status = await asyncio.to_thread(main, ["faults", "-c", str(config)])
        out = capsys.readouterr().out
        assert status == 0 and "故障 1 个（未恢复，来源：守护进程）" in out and "严重" in out and "告警中" in out

    # The daemon stopped: the same fault from the state database, read-only, as its own process.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([FLEETMON, "faults", "-c", str(config), "--json"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "改为读取状态数据库（只读）" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["source"] == "state database" and [f["id"] for f in doc["faults"]] == [fault["id"]]
    # Neither the daemon nor a state database: cannot run.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = elsewhere / "config.yaml"
    other.write_text(config.read_text().replace(str(tmp_path / "state.db"), str(elsewhere / "state.db")))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["faults", "-c", str(other)]) == 3
    assert "no state database yet" in capsys.readouterr().err


def test_the_console_script_prints_its_version():
    done = subprocess.run([FLEETMON, "--version"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (done.returncode, done.stdout.strip()) == (0, f"fleetmon {version('fleetmon')}")


def test_the_loader_reports_progress_as_it_goes(tmp_path):
    """The loader calls back as it goes (not only at the end): a callback that records the
    rows done sees them grow in steps of 10,000."""
    from monitor.fleet.inventory import load_inventory
    from monitor.app.config import load_config

    rows = ["id,kind,address,site,region"] + [f"C{i:05d},camera,10.2.{i // 250}.{i % 250 + 1},s,r"
                                              for i in range(30_001)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("inventory:\n  point_lists: [points.csv]\n")
    seen: list[tuple[int, int]] = []
    inventory = load_inventory(load_config(config), progress=lambda done, total: seen.append((done, total)))
    assert len(inventory.devices) == 30_001
    assert seen == [(0, 30_001), (10_000, 30_001), (20_000, 30_001), (30_000, 30_001), (30_001, 30_001)]


@pytest.mark.peer
def test_probe_snmp_of_a_switch_with_the_configs_community(tmp_path, capsys, monkeypatch):
    from lab.snmp import SnmpSim, free_udp_ports

    (port,) = free_udp_ports(1)
    config = tmp_path / "config.yaml"
    config.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n    - {id: SW1, name: 核心交换机, kind: switch, address: 127.0.0.1, site: s, region: r}\n"
        f"probes:\n  snmp:\n    port: {port}\n    timeout_s: 2\n    retries: 0\n    community_env: FLEETMON_TEST_COMMUNITY\n",
        encoding="utf-8")
    with SnmpSim([("127.0.0.1", port)]):
        monkeypatch.setenv("FLEETMON_TEST_COMMUNITY", "switch")  # snmpsim serves switch.snmprec as "switch"
        status, out, err = run(capsys, "probe", "snmp", "SW1", "-c", str(config), "--json")
        (result,) = json.loads(out)
        assert status == 0, err
        assert result["ok"] and result["device_id"] == "SW1" and result["fields"]["response_ms"] > 0 and result["fields"]["varbinds"] > 0
        monkeypatch.setenv("FLEETMON_TEST_COMMUNITY", "not-the-community")
        status, out, err = run(capsys, "probe", "snmp", "127.0.0.1", "-c", str(config), "--json")
        (result,) = json.loads(out)
        assert status == 1 and result["ok"] is False and result["device_id"] == "SW1"
        assert "not-the-community" not in out + err
