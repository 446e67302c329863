"""The UPS variables a NUT client sees for one station, and their descriptions."""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Final

DRIVER_NAME: Final = "ecoflow_power"
MANUFACTURER: Final = "EcoFlow"

# NUT's data/cmdvartab, for the variables we serve.
_DESCRIPTIONS: Final = {
    "ups.status": "UPS status",
    "ups.model": "UPS model",
    "ups.mfr": "UPS manufacturer",
    "ups.serial": "UPS serial number",
    "ups.firmware": "UPS firmware",
    "ups.realpower": "Current value of real power (W)",
    "input.voltage": "Input voltage (V)",
    "battery.charge": "Battery charge (percent of full)",
    "battery.charge.low": "Remaining battery level when UPS switches to LB (percent)",
    "battery.charge.restart": "Minimum battery level for UPS restart after power-off",
    "battery.voltage": "Battery voltage (V)",
    "battery.runtime": "Battery runtime (seconds)",
    "battery.runtime.low": "Remaining battery runtime when UPS switches to LB (seconds)",
    "device.mfr": "Device manufacturer",
    "device.model": "Device model",
    "device.serial": "Device serial number",
    "device.type": "Device type",
    "driver.name": "Driver name",
    "driver.version": "Driver version - NUT release",
}
_NUMERIC: Final = frozenset(
    {
        "ups.realpower",
        "input.voltage",
        "battery.charge",
        "battery.charge.low",
        "battery.charge.restart",
        "battery.voltage",
        "battery.runtime",
        "battery.runtime.low",
    }
)


def variable_description(name: str) -> str:
    return _DESCRIPTIONS.get(name, "Description unavailable")


def command_description(name: str) -> str:
    return "Description unavailable"


def variable_type(name: str, value: str) -> str:
    """GET TYPE's answer: NUMBER for figures, STRING:<n> for text (none is writable)."""
    if name in _NUMERIC:
        return "NUMBER"
    return f"STRING:{max(len(value), 1)}"


@dataclass(frozen=True, slots=True)
class UpsInputs:
    """What a station's UPS shows, decided by the glue from telemetry and the policy."""

    model: str
    serial: str
    firmware: str | None
    driver_version: str
    known: bool  # False: nothing is known (stale, no estimate): ERR DATA-STALE
    on_battery: bool
    charging: bool | None  # True CHRG, False DISCHRG, None neither
    fsd: bool  # the policy's commit point for these clients passed: FSD and LB
    charge_pct: float | None
    charge_low_pct: float
    runtime_sec: float | None
    runtime_low_sec: int
    input_voltage: float | None
    output_w: float | None
    battery_voltage: float | None = None
    # The restore rule's restart level (hosts are woken above it); None: rule off
    charge_restart_pct: float | None = None


def ups_status(inputs: UpsInputs) -> str:
    """`ups.status`: [FSD] OL|OB [LB] [CHRG|DISCHRG].

    LB is raised together with FSD at the commit point, not at the client's
    own idea of a low battery: the policy decides when its clients go down.
    """
    words = ["FSD"] if inputs.fsd else []
    words.append("OB" if inputs.on_battery or inputs.fsd else "OL")
    if inputs.fsd:
        words.append("LB")
    if inputs.charging is True:
        words.append("CHRG")
    elif inputs.charging is False:
        words.append("DISCHRG")
    return " ".join(words)


def number(value: float) -> str:
    """A figure as NUT writes one: decimal point, no exponent, at most one decimal."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    rounded = round(value, 1)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.1f}"


def build_variables(inputs: UpsInputs) -> dict[str, str] | None:
    """The variables of one UPS, or None when nothing is known (DATA-STALE)."""
    if not inputs.known:
        return None
    values: dict[str, str] = {
        "ups.status": ups_status(inputs),
        "battery.charge.low": number(inputs.charge_low_pct),
        "battery.runtime.low": str(max(0, int(inputs.runtime_low_sec))),
        "device.mfr": MANUFACTURER,
        "device.model": inputs.model,
        "device.serial": inputs.serial,
        "device.type": "ups",
        "ups.mfr": MANUFACTURER,
        "ups.model": inputs.model,
        "ups.serial": inputs.serial,
        "driver.name": DRIVER_NAME,
        "driver.version": inputs.driver_version,
    }
    optional = {
        "battery.charge": inputs.charge_pct,
        "battery.runtime": inputs.runtime_sec,
        "battery.charge.restart": inputs.charge_restart_pct,
        "input.voltage": inputs.input_voltage,
        "ups.realpower": inputs.output_w,
        "battery.voltage": inputs.battery_voltage,
    }
    for name, value in optional.items():
        if value is None or not math.isfinite(value):
            continue
        if name == "battery.charge":
            values[name] = number(min(100.0, max(0.0, value)))
        elif name == "battery.runtime":
            values[name] = str(max(0, int(value)))
        else:
            values[name] = number(value)
    if inputs.firmware:
        values["ups.firmware"] = inputs.firmware
    return values
