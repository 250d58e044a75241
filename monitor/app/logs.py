"""Logging set-up: one line per event, text for a terminal or JSON for journald/log shippers;
under systemd, each line prefixed with its syslog priority for journald.

Components log state changes, not individual probes; extra context goes in `extra=` keys
which both formats print.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from monitor.app.config import LogConfig

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **{k: v if isinstance(v, (int, float, bool, str, type(None))) else str(v) for k, v in _extras(record).items()},
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


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
    """Route the `fleetmon` loggers to `stream` (stderr by default) in the configured format,
    with journald's priority prefixes when `stream` is the journal (under_journal)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = JsonFormatter() if cfg.format == "json" else TextFormatter()
    handler.setFormatter(JournalFormatter(formatter) if under_journal(stream) else formatter)
    root = logging.getLogger("fleetmon")
    root.handlers[:] = [handler]
    root.setLevel(cfg.level.upper())
    root.propagate = False
