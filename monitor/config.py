"""fleetmon's configuration: one YAML file, validated once into frozen pydantic models.

Strict: unknown keys are errors (extra="forbid"), values are validated, and the whole tree is
frozen so that a running component can never see a half-changed config. Secrets are never
written in the file: they come from an environment variable (`*_env`) or a file (`*_file`)
and are held as SecretStr.

Loading (YAML → model, errors with their YAML paths and lines) lives in `load()` below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, create_model, model_validator

from monitor.config_base import Strict
from probes import REGISTRY


class InventoryConfig(Strict):
    """Where the fleet comes from: point lists (CSV/XLSX, 点位明细表) and/or inline devices.
    Relative paths are relative to the config file."""

    point_lists: list[Path] = []
    devices: list[dict] = []  # rows with the point-list columns; validated by monitor.inventory


class SchedulerConfig(Strict):
    spread: Annotated[float, Field(ge=0.0, le=0.9)] = 0.5
    """Fraction of a probe's interval over which the starts of its targets are spread evenly."""
    max_concurrency: Annotated[int, Field(ge=1, le=100_000)] = 5000
    """Probes of one type in flight at once."""


class StateConfig(Strict):
    database: Path = Path("/var/lib/fleetmon/state.db")
    """SQLite state database (WAL): every state transition with its time."""
    down_after: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive failed probe results before a device is declared down."""
    up_after: Annotated[int, Field(ge=1, le=100)] = 2
    """Consecutive good probe results before a down device is declared up again."""


class RetryConfig(Strict):
    initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


def _read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return SecretStr(value)
    if file is not None:
        try:
            return SecretStr(file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"{what}: cannot read {file}: {exc.strerror}") from None
    return None


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
    max_buffer_lines: Annotated[int, Field(ge=1000)] = 1_000_000
    """Lines kept in memory while InfluxDB is unreachable; beyond it the oldest are dropped (counted)."""
    retry: RetryConfig = RetryConfig()

    # Resolved at load time from *_env / *_file; never part of the YAML.
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("password", "token"):
                if key in data:
                    raise ValueError(f"'{key}' must not be written in the config: use {key}_env or {key}_file")
        return data

    @model_validator(mode="after")
    def _resolve_secrets(self) -> "InfluxDBConfig":
        if self.password_env and self.password_file or self.token_env and self.token_file:
            raise ValueError("give a secret either as *_env or as *_file, not both")
        if self.api == "v2" and self.enabled and not (self.org and self.bucket):
            raise ValueError("api v2 needs org and bucket")
        object.__setattr__(self, "password", _read_secret(self.password_env, self.password_file, "password"))
        object.__setattr__(self, "token", _read_secret(self.token_env, self.token_file, "token"))
        return self


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


# Built from the probe registry so that a new probe type needs no edit here.
ProbesConfig: type[BaseModel] = create_model(
    "ProbesConfig",
    __base__=Strict,
    **{name: (cls.Config, cls.Config()) for name, cls in REGISTRY.items()},
)


class FleetmonConfig(Strict):
    """The whole config file (config.yaml)."""

    timezone: str = "Asia/Shanghai"
    """Zone for times in messages and reports; everything stored is UTC."""
    language: Literal["zh", "en"] = "zh"
    """Language of texts for people (duty engineers, command hall)."""
    inventory: InventoryConfig = InventoryConfig()
    probes: ProbesConfig = ProbesConfig()  # type: ignore[valid-type]
    scheduler: SchedulerConfig = SchedulerConfig()
    state: StateConfig = StateConfig()
    influxdb: InfluxDBConfig = InfluxDBConfig()
    log: LogConfig = LogConfig()
