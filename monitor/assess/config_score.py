"""config.yaml section `assessment.score`: which scheme scores the contract and the fee of one
assessment period.

    assessment:
      score:
        scheme: qionglai              # a shipped scheme (monitor/assess/schemes/), or a whole
                                      # scheme written inline as a mapping (same shape)
        fee_per_period_yuan: 250000   # one period's service fee in 元 (Qionglai: a quarter,
                                      # 25 % of the annual fee)
        systems: site                 # what one "system" is for per-system metrics
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from monitor.assess.scheme import Scheme, shipped_scheme
from monitor.core.config_base import Strict


class ScoreConfig(Strict):
    scheme: Scheme
    """A shipped scheme's name (qionglai, zhangjiagang) or a scheme inline, validated as one
    (monitor.assess.scheme). To change a shipped scheme's figures, copy its YAML here."""
    fee_per_period_yuan: Annotated[Decimal, Field(ge=0, decimal_places=2)]
    """The service fee of one assessment period (the scheme's `period`), 元, at most 2 decimals."""
    systems: Literal["site", "region", "kind"] = "site"
    """What one "system" (系统) is for the metrics a scheme counts per system (Zhangjiagang:
    "单一故障次数每系统半年不得超过2次"; the longest outage and the availability show each
    system in their evidence): the points of one site (default), of one region, or of one
    device kind."""

    @field_validator("scheme", mode="before")
    @classmethod
    def _shipped(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shipped_scheme(value)  # ValueError naming the shipped schemes
        return value
