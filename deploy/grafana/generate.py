"""fleetmon's Grafana dashboards as code (grafana-foundation-sdk 11.6, Grafana 11.6).

`python deploy/grafana/generate.py` writes deploy/grafana/dashboards/*.json (committed; a test
keeps them equal to a fresh generation); `--check` only compares and exits 1 when they are stale.

Every panel queries the provisioned InfluxDB datasource (uid DATASOURCE_UID) in raw InfluxQL,
which runs on InfluxDB 1.x, on 2.x through DBRP/v1 compatibility and on 3.x InfluxQL. Queries
use Grafana's `$timeFilter` and `$__interval` and the template variables `region` and `site`
(multi-value with "All": Grafana turns them into `(a|b)` inside `=~ /^$region$/`).

The command hall (`fleetmon-hall`) is a wall: one 1920×1080 screen in kiosk mode, nothing to
scroll (its grid height is checked against WALL_HEIGHT_PX less KIOSK_CHROME_PX). People read
names, not ids: device_state carries each point's name (and lat/lon for the map); tables of other
measurements join a names lookup (query B, `names()`) on device_id. States, kinds, severities,
events and traps show in Chinese through per-column value mappings; every figure with a limit
(the contract's 95 % and 200 ms, the rules' loss and jitter defaults …) has it as thresholds.

Each panel declares what it `needs`: measurement names, or `measurement.key` for a tag or field
it depends on (online_rate.basis). tests/test_grafana.py checks these against monitor/metrics/schema.py
(nothing may be undeclared) and runs every panel's queries on a real InfluxDB filled by the
daemon watching a lab fleet with all its services (ICMP, RTSP, ONVIF, SNMP, traps, rules): each
query must return a value.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import bargauge, barchart, geomap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash
from grafana_foundation_sdk.models import geomap as geomap_m

from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from rules.families.window import JitterRule, LossRule

DATASOURCE_UID = "fleetmon-influxdb"
DATASOURCE = dash.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "fleetmon"
# The contract's online rate (在线率) target and latency limit of a dedicated line (专线), as texts.
TARGET = f"{ONLINE_RATE_TARGET_PCT:g}"
LIMIT = f"{LINE_RTT_LIMIT_MS:g}"
CLOCK_DRIFT_LIMIT_S = 60.0  # rules' clock_drift default: evidence timestamps need a right clock
STORAGE_LIMIT_PCT = 90.0  # rules' storage_usage default
UPS_MINUTES_LOW = 10.0  # minutes of battery left under which a site goes dark soon: act now
UPS_CHARGE_LOW_PCT = 30.0  # battery charge under which a mains cut would not be bridged for long
IF_UP = 1  # IF-MIB ifOperStatus up(1), RFC 2863
# The rules' defaults for a dedicated line's loss and jitter (rules.config.default_rules uses them).
LOSS_LIMIT_PCT = LossRule.model_fields["above_pct"].default
JITTER_LIMIT_MS = JitterRule.model_fields["above_ms"].default
# Days of the daily online-rate view and the zone its days are cut in (the config's default
# `timezone`; the assessment's days are local days).
DAILY_DAYS = 30
DAILY_ZONE = "Asia/Shanghai"

# The wall: Grafana's grid (public/app/core/constants.ts: GRID_CELL_HEIGHT 30, GRID_CELL_VMARGIN
# 8, GRID_COLUMN_COUNT 24) on a 1920×1080 screen in kiosk mode, which hides the navigation and
# the variables but keeps the page's padding; budgeted at 64 px to be safe.
GRID_CELL_PX = 30
GRID_MARGIN_PX = 8
GRID_COLUMNS = 24
WALL_WIDTH_PX, WALL_HEIGHT_PX = 1920, 1080
KIOSK_CHROME_PX = 64


def grid_height_px(units: int) -> int:
    """Pixels of `units` grid rows: each row 30 px and a margin of 8 px between two rows."""
    return units * GRID_CELL_PX + max(units - 1, 0) * GRID_MARGIN_PX


# -- the InfluxQL target the SDK lacks ----------------------------------------------------------


class InfluxQLTarget(cogvariants.Dataquery):
    """One raw InfluxQL query of a panel on Grafana's InfluxDB datasource (rawQuery: true), as
    Grafana 11 stores it: {"refId", "datasource", "query", "rawQuery", "resultFormat", "alias"?}.

    result_format: "time_series" (one frame per series, legend from `alias`: `$tag_<key>`,
    `$col`) or "table" (rows, GROUP BY tags as columns). Raises ValueError on an empty query or
    refId, an unknown result format or rawQuery other than true (the builder mode of the editor
    is not what this generator writes)."""

    RESULT_FORMATS = ("time_series", "table")

    def __init__(
        self, query: str = "", ref_id: str = "A", result_format: str = "time_series", alias: str | None = None,
        datasource: dash.DataSourceRef | None = None,
    ) -> None:
        if not query.strip():
            raise ValueError("an InfluxQL target needs a query")
        if not ref_id:
            raise ValueError("an InfluxQL target needs a refId")
        if result_format not in self.RESULT_FORMATS:
            raise ValueError(f"resultFormat must be one of {self.RESULT_FORMATS}, not {result_format!r}")
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource if datasource is not None else DATASOURCE

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        if data.get("rawQuery") is not True:
            raise ValueError(f"target {data.get('refId')!r}: rawQuery must be true (raw InfluxQL only)")
        unknown = set(data) - {"refId", "datasource", "query", "rawQuery", "resultFormat", "alias"}
        if unknown:
            raise ValueError(f"target {data.get('refId')!r}: unknown keys {sorted(unknown)}")
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId", ""),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=dash.DataSourceRef.from_json(data["datasource"]) if "datasource" in data else None,
        )


class InfluxQL(cogbuilder.Builder[InfluxQLTarget]):
    """Builder of an InfluxQLTarget: InfluxQL(query).table().alias("$tag_group")."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLTarget(query, ref_id)

    def build(self) -> InfluxQLTarget:
        return self._internal

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self


