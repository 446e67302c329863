"""Encode a power station's state as a Delta 2-family JSON device reports it.

Three shapes, all with the dotted key names of the Open API:
- ``quota/all`` and the ``latestQuotas`` get_reply: one flat ``group.key`` map;
- Open-API pushes on ``/open/{account}/{sn}/quota``: one message per module,
  ``{"typeCode": "pdStatus", "params": {"soc": ...}}`` with bare keys (the
  typeCode names the group, as tolwi/hassio-ecoflow-cloud maps them).
Units follow the captures: voltages in mV, currents in mA.
"""

from __future__ import annotations

from functools import cache
import json
from pathlib import Path
from typing import Any

from .model import NOT_APPLICABLE_MINUTES, PowerStationState

# A real Delta 2 Max quota/all answer (js06 capture, from tess1o/go-ecoflow-api-server)
# minus three state keys of unclear meaning; the simulated values overwrite it.
_TEMPLATE = Path(__file__).with_name("data") / "delta2_quota_template.json"

TYPE_CODES: dict[str, str] = {
    "pd": "pdStatus",
    "inv": "invStatus",
    "bms_bmsStatus": "bmsStatus",
    "bms_emsStatus": "emsStatus",
    "bms_slave_bmsSlaveStatus_1": "bmsSlaveStatus_1",
    "bms_slave_bmsSlaveStatus_2": "bmsSlaveStatus_2",
}


@cache
def _template() -> dict[str, Any]:
    return json.loads(_TEMPLATE.read_text())


def live_fields(state: PowerStationState, *, glitch_soc: float | None = None) -> dict[str, Any]:
    """The dotted keys that move with the simulated state."""
    to_empty, to_full = state.remaining_minutes()
    combined = state.combined_soc if glitch_soc is None else glitch_soc
    main = state.packs[0]
    main_w = state.pack_watts(main)
    main_mv = state.pack_voltage_mv(main)
    # pd.remainTime is signed: + minutes to full, - minutes to empty.
    if to_empty != NOT_APPLICABLE_MINUTES:
        remain = -to_empty
    elif to_full != NOT_APPLICABLE_MINUTES:
        remain = to_full
    else:
        remain = 5999
    fields: dict[str, Any] = {
        "bms_emsStatus.lcdShowSoc": round(combined),
        "bms_emsStatus.f32LcdShowSoc": round(combined, 1),
        "bms_emsStatus.dsgRemainTime": to_empty,
        "bms_emsStatus.chgRemainTime": to_full,
        "bms_emsStatus.bmsIsConnt": [3] * len(state.packs) + [0] * max(0, 3 - len(state.packs)),
        "bms_emsStatus.maxChargeSoc": round(state.max_charge_soc),
        "bms_emsStatus.minDsgSoc": round(state.min_dsg_soc),
        "bms_bmsStatus.soc": round(main.soc),
        "bms_bmsStatus.f32ShowSoc": round(main.soc, 1),
        "bms_bmsStatus.vol": main_mv,
        "bms_bmsStatus.amp": round(main_w / (main_mv / 1000.0) * 1000),
        "bms_bmsStatus.inputWatts": round(max(0.0, main_w)),
        "bms_bmsStatus.outputWatts": round(max(0.0, -main_w)),
        "pd.soc": round(main.soc),
        "pd.wattsInSum": round(state.ac_in_w),
        "pd.wattsOutSum": round(state.ac_out_w),
        "pd.remainTime": remain,
        "inv.inputWatts": round(state.ac_in_w),
        "inv.outputWatts": round(state.ac_out_w),
        "inv.acInVol": round(state.ac_in_voltage * 1000),
        "inv.acInAmp": round(state.ac_in_amps * 1000),
        "inv.acInFreq": state.grid_frequency if state.grid else 0,
        "mppt.inWatts": 0,
    }
    for index, pack in enumerate(state.packs[1:], start=1):
        group = f"bms_slave_bmsSlaveStatus_{index}"
        watts = state.pack_watts(pack)
        fields[f"{group}.soc"] = round(pack.soc)
        fields[f"{group}.f32ShowSoc"] = round(pack.soc, 1)
        fields[f"{group}.vol"] = state.pack_voltage_mv(pack)
        fields[f"{group}.inputWatts"] = round(max(0.0, watts))
        fields[f"{group}.outputWatts"] = round(max(0.0, -watts))
    return fields


def quota_map(state: PowerStationState) -> dict[str, Any]:
    """The full flat map: what quota/all and a latestQuotas reply carry."""
    full = dict(_template())
    full.update(live_fields(state))
    return full


def open_pushes(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Split dotted fields into one Open-API push per module (typeCode)."""
    by_group: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        group, _, name = key.partition(".")
        if group in TYPE_CODES:
            by_group.setdefault(group, {})[name] = value
    return [{"typeCode": TYPE_CODES[g], "params": params} for g, params in by_group.items()]


def latest_quotas_reply(
    sn: str, state: PowerStationState, request_id: Any, *, online: bool = True
) -> dict[str, Any]:
    """Answer to a ``latestQuotas`` get, shaped like the js01 capture."""
    return {
        "id": request_id,
        "moduleType": 0,
        "operateType": "latestQuotas",
        "version": "1.1",
        "data": {
            "sn": sn,
            "online": 1 if online else 0,
            "quotaMap": quota_map(state),
        },
    }


def parse_latest_quotas_request(payload: bytes) -> dict[str, Any] | None:
    """The JSON get a client publishes to ask for a snapshot, or None."""
    if not payload.startswith(b"{"):
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("operateType") == "latestQuotas":
        return message
    return None
