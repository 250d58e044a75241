"""The phone status page (/status): one static HTML page, its style sheet and script, served
by the HTTP API (monitor.app.api) for the duty engineer's phone.

The page is static: the server never writes data, let alone a token, into it. Its script
(static/status.js) fetches the JSON API every `refresh` seconds (/api/v1/status,
/api/v1/devices?state=down|unreachable, /api/v1/devices?basis=video&state=down (cameras that ping
but send no picture), /api/v1/devices?kind=link, /api/v1/faults, /api/v1/maintenance (the windows, and a device's
`maintenance` marks it 维护中), /healthz, /api/v1/whoami and,
when the daemon keeps them, /api/v1/workorders), sending the `token` of the page's own link as
`Authorization: Bearer`: the link carries it after the # (/status#token=…), which browsers never
send to a server, so it is in no server or proxy log (the API refuses tokens in query strings).
It builds the DOM with textContent only (device names come from point
lists: untrusted). When the daemon cannot be reached it says so and keeps the last data on screen.

An open video-quality fault (画面模糊 …, rules.families.vqd) shows the camera's latest picture
with its time ("画面截图 12:03"): the script fetches /api/v1/thumbnails/{id} with the same bearer
header, as a blob, and shows it through an object URL (CSP img-src blob:); a camera without one
(404) shows none. Fetched again once a minute at most, only for the faults drawn.

What needs a person comes first: work orders and open faults (most urgent first), then the
offline points with id, IP, since when and the probe's reason in Chinese (status_reasons), with a
search (id, name, IP, site, region) and filters (region, kind, state) over the whole list; every
list shows PAGE_STEP items more per tap and says how many of how many ("显示 20 / 151"), never
cutting silently; then cameras without video, regions and links. The layout keeps names whole on
a 360 px phone (no break-all; tests/test_status_page_hall.py measures it in Chromium).

Work orders (工单): the open orders with their SLA countdowns; a duty engineer signs in once with
their personal token (api.people), which the script keeps in the browser's localStorage and sends
only as a bearer header (to /api/v1/whoami and the work-order writes, never in a URL: it grants
writes), and gets the buttons 报障 (a point found by /api/v1/devices?q=), 认领, 到场, 修复, 更换
and 关闭; the API records that person as `by`.

Security: the headers below forbid inline scripts and every foreign origin (a name that slips
through as markup still cannot run), send no Referer and
forbid caching and framing. The files are read once, when the app is built: a missing file is
an error at start, not a 500 later.
"""

from __future__ import annotations

import html as html_text
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from monitor.app import status_reasons
from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from rules.families.vqd import TITLES as VQD_TITLES

STATIC = Path(__file__).with_name("static")

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data: blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
"""Headers of every file of the page."""

REFRESH_S = (2, 15, 600)
"""Refresh interval of the page: least, default, most (seconds)."""


class PageQuery(BaseModel):
    """Query of /status. Unknown parameters are ignored, unlike the API's: links shared through
    WeCom or WeChat come back with tracking parameters appended (from=singlemessage …)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lang: Annotated[
        Literal["zh", "en"] | None, Field(description="language of the page; default: the daemon's `language`")
    ] = None
    refresh: Annotated[
        int | None,
        Field(ge=REFRESH_S[0], le=REFRESH_S[2], description=f"seconds between refreshes; default {REFRESH_S[1]}"),
    ] = None


class PageText(RootModel[str]):
    """A file of the status page: HTML, CSS or JavaScript."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page as served at `path`."""

    path: str
    operation: str  # OpenAPI operationId
    summary: str
    content_type: str
    text: str


def load_assets() -> tuple[Asset, ...]:
    """The page and its files, read from STATIC. Raises OSError when one is missing.

    The page's thresholds (online rate target, RTT limit) are the contract's
    (monitor.core.contract), written into data attributes of the HTML so that the script has no
    copies of them; so is the Chinese of the probes' failure reasons (status_reasons), as JSON,
    and the fault kinds of video-quality diagnosis (rules.families.vqd), whose faults show the
    camera's thumbnail."""
    html = (
        (STATIC / "status.html").read_text(encoding="utf-8")
        .replace("{{online_target_pct}}", f"{ONLINE_RATE_TARGET_PCT:g}")
        .replace("{{rtt_limit_ms}}", f"{LINE_RTT_LIMIT_MS:g}")
        .replace("{{refresh_s}}", " ".join(str(s) for s in REFRESH_S))
        .replace("{{reasons}}", html_text.escape(status_reasons.as_json(), quote=True))
        .replace("{{vqd_kinds}}", " ".join(sorted(VQD_TITLES["zh"])))
    )
    return (
        Asset("/status", "status_page", "The phone status page (HTML)", "text/html", html),
        Asset("/status/status.css", "status_page_css", "The status page's style sheet", "text/css",
              (STATIC / "status.css").read_text(encoding="utf-8")),
        Asset("/status/status.js", "status_page_js", "The status page's script", "text/javascript",
              (STATIC / "status.js").read_text(encoding="utf-8")),
    )
