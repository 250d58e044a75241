"""An MQTT client for either end of the probe agents' link, made from a BrokerConfig
(monitor.app.agent_config): TLS and credentials, a persistent session (MQTT 5: clean_start
false and a session expiry interval, §3.1.2.4 and §3.1.2.11.2 of MQTT 5.0; MQTT 3.1.1:
clean_session false, §3.1.2.4) so that the broker keeps the subscriber's QoS 1 messages while
it is away, and an optional will (the agent's "offline" status, §3.1.2.5).

aiomqtt 2.x over paho-mqtt 2.x; imported where used (the daemon without agents never loads it).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from monitor.app.agent_config import BrokerConfig

if TYPE_CHECKING:
    import aiomqtt

RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0


def client(cfg: BrokerConfig, client_id: str, *, will: tuple[str, bytes] | None = None,
           log: logging.Logger | None = None) -> "aiomqtt.Client":
    """A client (not connected: `async with` it). `will`: (topic, payload), published by the
    broker at QoS 1, retained, when this client's connection dies without a DISCONNECT."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    v5 = cfg.protocol == "5"
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = cfg.session_expiry_s
    context = None
    if cfg.tls is not None:
        context = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
        if cfg.tls.cert_file is not None and cfg.tls.key_file is not None:
            context.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password is not None else None,
        identifier=cfg.client_id or client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_session=None if v5 else False,
        clean_start=False if v5 else 3,  # 3 = paho's MQTT_CLEAN_START_FIRST_ONLY, ignored by 3.1.1
        properties=properties,
        will=aiomqtt.Will(will[0], will[1], qos=1, retain=True) if will is not None else None,
        keepalive=cfg.keepalive_s,
        timeout=cfg.timeout_s,
        tls_context=context,
        logger=log,
    )


async def close(c: "aiomqtt.Client") -> None:
    """Leave the connection, whatever state it is in (a DISCONNECT when it still works)."""
    import aiomqtt

    try:
        await asyncio.wait_for(c.__aexit__(None, None, None), 5.0)
    except (aiomqtt.MqttError, TimeoutError, OSError):
        pass  # already gone or hanging: dropped either way
    # aiomqtt keeps an unexpected disconnection as the exception of a private future; read it,
    # or asyncio logs "Future exception was never retrieved" (as in the MQTT notifier).
    lost = getattr(c, "_disconnected", None)
    if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
        lost.exception()


class Backoff:
    """Waits between connection attempts: RETRY_MIN_S doubling to RETRY_MAX_S; reset on success."""

    def __init__(self) -> None:
        self._next = RETRY_MIN_S

    def reset(self) -> None:
        self._next = RETRY_MIN_S

    def next_s(self) -> float:
        wait, self._next = self._next, min(RETRY_MAX_S, self._next * 2)
        return wait
