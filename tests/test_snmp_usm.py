"""The SNMPv3 user model written once (probes/snmp_usm.py): the poller's credential set and the
trap receiver's users are the same class, accept the same protocols, say the same errors, and
map every protocol to pysnmp's identifier. The protocols on the wire: tests/test_snmp.py (poller
against snmpsim and snmpd) and tests/test_traps.py (receiver against net-snmp's tools)."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError
from pysnmp.entity import config as pysnmp_config

from probes.snmp import SnmpConfig
from probes.snmp_model import SnmpAuth
from probes.snmp_usm import AuthProtocol, PrivProtocol, UsmUser
from probes.trap_model import TrapConfig, TrapUser

KEYS = {"FM_USM_AUTH": "auth-key-1", "FM_USM_PRIV": "priv-key-1", "FM_USM_SHORT": "short7!"}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def poller(**user: str) -> SnmpConfig:
    return SnmpConfig(version="3", **user)


def trap_user(**user: str) -> TrapUser:
    return TrapConfig(users=[user]).users[0]


def test_one_class_for_both() -> None:
    assert issubclass(SnmpAuth, UsmUser) and issubclass(TrapUser, UsmUser)


@pytest.mark.parametrize("priv", get_args(PrivProtocol))
@pytest.mark.parametrize("build", [poller, trap_user], ids=["poller", "traps"])
def test_every_privacy_protocol_on_both_sides(build, priv: str) -> None:
    user = build(user="u", auth_protocol="SHA", auth_key_env="FM_USM_AUTH", priv_protocol=priv,
                 priv_key_env="FM_USM_PRIV")
    assert user.priv_protocol == priv and user.priv_key.get_secret_value() == "priv-key-1"


def test_protocols_map_to_pysnmp() -> None:
    expected_auth = {
        "MD5": pysnmp_config.USM_AUTH_HMAC96_MD5, "SHA": pysnmp_config.USM_AUTH_HMAC96_SHA,
        "SHA-224": pysnmp_config.USM_AUTH_HMAC128_SHA224, "SHA-256": pysnmp_config.USM_AUTH_HMAC192_SHA256,
        "SHA-384": pysnmp_config.USM_AUTH_HMAC256_SHA384, "SHA-512": pysnmp_config.USM_AUTH_HMAC384_SHA512,
    }
    expected_priv = {
        "DES": pysnmp_config.USM_PRIV_CBC56_DES, "3DES": pysnmp_config.USM_PRIV_CBC168_3DES,
        "AES": pysnmp_config.USM_PRIV_CFB128_AES,
        "AES-192": pysnmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
        "AES-256": pysnmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
        "AES-192-C": pysnmp_config.USM_PRIV_CFB192_AES, "AES-256-C": pysnmp_config.USM_PRIV_CFB256_AES,
    }
    assert set(expected_auth) == set(get_args(AuthProtocol)) and set(expected_priv) == set(get_args(PrivProtocol))
    for auth, auth_oid in expected_auth.items():
        user = UsmUser(user="u", auth_protocol=auth, auth_key_env="FM_USM_AUTH")
        assert user.pysnmp_protocols() == (auth_oid, pysnmp_config.USM_PRIV_NONE)
    for priv, priv_oid in expected_priv.items():
        user = UsmUser(user="u", auth_protocol="SHA", auth_key_env="FM_USM_AUTH", priv_protocol=priv,
                       priv_key_env="FM_USM_PRIV")
        assert user.pysnmp_protocols() == (pysnmp_config.USM_AUTH_HMAC96_SHA, priv_oid)
    assert UsmUser(user="u").pysnmp_protocols() == (pysnmp_config.USM_AUTH_NONE, pysnmp_config.USM_PRIV_NONE)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (dict(auth_protocol="SHA"), "auth_protocol needs auth_key_env or auth_key_file"),
        (dict(auth_key_env="FM_USM_AUTH"), "an auth key needs auth_protocol"),
        (dict(priv_protocol="AES", priv_key_env="FM_USM_PRIV"), "privacy needs authentication"),
        (dict(auth_protocol="SHA", auth_key_env="FM_USM_AUTH", priv_protocol="AES"),
         "priv_protocol and priv_key_env/priv_key_file go together"),
        (dict(auth_protocol="SHA", auth_key_env="FM_USM_SHORT"), "auth_key must have at least 8 characters"),
        (dict(auth_protocol="SHA", auth_key="inline-key"), "'auth_key' must not be written in the config"),
        (dict(auth_protocol="SHA", auth_key_env="FM_USM_AUTH", auth_key_file="/x"), "not both"),
        (dict(priv_protocol="AES-128"), "Input should be 'DES'"),
    ],
)
@pytest.mark.parametrize("build", [poller, trap_user], ids=["poller", "traps"])
def test_same_mistake_same_error(build, user: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(user="u", **user)
    text = " | ".join(error["msg"] for error in info.value.errors(include_url=False))
    assert message in text
    assert not [secret for secret in (*KEYS.values(), "inline-key") if secret in text]


def test_usm_identity_compares_protocols_and_keys() -> None:
    a = UsmUser(user="u", auth_protocol="SHA", auth_key_env="FM_USM_AUTH")
    assert a.usm_identity() == UsmUser(user="v", auth_protocol="SHA", auth_key_env="FM_USM_AUTH").usm_identity()
    assert a.usm_identity() != UsmUser(user="u", auth_protocol="MD5", auth_key_env="FM_USM_AUTH").usm_identity()
    assert a.usm_identity() != UsmUser(user="u", auth_protocol="SHA", auth_key_env="FM_USM_PRIV").usm_identity()
