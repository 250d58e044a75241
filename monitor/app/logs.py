"""Logging set-up: one line per event, text for a terminal or JSON for journald/log shippers;
under systemd, each line prefixed with its syslog priority for journald.

Components log state changes, not individual probes; extra context goes in `extra=` keys
which both formats print.

Every library's records (aiohttp.server, aiohttp.access, asyncio, pysnmp, py.warnings …) go
through the same handler, warnings and above: with `log.format: json` each record is one JSON
object on one line, a traceback inside it ("exc"). Every line is redacted on its way out
(`redact`): a secret that slipped into a message, an exception or a library's line is not
written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

from monitor.app.config import LogConfig

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_SECRET_NAMES = r"(?:access_token|token|password|passwd|pwd|secret|api_key|apikey|key)"
_REDACTIONS = (
    # user:password@ in any URL (rtsp://admin:pw@cam/…, http://u:p@proxy): the user stays.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@'\"]*:)[^@\s/'\"]+@"), r"\1***@"),
    # Authorization headers, whatever the scheme: the quoted value (a repr, JSON), else the rest of the line.
    (re.compile(r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*)(['\"])[^'\"]*"), r"\1\2***"),
    (re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?!['\"])[^\r\n]+"), r"\1***"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 ***"),
    # name=value in query strings, forms and key=value text: token=, password=, key= (WeCom) …
    (re.compile(rf"(?i)(?<![A-Za-z0-9_])({_SECRET_NAMES})(=|%3D)[^&\s'\"<>,;]+"), r"\1\2***"),
    # "password": "…" in JSON or Python reprs.
    (re.compile(rf"(?i)(['\"]{_SECRET_NAMES}['\"]\s*:\s*['\"])[^'\"]*"), r"\1***"),
)


def redact(text: str) -> str:
    """`text` with secrets replaced by ***: the password of a URL's userinfo, Authorization
    header values, bearer/basic credentials, and the values of token=, access_token=,
    password=, passwd=, pwd=, secret=, api_key=, key= (as query parameters or key=value) and of
    such keys in JSON."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return redact("\n".join(parts)) if parts else None


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={redact(str(v))}" for k, v in extras.items())
        exc = _exception(self, record)
        if exc:
            line += "\n" + exc
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            **{
                k: redact(v) if isinstance(v, str) else v if isinstance(v, (int, float, bool, type(None)))
                else redact(str(v))
                for k, v in _extras(record).items()
            },
        }
        exc = _exception(self, record)
        if exc:
            doc["exc"] = exc
        return json.dumps(doc, ensure_ascii=False)  # newlines inside become \n: one line per record


class _Handler(logging.StreamHandler):
    """fleetmon's handler (a type of its own, so that setup() replaces only its own)."""


class JournalFormatter(logging.Formatter):
    """`inner`'s lines, each prefixed with the record's syslog priority as journald reads it
    from a service's stderr (sd-daemon(3): "<3>" error … "<7>" debug), so `journalctl -p err`
    finds errors; every line of a multi-line record gets it, since journald takes each line as
    an entry. Text lines drop their own timestamp: the journal stamps every entry."""

    PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self.PRIORITIES if record.levelno >= level), 7)
        text = self._inner.format(record)
        if isinstance(self._inner, TextFormatter):
            text = text.split(" ", 1)[1]
        return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


def under_journal(stream) -> bool:
    """Whether `stream` is the journal's stream of this service: $JOURNAL_STREAM ("DEV:INODE",
    set by systemd) names the same file (systemd.exec(5) says to compare, since a child whose
    stderr was redirected inherits the variable)."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


def setup(cfg: LogConfig, stream=None) -> None:
    """Route the `fleetmon` loggers (at the configured level) and every other library's
    warnings and errors (the root logger, Python warnings included) to `stream` (stderr by
    default) in the configured format, redacted, with journald's priority prefixes when
    `stream` is the journal (under_journal). Handlers others put on the root logger (a test's
    capture) stay."""
    stream = stream or sys.stderr
    handler = _Handler(stream)
    formatter: logging.Formatter = JsonFormatter() if cfg.format == "json" else TextFormatter()
    handler.setFormatter(JournalFormatter(formatter) if under_journal(stream) else formatter)
    ours = logging.getLogger("fleetmon")
    ours.handlers[:] = [handler]
    ours.setLevel(cfg.level.upper())
    ours.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelName(cfg.level.upper())))
    logging.captureWarnings(True)