def register_influxql() -> None:
    """Decode targets of panels on an "influxdb" datasource as InfluxQLTarget in the SDK's
    Dashboard.from_json (otherwise they stay an untyped UnknownDataquery)."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig("influxdb", InfluxQLTarget.from_json))


# -- query fragments ---------------------------------------------------------------------------

IN_REGION = '"region" =~ /^$region$/'
IN_SITES = '"region" =~ /^$region$/ AND "site" =~ /^$site$/'
DEVICE = "\"device_id\" = '$device_id'"  # single-value variable: Grafana inserts it as is
# The contract's basis of online_rate and device_state (by default network up and RTSP DESCRIBE OK).
CONTRACT_RATE = "\"basis\" = 'online'"
PER_INTERVAL = "GROUP BY time($__interval)"


def latest_offline(where: str) -> str:
    """Devices whose latest device_state of the contract's basis is not online (only counted
    ones: 延建/拆除 points are expected to be dark), one row each with its name, state and the
    maintenance window's reason ('' when none; the selector last() returns the other fields of
    the same point)."""
    return (
        'SELECT "name", "state", "maintenance" FROM (SELECT last("online") AS "online", "state", "name", "maintenance" '
        'FROM "device_state" '
        f'WHERE $timeFilter AND {CONTRACT_RATE} AND {where} AND "counted" = 1 '
        'GROUP BY "device_id", "kind", "site", "region") '
        'WHERE "online" = 0 GROUP BY "device_id", "kind", "site", "region"'
    )


def names(where: str) -> str:
    """The name (点位名称) of each device, from its latest device_state of the contract's basis:
    the lookup a table of another measurement joins on device_id (joinByField)."""
    return (
        f'SELECT last("name") AS "name" FROM "device_state" WHERE $timeFilter AND {CONTRACT_RATE} AND {where} '
        'GROUP BY "device_id"'
    )


VIDEO_LOST_TAGS = '"device_id", "site", "region"'


def _video_codes(where: str) -> str:
    """Per active camera, 2 × its latest basis-network `online` + its latest basis-video
    `online`: 2 exactly when it pings but sends no picture (3 both up, 0 or 1 network down).
    InfluxQL has no join, so each basis comes from its own subquery."""

    def latest(basis: str, factor: str) -> str:
        return (
            f'(SELECT {factor}last("online") AS "code" FROM "device_state" WHERE $timeFilter AND "basis" = \'{basis}\' '
            f'AND "kind" = \'camera\' AND "counted" = 1 AND {where} GROUP BY {VIDEO_LOST_TAGS})'
        )

    return f'SELECT sum("code") AS "code" FROM {latest("network", "2 * ")}, {latest("video", "")} GROUP BY {VIDEO_LOST_TAGS}'


def video_lost(where: str) -> str:
    """Active cameras that ping but send no picture, one row each, the code in column "code"."""
    return f'SELECT "code" FROM ({_video_codes(where)}) WHERE "code" = 2 GROUP BY {VIDEO_LOST_TAGS}'


def video_lost_count(where: str) -> str:
    """How many active cameras ping but send no picture (no row when none)."""
    return f'SELECT count("code") FROM ({_video_codes(where)}) WHERE "code" = 2'


def uplinks_down(where: str) -> str:
    """Switch uplink ports (point list `uplink`) whose latest ifOperStatus is not up, with their
    ifAdminStatus (2 = shut on purpose)."""
    tags = '"device_id", "interface", "site", "region"'
    return (
        'SELECT "oper_status", "admin_status" FROM (SELECT last("oper_status") AS "oper_status", '
        'last("admin_status") AS "admin_status" FROM "snmp_interface" '
        f'WHERE $timeFilter AND "uplink" = true AND {where} GROUP BY {tags}) '
        f'WHERE "oper_status" <> {IF_UP} GROUP BY {tags}'
    )


def cameras_off_inventory(where: str) -> str:
    """Cameras whose latest ONVIF answer shows a clock drift above the limit or a mismatch with
    the point list (firmware upgraded, model swapped …)."""
    return (
        'SELECT "clock_drift_s", "firmware", "inventory_mismatch" FROM (SELECT last("clock_drift_s") AS '
        '"clock_drift_s", last("firmware") AS "firmware", last("inventory_mismatch") AS "inventory_mismatch" '
        f'FROM "onvif" WHERE $timeFilter AND {where} GROUP BY "device_id", "site") '
        f'WHERE "clock_drift_s" > {CLOCK_DRIFT_LIMIT_S:g} OR "inventory_mismatch" <> \'\' GROUP BY "device_id", "site"'
    )


def link_summary(where: str) -> str:
    """Latest RTT, jitter and loss of every dedicated line (icmp of kind link)."""
    return (
        'SELECT last("rtt_avg_ms") AS "rtt_avg_ms", last("jitter_ms") AS "jitter_ms", last("loss_pct") AS "loss_pct" '
        f"FROM \"icmp\" WHERE $timeFilter AND \"kind\" = 'link' AND {where} GROUP BY \"device_id\", \"site\""
    )


def links_over_limit(where: str) -> str:
    """How many dedicated lines' latest average RTT is above the contract's limit (no row when none)."""
    return (
        'SELECT count("rtt_avg_ms") FROM (SELECT last("rtt_avg_ms") AS "rtt_avg_ms" FROM "icmp" WHERE $timeFilter '
        f"AND \"kind\" = 'link' AND {where} GROUP BY \"device_id\") WHERE \"rtt_avg_ms\" > {LIMIT}"
    )


OPEN_ORDER_FIELDS = ("ref", "fault_id", "severity", "title", "device_id", "device_name", "site", "region", "owner",
                     "sla_clock", "sla_deadline_ms", "sla_remaining_s")


def open_orders() -> str:
    """The open work orders of the latest snapshot: per slot its latest point (the selector
    last("open") returns the other fields of that same point), the slots holding an order; the
    time left in hours (sla_remaining_h: Grafana's duration units speak English)."""
    fields = ", ".join(f'"{f}"' for f in OPEN_ORDER_FIELDS)
    shown = fields.replace('"sla_remaining_s"', '"sla_remaining_s" / 3600 AS "sla_remaining_h"')
    return (
        f'SELECT {shown} FROM (SELECT last("open") AS "open", {fields} FROM "work_order_open" WHERE $timeFilter '
        'GROUP BY "slot") WHERE "open" = 1 GROUP BY "slot"'
    )


def link_series(field_name: str, where: str) -> str:
    """`field_name` of each dedicated line over time, by site and line (legend LINK_ALIAS)."""
    return (
        f'SELECT mean("{field_name}") FROM "icmp" WHERE $timeFilter AND "kind" = \'link\' AND {where} '
        f'{PER_INTERVAL}, "site", "device_id"'
    )


LINK_ALIAS = "$tag_site（$tag_device_id）"  # a line's legend: its site's name (people read it) and its id


# -- panel helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelSpec:
    """What the test needs to know of a panel: its queries, what they read and, on the device
    dashboard, which kind of device it is meant for (camera, switch, ups, server, link)."""

    dashboard_uid: str
    title: str
    targets: tuple[InfluxQLTarget, ...]
    needs: frozenset[str]
    device_kind: str | None = None


@dataclass
class Board:
    """One dashboard under construction and the specs of its panels."""

    uid: str
    title: str
    description: str
    variables: list[cogbuilder.Builder[dash.VariableModel]]
    refresh: str = "1m"
    builder: dash_b.Dashboard = field(init=False)
    panels: list[PanelSpec] = field(default_factory=list)
    _next_id: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        self.builder = (
            dash_b.Dashboard(self.title).uid(self.uid).description(self.description).tags([TAG])
            .timezone("browser").time("now-6h", "now").refresh(self.refresh).readonly()
            .tooltip(dash.DashboardCursorSync.CROSSHAIR).variables(self.variables)
            .link(dash_b.DashboardLink("fleetmon").type(dash.DashboardLinkType.DASHBOARDS).tags([TAG])
                  .as_dropdown(True).include_vars(True).keep_time(True))
        )

    def row(self, title: str) -> None:
        self.builder.with_row(dash_b.Row(title).id(self._take_id()))

    def add(
        self, panel: Any, *targets: InfluxQL, needs: set[str], device_kind: str | None = None,
    ) -> None:
        """Add a panel (a viz builder with title, size and options set) reading `targets`."""
        panel.id(self._take_id()).datasource(DATASOURCE).targets(list(targets))
        model = panel.build()
        custom = getattr(cogruntime.panelcfg_config(model.type_val), "field_config_from_json_hook", None)
        if model.field_config is not None and model.field_config.defaults.custom is None and custom is not None:
            # Spell out the panel type's default custom field config, as the SDK's from_json
            # does: the committed JSON is then a fixed point of its decode/encode check.
            model.field_config.defaults.custom = custom({})
        self.panels.append(PanelSpec(self.uid, model.title, tuple(model.targets), frozenset(needs), device_kind))
        self.builder.with_panel(panel)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def build(self) -> dash.Dashboard:
        return self.builder.build()


def thresholds(base: str, *steps: tuple[float, str]) -> dash_b.ThresholdsConfig:
    return dash_b.ThresholdsConfig().mode(dash.ThresholdsMode.ABSOLUTE).steps(
        [dash.Threshold(value=None, color=base), *(dash.Threshold(value=v, color=c) for v, c in steps)]
    )


RATE_THRESHOLDS = ("red", (ONLINE_RATE_TARGET_PCT, "green"))  # red below the target
RTT_THRESHOLDS = ("green", (LINE_RTT_LIMIT_MS, "red"))  # red above the limit

def value_map(**texts: tuple[str, str]) -> dash.ValueMap:
    """A value mapping: raw value → (Chinese text, colour)."""
    return dash.ValueMap(options={
        raw: dash.ValueMappingResult(text=text, color=color, index=i) for i, (raw, (text, color)) in enumerate(texts.items())
    })


def if_empty(text: str, color: str = "text") -> dash.SpecialValueMap:
    """Show `text` for an empty string (a field written as '' meaning "none")."""
    return dash.SpecialValueMap(options=dash.DashboardSpecialValueMapOptions(
        match=dash.SpecialValueMatch.EMPTY, result=dash.ValueMappingResult(text=text, color=color, index=0)))


# The words people read on the wall, in Chinese: states, kinds, severities, events, traps.
STATE_MAPPINGS: list[dash.ValueMapping] = [value_map(
    up=("在线", "green"), down=("离线", "red"), unreachable=("不可达（上级故障）", "orange"), unknown=("未知", "text"),
)]
KIND_MAPPINGS: list[dash.ValueMapping] = [value_map(
    camera=("摄像机", "text"), switch=("交换机", "text"), ups=("UPS", "text"), link=("专线", "text"),
    server=("服务器", "text"), platform=("平台", "text"), nvr=("NVR", "text"),
)]
SEVERITY_MAPPINGS: list[dash.ValueMapping] = [value_map(
    critical=("紧急", "red"), major=("重要", "orange"), minor=("一般", "yellow"),
)]
EVENT_MAPPINGS: list[dash.ValueMapping] = [value_map(
    firing=("告警", "red"), resolved=("恢复", "green"), acknowledged=("已认领", "blue"),
)]
TRAP_MAPPINGS: list[dash.ValueMapping] = [value_map(
    link_down=("端口断开", "red"), link_up=("端口恢复", "green"), cold_start=("冷启动", "orange"),
    warm_start=("热启动", "orange"), ups_on_battery=("UPS 电池供电", "red"), ups_test_completed=("UPS 自检完成", "text"),
    ups_alarm_entry_added=("UPS 告警", "red"), ups_alarm_entry_removed=("UPS 告警解除", "green"), other=("其他", "text"),
)]
BOOL_ALARM_MAPPINGS: list[dash.ValueMapping] = [value_map(true=("是", "red"), false=("否", "green"))]
BOOL_OK_MAPPINGS: list[dash.ValueMapping] = [value_map(true=("是", "green"), false=("否", "red"))]
IF_STATUS_MAPPINGS: list[dash.ValueMapping] = [value_map(  # ifOperStatus / ifAdminStatus, IF-MIB (RFC 2863)
    **{"1": ("启用 up", "green"), "2": ("断开 down", "red"), "3": ("测试 testing", "orange"),
       "4": ("未知 unknown", "text"), "5": ("休眠 dormant", "orange"), "6": ("不存在 notPresent", "red"),
       "7": ("下层断开 lowerLayerDown", "red")}
)]
OWNER_MAPPINGS: list[dash.ValueMapping] = [if_empty("未指派", "orange")]
UPS_SOURCE_MAPPINGS: list[dash.ValueMapping] = [value_map(  # UPS-MIB upsOutputSource (RFC 1628)
    **{"1": ("其他", "text"), "2": ("无输出", "red"), "3": ("市电", "green"), "4": ("旁路", "orange"),
       "5": ("电池", "red"), "6": ("升压", "orange"), "7": ("降压", "orange")}
)]


def mapped(mappings: list[dash.ValueMapping]) -> dash.DynamicConfigValue:
    """Override property: value mappings of one column only (a table's numbers in other
    columns must not be read as states)."""
    return dash.DynamicConfigValue(id_val="mappings", value=mappings)


def limited(base: str, *steps: tuple[float, str]) -> dash.DynamicConfigValue:
    """Override property: thresholds of one column (its own limit) and its cells coloured."""
    return dash.DynamicConfigValue(id_val="thresholds", value=thresholds(base, *steps).build())


# Override property of a table column of device ids: each cell links to the device dashboard,
# keeping the time range.
DEVICE_LINK = dash.DynamicConfigValue(id_val="links", value=[{
    "title": "设备详情 (device drill-down)", "url": "/d/fleetmon-device?var-device_id=${__value.raw}&${__url_time_range}",
}])


def colored(mode: str = "color-text") -> dash.DynamicConfigValue:
    """Override property: color this column's cells (by thresholds or value mappings); only the
    columns that carry the alarm, not the whole table."""
    return dash.DynamicConfigValue(id_val="custom.cellOptions", value={"type": mode})


def unit(name: str) -> dash.DynamicConfigValue:
    return dash.DynamicConfigValue(id_val="unit", value=name)


def display(name: str) -> dash.DynamicConfigValue:
    """Override property: the name people read for a series named by a tag value (alias $tag_…)."""
    return dash.DynamicConfigValue(id_val="displayName", value=name)


def decimals(places: int) -> dash.DynamicConfigValue:
    return dash.DynamicConfigValue(id_val="decimals", value=places)


JOIN_NAMES = dash.DataTransformerConfig(id_val="joinByField", options={"byField": "device_id", "mode": "inner"})
"""Joins a table (query A) with the names lookup (query B, `names()`) on device_id."""

LOSS_THRESHOLDS = ("green", (LOSS_LIMIT_PCT, "red"))  # red above the rules' loss limit
JITTER_THRESHOLDS = ("green", (JITTER_LIMIT_MS, "red"))  # red above the rules' jitter limit


def link_table(title: str, span: int, show_id: bool = True) -> table.Panel:
    """Latest RTT, jitter and loss of each line by name, each red above its limit (needs the
    names lookup as query B)."""
    rename = {"device_id": "专线编号", "name": "专线", "site": "站点", "rtt_avg_ms": "平均时延",
              "jitter_ms": "抖动", "loss_pct": "丢包率"}
    panel = (table.Panel().title(title).span(span).height(9)
             .description(f"Latest RTT, jitter and loss of every dedicated line; red above {LIMIT} ms, "
                          f"{JITTER_LIMIT_MS:g} ms and {LOSS_LIMIT_PCT:g} % (the rules' limits).")
             .thresholds(thresholds(*RTT_THRESHOLDS))
             .sort_by([common_b.TableSortByFieldState().display_name("平均时延").desc(True)])
             .with_transformation(JOIN_NAMES)
             .with_transformation(organize(rename, hide=("Time", "Time 1", "Time 2", *(() if show_id else ("device_id", "site"))),
                                           order=("name", "rtt_avg_ms", "jitter_ms", "loss_pct")))
             .override_by_name("平均时延", [unit("ms"), colored()])
             .override_by_name("抖动", [unit("ms"), limited(*JITTER_THRESHOLDS), colored()])
             .override_by_name("丢包率", [unit("percent"), limited(*LOSS_THRESHOLDS), colored()]))
    if show_id:
        panel.override_by_name("专线编号", [DEVICE_LINK])
    return panel


def organize(
    rename: dict[str, str], hide: tuple[str, ...] = ("Time",), order: tuple[str, ...] = ()
) -> dash.DataTransformerConfig:
    """Grafana's organize transformation: hide columns, rename them, and put `order`'s columns
    (original names) first, in that order (the ones a narrow wall table must not cut off)."""
    options: dict[str, object] = {"excludeByName": {name: True for name in hide}, "renameByName": rename}
    if order:
        options["indexByName"] = {name: i for i, name in enumerate(order)}
    return dash.DataTransformerConfig(id_val="organize", options=options)


def rate_series(title: str, description: str) -> timeseries.Panel:
    return (timeseries.Panel().title(title).description(description).unit("percent").min(0).max(100)
            .thresholds(thresholds(*RATE_THRESHOLDS))
            .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
            .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                    .placement(common.LegendPlacement.BOTTOM).show_legend(True)))


