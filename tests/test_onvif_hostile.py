"""The ONVIF probe against hostile devices (lab/onvif.py behaviours): each gives a clear reason,
within the probe's own budget, without reading more than max_response_bytes into memory."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest
from aiohttp import web

from lab.onvif import HUGE_BYTES, OnvifSimulator
from lab.process import free_ports
from probes.onvif import OnvifConfig, OnvifProbe
from tests.plugins.factories import device

PASSWORD = "Cam-pass-7731"
ENV = "FLEETMON_TEST_ONVIF_PASSWORD"
MAX_BYTES = 65_536


@pytest.mark.parametrize("behaviour, reason", [
    ("billion_laughs", "XML with DTD/entities refused"),
    ("huge", f"response too large (> {MAX_BYTES} bytes)"),
    ("slow_drip", "timeout"),
    ("garbage", "malformed XML"),
    ("hang", "timeout"),
    ("fault_all", "SOAP fault: env:Receiver: Internal error"),
])
async def test_hostile_device_gives_a_reason_within_budget(monkeypatch, behaviour, reason) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    config = {"default": {"password": PASSWORD},
              "devices": {"127.0.0.2": {"password": PASSWORD, "behaviour": behaviour}}}
    async with OnvifSimulator(config, hosts=("127.0.0.1", "127.0.0.2")) as sim:
        probe = OnvifProbe(OnvifConfig(port=sim.port, username="admin", password_env=ENV, timeout_s=1,
                                       max_response_bytes=MAX_BYTES))
        hostile = device("cam-h", name="恶意", address="127.0.0.2")
        healthy = device("cam-ok", name="正常", address="127.0.0.1")
        async with probe:
            assert (await probe.probe(healthy)).ok  # also loads the WSDLs (once per process), before tracing
            tracemalloc.start()
            try:
                # The scheduler cancels a probe after its budget: it must finish by itself before.
                result = await asyncio.wait_for(probe.probe(hostile), probe.budget_s(hostile))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            after = await probe.probe(healthy)  # the probe is still fine for the next device
    assert not result.ok and result.fields["up"] is False
    assert result.reason == reason
    assert PASSWORD not in str(result.to_dict())
    assert peak < HUGE_BYTES // 4  # never the whole multi-MB (or entity-expanded) answer in memory
    assert after.ok and after.fields["manufacturer"] == "HIKVISION"


async def test_slow_drip_is_cut_by_the_call_deadline_not_a_read_timeout(monkeypatch) -> None:
    """Bytes keep arriving (each within any per-read timeout), yet the call ends at timeout_s:
    the simulator saw one request and the probe stopped after it."""
    monkeypatch.setenv(ENV, PASSWORD)
    async with OnvifSimulator({"default": {"password": PASSWORD, "behaviour": "slow_drip"}}) as sim:
        probe = OnvifProbe(OnvifConfig(port=sim.port, username="admin", password_env=ENV, timeout_s=2.5))
        camera = device("cam-d", name="滴", address="127.0.0.1")
        async with probe:
            result = await asyncio.wait_for(probe.probe(camera), probe.budget_s(camera))
    assert result.reason == "timeout"
    assert sim.requests == {("127.0.0.1", "GetSystemDateAndTime"): 1}


@pytest.mark.parametrize("status, reason", [
    (404, "HTTP 404 Not Found (ONVIF service not enabled?)"),
    (401, "HTTP 401 Unauthorized (device wants HTTP authentication)"),
    (503, "HTTP 503 without SOAP answer"),
])
async def test_web_server_without_onvif(monkeypatch, status, reason) -> None:
    """A camera whose ONVIF service is off answers with its web server's error pages."""
    monkeypatch.setenv(ENV, PASSWORD)

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html><body>error</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    (port,) = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        probe = OnvifProbe(OnvifConfig(port=port, username="admin", password_env=ENV, timeout_s=2))
        camera = device("cam-w", name="网页", address="127.0.0.1")
        async with probe:
            result = await probe.probe(camera)
    finally:
        await runner.cleanup()
    assert not result.ok and result.reason == reason
