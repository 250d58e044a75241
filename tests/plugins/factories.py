"""Test data built in one place, so a change to the model is one change here.

- `device(id, kind, **fields)`: a `monitor.core.model.Device`; the name defaults to the id, the
  address to a fresh one of ADDRESSES, site and region to "s" and "r".
- `fault(n, **fields)`: a `rules.model.Fault` "F<n>", by default switch SW-<n> down (major, firing).
- `fault_event(n, event, **fault_fields)`: a `rules.model.FaultEvent` with outbox id `n` of fault(n).

Every field of the model can be given by keyword; a test names only what it is about.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from monitor.core.model import Device, IPAddress, Kind
from rules.model import EventKind, Fault, FaultEvent, FaultState, Severity

# RFC 2544's benchmarking block, as in the lab (lab/net.py POOL4): no real device is ever there.
ADDRESSES = ipaddress.ip_network("198.18.0.0/15")
_host_numbers = itertools.count()
_FRESH: Any = object()  # default of `address`: None is a point without one


def fresh_address() -> IPAddress:
    """The next host of ADDRESSES, round and round: unique within any test."""
    return ADDRESSES[1 + next(_host_numbers) % (ADDRESSES.num_addresses - 2)]


def device(
    id: str = "cam-1",
    kind: Kind | str = Kind.CAMERA,
    *,
    name: str | None = None,
    address: IPAddress | str | None = _FRESH,
    site: str = "s",
    region: str = "r",
    tags: Any = (),
    **fields: Any,
) -> Device:
    """A Device. `kind`: a Kind or its value; `address`: an address or its text, None for a
    point without one (removed), by default fresh_address(); `tags`: any iterable of str;
    `fields`: Device's other fields (parent, status, model, stream_url, uplink …)."""
    if address is _FRESH:
        address = fresh_address()
    elif isinstance(address, str):
        address = ipaddress.ip_address(address)
    return Device(id, id if name is None else name, Kind(kind), address, site, region,
                  tags=frozenset(tags), **fields)


def fault(n: int = 1, **fields: Any) -> Fault:
    """Fault "F<n>": by default device SW-<n:03d> down, major, firing, first seen at 10 ns and
    last at 20 ns; its scope follows `device_id` (None: the fleet). `fields`: Fault's fields."""
    device_id = fields.pop("device_id", f"SW-{n:03d}")
    defaults = {
        "id": f"F{n}",
        "rule": "switch-down",
        "kind": "device_down",
        "scope": "fleet" if device_id is None else f"device:{device_id}",
        "severity": Severity.MAJOR,
        "state": FaultState.FIRING,
        "title": f"交换机{device_id}离线",
        "first_seen_ns": 10,
        "last_seen_ns": 20,
        "device_id": device_id,
    }
    return Fault(**(defaults | fields))


def fault_event(n: int = 1, event: EventKind = EventKind.FIRING, *, ts_ns: int | None = None,
                **fault_fields: Any) -> FaultEvent:
    """Event `n` (the outbox id) of fault(n, **fault_fields), at `ts_ns` (default 30 + n). The
    fault of a RESOLVED event is resolved unless `state` says otherwise."""
    if event is EventKind.RESOLVED:
        fault_fields.setdefault("state", FaultState.RESOLVED)
    return FaultEvent(n, event, 30 + n if ts_ns is None else ts_ns, fault(n, **fault_fields))


_TYPES = {"boolean": (bool,), "integer": (int,), "float": (float,), "string": (str,)}


def schema_checked(result: Any) -> Any:
    """`result` (a ProbeResult), after checking its own point and every Series against the
    InfluxDB schema: declared measurement, tags and fields, and each field of its declared
    type (InfluxDB refuses a field whose type changes: an int where a float was written)."""
    from monitor.core.measurement import DEVICE_TAGS
    from monitor.metrics.schema import check

    points = [(result.probe, dict.fromkeys(DEVICE_TAGS, "x"), result.fields)]
    points += [(s.measurement, {**dict.fromkeys(DEVICE_TAGS, "x"), **s.tags}, s.fields) for s in result.series]
    for measurement, tags, fields in points:
        spec = check(measurement, tags, fields)
        for name, value in fields.items():
            wanted = _TYPES[spec.fields[name].type]
            ok = isinstance(value, wanted) and (bool in wanted or not isinstance(value, bool))
            assert ok, f"{measurement}.{name} = {value!r} is not {spec.fields[name].type}"
    return result
