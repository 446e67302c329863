"""The Open API half of the stand-in: signed HTTPS endpoints, served over plain HTTP.

Answers like the real cloud where the project depends on it: codes as strings,
"8513" for refused keys, bad signatures or stale timestamps, "1006" for
devices the Open API does not serve (the River 3 family), and MQTT credentials
pointing at the local broker (``protocol: "mqtt"``: no TLS locally).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
import inspect
import logging
import secrets
import time
from typing import Any
import uuid

from aiohttp import web

from .devices import SimulatedDevice
from .signature_check import MAX_SKEW_MS, check_signature

_LOGGER = logging.getLogger(__name__)

RotateCallback = Callable[[str, str], Awaitable[None] | None]


@dataclass
class InjectedFailure:
    """Make the next ``times`` matching calls fail, for tests of error paths."""

    path_suffix: str | None
    code: str | None
    http_status: int
    message: str
    times: int


class CloudApi:
    """Handlers of ``/iot-open/sign/...`` over a registry of simulated devices."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str],
        devices: Mapping[str, SimulatedDevice],
        broker_host: str,
        broker_port: int,
        account: str,
        password: str,
        protocol: str = "mqtt",
        on_credentials_rotated: RotateCallback | None = None,
        clock: Callable[[], float] = time.time,
        max_skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        self.keys = dict(keys)
        self.devices = devices
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.account = account
        self.password = password
        self.protocol = protocol
        self.on_credentials_rotated = on_credentials_rotated
        self.clock = clock
        self.max_skew_ms = max_skew_ms
        self.response_delay = 0.0
        self.calls: dict[str, int] = {}
        self.quota_requests: dict[str, int] = {}
        self.certifications_issued = 0
        self._failures: list[InjectedFailure] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/iot-open/sign/certification", self._certification)
        app.router.add_get("/iot-open/sign/device/list", self._device_list)
        app.router.add_get("/iot-open/sign/device/quota/all", self._quota_all)

    # -- test hooks -----------------------------------------------------------

    def fail_next(
        self,
        path_suffix: str | None = None,
        *,
        code: str | None = None,
        http_status: int = 200,
        message: str = "injected failure",
        times: int = 1,
    ) -> None:
        """Answer the next matching call(s) with ``code`` and/or ``http_status``."""
        self._failures.append(InjectedFailure(path_suffix, code, http_status, message, times))

    async def rotate_credentials(self) -> str:
        """Issue a new broker password and tell the broker (via the callback)."""
        self.password = secrets.token_urlsafe(12)
        if self.on_credentials_rotated is not None:
            result = self.on_credentials_rotated(self.account, self.password)
            if inspect.isawaitable(result):
                await result
        _LOGGER.info("MQTT credentials rotated for account %s", self.account)
        return self.password

    # -- plumbing ---------------------------------------------------------------

    @staticmethod
    def _answer(
        code: str, data: Any = None, message: str = "Success", status: int = 200
    ) -> web.Response:
        body: dict[str, Any] = {
            "code": code,
            "message": message,
            "eagleEyeTraceId": uuid.uuid4().hex,
            "tid": "",
        }
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=status)

    async def _guard(self, request: web.Request) -> web.Response | None:
        """Signature check, injected failures and delay; None lets the call through."""
        path = request.path
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        for failure in self._failures:
            if failure.path_suffix is None or path.endswith(failure.path_suffix):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                if failure.code is None:
                    return web.Response(status=failure.http_status, text=failure.message)
                return self._answer(
                    failure.code, message=failure.message, status=failure.http_status
                )
        reason = check_signature(
            request.headers,
            dict(request.query),
            self.keys,
            now_ms=int(self.clock() * 1000),
            max_skew_ms=self.max_skew_ms,
        )
        if reason is not None:
            _LOGGER.info("refused %s: %s", path, reason)
            return self._answer("8513", message="accessKey is invalid")
        return None

    # -- endpoints ------------------------------------------------------------

    async def _certification(self, request: web.Request) -> web.Response:
        if (refused := await self._guard(request)) is not None:
            return refused
        self.certifications_issued += 1
        return self._answer(
            "0",
            {
                "certificateAccount": self.account,
                "certificatePassword": self.password,
                "url": self.broker_host,
                # The real cloud sends the port as a string.
                "port": str(self.broker_port),
                "protocol": self.protocol,
            },
        )

    async def _device_list(self, request: web.Request) -> web.Response:
        if (refused := await self._guard(request)) is not None:
            return refused
        return self._answer(
            "0",
            [
                {
                    "sn": d.sn,
                    "productName": d.product_name,
                    "deviceName": d.device_name,
                    "online": 1 if d.online else 0,
                }
                for d in self.devices.values()
            ],
        )

    async def _quota_all(self, request: web.Request) -> web.Response:
        if (refused := await self._guard(request)) is not None:
            return refused
        sn = request.query.get("sn", "")
        self.quota_requests[sn] = self.quota_requests.get(sn, 0) + 1
        device = self.devices.get(sn)
        if device is None:
            return self._answer("1001", message="device not found or not bound to this account")
        quota = device.quota_all()
        if quota is None:
            return self._answer("1006", message="current device is not allowed to get device info")
        return self._answer("0", quota)
