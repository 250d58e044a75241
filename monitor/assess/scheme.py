"""An assessment scheme (考核办法) as data: items with their points, the metric each reads and
its tiers, vetoes, and the payment rule. Shipped schemes live in monitor/assess/schemes/*.yaml;
a config may also write one inline (see monitor.assess.config_score).

A scheme is validated strictly and once: unknown keys, a metric not in
monitor.assess.inputs.METRICS, tiers that leave a gap or overlap or reach outside the metric's
range (0–100 % for a rate), a deduction above the item's points, points not adding up to 100,
grades that do not cover 0–100, a veto without a grade to give — each is an error at its place.

Shape (YAML):

    name: qionglai
    title: {zh: …, en: …}
    source: the tender clauses, quoted
    period: quarter | half_year | year
    items:
      - key: online_rate
        name: {zh: 前端摄像机在线率, en: …}
        points: 40
        metric: online_rate_pct
        decimals: 2            # optional: round the value (half up) before the tiers
        tiers:                 # or per_unit: {deduct: 1, allowed: 0} for a count
          - {when: "r >= 95", deduct: 0}
          - {when: "r < 80", deduct: all}
    vetoes:                    # optional; needs payment.grades.veto
      - {key: …, name: {…}, metric: serious_incidents, when: "r >= 2"}
    payment:
      linear: {full_at: 90, per_point_yuan: 500, floor: 60, below_floor_cut_pct: 50}
      # or grades: {levels: [{key, name, when: "s >= 90", cut_pct: 0}, …], veto: fail}
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.assess.inputs import METRICS, Label, Unit
from monitor.assess.ranges import Range, check_cover, parse_range
from monitor.core.config_base import ConfigError, Strict, expansion_problem, locate

SCORE_POINTS = Decimal(100)
"""Every scheme scores out of 100 分, as the tenders do; payment thresholds are on that scale."""

RangeText = Annotated[Range, BeforeValidator(parse_range), PlainSerializer(str, return_type=str)]
Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Points = Annotated[Decimal, Field(gt=0, le=SCORE_POINTS)]
Percent = Annotated[Decimal, Field(ge=0, le=100)]


def _deduction(value: Any) -> Any:
    """A tier's deduction: points ≥ 0, or "all"; one clear error instead of one per union member."""
    if value == "all":
        return value
    if isinstance(value, (int, float, Decimal, str)) and not isinstance(value, bool):
        try:
            points = Decimal(str(value).strip())
        except ArithmeticError:  # decimal.InvalidOperation: not a number
            points = None
        if points is not None and points.is_finite() and points >= 0:
            return points
    raise ValueError(f"deduct must be a number of points ≥ 0 or 'all', not {value!r}")


Deduction = Annotated[Decimal | Literal["all"], BeforeValidator(_deduction)]


class Text(Strict):
    """A name in both languages."""

    zh: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]

    def label(self) -> Label:
        return Label(self.zh, self.en)


class Tier(Strict):
    """Where the metric's value falls (`when`, e.g. "90 <= r < 95") and the points it costs;
    `all` = every point of the item is lost."""

    when: RangeText
    deduct: Deduction


class PerUnit(Strict):
    """For a count: `deduct` points for each unit above `allowed` (capped at the item's points),
    e.g. Zhangjiagang "每有1个不符合项，扣1分"."""

    deduct: Annotated[Decimal, Field(gt=0)]
    allowed: Annotated[int, Field(ge=0)] = 0


