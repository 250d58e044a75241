"""`fleetmon check-config`, run as users run it: the console script and `python -m monitor.app.cli`,
in a subprocess, with exit status and output checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECRET = "Pa55-word-Not-For-Print"


def fleetmon(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
             script: bool = False) -> subprocess.CompletedProcess[str]:
    # The console script lives next to the interpreter running the tests (the venv's bin/).
    command = [str(Path(sys.executable).parent / "fleetmon")] if script else [sys.executable, "-m", "monitor.app.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("script", [True, False], ids=["console-script", "python-m"])
def test_example_config_passes_with_a_summary(script: bool) -> None:
    result = fleetmon("check-config", "config.yaml", script=script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "config.yaml: OK",
        "  devices: 18 from 3 source(s)",
        "    by kind: camera 10, switch 3, ups 2, link 2, platform 1",
        "    by status: active 15, construction 2, removed 1",
        "    by region: 城关镇 9, 东湖镇 7, 城区 2",
        # 17 devices with an address; ONVIF and SNMP have no credentials in the example: they poll none
        "  probes enabled (devices polled): icmp 17, onvif 0, rtsp 9, snmp 0, http 0, tcp 0, tls 0, nvr 0",
        "  influxdb: api v1, http://127.0.0.1:8086, database fleetmon",
        f"  state database: {REPO / 'var/state.db'}",
        "  rules: device-down, camera-online-rate, link-latency, link-loss, link-jitter, camera-video-down, "
        "camera-clock-drift, camera-inventory-mismatch, uplink-down, ups-on-battery, ups-battery-low, device-rebooted, "
        "uplink-utilisation, uplink-errors, storage-usage, platform-service-down, renewal-due, tls-expiry, "
        "nvr-not-recording, nvr-retention, nvr-disk, link-bandwidth",
        "  notify routes: none",
        "  api: http://127.0.0.1:8080/, read-only (no token configured)",
        "  assessment: online rate point_time, unknown time exclude",
        "    work orders: open on manual reports only, auto close propose, notices to no route, long offline order",
        "    SLA: preset qionglai + 1 own, warn at 80 %",
        "    score: scheme qionglai (邛崃市雪亮工程运维服务季度考核), 4 items, per quarter, fee 250000 元, systems by site",
    ]


def test_config_errors_all_go_to_stderr_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("timezone: Mars/Base\nprobes:\n  icmp:\n    cuont: 3\n")
    result = fleetmon("check-config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:1: timezone: unknown time zone 'Mars/Base': use an IANA name such as Asia/Shanghai "
        "(the tzdata package provides them)",
        f"{config}:4: probes.icmp.cuont: unknown key, did you mean 'count'?",
        f"{config}: 2 problems, nothing loaded",
    ]


def test_malformed_yaml_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("inventory: [\n")
    result = fleetmon("check-config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{config}:2:1: YAML syntax error: ")


def test_inventory_errors_exit_2_from_another_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/points.csv").write_text("id,kind,address,site,region\na,camera,10.0.0.1,s,r\na,camera,10.0.0.1,s,r\n")
    (tmp_path / "etc/config.yaml").write_text("inventory:\n  point_lists: [points.csv]\n")
    result = fleetmon("check-config", "etc/config.yaml", cwd=tmp_path)
    points = tmp_path / "etc/points.csv"
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{points}:3: id: duplicate id 'a' (first at {points}:2)",
        "etc/config.yaml: 1 problem, nothing loaded",
    ]


def test_secrets_and_url_credentials_are_never_printed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "influxdb:\n  url: http://fleetmon:" + SECRET + "@influx.example:8086/\n"
        "  username: fleetmon\n  password_env: FLEETMON_TEST_PASSWORD\n"
    )
    result = fleetmon("check-config", str(config), env={"FLEETMON_TEST_PASSWORD": SECRET})
    # A password in the URL is a secret written in the config (docs/OPERATIONS.md "Secrets"): refused.
    assert result.returncode == 2
    assert f"{config}:2: influxdb.url: must not carry credentials (user:password@)" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    config.write_text("influxdb:\n  url: http://influx.example:8086/\n  username: fleetmon\n  password_env: FLEETMON_TEST_PASSWORD\n")
    result = fleetmon("check-config", str(config), env={"FLEETMON_TEST_PASSWORD": SECRET})
    assert result.returncode == 0, result.stderr
    assert "  influxdb: api v1, http://influx.example:8086/, database fleetmon" in result.stdout.splitlines()
    assert SECRET not in result.stdout + result.stderr


def test_secret_written_in_the_config_is_refused_and_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"influxdb:\n  password: {SECRET}\n  token_env: {SECRET}\n")
    result = fleetmon("check-config", str(config))
    assert result.returncode == 2
    assert "'password' must not be written in the config" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_missing_env_var_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("influxdb:\n  password_env: FLEETMON_SURELY_UNSET\n")
    result = fleetmon("check-config", str(config))
    assert result.returncode == 2
    assert f"{config}:1: influxdb: password: environment variable FLEETMON_SURELY_UNSET is not set" in result.stderr


def test_no_subcommand_is_a_usage_error() -> None:
    result = fleetmon()
    assert result.returncode == 2
    assert "usage: fleetmon" in result.stderr
