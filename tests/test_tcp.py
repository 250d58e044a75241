"""The TCP port check against real sockets on loopback: open, refused, and silent ports (a
listener whose accept queue is full drops further SYNs, so the connect times out)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import ValidationError

from probes.tcp import TcpConfig, TcpProbe
from tests.plugins.factories import device, schema_checked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts no connection and answers no SYN: listen(0) and a queue already full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # until a connect no longer completes: the queue is full
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()


async def test_open_refused_and_silent_ports_each_with_their_reason(silent_port):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    open_port, refused = server.sockets[0].getsockname()[1], free_port()
    config = TcpConfig(timeout_s=0.5, checks=[{"match": {"kind": ["platform"]}, "ports": [open_port, refused]},
                                              {"match": {"tags": ["sip"]}, "ports": [silent_port, open_port]}])
    loop = asyncio.get_running_loop()
    try:
        async with TcpProbe(config) as probe:
            target = device("plt", "platform", address="127.0.0.1", tags={"sip"})
            assert probe.ports_for(target) == (open_port, refused, silent_port)  # each once, config order
            started = loop.time()
            result = schema_checked(await probe.probe(target))
            took, budget = loop.time() - started, probe.budget_s(target)
            healthy = await probe.probe(device("p2", "platform", address="127.0.0.1"))
    finally:
        server.close()
    assert not result.ok
    assert result.reason == f"port {refused}: connection refused; port {silent_port}: timeout (0.5 s)"
    assert dict(result.fields)["ports_open"] == 1 and result.fields["ports_closed"] == 2
    by_port = {s.tags["port"]: dict(s.fields) for s in result.series}
    assert by_port[str(open_port)]["open"] is True and by_port[str(open_port)]["connect_ms"] > 0
    assert by_port[str(refused)] == {"open": False} and by_port[str(silent_port)] == {"open": False}
    assert took <= budget  # the ports are tried at once
    assert not healthy.ok and healthy.reason == f"port {refused}: connection refused"


async def test_all_ports_open_is_up():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with TcpProbe(TcpConfig(checks=[{"match": {}, "ports": [port]}])) as probe:
            result = await probe.probe(device("nvr1", "nvr", address="127.0.0.1"))
    finally:
        server.close()
    assert result.ok and result.reason is None and result.fields["connect_ms"] > 0


def test_devices_without_a_matching_check_are_not_polled():
    probe = TcpProbe(TcpConfig(checks=[{"match": {"kind": ["nvr"]}, "ports": [8000]}]))
    assert probe.wants(device("n", "nvr")) and not probe.wants(device("c", "camera"))
    assert not probe.wants(device("n2", "nvr", address=None))
    assert not TcpProbe(TcpConfig()).wants(device("n", "nvr"))


@pytest.mark.parametrize(("check", "message"), [
    ({"match": {}, "ports": []}, "at least 1 item"),
    ({"match": {}, "ports": [0]}, "greater than or equal to 1"),
    ({"match": {}}, "Field required"),
    ({"match": {}, "ports": [80], "port": 81}, "Extra inputs are not permitted"),
])
def test_bad_checks_are_refused(check, message):
    with pytest.raises(ValidationError, match=message):
        TcpConfig(checks=[check])
