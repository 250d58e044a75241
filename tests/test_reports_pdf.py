"""The PDF rendering (monitor/reports/pdf.py, charts.py), checked through poppler's pdftotext and
pdfinfo: Chinese text extractable as written, every row on some page exactly once, the header
row repeated on every page of a table, the page header and "第 N 页，共 M 页" footer, headline
figures with their verdicts, notes about data not seen, landscape pages for wide tables,
charts drawn with the CJK font, and a clear error without it."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import warnings
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lab.reports import sample_report
from monitor.reports import charts
from monitor.reports.document import Column, ColumnType, Part, Report
from monitor.reports.pdf import render_pdf
from monitor.reports.text import kpi_text

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (Makefile APT_PKGS)")

POINTS = 400
ROW = re.compile(r"(CAM-\d{5})\s+\S+号路口")  # an availability row: id, then the point's name


def pdf_pages(data: bytes, tmp_path: Path) -> list[str]:
    """The text of each page (pdftotext -layout), in order."""
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1]  # a form feed ends every page


def page_sizes(data: bytes, tmp_path: Path) -> list[tuple[float, float]]:
    path = tmp_path / "sizes.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(path)], capture_output=True, text=True, check=True).stdout
    return [(float(w), float(h)) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info)]


@pytest.fixture(scope="module")
def report() -> Report:
    return sample_report(POINTS)


@pytest.fixture(scope="module")
def pages(report, tmp_path_factory) -> list[str]:
    return pdf_pages(render_pdf(report), tmp_path_factory.mktemp("pdf"))


def test_every_page_has_the_title_period_and_page_of_pages(pages):
    assert len(pages) > 5
    for n, page in enumerate(pages, start=1):
        assert "邛崃雪亮工程 季度考核报告（示例数据）" in page
        assert "2026Q4 · 2026-10-01 至 2026-12-31" in page
        assert f"第 {n} 页，共 {len(pages)} 页" in page


def test_the_first_page_has_the_facts_and_every_headline_figure_with_its_verdict(report, pages):
    first = pages[0]
    for fact in ("统计周期", "全部区域", "Asia/Shanghai", "2027-01-01 08:00", "主要指标"):
        assert fact in first
    for kpi in report.kpis:
        line = next(line for line in first.splitlines() if kpi.label in line)
        assert kpi_text(kpi, kpi.value, "zh") in line
        if kpi.target is not None:
            assert kpi_text(kpi, kpi.target, "zh") in line
        if kpi.ok is not None:
            assert line.rstrip().endswith("达标" if kpi.ok else "未达标")


def test_every_row_is_on_some_page_once_with_the_header_repeated(report, pages):
    ids = [row[0] for row in report.part("点位可用性").rows]
    seen = [m for page in pages for m in ROW.findall(page)]
    assert seen == ids  # all of them, in order, none twice, none cut at a page break
    pages_with_rows = [page for page in pages if ROW.search(page)]
    assert len(pages_with_rows) >= 3
    for page in pages_with_rows:
        assert re.search(r"点位编号\s+点位名称\s+区域\s+类型\s+在线率\s+离线时长\s+排除时长\s+最近离线\s+平均时延\(ms\)", page)


def test_cells_are_written_for_people_in_the_reports_zone(report, pages):
    text = "\n".join(pages)
    part = report.part("点位可用性")
    row = next(r for r in part.rows if None not in r)
    line = next(line for line in text.splitlines() if row[0] in line and "号路口" in line)
    # pct with two decimals, durations as h:mm, times in Asia/Shanghai, ms with one decimal
    rate, down, excluded, last, rtt = row[4:9]
    assert f"{rate * 100:.2f}%" in line
    assert f"{round(down / 60) // 60}:{round(down / 60) % 60:02d}" in line
    assert f"{rtt:.1f}" in line
    assert datetime.fromtimestamp(last / 1e9, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") in line
    blind = next(line for line in text.splitlines() if "CAM-00006" in line and "号路口" in line)
    assert blind.count("—") == 5  # no data: shown as such, not as 0


def test_notes_about_data_not_seen_and_empty_parts_are_printed(report, pages):
    text = re.sub(r"\s+", "", "\n".join(pages))  # pdftotext wraps long lines
    for part in report.parts:
        if part.note:
            assert re.sub(r"\s+", "", part.note) in text
    assert "排除时段本期无记录。" in text


def test_a_long_table_can_be_cut_short_with_a_pointer_to_the_xlsx(report, tmp_path):
    pages = pdf_pages(render_pdf(report, max_rows=50), tmp_path)
    text = re.sub(r"\s+", "", "\n".join(pages))  # pdftotext wraps long lines
    assert [m for page in pages for m in ROW.findall(page)] == [r[0] for r in report.part("点位可用性").rows[:50]]
    assert f"PDF仅列出前50行（共{POINTS}行），完整清单见同期XLSX文件。" in text
    assert f"共{POINTS}行" in text  # the count under the table is the whole part's


def test_wide_tables_go_on_landscape_pages(tmp_path):
    base = sample_report(30)
    wide = Part(
        "宽表",
        tuple(Column(f"c{i}", f"很宽的列标题{i}", f"Column {i}", ColumnType.TEXT) for i in range(9)),
        tuple(tuple(f"值{i}-{r}" for i in range(9)) for r in range(5)),
    )
    data = render_pdf(dataclasses.replace(base, parts=(base.parts[3], wide)))
    sizes = page_sizes(data, tmp_path)
    assert sizes[0] == pytest.approx((595.28, 841.89), abs=0.5)  # A4 portrait
    assert sizes[-1] == pytest.approx((841.89, 595.28), abs=0.5)  # A4 landscape
    last = pdf_pages(data, tmp_path)[-1]
    assert "很宽的列标题0" in last and "很宽的列标题8" in last and "值8-4" in last  # on one line each: nothing cut


def test_english_reports_have_english_words(tmp_path):
    pages = pdf_pages(render_pdf(sample_report(30, language="en")), tmp_path)
    assert f"Page 1 of {len(pages)}" in pages[0]
    assert "Headline figures" in pages[0] and "missed" in pages[0]
    assert "Availability per point" in "\n".join(pages)


def test_charts_draw_chinese_with_the_cjk_font():
    chart = sample_report(30).parts[0].charts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)" otherwise
        svg = charts.chart_svg(chart).decode()
    fonts = set(re.findall(r'id="([A-Za-z-]+)-[0-9a-f]+"', svg))  # glyph ids name their font
    assert fonts == {"NotoSansCJKsc-Regular", "NotoSansCJKsc-Bold"}
    assert charts.chart_svg(chart) == charts.chart_svg(chart)  # no date, no random ids: reproducible


def test_without_the_cjk_font_rendering_fails_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(charts, "CJK_FAMILY", "Noto Sans CJK QQ")
    charts.cjk_font.cache_clear()
    try:
        with pytest.raises(charts.FontMissing, match=r"no 'Noto Sans CJK QQ' font: install Debian's fonts-noto-cjk"):
            render_pdf(sample_report(10))
    finally:
        monkeypatch.undo()
        charts.cjk_font.cache_clear()
