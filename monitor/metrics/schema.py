"""The InfluxDB schema: a contract with the Grafana dashboards and the reports.

Every point fleetmon writes goes through `point()`, which refuses undeclared measurements,
tags and fields; docs/SCHEMA.md is generated from this module and a test keeps both equal.
Tags are low-cardinality labels; units are in the field names.
"""

from __future__ import annotations

from typing import Mapping

from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec

OPEN_ORDER_SLOTS = 50
"""Slots of the `work_order_open` snapshot: the most urgent orders a wall can show, and a bound
on the measurement's series."""


def _probe_measurements() -> tuple[MeasurementSpec, ...]:
    # Imported here: probe modules import monitor.core.measurement, never this module.
    from probes import REGISTRY
    from probes.traps import TRAP_MEASUREMENT

    return (*(m for probe in REGISTRY.values() for m in probe.measurements), TRAP_MEASUREMENT)


MEASUREMENTS: dict[str, MeasurementSpec] = {
    m.name: m
    for m in (
        *_probe_measurements(),
        MeasurementSpec(
            "device_state",
            "State of a device at the end of a cycle of a probe that settles a basis (after hysteresis and "
            "topology): the probe's basis and `online`, for the devices it polls; written when the state changes, "
            "while and right after a maintenance window, and otherwise every `influxdb.state_refresh_cycles` "
            "cycles (default 10), so query it with last() over a range longer than that.",
            {**DEVICE_TAGS, "basis": "online (what the contract counts) | network (icmp) | service (onvif, http, tcp, nvr) | video (rtsp) | picture (rtsp_frame's vqd verdict, 画面正常)"},
            {
                "state": FieldSpec("string", "", "up | down | unreachable (parent down) | unknown (not yet decided)"),
                "online": FieldSpec("integer", "0/1", "1 when state is up"),
                "counted": FieldSpec("integer", "0/1", "1 when the device counts towards online rates (status active)"),
                "name": FieldSpec("string", "", "the device's name from the point list (点位名称), what people read"),
                "maintenance": FieldSpec("string", "", "the reason of the maintenance window (维护) the device is in; '' when none (always written, so last() never shows an ended window)"),
                "lat": FieldSpec("float", "°", "latitude (WGS 84) from the point list; absent when it has none"),
                "lon": FieldSpec("float", "°", "longitude (WGS 84) from the point list; absent when it has none"),
            },
        ),
        MeasurementSpec(
            "online_rate",
            "Online rate (在线率) of a group of active devices, per basis, at the end of every probe cycle.",
            {
                "scope": "fleet | region | site",
                "group": "name of the region or site; 'all' for the fleet",
                "kind": "device kind, or 'all' for every kind",
                "basis": "online (the contract's: availability.online_requires, default network and video) | "
                "network (icmp) | service (onvif, http, tcp, nvr) | video (rtsp) | picture (rtsp_frame's vqd "
                "verdict, 画面正常)",
            },
            {
                "online_rate_pct": FieldSpec("float", "%", "online / (online + offline) × 100; absent while nothing is decided (service, video: while none of the group's devices was judged by their probe)"),
                "online": FieldSpec("integer", "devices", "active devices that are up"),
                "offline": FieldSpec("integer", "devices", "active devices that are down or unreachable"),
                "unknown": FieldSpec("integer", "devices", "active devices not yet decided (just started)"),
                "total": FieldSpec("integer", "devices", "active devices in the group"),
                "excluded": FieldSpec("integer", "devices", "devices in the group not counted (construction, removed)"),
            },
        ),
        MeasurementSpec(
            "faults_open",
            "Firing faults by severity, at the end of every probe cycle (0 when none).",
            {"severity": "critical | major | minor"},
            {"count": FieldSpec("integer", "faults", "faults firing now (pending ones not counted)")},
        ),
        MeasurementSpec(
            "work_order_open",
            "Open work orders (工单), a snapshot at the end of every probe cycle, most urgent SLA first: one point per "
            f"slot 0 … {OPEN_ORDER_SLOTS - 1} (orders beyond are left out); a slot no longer holding an order gets "
            "`open` 0. The latest point of each slot is the order in it now.",
            {"slot": f"position of the order in the snapshot, 0 … {OPEN_ORDER_SLOTS - 1} (bounded: low cardinality)"},
            {
                "open": FieldSpec("integer", "0/1", "1 when the slot holds an open order; 0 and no other field when not"),
                "ref": FieldSpec("string", "", "order reference (WO-20261204-0007)"),
                "fault_id": FieldSpec("string", "", "the fault that opened it (F123), or '' for a manual report"),
                "severity": FieldSpec("string", "", "critical | major | minor"),
                "title": FieldSpec("string", "", "the order's one-line title, in the configured language"),
                "device_id": FieldSpec("string", "", "its first device"),
                "device_name": FieldSpec("string", "", "that device's name from the point list (点位名称)"),
                "site": FieldSpec("string", "", "that device's site"),
                "region": FieldSpec("string", "", "that device's region (township)"),
                "owner": FieldSpec("string", "", "the engineer it is assigned to (处理人), '' while nobody is"),
                "sla_clock": FieldSpec("string", "", "label of the next SLA clock still running (响应/到场/修复/更换), "
                                       "'' when none runs"),
                "sla_deadline_ms": FieldSpec("integer", "ms", "that clock's deadline, UTC ms since the epoch "
                                             "(absent when none runs)"),
                "sla_remaining_s": FieldSpec("float", "s", "seconds from the snapshot to that deadline, negative when "
                                             "past it (absent when none runs)"),
            },
        ),
        MeasurementSpec(
            "fault_event",
            "One point per fault firing, resolution or acknowledgement, at its time.",
            {
                "rule": "name of the rule that raised the fault",
                "severity": "critical | major | minor",
                "region": "region of the fault, when it has one",
            },
            {
                "fault_id": FieldSpec("string", "", "fault id (F123), as in the API and the WeCom message"),
                "title": FieldSpec("string", "", "the fault's one-line title, in the configured language"),
                "state": FieldSpec("string", "", "firing | resolved (the fault's state after the event)"),
                "event": FieldSpec("string", "", "firing | resolved | acknowledged"),
                "device_id": FieldSpec("string", "", "the fault's device, when it has one"),
            },
        ),
        MeasurementSpec(
            "fleetmon_cycle",
            "Self-monitoring: one line per finished probe cycle.",
            {"probe": "probe type (icmp, …)"},
            {
                "duration_s": FieldSpec("float", "s", "from the cycle's start to its last result"),
                "targets": FieldSpec("integer", "devices", "devices probed in the cycle"),
                "ok": FieldSpec("integer", "devices", "results with ok"),
                "failed": FieldSpec("integer", "devices", "results not ok (including caller timeouts)"),
                "caller_timeouts": FieldSpec("integer", "devices", "probes cancelled by the scheduler's deadline"),
                "cycles_skipped": FieldSpec("integer", "cycles", "cycles skipped since start because the previous one ran late"),
            },
        ),
        MeasurementSpec(
            "fleetmon_sink",
            "Self-monitoring of the InfluxDB writer, every flush interval.",
            {},
            {
                "buffered_lines": FieldSpec("integer", "lines", "lines waiting to be written, in memory and in the spool on disk"),
                "written_lines": FieldSpec("integer", "lines", "lines written since start"),
                "dropped_lines": FieldSpec(
                    "integer", "lines", "lines lost for good since start: buffer or spool full, damaged in the spool, or rejected by InfluxDB (type conflict)"
                ),
                "write_errors": FieldSpec("integer", "requests", "failed write requests since start"),
            },
        ),
    )
}


