"""The platform checks inside the real daemon (in process, loopback only, no InfluxDB; ICMP on
raw sockets, hence root, as a deployment pings every device):
config sections and point-list columns reach the probes, results feed the service basis and the
rules, and the faults a duty engineer would get come out: a platform answering 503, a
certificate 10 days from expiry, a licence a month from renewal, an NVR with a failed disk and
a channel not recording."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from lab.certs import make_cert, server_context
from lab.isapi import Channel, Disk, IsapiSimulator, Nvr
from monitor.app.config import load_config
from monitor.app.daemon import Daemon
from monitor.app.snapshot import Snapshot
from monitor.fleet.inventory import load_inventory

EXPECTED = {
    ("platform-service-down", "device:PLT"): "平台视频平台网络正常但服务异常（http: HTTP 503 (expected 200)）",
    ("tls-expiry", "device:PLT/127.0.0.1:{tls}"): "平台视频平台的证书（127.0.0.1:{tls}）将于{date}到期，剩余9天",
    ("renewal-due", "renewal:平台授权"): "授权平台授权将于{soon}到期（剩余20天），请及时续费（负责：信息科）",
    ("nvr-disk", "device:NVR1/hdd2"): "录像机派出所录像机硬盘hdd2故障（smartFailed）",
    ("nvr-not-recording", "device:NVR1/2"): "录像机派出所录像机通道2未录像（最近没有录像）",
}

CONFIG = """\
inventory:
  allow_loopback: true      # the platform and NVR simulators listen on this host
  devices:
    - {{id: PLT, name: 视频平台, kind: platform, address: 127.0.0.1, site: 中心, region: 城区,
       url: "http://127.0.0.1:{http}/portal"}}
    - {{id: NVR1, name: 派出所录像机, kind: nvr, address: 127.0.0.2, site: 中心, region: 城区}}
  renewals:
    - {{name: 平台授权, expires: {soon}, what: licence, owner: 信息科, device: PLT}}
probes:
  icmp: {{interval_s: 5, mode: raw}}
  rtsp: {{enabled: false}}
  http: {{interval_s: 5}}
  tls: {{interval_s: 60, checks: [{{match: {{kind: [platform]}}, ports: [{tls}]}}]}}
  nvr: {{interval_s: 60, port: {nvr}, username: admin, password_env: FLEETMON_TEST_NVR_PASSWORD}}
scheduler: {{spread: 0}}
state: {{database: state.db, down_after: 1}}
influxdb: {{enabled: false}}
api: {{enabled: false}}
rules:
  - {{name: platform-service-down, type: video_down, basis: service, match: {{kind: [platform, nvr]}}}}
  - {{name: tls-expiry, type: tls_expiry}}
  - {{name: renewal-due, type: renewal_due}}
  - {{name: nvr-disk, type: nvr_disk}}
  - {{name: nvr-not-recording, type: nvr_not_recording}}
"""


pytestmark = pytest.mark.root


async def test_platform_faults_come_out_of_the_daemon(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEETMON_TEST_NVR_PASSWORD", "Hik12345")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_get("/portal", busy)
    http = web.AppRunner(app)
    await http.setup()
    await web.TCPSite(http, "127.0.0.1", 0).start()
    http_port = http.addresses[0][1]
    cert = make_cert(["127.0.0.1"], days=(-300, 9.5))
    tls = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context(cert, tmp_path))
    tls_port = tls.sockets[0].getsockname()[1]
    nvr = Nvr()
    now = nvr.local_now()
    nvr.disks = [Disk(1), Disk(2, status="smartFailed")]
    nvr.channels = [Channel(1, since=now - 40 * dt.timedelta(days=1)),
                    Channel(2, since=now - 40 * dt.timedelta(days=1), recording=False, stopped=now - dt.timedelta(days=2))]
    soon = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() + dt.timedelta(days=20)
    values = {"http": http_port, "tls": tls_port, "soon": soon.isoformat()}
    expected = {(rule, scope.format(**values)): title.format(**values, date=cert.cert.not_valid_after_utc.date())
                for (rule, scope), title in EXPECTED.items()}
    try:
        async with IsapiSimulator(nvr, host="127.0.0.2") as sim:
            config = tmp_path / "config.yaml"
            config.write_text(CONFIG.format(**values, nvr=sim.port), encoding="utf-8")
            cfg = load_config(config)
            stop = asyncio.Event()
            seen: dict[tuple[str, str], str] = {}

            def on_snapshot(snapshot: Snapshot) -> None:
                seen.update({(f.rule, f.scope): f.title for f in snapshot.open_faults})
                if expected.keys() <= seen.keys():
                    stop.set()

            await asyncio.wait_for(Daemon(cfg, load_inventory(cfg), on_snapshot=on_snapshot).run(stop), 40)
    finally:
        tls.close()
        await http.cleanup()
    assert {key: seen[key] for key in expected} == expected
    assert len(seen) == len(expected)  # nothing else: the recording channel, the good disk raise nothing
