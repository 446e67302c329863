"""Feeding real captured payloads into a loaded entry."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.ecoflow_power.ecoflow.cloud_messages import RawMessage
from custom_components.ecoflow_power.ecoflow.state import MessageSource

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"


def capture_bytes(name: str) -> bytes:
    path = CAPTURES / name
    if path.suffix == ".hex":
        return bytes.fromhex(path.read_text().strip())
    return path.read_bytes()


def capture_json(name: str) -> dict[str, Any]:
    return json.loads((CAPTURES / name).read_text())


async def feed(
    hass: HomeAssistant,
    session: Any,
    sn: str,
    payload: bytes | dict[str, Any],
    source: MessageSource = MessageSource.GET_REPLY,
) -> None:
    """Deliver one message as the cloud session would, then let HA settle."""
    session.on_message(
        RawMessage(
            sn=sn,
            source=source,
            payload=payload,
            received_at=dt_util.utcnow().timestamp(),
            topic=f"/test/{sn}",
        )
    )
    await hass.async_block_till_done()


async def advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Move the frozen clock on and let every timer that fell due run."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