class SchemaError(ValueError):
    """A point that the schema does not declare (a bug in fleetmon, never bad input)."""


def check(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object]) -> MeasurementSpec:
    """Validate a point against the schema; raises SchemaError naming what is undeclared."""
    spec = MEASUREMENTS.get(measurement)
    if spec is not None and fields and tags.keys() <= spec.tags.keys() and fields.keys() <= spec.fields.keys():
        return spec  # every point the daemon writes: no sets built (hot path, once per line)
    if spec is None:
        raise SchemaError(f"undeclared measurement {measurement!r}")
    extra_tags = set(tags) - set(spec.tags)
    if extra_tags:
        raise SchemaError(f"{measurement}: undeclared tags {sorted(extra_tags)}")
    extra_fields = set(fields) - set(spec.fields)
    if extra_fields:
        raise SchemaError(f"{measurement}: undeclared fields {sorted(extra_fields)}")
    if not fields:
        raise SchemaError(f"{measurement}: a point needs at least one field")
    return spec


def render_markdown() -> str:
    """docs/SCHEMA.md as generated from MEASUREMENTS (`python -m monitor.metrics.schema > docs/SCHEMA.md`)."""
    out = [
        "# InfluxDB schema",
        "",
        "Generated from `monitor/metrics/schema.py` (`python -m monitor.metrics.schema > docs/SCHEMA.md`); a test keeps both equal",
        "and fails on any field written to InfluxDB that is not declared here. Timestamps are UTC, nanosecond precision.",
        "",
    ]
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for m in MEASUREMENTS.values():
        out += [f"## `{m.name}`", "", m.description, ""]
        if m.tags:
            out += ["| tag | meaning |", "| --- | --- |"]
            out += [f"| `{k}` | {cell(v)} |" for k, v in m.tags.items()]
            out.append("")
        out += ["| field | type | unit | meaning |", "| --- | --- | --- | --- |"]
        out += [f"| `{k}` | {f.type} | {f.unit or '—'} | {cell(f.description)} |" for k, f in m.fields.items()]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
