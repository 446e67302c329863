"""How the engine's repairs read in Home Assistant: placeholders rendered for people.

The engine raises its repairs (telemetry stale or frozen, blind, unprotected,
station cut-off) as RepairChange effects with text placeholders; times come
as epoch seconds and are shown here in the user's time zone.
"""

from __future__ import annotations

from homeassistant.util import dt as dt_util

# Repairs that mean hosts are at risk (or going down on an assumption).
PROTECTION_ISSUES = frozenset({"policy_blind", "policy_unprotected"})


def local_time(timestamp: float) -> str:
    return dt_util.as_local(dt_util.utc_from_timestamp(timestamp)).strftime("%Y-%m-%d %H:%M:%S")


def rendered(key: str, value: object) -> str:
    """Engine placeholders are text; times (`*_at`, epoch seconds) become local time."""
    text = str(value)
    if key.endswith("_at"):
        try:
            return local_time(float(text)) if text else "unknown"
        except ValueError, OverflowError:  # not a time, or beyond the calendar
            return text
    return text
