"""config.yaml section `influxdb`: where metrics go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import ResolvedSecret, Strict, WithSecrets, is_http_url, url_secret_problem


class RetryConfig(Strict):
    initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class InfluxDBConfig(WithSecrets):
    """Where metrics go. `api: v1` = POST /write + InfluxQL (InfluxDB 1.x; 2.x/3.x v1
    compatibility); `api: v2` = the influxdb-client async write API (2.x, 3.x, 1.8+)."""

    # Errors must not echo their input: a URL or host may carry a secret. Merged with Strict's config.
    model_config = ConfigDict(hide_input_in_errors=True)

    secrets = ("password", "token")

    enabled: bool = True
    api: Literal["v1", "v2"] = "v1"
    url: str = "http://127.0.0.1:8086"
    # v1
    database: str = "fleetmon"
    retention_policy: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    # v2
    org: str | None = None
    bucket: str | None = None
    token_env: str | None = None
    token_file: Path | None = None

    batch_size: Annotated[int, Field(ge=1, le=5000)] = 5000
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    gzip: bool = True
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_buffer_lines: Annotated[int, Field(ge=1000)] = 250_000
    """Lines kept in memory without a spool directory: all there is, and beyond it the oldest are
    dropped (counted). With a spool (the daemon's default) at most two batches (`batch_size`) of
    the spool's front are, if this is not lower: the rest waits on disk and is read back as
    batches go out."""
    spool_dir: Path | None = None
    """Directory of the metrics spool (monitor/metrics/spool.py): points wait there, on disk, while
    InfluxDB cannot take them, across restarts and crashes. Default: `influx-spool` next to
    the state database."""
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 512 << 20
    """Bytes the spool may hold (~200 B a point: 512 MiB ≈ 2.5 million points); beyond it the
    oldest points are dropped, counted in the sink's dropped_lines and logged."""
    retry: RetryConfig = RetryConfig()
    state_refresh_cycles: Annotated[int, Field(ge=1, le=1000)] = 10
    """`device_state` is written when a device's state changes, and otherwise once every this
    many of its probe's cycles (spread: a tenth of the devices each cycle with 10), so that
    `last()` over any dashboard range longer than that (the shipped ones: 6 h) shows every
    device. 1: every device every cycle (two of every three points the daemon writes)."""

    password: ResolvedSecret = None
    token: ResolvedSecret = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # The URL itself is never echoed: it may carry user:password@.
        if not is_http_url(url):
            raise ValueError("must look like http://HOST:PORT or https://HOST:PORT")
        # No query at all: InfluxDB reads ?u=&p= and ?token= as credentials; fleetmon adds its own.
        if (problem := url_secret_problem(url, query=False)) is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _v2_target(self) -> "InfluxDBConfig":
        if self.api == "v2" and self.enabled and not (self.org and self.bucket):
            raise ValueError("api v2 needs org and bucket")
        return self