class Item(Strict):
    """One line of the assessment table. Exactly one of `tiers` and `per_unit`."""

    key: Key
    name: Text
    points: Points
    metric: str
    decimals: Annotated[int, Field(ge=0, le=6)] | None = None
    """Round the metric's value to this many decimals (half up) before the tiers, when the
    contract scores the rate as printed; None = the exact value."""
    tiers: list[Tier] | None = None
    per_unit: PerUnit | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        return _known_metric(name)

    @field_validator("tiers")
    @classmethod
    def _tiers_cover(cls, tiers: list[Tier] | None, info: ValidationInfo) -> list[Tier] | None:
        if tiers is None:
            return None
        if not tiers:
            raise ValueError("an item needs at least one tier")
        points = info.data.get("points")
        for i, tier in enumerate(tiers):
            if points is not None and tier.deduct != "all" and tier.deduct > points:
                raise ValueError(
                    f"tiers[{i}] ({tier.when}) deducts {tier.deduct}, more than the item's {points} points "
                    "(write 'all' to take all of them)"
                )
        if "metric" in info.data:  # an unknown metric is reported on its own
            unit = METRICS[info.data["metric"]].unit
            check_cover([t.when for t in tiers], *unit.domain, "tiers", unit.symbol)
        return tiers

    @field_validator("per_unit")
    @classmethod
    def _per_unit_counts(cls, rule: PerUnit | None, info: ValidationInfo) -> PerUnit | None:
        if rule is not None and "metric" in info.data and METRICS[info.data["metric"]].unit is not Unit.COUNT:
            raise ValueError(f"per_unit applies to a count; {info.data['metric']} is not one: use tiers")
        return rule

    @model_validator(mode="after")
    def _one_rule(self) -> Item:
        if (self.tiers is None) == (self.per_unit is None):
            raise ValueError(f"item {self.key}: give exactly one of tiers and per_unit")
        return self


class Veto(Strict):
    """A condition that fails the whole assessment whatever the points (一票否决), e.g.
    Zhangjiagang "two or more serious incidents or a data leak"."""

    key: Key
    name: Text
    metric: str
    when: RangeText

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        return _known_metric(name)

    @model_validator(mode="after")
    def _inside(self) -> Veto:
        unit = METRICS[self.metric].unit
        low, high = unit.domain
        for bound in (self.when.low, self.when.high):
            if bound is not None and (bound < low or (high is not None and bound > high)):
                raise ValueError(f"veto {self.key}: {self.when} reaches outside the range of {self.metric}")
        return self


class Linear(Strict):
    """Qionglai: full pay at a score ≥ `full_at`; below it `per_point_yuan` for each point
    short of `full_at` (pro rata for part of a point); below `floor` instead a cut of
    `below_floor_cut_pct` % of the period's fee. The deduction never exceeds the fee."""

    full_at: Percent
    per_point_yuan: Annotated[Decimal, Field(ge=0)]
    floor: Percent
    below_floor_cut_pct: Percent

    @model_validator(mode="after")
    def _order(self) -> Linear:
        if self.floor > self.full_at:
            raise ValueError(f"floor {self.floor} is above full_at {self.full_at}")
        return self


class Grade(Strict):
    """A grade of the total score (`when`, e.g. "80 <= s < 90") and the cut of the period's fee
    it brings, in %."""

    key: Key
    name: Text
    when: RangeText
    cut_pct: Percent


class Grades(Strict):
    """Zhangjiagang: the total falls in one grade; `veto`: the key of the grade a veto gives."""

    levels: list[Grade]
    veto: str | None = None

    @field_validator("levels")
    @classmethod
    def _cover(cls, levels: list[Grade]) -> list[Grade]:
        if not levels:
            raise ValueError("grades need at least one level")
        _unique([g.key for g in levels], "grade")
        check_cover([g.when for g in levels], Decimal(0), SCORE_POINTS, "levels")
        return levels

    @field_validator("veto")
    @classmethod
    def _known_grade(cls, key: str | None, info: ValidationInfo) -> str | None:
        keys = [g.key for g in info.data.get("levels", [])]
        if key is not None and keys and key not in keys:
            raise ValueError(f"unknown grade {key!r} (levels: {', '.join(keys)})")
        return key


