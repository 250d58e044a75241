"""The MQTT route against a real mosquitto: events on the region's topic as JSON, broker down
and back, connection lost, wrong credentials, and the whole path through the outbox."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import ValidationError

from lab.mosquitto import MosquittoServer
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.model import EventKind, FaultEvent
from rules.alerting.notifiers.mqtt import REFUSED_RETRY_S, MqttConfig, MqttRoute, topic_for
from rules.alerting.notifiers.webhook import event_document
from rules.alerting.outbox import OutboxWorker
from tests.plugins.factories import fault_event
from tests.plugins.mqtt import MQTT_PASSWORD, MQTT_USER

_prefixes = iter(range(1_000_000))


def event(n: int, region: str | None = "城关镇", kind: EventKind = EventKind.FIRING) -> FaultEvent:
    return fault_event(n, event=kind, rule="latency", kind="latency", scope="site:油坊村", device_id=None,
                       title="油坊村链路时延 250 ms，超过 200 ms", site="油坊村", region=region, value=250.0,
                       threshold=200.0, unit="ms")


def config(server: MosquittoServer, **kw: Any) -> MqttConfig:
    """A route config with a topic prefix of its own, so tests sharing a broker stay apart."""
    kw.setdefault("topic_prefix", f"test{next(_prefixes)}/faults")
    return MqttConfig(name="mq", type="mqtt", host=server.host, port=server.port, **kw)


@pytest.mark.peer
async def test_events_arrive_as_json_on_their_regions_topic_in_order(mosquitto, mqtt_subscriber):
    cfg = config(mosquitto)
    sub = await mqtt_subscriber(mosquitto, f"{cfg.topic_prefix}/#")
    events = [event(1), event(2, region="城北区"), event(3, region=None), event(4, kind=EventKind.RESOLVED)]
    async with MqttRoute(cfg, None) as route:
        result = await route.deliver(events)
    assert result.delivered == (1, 2, 3, 4) and result.error is None
    got = await sub.take_until_fence()
    assert [t for t, _ in got] == [
        f"{cfg.topic_prefix}/城关镇", f"{cfg.topic_prefix}/城北区", f"{cfg.topic_prefix}/fleet", f"{cfg.topic_prefix}/城关镇"
    ]
    assert [doc for _, doc in got] == [event_document(e) for e in events]
    assert FaultEvent.from_dict(got[0][1]) == events[0]


@pytest.mark.peer
async def test_broker_down_is_retried_and_delivered_once_it_is_up(mosquitto_own, mqtt_subscriber):
    cfg = config(mosquitto_own)
    async with MqttRoute(cfg, None) as route:
        down = await route.deliver([event(1)])
        assert down.delivered == () and down.retry_after_s is None and down.disabled is None
        assert f"MQTT broker 127.0.0.1:{mosquitto_own.port}: cannot connect" in down.error
        mosquitto_own.start()
        sub = await mqtt_subscriber(mosquitto_own, f"{cfg.topic_prefix}/#")
        up = await route.deliver([event(1)])
    assert up.delivered == (1,) and up.error is None
    assert [doc["id"] for _, doc in await sub.take_until_fence()] == [1]


@pytest.mark.peer
async def test_a_lost_connection_is_reported_and_the_next_delivery_reconnects(mosquitto_own, mqtt_subscriber):
    cfg = config(mosquitto_own, timeout_s=1.0)
    mosquitto_own.start()
    async with MqttRoute(cfg, None) as route:
        assert (await route.deliver([event(1)])).delivered == (1,)
        mosquitto_own.stop()
        lost = await route.deliver([event(2)])
        assert lost.delivered == () and lost.error and "MQTT broker" in lost.error
        mosquitto_own.start()
        sub = await mqtt_subscriber(mosquitto_own, f"{cfg.topic_prefix}/#")
        again = await route.deliver([event(2), event(3)])
    assert again.delivered == (2, 3)
    assert [doc["id"] for _, doc in await sub.take_until_fence()] == [2, 3]


@pytest.mark.peer
async def test_wrong_credentials_are_a_clear_error_with_a_long_retry(mosquitto_auth, monkeypatch):
    monkeypatch.setenv("MQ_PASSWORD", "not-the-password")
    wrong = config(mosquitto_auth, username=MQTT_USER, password_env="MQ_PASSWORD")
    async with MqttRoute(wrong, None) as route:
        refused = await route.deliver([event(1)])
    assert refused.delivered == () and refused.retry_after_s == REFUSED_RETRY_S
    assert "refused fleetmon's credentials (Not authorized)" in refused.error and "password_env" in refused.error
    assert "not-the-password" not in refused.error

    monkeypatch.setenv("MQ_PASSWORD", MQTT_PASSWORD)
    right = config(mosquitto_auth, username=MQTT_USER, password_env="MQ_PASSWORD")
    async with MqttRoute(right, None) as route:
        assert (await route.deliver([event(1)])).delivered == (1,)


@pytest.mark.peer
async def test_through_the_outbox_a_broker_that_comes_up_late_gets_every_event_once(
    tmp_path, mosquitto_own, mqtt_subscriber
):
    cfg = config(mosquitto_own)
    async with StateDB(tmp_path / "state.db") as db, MqttRoute(cfg, None) as route:
        await db.migrate(outbox.SCHEMA)

        def op(conn):
            return [outbox.enqueue(conn, "mq", e.kind, e.ts_ns, e.fault) for e in (event(1), event(2), event(3))]

        ids = await db.execute(op)
        async with OutboxWorker(db, {"mq": route}, backoff_initial_s=0.01, backoff_max_s=0.05, poll_s=0.05) as worker:
            await asyncio.sleep(0.1)  # a few failed attempts against the absent broker
            assert await worker.pending() == 3
            mosquitto_own.start()
            sub = await mqtt_subscriber(mosquitto_own, f"{cfg.topic_prefix}/#")
            deadline = time.monotonic() + 10
            while await worker.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert await worker.pending() == 0
    assert [doc["id"] for _, doc in await sub.take_until_fence()] == ids


def test_region_names_cannot_add_topic_levels_or_wildcards():
    assert topic_for("fleetmon/faults", event(1, region="城关/镇#+")) == "fleetmon/faults/城关_镇__"
    assert topic_for("fleetmon/faults", event(1, region=None)) == "fleetmon/faults/fleet"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"topic_prefix": "fleetmon/#"}, "wildcards"),
        ({"topic_prefix": "$SYS/x"}, "broker's own"),
        ({"topic_prefix": "/"}, "must not be empty"),
        ({"topic_prefix": "/fleetmon/faults"}, "must not start with /"),
        ({"password": "inline"}, "must not be written in the config"),
        ({"password_env": "MQ_PASSWORD"}, "needs a username"),
        ({"username": "u", "password_env": "MQ_PASSWORD", "password_file": "/tmp/x"}, "not both"),
        ({"qos": 3}, "qos"),
    ],
)
def test_config_errors(monkeypatch, extra, message):
    monkeypatch.setenv("MQ_PASSWORD", MQTT_PASSWORD)
    with pytest.raises(ValidationError, match=message):
        MqttConfig(**{"name": "mq", "type": "mqtt", "host": "127.0.0.1", **extra})


def test_defaults_and_a_trailing_slash():
    cfg = MqttConfig(name="mq", type="mqtt", host="broker", topic_prefix="hall/faults/")
    assert (cfg.port, cfg.qos, cfg.retain, cfg.client_id, cfg.topic_prefix) == (1883, 1, False, None, "hall/faults")
