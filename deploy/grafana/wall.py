"""A picture of a dashboard as Grafana would lay it out, for where no Grafana runs (it is in
neither Debian nor PyPI): an HTML page placing each panel by its gridPos on Grafana's grid
(24 columns, rows of 30 px, 8 px margins, kiosk mode's page padding) and drawing the panel's
query results with its own settings: stat colours from thresholds, value mappings and units,
the organize and joinByField transformations of tables, thresholds as dashed lines, the geomap's
markers at their lat/lon (no basemap tiles offline). Screenshot it with headless Chromium.

`render_html(dashboard, results, width, height)`: `dashboard` the dashboard JSON, `results` per
panel id the InfluxDB series of each target in order (the /query answer's `series` lists, each
`{"name", "tags"?, "columns", "values"}`). Panel types drawn: stat, barchart, timeseries,
geomap, table, bargauge; another type raises ValueError.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

GRID_CELL_PX, GRID_MARGIN_PX, GRID_COLUMNS = 30, 8, 24
PAGE_PADDING_PX = 16  # kiosk mode keeps the page's padding around the grid
# Grafana's dark theme: its named colours (packages/grafana-data/src/themes/palette.ts).
COLOURS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A", "blue": "#5794F2",
           "text": "#CCCCDC", "dark-green": "#37872D", "transparent": "transparent"}
BACKGROUND, PANEL, BORDER, TEXT, MUTED = "#111217", "#181B1F", "#2A2D33", "#CCCCDC", "#8E8E9A"

Series = list[dict[str, Any]]


def colour(name: str | None) -> str:
    return COLOURS.get(name or "text", name or TEXT)


def threshold_colour(thresholds: dict | None, value: Any) -> str | None:
    """The colour of the highest step at or below `value` (Grafana's absolute thresholds)."""
    if not thresholds or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    chosen = None
    for step in thresholds["steps"]:
        if step["value"] is None or value >= step["value"]:
            chosen = step["color"]
    return colour(chosen)


def mapped(mappings: list[dict], value: Any) -> tuple[str, str | None] | None:
    """(text, colour) of the first mapping matching `value`, or None."""
    raw = str(value).lower() if isinstance(value, bool) else str(value if value is not None else "")
    for mapping in mappings or ():
        if mapping["type"] == "value" and raw in mapping["options"]:
            result = mapping["options"][raw]
            return result.get("text", raw), colour(result.get("color")) if result.get("color") else None
        if mapping["type"] == "special" and mapping["options"]["match"] == "empty" and raw == "":
            result = mapping["options"]["result"]
            return result.get("text", ""), colour(result.get("color")) if result.get("color") else None
    return None


def formatted(value: Any, unit: str | None, decimals: int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    places = decimals if decimals is not None else (0 if float(value).is_integer() else 1)
    text = f"{value:.{places}f}"
    if unit == "percent":
        return f"{text}%"
    if unit in ("ms", "s"):
        return f"{text} {unit}"
    if unit and unit.startswith("suffix:"):
        return f"{text} {unit.partition(':')[2].strip()}"
    return text


# -- data frames ----------------------------------------------------------------------------------


def _grafana_name(column: str) -> str:
    return "Time" if column == "time" else column  # Grafana's InfluxQL frames call it "Time"


def rows(series: Series) -> list[dict[str, Any]]:
    """A target's result as table rows: GROUP BY tags and columns."""
    return [{**s.get("tags", {}), **{_grafana_name(c): v for c, v in zip(s["columns"], row)}}
            for s in series for row in s["values"]]


def columns(series: Series) -> list[str]:
    """Column order as Grafana's table shows an InfluxQL table result: time, the tags, the fields."""
    if not series:
        return []
    first = series[0]
    return [_grafana_name(first["columns"][0]), *first.get("tags", {}), *first["columns"][1:]]


def table_frame(panel: dict, results: list[Series]) -> tuple[list[str], list[dict[str, Any]]]:
    """The rows of a table panel after its transformations (joinByField inner on a field;
    organize: excluded columns dropped, the others renamed)."""
    names, table = columns(results[0]), rows(results[0])
    for transformation in panel.get("transformations", []):
        options = transformation["options"]
        if transformation["id"] == "joinByField":
            key = options["byField"]
            other = {row[key]: row for row in rows(results[1])}
            table = [{**other[row[key]], **row} for row in table if row.get(key) in other]
            names += [c for c in columns(results[1]) if c not in names]
        elif transformation["id"] == "organize":
            index = options.get("indexByName", {})
            kept = sorted((c for c in names if not options["excludeByName"].get(c)),
                          key=lambda c: index.get(c, len(index)))  # stable: the others keep their order
            rename = options["renameByName"]
            table = [{rename.get(c, c): row.get(c) for c in kept} for row in table]
            names = [rename.get(c, c) for c in kept]
    for sort in panel.get("options", {}).get("sortBy", []):
        key = sort["displayName"]
        table.sort(key=lambda row: (row.get(key) is None, row.get(key) if row.get(key) is not None else 0),
                   reverse=bool(sort.get("desc")))
    return names, table


def last_value(series: Series) -> Any:
    values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
    return values[-1] if values else None


# -- panels ---------------------------------------------------------------------------------------


def _stat(panel: dict, results: list[Series], w: int, h: int) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    value = last_value(results[0])
    if value is None and defaults.get("noValue") is not None:
        value = float(defaults["noValue"])
    background = threshold_colour(defaults.get("thresholds"), value) or PANEL
    text = formatted(value, defaults.get("unit"), defaults.get("decimals"))
    size = min(h * 0.55, 96, (w - 30) / max(len(text), 1) * 1.7)  # Grafana's auto size: fit width and height
    return (f'<div class="stat" style="background:{background}"><div class="title light">{_title(panel)}</div>'
            f'<div class="big" style="font-size:{size:.0f}px">{text}</div></div>')


def _barchart(panel: dict, results: list[Series], w: int, h: int) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    names, table = table_frame(panel, results)
    label, value = panel["options"]["xField"], next(c for c in names if c not in ("Time", panel["options"]["xField"]))
    low, high = defaults.get("min", 0), defaults.get("max", 100)
    lines = [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]
    bar_h = max(18, min(44, (h - 60) / max(len(table), 1) - 10))
    out = []
    for row in table:
        v = row[value]
        pct = 100 * (v - low) / (high - low) if v is not None else 0
        out.append(f'<div class="barrow" style="height:{bar_h:.0f}px"><span class="barlabel">{html.escape(str(row[label]))}'
                   f'</span><span class="bartrack"><span class="bar" style="width:{pct:.1f}%;background:'
                   f'{threshold_colour(defaults["thresholds"], v)}"></span>'
                   + "".join(f'<span class="limit" style="left:{100 * (t - low) / (high - low):.1f}%"></span>' for t in lines)
                   + f'</span><span class="barvalue">{formatted(v, defaults.get("unit"), defaults.get("decimals"))}</span></div>')
    scale = "".join(f'<span style="left:{100 * (t - low) / (high - low):.1f}%">{t:g}%</span>' for t in lines)
    return f'<div class="title">{_title(panel)}</div><div class="bars">{"".join(out)}<div class="scale">{scale}</div></div>'


def _timeseries(panel: dict, results: list[Series], w: int, h: int) -> str:
    """Bars per time bucket (the daily view) against the threshold lines, y from a little
    under the lowest value or line up to the panel's max."""
    defaults = panel["fieldConfig"]["defaults"]
    zone = ZoneInfo(_tz(panel["targets"][0]["query"]))
    points = [(row[0], row[1]) for s in results[0] for row in s["values"] if row[1] is not None]
    lines = [s["value"] for s in defaults.get("thresholds", {}).get("steps", []) if s["value"] is not None]
    high = defaults.get("max", max((v for _t, v in points), default=1))
    low = math.floor(min([v for _t, v in points] + lines) - 3) if points else 0
    plot_w, plot_h = w - 70, h - 70
    bars, width = [], min(plot_w / max(len(points), 1), 60)  # Grafana's bars stay slim with few buckets
    for i, (ts, v) in enumerate(points):
        top = plot_h * (high - v) / (high - low)
        bars.append(f'<rect x="{50 + i * width + width * 0.15:.1f}" y="{10 + top:.1f}" width="{width * 0.7:.1f}" '
                    f'height="{plot_h - top:.1f}" fill="{threshold_colour(defaults.get("thresholds"), v)}"/>'
                    f'<text x="{50 + (i + 0.5) * width:.1f}" y="{plot_h + 26}" class="axis" text-anchor="middle">'
                    f'{day(ts, zone)}</text>'
                    f'<text x="{50 + (i + 0.5) * width:.1f}" y="{6 + top:.1f}" class="val" text-anchor="middle">'
                    f'{formatted(v, defaults.get("unit"), defaults.get("decimals"))}</text>')
    marks = "".join(
        f'<line x1="50" x2="{50 + plot_w}" y1="{10 + plot_h * (high - t) / (high - low):.1f}" '
        f'y2="{10 + plot_h * (high - t) / (high - low):.1f}" class="dash"/>'
        f'<text x="44" y="{14 + plot_h * (high - t) / (high - low):.1f}" class="axis" text-anchor="end">{t:g}%</text>'
        for t in lines
    )
    axis = (f'<text x="44" y="18" class="axis" text-anchor="end">{high:g}%</text>'
            f'<text x="44" y="{10 + plot_h}" class="axis" text-anchor="end">{low:g}%</text>')
    return (f'<div class="title">{_title(panel)}</div><svg width="{w - 12}" height="{h - 40}">{"".join(bars)}{marks}'
            f"{axis}</svg>")


def _tz(query: str) -> str:
    """The zone of an InfluxQL query's tz('…') clause, else UTC."""
    found = re.search(r"tz\('([^']+)'\)", query)
    return found.group(1) if found else "UTC"


def day(ts_ns: int, zone: ZoneInfo) -> str:
    """A bucket's start (UTC ns) as the local date people read, MM-DD."""
    return datetime.fromtimestamp(ts_ns / 1e9, zone).strftime("%m-%d")


def _geomap(panel: dict, results: list[Series], w: int, h: int) -> str:
    """The markers layer at its latitude/longitude fields, coloured by the colour field's
    mappings, framed to fit the points ("fit" view); unlabelled points are up."""
    layer = panel["options"]["layers"][0]
    lat_f, lon_f = layer["location"]["latitude"], layer["location"]["longitude"]
    field = layer["config"]["style"]["color"]["field"]
    mappings = panel["fieldConfig"]["defaults"].get("mappings", [])
    _names, table = table_frame(panel, results)  # fields by their display names, as the layer names them
    points = [r for r in table if r.get(lat_f) is not None and r.get(lon_f) is not None]
    lats, lons = [p[lat_f] for p in points], [p[lon_f] for p in points]
    pad = 70  # room for the site names at the edges
    plot_w, plot_h = w - 2 * pad, h - 60 - 2 * 30
    span_lat, span_lon = (max(lats) - min(lats)) or 0.01, (max(lons) - min(lons)) or 0.01
    scale = min(plot_w / (span_lon * math.cos(math.radians(sum(lats) / len(lats)))), plot_h / span_lat)

    def xy(p: dict) -> tuple[float, float]:
        x = pad + (p[lon_f] - min(lons)) * math.cos(math.radians(sum(lats) / len(lats))) * scale
        return x, 30 + (max(lats) - p[lat_f]) * scale

    dots, labels, legend = [], [], {}
    worst_last = {"up": 0, "unknown": 1, "unreachable": 2, "down": 3}  # a site's worst point drawn on top
    for p in sorted(points, key=lambda p: worst_last.get(p[field], 1)):
        text, fill = mapped(mappings, p[field]) or (p[field], TEXT)
        legend[text] = fill
        x, y = xy(p)
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if p[field] != "up" else 5}" fill="{fill}" '
                    f'fill-opacity="0.9" stroke="#000" stroke-width="0.6"/>')
    sites: dict[str, list[tuple[float, float]]] = {}
    site_field = _organize_name(panel, "site")
    for p in points:
        sites.setdefault(p.get(site_field, ""), []).append(xy(p))
    for site, spots in sites.items():
        x, y = sum(s[0] for s in spots) / len(spots), min(s[1] for s in spots)
        labels.append(f'<text x="{x:.1f}" y="{y - 12:.1f}" class="site" text-anchor="middle">{html.escape(site)}</text>')
    keys = "".join(f'<span class="key"><i style="background:{c}"></i>{html.escape(t)}</span>' for t, c in legend.items())
    return (f'<div class="title">{_title(panel)}</div><svg class="map" width="{w - 12}" height="{h - 64}">'
            f'{"".join(dots)}{"".join(labels)}</svg><div class="legend">{keys}<span class="note">离线渲染：无底图瓦片'
            "</span></div>")


