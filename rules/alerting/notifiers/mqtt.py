"""The MQTT route: fault events published for other command-hall systems, one topic per region.

Each event is published as the same JSON document the webhook posts
(rules.alerting.notifiers.webhook.event_document: FaultEvent.to_dict() plus "source": "fleetmon") to
`{topic_prefix}/{region}` (`fleet` for faults without a region), e.g. `fleetmon/faults/城关镇`.
A subscriber takes one region with `fleetmon/faults/城关镇` or all with `fleetmon/faults/#`.

Protocol: MQTT 3.1.1 (OASIS Standard, 29 October 2014) through aiomqtt 2.x / paho-mqtt 2.x.
- QoS 1 (default), "at least once" (§4.3.2): an event counts as delivered when the broker's
  PUBACK for it arrived (§3.4); one PUBLISH at a time, so a failure leaves a clean prefix of
  delivered events and the broker forwards them in order (§4.6). A PUBACK that does not come
  within timeout_s means "unknown": the event is sent again later, so subscribers may see an
  event twice and drop repeats by its "id". QoS 0 counts an event delivered once written to the
  socket; QoS 2 (§4.3.3) once PUBCOMP arrived.
- Clean session (§3.1.2.4): the broker keeps no state for fleetmon between connections; the
  outbox is the durable store, and a broker-side session would only re-send what the outbox
  retries anyway.
- CONNACK refusals (§3.2.2.3): 4 "bad user name or password" and 5 "not authorized" are
  reported with a hint at username / password_env / password_file and retried every
  REFUSED_RETRY_S (the broker admin or the config must change first); others like connection
  refused, reset or timed out are retried with the outbox's backoff. The connection is made on the
  first delivery and again on the next delivery after any failure.
- A broker that denies the topic by ACL cannot be noticed: under 3.1.1 it still acknowledges
  the PUBLISH and drops it (MQTT 5's PUBACK reason codes, §3.4.2.1 of MQTT 5.0, would say so,
  but aiomqtt 2.x does not expose them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Self

from pydantic import Field

from monitor.core.config_base import MqttAccount, TopicPrefix
from rules.alerting.duty import DutyRoster
from rules.model import FaultEvent
from rules.alerting.notifiers.base import Delivery, Progress, RouteConfigBase
from rules.alerting.notifiers.webhook import event_json

if TYPE_CHECKING:  # imported where used: ~5 MB of RSS that a daemon without MQTT routes never needs
    import aiomqtt
    from aiomqtt.exceptions import MqttConnectError

log = logging.getLogger("fleetmon.mqtt")

REFUSED_RETRY_S = 300.0
"""Wait before connecting again after the broker refused fleetmon's credentials."""

# CONNACK codes that mean "not these credentials": 3.1.1 return codes 4 and 5, which paho-mqtt
# 2.x reports as the MQTT 5 reason codes 0x86 and 0x87 (MQTT 5.0 §3.2.2.2).
_CREDENTIALS_REFUSED = frozenset({4, 5, 0x86, 0x87})
# Characters a topic level of ours must not contain: "/" separates levels, "+" and "#" are
# wildcards, not allowed in a PUBLISH topic name, and U+0000 is forbidden in any MQTT string
# (3.1.1 §4.7.1, §3.3.2.1, §1.5.3).
_NOT_IN_LEVEL = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


class MqttConfig(RouteConfigBase, MqttAccount):
    """An MQTT route (config `notify.routes[]` with `type: mqtt`).

    - host / port, username, password_env / password_file: the broker (plain TCP) and the
      account (MqttAccount).
    - topic_prefix: events go to `{topic_prefix}/{region or "fleet"}`.
    - qos: 1 (at least once, waits for PUBACK) by default; retain: keep the last event per
      region on the broker for new subscribers.
    - client_id: the MQTT client identifier; none = a random one (two clients with one id
      throw each other off the broker, 3.1.1 §3.1.4).
    - timeout_s: for connecting and for each acknowledgement.
    """

    type: Literal["mqtt"]
    topic_prefix: TopicPrefix = "fleetmon/faults"
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    client_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0


