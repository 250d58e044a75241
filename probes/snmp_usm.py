"""SNMPv3 users (User-based Security Model, RFC 3414), written once for the SNMP poller
(probes.snmp: the top level of `probes.snmp` and its `credentials`) and the trap receiver
(probes.traps: `traps.users`).

Config keys of a user (secrets only through *_env / *_file, see monitor.core.config_base):

    user: fleetmon                  # USM user name, 1..32 characters
    auth_protocol: SHA              # MD5 SHA SHA-224 SHA-256 SHA-384 SHA-512; absent = noAuthNoPriv
    auth_key_file: /etc/fleetmon/secrets/snmp-auth.key     # or auth_key_env: NAME
    priv_protocol: AES              # DES 3DES AES AES-192 AES-256 AES-192-C AES-256-C; absent = authNoPriv
    priv_key_env: FLEETMON_SNMP_PRIV                       # or priv_key_file

The security level follows from what is given: no auth_protocol = noAuthNoPriv, auth only =
authNoPriv, auth and priv = authPriv (RFC 3414 has no noAuthPriv). Keys are passphrases of at
least MIN_KEY_LENGTH characters (RFC 3414 §11.2). This module loads no pysnmp: only
UsmUser.pysnmp_protocols() does, and only the engines (probes._snmp_engine,
probes._trap_engine) call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from monitor.core.config_base import ResolvedSecret, WithSecrets

AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
"""RFC 3414 (MD5, SHA = SHA-1), RFC 7860 (SHA-2, HMAC-SHA-2 truncated)."""
PrivProtocol = Literal["DES", "3DES", "AES", "AES-192", "AES-256", "AES-192-C", "AES-256-C"]
"""DES (RFC 3414), 3DES (draft-reeder-snmpv3-usm-3desede), AES = AES-128 (RFC 3826);
AES-192/AES-256 with Blumenthal key extension (draft-blumenthal-aes-usm-04, net-snmp's
AES192/AES256); the "-C" variants with Reeder key extension (Cisco, net-snmp's AES192C/AES256C)."""

MIN_KEY_LENGTH = 8
"""RFC 3414 §11.2: passphrases shorter than 8 octets are refused."""

# The protocols' names in pysnmp.entity.config (pysnmp 7.1), looked up only when an engine
# configures a user, so that importing this module loads no pysnmp.
_PYSNMP_AUTH: dict[str, str] = {
    "MD5": "USM_AUTH_HMAC96_MD5",
    "SHA": "USM_AUTH_HMAC96_SHA",
    "SHA-224": "USM_AUTH_HMAC128_SHA224",
    "SHA-256": "USM_AUTH_HMAC192_SHA256",
    "SHA-384": "USM_AUTH_HMAC256_SHA384",
    "SHA-512": "USM_AUTH_HMAC384_SHA512",
}
_PYSNMP_PRIV: dict[str, str] = {
    "DES": "USM_PRIV_CBC56_DES",
    "3DES": "USM_PRIV_CBC168_3DES",
    "AES": "USM_PRIV_CFB128_AES",
    "AES-192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "AES-256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
    "AES-192-C": "USM_PRIV_CFB192_AES",  # pysnmp's plain CFB192/256 are the Reeder ("Cisco") ones
    "AES-256-C": "USM_PRIV_CFB256_AES",
}


class UsmUser(WithSecrets):
    """One SNMPv3 USM user: name, authentication and privacy protocols and their keys
    (resolved into `auth_key` / `priv_key`, SecretStr). Errors name the user when it has one.

    `user` is optional here only because the poller's credential set (probes.snmp.SnmpAuth) is
    a v2c community or a v3 user in one mapping; it requires the name for version 3, and the
    trap receiver's users (probes.trap_model.TrapUser) always."""

    secrets = ("auth_key", "priv_key")

    user: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key_env: str | None = None
    auth_key_file: Path | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key_env: str | None = None
    priv_key_file: Path | None = None

    auth_key: ResolvedSecret = None
    priv_key: ResolvedSecret = None

    @model_validator(mode="after")
    def _security_level(self) -> "UsmUser":
        who = f"user {self.user}: " if self.user else ""
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError(f"{who}privacy needs authentication (RFC 3414 has no noAuthPriv level): "
                             "priv_protocol needs auth_protocol")
        if (self.auth_protocol is None) != (self.auth_key is None):
            missing = "auth_protocol needs auth_key_env or auth_key_file" if self.auth_protocol else \
                "an auth key needs auth_protocol"
            raise ValueError(f"{who}auth_protocol and auth_key_env/auth_key_file go together: {missing}")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError(f"{who}priv_protocol and priv_key_env/priv_key_file go together")
        for what, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if key is not None and len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(f"{who}{what} must have at least {MIN_KEY_LENGTH} characters (RFC 3414 §11.2)")
        return self

    def usm_identity(self) -> tuple[Any, ...]:
        """(auth protocol, priv protocol, auth key, priv key), to compare two entries of one user
        name (pysnmp keeps one USM entry per name and engine ID). Holds the keys in clear:
        compare it, never show it."""
        return (self.auth_protocol, self.priv_protocol,
                self.auth_key.get_secret_value() if self.auth_key else None,
                self.priv_key.get_secret_value() if self.priv_key else None)

    def pysnmp_protocols(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(authProtocol, privProtocol) object identifiers as pysnmp's config.add_v3_user and
        UsmUserData take them; USM_AUTH_NONE / USM_PRIV_NONE for what is not configured.
        Imports pysnmp (~20 MB of RSS): for the engines only."""
        from pysnmp.entity import config

        auth = _PYSNMP_AUTH[self.auth_protocol] if self.auth_protocol else "USM_AUTH_NONE"
        priv = _PYSNMP_PRIV[self.priv_protocol] if self.priv_protocol else "USM_PRIV_NONE"
        return getattr(config, auth), getattr(config, priv)
