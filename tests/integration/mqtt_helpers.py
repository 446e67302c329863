"""HA's MQTT integration against a real mosquitto, and a side-channel subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from datetime import timedelta
import json
import re
import time
from typing import Any
from unittest.mock import patch

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from tests.helpers.mosquitto import MosquittoBroker


async def setup_real_mqtt(hass: HomeAssistant, broker: MosquittoBroker) -> MockConfigEntry:
    """Set up HA's MQTT integration connected to the test's own broker."""
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={"broker": broker.host, "port": broker.port},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    # The harness's config folder has no configuration.yaml.
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    assert await mqtt.async_wait_for_mqtt_client(hass)
    return entry


async def real_sleep(seconds: float) -> None:
    """Sleep in wall-clock time: tests freeze the loop's clock with the freezer."""
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


async def wait_for(hass: HomeAssistant, predicate: Callable[[], bool], seconds: float = 10) -> None:
    """Poll until `predicate()` holds, letting HA work between polls."""
    for _ in range(int(seconds / 0.05)):
        await hass.async_block_till_done()
        if predicate():
            return
        await real_sleep(0.05)
    raise AssertionError("condition not met in time")


async def flush_subscriptions(
    hass: HomeAssistant, freezer: Any, broker: MosquittoBroker, topics: list[str]
) -> None:
    """Run HA's subscribe cooldown timer until the broker has registered `topics`.

    HA batches subscriptions behind a timer that only moves with the frozen
    clock; the broker's own log says when each subscription took effect, so
    this waits for that instead of guessing a delay.
    """
    for _ in range(100):
        freezer.tick(timedelta(seconds=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        if all(subscriptions(broker, topic) for topic in topics):
            return
        await real_sleep(0.05)
    raise AssertionError(f"the broker never registered {topics}")


def subscriptions(broker: MosquittoBroker, topic: str) -> int:
    """How many subscriptions to `topic` the broker has logged as taking effect."""
    pattern = rf"^\d+: \S+ \d {re.escape(topic)}$"
    return len(re.findall(pattern, broker.log_path.read_text(), re.M))


class SideSubscriber:
    """mosquitto_sub as a separate process: sees exactly what reached the broker."""

    def __init__(self, broker: MosquittoBroker, topic: str, count: int, wait: float = 15) -> None:
        self.args = [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "-C",
            str(count),
            "-W",
            str(int(wait)),
            "-q",
            "1",
            "-v",
        ]
        self.broker = broker
        self.topic = topic
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SideSubscriber:
        before = subscriptions(self.broker, self.topic)
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        # Nothing may be published before the broker has the subscription.
        for _ in range(200):
            if subscriptions(self.broker, self.topic) > before:
                return self
            await real_sleep(0.05)
        raise AssertionError(f"mosquitto_sub never subscribed to {self.topic}")

    async def messages(self) -> list[tuple[str, dict[str, Any]]]:
        assert self.process is not None
        out, _ = await self.process.communicate()
        result = []
        for line in out.decode().splitlines():
            topic, _, payload = line.partition(" ")
            result.append((topic, json.loads(payload)))
        return result

    async def __aexit__(self, *exc: object) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def publish_side(
    broker: MosquittoBroker, topic: str, payload: dict[str, Any], retain: bool = False
) -> None:
    args = [
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-t",
        topic,
        "-q",
        "1",
        "-m",
        json.dumps(payload),
    ]
    if retain:
        args.append("-r")
    process = await asyncio.create_subprocess_exec(*args)
    assert await process.wait() == 0


@contextlib.asynccontextmanager
async def entry_on_real_mqtt(
    hass: HomeAssistant, broker: MosquittoBroker, freezer: Any, entry: MockConfigEntry
) -> AsyncIterator[MockConfigEntry]:
    """Our `entry` loaded beside HA's MQTT integration on `broker`, subscriptions in place.

    The clock starts at 2026-11-01 12:00 UTC; setup ticks it until HA's
    subscriptions reached the broker, so tests take expected times from the clock.
    """
    freezer.move_to("2026-11-01T12:00:00+00:00")
    mqtt_entry = await setup_real_mqtt(hass, broker)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await flush_subscriptions(
        hass, freezer, broker, ["power-manager/+/ack", "power-manager/+/status"]
    )
    try:
        yield entry
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.config_entries.async_unload(mqtt_entry.entry_id)
        await hass.async_block_till_done()
