"""Reports over the HTTP API: the models and the handler of

    GET    /api/v1/reports/{kind}                  ?period=2026-12&format=pdf|xlsx&lang=zh|en

The answer is the file itself (PDF or XLSX, `Content-Disposition: attachment` with the name the
reports directory would give it, e.g. monthly_2026-12.pdf), made now by monitor.app.reports
.ReportMaker (the same report `fleetmon report` writes and the schedule keeps); errors are JSON
as everywhere in the API. Without `period` the last whole period of the type (yesterday, the
week before …). The route is declared with the others in monitor.app.api `_endpoints()`.

The report is read on the maker's own database connection and built on a worker thread, and
rendered in a child process (monitor.reports.render.render_isolated): the event loop never
waits for it. One report is made at a time (each is seconds of CPU, a PDF of a large fleet
more); further requests wait their turn.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.app.api_base import ApiError, Call, InModel, Reply
from monitor.app.reports import ReportMaker
from monitor.assess.availability import AvailabilityError
from monitor.assess.periods import FORMATS as PERIOD_FORMATS
from monitor.assess.periods import PeriodError
from monitor.reports.render import RenderError, render_isolated
from monitor.reports.store import file_name

NOT_AVAILABLE = "reports are not available in this API (no state database behind it)"
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

ReportKind = Literal["daily", "weekly", "monthly", "quarterly", "half-year", "annual"]


class ReportPath(InModel):
    kind: Annotated[ReportKind, Field(description="巡检日报 daily, 统计分析周报 weekly, 月报 monthly, 季度考核 quarterly, "
                                                  "half-year, annual")]


class ReportQuery(InModel):
    period: Annotated[
        str | None,
        Field(max_length=80, description=f"the period, in the config's zone: {PERIOD_FORMATS}; default: the last "
                                         "whole period of the type (yesterday, the week before …); one not over yet is "
                                         "counted up to now and says so"),
    ] = None
    format: Annotated[Literal["pdf", "xlsx"], Field(description="the file's format")] = "pdf"
    lang: Annotated[Literal["zh", "en"] | None, Field(description="the report's language (default: the config's)")] = None


class ReportFile(BaseModel):
    """A report file as the answer's body: its bytes, name and media type (documented as a
    binary string)."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    filename: str
    media_type: str

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "binary", "title": "ReportFile",
                "description": "the report file (PDF or XLSX, as `format` asked)"}


class ReportRoutes:
    """The handler of the report route over `maker` (None: not available, 503)."""

    def __init__(self, maker: ReportMaker | None) -> None:
        self._maker = maker
        self._one_at_a_time = asyncio.Lock()

    async def report(self, call: Call) -> Reply:
        if self._maker is None:
            raise ApiError(503, NOT_AVAILABLE)
        kind, q = call.path.kind, call.query
        maker = self._maker
        try:
            period = maker.period(kind, q.period)
        except PeriodError as exc:
            raise ApiError(400, str(exc)) from None
        async with self._one_at_a_time:
            try:
                report = await maker.make(kind, period, language=q.lang)
                data = (await render_isolated(report, [q.format], pdf_max_rows=maker.cfg.reports.pdf_max_rows))[q.format]
            except AvailabilityError as exc:  # the point list is empty
                raise ApiError(409, str(exc)) from None
            except RenderError as exc:
                raise ApiError(503, f"the report could not be rendered: {exc}") from None
        return Reply(200, ReportFile(data=data, filename=file_name(kind, period.label, q.format),
                                     media_type=MEDIA_TYPES[q.format]))
