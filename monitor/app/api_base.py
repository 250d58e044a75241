"""Building blocks of the HTTP API shared by its route modules (monitor.app.api, which builds
the app and the OpenAPI document, and monitor.app.api_workorders): what a handler receives and
returns, the bases of request and response models, and time conversions. Kept apart so that a
route module needs nothing from monitor.app.api (no import circle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Awaitable, Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from monitor.app.access import Caller, Refused

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# One line of text from a person: no control characters, so a name cannot forge log lines.
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[^\x00-\x1f\x7f]*$")]
Person = Annotated[Line, StringConstraints(max_length=64)]
Reason = Annotated[Line, StringConstraints(max_length=200)]


class InModel(BaseModel):
    """Request parts: unknown fields are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BodyModel(InModel):
    # Strict: JSON bodies carry real types; "3" is not a number and 1700000000 not a time.
    model_config = ConfigDict(strict=True)


class OutModel(BaseModel):
    """Response bodies. extra="forbid" only matters when a body is validated back into its model
    (as the tests do), where it proves the documented schema lists every key sent."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(OutModel):
    error: Annotated[str, Field(description="why the request failed, for people")]


class ApiError(Exception):
    """Answer the request with `status` and {"error": message}."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Call:
    """A request as a handler sees it: path, query and body already validated against the
    endpoint's models (instances of them, or None where the endpoint declares none), and the
    caller its token makes (monitor.app.access)."""

    path: Any = None
    query: Any = None
    body: Any = None
    caller: Caller = Caller("anonymous")

    def who(self, given: str | None) -> str:
        """The name a write records (Caller.who). Raises ApiError 400 or 403."""
        try:
            return self.caller.who(given)
        except Refused as exc:
            raise ApiError(exc.status, exc.message) from None


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: status, body, and for writes the line to log."""

    status: int
    body: BaseModel
    audit: str | None = None


Handler = Callable[[Call], Awaitable[Reply]]


def utc(ns: int) -> datetime:
    """UTC datetime of `ns` (ns since the epoch), to the microsecond."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def opt_utc(ns: int | None) -> datetime | None:
    return None if ns is None else utc(ns)


def to_ns(dt: datetime) -> int:
    """ns since the epoch of an aware datetime, exactly (no float rounding)."""
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000
