"""What the trap receiver (probes.traps) and its pysnmp side (probes._trap_engine) share, so that
neither imports the other: the config (`traps:` in config.yaml: TrapConfig, TrapUser), the limits
on what a notification may carry (MAX_VARBINDS, MAX_TEXT) and the error for a notification that
breaks the protocol (MalformedNotification). Loads no pysnmp.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.core.config_base import WithSecrets, resolve_secret
from probes.snmp_usm import UsmUser

MAX_VARBINDS = 32
"""Varbinds kept per event (a trap carries a handful; the rest of a hostile one is dropped)."""
MAX_TEXT = 256
"""Characters kept per varbind value and per interface name."""


class MalformedNotification(Exception):
    """A notification that passed authentication but breaks the protocol."""


class TrapUser(UsmUser):
    """One SNMPv3 (USM, RFC 3414) user allowed to send traps and informs: the fields of
    probes.snmp_usm.UsmUser (user, which is required here; auth_protocol, None = noAuthNoPriv;
    auth_key_env/auth_key_file, priv_protocol, priv_key_env/priv_key_file: passphrases of ≥ 8
    characters, resolved into auth_key/priv_key), and:

    - engine_id: hex (optionally 0x-prefixed, 5..32 octets, RFC 3411 SnmpEngineID) of the SENDER's
      authoritative engine ID; needed for v3 traps, not for informs.
    """

    user: Annotated[str, Field(min_length=1, max_length=32)]
    engine_id: str | None = None

    @field_validator("engine_id")
    @classmethod
    def _hex_engine_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.lower().removeprefix("0x").replace(":", "")
        try:
            octets = bytes.fromhex(text)
        except ValueError:
            raise ValueError("engine_id must be hexadecimal, e.g. 0x80001f8880c71100000000000000") from None
        if not 5 <= len(octets) <= 32:
            raise ValueError(f"engine_id must be 5 to 32 octets (RFC 3411 SnmpEngineID), not {len(octets)}")
        return octets.hex()


class TrapConfig(WithSecrets):
    """config.yaml section `traps`.

    - enabled: off by default; UDP 162 needs root or CAP_NET_BIND_SERVICE.
    - listen: IP address to bind ("0.0.0.0"; "::" listens on IPv6 and IPv4).
    - port: UDP port (162, RFC 3417 §3 snmpTrap).
    - communities_env / communities_file: comma-separated SNMPv1/v2c communities accepted
      (secrets; resolved into `communities`).
    - users: SNMPv3 users (TrapUser).
    - max_events_per_s: per sender address; datagrams beyond it are dropped before decoding.
    - max_total_events_per_s: all senders together (a token bucket, bursts up to the same
      number); what is beyond is dropped before decoding. Only datagrams from fleet addresses
      and relays count against it: unknown senders never reach it, so they cannot starve the
      fleet's traps.
    - relays: addresses of trap forwarders (not devices themselves) whose notifications are
      decoded: their SNMPv1 traps map to a device by agent-addr (RFC 1157 §4.1.6). Datagrams
      from any other address not in the inventory are dropped before decoding.
    - unknown_log_interval_s: rejected datagrams (unknown senders, floods, wrong communities or
      keys, malformed) are counted always and logged in aggregate: the first of a quiet spell at
      once, then one summary line per interval ("dropped N SNMP notifications from M unknown
      senders in the last 60 s …"); 0 logs every rejection.
    """

    # A list of secrets: resolved here (into a tuple), not by WithSecrets into one SecretStr.
    refused = ("communities", "community")

    enabled: bool = False
    listen: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65_535)] = 162
    communities_env: str | None = None
    communities_file: Path | None = None
    users: list[TrapUser] = []
    max_events_per_s: Annotated[float, Field(gt=0, le=100_000)] = 50.0
    max_total_events_per_s: Annotated[float, Field(gt=0, le=1_000_000)] = 1000.0
    relays: list[str] = []
    unknown_log_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0

    # Resolved at load time from communities_env / communities_file; never part of the YAML.
    communities: tuple[SecretStr, ...] = Field(default=(), exclude=True, repr=False)

    @model_validator(mode="after")
    def _resolve(self) -> "TrapConfig":
        try:
            address = ipaddress.ip_address(self.listen)
        except ValueError:
            raise ValueError(f"listen must be an IP address such as 0.0.0.0 or ::, not {self.listen!r}") from None
        object.__setattr__(self, "listen", str(address))
        relays = []
        for relay in self.relays:
            try:
                relays.append(str(ipaddress.ip_address(relay)))
            except ValueError:
                raise ValueError(f"relays: {relay!r} is not an IP address") from None
        object.__setattr__(self, "relays", relays)
        secret = resolve_secret(self, "communities")
        names = [c.strip() for c in secret.get_secret_value().split(",")] if secret else []
        if any(not c for c in names):
            raise ValueError("communities: empty name in the comma-separated list")
        object.__setattr__(self, "communities", tuple(SecretStr(c) for c in dict.fromkeys(names)))
        seen = set()
        for user in self.users:
            key = (user.user, user.engine_id)
            if key in seen:
                raise ValueError(f"user {user.user} is listed twice with the same engine_id")
            seen.add(key)
        if self.enabled and not self.communities and not self.users:
            raise ValueError("traps enabled but no communities (communities_env/_file) and no v3 users")
        return self
