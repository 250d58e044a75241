"""A report as a PDF: HTML + CSS laid out by WeasyPrint, Chinese in Noto Sans CJK SC (Debian's
fonts-noto-cjk), charts from charts.py embedded as SVG.

Pages: A4 portrait; a part whose columns need more room than a portrait page gives (by their
width hints, see text.column_width) is set on landscape pages. Every page has the report's
title and period at the top and "第 N 页，共 M 页" at the bottom. Tables break across pages
with their header row repeated; a row never splits. The first page has the facts (period,
scope, zone, generation time) and the headline figures with their verdicts; each part follows
with its note (what data could not be seen) above its charts and table.

`max_rows`: a part with more rows than that shows its first `max_rows` and says how many more
there are and that the XLSX has them all. WeasyPrint needs about 8 ms of CPU and 0.2 MB per row
of a nine-column table (bench/reports_render.py, bench/reports_quarterly.py), so a 10,000-point
annex takes over a minute and 2 GB; the XLSX of the same report takes seconds. Rows of data
tables are told apart by their shading, not by a rule under every cell: the rules cost a tenth
of the layout time.

Cost of the import: WeasyPrint and matplotlib load with this module (about 1 s), so import it
where a PDF is made, not at daemon start.
"""

from __future__ import annotations

import base64
from html import escape

import weasyprint

from monitor.reports.charts import CJK_FAMILY, chart_svg, cjk_font
from monitor.reports.document import ColumnType, Part, Report
from monitor.reports.text import cell_text, column_width, kpi_text, local_time, period_text, verdict, words

PORTRAIT_CELLS = 112
"""Sum of a part's column widths (character cells, CJK double, plus CELL_PADDING each) that
fits the portrait text width (182 mm) at the body's 9 pt: a CJK character is 3.2 mm, two cells.
Wider parts go landscape (269 mm); narrow ones get a narrower table."""
CELL_PADDING = 2.0
"""A table cell's padding, in character cells."""
NARROW = 1.15
"""Cells of a Latin letter or digit at the body's size: Noto Sans CJK SC sets them 0.55–0.65
em wide, more than half a CJK character (one cell), so identifiers such as CAM-0003-02 or
WO-20260920-0007 would otherwise break inside their column."""
COUNT_FROM = 16
"""Tables of this many rows or more say how many they have below them (a short one is counted
at a glance, and its count line alone would otherwise be carried onto a page of its own)."""

_NUMERIC = frozenset({ColumnType.INT, ColumnType.PCT, ColumnType.MS, ColumnType.NUMBER, ColumnType.DURATION})
_AIR = 1.3

_CSS = """
@page {
  size: A4;
  margin: 20mm 14mm 16mm 14mm;
  @top-left { content: string(doc-title); font-size: 8pt; color: #666; }
  @top-right { content: string(doc-period); font-size: 8pt; color: #666; }
  @bottom-center { content: PAGE_FOOTER; font-size: 8pt; color: #666; }
}
@page wide { size: A4 landscape; }
html { font-family: "CJK_FAMILY", sans-serif; font-size: 9pt; color: #222; line-height: 1.35; }
h1 { font-size: 17pt; margin: 0 0 4mm 0; string-set: doc-title content(); }
.period { string-set: doc-period content(); }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm 0; padding-bottom: 1mm; border-bottom: 1.2pt solid #3B6FB6;
     break-after: avoid; }
section.part.wide { page: wide; }
table { width: 100%; border-collapse: separate; border-spacing: 0; table-layout: fixed; }
th, td { padding: 1.2pt 3pt; border-bottom: 0.4pt solid #C8CED8; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #DDE4EE; font-weight: bold; text-align: center; border-bottom: 0.8pt solid #7F8FA6; }
tr { break-inside: avoid; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; }
table.data tbody tr:nth-child(even) td { background: #F6F8FB; }
table.data td { border-bottom: none; }
table.data { border-bottom: 0.4pt solid #C8CED8; }
table.facts { width: auto; margin-bottom: 4mm; }
table.facts td { border: none; padding: 0.6pt 8pt 0.6pt 0; }
table.facts td.label { color: #666; }
table.kpis { width: 100%; margin-bottom: 2mm; }
table.kpis td { font-size: 10pt; padding: 2.5pt 4pt; }
td.ok { color: #006100; font-weight: bold; text-align: center; }
td.bad { color: #9C0006; font-weight: bold; text-align: center; }
.note { margin: 1mm 0 2mm 0; padding: 2mm 3mm; background: #FFF4E0; border-left: 2pt solid #E67E22;
        color: #6B4300; break-after: avoid; }
.empty, .rows { color: #666; margin: 1mm 0; }
.chart { margin: 1mm 0 2mm 0; break-inside: avoid; }
.chart img { width: 100%; }
"""


def render_pdf(report: Report, *, max_rows: int | None = None) -> bytes:
    """The report as PDF bytes. Raises charts.FontMissing without the CJK font."""
    cjk_font()  # WeasyPrint would fall back silently to a font without Chinese: fail first
    html = render_html(report, max_rows=max_rows)
    return weasyprint.HTML(string=html).write_pdf()