def ms_series(title: str, description: str, limit: tuple[str, tuple[float, str]] | None = None) -> timeseries.Panel:
    """A time series in ms, with `limit` (thresholds: base colour, (value, colour)) as a dashed line."""
    return with_limit(timeseries.Panel().title(title).description(description).unit("ms").min(0), limit)


def loss_series(title: str, description: str) -> timeseries.Panel:
    """Echo loss in %, with the rules' loss limit as a dashed line."""
    return with_limit(timeseries.Panel().title(title).description(description).unit("percent").min(0).max(100),
                      LOSS_THRESHOLDS)


def with_limit(panel: timeseries.Panel, limit: tuple[str, tuple[float, str]] | None) -> timeseries.Panel:
    if limit is not None:
        panel.thresholds(thresholds(*limit)).thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel


# -- template variables ------------------------------------------------------------------------


def multi_variable(name: str, label: str, query: str) -> dash_b.QueryVariable:
    """A multi-value variable from a SHOW TAG VALUES query, "All" selected by default."""
    return (dash_b.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
            .multi(True).include_all(True).refresh(dash.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dash.VariableSort.NATURAL_ASC)
            .current(dash.VariableOption(selected=True, text=["All"], value=["$__all"])))


def region_variable() -> dash_b.QueryVariable:
    return multi_variable("region", "区域", 'SHOW TAG VALUES FROM "device_state" WITH KEY = "region"')


