"""Per-agent bookkeeping: commands in flight and the agent's debounce timer.

Kept apart from the engine so that its persistence (to_dict / from_dict) sits
next to the fields it serialises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .audit import DecisionMode
from .protocol import AckStatus, CommandAction

# An ack with one of these ends a command: nothing more will happen on the agent.
TERMINAL_STATUSES = frozenset({AckStatus.ABORTED, AckStatus.EXPIRED, AckStatus.REJECTED})


@dataclass(slots=True)
class SentCommand:
    """A command the engine issued (or, in dry-run, decided to issue)."""

    id: str
    action: CommandAction
    payload: dict[str, Any]
    issued_at: int
    delay_sec: int
    ttl_sec: int
    sent_at: float
    last_sent_at: float
    mode: DecisionMode
    manual: bool = False
    ref: str | None = None  # for an abort: the shutdown it cancels
    acknowledged: bool = False
    committed: bool = False  # the agent acked `executing`
    outcome: AckStatus | None = None  # terminal ack status, if any
    closed: bool = False  # no more resends (acked, superseded, or gave up at ttl)
    abort_id: str | None = None  # for a shutdown: the abort sent to cancel it
    abort_manual: bool = False  # ... and it was the user's (manual_abort)
    grid_restored: bool = False  # the grid came back after it was issued: episode over
    execute_at: int | None = None  # from a `scheduled` ack
    # No longer holds back a new automatic shutdown: the agent came back after
    # it, the grid was back long enough, or the secret changed.
    released: bool = False
    # Seconds the engine clock stepped back since issue: issued_at stays as the
    # agent computes it, the engine's own view of commit/expiry moves with it.
    clock_shift: int = 0

    @property
    def published(self) -> bool:
        return self.mode is DecisionMode.LIVE

    @property
    def commit_at(self) -> int:
        """The agent's point of no return (issued_at + delay_sec, on the engine clock)."""
        return self.issued_at + self.delay_sec - self.clock_shift

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.ttl_sec - self.clock_shift

    @property
    def aborted(self) -> bool:
        """Cancelled by an abort the engine sent (and the abort did not lose the race)."""
        return self.abort_id is not None and not self.committed

    def rebase(self, shift: float) -> None:
        """The engine clock stepped back by `shift` seconds."""
        self.sent_at -= shift
        self.last_sent_at -= shift
        self.clock_shift += round(shift)

    def is_live(self) -> bool:
        """Still expected to run: not ended by the agent, not cancelled by an abort.

        A refused abort (`too_late`) marks the shutdown committed, which wins.
        """
        return self.outcome is None and (self.abort_id is None or self.committed)

    def past_commit(self, now: float) -> bool:
        return self.committed or now >= self.commit_at

    def awaiting_ack(self) -> bool:
        return self.published and not self.acknowledged and not self.closed

    def next_resend_at(self, interval: float) -> float | None:
        """For a command awaiting its ack: when it goes out again (None: expires first)."""
        due = self.last_sent_at + interval
        return due if due < self.expires_at else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": str(self.action),
            "payload": dict(self.payload),
            "issued_at": self.issued_at,
            "delay_sec": self.delay_sec,
            "ttl_sec": self.ttl_sec,
            "sent_at": self.sent_at,
            "last_sent_at": self.last_sent_at,
            "mode": str(self.mode),
            "manual": self.manual,
            "ref": self.ref,
            "acknowledged": self.acknowledged,
            "committed": self.committed,
            "outcome": None if self.outcome is None else str(self.outcome),
            "closed": self.closed,
            "abort_id": self.abort_id,
            "abort_manual": self.abort_manual,
            "grid_restored": self.grid_restored,
            "execute_at": self.execute_at,
            "released": self.released,
            "clock_shift": self.clock_shift,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SentCommand:
        outcome = data.get("outcome")
        if not isinstance(data.get("payload"), Mapping):
            raise TypeError("command payload is not a mapping")
        return cls(
            id=str(data["id"]),
            action=CommandAction(data["action"]),
            payload=dict(data["payload"]),
            issued_at=int(data["issued_at"]),
            delay_sec=int(data["delay_sec"]),
            ttl_sec=int(data["ttl_sec"]),
            sent_at=float(data["sent_at"]),
            last_sent_at=float(data["last_sent_at"]),
            mode=DecisionMode(data["mode"]),
            manual=bool(data.get("manual", False)),
            ref=data.get("ref"),
            acknowledged=bool(data.get("acknowledged", False)),
            committed=bool(data.get("committed", False)),
            outcome=None if outcome is None else AckStatus(outcome),
            closed=bool(data.get("closed", False)),
            abort_id=data.get("abort_id"),
            abort_manual=bool(data.get("abort_manual", False)),
            grid_restored=bool(data.get("grid_restored", False)),
            execute_at=None if data.get("execute_at") is None else int(data["execute_at"]),
            released=bool(data.get("released", False)),
            clock_shift=int(data.get("clock_shift", 0)),
        )


