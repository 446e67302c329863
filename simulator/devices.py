"""Simulated devices: a physical state plus the wire format of one product family.

Each device answers three questions for the stand-in: what to push now, what
to answer to a snapshot request, and what quota/all returns over HTTPS (the
River 3 family gets code 1006 there, as on the real Open API).
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import json
import random
import time
from typing import Any, ClassVar

from . import json_codec, protobuf_codec
from .model import Pack, PowerStationState
from .scenarios import Scenario, Steady


@dataclass(frozen=True)
class Outgoing:
    """One MQTT publish the device wants to make."""

    topic: str
    payload: bytes


def property_topic(sn: str) -> str:
    return f"/app/device/property/{sn}"


def open_quota_topic(account: str, sn: str) -> str:
    return f"/open/{account}/{sn}/quota"


def open_status_topic(account: str, sn: str) -> str:
    return f"/open/{account}/{sn}/status"


def get_reply_topic(account: str, sn: str) -> str:
    return f"/app/{account}/{sn}/thing/property/get_reply"


class SimulatedDevice:
    """Common part: identity, state, scenario and online flag."""

    encoding: ClassVar[str]

    def __init__(
        self,
        sn: str,
        *,
        product_name: str,
        device_name: str,
        state: PowerStationState,
        scenario: Scenario | None = None,
    ) -> None:
        self.sn = sn
        self.product_name = product_name
        self.device_name = device_name
        self.state = state
        self.scenario: Scenario = scenario or Steady()
        self.online = True
        self.pushes_sent = 0
        self.replies_sent = 0

    def set_scenario(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def step(self, dt: float) -> None:
        """Advance ``dt`` simulated seconds under the current scenario."""
        self.scenario.apply(self.state, dt)
        self.state.advance(dt)

    def describe(self) -> dict[str, Any]:
        to_empty, to_full = self.state.remaining_minutes()
        return {
            "sn": self.sn,
            "product_name": self.product_name,
            "device_name": self.device_name,
            "encoding": self.encoding,
            "online": self.online,
            "scenario": self.scenario.describe(),
            "publishing": self.state.publishing,
            "grid": self.state.grid,
            "soc": round(self.state.combined_soc, 2),
            "packs": [round(p.soc, 2) for p in self.state.packs],
            "battery_w": round(self.state.battery_w, 1),
            "minutes_to_empty": to_empty,
            "minutes_to_full": to_full,
            "sim_time": round(self.state.sim_time, 1),
            "pushes_sent": self.pushes_sent,
            "replies_sent": self.replies_sent,
        }

    # Overridden per family.
    def pushes(self, account: str) -> list[Outgoing]:
        raise NotImplementedError

    def answer_get(self, account: str, payload: bytes) -> list[Outgoing]:
        raise NotImplementedError

    def quota_all(self) -> dict[str, Any] | None:
        """The quota/all map, or None when the Open API does not serve this device."""
        raise NotImplementedError


class ProtobufPowerStation(SimulatedDevice):
    """River 3 family: obfuscated protobuf pushes, plain protobuf snapshot replies."""

    encoding = "protobuf"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Real devices run a large, increasing sequence counter; start anywhere.
        self._seq = itertools.count(random.randint(1_000_000, 300_000_000))
        self._last_display: dict[str, Any] = {}

    def _push(self, frame: protobuf_codec.Frame) -> Outgoing:
        return Outgoing(
            property_topic(self.sn), protobuf_codec.push_envelope(frame, seq=next(self._seq))
        )

    def pushes(self, account: str) -> list[Outgoing]:
        state = self.state
        display = protobuf_codec.display_fields(state, glitch_soc=state.take_glitch())
        # Pushes carry only what changed since the last one, like the real
        # firmware; the totals always ride along so there is something to send.
        changed = {k: v for k, v in display.items() if self._last_display.get(k) != v}
        changed.setdefault("pow_in_sum_w", display["pow_in_sum_w"])
        changed.setdefault("pow_out_sum_w", display["pow_out_sum_w"])
        self._last_display = display
        out = [
            self._push(
                (
                    protobuf_codec.DISPLAY,
                    protobuf_codec.SRC_MAIN,
                    protobuf_codec.display_message(changed),
                )
            ),
            self._push(
                (
                    protobuf_codec.RUNTIME,
                    protobuf_codec.SRC_MAIN,
                    protobuf_codec.runtime_message(protobuf_codec.runtime_fields(state)),
                )
            ),
            self._push(
                (
                    protobuf_codec.CMS_HEARTBEAT,
                    protobuf_codec.SRC_BMS,
                    protobuf_codec.cms_heartbeat(state).SerializeToString(),
                )
            ),
        ]
        out += [
            self._push(
                (protobuf_codec.BMS_HEARTBEAT, protobuf_codec.SRC_BMS, r.SerializeToString())
            )
            for r in protobuf_codec.bms_heartbeats(state)
        ]
        self.pushes_sent += len(out)
        return out

    def answer_get(self, account: str, payload: bytes) -> list[Outgoing]:
        if not protobuf_codec.is_snapshot_request(payload):
            return []
        body = protobuf_codec.reply_envelope(
            protobuf_codec.snapshot_frames(self.state), seq=next(self._seq)
        )
        self.replies_sent += 1
        return [Outgoing(get_reply_topic(account, self.sn), body)]

    def quota_all(self) -> dict[str, Any] | None:
        return None


class JsonPowerStation(SimulatedDevice):
    """Delta 2 family: Open-API JSON pushes per module, JSON snapshot replies."""

    encoding = "json"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(random.randint(100_000_000, 900_000_000))
        self._reported: dict[str, Any] | None = None

    def pushes(self, account: str) -> list[Outgoing]:
        fields = json_codec.live_fields(self.state, glitch_soc=self.state.take_glitch())
        out = []
        for module in json_codec.open_pushes(fields):
            push = {
                "id": next(self._ids),
                "version": "1.0",
                "timestamp": int(time.time() * 1000),
                **module,
            }
            out.append(Outgoing(open_quota_topic(account, self.sn), json.dumps(push).encode()))
        self.pushes_sent += len(out)
        return out

    def answer_get(self, account: str, payload: bytes) -> list[Outgoing]:
        request = json_codec.parse_latest_quotas_request(payload)
        if request is None:
            return []
        reply = json_codec.latest_quotas_reply(
            self.sn, self.state, request.get("id", next(self._ids)), online=self.online
        )
        self.replies_sent += 1
        return [Outgoing(get_reply_topic(account, self.sn), json.dumps(reply).encode())]

    def quota_all(self) -> dict[str, Any] | None:
        # The cloud serves quota/all from what the device last reported: while
        # telemetry is frozen, so is this answer.
        if self.state.publishing or self._reported is None:
            self._reported = json_codec.quota_map(self.state)
        return self._reported


def status_message(online: bool) -> bytes:
    """Open-API online/offline notice on ``/open/{account}/{sn}/status``."""
    return json.dumps(
        {
            "id": random.randint(100_000_000, 900_000_000),
            "version": "1.0",
            "timestamp": int(time.time() * 1000),
            "params": {"status": 1 if online else 0},
        }
    ).encode()


DEFAULT_RIVER3_SN = "R651ZAB5XXXX0001"
DEFAULT_DELTA2_SN = "R331ZEB5XXXX0002"


def river3(
    sn: str = DEFAULT_RIVER3_SN, *, soc: float = 80.0, extra_pack: bool = False
) -> ProtobufPowerStation:
    """A River 3 (245 Wh); with ``extra_pack`` a second pack, as on the Plus with a battery."""
    packs = [Pack(capacity_wh=245.0, soc=soc, serial="R651PC0CXGCA0001")]
    if extra_pack:
        packs.append(Pack(capacity_wh=286.0, soc=soc, serial="R6EXTRA0XGCA0001"))
    state = PowerStationState(packs=packs, grid_voltage=230.0, base_load_w=45.0)
    return ProtobufPowerStation(
        sn, product_name="RIVER 3", device_name="River 3 (simulated)", state=state
    )


def delta2(
    sn: str = DEFAULT_DELTA2_SN, *, soc: float = 90.0, extra_pack: bool = False
) -> JsonPowerStation:
    """A Delta 2 (1024 Wh); with ``extra_pack`` a Delta 2 extra battery."""
    packs = [Pack(capacity_wh=1024.0, soc=soc, serial="R331MAINPACK0001")]
    if extra_pack:
        packs.append(Pack(capacity_wh=1024.0, soc=soc, serial="R331EXTRAPACK001"))
    state = PowerStationState(packs=packs, grid_voltage=230.0, base_load_w=120.0)
    return JsonPowerStation(
        sn, product_name="DELTA 2", device_name="Delta 2 (simulated)", state=state
    )


def default_devices() -> list[SimulatedDevice]:
    """A single-pack River 3 (protobuf) and a Delta 2 with an extra battery (JSON)."""
    return [river3(), delta2(extra_pack=True)]