def render_html(report: Report, *, max_rows: int | None = None) -> str:
    """The HTML the PDF is laid out from (self-contained: CSS and charts inline)."""
    w = words(report.language)
    footer = " ".join(_css_piece(piece) for piece in _split_page_words(w["page"]))
    css = _CSS.replace("PAGE_FOOTER", footer).replace("CJK_FAMILY", CJK_FAMILY)
    body = [f"<h1>{escape(report.title)}</h1>", _facts(report)]
    if report.kpis:
        body.append(_kpis(report))
    for part in report.parts:
        body.append(_part(part, report, max_rows))
    lang = "zh-CN" if report.language == "zh" else "en"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(report.title)}</title>'
        f"<style>{css}</style></head><body>{''.join(body)}</body></html>"
    )


def _split_page_words(template: str) -> list[str]:
    """"第 {page} 页，共 {pages} 页" → ["第 ", "{page}", " 页，共 ", "{pages}", " 页"]."""
    out, rest = [], template
    while rest:
        head, sep, tail = rest.partition("{")
        if head:
            out.append(head)
        if not sep:
            break
        name, _, rest = tail.partition("}")
        out.append("{" + name + "}")
    return out


def _css_piece(piece: str) -> str:
    if piece == "{page}":
        return "counter(page)"
    if piece == "{pages}":
        return "counter(pages)"
    return '"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _facts(report: Report) -> str:
    w = words(report.language)
    rows = [(w["period"], f'<span class="period">{escape(report.period.label)} · {escape(period_text(report))}</span>')]
    if report.scope:
        rows.append((w["scope"], escape(report.scope)))
    rows.append((w["timezone"], escape(report.timezone)))
    rows.append((w["generated"], escape(local_time(report.generated_ns, report.timezone))))
    cells = "".join(f'<tr><td class="label">{escape(label)}</td><td>{value}</td></tr>' for label, value in rows)
    return f'<table class="facts">{cells}</table>'


def _kpis(report: Report) -> str:
    w = words(report.language)
    head = "".join(f"<th>{escape(w[k])}</th>" for k in ("kpi", "value", "target", "verdict"))
    rows = []
    for kpi in report.kpis:
        verdict_text = verdict(kpi, report.language)
        css = "" if kpi.ok is None else ("ok" if kpi.ok else "bad")
        rows.append(
            f"<tr><td>{escape(kpi.label)}</td>"
            f'<td class="n">{escape(kpi_text(kpi, kpi.value, report.language))}</td>'
            f'<td class="n">{escape(kpi_text(kpi, kpi.target, report.language)) if kpi.target is not None else ""}</td>'
            f'<td class="{css}">{escape(verdict_text)}</td></tr>'
        )
    colgroup = '<colgroup><col style="width:46%"><col style="width:20%"><col style="width:20%"><col style="width:14%"></colgroup>'
    return (
        f"<h2>{escape(w['kpis'])}</h2><table class=\"kpis\">{colgroup}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _part(part: Part, report: Report, max_rows: int | None) -> str:
    w = words(report.language)
    widths = [column_width(part, i, report.language, NARROW) + CELL_PADDING for i in range(len(part.columns))]
    total = sum(widths)
    wide = total > PORTRAIT_CELLS
    out = [f'<section class="part{" wide" if wide else ""}"><h2>{escape(part.title)}</h2>']
    if part.note:
        out.append(f'<div class="note">{escape(part.note)}</div>')
    for chart in part.charts:
        svg = base64.b64encode(chart_svg(chart, report.language)).decode("ascii")
        out.append(f'<div class="chart"><img src="data:image/svg+xml;base64,{svg}" alt="{escape(chart.title)}"></div>')
    if not part.rows:
        out.append(f'<p class="empty">{escape(w["empty"])}</p></section>')
        return "".join(out)
    rows = part.rows if max_rows is None else part.rows[:max_rows]
    if len(rows) < len(part.rows):
        out.append(f'<div class="note">{escape(w["truncated"].format(shown=len(rows), total=len(part.rows)))}</div>')
    cols = "".join(f'<col style="width:{width / total * 100:.2f}%">' for width in widths)
    # A table of few narrow columns is not stretched across the page: it gets the share of the
    # width its columns need, with 30 % to spare (at least half the page).
    table_width = 100.0 if wide else min(100.0, max(50.0, total / PORTRAIT_CELLS * 100 * _AIR))
    head = "".join(f"<th>{escape(c.header(report.language))}</th>" for c in part.columns)
    classes = [_cell_class(c.type) for c in part.columns]
    places = [c.places for c in part.columns]
    kinds = [c.type for c in part.columns]
    tz = report.timezone
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{css}>{escape(cell_text(kind, value, p, tz))}</td>"
            for value, kind, p, css in zip(row, kinds, places, classes)
        )
        + "</tr>"
        for row in rows
    )
    out.append(
        f'<table class="data" style="width:{table_width:.0f}%"><colgroup>{cols}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
    if len(part.rows) >= COUNT_FROM:
        out.append(f'<p class="rows">{escape(w["rows"].format(n=len(part.rows)))}</p>')
    out.append("</section>")
    return "".join(out)


def _cell_class(kind: ColumnType) -> str:
    """Numbers right-aligned and unbroken, times unbroken, text as it comes."""
    if kind in _NUMERIC:
        return ' class="n"'
    return ' class="t"' if kind is ColumnType.DATETIME else ""
