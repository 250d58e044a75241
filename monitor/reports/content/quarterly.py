"""季度考核 (the quarterly assessment; Qionglai: paid by the quarter against a 100-point score):
the score table with each item's figure, tier and deduction, the total, the payment in 元, the
online rate per region and site with the weekly trend, faults, times, breaches (per clock) and
workload; and
the evidence as annexes: availability per point, the work orders the score counted with their
outcome, the replacements, the excluded time with its reasons.
"""

from __future__ import annotations

from monitor.reports.content import parts_availability as av
from monitor.reports.content import parts_faults as fa
from monitor.reports.content import parts_orders as wo
from monitor.reports.content import parts_score as sc
from monitor.reports.content.common import blind_kpi, order_kpis, rate_kpis, report
from monitor.reports.content.facts import ReportFacts
from monitor.reports.content.words import Say
from monitor.reports.document import ColumnType as T
from monitor.reports.document import Report


def build_quarterly(f: ReportFacts) -> Report:
    """The quarterly assessment report of `f`; `f.score` is the quarter's evaluated score
    (None: the report says why, and carries everything else)."""
    say = Say(f.language)  # type: ignore[arg-type]
    score = f.score
    # The money first; the order figures are in their parts.
    kpis = (sc.score_kpis(score, say) if score else []) + rate_kpis(f, say) + [
        k for k in order_kpis(f, say) if k.type is not T.DURATION] + blind_kpi(f, say)
    parts = [sc.score_table(score, say), sc.payment(score, say)] if score else []
    parts += [
        av.regions(f, say),
        av.sites(f, say),
        fa.kinds_and_causes(f, say),
        wo.times(f, say),
        wo.breach_summary(f, say),
        wo.workload(f, say),
        av.points(f, say),
        wo.counted_orders(f, say, score),
        wo.replacements(f, say),
        av.exclusions(f, say),
        av.blind(f, say),
    ]
    missing = sc.missing_note(f, say)
    parts.append(av.notes(f, say, [missing] if missing else []))
    title = None
    if score is not None:
        title = (score.title.zh + "报告") if say.zh else f"{score.title.en}: report"
    return report(f, say, kpis, parts, title)
