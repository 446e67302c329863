"""The whole stand-in: Open API over HTTP, devices on MQTT, scenarios on a clock.

``StandIn`` is what tests, ``python -m simulator`` and ``scripts/develop`` use.
Simulated time runs ``time_scale`` times faster than real time; every
``publish_interval`` real seconds each device takes a step and publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
import contextlib
import logging
import secrets
import time
from typing import Any

from aiohttp import web

from .cloud import CloudApi, RotateCallback
from .control import add_control_routes
from .devices import (
    Outgoing,
    SimulatedDevice,
    default_devices,
    open_status_topic,
    status_message,
)
from .mqtt_link import MqttLink
from .scenarios import Diverge, Scenario, make_scenario

_LOGGER = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "open-simulated-0001"


class StandIn:
    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        advertised_broker_host: str | None = None,
        devices: Iterable[SimulatedDevice] | None = None,
        account: str = DEFAULT_ACCOUNT,
        mqtt_password: str | None = None,
        publisher_username: str | None = None,
        publisher_password: str | None = None,
        time_scale: float = 1.0,
        publish_interval: float = 1.0,
        on_credentials_rotated: RotateCallback | None = None,
        http_host: str = "127.0.0.1",
        http_port: int = 0,
        auto_tick: bool = True,
    ) -> None:
        self.devices: dict[str, SimulatedDevice] = {
            d.sn: d for d in (devices if devices is not None else default_devices())
        }
        self.cloud = CloudApi(
            keys={access_key.strip(): secret_key.strip()},
            devices=self.devices,
            broker_host=advertised_broker_host or broker_host,
            broker_port=broker_port,
            account=account,
            password=mqtt_password or secrets.token_urlsafe(12),
            on_credentials_rotated=on_credentials_rotated,
        )
        self.link = MqttLink(
            broker_host,
            broker_port,
            username=publisher_username,
            password=publisher_password,
            on_get=self._answer_get,
            on_connect=self._announce,
        )
        self.time_scale = time_scale
        self.publish_interval = publish_interval
        self._auto_tick = auto_tick
        self._http_host = http_host
        self._http_port = http_port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.ticks = 0

    # -- lifecycle ----------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        self.cloud.add_routes(app)
        add_control_routes(app, self)
        return app

    async def start(self, *, with_mqtt: bool = True, wait_for_broker: bool = True) -> None:
        """Serve HTTP; unless ``with_mqtt`` is False, also run the devices on MQTT."""
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._http_host, self._http_port)
        await self._site.start()
        if not with_mqtt:
            return
        await self.link.start()
        if wait_for_broker:
            await self.link.wait_connected()
        if self._auto_tick:
            self._ticker = asyncio.create_task(self._tick_loop(), name="simulator-ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.link.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http_port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the stand-in is not running")
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self._http_host}:{self.http_port}"

    @property
    def account(self) -> str:
        return self.cloud.account

    @property
    def mqtt_password(self) -> str:
        return self.cloud.password

    # -- control --------------------------------------------------------------

    def device(self, sn: str) -> SimulatedDevice:
        try:
            return self.devices[sn]
        except KeyError:
            raise KeyError(f"no simulated device {sn}") from None

    def set_scenario(self, sn: str, name: str, params: Mapping[str, Any] | None = None) -> Scenario:
        device = self.device(sn)
        scenario = make_scenario(name, params, current=device.scenario)
        if isinstance(scenario, Diverge) and len(device.state.packs) < 2:
            raise ValueError(f"{sn} has one pack; diverge needs two")
        device.set_scenario(scenario)
        # Take effect now, so the state reported back already shows it.
        scenario.apply(device.state, 0.0)
        _LOGGER.info("%s: scenario %s", sn, scenario.describe())
        return scenario

    async def set_online(self, sn: str, online: bool) -> None:
        device = self.device(sn)
        device.online = online
        await self.link.publish(
            Outgoing(open_status_topic(self.account, sn), status_message(online))
        )

    async def rotate_credentials(self) -> str:
        return await self.cloud.rotate_credentials()

    async def tick(self, real_dt: float | None = None) -> None:
        """One step: advance simulated time and publish what the devices push."""
        dt = (self.publish_interval if real_dt is None else real_dt) * self.time_scale
        for device in self.devices.values():
            device.step(dt)
            if device.online and device.state.publishing:
                for out in device.pushes(self.account):
                    await self.link.publish(out)
        self.ticks += 1

    # -- internals ------------------------------------------------------------

    async def _tick_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.publish_interval)
            now = time.monotonic()
            try:
                await self.tick(now - last)
            except Exception:
                _LOGGER.exception("simulator tick failed")
            last = now

    def _answer_get(self, account: str, sn: str, payload: bytes) -> list[Outgoing]:
        device = self.devices.get(sn)
        # A stalled or offline device does not answer either: that is what
        # makes a stall visible to a client that keeps asking.
        if device is None or not device.online or not device.state.publishing:
            return []
        return device.answer_get(account, payload)

    async def _announce(self) -> None:
        for device in self.devices.values():
            await self.link.publish(
                Outgoing(open_status_topic(self.account, device.sn), status_message(device.online))
            )
