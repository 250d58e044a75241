"""Chart specs (document.py) drawn by matplotlib as SVG, for the PDF.

The text in the charts is Chinese, so matplotlib must draw with a CJK font: Noto Sans CJK SC
from Debian's fonts-noto-cjk, found through fontconfig (the same lookup WeasyPrint's Pango
does) and registered with matplotlib's font manager, whose cache may predate the font's
installation. Without it `FontMissing` says what to install, instead of charts with empty boxes
for every Chinese character.

Glyphs are embedded as paths (matplotlib's default `svg.fonttype: path`), so the charts look the
same whatever renders the SVG.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from functools import cache

import matplotlib

matplotlib.use("Agg")  # no display; must come before pyplot

from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from monitor.reports.document import BarChart, Chart, ColumnType, LineChart  # noqa: E402
from monitor.reports.text import words  # noqa: E402

CJK_FAMILY = "Noto Sans CJK SC"

WIDTH_IN = 6.7  # the A4 text width at 14 mm margins
HEIGHT_IN = 2.6

_BLUE = "#3B6FB6"
_RED = "#C0392B"
_TARGET = "#E67E22"
_LINE_COLOURS = ("#3B6FB6", "#27AE60", "#8E44AD", "#7F8C8D", "#D35400")
_MAX_X_LABELS = 16  # a trend with more x labels shows every n-th


class FontMissing(RuntimeError):
    """The CJK font for charts and PDF text is not installed."""


@cache
def cjk_font() -> str:
    """The family name to draw Chinese with (CJK_FAMILY), after making sure matplotlib knows it.
    Raises FontMissing naming the Debian package when fontconfig does not have it."""
    if not _known_to_matplotlib():
        for path in _fontconfig_files(CJK_FAMILY):
            font_manager.fontManager.addfont(path)
        if not _known_to_matplotlib():
            raise FontMissing(
                f"no {CJK_FAMILY!r} font: install Debian's fonts-noto-cjk "
                "(apt-get install -y fonts-noto-cjk); reports need it for Chinese text and charts"
            )
    return CJK_FAMILY


def _known_to_matplotlib() -> bool:
    return any(f.name == CJK_FAMILY for f in font_manager.fontManager.ttflist)


def _fontconfig_files(family: str) -> list[str]:
    """Font files fontconfig has for `family` (none when fc-list is missing)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    done = subprocess.run(
        [fc_list, "--format", "%{file}\n", f":family={family}"], capture_output=True, text=True, timeout=30
    )
    return sorted({line for line in done.stdout.splitlines() if line})


def chart_svg(chart: Chart, language: str = "zh") -> bytes:
    """One chart as an SVG document (UTF-8 bytes), WIDTH_IN × HEIGHT_IN inches."""
    family = cjk_font()
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    # A fixed hash salt and no date: the same chart gives the same bytes (reproducible reports).
    style = {"font.family": [family], "font.size": 8, "axes.unicode_minus": False, "svg.hashsalt": "fleetmon"}
    with matplotlib.rc_context(style):
        ax = fig.add_subplot()
        if isinstance(chart, BarChart):
            _bars(ax, chart, language)
        else:
            _lines(ax, chart, language)
        ax.set_title(chart.title, fontsize=9, loc="left", fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
        ax.set_axisbelow(True)
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _scale(kind: ColumnType) -> float:
    return 100.0 if kind is ColumnType.PCT else 1.0


def _label(value: float, kind: ColumnType) -> str:
    """A bar's value: 97.14 → "97.1%", 97.0 → "97.0%" (one decimal, so that bars compare
    at a glance); other values as whole numbers."""
    return f"{value:.1f}%" if kind is ColumnType.PCT else f"{value:,.0f}"


def _target_label(value: float, kind: ColumnType) -> str:
    """The target as a contract writes it: 95.0 → "95%", 99.9 → "99.9%"."""
    if kind is ColumnType.PCT:
        return f"{value:.1f}".removesuffix(".0") + "%"
    return f"{value:,.0f}"


def _limits(values: list[float], target: float | None, kind: ColumnType) -> tuple[float, float]:
    """The y range: for percentages from a round number below the lowest value (or the target)
    up to 100, so that 93 % and 97 % do not look alike; else from 0."""
    seen = values + ([target] if target is not None else [])
    if kind is not ColumnType.PCT or not seen:
        top = max(seen, default=1.0) or 1.0
        return 0.0, top * 1.15
    low = min(seen)
    bottom = max(0.0, math.floor((low - 3) / 5) * 5)
    return bottom, 101.0


def _bars(ax, chart: BarChart, language: str) -> None:
    scale = _scale(chart.value_type)
    values = [None if v is None else v * scale for v in chart.values]
    target = None if chart.target is None else chart.target * scale
    present = [v for v in values if v is not None]
    bottom, top = _limits(present, target, chart.value_type)
    positions = range(len(values))
    heights = [0.0 if v is None else v - bottom for v in values]
    colours = [_RED if target is not None and v is not None and v < target else _BLUE for v in values]
    bars = ax.bar(positions, heights, bottom=bottom, color=colours, width=0.6)
    for bar, v in zip(bars, values):
        if v is not None:
            ax.annotate(
                _label(v, chart.value_type),
                (bar.get_x() + bar.get_width() / 2, v),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    crowded = len(values) > 8
    ax.set_xticks(list(positions), chart.categories, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylim(bottom, top)
    _target_line(ax, target, chart.value_type, language)
    _percent_axis(ax, chart.value_type)


def _lines(ax, chart: LineChart, language: str) -> None:
    scale = _scale(chart.value_type)
    xs = list(range(len(chart.x)))
    everything: list[float] = []
    for i, series in enumerate(chart.series):
        ys = [math.nan if v is None else v * scale for v in series.values]  # NaN: a gap in the line
        everything += [y for y in ys if not math.isnan(y)]
        # A lone series needs no legend entry: the chart's title names it.
        label = series.name if len(chart.series) > 1 else None
        colour = _LINE_COLOURS[i % len(_LINE_COLOURS)]
        ax.plot(xs, ys, color=colour, linewidth=1.4, marker="o", markersize=2, label=label)
    target = None if chart.target is None else chart.target * scale
    ax.set_ylim(*_limits(everything, target, chart.value_type))
    step = max(1, math.ceil(len(xs) / _MAX_X_LABELS))
    ax.set_xticks(xs[::step], list(chart.x)[::step])
    _target_line(ax, target, chart.value_type, language)
    _percent_axis(ax, chart.value_type)


def _target_line(ax, target: float | None, kind: ColumnType, language: str) -> None:
    """The target as a dashed line, named in the legend (a label on the line would sit on the
    bars or the trend)."""
    if target is not None:
        label = words(language)["target_line"].format(v=_target_label(target, kind))  # type: ignore[arg-type]
        ax.axhline(target, color=_TARGET, linestyle="--", linewidth=1.1, label=label)
    handles, _labels = ax.get_legend_handles_labels()
    if handles:
        # Above the plot, right-aligned: the title is on the left.
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(handles), fontsize=7, frameon=False)


def _percent_axis(ax, kind: ColumnType) -> None:
    if kind is ColumnType.PCT:
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0f}%")
