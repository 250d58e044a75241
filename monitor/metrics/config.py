"""config.yaml section `influxdb`: where metrics go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.core.config_base import Strict, is_http_url, read_secret, refuse_inline_secrets


class RetryConfig(Strict):
    initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


# Upper case only: a value that is not an environment variable name may be the secret itself,
# written into *_env by mistake, and must then not be echoed in the error message.


class InfluxDBConfig(Strict):
    """Where metrics go. `api: v1` = POST /write + InfluxQL (InfluxDB 1.x; 2.x/3.x v1
    compatibility); `api: v2` = the influxdb-client async write API (2.x, 3.x, 1.8+)."""

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
    """Lines kept in memory while InfluxDB is unreachable; beyond it the oldest are dropped (counted)."""
    retry: RetryConfig = RetryConfig()

    # Resolved at load time from *_env / *_file; never part of the YAML.
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # The URL itself is never echoed: it may carry user:password@.
        if not is_http_url(url):
            raise ValueError("must look like http://HOST:PORT or https://HOST:PORT")
        return url

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: object) -> object:
        return refuse_inline_secrets(data, "password", "token")

    @model_validator(mode="after")
    def _resolve_secrets(self) -> "InfluxDBConfig":
        if self.password_env and self.password_file or self.token_env and self.token_file:
            raise ValueError("give a secret either as *_env or as *_file, not both")
        if self.api == "v2" and self.enabled and not (self.org and self.bucket):
            raise ValueError("api v2 needs org and bucket")
        object.__setattr__(self, "password", read_secret(self.password_env, self.password_file, "password"))
        object.__setattr__(self, "token", read_secret(self.token_env, self.token_file, "token"))
        return self
