"""The pysnmp side of the SNMP probe (probes.snmp.SnmpProbe): one pysnmp 7.1 SnmpEngine with
its command generators, the GET and GETBULK requests, table walks and the decoding of pysnmp
values into plain ints, texts and OIDs.

Imported by SnmpProbe.__aenter__ only, never at module level: pysnmp and pyasn1 cost about
20 MB of RSS at import, which a daemon that polls no device by SNMP must not pay. What it shares
with probes.snmp (credentials, failures, poll data) is in probes/snmp_model.py: it imports
nothing back from probes.snmp.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import AbstractSet, Any, Sequence

from pyasn1.type import univ
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import auth as hlauth
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.hlapi.v3arch.asyncio.transport import Udp6TransportTarget, UdpTransportTarget
from pysnmp.proto import errind, rfc1902, rfc1905

from probes.snmp_mibs import Obj, Oid, Row, Table
from probes.snmp_model import Poll, SnmpAuth, SnmpFailure, TableData

_TIMEOUT_INDICATIONS = (errind.RequestTimedOut,)

_EXCEPTIONS = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)


def _indication_reason(indication: object, version: str) -> str:
    if isinstance(indication, _TIMEOUT_INDICATIONS):
        return "timeout (agent down or wrong community)" if version == "2c" else "timeout"
    # pysnmp's texts for v3 reports (usmStatsWrongDigests → "Wrong SNMP PDU digest", unknown
    # user, decryption error, …) and local errors; they carry no keys.
    return f"SNMP error: {indication}"


@dataclass
class Response:
    varbinds: Sequence[tuple[Any, Any]]
    mono_s: float


def decode(value: Any, kind: str) -> tuple[int | str | Oid | None, int | None]:
    """(decoded value, counter bits) of a pysnmp value for a MIB object of `kind`; (None, None)
    when it has another type (the result's reason names it) or is an SNMP exception."""
    if isinstance(value, rfc1902.Counter64) or isinstance(value, rfc1902.Counter32):
        bits = 64 if isinstance(value, rfc1902.Counter64) else 32
        return (int(value), bits) if kind == "counter" else (None, None)
    if isinstance(value, rfc1902.TimeTicks):
        return (int(value), None) if kind == "ticks" else (None, None)
    if isinstance(value, (rfc1902.IpAddress, rfc1902.Opaque)):
        return None, None
    if isinstance(value, univ.Integer):
        return (int(value), None) if kind in ("int", "number") else (None, None)
    if isinstance(value, univ.OctetString):
        text = bytes(value.asOctets()).decode("utf-8", "replace")
        if kind == "number":
            return _number(text), None
        return (text, None) if kind == "text" else (None, None)
    if isinstance(value, univ.ObjectIdentifier):
        return (tuple(value), None) if kind == "oid" else (None, None)
    return None, None


def _number(text: str) -> int | float | None:
    """A decimal STRING as a number ("50.0" → 50.0, "229" → 229); None for anything else
    (LIEBERT-GP-FLEXIBLE-MIB's lgpFlexibleEntryValue carries numbers as text)."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Target:
    addr_name: str
    context: str
    version: str


class SnmpClient:
    """The shared SnmpEngine and its command generators; one instance per probe. Requests
    raise probes.snmp_model.SnmpFailure when the agent gives no usable answer."""

    def __init__(self) -> None:
        self.engine = SnmpEngine()
        self._lcd = CommandGeneratorLcdConfigurator()
        self._get = cmdgen.GetCommandGenerator()
        self._bulk = cmdgen.BulkCommandGeneratorSingleRun()
        self._targets: dict[tuple, Target] = {}

    async def target(self, address: str, ipv6: bool, port: int, auth: SnmpAuth, timeout_s: float, retries: int) -> Target:
        """Configure (once) the engine's address and security entries for an agent."""
        key = (address, port, id(auth), timeout_s, retries)
        target = self._targets.get(key)
        if target is None:
            cls = Udp6TransportTarget if ipv6 else UdpTransportTarget
            transport = await cls.create((address, port), timeout=timeout_s, retries=retries)
            if auth.version == "2c":
                assert auth.community is not None
                data: Any = hlauth.CommunityData(auth.community.get_secret_value(), mpModel=1)
            else:
                auth_protocol, priv_protocol = auth.pysnmp_protocols()
                data = hlauth.UsmUserData(
                    auth.user,
                    authKey=auth.auth_key.get_secret_value() if auth.auth_key else None,
                    privKey=auth.priv_key.get_secret_value() if auth.priv_key else None,
                    authProtocol=auth_protocol,
                    privProtocol=priv_protocol,
                )
            addr_name, _params = self._lcd.configure(self.engine, data, transport, auth.context)
            target = self._targets[key] = Target(addr_name, auth.context, auth.version)
        return target

    def _request(self, target: Target, send: Any) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()

        def done(engine, handle, indication, status, index, varbinds, ctx) -> None:  # noqa: ANN001
            if future.done():  # the caller was cancelled (scheduler timeout, deadline)
                return
            if indication:
                future.set_exception(SnmpFailure(_indication_reason(indication, target.version)))
            elif status:
                where = f" at varbind {int(index)}" if index else ""
                future.set_exception(SnmpFailure(f"agent error {status.prettyPrint()}{where}"))
            else:
                future.set_result(Response(varbinds, time.monotonic()))

        send(done)
        return future

    async def get(self, target: Target, oids: Sequence[Oid]) -> Response:
        """One GET of `oids` (callers keep them to GET_CHUNK: small agents answer tooBig or
        nothing to larger requests)."""
        varbinds = [(rfc1902.ObjectName(o), univ.Null("")) for o in oids]
        return await self._request(target,
            lambda done: self._get.send_varbinds(self.engine, target.addr_name, None, target.context, varbinds, done))

    async def bulk(self, target: Target, oids: Sequence[Oid], max_repetitions: int) -> Response:
        varbinds = [(rfc1902.ObjectName(o), univ.Null("")) for o in oids]
        return await self._request(target, lambda done: self._bulk.send_varbinds(
            self.engine, target.addr_name, None, target.context, 0, max_repetitions, varbinds, done))

    @staticmethod
    def read_scalars(objs: Sequence[Obj], response: Response, poll: Poll, missing: list[str] | None = None,
                     quiet: AbstractSet[str] = frozenset()) -> Row:
        """The decoded values of a GET's answer by object name (several objects may share an
        OID); what is of the wrong type is recorded in `poll` (for the reason) and left out, and
        so is what the agent does not have, except for the objects named in `quiet`: their names
        go to `missing` (a device profile's objects: whether they count as missing depends on
        what else answered)."""
        values: Row = {}
        by_oid: dict[Oid, list[Obj]] = {}
        for o in objs:
            by_oid.setdefault(o.oid, []).append(o)
        for name, value in response.varbinds:
            found = by_oid.get(tuple(name))
            if found is None:
                poll.problem("GET answered with an OID that was not asked for")
                continue
            for obj in found:
                if isinstance(value, _EXCEPTIONS):
                    if obj.name in quiet and missing is not None:
                        missing.append(obj.name)
                        continue
                    exception = type(value).__name__  # NoSuchObject → noSuchObject (RFC 3416 names)
                    poll.bad_object(f"{exception[0].lower()}{exception[1:]} for", obj.name)
                    continue
                decoded, _bits = decode(value, obj.kind)
                if decoded is None:
                    poll.bad_object("wrong type for", f"{obj.name} ({type(value).__name__})")
                    continue
                values[obj.name] = decoded
        return values

    async def walk(self, target: Target, table: Table, max_repetitions: int, max_rows: int, poll: Poll,
                   slots: asyncio.Semaphore, data: TableData, expected_rows: int | None = None) -> None:
        """GETBULK walk of the table's columns side by side (RFC 3416 §4.2.3), until every column
        left its subtree, `max_rows` rows are read, or a request fails (then what was read is kept
        and the reason recorded in `poll`). A column whose OIDs do not increase is ended (a broken
        agent would loop). Bounded: each request advances at least one column or ends it. Rows go
        into `data` as they come, so a caller that cancels the walk keeps what was read.
        `expected_rows` (the table's size hint, e.g. ifNumber) sizes max-repetitions to the rows
        still expected plus one, which sees the end of a small table in one request."""
        last = {c.name: c.oid for c in table.columns}
        active = list(table.columns)
        while active:
            if len(data.rows) >= max_rows:
                poll.problem(f"{table.name}: stopped at max_rows {max_rows}")
                break
            repetitions = max_repetitions
            if expected_rows is not None and expected_rows >= 0:
                repetitions = max(1, min(max_repetitions, expected_rows - len(data.rows) + 1))
            try:
                async with slots:
                    response = await self.bulk(target, [last[c.name] for c in active], repetitions)
            except SnmpFailure as exc:
                poll.problem(f"{table.name}: {exc}")
                break
            poll.varbinds += len(response.varbinds)
            if not response.varbinds:
                poll.problem(f"{table.name}: empty response")
                break
            ended: set[str] = set()
            advanced = False
            width = len(active)
            for i, (name, value) in enumerate(response.varbinds):
                column = active[i % width]
                if column.name in ended:
                    continue
                oid_ = tuple(name)
                prefix = column.oid
                if isinstance(value, _EXCEPTIONS) or oid_[: len(prefix)] != prefix or len(oid_) == len(prefix):
                    ended.add(column.name)
                    continue
                if oid_ <= last[column.name]:
                    poll.problem(f"{table.name}: agent returned non-increasing OIDs")
                    ended.add(column.name)
                    continue
                last[column.name] = oid_
                advanced = True
                index = oid_[len(prefix):]
                decoded, bits = decode(value, column.kind)
                if index not in data.rows:
                    if len(data.rows) >= max_rows:
                        continue
                    data.rows[index] = {}
                    data.times[index] = response.mono_s
                if decoded is None:
                    poll.bad_object(f"{table.name}: wrong type for", f"{column.name} ({type(value).__name__})")
                    continue
                data.rows[index][column.name] = decoded
                if bits is not None:
                    data.bits.setdefault(index, {})[column.name] = bits
            active = [c for c in active if c.name not in ended]
            if not advanced and active:
                poll.problem(f"{table.name}: agent made no progress")
                break

    def close(self) -> None:
        self.engine.close_dispatcher()