def topic_for(prefix: str, event: FaultEvent) -> str:
    """`{prefix}/{region}` for the event's fault; "fleet" when it has no region."""
    level = (event.fault.region or "fleet").translate(_NOT_IN_LEVEL)
    return f"{prefix}/{level}"


class MqttRoute:
    """Publishes fault events to an MQTT broker (see the module docstring). Connects lazily, on
    the first delivery, so that fleetmon starts while the broker is down. `duty` is accepted
    for the Route constructor contract and not used."""

    type: ClassVar[str] = "mqtt"

    def __init__(self, cfg: MqttConfig, duty: DutyRoster | None = None) -> None:
        self.name = cfg.name
        self._cfg = cfg
        self._where = f"MQTT broker {cfg.host}:{cfg.port}"
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._disconnect()

    async def deliver(self, events: Sequence[FaultEvent], progress: Progress | None = None) -> Delivery:
        """Publish the events one by one, oldest first, each acknowledged before the next;
        `progress([id])` after each acknowledgement."""
        import aiomqtt

        delivered: list[int] = []
        try:
            client = await self._connected()
            for event in events:
                await client.publish(
                    topic_for(self._cfg.topic_prefix, event),
                    event_json(event),
                    qos=self._cfg.qos,
                    retain=self._cfg.retain,
                    timeout=self._cfg.timeout_s,
                )
                delivered.append(event.id)
                if progress is not None:
                    await progress((event.id,))
        except aiomqtt.MqttError as exc:
            retry_after_s, error = self._failure(exc, connected=self._client is not None)
            # Whatever broke, the next delivery starts on a fresh connection.
            await self._disconnect()
            return Delivery(tuple(delivered), retry_after_s=retry_after_s, error=error)
        return Delivery(tuple(delivered))

    async def _connected(self) -> aiomqtt.Client:
        """The client, connected (CONNACK accepted). Raises aiomqtt.MqttError."""
        import aiomqtt

        if self._client is None:
            cfg = self._cfg
            client = aiomqtt.Client(
                cfg.host,
                cfg.port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password is not None else None,
                identifier=cfg.client_id,
                clean_session=True,
                timeout=cfg.timeout_s,
                logger=log,
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        import aiomqtt

        try:
            await client.__aexit__(None, None, None)
        except aiomqtt.MqttError:
            pass  # the connection is already gone or hangs; it is dropped either way
        # aiomqtt 2.x keeps an unexpected disconnection as the exception of a private future that
        # nothing reads when it happened during a publish; read it here, or asyncio logs
        # "Future exception was never retrieved" when the client is collected.
        lost = getattr(client, "_disconnected", None)
        if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
            lost.exception()

    def _failure(self, exc: aiomqtt.MqttError, *, connected: bool) -> tuple[float | None, str]:
        """(retry_after_s, error) for a failed connect or publish."""
        from aiomqtt.exceptions import MqttConnectError

        if isinstance(exc, MqttConnectError):
            if _code(exc.rc) in _CREDENTIALS_REFUSED:
                return REFUSED_RETRY_S, (
                    f"{self._where} refused fleetmon's credentials ({_reason(exc)}): check the route's username "
                    f"and password_env / password_file, or the broker's accounts; retrying every {REFUSED_RETRY_S:.0f} s"
                )
            return None, f"{self._where} refused the connection: {_reason(exc)}"
        what = "connection lost or publish not acknowledged" if connected else "cannot connect"
        return None, f"{self._where}: {what} ({exc})"


def _code(rc: object) -> object:
    """The numeric CONNACK code: paho-mqtt 2.x gives a ReasonCode (with .value), 1.x an int."""
    return getattr(rc, "value", rc)


def _reason(exc: MqttConnectError) -> str:
    """The refusal in words, e.g. "Not authorized"."""
    return str(exc) if isinstance(exc.rc, int) else str(exc.rc)
