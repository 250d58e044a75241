"""Vocabulary of the assessment layer shared by availability, work orders and the score.

Source of the excluded causes: the tenders in ../shared/CONTRACTS.md, e.g. Qionglai
"市政、电力故障、人为破坏及不可抗力引起的故障均不在考核范围内" and "采购单位及下属单位协调不了，
需要延期处理的"; Zhangjiagang "运营商和基础设施造成的故障不计算在服务维护故障内".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    """Cause class (故障原因分类) of a work order. The first six take the downtime they caused
    out of the assessment (`excluded`); the others are the contractor's to answer for."""

    MUNICIPAL = "municipal"        # 市政 (road works, municipal construction)
    POWER = "power"                # 电力 (mains power cut by the grid)
    VANDALISM = "vandalism"        # 人为破坏
    FORCE_MAJEURE = "force_majeure"  # 不可抗力 (typhoon, flood, lightning)
    CARRIER = "carrier"            # 运营商 (the carrier's line or network)
    BUYER = "buyer"                # 采购方原因 (delays the buyer cannot resolve)
    DEVICE = "device"              # 设备故障 (camera, switch, UPS hardware)
    LINE = "line"                  # 线路故障 within the contractor's scope
    SOFTWARE = "software"          # 软件/配置
    OTHER = "other"                # 其他

    @property
    def excluded(self) -> bool:
        return self in _EXCLUDED

    def label(self, language: str = "zh") -> str:
        return _LABELS[self][0 if language == "zh" else 1]


_EXCLUDED = frozenset({Cause.MUNICIPAL, Cause.POWER, Cause.VANDALISM, Cause.FORCE_MAJEURE, Cause.CARRIER, Cause.BUYER})

_LABELS = {
    Cause.MUNICIPAL: ("市政", "municipal works"),
    Cause.POWER: ("电力", "power supply"),
    Cause.VANDALISM: ("人为破坏", "vandalism"),
    Cause.FORCE_MAJEURE: ("不可抗力", "force majeure"),
    Cause.CARRIER: ("运营商", "carrier"),
    Cause.BUYER: ("采购方原因", "buyer's side"),
    Cause.DEVICE: ("设备故障", "device fault"),
    Cause.LINE: ("线路故障", "line fault"),
    Cause.SOFTWARE: ("软件/配置", "software or configuration"),
    Cause.OTHER: ("其他", "other"),
}


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Time of one device taken out of the assessment: [start_ns, end_ns) in UTC ns, why
    (`kind`: "maintenance", "status" for 延建/拆除, "cause" for a work order's excluded cause)
    and the evidence (`reason`: the window's reason, the status, the order's reference)."""

    device_id: str
    start_ns: int
    end_ns: int
    kind: str
    reason: str
