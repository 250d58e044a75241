"""Dates to renew by and certificates: renewal_due (licences, cloud servers, domains, contracts:
the point list's `expires` and the config's `inventory.renewals`), tls_expiry (a TLS endpoint's
certificate days left, probe `tls`) and tls_untrusted (its chain does not verify or it names
another host). Zhangjiagang: "到期前1个月…提醒本单位续费" (CONTRACTS.md D): by default a
reminder 30 days ahead, then the routes' own reminders until someone renews.

Dates are local days of the configured time zone (Facts.zone): a renewal expiring 2027-03-31
is valid through that day, "today" is the zone's today.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field

from monitor.core.config_base import SelectorConfig
from monitor.core.contract import RENEWAL_NOTICE_DAYS
from monitor.core.model import Device
from monitor.fleet.renewals import Renewal, What
from rules.base import Condition, Facts, Key, Now, RuleBase
from rules.families.values import Described, _ValueRule
from rules.model import Severity

TITLES: dict[str, dict[str, Any]] = {
    "zh": {
        "renewal_due": "{what}{name}将于{date}到期（剩余{days}天），请及时续费{owner}",
        "renewal_today": "{what}{name}今天（{date}）到期，请及时续费{owner}",
        "renewal_expired": "{what}{name}已于{date}到期（已过{days}天），请尽快续费{owner}",
        "owner": "（负责：{owner}）",
        "what": {"licence": "授权", "cloud_server": "云服务器", "domain": "域名", "contract": "合同",
                 "certificate": "证书", "line": "专线", "service": "服务", "other": ""},
        "tls_expiry": "{kind}{name}的证书（{instance}）将于{date}到期，剩余{days}天",
        "tls_expired": "{kind}{name}的证书（{instance}）已于{date}过期",
        "tls_untrusted": "{kind}{name}的证书（{instance}）不受信任：{detail}",
        "name_mismatch": "证书上的名称与所访问的地址不符",
    },
    "en": {
        "renewal_due": "{what}{name} expires on {date} ({days} days left): renew in time{owner}",
        "renewal_today": "{what}{name} expires today ({date}): renew in time{owner}",
        "renewal_expired": "{what}{name} expired on {date} ({days} days ago): renew now{owner}",
        "owner": " (owner: {owner})",
        "what": {"licence": "licence ", "cloud_server": "cloud server ", "domain": "domain ", "contract": "contract ",
                 "certificate": "certificate ", "line": "line ", "service": "service ", "other": ""},
        "tls_expiry": "{kind} {name} certificate ({instance}) expires on {date}, {days} days left",
        "tls_expired": "{kind} {name} certificate ({instance}) expired on {date}",
        "tls_untrusted": "{kind} {name} certificate ({instance}) not trusted: {detail}",
        "name_mismatch": "it does not name the host it serves",
    },
}


class RenewalDueRule(RuleBase):
    """Every renewal (Inventory.renewals) whose date is at most `ahead_days` away, or past:
    one condition each, until its date changes (a point list or config reloaded with the new
    date). Renewals of a device follow `match` (and the device's status: removed points are
    not reminded of); renewals of no device are judged when `match` selects every device."""

    titles = TITLES
    type: Literal["renewal_due"] = "renewal_due"
    ahead_days: Annotated[int, Field(ge=1, le=366)] = RENEWAL_NOTICE_DAYS
    severity: Severity = Severity.MINOR
    expired_severity: Severity = Severity.MAJOR
    """Severity once the date has passed."""

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        renewals = facts.inventory.renewals
        if not renewals:
            return
        today = dt.datetime.fromtimestamp(now.view.ts_ns / 1e9, facts.zone).date()
        selected = {d.id: d for d in facts.devices[self.name]}
        everything = self.match == SelectorConfig()
        for renewal in renewals:
            device = selected.get(renewal.device_id) if renewal.device_id is not None else None
            if (device is None) if renewal.device_id is not None else not everything:
                continue
            days = (renewal.expires - today).days
            if days > self.ahead_days:
                continue
            out[(self.name, renewal.key)] = self._condition(facts, renewal, device, days)

    def _condition(self, facts: Facts, renewal: Renewal, device: Device | None, days: int) -> Condition:
        t = self.titles[facts.language]
        template = "renewal_due" if days > 0 else "renewal_today" if days == 0 else "renewal_expired"
        if renewal.what is None and device is not None:  # a point-list row: its kind says what it is
            what = facts.kinds[device.kind] + ("" if facts.language == "zh" else " ")
        else:
            what = t["what"][(renewal.what or What.OTHER).value]
        owner = t["owner"].format(owner=renewal.owner) if renewal.owner else ""
        title = t[template].format(what=what, name=renewal.name, date=renewal.expires.isoformat(), days=abs(days),
                                   owner=owner)
        details = {"expires": renewal.expires.isoformat(), "what": renewal.what.value if renewal.what else None,
                   "owner": renewal.owner}
        return Condition(
            self.name, self.type, renewal.key, self.expired_severity if days < 0 else self.severity, title,
            self.for_s, self.clear_for_s, device_id=device.id if device else None,
            site=device.site if device else None, region=device.region if device else None,
            value=float(days), threshold=float(self.ahead_days), unit="d", details=details,
        )


class TlsExpiryRule(_ValueRule):
    """A TLS endpoint's certificate (probe `tls`, series tls_certificate) with fewer than
    `below_days` days left, expired ones included; per endpoint."""

    titles = TITLES
    measurement, fields, unit, limit_keys = "tls_certificate", ("days_left",), "d", ("below_days", "clear_above_days")
    direction = "below"
    type: Literal["tls_expiry"] = "tls_expiry"
    below_days: Annotated[float, Field(gt=0, le=366)] = float(RENEWAL_NOTICE_DAYS)
    clear_above_days: Annotated[float, Field(gt=0, le=366)] | None = None
    expired_severity: Severity = Severity.MAJOR
    """Severity once the certificate has expired (clients refuse it)."""

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        date = str(fields.get("not_after", ""))[:10]
        days = int(value or 0)
        return ("tls_expired" if (value or 0) < 0 else "tls_expiry"), {"date": date, "days": days}, ()

    def _condition(self, facts: Facts, device: Device, instance: tuple[str, ...], fields: Mapping[str, Any],
                   key: Key, value: float | None) -> Condition:
        condition = super()._condition(facts, device, instance, fields, key, value)
        return condition if (value or 0) >= 0 else replace(condition, severity=self.expired_severity)


class TlsUntrustedRule(_ValueRule):
    """A TLS endpoint whose certificate chain does not verify (self-signed, unknown CA, expired)
    or that does not name the host it serves. Not among the defaults: NVRs and internal
    platforms often serve self-signed certificates on purpose."""

    titles = TITLES
    measurement, fields = "tls_certificate", ("chain_verified", "hostname_match")
    type: Literal["tls_untrusted"] = "tls_untrusted"
    severity: Severity = Severity.MINOR
    check_name: bool = True
    """Also raise when the certificate names another host."""

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return fields.get("chain_verified") is False or (self.check_name and fields.get("hostname_match") is False)

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        if fields.get("chain_verified") is False:
            detail = str(fields.get("verify_error") or "")
        else:
            detail = self.titles[facts.language]["name_mismatch"]
        return self.type, {"detail": detail}, ()