def _table(panel: dict, results: list[Series], w: int, h: int) -> str:
    names, table = table_frame(panel, results)
    defaults = panel["fieldConfig"]["defaults"]
    overrides = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
                 for o in panel["fieldConfig"]["overrides"]}
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for row in table:
        cells = []
        for name in names:
            config = overrides.get(name, {})
            value = row.get(name)
            hit = mapped(config.get("mappings", defaults.get("mappings", [])), value)
            text = hit[0] if hit else formatted(value, config.get("unit", defaults.get("unit")),
                                                config.get("decimals", defaults.get("decimals")))
            tint = (hit[1] if hit else None) or threshold_colour(config.get("thresholds", defaults.get("thresholds")), value)
            mode = config.get("custom.cellOptions", {}).get("type")
            style = ""
            if tint and mode == "color-background":
                style = f' style="background:{tint};color:#000"'
            elif tint and mode == "color-text":
                style = f' style="color:{tint}"'
            cells.append(f"<td{style}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    empty = "" if table else '<div class="empty">无数据</div>'
    return (f'<div class="title">{_title(panel)}</div><div class="tablewrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{empty}</div>")


def _bargauge(panel: dict, results: list[Series], w: int, h: int) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    out = []
    for s in results[0]:
        v = last_value([s])
        label = next(iter(s.get("tags", {}).values()), s["name"])
        pct = 100 * (v - defaults.get("min", 0)) / (defaults.get("max", 100) - defaults.get("min", 0)) if v is not None else 0
        out.append(f'<div class="barrow" style="height:26px"><span class="barlabel">{html.escape(str(label))}</span>'
                   f'<span class="bartrack"><span class="bar" style="width:{pct:.1f}%;background:'
                   f'{threshold_colour(defaults.get("thresholds"), v)}"></span></span>'
                   f'<span class="barvalue">{formatted(v, defaults.get("unit"), defaults.get("decimals"))}</span></div>')
    return f'<div class="title">{_title(panel)}</div><div class="bars">{"".join(out)}</div>'


DRAW: dict[str, Callable[[dict, list[Series], int, int], str]] = {
    "stat": _stat, "barchart": _barchart, "timeseries": _timeseries, "geomap": _geomap, "table": _table,
    "bargauge": _bargauge,
}


def _organize_name(panel: dict, field: str) -> str:
    """The display name of `field` after the panel's organize transformation."""
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            return transformation["options"]["renameByName"].get(field, field)
    return field


def _title(panel: dict) -> str:
    return html.escape(panel["title"])


def panel_box(x: int, y: int, w: int, h: int, width: int) -> tuple[float, float, float, float]:
    """Left, top, width and height in px of a gridPos on a screen `width` px wide."""
    column = (width - 2 * PAGE_PADDING_PX - (GRID_COLUMNS - 1) * GRID_MARGIN_PX) / GRID_COLUMNS
    return (PAGE_PADDING_PX + x * (column + GRID_MARGIN_PX), PAGE_PADDING_PX + y * (GRID_CELL_PX + GRID_MARGIN_PX),
            w * column + (w - 1) * GRID_MARGIN_PX, h * GRID_CELL_PX + (h - 1) * GRID_MARGIN_PX)


STYLE = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: {BACKGROUND}; color: {TEXT}; overflow: hidden;
       font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Droid Sans Fallback", sans-serif; }}
.panel {{ position: absolute; background: {PANEL}; border: 1px solid {BORDER}; border-radius: 2px; overflow: hidden;
          padding: 0 6px; }}
.title {{ font-size: 15px; font-weight: 600; height: 32px; line-height: 32px; white-space: nowrap; overflow: hidden; }}
.title.light {{ color: #000; opacity: .8; }}
.stat {{ position: absolute; inset: 0; padding: 0 10px; color: #000; }}
.big {{ font-weight: 600; text-align: center; line-height: 1.3; }}
.bars {{ padding: 6px 8px; position: relative; }}
.barrow {{ display: flex; align-items: center; gap: 8px; margin-bottom: 10px; font-size: 15px; }}
.barlabel {{ width: 64px; text-align: right; }}
.bartrack {{ flex: 1; height: 100%; background: #22252b; position: relative; }}
.bar {{ position: absolute; left: 0; top: 0; bottom: 0; }}
.limit {{ position: absolute; top: -4px; bottom: -4px; border-left: 2px dashed #fff; }}
.barvalue {{ width: 64px; font-weight: 600; }}
.scale {{ position: relative; height: 16px; margin-left: 72px; margin-right: 72px; font-size: 12px; color: {MUTED}; }}
.scale span {{ position: absolute; transform: translateX(-50%); }}
svg text.axis {{ fill: {MUTED}; font-size: 12px; }}
svg text.val {{ fill: {TEXT}; font-size: 12px; }}
svg text.site {{ fill: {TEXT}; font-size: 13px; }}
svg line.dash {{ stroke: #fff; stroke-width: 1.5; stroke-dasharray: 6 4; }}
svg.map {{ background: #0b1a26; }}
.legend {{ font-size: 13px; height: 22px; line-height: 22px; }}
.key {{ margin-right: 14px; }} .key i {{ display: inline-block; width: 10px; height: 10px; border-radius: 5px;
  margin-right: 4px; }}
.note {{ color: {MUTED}; float: right; }}
.tablewrap {{ overflow: hidden; height: calc(100% - 34px); }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th {{ text-align: left; color: #6E9FFF; font-weight: 500; border-bottom: 1px solid {BORDER}; padding: 5px 6px; }}
td {{ border-bottom: 1px solid {BORDER}; padding: 5px 6px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
      max-width: 260px; }}
.empty {{ color: {MUTED}; padding: 20px; text-align: center; }}
"""


def render_html(dashboard: dict, results: dict[int, list[Series]], width: int = 1920, height: int = 1080) -> str:
    """The page: every panel of `dashboard` at its grid box, drawn from `results` (panel id →
    each target's series). Raises ValueError on a row or a panel type it cannot draw, KeyError
    on a panel without results."""
    boxes = []
    for panel in dashboard["panels"]:
        if panel["type"] not in DRAW:
            raise ValueError(f"panel {panel['title']!r}: cannot draw type {panel['type']!r}")
        pos = panel["gridPos"]
        left, top, w, h = panel_box(pos["x"], pos["y"], pos["w"], pos["h"], width)
        inner = DRAW[panel["type"]](panel, results[panel["id"]], int(w), int(h))
        boxes.append(f'<div class="panel" id="panel-{panel["id"]}" style="left:{left:.1f}px;top:{top:.1f}px;'
                     f'width:{w:.1f}px;height:{h:.1f}px">{inner}</div>')
    return (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(dashboard["title"])}'
            f'</title><style>{STYLE}</style></head><body style="width:{width}px;height:{height}px">{"".join(boxes)}'
            "</body></html>")
