"""`fleetmon workorder …` against a running API: a real ApiServer on loopback over a real
WorkOrderBook and SQLite state database (tests/test_api_workorders.py builds it), the CLI run
in a thread beside the server's event loop (and once as its own process), its output and exit
status checked, and what it wrote checked in the book."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.app.cli import main
from tests.test_api_workorders import TOKENS, WRITE, make_world

SH = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parent.parent
S = 1_000_000_000


@pytest.fixture
def token_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, token in {**TOKENS, "write": WRITE}.items():
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(token + "\n", encoding="utf-8")
    return files


async def fleetmon(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `fleetmon ARGV…` in a thread (the server keeps serving on this loop): (status, stdout, stderr)."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_a_fault_through_its_life_from_the_command_line(tmp_path, capsys, token_files):
    async with make_world(tmp_path) as w:
        zhang = ["--url", w.url, "--token-file", str(token_files["张工"])]
        status, out, err = await fleetmon(capsys, "workorder", "report", "CAM-0001", "--title", "采购方来电：画面黑屏",
                                          "--severity", "critical", *zhang)
        assert (status, err) == (0, ""), err
        (order,) = w.book.open_orders()
        ref = order.ref
        assert f"已报障 {ref} · 采购方来电：画面黑屏" in out and "紧急" in out and "城关镇人民广场01号枪机（CAM-0001）" in out
        assert order.reported_by == "张工" and order.severity.value == "critical"

        for argv, expected in [
            (["ack", ref], "已认领"),
            (["arrive", ref], "已记录到场"),
            (["restore", ref, "--resolution", "on_site"], "已记录修复"),
            (["replace", ref, "--device", "CAM-0001", "--old-serial", "DS00010713CCWR", "--new-serial", "DSNEW0001",
              "--new-model", "DS-2CD3T47"], "已记录更换"),
        ]:
            status, out, err = await fleetmon(capsys, "workorder", *argv, *zhang)
            assert (status, err) == (0, ""), (argv, err)
            assert out.startswith(f"{expected} {ref}"), out

        status, out, _ = await fleetmon(capsys, "workorder", "list", "--url", w.url)
        assert status == 0 and ref in out and "已修复" in out and "张工" in out
        assert "编号" in out and "时限" in out

        status, out, err = await fleetmon(capsys, "workorder", "close", ref, *zhang)
        assert (status, err) == (0, "") and out.startswith(f"已关闭 {ref}")
        status, out, _ = await fleetmon(capsys, "workorder", "show", ref, "--url", w.url, "--json")
        shown = json.loads(out)
        assert shown["stage"] == "closed"
        assert [(e["action"], e["by"]) for e in shown["events"]] == [
            ("opened", "张工"), ("acknowledged", "张工"), ("assigned", "张工"), ("arrived", "张工"),
            ("restored", "张工"), ("replaced", "张工"), ("closed", "张工"),
        ]
        assert shown["replacements"][0]["new_serial"] == "DSNEW0001"
        status, out, _ = await fleetmon(capsys, "workorder", "show", ref, "--url", w.url)
        assert "更换：CAM-0001 DS00010713CCWR → DSNEW0001" in out and "关闭：" in out and "张工" in out
        status, out, _ = await fleetmon(capsys, "workorder", "list", "--url", w.url)
        assert out.strip() == "没有工单。"
        stored = await w.book.get(ref)
        assert (stored.closed_by, stored.replacements[0].by) == ("张工", "张工")


async def test_the_api_address_language_and_zone_come_from_the_config(tmp_path, capsys, token_files):
    async with make_world(tmp_path) as w:
        port = w.url.rsplit(":", 1)[1]
        config = tmp_path / "config.yaml"
        # A config the CLI cannot validate in full (the daemon's secret is not in this shell): only
        # api.listen/port, language and timezone are read.
        config.write_text(f"language: en\ntimezone: Asia/Shanghai\ninfluxdb: {{token_env: FM_UNSET_IN_THIS_SHELL}}\n"
                          f"api:\n  listen: 0.0.0.0\n  port: {port}\n  token_env: FM_UNSET_TOO\n", encoding="utf-8")
        status, out, err = await fleetmon(capsys, "workorder", "report", "CAM-0002", "--title", "no picture",
                                          "--at", "2026-01-05 09:30", "-c", str(config),
                                          "--token-file", str(token_files["李工"]))
        assert (status, err) == (0, ""), err
        assert out.startswith("Reported WO-20260105-0001 · no picture") and "2026-01-05 09:30 · 李工" in out
        order = await w.book.get("WO-20260105-0001")
        assert order.reported_ns == int(datetime(2026, 1, 5, 9, 30, tzinfo=SH).timestamp()) * S
        status, out, err = await fleetmon(capsys, "workorder", "ack", order.ref, "--at", "2026-01-05 09:00", "-c",
                                          str(config), "--token-file", str(token_files["李工"]))
        assert (status, out) == (1, "") and err.strip() == (
            f"Refused (409): {order.ref} acknowledged: the time is before the report (30 min 0 s earlier)")
        # "HH:MM" is today in the config's zone.
        now = datetime.now(SH)
        status, out, err = await fleetmon(capsys, "workorder", "ack", order.ref, "--at", f"{now:%H:%M}", "-c",
                                          str(config), "--token-file", str(token_files["李工"]), "--json")
        assert status == 0, err
        assert json.loads(out)["acknowledged_ns"] == int(now.replace(second=0, microsecond=0).timestamp()) * S


async def test_refusals_are_printed_with_the_daemons_reason_and_write_nothing(tmp_path, capsys, token_files,
                                                                                monkeypatch):
    async with make_world(tmp_path) as w:
        before = w.rows()
        # Exit 2: the arguments name nothing or are malformed; 3: no permission (cli_common).
        cases = [
            (["report", "CAM-9999", "--title", "黑屏", "--token-file", str(token_files["张工"])],
             2, "被拒绝（400）：unknown device: CAM-9999 (not in the point list)"),
            (["report", "CAM-0001", "--title", "黑屏", "--token-file", str(token_files["赵观察"])],
             3, "被拒绝（403）：赵观察's token (roles: read) may not act on work orders: that needs the duty or manager role"),
            (["report", "CAM-0001", "--title", "黑屏", "--token-file", str(token_files["write"])],
             2, "`by` is required with the shared write token"),
            (["ack", "WO-20991231-0001", "--token-file", str(token_files["张工"])],
             2, "被拒绝（404）：no work order 'WO-20991231-0001'"),
            (["ack", "WO-20991231-0001"], 3, "写操作需要令牌：--token-file 文件，或环境变量 FLEETMON_TOKEN"),
            (["arrive", "WO-1", "--at", "yesterday", "--token-file", str(token_files["张工"])], 2, "--at 'yesterday'"),
            (["show", "WO-20991231-0001", "--token-file", str(tmp_path / "missing.token")], 2,
             "cannot read the token"),
        ]
        monkeypatch.delenv("FLEETMON_TOKEN", raising=False)
        for argv, expected, message in cases:
            status, out, err = await fleetmon(capsys, "workorder", *argv, "--url", w.url)
            assert status == expected and out == "" and message in err, (argv, status, err)
        assert w.rows() == before
        # The shared token with --by, and the environment variable instead of a file.
        monkeypatch.setenv("FLEETMON_TOKEN", WRITE)
        status, out, err = await fleetmon(capsys, "workorder", "report", "CAM-0001", "--title", "黑屏", "--by",
                                          "值班员王", "--url", w.url, "--json")
        assert status == 0 and json.loads(out)["reported_by"] == "值班员王"


async def test_a_daemon_that_is_not_running_is_named_as_such(tmp_path, capsys):
    async with make_world(tmp_path) as w:
        url = w.url
    status, out, err = await fleetmon(capsys, "workorder", "list", "--url", url)
    assert status == 3 and out == ""
    assert err.strip() == f"无法连接 fleetmon 守护进程 {url}（连接被拒绝）：守护进程在运行吗？（systemctl status fleetmon）"
    config = tmp_path / "nowhere.yaml"
    status, _, err = await fleetmon(capsys, "workorder", "list", "-c", str(config))
    assert status == 1 and f"{config}: cannot read the config" in err


async def test_the_command_as_its_own_process_prints_a_table_when_piped(tmp_path, token_files):
    async with make_world(tmp_path) as w:
        await w.book.report(["CAM-0001"], by="张工", title="人民广场01号黑屏", ts_ns=time.time_ns() - 20 * 60 * S)
        env = {**os.environ, "PYTHONPATH": str(REPO), "FLEETMON_TOKEN": TOKENS["张工"]}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.app.cli", "workorder", "list", "--url", w.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "工单 1 个（未关闭）" in text and "人民广场01号黑屏" in text and "已报障" in text
    # Reported 20 min ago: the 15 min response clock (Qionglai) is the one shown, overdue.
    assert "响应 超时" in text


def test_check_config_counts_the_personal_tokens_and_their_roles(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FM_TOKEN_ZHANG", TOKENS["张工"])
    monkeypatch.setenv("FM_TOKEN_WANG", TOKENS["王经理"])
    config = tmp_path / "config.yaml"
    config.write_text(
        "inventory: {devices: [{id: C1, name: 东关, kind: camera, address: 198.18.0.1, site: s, region: r}]}\n"
        "api:\n  people:\n    - {name: 张工, token_env: FM_TOKEN_ZHANG, roles: [duty]}\n"
        "    - {name: 王经理, token_env: FM_TOKEN_WANG, roles: [manager]}\n", encoding="utf-8")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "  api: http://127.0.0.1:8080/, writes need a token (2 personal: duty 1, manager 1)" in out
    monkeypatch.setenv("FM_TOKEN_WANG", TOKENS["张工"])
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:2: api: people[1]: 王经理's token is the same as 张工's token" in err and TOKENS["张工"] not in err
