"""`fleetmon maintenance list|add|end` against a real daemon (`fleetmon run`'s Daemon with its
HTTP API, ICMP to loopback addresses, a real SQLite state database): the CLI runs in a thread
beside the daemon's event loop; what it prints, its exit status, what the daemon then holds,
the API's device list marking a point in maintenance, and `list` from the state database once
the daemon is down."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from monitor.app.cli import main
from tests.plugins.daemon import running_daemon

pytestmark = pytest.mark.root  # ICMP (raw sockets) to the loopback points
SH = ZoneInfo("Asia/Shanghai")
S = 1_000_000_000
TOKEN = "maintenance-write-token-0123456789"


async def fleetmon(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `fleetmon ARGV…` in a thread (the daemon keeps running on this loop)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def write_config(tmp_path: Path, port: int = 0) -> Path:
    doc = {
        "inventory": {"allow_loopback": True, "devices": [
            {"id": f"CAM-{i}", "name": f"{i}号摄像机", "kind": "camera", "address": f"127.0.0.{i + 1}",
             "site": "人民广场", "region": "城关镇"} for i in (1, 2)
        ]},
        "probes": {"icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.3, "echo_interval_ms": 50},
                   "rtsp": {"enabled": False}},
        "state": {"database": "state.db"},
        "influxdb": {"enabled": False},
        "api": {"port": port, "token_env": "FM_TEST_MAINT_TOKEN"},
    }
    path = tmp_path / ("config.yaml" if port == 0 else "cli.yaml")
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def test_add_list_end_through_the_daemon_and_list_from_the_state_db_when_it_is_down(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FM_TEST_MAINT_TOKEN", TOKEN)
    config = write_config(tmp_path)
    async with running_daemon(config) as d:
        assert d.api is not None
        url = f"http://127.0.0.1:{d.api.port}"
        cli_config = write_config(tmp_path, d.api.port)  # the address as the CLI reads it: api.listen/port

        # Without a token: refused before asking the daemon.
        monkeypatch.delenv("FLEETMON_API_TOKEN", raising=False)
        monkeypatch.delenv("FLEETMON_TOKEN", raising=False)
        status, out, err = await fleetmon(capsys, "maintenance", "add", "--url", url, "--device", "CAM-1",
                                          "--every", "tue 01:00", "--duration", "4h", "--reason", "光缆割接")
        assert (status, out) == (2, "") and "FLEETMON_API_TOKEN" in err
        monkeypatch.setenv("FLEETMON_API_TOKEN", TOKEN)

        # A recurring window for one point, addressed through the config's api.port.
        status, out, err = await fleetmon(capsys, "maintenance", "add", "-c", str(cli_config), "--device", "CAM-1",
                                          "--every", "tue 01:00", "--duration", "4h", "--reason", "光缆割接",
                                          "--by", "张工")
        assert (status, err) == (0, ""), err
        assert "已创建维护窗口 #1" in out and "每周二 01:00，4小时" in out and "光缆割接" in out
        # A one-off window in force now for the other point.
        now = datetime.now(SH).replace(microsecond=0)
        start, end = now.timestamp() - 600, now.timestamp() + 3600
        status, out, err = await fleetmon(
            capsys, "maintenance", "add", "--url", url, "--device", "CAM-2", "--reason", "更换镜头", "--by", "李工",
            "--start", datetime.fromtimestamp(start, SH).strftime("%Y-%m-%d %H:%M:%S"),
            "--end", datetime.fromtimestamp(end, SH).strftime("%Y-%m-%d %H:%M:%S"), "--json")
        assert (status, err) == (0, ""), err
        one_off = json.loads(out)
        assert one_off["id"] == 2 and one_off["active"] and one_off["start_ns"] == int(start) * S

        # Refusals come back with the daemon's located reason, and store nothing.
        for argv, reason in [
            (["--device", "CAM-404", "--every", "tue 01:00", "--duration", "4h"],
             "match.devices[0]: unknown device CAM-404"),
            (["--every", "tus 01:00", "--duration", "4h"], "body.every"),
            (["--every", "tue 01:00", "--duration", "0h"], "body.duration"),
            (["--every", "tue 01:00", "--duration", "4h", "--from", "2027-02-01", "--until", "2027-01-01"],
             "until 2027-01-01 is before from 2027-02-01"),
        ]:
            status, out, err = await fleetmon(capsys, "maintenance", "add", "--url", url, "--reason", "x",
                                              "--by", "张工", *argv)
            assert status == 2 and reason in err, (argv, err)

        status, out, err = await fleetmon(capsys, "maintenance", "list", "--url", url, "--json")
        assert status == 0, err
        listed = {w["id"]: w for w in json.loads(out)["windows"]}
        assert sorted(listed) == [1, 2]
        recurring = listed[1]
        assert recurring["every"] == "tue 01:00" and recurring["cron"] == "0 1 * * 2"
        assert recurring["every_label"] == "每周二 01:00"
        assert recurring["duration_s"] == 4 * 3600 and recurring["timezone"] == "Asia/Shanghai"
        assert recurring["match"]["devices"] == ["CAM-1"] and recurring["end_ns"] is None
        starts = [datetime.fromtimestamp(o["start_ns"] / S, UTC).astimezone(SH) for o in recurring["next"]]
        assert len(starts) == 3 and all(s.strftime("%a %H:%M") == "Tue 01:00" for s in starts)
        status, out, _ = await fleetmon(capsys, "maintenance", "list", "--url", url)
        assert "#2（维护中）" in out and "点位 CAM-2" in out and "点位 CAM-1" in out and "临时" in out

        # The API marks the point in maintenance, not its neighbour.
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/v1/devices") as resp:
                devices = {x["id"]: x for x in (await resp.json())["devices"]}
        assert devices["CAM-2"]["maintenance"]["reason"] == "更换镜头"
        assert devices["CAM-2"]["maintenance"]["until_ns"] == int(end) * S
        assert devices["CAM-1"]["maintenance"] is None or datetime.now(SH).strftime("%a") == "Tue"

        status, out, err = await fleetmon(capsys, "maintenance", "end", "1", "--url", url, "--by", "张工")
        assert (status, out.strip(), err) == (0, "已结束维护窗口 #1", "")
        assert [w.id for w in d._alerting.maintenance.windows()] == [2]
        status, _, err = await fleetmon(capsys, "maintenance", "end", "1", "--url", url)
        assert status == 2 and "404" in err

    # The daemon is down: list reads the state database (read-only) and says so.
    status, out, err = await fleetmon(capsys, "maintenance", "list", "-c", str(cli_config), "--lang", "en")
    assert status == 0 and "Cannot reach the fleetmon daemon" in err and "Read from the state database" in err
    assert str(tmp_path / "state.db") in err
    assert "#2 (in maintenance)" in out and "#1" not in out and "更换镜头" in out
    status, out, err = await fleetmon(capsys, "maintenance", "list", "-c", str(cli_config), "--no-fallback")
    assert status == 3 and out == "" and "无法连接" in err  # cannot run
    assert time.time() < end  # the window listed as active was so
