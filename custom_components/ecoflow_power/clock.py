"""The one wall clock of the Home Assistant side (read through HA so tests can freeze it)."""

from __future__ import annotations

from homeassistant.util import dt as dt_util


def now_ts() -> float:
    """Wall-clock seconds, read through HA's clock so tests can freeze it."""
    return dt_util.utcnow().timestamp()
