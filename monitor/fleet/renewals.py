"""What runs out on a date and must be renewed in time: licences, cloud servers, domains,
contracts, certificates (Zhangjiagang: "到期前1个月…提醒本单位续费", CONTRACTS.md D).

Two sources, one list (`Inventory.renewals`, judged by the rule `renewal_due`):
- the point list's column `expires` (到期日期) of a device: the device's own subscription,
  licence or contract;
- the config's `inventory.renewals`, for what is no device of the point list (a domain, the
  O&M contract itself, a platform licence): name, date, what it is, who renews it, and
  optionally the device it belongs to (so that its reminder follows the device's routes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator

from monitor.core.config_base import Strict
from monitor.fleet.values import parse_date


class What(StrEnum):
    """What a renewal is; named in its reminder."""

    LICENCE = "licence"  # 授权/许可
    CLOUD_SERVER = "cloud_server"  # 云服务器
    DOMAIN = "domain"  # 域名
    CONTRACT = "contract"  # 合同
    CERTIFICATE = "certificate"  # 证书
    LINE = "line"  # 专线 (a line's lease)
    SERVICE = "service"  # a subscription (SMS gateway, map service …)
    OTHER = "other"


class RenewalConfig(Strict):
    """One entry of `inventory.renewals` in config.yaml."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    """What people call it ("平台软件授权", "example.gov.cn"); unique in the list."""
    expires: dt.date
    """Last valid day, local time: 2027-03-31 (also 2027/3/31, 2027年3月31日)."""
    what: What = What.OTHER
    owner: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    """Who renews it (本单位信息科, a person): named in the reminder."""
    device: Annotated[str, Field(min_length=1)] | None = None
    """Id of the device it belongs to: its reminder is routed like that device's faults."""

    @field_validator("expires", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, str):  # YAML reads 2027-03-31 as a date already; other spellings arrive as text
            return parse_date(value)
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise ValueError("must be a date such as 2027-03-31")
        return value


def unique_renewal_names(renewals: list[RenewalConfig]) -> list[RenewalConfig]:
    """Validator of the `renewals` list: a name identifies its reminder."""
    names = [r.name for r in renewals]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"renewal names must be unique: {', '.join(twice)}")
    return renewals


@dataclass(frozen=True, slots=True)
class Renewal:
    """One date to renew by.

    - key: "device:<id>" (a point list's `expires`) or "renewal:<name>" (the config), unique;
    - name: the device's or the entry's name; expires: last valid local day;
    - what: the entry's; None for a device (its kind says what it is);
    - owner: who renews it, when known; device_id: the device it belongs to, if any.
    """

    key: str
    name: str
    expires: dt.date
    what: What | None = None
    owner: str | None = None
    device_id: str | None = None
