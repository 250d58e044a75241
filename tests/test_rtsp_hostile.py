"""Hostile and broken cameras: in-test asyncio peers on 127.0.0.1 written to misbehave on
purpose. Each case asserts the probe's reason and that it returned within its own budget
(budget_s, what the scheduler allows), never a speed target."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from probes.rtsp import RtspConfig, RtspProbe
from tests.plugins.factories import device

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CAMERA = device("cam-h", address="127.0.0.1")
TIMEOUT_S = 1.0
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n"


async def read_request(reader: asyncio.StreamReader) -> str:
    """The CSeq of the next request (raises IncompleteReadError when the probe hung up)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"cseq:"):
            return line.split(b":", 1)[1].strip().decode()
    return "0"


def ok_options(cseq: str) -> bytes:
    return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n".encode()


async def run_against(handler: Handler, **cfg: object) -> tuple[object, float, float]:
    """Probe a camera served by `handler`; returns (result, elapsed s, budget s)."""
    tasks: set[asyncio.Task] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = RtspConfig(port=port, timeout_s=TIMEOUT_S, **cfg)
    probe = RtspProbe(config)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        result = await probe.probe(CAMERA)
        elapsed = loop.time() - started
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result, elapsed, probe.budget_s(CAMERA)


def check(result, elapsed: float, budget: float, reason: str) -> None:
    assert (result.ok, result.reason, result.fields["up"]) == (False, reason, False)
    assert elapsed < budget


async def test_garbage_bytes() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 100)
        await asyncio.sleep(30)

    check(*await run_against(handler), "not an RTSP response")


async def test_http_server_is_not_rtsp() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(30)

    check(*await run_against(handler), "not an RTSP response")


async def test_endless_headers() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"RTSP/1.0 200 OK\r\n")
        for i in range(1_000_000):  # bounded; the probe hangs up long before
            writer.write(f"X-Header-{i}: {'x' * 20}\r\n".encode())
            await writer.drain()

    check(*await run_against(handler), "too many headers (> 64)")


async def test_one_endless_header_line() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"RTSP/1.0 200 OK\r\nX-Long: ")
        for _ in range(100_000):
            writer.write(b"y" * 4096)
            await writer.drain()

    check(*await run_against(handler), "response too large (> 65536 bytes)")


async def test_endless_body() -> None:
    async def handler(reader, writer):
        writer.write(ok_options(await read_request(reader)))
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 999999999999\r\n\r\n".encode())
        for _ in range(100_000):
            writer.write(b"z" * 4096)
            await writer.drain()

    check(*await run_against(handler), "SDP too large (> 16384 bytes)")


async def test_oversized_sdp() -> None:
    body = SDP + b"a=x-junk:" + b"j" * 20000 + b"\r\n"

    async def handler(reader, writer):
        writer.write(ok_options(await read_request(reader)))
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await asyncio.sleep(30)

    check(*await run_against(handler), "SDP too large (> 16384 bytes)")
    # Within the limits the same SDP is fine.
    result, _, _ = await run_against(handler, limits={"max_sdp_bytes": 32768})
    assert result.ok and result.fields["video_codec"] == "H265" and result.fields["sdp_bytes"] == len(body)


async def test_slow_drip_is_cut_by_the_request_deadline() -> None:
    response = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"

    async def handler(reader, writer):
        await read_request(reader)
        for byte in response:  # one byte every 0.2 s: each read succeeds, the whole never ends in time
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)

    check(*await run_against(handler), "no complete response within 1 s")


async def test_accepts_and_never_answers() -> None:
    async def handler(reader, writer):
        await asyncio.sleep(30)

    check(*await run_against(handler), "no complete response within 1 s")


async def test_closes_mid_response() -> None:
    async def handler(reader, writer):
        writer.write(ok_options(await read_request(reader)))
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len(SDP)}\r\n\r\n".encode() + SDP[:20])
        await writer.drain()

    check(*await run_against(handler), "connection closed by camera (incomplete response)")


async def test_closes_mid_headers() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n")
        await writer.drain()

    check(*await run_against(handler), "connection closed by camera")