def site_variable() -> dash_b.QueryVariable:
    return multi_variable("site", "站点", f'SHOW TAG VALUES FROM "device_state" WITH KEY = "site" WHERE {IN_REGION}')


def device_variable() -> dash_b.QueryVariable:
    return (dash_b.QueryVariable("device_id").label("设备").datasource(DATASOURCE)
            .query(f'SHOW TAG VALUES FROM "device_state" WITH KEY = "device_id" WHERE {IN_SITES}')
            .refresh(dash.VariableRefresh.ON_DASHBOARD_LOAD).sort(dash.VariableSort.NATURAL_ASC))


def link_variable() -> dash_b.QueryVariable:
    return multi_variable(
        "link", "专线", f'SHOW TAG VALUES FROM "icmp" WITH KEY = "device_id" WHERE "kind" = \'link\' AND {IN_SITES}'
    )


# -- dashboards --------------------------------------------------------------------------------


def big_number(title: str, description: str, base: str, *steps: tuple[float, str]) -> stat.Panel:
    """A wall figure: one latest value, coloured by `steps`, no graph (the wall is read from afar)."""
    return (stat.Panel().title(title).description(description).span(4).height(WALL_STAT_H).decimals(0)
            .thresholds(thresholds(base, *steps)).color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


# Grid rows of the wall: the figures, the map with the townships and the days, the tables.
WALL_STAT_H, WALL_MIDDLE_H, WALL_TABLES_H = 5, 11, 10
FLEET_CAMERAS = f"\"scope\" = 'fleet' AND \"kind\" = 'camera' AND {CONTRACT_RATE}"


def command_hall() -> Board:
    """The command hall's wall: one 1920×1080 screen in kiosk mode, nothing to scroll."""
    b = Board(
        "fleetmon-hall", "指挥大厅 · 视频监控运行态势",
        f"Command-hall wall (1920×1080, kiosk mode, no scrolling): fleet camera online rate against the {TARGET} % "
        f"target, cameras offline, open faults, dedicated lines over {LIMIT} ms, cameras without video, UPS on "
        "battery; township online rates against the target; a map of the points coloured by state; the daily "
        "online rate; open work orders with their owner and SLA countdown; offline points; the lines. "
        "Details: the region and device dashboards. Data: fleetmon in InfluxDB (docs/SCHEMA.md).",
        [region_variable(), site_variable()], refresh="30s",
    )
    b.add(
        big_number("全域摄像机在线率", f"Fleet camera online rate as the contract counts it (basis online), latest "
                   f"value; red below the {TARGET} % target.", *RATE_THRESHOLDS).unit("percent").decimals(2),
        InfluxQL(f'SELECT last("online_rate_pct") FROM "online_rate" WHERE $timeFilter AND {FLEET_CAMERAS}')
        .alias("在线率"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        big_number("离线摄像机", "Active cameras down or unreachable (basis online), latest count.",
                   "green", (1, "red")),
        InfluxQL(f'SELECT last("offline") FROM "online_rate" WHERE $timeFilter AND {FLEET_CAMERAS}').alias("离线"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        big_number("未恢复故障", "Faults firing now, every severity (latest count).", "green", (1, "orange")),
        InfluxQL('SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "faults_open" WHERE $timeFilter '
                 'GROUP BY "severity")').alias("故障"),
        needs={"faults_open"},
    )
    b.add(
        big_number(f"时延超 {LIMIT} ms 专线", f"Dedicated lines whose latest average RTT is above the contract's "
                   f"{LIMIT} ms.", "green", (1, "red")).no_value("0"),
        InfluxQL(links_over_limit(IN_SITES)).alias("专线"),
        needs={"icmp"},
    )
    b.add(
        big_number("有网无视频", "Active cameras that answer ping but send no picture (latest states).",
                   "green", (1, "red")).no_value("0"),
        InfluxQL(video_lost_count(IN_SITES)).alias("摄像机"),
        needs={"device_state", "device_state.basis"},
    )
    b.add(
        big_number("UPS 电池供电", "UPS units whose latest reading says on battery (mains lost).",
                   "green", (1, "red")).no_value("0"),
        InfluxQL(
            'SELECT count("on_battery") FROM (SELECT last("on_battery") AS "on_battery" FROM "ups" WHERE $timeFilter '
            f'AND {IN_SITES} GROUP BY "device_id") WHERE "on_battery" = true'
        ).alias("UPS"),
        needs={"ups"},
    )
    b.add(
        geomap.Panel().title("点位地图").span(9).height(WALL_MIDDLE_H)
        .description("Every counted point at its coordinates from the point list (device_state lat/lon), coloured "
                     "by its latest state on the contract's basis: green online, red offline, orange unreachable.")
        .mappings(STATE_MAPPINGS).thresholds(thresholds("red", (1, "green")))
        .view(geomap.MapViewConfig().id("fit").padding(10))
        .controls(geomap.ControlsOptions().show_zoom(False).mouse_wheel_zoom(False).show_attribution(True))
        .basemap(common_b.MapLayerOptions().type("default").name("底图"))
        .layers([common_b.MapLayerOptions().type("markers").name("点位").tooltip(True)
                 .location(common_b.FrameGeometrySource().mode(common.FrameGeometrySourceMode.COORDS)
                           .latitude("lat").longitude("lon"))
                 .config({"showLegend": True, "style": {
                     # Fields are matched by their display name: after organize, 状态 (state).
                     "color": {"field": "状态", "fixed": "green"},
                     "size": {"fixed": 7},
                     "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                     "opacity": 0.9,
                 }})])
        .tooltip(geomap.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .with_transformation(organize({"name": "名称", "state": "状态", "site": "站点", "region": "区域"},
                                      hide=("Time", "online"))),
        InfluxQL(
            'SELECT last("online") AS "online", "state", "name", "lat", "lon" FROM "device_state" '
            f'WHERE $timeFilter AND {CONTRACT_RATE} AND "counted" = 1 AND {IN_SITES} GROUP BY "device_id", "site", "region"'
        ).table(),
        needs={"device_state", "device_state.basis", "device_state.lat", "device_state.lon"},
    )
    b.add(
        barchart.Panel().title(f"各乡镇摄像机在线率（目标 {TARGET}%）").span(7).height(WALL_MIDDLE_H).unit("percent")
        .min(0).max(100).decimals(1)
        .description(f"Camera online rate per township (region), latest value, basis online, against the {TARGET} % "
                     "line: red below it.")
        .thresholds(thresholds(*RATE_THRESHOLDS))
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .color_scheme(dash_b.FieldColor().mode(dash.FieldColorModeId.THRESHOLDS))
        .orientation(common.VizOrientation.HORIZONTAL).x_field("乡镇").show_value(common.VisibilityMode.ALWAYS)
        .legend(common_b.VizLegendOptions().show_legend(False).display_mode(common.LegendDisplayMode.HIDDEN)
                .placement(common.LegendPlacement.BOTTOM))
        .with_transformation(organize({"group": "乡镇", "last": "在线率"})),
        InfluxQL(
            'SELECT last("online_rate_pct") FROM "online_rate" WHERE $timeFilter AND "scope" = \'region\' '
            f'AND "kind" = \'camera\' AND {CONTRACT_RATE} AND "group" =~ /^$region$/ GROUP BY "group"'
        ).table(),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        timeseries.Panel().title(f"每日在线率（近 {DAILY_DAYS} 天）").span(8).height(WALL_MIDDLE_H).unit("percent")
        .max(100).decimals(2).time_from(f"{DAILY_DAYS}d").hide_time_override(True)
        .description(f"Fleet camera online rate per local day ({DAILY_ZONE}), the mean of the per-cycle rates "
                     f"(basis online), against the {TARGET} % target. The assessment's figure (monitor/assess) "
                     "weighs time exactly; this is its daily picture.")
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
        .thresholds(thresholds(*RATE_THRESHOLDS))
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .color_scheme(dash_b.FieldColor().mode(dash.FieldColorModeId.THRESHOLDS))
        .legend(common_b.VizLegendOptions().show_legend(False).display_mode(common.LegendDisplayMode.HIDDEN)
                .placement(common.LegendPlacement.BOTTOM)),
        InfluxQL(
            f'SELECT mean("online_rate_pct") FROM "online_rate" WHERE $timeFilter AND {FLEET_CAMERAS} '
            f"GROUP BY time(1d) fill(none) tz('{DAILY_ZONE}')"
        ).alias("每日在线率"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        table.Panel().title("未关闭工单（处理人 · SLA 倒计时）").span(11).height(WALL_TABLES_H)
        .description("Open work orders (工单) of the latest snapshot, the most urgent SLA first: severity, point, "
                     "title, who took it (未指派 while nobody), the next SLA clock still running and the time left "
                     "to its deadline (red once past it, orange in its last hour).")
        .sort_by([common_b.TableSortByFieldState().display_name("剩余时间")])
        .with_transformation(organize(
            {"severity": "级别", "device_name": "点位", "title": "故障", "owner": "处理人", "sla_clock": "时限",
             "sla_remaining_h": "剩余时间", "ref": "工单号"},
            hide=("Time", "slot", "fault_id", "device_id", "site", "region", "sla_deadline_ms"),
            order=("severity", "device_name", "owner", "sla_clock", "sla_remaining_h", "title", "ref")))
        .override_by_name("级别", [mapped(SEVERITY_MAPPINGS), colored("color-text")])
        .override_by_name("处理人", [mapped(OWNER_MAPPINGS), colored("color-text")])
        .override_by_name("剩余时间", [unit("suffix: 小时"), decimals(1), limited("red", (0, "orange"), (1, "green")),
                                      colored("color-background")]),
        InfluxQL(open_orders()).table(),
        needs={"work_order_open"},
    )
    b.add(
        table.Panel().title("离线点位").span(7).height(WALL_TABLES_H)
        .description("Counted points whose latest state (the contract's basis) is not up: down, or unreachable "
                     "behind a failed parent; by name; 维护 gives the reason of the maintenance window a point is in.")
        .sort_by([common_b.TableSortByFieldState().display_name("区域")])
        .with_transformation(organize({"name": "点位", "kind": "类型", "region": "区域", "state": "状态",
                                       "maintenance": "维护"},
                                      hide=("Time", "device_id", "site"),
                                      order=("name", "state", "maintenance", "kind", "region")))
        .override_by_name("状态", [mapped(STATE_MAPPINGS), colored("color-background")])
        .override_by_name("类型", [mapped(KIND_MAPPINGS)]),
        InfluxQL(latest_offline(IN_SITES)).table(),
        needs={"device_state", "device_state.basis"},
    )
    b.add(
        link_table("专线质量", 6, show_id=False).height(WALL_TABLES_H),
        InfluxQL(link_summary(IN_SITES)).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"icmp", "device_state", "device_state.basis"},
    )
    return b


def region_drilldown() -> Board:
    b = Board(
        "fleetmon-region", "区域 · 在线率与故障点位",
        "Region drill-down: online rate per site, devices down in the region, cameras that ping but send no "
        "video, switch uplinks down, UPS units, open faults and their history, cameras with a drifted clock or "
        "firmware not in the point list, recent SNMP traps, latency, jitter and loss of its dedicated lines. Pick "
        "the region (and sites) at the top.",
        [region_variable(), site_variable()],
    )
    b.add(
        bargauge.Panel().title("各站点摄像机在线率").span(12).height(10).unit("percent").min(0).max(100)
        .description(f"Camera online rate of each site of the region, latest value, basis online; target {TARGET} %.")
        .thresholds(thresholds(*RATE_THRESHOLDS)).display_mode(common.BarGaugeDisplayMode.LCD)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        InfluxQL(
            'SELECT last("online_rate_pct") FROM "online_rate" WHERE $timeFilter AND "scope" = \'site\' '
            f'AND "kind" = \'camera\' AND {CONTRACT_RATE} AND "group" =~ /^$site$/ GROUP BY "group"'
        ).alias("$tag_group"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        rate_series("站点在线率趋势", "Camera online rate of each site over time (basis online).")
        .span(12).height(10),
        InfluxQL(
            'SELECT mean("online_rate_pct") FROM "online_rate" WHERE $timeFilter AND "scope" = \'site\' '
            f'AND "kind" = \'camera\' AND {CONTRACT_RATE} AND "group" =~ /^$site$/ {PER_INTERVAL}, "group"'
        ).alias("$tag_group"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        table.Panel().title("离线点位").span(12).height(10)
        .description("Points of the selected sites whose latest state (the contract's basis) is not up: down, or "
                     "unreachable behind a failed parent; points under construction or removed are left out.")
        .sort_by([common_b.TableSortByFieldState().display_name("站点")])
        .with_transformation(organize({"name": "点位", "device_id": "点位编号", "kind": "类型", "site": "站点",
                                       "region": "区域", "state": "状态", "maintenance": "维护"}))
        .override_by_name("状态", [mapped(STATE_MAPPINGS), colored("color-background")])
        .override_by_name("类型", [mapped(KIND_MAPPINGS)])
        .override_by_name("点位编号", [DEVICE_LINK]),
        InfluxQL(latest_offline(IN_SITES)).table(),
        needs={"device_state", "device_state.basis"},
    )
    b.add(
        timeseries.Panel().title("离线摄像机数趋势").span(12).height(10).min(0).decimals(0)
        .description("Active cameras offline per site over time, as the contract counts them (basis online).")
        .draw_style(common.GraphDrawStyle.BARS).stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL)),
        InfluxQL(
            'SELECT last("offline") FROM "online_rate" WHERE $timeFilter AND "scope" = \'site\' '
            f'AND "kind" = \'camera\' AND {CONTRACT_RATE} AND "group" =~ /^$site$/ {PER_INTERVAL}, "group"'
        ).alias("$tag_group"),
        needs={"online_rate", "online_rate.basis"},
    )
    b.add(
        table.Panel().title("有网无视频摄像机").span(12).height(8)
        .description("Active cameras that answer ping (basis network up) but whose stream fails (basis video "
                     "down): a hung encoder, a wrong stream or password. Latest state of each basis.")
        .sort_by([common_b.TableSortByFieldState().display_name("站点")])
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"name": "点位", "device_id": "点位编号", "site": "站点", "region": "区域"},
                                      hide=("Time", "Time 1", "Time 2", "code")))
        .override_by_name("点位编号", [DEVICE_LINK]),
        InfluxQL(video_lost(IN_SITES)).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"device_state", "device_state.basis"},
    )
    b.add(
        table.Panel().title("交换机上联端口中断").span(12).height(8)
        .description("Uplink ports (point list column uplink) whose latest ifOperStatus is not up(1): every "
                     "camera behind the switch is cut off. 管理状态 down means shut on purpose.")
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"name": "交换机", "device_id": "编号", "interface": "端口", "site": "站点",
                                       "region": "区域", "oper_status": "运行状态", "admin_status": "管理状态"},
                                      hide=("Time", "Time 1", "Time 2")))
        .override_by_name("运行状态", [mapped(IF_STATUS_MAPPINGS), colored("color-background")])
        .override_by_name("管理状态", [mapped(IF_STATUS_MAPPINGS)])
        .override_by_name("编号", [DEVICE_LINK]),
        InfluxQL(uplinks_down(IN_SITES)).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"snmp_interface", "device_state", "device_state.basis"},
    )
    b.add(
        stat.Panel().title("UPS 电池供电数").span(6).height(8).no_value("0")
        .description("UPS units whose latest reading says on battery (mains lost).")
        .thresholds(thresholds("green", (1, "red"))).color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        InfluxQL(
            'SELECT count("on_battery") FROM (SELECT last("on_battery") AS "on_battery" FROM "ups" WHERE $timeFilter '
            f'AND {IN_SITES} GROUP BY "device_id") WHERE "on_battery" = true'
        ).alias("电池供电"),
        needs={"ups"},
    )
    b.add(
        table.Panel().title("UPS 状态").span(18).height(8)
        .description("Latest state of every UPS: on battery, battery low, minutes remaining (red under "
                     f"{UPS_MINUTES_LOW:g} min), charge (red under {UPS_CHARGE_LOW_PCT:g} %).")
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"name": "UPS", "device_id": "编号", "site": "站点", "on_battery": "电池供电",
                                       "battery_low": "电池低电", "minutes_remaining": "剩余分钟",
                                       "charge_pct": "电量%"}, hide=("Time", "Time 1", "Time 2")))
        .override_by_name("电池供电", [mapped(BOOL_ALARM_MAPPINGS), colored()])
        .override_by_name("电池低电", [mapped(BOOL_ALARM_MAPPINGS), colored()])
        .override_by_name("剩余分钟", [limited("red", (UPS_MINUTES_LOW, "green")), colored()])
        .override_by_name("电量%", [unit("percent"), limited("red", (UPS_CHARGE_LOW_PCT, "green")), colored()])
        .override_by_name("编号", [DEVICE_LINK]),
        InfluxQL(
            'SELECT last("on_battery") AS "on_battery", last("battery_low") AS "battery_low", '
            'last("minutes_remaining") AS "minutes_remaining", last("charge_pct") AS "charge_pct" FROM "ups" '
            f'WHERE $timeFilter AND {IN_SITES} GROUP BY "device_id", "site"'
        ).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"ups", "device_state", "device_state.basis"},
    )
    b.add(
        stat.Panel().title("未恢复故障（按级别）").span(6).height(9).no_value("0")
        .description("Open faults by severity, latest count.")
        .thresholds(thresholds("green", (1, "orange"))).color_mode(common.BigValueColorMode.BACKGROUND)
        .override_by_name("critical", [display("紧急")]).override_by_name("major", [display("重要")])
        .override_by_name("minor", [display("一般")])
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        InfluxQL(
            'SELECT last("count") FROM "faults_open" WHERE $timeFilter GROUP BY "severity"'
        ).alias("$tag_severity"),
        needs={"faults_open"},
    )
    b.add(
        table.Panel().title("最近故障事件").span(18).height(9)
        .description("Recent fault events (firing, acknowledged, resolved) of the selected regions and those "
                     "without a region, newest first.")
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"Time": "时间", "event": "事件", "name": "点位", "device_id": "点位编号",
                                       "title": "故障", "state": "状态", "severity": "级别", "region": "区域",
                                       "rule": "规则", "fault_id": "故障编号"}, hide=("Time 2",)))
        .override_by_name("事件", [mapped(EVENT_MAPPINGS), colored()])
        .override_by_name("状态", [mapped(EVENT_MAPPINGS)])
        .override_by_name("级别", [mapped(SEVERITY_MAPPINGS), colored()])
        .override_by_name("点位编号", [DEVICE_LINK]),
        InfluxQL(
            'SELECT "event", "device_id", "title", "state", "severity", "region", "rule", "fault_id" '
            # Faults without a region (the platform, the whole fleet) show whatever the selection.
            'FROM "fault_event" WHERE $timeFilter AND ("region" =~ /^$region$/ OR "region" = \'\') '
            "ORDER BY time DESC LIMIT 100"
        ).table(),
        InfluxQL(names('"region" =~ /.*/'), "B").table(),
        needs={"fault_event", "device_state", "device_state.basis"},
    )
    b.add(
        table.Panel().title("时钟偏差与固件不符").span(12).height(9)
        .description(f"Cameras whose ONVIF clock is off by more than {CLOCK_DRIFT_LIMIT_S:g} s (evidence "
                     "timestamps) or whose device information differs from the point list (firmware upgraded, "
                     "model swapped); latest ONVIF answer.")
        .thresholds(thresholds("green", (CLOCK_DRIFT_LIMIT_S, "red")))
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"name": "点位", "device_id": "点位编号", "site": "站点",
                                       "clock_drift_s": "时钟偏差", "firmware": "固件",
                                       "inventory_mismatch": "与点位表不符"}, hide=("Time", "Time 1", "Time 2")))
        .override_by_name("时钟偏差", [unit("s"), colored()])
        .override_by_name("点位编号", [DEVICE_LINK]),
        InfluxQL(cameras_off_inventory(IN_SITES)).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"onvif", "device_state", "device_state.basis"},
    )
    b.add(
        table.Panel().title("最近 SNMP Trap").span(12).height(9)
        .description("SNMP notifications from the region's devices, newest first: link down/up with the port, "
                     "UPS on battery and alarms, restarts.")
        .with_transformation(JOIN_NAMES)
        .with_transformation(organize({"Time": "时间", "name": "设备", "device_id": "编号", "site": "站点",
                                       "trap": "类型", "if_name": "端口", "alarm": "UPS 告警",
                                       "trap_oid": "snmpTrapOID"}, hide=("Time 2",)))
        .override_by_name("类型", [mapped(TRAP_MAPPINGS), colored()])
        .override_by_name("编号", [DEVICE_LINK]),
        InfluxQL(
            'SELECT "device_id", "site", "trap", "if_name", "alarm", "trap_oid" FROM "snmp_trap" '
            f"WHERE $timeFilter AND {IN_SITES} ORDER BY time DESC LIMIT 100"
        ).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"snmp_trap", "device_state", "device_state.basis"},
    )
    b.add(
        ms_series("专线时延", f"Average RTT of the region's dedicated lines against {LIMIT} ms.", RTT_THRESHOLDS)
        .span(8).height(9),
        InfluxQL(link_series("rtt_avg_ms", IN_SITES)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    b.add(
        ms_series("专线抖动", f"Jitter of the region's dedicated lines against {JITTER_LIMIT_MS:g} ms.",
                  JITTER_THRESHOLDS).span(8).height(9),
        InfluxQL(link_series("jitter_ms", IN_SITES)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    b.add(
        loss_series("专线丢包率", f"Echo loss of the region's dedicated lines against {LOSS_LIMIT_PCT:g} %.")
        .span(8).height(9),
        InfluxQL(link_series("loss_pct", IN_SITES)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    return b


def device_drilldown() -> Board:
    b = Board(
        "fleetmon-device", "设备 · 单点详情",
        "Device drill-down: ICMP RTT/loss/jitter and state timeline of one device; RTSP/ONVIF of a camera, "
        "ports, SNMP agent and traps of a switch, UPS readings, host resources and disks of a server (panels stay "
        "empty for other kinds).",
        [region_variable(), site_variable(), device_variable()],
    )
    b.row("网络 (ICMP)")
    b.add(
        table.Panel().title("设备信息").span(24).height(3)
        .description("The device as the point list describes it (name, kind, site, township, coordinates) and its "
                     "latest state on the contract's basis.")
        .with_transformation(organize({"name": "名称", "device_id": "编号", "kind": "类型", "site": "站点",
                                       "region": "区域", "state": "状态", "lat": "纬度", "lon": "经度"},
                                      hide=("Time", "online")))
        .override_by_name("状态", [mapped(STATE_MAPPINGS), colored("color-background")])
        .override_by_name("类型", [mapped(KIND_MAPPINGS)]),
        InfluxQL(
            'SELECT last("online") AS "online", "name", "state", "lat", "lon" FROM "device_state" '
            f'WHERE $timeFilter AND {CONTRACT_RATE} AND {DEVICE} GROUP BY "device_id", "kind", "site", "region"'
        ).table(),
        needs={"device_state", "device_state.basis"}, device_kind="camera",
    )
    b.add(
        statetimeline.Panel().title("状态时间线").span(24).height(6).mappings(STATE_MAPPINGS)
        .override_by_name("online", [display("在线（合同口径）")]).override_by_name("network", [display("网络 ICMP")])
        .override_by_name("service", [display("服务 ONVIF")]).override_by_name("video", [display("视频 RTSP")])
        .description("State of the device after hysteresis and topology (device_state), one line per basis: "
                     "online (the contract's), network (ICMP), service (ONVIF), video (RTSP)."),
        InfluxQL(f'SELECT "state" FROM "device_state" WHERE $timeFilter AND {DEVICE} GROUP BY "basis"')
        .alias("$tag_basis"),
        needs={"device_state", "device_state.basis"}, device_kind="camera",
    )
    b.add(
        ms_series("往返时延 RTT", f"ICMP round-trip time: min, average and max of each probe; the dashed line is "
                  f"the dedicated lines' {LIMIT} ms.", RTT_THRESHOLDS).span(8).height(8),
        InfluxQL(
            'SELECT mean("rtt_min_ms") AS "最小", mean("rtt_avg_ms") AS "平均", mean("rtt_max_ms") AS "最大" '
            f'FROM "icmp" WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}'
        ).alias("$col"),
        needs={"icmp"}, device_kind="camera",
    )
    b.add(
        loss_series("丢包率", f"ICMP echo loss of each probe against {LOSS_LIMIT_PCT:g} %.").span(8).height(8),
        InfluxQL(f'SELECT mean("loss_pct") FROM "icmp" WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}').alias("丢包率"),
        needs={"icmp"}, device_kind="camera",
    )
    b.add(
        ms_series("抖动", f"ICMP jitter (RFC 3550 §6.4.1 without smoothing) against {JITTER_LIMIT_MS:g} ms.",
                  JITTER_THRESHOLDS).span(8).height(8),
        InfluxQL(f'SELECT mean("jitter_ms") FROM "icmp" WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}').alias("抖动"),
        needs={"icmp"}, device_kind="camera",
    )
    b.row("摄像机 (RTSP / ONVIF)")
    b.add(
        ms_series("RTSP DESCRIBE 耗时", "Time of the RTSP DESCRIBE of the camera's stream.").span(8).height(8),
        InfluxQL(f'SELECT mean("describe_ms") FROM "rtsp" WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}')
        .alias("DESCRIBE"),
        needs={"rtsp"}, device_kind="camera",
    )
    b.add(
        table.Panel().title("视频流").span(8).height(8)
        .description("Latest RTSP result: stream up, codec and resolution.")
        .with_transformation(organize({"up": "可用", "video_codec": "编码", "width": "宽", "height": "高"}))
        .override_by_name("可用", [mapped(BOOL_OK_MAPPINGS), colored("color-background")]),
        InfluxQL(
            'SELECT last("up") AS "up", last("video_codec") AS "video_codec", last("width") AS "width", '
            f'last("height") AS "height" FROM "rtsp" WHERE $timeFilter AND {DEVICE}'
        ).table(),
        needs={"rtsp"}, device_kind="camera",
    )
    b.add(
        table.Panel().title("ONVIF").span(8).height(8)
        .description("Latest ONVIF result: service up, clock drift, firmware, mismatch with the point list.")
        .thresholds(thresholds("green", (CLOCK_DRIFT_LIMIT_S, "red")))
        .with_transformation(organize({"up": "可用", "clock_drift_s": "时钟偏差", "firmware": "固件",
                                       "inventory_mismatch": "与点位表不符"}))
        .override_by_name("可用", [mapped(BOOL_OK_MAPPINGS), colored("color-background")])
        .override_by_name("时钟偏差", [unit("s"), colored()]),
        InfluxQL(
            'SELECT last("up") AS "up", last("clock_drift_s") AS "clock_drift_s", last("firmware") AS "firmware", '
            f'last("inventory_mismatch") AS "inventory_mismatch" FROM "onvif" WHERE $timeFilter AND {DEVICE}'
        ).table(),
        needs={"onvif"}, device_kind="camera",
    )
    b.row("交换机端口与 SNMP (ports, agent, traps)")
    b.add(
        table.Panel().title("端口状态").span(12).height(9)
        .description("Latest ifOperStatus, traffic, utilisation and input errors of each interface.")
        .override_by_name("运行状态", [mapped(IF_STATUS_MAPPINGS), colored("color-background")])
        .override_by_name("上联", [mapped([value_map(true=("是", "text"), false=("否", "text"))])])
        .with_transformation(organize({"interface": "端口", "oper_status": "运行状态", "uplink": "上联",
                                       "in_bps": "入 bps", "out_bps": "出 bps", "in_utilisation_pct": "入利用率%",
                                       "out_utilisation_pct": "出利用率%", "in_errors_per_s": "入错包/s"})),
        InfluxQL(
            'SELECT last("oper_status") AS "oper_status", last("uplink") AS "uplink", last("in_bps") AS "in_bps", '
            'last("out_bps") AS "out_bps", last("in_utilisation_pct") AS "in_utilisation_pct", '
            'last("out_utilisation_pct") AS "out_utilisation_pct", last("in_errors_per_s") AS "in_errors_per_s" '
            f'FROM "snmp_interface" WHERE $timeFilter AND {DEVICE} GROUP BY "interface"'
        ).table(),
        needs={"snmp_interface"}, device_kind="switch",
    )
    b.add(
        timeseries.Panel().title("端口流量").span(12).height(9).unit("bps").min(0)
        .description("Traffic in and out of each interface."),
        InfluxQL(
            'SELECT mean("in_bps") AS "入", mean("out_bps") AS "出" FROM "snmp_interface" '
            f'WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}, "interface"'
        ).alias("$tag_interface $col"),
        needs={"snmp_interface"}, device_kind="switch",
    )
    b.add(
        table.Panel().title("SNMP 代理").span(12).height(8)
        .description("Latest SNMP poll of a switch, UPS or server: agent answering, response time, uptime "
                     "(sysUpTime) and whether it restarted since the previous poll.")
        .override_by_name("可用", [mapped(BOOL_OK_MAPPINGS), colored("color-background")])
        .override_by_name("重启", [mapped(BOOL_ALARM_MAPPINGS), colored()])
        .with_transformation(organize({"up": "可用", "response_ms": "响应 ms", "sys_uptime_s": "运行时间",
                                       "rebooted": "重启"}))
        .override_by_name("运行时间", [unit("dtdurations")]),
        InfluxQL(
            'SELECT last("up") AS "up", last("response_ms") AS "response_ms", last("sys_uptime_s") AS "sys_uptime_s", '
            f'last("rebooted") AS "rebooted" FROM "snmp" WHERE $timeFilter AND {DEVICE}'
        ).table(),
        needs={"snmp"}, device_kind="switch",
    )
    b.add(
        table.Panel().title("SNMP Trap").span(12).height(8)
        .description("SNMP notifications the device sent, newest first.")
        .with_transformation(organize({"Time": "时间", "trap": "类型", "if_name": "端口", "alarm": "UPS 告警",
                                       "trap_oid": "snmpTrapOID"}, hide=()))
        .override_by_name("类型", [mapped(TRAP_MAPPINGS), colored()]),
        InfluxQL(
            'SELECT "trap", "if_name", "alarm", "trap_oid" FROM "snmp_trap" '
            f"WHERE $timeFilter AND {DEVICE} ORDER BY time DESC LIMIT 50"
        ).table(),
        needs={"snmp_trap"}, device_kind="switch",
    )
    b.row("UPS 与服务器 (power, host)")
    b.add(
        timeseries.Panel().title("UPS 电量与负载").span(8).height(8).unit("percent").min(0).max(100)
        .description(f"Battery charge (red under {UPS_CHARGE_LOW_PCT:g} %) and output load of the UPS.")
        .override_by_name("电量", [limited("red", (UPS_CHARGE_LOW_PCT, "green"))])
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)),
        InfluxQL(
            'SELECT mean("charge_pct") AS "电量", mean("output_load_pct") AS "负载" FROM "ups" '
            f'WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}'
        ).alias("$col"),
        needs={"ups"}, device_kind="ups",
    )
    b.add(
        table.Panel().title("UPS 供电").span(8).height(8)
        .description("Latest power source, battery state, minutes remaining and input voltage.")
        .override_by_name("输出来源", [mapped(UPS_SOURCE_MAPPINGS), colored()])
        .override_by_name("电池供电", [mapped(BOOL_ALARM_MAPPINGS), colored()])
        .override_by_name("电池低电", [mapped(BOOL_ALARM_MAPPINGS), colored()])
        .override_by_name("剩余分钟", [limited("red", (UPS_MINUTES_LOW, "green")), colored()])
        .with_transformation(organize({"output_source": "输出来源", "on_battery": "电池供电", "battery_low": "电池低电",
                                       "minutes_remaining": "剩余分钟", "input_voltage_v": "输入电压 V"})),
        InfluxQL(
            'SELECT last("output_source") AS "output_source", last("on_battery") AS "on_battery", '
            'last("battery_low") AS "battery_low", last("minutes_remaining") AS "minutes_remaining", '
            f'last("input_voltage_v") AS "input_voltage_v" FROM "ups" WHERE $timeFilter AND {DEVICE}'
        ).table(),
        needs={"ups"}, device_kind="ups",
    )
    b.add(
        timeseries.Panel().title("服务器资源").span(8).height(8).unit("percent").min(0).max(100)
        .description(f"CPU load, memory used and the fullest storage volume of a server; the dashed line is the "
                     f"storage limit, {STORAGE_LIMIT_PCT:g} %.")
        .thresholds(thresholds("green", (STORAGE_LIMIT_PCT, "red")))
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)),
        InfluxQL(
            'SELECT mean("cpu_load_pct") AS "CPU", mean("memory_used_pct") AS "内存", '
            f'mean("storage_max_used_pct") AS "存储" FROM "host" WHERE $timeFilter AND {DEVICE} {PER_INTERVAL}'
        ).alias("$col"),
        needs={"host"}, device_kind="server",
    )
    b.add(
        bargauge.Panel().title("磁盘使用").span(8).height(8).unit("percent").min(0).max(100)
        .description(f"Used space of each fixed disk of a server, latest value; red above {STORAGE_LIMIT_PCT:g} %.")
        .thresholds(thresholds("green", (STORAGE_LIMIT_PCT, "red"))).display_mode(common.BarGaugeDisplayMode.LCD)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        InfluxQL(
            f'SELECT last("used_pct") FROM "host_storage" WHERE $timeFilter AND {DEVICE} GROUP BY "storage"'
        ).alias("$tag_storage"),
        needs={"host_storage"}, device_kind="server",
    )
    return b


def links() -> Board:
    in_links = f'"device_id" =~ /^$link$/ AND {IN_SITES}'
    b = Board(
        "fleetmon-links", "专线 · 时延抖动丢包",
        f"Dedicated lines (专线): RTT, jitter and loss over time per line against the {LIMIT} ms, "
        f"{JITTER_LIMIT_MS:g} ms and {LOSS_LIMIT_PCT:g} % limits.",
        [region_variable(), site_variable(), link_variable()],
    )
    b.add(
        ms_series(f"平均时延（限值 {LIMIT} ms）", f"Average RTT per line against {LIMIT} ms.", RTT_THRESHOLDS)
        .span(24).height(9),
        InfluxQL(link_series("rtt_avg_ms", in_links)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    b.add(
        ms_series(f"抖动（限值 {JITTER_LIMIT_MS:g} ms）", "Jitter per line (RFC 3550 §6.4.1 without smoothing).",
                  JITTER_THRESHOLDS).span(12).height(8),
        InfluxQL(link_series("jitter_ms", in_links)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    b.add(
        loss_series(f"丢包率（限值 {LOSS_LIMIT_PCT:g}%）", "Echo loss per line.").span(12).height(8),
        InfluxQL(link_series("loss_pct", in_links)).alias(LINK_ALIAS),
        needs={"icmp"},
    )
    b.add(
        link_table("专线一览", 24),
        InfluxQL(link_summary(in_links)).table(),
        InfluxQL(names(IN_SITES), "B").table(),
        needs={"icmp", "device_state", "device_state.basis"},
    )
    return b


def boards() -> list[Board]:
    """Every dashboard, freshly built."""
    register_default_plugins()  # the panel types' option and field config models
    return [command_hall(), region_drilldown(), device_drilldown(), links()]


def render(board: Board) -> str:
    """The dashboard's JSON as committed: sorted keys, 2-space indent, UTF-8 text, final newline."""
    return json.dumps(board.build(), cls=JSONEncoder, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def path_of(board: Board) -> Path:
    return OUT_DIR / f"{board.uid}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for board in boards():
        path, text = path_of(board), render(board)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
