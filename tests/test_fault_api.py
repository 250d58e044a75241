"""Issue 13, the HTTP API under slow, idle and hostile clients, against the real daemon
(`fleetmon run` as its own process, RLIMIT_NOFILE lowered to 128, `log.format: json`) and the
lab's GStreamer RTSP camera (lab/faults_api.py): 100 slowloris connections and 20 idle ones are
closed within the timeouts while /healthz answers and the camera's RTSP checks stay ok; 1,000
refused writes make two log lines; tokens in URLs are refused; every log line is one JSON
object and holds no secret. Figures: bench/faults/api.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from lab.faults_api import SECRETS, Scenario, parse_json_lines, refusal_lines, run_scenario
from monitor.app.api_guard import CAP_MAX, AcceptErrors, Guard, connection_cap
from monitor.app.config import LogConfig
from monitor.app import logs

pytestmark = pytest.mark.peer  # the GStreamer RTSP server

SLACK_S = 1.5  # scheduling on 2 busy cores


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return run_scenario(tmp_path_factory.mktemp("fault-api"), slow=100, idle=20, refused=1000)


def test_slowloris_and_idle_connections_are_closed_within_the_timeouts(scenario: Scenario) -> None:
    slow, idle = scenario.attack.slow, scenario.attack.idle
    assert len(slow) == 100 and len(idle) == 20
    held = [c for c in slow if not c.refused]
    assert held, "no slow connection got in: the test proves nothing"
    assert all(c.lifetime_s is not None for c in slow + idle if not c.refused), "a connection was still open"
    assert max(c.lifetime_s for c in held) <= scenario.header_timeout_s + SLACK_S  # type: ignore[type-var]
    idle_held = [c for c in idle if not c.refused]
    assert idle_held and max(c.lifetime_s for c in idle_held) <= max(  # type: ignore[type-var]
        scenario.header_timeout_s, scenario.idle_timeout_s) + SLACK_S
    # One address holds a quarter of the cap (32 of 128 descriptors): the rest answered 503 at once.
    assert len(held) <= 8 and sum(c.refused for c in slow) >= 92
    assert scenario.fds[1] <= scenario.fds[0] + 4  # nothing left open behind


def test_healthz_and_the_cameras_rtsp_checks_keep_working(scenario: Scenario) -> None:
    watched = scenario.attack.watched
    assert watched.health_failed == [] and watched.health_ok >= 5
    rtsp = [key for key in watched.results if key[0] == "rtsp"]
    assert len(rtsp) >= 3, watched.results
    assert watched.failed_results == []


def test_refused_requests_are_counted_not_logged_one_by_one(scenario: Scenario) -> None:
    assert scenario.flood == {401: 1000}
    lines = refusal_lines(parse_json_lines(scenario.log_lines))
    # The first in full (reason, address), then one count at the end of the minute (here: at stop).
    assert len(lines) == 2, lines
    assert lines[0]["msg"].startswith("refused POST /api/v1/faults/F0/ack from 127.0.0.3: wrong token")
    assert "refused requests from" in lines[1]["msg"]


def test_tokens_in_urls_are_refused(scenario: Scenario) -> None:
    # /status?token=, ?token= with a bearer header, ?access_token= on a GET-only route (405 first),
    # a POST with ?token=, then two requests aiohttp's parser refuses.
    assert scenario.leaks == [400, 400, 405, 400, 400, 400]


def test_every_log_line_is_one_json_object_without_secrets_or_tracebacks(scenario: Scenario) -> None:
    assert scenario.exit_code == 0
    docs = parse_json_lines(scenario.log_lines)
    text = "\n".join(scenario.log_lines)
    for secret in SECRETS:
        assert secret not in text, secret
    assert not [d for d in docs if "exc" in d], "a traceback in the log"
    # Under a loaded machine the kernel may hand over a burst of connections faster than the cap
    # closes them, and accept() meets EMFILE: that is said once, summed up, never as a storm.
    emfile = [line for line in scenario.log_lines if "Too many open files" in line]
    assert len(emfile) <= 2 and all("counted, not logged each time" in line or "failed" in line for line in emfile), emfile
    assert len(docs) < 40, len(docs)  # a storm would be thousands
    bad = [d for d in docs if d["logger"] == "aiohttp.server"]
    assert bad and all(d["level"] == "warning" and "bad request from" in d["msg"] for d in bad)
    assert any("password=***" in d["msg"] for d in docs) or len(bad) == 1  # the parser's echo, redacted


# --- the parts, without the daemon ----------------------------------------------------------------


@pytest.mark.parametrize(("configured", "soft", "cap"), [
    (None, 1024, 256), (None, 128, 32), (None, 8, 4), (None, 65536, CAP_MAX), (50, 128, 50),
])
def test_the_connection_cap_leaves_three_quarters_of_the_descriptors(configured, soft, cap) -> None:
    assert connection_cap(configured, soft) == cap
    assert Guard(cap, 1.0).per_address == max(1, cap // 4)


@pytest.mark.parametrize(("line", "kept", "gone"), [
    ("GET /api/v1/x?token=abc123secret&lang=en", "token=***&lang=en", "abc123secret"),
    ("rtsp://admin:Cam%21pw@10.0.0.1:554/Streaming", "rtsp://admin:***@10.0.0.1", "Cam%21pw"),
    ("Authorization: Digest username=\"admin\", response=\"f00d\"", "Authorization: ***", "f00d"),
    ("headers {'Authorization': 'Bearer tok-1234567'}", "'Authorization': '***", "tok-1234567"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx", "key=***", "693a91f6"),
    ('{"password": "hunter22", "user": "a"}', '"password": "***"', "hunter22"),
    ("password=hunter22 user=a", "password=*** user=a", "hunter22"),
])
def test_redact(line: str, kept: str, gone: str) -> None:
    out = logs.redact(line)
    assert kept in out and gone not in out, out


def test_library_records_and_tracebacks_make_one_json_line_each() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("fleetmon").handlers[:])
    try:
        logs.setup(LogConfig(format="json"), stream)
        try:
            raise ValueError("bad url rtsp://u:s3cret@cam/ and\nsecond line")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request ?token=s3cret")
        logging.getLogger("asyncio").warning("multi\nline")
        logging.getLogger("aiohttp.access").info("below warning: dropped")
    finally:
        root.handlers[:], _ = before[0], root.setLevel(before[1])
        logging.getLogger("fleetmon").handlers[:] = before[2]
        logging.captureWarnings(False)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "s3cret" not in stream.getvalue()
    first, second = (json.loads(line) for line in lines)
    assert first["logger"] == "aiohttp.server" and "ValueError" in first["exc"] and "token=***" in first["msg"]
    assert second == {**second, "logger": "asyncio", "msg": "multi\nline", "level": "warning"}


async def test_accept_errors_are_counted_without_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    handler = AcceptErrors(previous)
    loop.set_exception_handler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(1000):  # what asyncio reports when accept() fails (base_events/selector_events)
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})
        loop.call_exception_handler({"message": "something else", "exception": RuntimeError("x")})
    finally:
        loop.set_exception_handler(previous)
    accept = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(accept) == 1 and accept[0].exc_info is None and "Too many open files" in accept[0].getMessage()
    assert handler.summary() == "accept() failed 1000 times (OSError: [Errno 24] Too many open files)"
    assert any(r.getMessage() == "something else" for r in caplog.records)  # others go on as before