class PaymentRule(Strict):
    """The payment rule: exactly one of `linear` and `grades`."""

    linear: Linear | None = None
    grades: Grades | None = None

    @model_validator(mode="after")
    def _one(self) -> PaymentRule:
        if (self.linear is None) == (self.grades is None):
            raise ValueError("give exactly one of linear and grades")
        return self


class Scheme(Strict):
    """A whole assessment scheme; see the module docstring for the YAML shape."""

    name: Key
    title: Text
    source: str = ""
    """The tender's clauses the scheme follows, quoted, for whoever checks it."""
    period: Literal["quarter", "half_year", "year"]
    """The assessment period; the fee in config is the fee of one such period."""
    items: list[Item]
    vetoes: list[Veto] = []
    payment: PaymentRule

    @field_validator("items")
    @classmethod
    def _items(cls, items: list[Item]) -> list[Item]:
        if not items:
            raise ValueError("a scheme needs at least one item")
        _unique([item.key for item in items], "item")
        total = sum((item.points for item in items), Decimal(0))
        if total != SCORE_POINTS:
            raise ValueError(f"the items' points add up to {total}, not {SCORE_POINTS}")
        return items

    @field_validator("vetoes")
    @classmethod
    def _vetoes(cls, vetoes: list[Veto]) -> list[Veto]:
        _unique([v.key for v in vetoes], "veto")
        return vetoes

    @field_validator("payment")
    @classmethod
    def _veto_has_grade(cls, payment: PaymentRule, info: ValidationInfo) -> PaymentRule:
        if info.data.get("vetoes") and (payment.grades is None or payment.grades.veto is None):
            raise ValueError("the scheme has vetoes: payment needs grades with `veto`, the grade a veto gives")
        return payment


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    return name


def _unique(keys: list[str], what: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what} key {key!r} appears twice")
        seen.add(key)


# --- loading -----------------------------------------------------------------------------------


def shipped_schemes() -> list[str]:
    """Names of the schemes shipped in monitor/assess/schemes/, sorted."""
    folder = resources.files("monitor.assess") / "schemes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def shipped_scheme(name: str) -> Scheme:
    """The shipped scheme `name` (e.g. "qionglai"). Raises ValueError naming the shipped ones
    when there is none; ConfigError if the file itself is bad (a bug, caught by the tests)."""
    names = shipped_schemes()
    if name not in names:
        raise ValueError(f"unknown scheme {name!r} (shipped: {', '.join(names)}; or write the scheme inline)")
    resource = resources.files("monitor.assess") / "schemes" / f"{name}.yaml"
    return parse_scheme(resource.read_text(encoding="utf-8"), f"monitor/assess/schemes/{name}.yaml")


def load_scheme_file(path: str | Path) -> Scheme:
    """Read and validate a scheme from a YAML file. Raises ConfigError listing every problem as
    "FILE:LINE: yaml.path: message" (file order)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read: {reason}"]) from None
    return parse_scheme(text, str(path))


def parse_scheme(text: str, origin: str) -> Scheme:
    """Validate the YAML `text` of a scheme; `origin` names it in messages. Raises ConfigError
    as load_scheme_file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and (too_large := expansion_problem(root)) is not None:
            raise ConfigError([f"{origin}:{too_large[0].line + 1}: {too_large[1]}"])
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1"
        raise ConfigError([f"{origin}:{where}: YAML syntax error: {exc.problem}"]) from None
    if root is None or not isinstance(data, dict):
        raise ConfigError([f"{origin}:1: a scheme must be a mapping (name, title, period, items, payment)"])
    try:
        return Scheme.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_located(origin, root, exc.errors(include_url=False))) from None


def _located(origin: str, root: yaml.Node, errors: list[Any]) -> list[str]:
    found = []
    for error in errors:
        shown, line = locate(root, error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key missing"
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in shown).lstrip(".")
        found.append((line, f"{origin}:{line}: {path + ': ' if path else ''}{message}"))
    return [message for _, message in sorted(found, key=lambda f: f[0])]
