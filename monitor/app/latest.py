"""Each device's latest result of one probe, held compactly: the pipeline keeps one per device
and probe for the snapshot (the API's device pages, the terminal view).

A ProbeResult costs ~540 bytes with its fields (the object, a dict of 9 ICMP fields, a read-only
proxy over it); kept as a tuple of its values beside the field names its probe always uses
(one shared tuple per set of names), ~330. The snapshot holds the previous cycle's results
while the next cycle's arrive, so each byte saved counts twice: ~45 MB less at 100,000 devices
(docs/PERFORMANCE.md "## Memory"). A ProbeResult equal to the one stored is made again on each
read.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from probes.base import ProbeResult

_Row = tuple[int, bool, "str | None", tuple[str, ...], tuple, tuple, int]
"""(ts_ns, ok, reason, field names, their values in order, series, confirmations)"""

_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
"""Each set of field names once: the few shapes every probe's results take."""


class LatestResults(Mapping[str, ProbeResult]):
    """device id → the latest ProbeResult of `probe` put for it (a read-only Mapping; `put`
    stores, `copy` is a snapshot that later puts leave alone)."""

    __slots__ = ("probe", "_rows")

    def __init__(self, probe: str, rows: dict[str, _Row] | None = None) -> None:
        self.probe = probe
        self._rows: dict[str, _Row] = rows if rows is not None else {}

    def put(self, result: ProbeResult) -> None:
        """Keep `result` as its device's latest (replacing the one before). Raises ValueError
        for a result of another probe."""
        if result.probe != self.probe:
            raise ValueError(f"a {result.probe} result among the {self.probe} results")
        fields = result.fields
        names = tuple(fields)
        names = _NAMES.setdefault(names, names)
        self._rows[result.device_id] = (
            result.ts_ns, result.ok, result.reason, names, tuple(fields.values()), result.series, result.confirmations
        )

    def copy(self) -> LatestResults:
        return LatestResults(self.probe, dict(self._rows))

    def __getitem__(self, device_id: str) -> ProbeResult:
        ts_ns, ok, reason, names, values, series, confirmations = self._rows[device_id]
        return ProbeResult(device_id, self.probe, ts_ns, ok, reason, dict(zip(names, values)), series, confirmations)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"LatestResults({self.probe!r}, {len(self._rows)} devices)"


def latest_of(results: Mapping[str, LatestResults]) -> dict[str, LatestResults]:
    """A snapshot's copy of every probe's latest results."""
    return {probe: latest.copy() for probe, latest in results.items()}
