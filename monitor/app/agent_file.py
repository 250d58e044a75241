"""A probe agent's config file (agent.yaml) and its loading: strict like config.yaml, every
problem with its file, line and YAML path. Its `inventory`, `probes`, `scheduler` and `log`
sections are the central config's (monitor.app.config), so an agent reads the same point list
and the same probe settings; what it adds is `agent:` and `broker:` (monitor.app.agent_config).
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.app.agent_config import AgentSection, BrokerConfig, agent_devices
from monitor.app.config import LogConfig, ProbesConfig, SchedulerConfig, validate_file
from monitor.core.config_base import ConfigError, Strict, TopicPrefix
from monitor.core.model import Device
from monitor.fleet.inventory import InventoryConfig, load_inventory


class AgentFileConfig(Strict):
    """agent.yaml: `agent` (name, selection, probes, heartbeat, spool), `broker`, `topic_prefix`
    (as the central's mqtt_agents.topic_prefix) and the central config's `inventory`, `probes`,
    `scheduler` and `log` sections."""

    agent: AgentSection
    broker: BrokerConfig
    topic_prefix: TopicPrefix = "fleetmon/v1"
    inventory: InventoryConfig = InventoryConfig()
    probes: ProbesConfig = ProbesConfig()  # type: ignore[valid-type]
    scheduler: SchedulerConfig = SchedulerConfig()
    log: LogConfig = LogConfig()


def load_agent(path: str | os.PathLike[str]) -> tuple[AgentFileConfig, list[Device]]:
    """The agent's config and the devices it probes (its selector over its point list). Raises
    ConfigError: a bad file, a bad point list, a selection of no device, a probe it runs that is
    disabled in its probes section."""
    path = Path(path)
    cfg, source = validate_file(path, AgentFileConfig)
    problems = []
    off = [p for p in cfg.agent.probes if not getattr(cfg.probes, p).enabled]
    if off:
        problems.append(f"{path}:{source.line(('agent', 'probes'))}: agent.probes: {', '.join(off)} disabled in "
                        "the probes section")
    cfg.inventory._source = source
    inventory = load_inventory(cfg)
    devices = agent_devices(cfg.agent.select, inventory)
    if not devices:
        problems.append(f"{path}:{source.line(('agent', 'select'))}: agent.select: selects no device of the point list")
    if problems:
        raise ConfigError(problems)
    return cfg, devices
