"""What every probe returns and the interface every probe implements.

Data flow: scheduler → Probe.probe(device) → ProbeResult → Pipeline.on_result
(monitor/app/pipeline.py): state tracker, rules, metrics writer. ProbeResult is frozen and
serialisable (to_dict/from_dict) so that remote probe agents can later ship results over MQTT
unchanged.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Mapping, Protocol, Self

from pydantic import BaseModel, Field

from monitor.core.config_base import Strict
from monitor.core.measurement import MeasurementSpec
from monitor.core.model import Basis, Device

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Series:
    """One more point of a probe result, for what a device has several of (a switch's ports,
    a server's disks): written to `measurement` with the device's tags plus `tags` (e.g.
    {"interface": "GigabitEthernet0/1"}), at the result's time. Read-only."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", types.MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "fields", types.MappingProxyType(dict(self.fields)))

    def to_dict(self) -> dict[str, Any]:
        return {"measurement": self.measurement, "tags": dict(self.tags), "fields": dict(self.fields)}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe of one device.

    - device_id: the inventory id of the probed device.
    - probe: registry name of the probe ("icmp", …).
    - ts_ns: UTC wall-clock time the probe started, nanoseconds since the Unix epoch.
    - ok: the device answered as the probe requires (ICMP: at least one echo reply).
    - reason: short English reason when not ok ("timeout", "host unreachable", …), else None.
    - fields: measurement fields, units in the names (rtt_avg_ms, loss_pct …) as the probe
      declares them in `Probe.measurements` for the measurement named like the probe (collected
      into monitor/metrics/schema.py); every probe's measurement has the boolean field `up`
      (= ok), so even a result the scheduler made up (caller timeout) can be written. Read-only.
    - series: further points of the same probe (per port, per disk …), see Series.
    - confirmations: re-probes the scheduler made after this probe missed (ConfirmConfig;
      0: none). A result stands for the device's scheduled probe: its fields are that probe's
      measurement, `ok`/`up` the verdict once confirmed. Not ok with n confirmations: 1 + n
      probes in a row failed (the state tracker counts them all towards `down_after`); ok with
      n: the n-th re-probe answered.
    """

    device_id: str
    probe: str
    ts_ns: int
    ok: bool
    reason: str | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    series: tuple[Series, ...] = ()
    confirmations: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", types.MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "series", tuple(self.series))

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "probe": self.probe,
            "ts_ns": self.ts_ns,
            "ok": self.ok,
            "reason": self.reason,
            "fields": dict(self.fields),
            "series": [s.to_dict() for s in self.series],
            "confirmations": self.confirmations,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProbeResult":
        return cls(
            device_id=str(data["device_id"]),
            probe=str(data["probe"]),
            ts_ns=int(data["ts_ns"]),
            ok=bool(data["ok"]),
            reason=data.get("reason"),
            fields=dict(data.get("fields") or {}),
            series=tuple(
                Series(str(s["measurement"]), dict(s.get("tags") or {}), dict(s.get("fields") or {}))
                for s in data.get("series") or ()
            ),
            confirmations=int(data.get("confirmations") or 0),
        )


class ConfirmConfig(Strict):
    """`confirm` of a probe's config (probes.icmp.confirm, …): confirmation probing.

    A device whose scheduled probe misses is probed again at once, then `spacing_s` apart, up
    to `count` times, stopping at the first answer (monitor.app.scheduler). The cycle's one
    result then carries the verdict: ok when a re-probe answered (a lost echo is not a
    failure), not ok with 1 + count failed probes when none did, which the state tracker
    counts towards `state.down_after` (consecutive failed probes), so a dead device is down
    seconds after its first miss instead of down_after cycles later.

    - count: re-probes after a miss (0–10; 0 = off).
    - spacing_s: pause between the end of one re-probe and the start of the next, s (0–60).
    - max_concurrent: devices being confirmed at once (1–100,000); a miss beyond it is passed
      on unconfirmed (it counts once towards down_after), so a whole site going dark adds at
      most this many devices' re-probes.
    Devices already failing are not re-probed (their misses confirm nothing new).
    """

    count: Annotated[int, Field(ge=0, le=10)] = 0
    spacing_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    max_concurrent: Annotated[int, Field(ge=1, le=100_000)] = 100

    def check_fits(self, interval_s: float, silent_probe_s: float) -> None:
        """For the probe config's own validator. Raises ValueError when `count` re-probes of a
        device that does not answer (`silent_probe_s` each: the probe's timeouts) with their
        spacing take more than half of `interval_s`: confirmations hold their cycle open, whose
        starts already take scheduler.spread (0.5 by default) of it, so a miss late in the
        cycle would make the next cycle be skipped."""
        worst = self.count * (silent_probe_s + self.spacing_s)
        if worst > interval_s / 2:
            raise ValueError(
                f"confirm: {self.count} re-probes of up to {silent_probe_s:g} s, {self.spacing_s:g} s apart, take up "
                f"to {worst:g} s, more than half of interval_s {interval_s:g}: fewer or closer re-probes"
            )


class Probe(Protocol):
    """A probe type. One instance serves every device of the fleet for that probe type and
    holds the shared resources (sockets, sessions, engines) between `__aenter__` and
    `__aexit__`.

    Contract:
    - `probe(device)` never raises because a target is dead, slow or talks garbage: it
      returns a ProbeResult with ok=False and a reason. It raises only on bugs.
    - The caller owns timeouts: it cancels `probe()` after `budget_s(device)` plus a margin;
      a probe must be safe to cancel at any await.
    """

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    measurements: ClassVar[tuple[MeasurementSpec, ...]]
    """Every measurement the probe's results write (the first one named like the probe);
    collected into monitor.metrics.schema."""
    basis: ClassVar[Basis | None]
    """The measured basis of "online" this probe's states feed (monitor.state.availability):
    icmp → network, onvif → service, rtsp and rtsp_frame → video; None for a probe whose
    results only give the rules values (snmp). probes.probes_of(basis) lists a basis' probes."""
    offers: ClassVar[tuple[str, ...]]
    """Hints for other probes: string fields of this probe's results that probes naming them
    in `learns` are given (onvif: "stream_uri", the camera's GetStreamUri answer). The daemon
    may hand them to listeners that are not probes as well (onvif: "serial", to the work
    orders' replacement proposals). Usually ()."""
    learns: ClassVar[tuple[str, ...]]
    """Hints this probe takes from other probes' results (rtsp, rtsp_frame: "stream_uri");
    a probe that learns any is a Learner. Usually ()."""

    def __init__(self, cfg: BaseModel) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def wants(self, device: Device) -> bool:
        """True when this probe polls `device` (by kind, config selector, credentials …).
        Called once per device at start; the daemon only hands wanted devices to probe()."""
        ...

    def budget_s(self, device: Device) -> float:
        """Longest time, in seconds, that probe(device) takes with this config."""
        ...

    async def probe(self, device: Device) -> ProbeResult: ...


class Starter(Probe, Protocol):
    """A probe that can also be started without a task (probes.icmp: the engine sends the paced
    echoes and ends each device from its reply and expiry callbacks, as fping does). The
    scheduler hands it each device of a cycle at its slot instead of a task, a timeout and a
    semaphore slot per device, the largest cost at 100,000 devices; `probe()` stays for one-off
    probes and confirmation re-probes."""

    def start(self, device: Device, on_done: Callable[[ProbeResult], None]) -> Callable[[], None] | None:
        """Begin probing `device`; `on_done(result)` (the result probe(device) would give)
        follows exactly once on the event loop, within budget_s(device) unless the loop itself
        is held up, or at once inside this call when nothing needs to be sent (then None is
        returned). Otherwise returns a cancel function: after it, on_done is never called and
        nothing of the device stays outstanding. Raises only on bugs, like probe()."""
        ...


class Learner(Probe, Protocol):
    """A probe whose `learns` is not empty: the daemon's pipeline hands it every value that a
    result (of a local probe, or later of a remote agent) offers for one of those hints."""

    def learn(self, device_id: str, hint: str, value: str) -> None:
        """Take `value` of `hint` (one of `learns`) for `device_id`. Never raises for a bad
        value: it is ignored (a hint is advice, the probe's own config stays valid)."""
        ...
