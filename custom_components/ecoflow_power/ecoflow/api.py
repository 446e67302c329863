"""Client of the EcoFlow developer ("Open") API over HTTPS.

Only the three read calls the project needs. Every call is signed (see
``signing.py``); the secret key never leaves this object: not in logs, reprs
or exception texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
import logging
import random
import time
from typing import Any

import aiohttp

from .errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
    EcoflowDeviceNotSupportedError,
    EcoflowError,
    EcoflowRateLimitError,
    EcoflowServiceError,
)
from .signing import signed_headers

_LOGGER = logging.getLogger(__name__)

PATH_CERTIFICATION = "/iot-open/sign/certification"
PATH_DEVICE_LIST = "/iot-open/sign/device/list"
PATH_QUOTA_ALL = "/iot-open/sign/device/quota/all"

CODE_OK = "0"
CODE_AUTH = "8513"
CODE_NOT_SUPPORTED = "1006"
# The public documentation names no rate-limit code; treat HTTP-style "429"
# and texts that say so as one rather than as a generic failure.
_RATE_LIMIT_CODES = frozenset({"429"})
_RATE_LIMIT_WORDS = ("too many", "too frequent", "rate limit", "frequently")


class Region(StrEnum):
    """Which EcoFlow API host an account lives on."""

    EU = "eu"
    US = "us"
    GLOBAL = "global"

    @property
    def base_url(self) -> str:
        return _REGION_URLS[self]


_REGION_URLS: dict[Region, str] = {
    Region.EU: "https://api-e.ecoflow.com",
    Region.US: "https://api-a.ecoflow.com",
    Region.GLOBAL: "https://api.ecoflow.com",
}


@dataclass(frozen=True)
class MqttCredentials:
    """Where and as whom to connect to the cloud broker (from certification)."""

    host: str
    port: int
    protocol: str
    username: str
    password: str = field(repr=False)

    @property
    def use_tls(self) -> bool:
        return self.protocol.lower() in {"mqtts", "ssl", "tls"}


@dataclass(frozen=True)
class DeviceInfo:
    """One device bound to the developer account."""

    sn: str
    product_name: str
    device_name: str
    online: bool


class EcoflowApiClient:
    """Signed calls to ``/iot-open/sign/...`` on one region's host."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        access_key: str,
        secret_key: str,
        *,
        region: Region = Region.EU,
        base_url: str | None = None,
        request_timeout: float = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        # Keys are pasted from a web page: stray spaces and newlines are common
        # and make every signature wrong.
        self._access_key = access_key.strip()
        self._secret_key = secret_key.strip()
        self.region = Region(region)
        self.base_url = (base_url or self.region.base_url).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._clock = clock

    def __repr__(self) -> str:
        return f"EcoflowApiClient(base_url={self.base_url!r}, access_key={_mask(self._access_key)})"

    @property
    def access_key(self) -> str:
        return self._access_key

    async def certification(self) -> MqttCredentials:
        data = _expect_mapping(await self._get(PATH_CERTIFICATION), "certification")
        try:
            return MqttCredentials(
                host=str(data["url"]),
                # The real API sends the port as a string ("8883").
                port=int(data["port"]),
                protocol=str(data.get("protocol") or "mqtts"),
                username=str(data["certificateAccount"]),
                password=str(data["certificatePassword"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise EcoflowServiceError(
                "invalid", "certification answer lacks the broker address or account"
            ) from err

    async def devices(self) -> list[DeviceInfo]:
        data = await self._get(PATH_DEVICE_LIST)
        if not isinstance(data, list):
            raise EcoflowServiceError("invalid", "device list is not a list")
        result: list[DeviceInfo] = []
        for item in data:
            if not isinstance(item, Mapping) or not item.get("sn"):
                continue
            sn = str(item["sn"])
            result.append(
                DeviceInfo(
                    sn=sn,
                    product_name=str(item.get("productName") or ""),
                    device_name=str(item.get("deviceName") or sn),
                    online=_truthy(item.get("online")),
                )
            )
        return result

    async def quota_all(self, sn: str) -> dict[str, Any]:
        data = _expect_mapping(await self._get(PATH_QUOTA_ALL, {"sn": sn}), "quota/all")
        return dict(data)

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        headers = signed_headers(
            self._access_key,
            self._secret_key,
            params,
            nonce=str(random.randint(100000, 999999)),
            timestamp=str(int(self._clock() * 1000)),
        )
        url = f"{self.base_url}{path}"
        try:
            async with self._session.get(
                url, params=dict(params or {}), headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status == 429:
                    raise EcoflowRateLimitError("EcoFlow API rate limit reached (HTTP 429)")
                try:
                    body = await resp.json(content_type=None)
                except ValueError as err:
                    raise EcoflowServiceError(str(resp.status), "answer is not JSON") from err
        except EcoflowError:
            raise
        except TimeoutError as err:
            raise EcoflowConnectionError(f"EcoFlow API at {self.base_url} timed out") from err
        except aiohttp.ClientError as err:
            raise EcoflowConnectionError(
                f"Cannot reach EcoFlow API at {self.base_url} ({type(err).__name__})"
            ) from err
        return self._unwrap(path, body)

    def _unwrap(self, path: str, body: Any) -> Any:
        if not isinstance(body, Mapping):
            raise EcoflowServiceError("invalid", "answer is not a JSON object")
        code = str(body.get("code", ""))
        message = self._scrub(str(body.get("message") or ""))
        _LOGGER.debug("GET %s -> code %s", path, code)
        if code == CODE_OK:
            return body.get("data")
        if code == CODE_AUTH:
            raise EcoflowAuthError(f"EcoFlow refused the access key or signature ({code})")
        if code == CODE_NOT_SUPPORTED:
            raise EcoflowDeviceNotSupportedError(
                f"EcoFlow Open API does not serve this device ({code})"
            )
        lowered = message.lower()
        if code in _RATE_LIMIT_CODES or any(word in lowered for word in _RATE_LIMIT_WORDS):
            raise EcoflowRateLimitError(f"EcoFlow API rate limit reached ({code})")
        raise EcoflowServiceError(code or "missing", message or "no message")

    def _scrub(self, text: str) -> str:
        # Belt and braces: a server echoing our secret must not put it in logs.
        if self._secret_key and self._secret_key in text:
            return text.replace(self._secret_key, "***")
        return text


def _expect_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise EcoflowServiceError("invalid", f"{what} data is not an object")
    return data


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "online"}
    return bool(value)


def _mask(key: str) -> str:
    return f"{key[:4]}***" if len(key) > 4 else "***"
