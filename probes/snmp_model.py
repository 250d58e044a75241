"""What the SNMP probe (probes.snmp) and its pysnmp side (probes._snmp_engine) share, so that
neither imports the other: the credential set of a device (SnmpAuth), the failure of a request
(SnmpFailure) and what one poll gathers (Poll, TableData). Loads no pysnmp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from monitor.core.config_base import ResolvedSecret
from probes.snmp_mibs import Oid, Row
from probes.snmp_usm import UsmUser


class SnmpAuth(UsmUser):
    """One credential set: SNMPv2c community or SNMPv3 USM user (probes.snmp_usm.UsmUser: user,
    auth/priv protocols and keys, the security level following from what is given). Secrets
    only through *_env / *_file."""

    secrets = ("community", "auth_key", "priv_key")

    version: Literal["2c", "3"] = "2c"
    community_env: str | None = None
    community_file: Path | None = None
    context: str = ""
    """SNMPv3 contextName (RFC 3411 §3.3.1); most agents use the empty default."""

    community: ResolvedSecret = None

    @model_validator(mode="after")
    def _one_version(self) -> "SnmpAuth":
        if self.version == "2c":
            v3 = [k for k in ("user", "auth_protocol", "auth_key_env", "auth_key_file", "priv_protocol",
                              "priv_key_env", "priv_key_file") if getattr(self, k) is not None]
            if v3:
                raise ValueError(f"version 2c takes a community, not SNMPv3 settings ({', '.join(v3)})")
            return self
        if self.community_env or self.community_file:
            raise ValueError("version 3 takes a user and keys, not a community")
        if self.user is None:
            raise ValueError("version 3 needs `user`")
        return self

    @property
    def complete(self) -> bool:
        """False for a v2c set without community (the top-level default): nothing to send."""
        return self.version == "3" or self.community is not None


GET_CHUNK = 40
"""Varbinds per GET at most: a UPS card's agent (APC NMC, Liebert IntelliSlot) answers a GET
of 40 short scalars in one 1,500-byte datagram; larger requests get tooBig or no answer."""


class SnmpFailure(Exception):
    """A request got no usable answer; str() is the reason (no secrets in it)."""


@dataclass
class Poll:
    """What one poll of one device gathered, and what went wrong (for the reason)."""

    varbinds: int = 0
    problems: list[str] = field(default_factory=list)
    objects: dict[str, list[str]] = field(default_factory=dict)  # "wrong type for" → ["ifInErrors (…)", …]
    refused: list[str] = field(default_factory=list)  # "upsBatteryTemperature=-273: -273 °C outside -40…80 °C"

    LISTED = 8
    """Names shown per kind of problem; the rest are counted ("+5 more")."""

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def bad_object(self, what: str, name: str) -> None:
        """An object without a usable value, grouped by `what` so the reason stays short."""
        names = self.objects.setdefault(what, [])
        if name not in names:
            names.append(name)

    def refuse(self, text: str) -> None:
        """A value the agent sent and fleetmon does not store (a sentinel, an impossible value)."""
        if text not in self.refused:
            self.refused.append(text)

    def reason(self) -> str | None:
        """"partial: …" or None when nothing went wrong."""
        def listed(names: list[str]) -> str:
            more = len(names) - self.LISTED
            return ", ".join(names[: self.LISTED]) + (f" (+{more} more)" if more > 0 else "")

        parts = self.problems + [f"{what} {listed(names)}" for what, names in self.objects.items()]
        if self.refused:
            parts.append(f"refused {listed(self.refused)}")
        return f"partial: {'; '.join(parts)}" if parts else None


@dataclass
class TableData:
    """The rows of one table walk as they come: index → {column name: value}."""

    rows: dict[Oid, Row] = field(default_factory=dict)
    times: dict[Oid, float] = field(default_factory=dict)  # row → monotonic time its first cell came
    bits: dict[Oid, dict[str, int]] = field(default_factory=dict)  # row → {counter column: 32 or 64}