@dataclass(slots=True)
class AgentRuntime:
    """Mutable policy state for one agent."""

    agent_id: str
    # The debounce timer: on-battery critical time accumulates over stretches
    # (critical_since = start of the current one, held_sec = earlier ones) and
    # is only cleared once the grid is back for restore_confirm_sec.
    critical_since: float | None = None  # current stretch start (engine clock)
    held_sec: float | None = None  # accumulated before; None = no timer
    critical_reason: str = ""
    suppressed: bool = False  # a disarmed decision was recorded for this episode
    fsd: bool = False  # latched: an automatic live shutdown is due for this agent
    last_shutdown_at: float | None = None  # newest shutdown sent (any mode)
    shutdown: SentCommand | None = None
    rehearsal: SentCommand | None = None  # a dry-run test that must not replace a live one
    abort: SentCommand | None = None
    ping: SentCommand | None = None
    last_ack_status: AckStatus | None = None
    last_ack_at: float | None = None
    last_ack_detail: str = ""
    online: bool | None = None  # the agent's own status, as the glue reported it
    online_at: float | None = None

    @property
    def timer_exists(self) -> bool:
        return self.critical_since is not None or self.held_sec is not None

    def timer_elapsed(self, now: float) -> float:
        running = 0.0 if self.critical_since is None else max(0.0, now - self.critical_since)
        return (self.held_sec or 0.0) + running

    def cancel_timer(self) -> None:
        self.critical_since = None
        self.held_sec = None

    def rebase(self, shift: float) -> None:
        if self.critical_since is not None:
            self.critical_since -= shift
        if self.last_shutdown_at is not None:
            self.last_shutdown_at -= shift
        if self.online_at is not None:
            self.online_at -= shift
        for cmd in (*self.tracked(), self.rehearsal):
            if cmd is not None:
                cmd.rebase(shift)

    def tracked(self) -> list[SentCommand]:
        return [cmd for cmd in (self.shutdown, self.abort, self.ping) if cmd is not None]

    def latest_command(self) -> SentCommand | None:
        tracked = self.tracked()
        return max(tracked, key=lambda cmd: cmd.sent_at) if tracked else None

    def find(self, command_id: str) -> SentCommand | None:
        for cmd in self.tracked():
            if cmd.id == command_id:
                return cmd
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "critical_since": self.critical_since,
            "held_sec": self.held_sec,
            "critical_reason": self.critical_reason,
            "suppressed": self.suppressed,
            "fsd": self.fsd,
            "rehearsal": None if self.rehearsal is None else self.rehearsal.to_dict(),
            "online": self.online,
            "online_at": self.online_at,
            "last_shutdown_at": self.last_shutdown_at,
            "shutdown": None if self.shutdown is None else self.shutdown.to_dict(),
            "abort": None if self.abort is None else self.abort.to_dict(),
            "ping": None if self.ping is None else self.ping.to_dict(),
            "last_ack_status": None if self.last_ack_status is None else str(self.last_ack_status),
            "last_ack_at": self.last_ack_at,
            "last_ack_detail": self.last_ack_detail,
        }

    @classmethod
    def from_dict(cls, agent_id: str, data: Mapping[str, Any]) -> AgentRuntime:
        if not isinstance(data, Mapping):
            raise TypeError(f"agent state for {agent_id} is not a mapping")

        def command(key: str) -> SentCommand | None:
            raw = data.get(key)
            if raw is None:
                return None
            if not isinstance(raw, Mapping):
                raise TypeError(f"{key} of {agent_id} is not a mapping")
            return SentCommand.from_dict(raw)

        status = data.get("last_ack_status")
        return cls(
            agent_id=agent_id,
            critical_since=_number(data.get("critical_since")),
            held_sec=_number(data.get("held_sec")),
            critical_reason=str(data.get("critical_reason", "")),
            suppressed=bool(data.get("suppressed", False)),
            fsd=bool(data.get("fsd", False)),
            rehearsal=command("rehearsal"),
            online=None if data.get("online") is None else bool(data["online"]),
            online_at=_number(data.get("online_at")),
            last_shutdown_at=_number(data.get("last_shutdown_at")),
            shutdown=command("shutdown"),
            abort=command("abort"),
            ping=command("ping"),
            last_ack_status=None if status is None else AckStatus(status),
            last_ack_at=_number(data.get("last_ack_at")),
            last_ack_detail=str(data.get("last_ack_detail", "")),
        )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
