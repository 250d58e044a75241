"""Vocabulary of the InfluxDB schema: what a measurement declares (tags, fields, units).

Kept apart from monitor.metrics.schema so that each probe module can declare the measurements it
writes (`Probe.measurements`) without importing the schema, which collects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

FieldType = str  # "float" | "integer" | "boolean" | "string"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: FieldType
    unit: str
    description: str


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    name: str
    description: str
    tags: Mapping[str, str]  # tag key -> description
    fields: Mapping[str, FieldSpec]


DEVICE_TAGS = {
    "device_id": "inventory id of the device (点位编号)",
    "kind": "camera | switch | ups | link | server | platform | nvr",
    "site": "site (站点/点位组) of the device",
    "region": "region (township, 乡镇/区域) of the device",
}