async def test_closes_at_once() -> None:
    async def handler(reader, writer):
        pass

    result, elapsed, budget = await run_against(handler)
    # Closing with our request unread makes the kernel send RST instead of FIN when the request
    # got there first: either is a camera that hung up.
    assert result.reason in ("connection closed by camera", "connection reset by camera")
    assert elapsed < budget


async def test_reset() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        writer.transport.abort()

    result, elapsed, budget = await run_against(handler)
    assert result.reason in ("connection reset by camera", "connection closed by camera")
    assert elapsed < budget


async def test_no_video_media() -> None:
    audio = b"v=0\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"

    async def handler(reader, writer):
        writer.write(ok_options(await read_request(reader)))
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len(audio)}\r\n\r\n".encode() + audio)
        await asyncio.sleep(30)

    check(*await run_against(handler), "no video media in SDP")


async def test_rtsp2_status_line_and_folded_headers_accepted() -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"RTSP/2.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS,\r\n DESCRIBE\r\n\r\n")
        cseq = await read_request(reader)
        writer.write(f"RTSP/2.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len(SDP)}\r\n\r\n".encode() + SDP)
        await asyncio.sleep(30)

    result, _, _ = await run_against(handler)
    assert result.ok, result.reason
    assert result.fields["status_code"] == 200 and result.fields["video_codec"] == "H265"


async def test_options_not_implemented_still_describes() -> None:
    async def handler(reader, writer):
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n".encode())
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len(SDP)}\r\n\r\n".encode() + SDP)
        await asyncio.sleep(30)

    result, _, _ = await run_against(handler)
    assert result.ok, result.reason


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"RTSP/1.0 200 OK\r\nCSeq: 77\r\n\r\n", "response CSeq does not match the request"),
        (b"RTSP/3.0 200 OK\r\nCSeq: 1\r\n\r\n", "unsupported RTSP version 3.0"),
        (b"RTSP/1.0 200 OK\r\nno colon here\r\n\r\n", "malformed RTSP header"),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n", "invalid Content-Length"),
        (b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: NTLM\r\n\r\n",
         "401 Unauthorized (no credentials configured)"),
        (b"RTSP/1.0 599 \xff\xfeWeird\x00 Thing\r\nCSeq: 1\r\n\r\n", None),
    ],
)
async def test_malformed_first_response(response: bytes, reason: str | None) -> None:
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(response)
        cseq = await read_request(reader)  # only the 599 case gets this far
        writer.write(f"RTSP/1.0 599 Weird\x00 Thing\r\nCSeq: {cseq}\r\n\r\n".encode())
        await asyncio.sleep(30)

    result, elapsed, budget = await run_against(handler)
    check(result, elapsed, budget, reason or "599 Weird Thing")


async def test_unsupported_auth_scheme_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FM_TEST_CAM_PW", "pw")

    async def handler(reader, writer):
        cseq = await read_request(reader)
        writer.write(f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Negotiate\r\n\r\n".encode())
        await asyncio.sleep(30)

    check(*await run_against(handler, username="u", password_env="FM_TEST_CAM_PW"),
          "401 Unauthorized (no supported authentication scheme)")


async def test_connect_timeout() -> None:
    # A listener that never accepts, its backlog full: further SYNs are dropped, connect() hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        probe = RtspProbe(RtspConfig(port=port, timeout_s=TIMEOUT_S))
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await probe.probe(CAMERA)
        check(result, loop.time() - started, probe.budget_s(CAMERA), "connect timeout")
    finally:
        for s in (*fillers, listener):
            s.close()


async def test_cancel_mid_probe_leaves_nothing_open() -> None:
    """The scheduler cancels a probe at its budget; the connection must be gone at once."""
    closed = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        await reader.read()  # returns when the probe's side is closed
        closed.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    probe = RtspProbe(RtspConfig(port=server.sockets[0].getsockname()[1], timeout_s=30))
    task = asyncio.create_task(probe.probe(CAMERA))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 5)
    server.close()
    assert closed.is_set()
