"""What a loaded config entry holds: its typed runtime data.

Kept apart from the coordinators so that neither imports the other: this
module imports both, and nothing they import comes back here.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .coordinator import EcoflowTelemetryCoordinator
from .device_cache import DeviceCache
from .ecoflow.api import EcoflowApiClient
from .policy_coordinator import PolicyCoordinator
from .restore_coordinator import WakeCoordinator


@dataclass(kw_only=True)
class EcoflowRuntimeData:
    """What one config entry holds while it is loaded."""

    client: EcoflowApiClient
    telemetry: EcoflowTelemetryCoordinator
    device_cache: DeviceCache
    policy: PolicyCoordinator | None = None
    wake: WakeCoordinator | None = None


type EcoflowConfigEntry = ConfigEntry[EcoflowRuntimeData]
