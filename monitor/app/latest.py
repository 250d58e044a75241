"""Each device's latest result of one probe, held compactly: the pipeline keeps one per device
and probe for the snapshot (the API's device pages, the terminal view).

A ProbeResult costs ~540 bytes with its fields (the object, a dict of 9 ICMP fields, a read-only
proxy over it, a float object per RTT); kept as its time, verdict, confirmations and field values
packed into bytes (struct) beside the shape its probe's results take (field names and types, one
shared object per shape), ~210. Values that do not pack (text, an integer beyond 64 bits) are kept as a tuple. A
ProbeResult equal to the one stored is made again on each read. The snapshot reads these
objects themselves, not copies: a copy per cycle held the previous cycle's results while the
next cycle's arrived, every device's twice (docs/PERFORMANCE.md "## Memory").
"""

from __future__ import annotations

import struct
from typing import Any, Iterator, Mapping

from probes.base import ProbeResult

_Shape = tuple[tuple[str, ...], "struct.Struct | None"]
"""(field names in order, the Struct that packs ts_ns, ok, confirmations and their values; None:
kept as a tuple)"""

_Row = tuple["str | None", _Shape, "bytes | tuple", tuple]
"""(reason, shape, (ts_ns, ok, confirmations, *field values) packed (or a tuple), series): the
time, verdict and confirmations packed with the values, not objects of their own (~40 B a row)"""

_HEAD = "=q?q"  # ts_ns, ok, confirmations

_CODES = {bool: "?", int: "q", float: "d"}  # exact types only: a bool is no int here
_SHAPES: dict[tuple[tuple[str, ...], tuple[type, ...]], _Shape] = {}
"""Each shape once: the few that every probe's results take (ICMP: answered or not)."""


def _shape(names: tuple[str, ...], values: tuple[Any, ...]) -> _Shape:
    key = (names, tuple(map(type, values)))
    shape = _SHAPES.get(key)
    if shape is None:
        codes = [_CODES.get(t) for t in key[1]]
        packer = None if None in codes else struct.Struct(_HEAD + "".join(codes))  # type: ignore[arg-type]
        shape = _SHAPES.setdefault(key, (names, packer))
    return shape


class LatestResults(Mapping[str, ProbeResult]):
    """device id → the latest ProbeResult of `probe` put for it (a read-only Mapping; `put`
    stores)."""

    __slots__ = ("probe", "_rows")

    def __init__(self, probe: str) -> None:
        self.probe = probe
        self._rows: dict[str, _Row] = {}

    def put(self, result: ProbeResult) -> None:
        """Keep `result` as its device's latest (replacing the one before). Raises ValueError
        for a result of another probe."""
        if result.probe != self.probe:
            raise ValueError(f"a {result.probe} result among the {self.probe} results")
        fields = result.fields
        values = tuple(fields.values())
        shape = _shape(tuple(fields), values)
        packed: bytes | tuple = (result.ts_ns, result.ok, result.confirmations, *values)
        if shape[1] is not None and type(result.ok) is bool:
            try:
                packed = shape[1].pack(*packed)
            except struct.error:  # an integer beyond 64 bits
                pass
        self._rows[result.device_id] = (result.reason, shape, packed, result.series)

    def __getitem__(self, device_id: str) -> ProbeResult:
        reason, (names, packer), packed, series = self._rows[device_id]
        ts_ns, ok, confirmations, *values = packer.unpack(packed) if isinstance(packed, bytes) and packer is not None \
            else packed
        return ProbeResult(device_id, self.probe, ts_ns, ok, reason, dict(zip(names, values)), series, confirmations)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"LatestResults({self.probe!r}, {len(self._rows)} devices)"

