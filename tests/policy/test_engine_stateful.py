"""Random telemetry, acks, arm switches and clock jumps against the engine's invariants.

An independent model of the condition (threshold, hysteresis, UNKNOWN, stale
fail-safe) runs next to the engine. After every step:

- safety: no shutdown (new or resent) unless the grid was last seen LOST;
  no abort at or after the commit point of the shutdown it targets; never two
  shutdowns with distinct ids to one agent inside the cooldown; a resend is the
  original payload byte for byte;
- liveness: once the condition is due (debounce elapsed, or stale after a
  loss), the engine is armed and the agent is out of cooldown, a shutdown has
  gone out by the end of that very step;
- scheduling: next_deadline() is in the future (the glue never busy-loops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    Ack,
    AckStatus,
    AgentBinding,
    CommandAction,
    Effect,
    PolicyEngine,
    PolicySettings,
    PolicyTelemetry,
    PublishCommand,
)
from tests.policy.conftest import T0, FakeClock, Ids

AGENTS = (
    AgentBinding("nas", "nas-secret", soc_threshold=15),
    AgentBinding("vm", "vm-secret", soc_threshold=40, delay_sec=30),
    AgentBinding("pc", "pc-secret"),  # follows the setting
)
SOCS = st.one_of(
    st.none(),
    st.sampled_from([5.0, 14.5, 15, 16.5, 17, 17.5, 19.9, 20, 21, 22, 22.5, 39, 40, 42, 42.5, 80]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
GRIDS = st.sampled_from(
    [GridStatus.LOST, GridStatus.LOST, GridStatus.CONNECTED, GridStatus.UNKNOWN]
)
STEPS = st.one_of(
    st.sampled_from([0, 0.5, 1, 5, 15, 29.5, 30, 60]), st.floats(min_value=0, max_value=400)
)


@dataclass
class SentShutdown:
    at: float
    payload: dict[str, Any]

    @property
    def commit_at(self) -> int:
        return self.payload["issued_at"] + self.payload["delay_sec"]


@dataclass
class Model:
    """What the documented rules say, kept independently of the engine."""

    settings: PolicySettings
    grid: GridStatus | None = None
    fresh_at: float | None = None
    armed: bool = True
    since: dict[str, float | None] = field(default_factory=dict)

    def observe(self, grid: GridStatus, soc: float | None, now: float) -> None:
        if grid is GridStatus.UNKNOWN:
            return
        self.grid = grid
        if grid is GridStatus.CONNECTED or soc is not None or self.fresh_at is None:
            self.fresh_at = now
        for agent in AGENTS:
            threshold = agent.threshold(self.settings)
            if grid is GridStatus.CONNECTED:
                self.since[agent.agent_id] = None
            elif soc is not None and soc <= threshold:
                if self.since.get(agent.agent_id) is None:
                    self.since[agent.agent_id] = now
            elif soc is not None and soc > threshold + self.settings.hysteresis_pct:
                self.since[agent.agent_id] = None

    def due_at(self, agent_id: str, now: float) -> float | None:
        due = None
        since = self.since.get(agent_id)
        if since is not None:
            due = since + self.settings.debounce_sec
        if self.grid is GridStatus.LOST and self.fresh_at is not None:
            stale_at = self.fresh_at + self.settings.stale_after_sec
            if now >= stale_at:
                due = stale_at if due is None else min(due, stale_at)
        return due


class PolicyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.shutdowns: dict[str, list[SentShutdown]] = {a.agent_id: [] for a in AGENTS}
        self.abort_commit: dict[str, int] = {}  # abort id -> commit point of its target
        self.last_command: dict[str, str] = {}
        self.engine: PolicyEngine
        self.model: Model

    @initialize(
        debounce=st.sampled_from([0, 10, 60]),
        stale=st.sampled_from([60, 120]),
        delay=st.sampled_from([0, 30, 60]),
        ttl=st.sampled_from([20, 300]),
        cooldown=st.sampled_from([30, 600]),
        resend=st.sampled_from([5, 15]),
        hysteresis=st.sampled_from([0, 2]),
    )
    def setup(
        self,
        *,
        debounce: int,
        stale: int,
        delay: int,
        ttl: int,
        cooldown: int,
        resend: int,
        hysteresis: float,
    ) -> None:
        policy = PolicySettings(
            debounce_sec=debounce,
            stale_after_sec=stale,
            delay_sec=delay,
            ttl_sec=ttl,
            cooldown_sec=cooldown,
            resend_interval_sec=resend,
            hysteresis_pct=hysteresis,
        )
        self.engine = PolicyEngine("DEV", policy, AGENTS, clock=self.clock, id_factory=Ids())
        self.model = Model(policy)

    # -- rules ----------------------------------------------------------------------

    @rule(dt=STEPS, grid=GRIDS, soc=SOCS)
    def reading(self, dt: float, grid: GridStatus, soc: float | None) -> None:
        now = self.clock.advance(dt)
        self.model.observe(grid, soc, now)
        self.check(self.engine.update(PolicyTelemetry(grid, soc, None, now)))

    @rule(dt=STEPS)
    def tick(self, dt: float) -> None:
        self.clock.advance(dt)
        self.check(self.engine.tick())

    @rule(grid=GRIDS, soc=SOCS)
    def reading_at_deadline(self, grid: GridStatus, soc: float | None) -> None:
        """A reading landing exactly on a deadline (commit point, fire time, resend)."""
        deadline = self.engine.next_deadline()
        if deadline is not None:
            self.clock.now = deadline
        self.model.observe(grid, soc, self.clock.now)
        self.check(self.engine.update(PolicyTelemetry(grid, soc, None, self.clock.now)))

    @rule()
    def tick_at_deadline(self) -> None:
        """What the glue does: tick exactly when the engine asked to be ticked."""
        deadline = self.engine.next_deadline()
        if deadline is None:
            return
        self.clock.now = deadline
        self.check(self.engine.tick())

    @rule(
        agent=st.sampled_from([a.agent_id for a in AGENTS]),
        status=st.sampled_from(list(AckStatus)),
        too_late=st.booleans(),
    )
    def ack(self, agent: str, status: AckStatus, too_late: bool) -> None:
        command_id = self.last_command.get(agent)
        if command_id is None:
            return
        detail = "too_late: commit passed" if too_late else ""
        ack = Ack(command_id, agent, status, int(self.clock.now), detail)
        self.check(self.engine.handle_ack(agent, ack))

    @rule(armed=st.booleans())
    def arm(self, armed: bool) -> None:
        self.model.armed = armed
        self.check(self.engine.set_armed(armed))

    # -- checks ---------------------------------------------------------------------

    def check(self, effects: list[Effect]) -> None:
        now = self.clock.now
        cooldown = self.model.settings.cooldown_sec
        for effect in effects:
            if not isinstance(effect, PublishCommand):
                continue
            payload = effect.payload
            sent = self.shutdowns[effect.agent_id]
            self.last_command[effect.agent_id] = payload["id"]
            if effect.action is CommandAction.SHUTDOWN:
                assert self.model.grid is GridStatus.LOST, "shutdown while grid not lost"
                if effect.resend:
                    assert sent, "resend of a shutdown never sent"
                    assert payload == sent[-1].payload, "resend differs from the original"
                else:
                    if sent:
                        assert payload["id"] != sent[-1].payload["id"]
                        assert now >= sent[-1].at + cooldown, "two shutdowns inside cooldown"
                    sent.append(SentShutdown(now, payload))
            elif effect.action is CommandAction.ABORT:
                assert sent, "abort without a shutdown"
                commit_at = self.abort_commit.setdefault(payload["id"], sent[-1].commit_at)
                assert now < commit_at, "abort at or after the commit point"
        for agent in AGENTS:
            if not self.model.armed:
                continue
            due = self.model.due_at(agent.agent_id, now)
            if due is None or now < due:
                continue
            sent = self.shutdowns[agent.agent_id]
            cooled = not sent or now >= sent[-1].at + cooldown
            assert not cooled, f"{agent.agent_id}: condition due since {due}, no shutdown at {now}"

    @invariant()
    def deadline_in_future(self) -> None:
        if not hasattr(self, "engine"):
            return
        deadline = self.engine.next_deadline()
        assert deadline is None or deadline > self.clock.now

    @invariant()
    def state_is_consistent(self) -> None:
        if not hasattr(self, "engine"):
            return
        status = self.engine.status()
        if not status.armed:
            assert status.pending_fire_at is None
        elif status.pending_fire_at is not None:
            assert status.pending_fire_at > self.clock.now


PolicyMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPolicyMachine = PolicyMachine.TestCase
