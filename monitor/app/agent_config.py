"""Probe agents over MQTT: the config of both ends and what they must agree on.

- `BrokerConfig`: how either end reaches the MQTT broker (TLS, credentials, persistent session).
- `MqttAgentsConfig`: the central daemon's `mqtt_agents:` section: the broker, the agents and
  which devices each owns (a selector over the central point list), silence detection.
- `AgentFileConfig`: an agent's own file (agent.yaml, `fleetmon agent --config`): its name and
  selection, the broker, the spool, and the same `inventory`, `probes` and `scheduler` sections
  as the central config.
- `points_digest` / `probes_digest`: what an agent announces in its hello and the central
  compares with its own view of that agent (drift: monitor.app.agent_hub).

Secrets follow the rest of fleetmon: the broker password from `password_env` or
`password_file`, never inline.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from monitor.core.config_base import (
    ConfigError, ConfigSource, Loc, MqttAccount, SelectorConfig, Strict, TopicPrefix,
)
from monitor.core.model import Device, Status
from monitor.fleet.inventory import Inventory
from probes import REGISTRY

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""An agent's name: one MQTT topic level, an ASCII word (no "/", "+", "#", no spaces)."""


class TlsConfig(Strict):
    """TLS to the broker. `ca_file`: the CA that signed the broker's certificate (None: the
    system's trust store); `cert_file` + `key_file`: a client certificate, for brokers that
    require one (mosquitto `require_certificate true`)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        return self


class BrokerConfig(MqttAccount):
    """The MQTT broker (any MQTT 3.1.1 or 5 broker: mosquitto, EMQX, …).

    - host, port (1883; 8883 is the usual TLS port), username, password_env / password_file
      (MqttAccount); tls (None: plain TCP);
    - client_id: this end's MQTT client identifier, the key of its persistent session on the
      broker (each agent and the central need their own; default: fleetmon-<agent name> for an
      agent, fleetmon-central for the central);
    - protocol: "5" (clean_start false + a session expiry) or "3.1.1" (clean_session false; the
      broker's own expiry applies, mosquitto `persistent_client_expiration`);
    - session_expiry_s: how long the broker keeps the session (and queued QoS 1 messages) of a
      disconnected client, MQTT 5 only;
    - keepalive_s: PINGREQ interval; the broker publishes the agent's will ("offline") after
      1.5 × keepalive without a packet (MQTT 3.1.1 §3.1.2.10);
    - timeout_s: connecting, and each acknowledgement.
    """

    tls: TlsConfig | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=23 * 10)] | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    session_expiry_s: Annotated[int, Field(ge=60, le=2**32 - 1)] = 7 * 86_400
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0


def _probe_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown probe(s) {', '.join(map(repr, unknown))}; known: {', '.join(REGISTRY)}")
    if len(set(names)) != len(names):
        raise ValueError("a probe is listed twice")
    return names


AgentName = Annotated[str, Field(pattern=NAME.pattern)]
ProbeNames = Annotated[list[str], Field(min_length=1)]


class AgentSpec(Strict):
    """One agent as the central daemon knows it: `name` (its topic level), `select` (the
    devices it owns, from the central point list; every list empty = refused, an agent
    never owns the whole fleet by accident) and the `probes` it runs for them."""

    name: AgentName
    select: SelectorConfig
    probes: ProbeNames = ["icmp"]

    @field_validator("probes")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return _probe_names(names)

    @field_validator("select")
    @classmethod
    def _not_everything(cls, select: SelectorConfig) -> SelectorConfig:
        if not (select.region or select.site or select.kind or select.tags):
            raise ValueError("must select by region, site, kind or tags (an empty selector would hand "
                             "the whole fleet to one agent)")
        return select


class MqttAgentsConfig(Strict):
    """The central daemon's `mqtt_agents:` section (absent, or no agents: none).

    - broker: the broker both ends use (the central's own client id and account);
    - topic_prefix: topics are `{topic_prefix}/{agent}/{results|status|hello}` (docs/OPERATIONS.md);
    - silent_after_s: an agent from which nothing arrived for this long (no heartbeat, no
      results) is silent: its devices become unknown (monitor blind) and one fault is raised;
      its will ("offline", published by the broker when the agent's connection dies) says so
      at once. Must exceed the agents' `heartbeat_s` with room (3 × is a good start);
    - fault_after_s: the fault "探测代理<name>失联" fires once the silence lasted this long (its
      devices are unknown from the first moment): a broker restart, which publishes every
      agent's will and takes seconds, wakes nobody;
    - agents: the agents and the devices each owns; the central never probes those itself.
    """

    broker: BrokerConfig | None = None
    topic_prefix: TopicPrefix = "fleetmon/v1"
    silent_after_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    fault_after_s: Annotated[float, Field(ge=0, le=86_400)] = 30.0
    agents: list[AgentSpec] = []

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [a.name for a in self.agents]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"agent name(s) used twice: {', '.join(twice)}")
        if self.agents and self.broker is None:
            raise ValueError("agents need a broker (mqtt_agents.broker)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.agents)


class AgentSection(Strict):
    """agent.yaml's `agent:` section.

    - name: as in the central's `mqtt_agents.agents[].name`;
    - select, probes: the devices it probes (from its point list) and with which probes, as
      the central's entry for it says (a difference is reported as drift);
    - heartbeat_s: how often it publishes its status while connected;
    - spool_dir, spool_max_bytes: results wait there while the broker is unreachable (CRC-framed
      segments, monitor.metrics.spool); when full, the oldest are dropped and counted;
    - batch_max: results per MQTT message (one PUBLISH carries a batch, in order).
    """

    name: AgentName
    select: SelectorConfig
    probes: ProbeNames = ["icmp"]
    heartbeat_s: Annotated[float, Field(ge=0.2, le=3600)] = 10.0
    spool_dir: Path = Path("/var/lib/fleetmon-agent/spool")
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500

    @field_validator("probes")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return _probe_names(names)


def ownership(cfg: MqttAgentsConfig, inventory: Inventory, source: ConfigSource | None = None) -> dict[str, str]:
    """device id → the name of the agent that owns it (its selector matches; removed points and
    points without an address are nobody's). Raises ConfigError (ConfigError caps the list)
    when a device is selected by two agents or an agent selects no device, each problem as
    "FILE:LINE: mqtt_agents.agents[i].select: …" (`source`: the config file's, when known)."""
    owner: dict[str, str] = {}
    problems: list[str] = []
    for i, agent in enumerate(cfg.agents):
        where: Loc = ("mqtt_agents", "agents", i, "select")
        at = f"{source.path}:{source.line(where)}" if source is not None else "<config>"
        mine = agent_devices(agent.select, inventory)
        if not mine:
            problems.append(f"{at}: mqtt_agents.agents[{i}].select: agent {agent.name} selects no device of the point list")
        for d in mine:
            if d.id in owner:
                problems.append(f"{at}: mqtt_agents.agents[{i}].select: device {d.id} is already owned by agent "
                                f"{owner[d.id]}: each device belongs to one agent")
            else:
                owner[d.id] = agent.name
    if problems:
        raise ConfigError(problems)
    return owner


def _probed(device: Device) -> bool:
    return device.status is not Status.REMOVED and device.address is not None


def agent_devices(select: SelectorConfig, inventory: Inventory) -> list[Device]:
    """The devices an agent's selector takes from `inventory`, in inventory order (probed ones only)."""
    selector = select.selector()
    return [d for d in inventory.devices.values() if _probed(d) and selector.matches(d)]


def points_digest(devices: Iterable[Device]) -> str:
    """A short digest of the points an agent owns, over what probing depends on: id, kind,
    address, parent, status. Equal point lists and selectors give equal digests on both ends."""
    rows = sorted((d.id, d.kind.value, str(d.address), d.parent or "", d.status.value) for d in devices)
    return _digest(rows)


def probes_digest(probes: BaseModel, names: Iterable[str]) -> str:
    """A short digest of the settings of the probes `names` (secrets appear masked, so the
    digest never carries one; paths as written after resolution)."""
    return _digest({n: getattr(probes, n).model_dump(mode="json") for n in sorted(names)})


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
