"""A backend for the NUT server that the tests drive by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from custom_components.ecoflow_power.nut import ClientEvent, NutUser, UpsSnapshot, UserTable

USERS = UserTable([NutUser("monitor", "s3cret pass"), NutUser("nas", "pw2")])

VARIABLES = {
    "ups.status": "OL CHRG",
    "battery.charge": "87",
    "device.model": 'DELTA "2"',
    "driver.name": "ecoflow_power",
}


@dataclass
class FakeBackend:
    ups: dict[str, UpsSnapshot] = field(
        default_factory=lambda: {
            "delta": UpsSnapshot("Rack \\ DELTA 2", dict(VARIABLES)),
            "ups": UpsSnapshot("Rack \\ DELTA 2", dict(VARIABLES)),
        }
    )
    events: list[ClientEvent] = field(default_factory=list)

    def ups_names(self) -> Sequence[str]:
        return list(self.ups)

    def snapshot(self, ups: str) -> UpsSnapshot | None:
        return self.ups.get(ups)

    def client_event(self, event: ClientEvent) -> None:
        self.events.append(event)

    def set_variables(self, name: str, variables: Mapping[str, str] | None) -> None:
        self.ups[name] = UpsSnapshot(self.ups[name].description, variables)
