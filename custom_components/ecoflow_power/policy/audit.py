"""Decision records: why the engine did (or did not) act, with the values it used."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

DEFAULT_AUDIT_SIZE = 200


class AuditKind(StrEnum):
    GRID_LOST = "grid_lost"
    GRID_RESTORED = "grid_restored"
    TIMER_STARTED = "timer_started"
    TIMER_CANCELLED = "timer_cancelled"
    TIMER_PAUSED = "timer_paused"  # grid back, not yet for restore_confirm_sec
    TIMER_RESUMED = "timer_resumed"  # grid lost again before that
    AGENT_ONLINE = "agent_online"
    CLOCK_STEP = "clock_step"
    TELEMETRY_STALE = "telemetry_stale"
    TELEMETRY_RESTORED = "telemetry_restored"
    SHUTDOWN = "shutdown"
    MANUAL_SHUTDOWN = "manual_shutdown"
    RESEND = "resend"
    UNACKNOWLEDGED = "unacknowledged"
    ABORT = "abort"
    MANUAL_ABORT = "manual_abort"
    ABORT_TOO_LATE = "abort_too_late"
    PING = "ping"
    ACK = "ack"
    ACK_IGNORED = "ack_ignored"
    ARMED = "armed"
    DISARMED = "disarmed"


class DecisionMode(StrEnum):
    LIVE = "live"  # published
    DRY_RUN = "dry_run"  # recorded only, because of the dry_run setting
    DISARMED = "disarmed"  # recorded only, because the engine is disarmed


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision. Also an effect, so the glue can log it as it happens."""

    at: float
    device_id: str
    kind: AuditKind
    reason: str
    agent_id: str | None = None
    grid: str | None = None
    soc_min: float | None = None
    threshold: float | None = None
    remaining_min: int | None = None
    command_id: str | None = None
    mode: DecisionMode | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        mode = data.get("mode")
        return cls(
            at=float(data["at"]),
            device_id=str(data["device_id"]),
            kind=AuditKind(data["kind"]),
            reason=str(data["reason"]),
            agent_id=data.get("agent_id"),
            grid=data.get("grid"),
            soc_min=data.get("soc_min"),
            threshold=data.get("threshold"),
            remaining_min=data.get("remaining_min"),
            command_id=data.get("command_id"),
            mode=None if mode is None else DecisionMode(mode),
        )


class AuditTrail:
    """The last `maxlen` records; older ones fall off (HA's logbook keeps history)."""

    def __init__(
        self, maxlen: int = DEFAULT_AUDIT_SIZE, records: Iterable[AuditRecord] = ()
    ) -> None:
        self._records: deque[AuditRecord] = deque(records, maxlen=maxlen)

    def append(self, record: AuditRecord) -> None:
        self._records.append(record)

    @property
    def records(self) -> tuple[AuditRecord, ...]:
        return tuple(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def to_list(self) -> list[dict[str, Any]]:
        return [record.as_dict() for record in self._records]

    @classmethod
    def from_list(
        cls, data: Iterable[Mapping[str, Any]], maxlen: int = DEFAULT_AUDIT_SIZE
    ) -> AuditTrail:
        return cls(maxlen, (AuditRecord.from_dict(item) for item in data))
