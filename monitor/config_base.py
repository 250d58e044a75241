"""Building blocks shared by every config model (monitor.config and each probe's Config),
kept apart so that probe modules need not import the whole config tree."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from monitor.model import Kind, Selector


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """The secret named by `env` (an environment variable) or `file`, or None when neither is
    given. Raises ValueError (never showing the secret) when it is missing or empty."""
    if env is not None:
        if not _ENV_NAME.fullmatch(env):
            raise ValueError(
                f"{what}_env must name an environment variable (A-Z, 0-9, _); "
                "its value is not shown in case it is the secret itself"
            )
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        origin = f"environment variable {env}"
    elif file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{what}: cannot read {file}: {reason}") from None
        origin = str(file)
    else:
        return None
    if not value:
        raise ValueError(f"{what}: {origin} is empty")
    return SecretStr(value)


def refuse_inline_secrets(data: object, *keys: str) -> object:
    """For `model_validator(mode="before")`: a secret written in the config itself is an error
    (it would end up in backups and tickets); it belongs in `<key>_env` or `<key>_file`."""
    if isinstance(data, dict):
        for key in keys:
            if key in data:
                raise ValueError(f"'{key}' must not be written in the config: use {key}_env or {key}_file")
    return data


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host and, if any, a non-zero port. For URL
    validators, whose errors must not echo the URL (it may carry credentials or a key)."""
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # urlsplit and .port reject malformed hosts and ports
        return False


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectorConfig(Strict):
    """Selects devices; every list empty = all devices. See monitor.model.Selector."""

    region: list[str] = []
    site: list[str] = []
    kind: list[Kind] = []
    tags: list[str] = []

    def selector(self) -> Selector:
        return Selector.of(self.region, self.site, self.kind, self.tags)
