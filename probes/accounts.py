"""Camera accounts, shared by the RTSP and ONVIF probes: cameras of a contract usually have one
account (Hikvision's admin) for both, with exceptions per region or batch.

Config shape (under probes.rtsp, probes.rtsp_frame and probes.onvif):

    username: admin
    password_file: /etc/fleetmon/secrets/camera.password     # or password_env: NAME
    credentials:                                             # exceptions; the last match wins
      - {match: {region: [河西乡]}, username: admin, password_env: FLEETMON_CAMERA_PASSWORD_HEXI}

Passwords come only from an environment variable or a file (read once, at load), are kept as
SecretStr and never appear in errors, reasons or logs; written inline they are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import ConfigDict, Field, SecretStr, model_validator

from monitor.core.config_base import ResolvedSecret, SelectorConfig, WithSecrets
from monitor.core.model import Device


class _Password(WithSecrets):
    # Errors must not echo the input: a password may have been pasted where a name belongs.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    secrets = ("password",)
    password_env: str | None = None
    password_file: Path | None = None
    password: ResolvedSecret = None


class CameraCredential(_Password):
    """The account of the cameras `match` selects (instead of the default one)."""

    match: SelectorConfig
    username: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _required(self) -> Self:
        if self.password is None:
            raise ValueError(f"credentials for {self.username!r} need password_env or password_file")
        return self


class CameraAccounts(_Password):
    """Base of the camera probes' configs: the default account and its exceptions."""

    username: Annotated[str, Field(min_length=1)] | None = None
    credentials: list[CameraCredential] = []
    """Accounts of selected cameras; every matching entry applies in order, the last wins."""

    @model_validator(mode="after")
    def _together(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password_env/password_file go together: give both or neither")
        return self

    def account_for(self, device: Device) -> tuple[str, SecretStr] | None:
        """(username, password) of `device`: the default account, then the last matching entry
        of `credentials`; None when neither gives one."""
        account = (self.username, self.password) if self.username and self.password else None
        for credential in self.credentials:
            if credential.match.selector().matches(device):
                account = (credential.username, credential.password)  # type: ignore[assignment]
        return account
