"""Fixtures for a real MQTT broker (Debian's mosquitto 2.0.11, see lab/mosquitto.py).

- `mosquitto`: one anonymous broker for the whole session; tests keep apart by topic prefix.
- `mosquitto_own`: a broker of the test's own, NOT started: for tests that need the broker down
  at first, or stop and restart it (`start()`/`stop()` keep the port).
- `mosquitto_auth`: a broker of the test's own that admits only MQTT_USER / MQTT_PASSWORD.
- `mqtt_subscriber`: a factory, `await mqtt_subscriber(server, topic_filter)` → `Subscriber`,
  subscribed (SUBACK received) at QoS 1 when it returns; closed after the test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiomqtt
import pytest

from lab.mosquitto import MosquittoServer

MQTT_USER = "fleetmon"
MQTT_PASSWORD = "mq-secret-7d41"


class Subscriber:
    """An MQTT client of the test's, subscribed to one topic filter, collecting what arrives."""

    def __init__(self, server: MosquittoServer, topic_filter: str) -> None:
        self.server = server
        self.topic_filter = topic_filter
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def start(self) -> None:
        self._client = aiomqtt.Client(self.server.host, self.server.port, identifier=f"test-sub-{uuid.uuid4().hex[:8]}")
        await self._client.__aenter__()
        await self._client.subscribe(self.topic_filter, qos=1)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            self._queue.put_nowait((str(message.topic), bytes(message.payload)))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._client is not None:
            try:
                await self._client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass  # the broker was stopped under it

    async def take(self, count: int, timeout_s: float = 10.0) -> list[tuple[str, Any]]:
        """The next `count` messages as (topic, decoded JSON), in arrival order."""
        out = []
        for _ in range(count):
            topic, payload = await asyncio.wait_for(self._queue.get(), timeout_s)
            out.append((topic, json.loads(payload)))
        return out

    async def take_until_fence(self, timeout_s: float = 10.0) -> list[tuple[str, Any]]:
        """Everything that arrived before a fence message published now by the subscriber
        itself: shows that nothing more (a duplicate, say) was on its way, without waiting."""
        assert self._client is not None
        fence = {"fence": uuid.uuid4().hex}
        topic = self.topic_filter.replace("#", "fence").replace("+", "fence")
        await self._client.publish(topic, json.dumps(fence), qos=1)
        out = []
        while True:
            topic, payload = await asyncio.wait_for(self._queue.get(), timeout_s)
            doc = json.loads(payload)
            if doc == fence:
                return out
            out.append((topic, doc))


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoServer]:
    with MosquittoServer() as server:
        yield server


@pytest.fixture
def mosquitto_own() -> Iterator[MosquittoServer]:
    server = MosquittoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mosquitto_auth() -> Iterator[MosquittoServer]:
    with MosquittoServer(users={MQTT_USER: MQTT_PASSWORD}) as server:
        yield server


@pytest.fixture
async def mqtt_subscriber() -> AsyncIterator[Callable[[MosquittoServer, str], Awaitable[Subscriber]]]:
    made: list[Subscriber] = []

    async def make(server: MosquittoServer, topic_filter: str) -> Subscriber:
        sub = Subscriber(server, topic_filter)
        made.append(sub)
        await sub.start()
        return sub

    yield make
    for sub in made:
        await sub.close()
