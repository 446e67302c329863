"""What every options step shares: the entry, its stations, and choosing one station."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
import probatio

from .const import CONF_STATION
from .selectors import station_selector

if TYPE_CHECKING:
    from .runtime import EcoflowConfigEntry


class StationOptionsFlow(OptionsFlow):
    """Base of the options flow and of each of its step mixins."""

    # The station the policy or sentinel step edits.
    _station: str | None = None
    # Options a step built and a later step (showing a secret) saves.
    _pending_options: dict[str, Any]

    if TYPE_CHECKING:
        config_entry: EcoflowConfigEntry

    @property
    def _entry(self) -> EcoflowConfigEntry:
        return self.config_entry

    def _stations(self) -> dict[str, str]:
        """Managed stations (sn -> name) of the loaded entry."""
        runtime = getattr(self._entry, "runtime_data", None)
        if runtime is None:
            return {}
        telemetry = runtime.telemetry
        return {
            sn: f"{info.device_name or telemetry.models[sn].name} ({sn})"
            for sn, info in telemetry.devices.items()
        }

    def _chosen_station(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> str | ConfigFlowResult:
        """The station a step is for: the one chosen, the only one, or the form to choose."""
        stations = self._stations()
        if user_input is not None:
            return str(user_input[CONF_STATION])
        if len(stations) == 1:
            return next(iter(stations))
        return self.async_show_form(
            step_id=step_id,
            data_schema=probatio.Schema(
                {probatio.Required(CONF_STATION): station_selector(stations)}
            ),
        )
