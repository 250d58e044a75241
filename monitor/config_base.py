"""Building blocks shared by every config model (monitor.config and each probe's Config),
kept apart so that probe modules need not import the whole config tree."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from monitor.model import Kind, Selector


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectorConfig(Strict):
    """Selects devices; every list empty = all devices. See monitor.model.Selector."""

    region: list[str] = []
    site: list[str] = []
    kind: list[Kind] = []
    tags: list[str] = []

    def selector(self) -> Selector:
        return Selector.of(self.region, self.site, self.kind, self.tags)
