"""online_rate: a group's online rate (在线率) of one basis below `below_pct` for `for_s`; clears
at or above `clear_above_pct` (hysteresis). A region that is wholly dark is device_down's
region fault, not also an online-rate fault; a rate with nothing decided holds, never clears.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from monitor.core.contract import ONLINE_RATE_TARGET_PCT
from monitor.core.model import Basis, Kind
from rules.base import Condition, Facts, Key, Now, RuleBase

TITLES = {
    "zh": {
        "online_rate": "{group}{kind}{basis}{value:.2f}%，低于{limit:g}%",
        "fleet": "全网",
        "basis": {"online": "在线率", "network": "网络在线率", "service": "服务在线率", "video": "视频在线率",
                  "picture": "画面正常率"},
    },
    "en": {
        "online_rate": "{group} {kind} {basis} {value:.2f}%, below {limit:g}%",
        "fleet": "fleet",
        "basis": {"online": "online rate", "network": "network online rate", "service": "service online rate",
                  "video": "video online rate", "picture": "picture normal rate"},
    },
}


class OnlineRateRule(RuleBase):
    titles = TITLES
    type: Literal["online_rate"] = "online_rate"
    basis: Basis = Basis.ONLINE
    """Which online rate (monitor.state.availability): the contract's `online` by default."""
    scope: Literal["fleet", "region", "site"] = "region"
    kind: Kind | Literal["all"] = Kind.CAMERA
    below_pct: Annotated[float, Field(gt=0, le=100)] = ONLINE_RATE_TARGET_PCT
    clear_above_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    """Defaults to below_pct."""

    @model_validator(mode="after")
    def _clear_not_below_raise(self) -> "OnlineRateRule":
        if self.clear_above_pct is not None and self.clear_above_pct < self.below_pct:
            raise ValueError("clear_above_pct must be ≥ below_pct")
        return self

    def watch(self, facts: Facts) -> None:
        pass  # judged on the View's rates alone; `match` names its regions and sites

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        t = self.titles[facts.language]
        clear_at = self.clear_above_pct if self.clear_above_pct is not None else self.below_pct
        regions, sites = set(self.match.region), set(self.match.site)
        for rate in now.view.rates:
            if rate.scope != self.scope or rate.kind != self.kind or rate.basis != self.basis:
                continue
            if self.scope == "region" and ((regions and rate.group not in regions) or rate.group in now.dark):
                continue
            if self.scope == "site" and sites and rate.group not in sites:
                continue
            key = (self.name, "fleet" if self.scope == "fleet" else f"{self.scope}:{rate.group}")
            value = rate.rate_pct
            if value is None:
                holds = key in now.firing  # nothing decided: hold, never clear blind
            else:
                holds = value < (clear_at if key in now.firing else self.below_pct)
            if not holds:
                continue
            group = t["fleet"] if self.scope == "fleet" else rate.group
            out[key] = Condition(
                self.name, "online_rate", key[1], self.severity,
                t["online_rate"].format(
                    group=group, kind=facts.kinds[self.kind], basis=t["basis"][self.basis], value=value or 0.0,
                    limit=self.below_pct,
                ),
                self.for_s, self.clear_for_s,
                region=rate.group if self.scope == "region" else None,
                site=rate.group if self.scope == "site" else None,
                value=value, threshold=self.below_pct, unit="%",
                details={"online": rate.online, "offline": rate.offline, "total": rate.total}, held=value is None,
            )
