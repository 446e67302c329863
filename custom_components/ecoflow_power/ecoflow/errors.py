"""Errors raised by the EcoFlow protocol library.

Every message is built from codes and fixed words only: callers log these
texts and show them in Home Assistant, so nothing secret may ever reach them.
"""

from __future__ import annotations


class EcoflowError(Exception):
    """Base class: anything the EcoFlow cloud or the way to it did wrong."""


class EcoflowAuthError(EcoflowError):
    """The Open API refused the keys (code 8513) or the signature."""


class EcoflowDeviceNotSupportedError(EcoflowError):
    """The Open API does not serve this device over HTTPS (code 1006).

    Seen for the River 3 family, which still streams over MQTT.
    """


class EcoflowRateLimitError(EcoflowError):
    """Too many requests (HTTP 429 or a rate-limit code): slow down."""


class EcoflowServiceError(EcoflowError):
    """Any other non-zero answer from the Open API."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"EcoFlow API error {code}: {message}")
        self.code = code
        self.message = message


class EcoflowConnectionError(EcoflowError):
    """The cloud could not be reached, or did not answer in time."""
