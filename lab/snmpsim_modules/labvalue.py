"""snmpsim variation module `labvalue`: a value per agent endpoint that the lab changes at run
time, and counters that rise at a known rate.

snmpsim (lextudio 1.2) loads this file with exec() from `--variation-modules-dir` and calls
init/variate/shutdown. Stock modules cannot change one device of many that share a data file:
`writecache` and `sql` key their values by OID only, so a SET on one UPS would put every UPS of
the data file on battery. This module keys overrides by the agent endpoint the request came to: snmpsim numbers its
endpoints in command-line order and hands the number to variation modules as the transport
domain 1.3.6.1.6.1.1.N (UDP/IPv4; the agent's own address is not passed on).

Record syntax (data file):   OID|TAG:labvalue|value=V[,rate=R]
  value  the value at agent start (integer types: a number; strings as written);
  rate   per-second increase of integer types (counters, TimeTicks); wraps at 2^32, or 2^64
         for Counter64 (tag 70), like the real counter.
Overrides: SQLite file given as the module option (`--variation-module-options=labvalue:DB`),
table overrides(endpoint TEXT, oid TEXT, value TEXT, rate REAL, set_at REAL) with primary key
(endpoint, oid), endpoint the transport domain as dotted text; an override value rises from `set_at` (time.time()) at its own rate (NULL = the
record's). The table is re-read when another connection changed it (PRAGMA data_version), so
the lab's UPDATE shows at the next request. Read-only: SETs are refused (notWritable).
"""

import sqlite3
import time

STARTED = time.time()
WRAP = {"65": 1 << 32, "67": 1 << 32, "70": 1 << 64}  # Counter32, TimeTicks, Counter64
INTEGER_TAGS = {"2", "66", *WRAP}  # and Integer32, Gauge32
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS overrides (endpoint TEXT NOT NULL, oid TEXT NOT NULL, value TEXT NOT NULL,"
    " rate REAL, set_at REAL NOT NULL, PRIMARY KEY (endpoint, oid))"
)

_state = {"db": None, "version": None, "overrides": {}, "records": {}}


def init(**context):
    path = context.get("options") or ""
    if context.get("mode") == "variating" and path:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)
        _state["db"] = db


def _overrides():
    db = _state["db"]
    if db is None:
        return {}
    version = db.execute("PRAGMA data_version").fetchone()[0]
    if version != _state["version"]:
        rows = db.execute("SELECT endpoint, oid, value, rate, set_at FROM overrides").fetchall()
        _state["overrides"] = {(a, o): (v, r, t) for a, o, v, r, t in rows}
        _state["version"] = version
    return _state["overrides"]


def _record(value):
    settings = _state["records"].get(value)
    if settings is None:
        settings = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
        _state["records"][value] = settings
    return settings


def variate(oid, tag, value, **context):
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    if context["setFlag"]:
        return context["origOid"], tag, context["errorStatus"]
    settings = _record(value)
    base, rate, since = settings.get("value", ""), float(settings.get("rate", 0)), STARTED
    override = _overrides().get((str(context["transportDomain"]), str(oid)))
    if override is not None:
        base, since = override[0], override[2]
        if override[1] is not None:
            rate = override[1]
    type_tag = tag.split(":")[0]
    if type_tag not in INTEGER_TAGS:
        return oid, tag, base
    number = int(base) + int(rate * (time.time() - since))
    if type_tag in WRAP:
        number %= WRAP[type_tag]
    return oid, tag, str(number)


def shutdown(**context):
    if _state["db"] is not None:
        _state["db"].close()
        _state["db"] = None
