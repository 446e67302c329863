"""Random telemetry, acks, agent returns, arm switches, test runs and clock jumps.

An independent model of the documented rules (threshold, hysteresis, UNKNOWN,
stale fail-safe, on-battery time accumulated until the grid is back for
restore_confirm_sec) runs next to the engine. After every step:

- safety: no shutdown (new or resent) unless the grid was last seen LOST (by
  the station or the mains sentinel) or the engine is blind (silent, station
  offline or cloud down, blind_mode on, no sentinel saying present);
  never a new shutdown while the previous one is pending on the agent (live,
  before its commit point); no abort at or after the commit point of the
  shutdown it targets; a resend is the original payload byte for byte;
- liveness: whenever the condition has held for the debounce (or the stale
  fail-safe) and the engine is armed, the agent has a live shutdown, whatever
  came before (aborts, test runs, refusals, earlier outages): one the engine
  did not abort, that the grid's return did not release, and, past its commit
  point, still inside the retry spacing of the cooldown;
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
    aborted: bool = False  # the engine published an abort for it (and it did not lose)
    terminal: bool = False  # the agent ended it (rejected / expired / aborted ack)
    committed: bool = False  # executing, or an abort refused too_late
    acked: bool = False
    released: bool = False  # the outage ended, or the agent came back after it
    grid_restored: bool = False

    @property
    def commit_at(self) -> int:
        return self.payload["issued_at"] + self.payload["delay_sec"]

    @property
    def expires_at(self) -> int:
        return self.payload["issued_at"] + self.payload["ttl_sec"]

    def live(self) -> bool:
        return not self.terminal and (not self.aborted or self.committed)

    def past_commit(self, now: float) -> bool:
        return self.committed or now >= self.commit_at

    def pending(self, now: float) -> bool:
        return self.live() and not self.past_commit(now)


@dataclass
class Model:
    """What the documented rules say, kept independently of the engine."""

    settings: PolicySettings
    grid: GridStatus | None = None
    fresh_at: float | None = None
    armed: bool = True
    present_since: float | None = None
    restored: bool = False
    since: dict[str, float | None] = field(default_factory=dict)
    held: dict[str, float | None] = field(default_factory=dict)
    last_soc: float | None = None
    mains: bool | None = None
    by_sentinel: bool = False
    cloud: bool = True
    online: bool | None = None

    def blind_possible(self) -> bool:
        return (
            self.settings.blind_mode
            and self.grid is GridStatus.CONNECTED
            and (self.online is False or not self.cloud)
            and self.mains is not True
        )

    def silent(self, now: float) -> bool:
        return self.fresh_at is not None and now >= self.fresh_at + self.settings.stale_after_sec

    def sentinel(
        self, present: bool | None, now: float, shutdowns: dict[str, list[SentShutdown]]
    ) -> None:
        """Mains lost acts like a loss at once; back undoes only its own loss."""
        self.settle(now, shutdowns)
        previous, self.mains = self.mains, present
        if present == previous:
            return
        if present is False and self.grid is not GridStatus.LOST:
            self.grid = GridStatus.LOST
            self.by_sentinel = True
            self._lost(self.last_soc, now)
        elif present is True and self.grid is GridStatus.LOST and self.by_sentinel:
            self.grid = GridStatus.CONNECTED
            self.by_sentinel = False
            self._connected(now, shutdowns)

    def settle(self, now: float, shutdowns: dict[str, list[SentShutdown]]) -> None:
        """The grid back for restore_confirm_sec: the outage is over."""
        if self.present_since is None or self.restored:
            return
        if now < self.present_since + self.settings.restore_confirm_sec:
            return
        self.restored = True
        for agent in AGENTS:
            self.since[agent.agent_id] = self.held[agent.agent_id] = None
            sent = shutdowns[agent.agent_id]
            if sent and (sent[-1].terminal or sent[-1].past_commit(now)):
                sent[-1].released = True

    def observe(
        self,
        grid: GridStatus,
        soc: float | None,
        now: float,
        shutdowns: dict[str, list[SentShutdown]],
    ) -> None:
        self.settle(now, shutdowns)
        if soc is not None:
            self.last_soc = soc
        if grid is GridStatus.UNKNOWN:
            return
        self.grid = grid
        self.by_sentinel = False
        if grid is GridStatus.CONNECTED or soc is not None or self.fresh_at is None:
            self.fresh_at = now
        if grid is GridStatus.CONNECTED:
            self._connected(now, shutdowns)
        else:
            self._lost(soc, now)

    def _connected(self, now: float, shutdowns: dict[str, list[SentShutdown]]) -> None:
        if self.present_since is None:
            self.present_since = now
        for agent in AGENTS:
            since = self.since.get(agent.agent_id)
            if since is not None:
                held = self.held.get(agent.agent_id) or 0.0
                self.held[agent.agent_id] = held + now - since
                self.since[agent.agent_id] = None
            sent = shutdowns[agent.agent_id]
            if sent:
                sent[-1].grid_restored = True
        self.settle(now, shutdowns)

    def _lost(self, soc: float | None, now: float) -> None:
        self.present_since = None
        self.restored = False
        for agent in AGENTS:
            aid = agent.agent_id
            threshold = agent.threshold(self.settings)
            if soc is not None and soc > threshold + self.settings.hysteresis_pct:
                self.since[aid] = self.held[aid] = None  # clear
            elif self.since.get(aid) is not None:
                pass  # running: keeps running
            elif self.held.get(aid) is not None:
                self.since[aid] = now  # resumes
            elif soc is not None and soc <= threshold:
                self.since[aid] = now

    def due_at(self, agent_id: str, now: float) -> float | None:
        due = None
        since = self.since.get(agent_id)
        if since is not None:
            left = self.settings.debounce_sec - (self.held.get(agent_id) or 0.0)
            due = since + max(0.0, left)
        outage = self.grid is GridStatus.LOST or self.blind_possible()
        if outage and self.fresh_at is not None and self.silent(now):
            # No power figures in these readings: no estimate, the stale window.
            stale_at = self.fresh_at + self.settings.stale_after_sec
            due = stale_at if due is None else min(due, stale_at)
        return due


class PolicyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.shutdowns: dict[str, list[SentShutdown]] = {a.agent_id: [] for a in AGENTS}
        self.abort_target: dict[str, SentShutdown] = {}  # abort id -> the shutdown it targets
        self.last_command: dict[str, str] = {}
        self.engine: PolicyEngine
        self.model: Model

    @initialize(
        debounce=st.sampled_from([0, 10, 60]),
        stale=st.sampled_from([60, 120]),
        delay=st.sampled_from([0, 30, 60]),
        ttl=st.sampled_from([20, 300]),
        cooldown=st.sampled_from([0, 30, 600]),
        resend=st.sampled_from([5, 15]),
        hysteresis=st.sampled_from([0, 2]),
        confirm=st.sampled_from([0, 15, 60]),
        blind=st.booleans(),
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
        confirm: int,
        blind: bool,
    ) -> None:
        policy = PolicySettings(
            debounce_sec=debounce,
            stale_after_sec=stale,
            delay_sec=delay,
            ttl_sec=ttl,
            cooldown_sec=cooldown,
            resend_interval_sec=resend,
            hysteresis_pct=hysteresis,
            restore_confirm_sec=confirm,
            blind_mode=blind,
        )
        self.engine = PolicyEngine("DEV", policy, AGENTS, clock=self.clock, id_factory=Ids())
        self.model = Model(policy)

    # -- rules ----------------------------------------------------------------------

    @rule(dt=STEPS, grid=GRIDS, soc=SOCS)
    def reading(self, dt: float, grid: GridStatus, soc: float | None) -> None:
        now = self.clock.advance(dt)
        self.model.observe(grid, soc, now, self.shutdowns)
        self.check(self.engine.update(PolicyTelemetry(grid, soc, None, now)))

    @rule(dt=STEPS)
    def tick(self, dt: float) -> None:
        self.clock.advance(dt)
        self.model.settle(self.clock.now, self.shutdowns)
        self.check(self.engine.tick())

    @rule(grid=GRIDS, soc=SOCS)
    def reading_at_deadline(self, grid: GridStatus, soc: float | None) -> None:
        """A reading landing exactly on a deadline (commit point, fire time, resend)."""
        deadline = self.engine.next_deadline()
        if deadline is not None:
            self.clock.now = deadline
        self.model.observe(grid, soc, self.clock.now, self.shutdowns)
        self.check(self.engine.update(PolicyTelemetry(grid, soc, None, self.clock.now)))

    @rule()
    def tick_at_deadline(self) -> None:
        """What the glue does: tick exactly when the engine asked to be ticked."""
        deadline = self.engine.next_deadline()
        if deadline is None:
            return
        self.clock.now = deadline
        self.model.settle(self.clock.now, self.shutdowns)
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
        self.model.settle(self.clock.now, self.shutdowns)
        sent = self.shutdowns[agent]
        target = self.abort_target.get(command_id)
        if sent and sent[-1].payload["id"] == command_id:
            shutdown = sent[-1]
            shutdown.acked = True
            if status is AckStatus.EXECUTING:
                shutdown.committed = True
            elif status in (AckStatus.ABORTED, AckStatus.EXPIRED, AckStatus.REJECTED):
                shutdown.terminal = True
        elif target is not None and target is (sent[-1] if sent else None):
            if status is AckStatus.ABORTED:
                target.aborted = True
            elif status in (AckStatus.EXPIRED, AckStatus.REJECTED) and too_late:
                target.committed = True  # the abort lost the race
        self.check(self.engine.handle_ack(agent, ack))

    @rule(armed=st.booleans())
    def arm(self, armed: bool) -> None:
        self.model.settle(self.clock.now, self.shutdowns)
        self.model.armed = armed
        self.check(self.engine.set_armed(armed))

    @rule(agent=st.sampled_from([a.agent_id for a in AGENTS]))
    def agent_returns(self, agent: str) -> None:
        """The agent (re)connects now: what it never confirmed is given to it again."""
        now = self.clock.now
        self.model.settle(now, self.shutdowns)
        self.check(self.engine.agent_online(agent, False))
        sent = self.shutdowns[agent]
        if sent and not sent[-1].released:
            s = sent[-1]
            came_back = now > s.commit_at or (s.terminal and not s.aborted)
            expired = not s.acked and s.live() and not s.grid_restored and now >= s.expires_at
            if came_back or expired:
                s.released = True
        self.check(self.engine.agent_online(agent, True, since=now))

    @rule(present=st.sampled_from([True, False, None]))
    def mains(self, present: bool | None) -> None:
        """The mains sentinel changes."""
        before = self.blind_now()
        self.model.sentinel(present, self.clock.now, self.shutdowns)
        self.withdraw_blind(before)
        self.check(self.engine.update_mains(present))

    @rule(cloud=st.booleans(), online=st.sampled_from([True, False, None]))
    def link(self, cloud: bool, online: bool | None) -> None:
        """The cloud link or the cloud's view of the station changes."""
        self.model.settle(self.clock.now, self.shutdowns)
        before = self.blind_now()
        self.model.cloud, self.model.online = cloud, online
        self.withdraw_blind(before)
        self.check(self.engine.update_link(cloud_connected=cloud, station_online=online))

    def blind_now(self) -> bool:
        return self.model.blind_possible() and self.model.silent(self.clock.now)

    def withdraw_blind(self, before: bool) -> None:
        """An outage that was only assumed and is no more: as if the grid came back."""
        if before and not self.blind_now() and self.model.grid is GridStatus.CONNECTED:
            for sent in self.shutdowns.values():
                if sent:
                    sent[-1].grid_restored = True

    @rule(agent=st.sampled_from([a.agent_id for a in AGENTS]))
    def test_run(self, agent: str) -> None:
        """A dry-run manual shutdown: publishes nothing and changes no outcome."""
        self.model.settle(self.clock.now, self.shutdowns)
        self.check(self.engine.manual_shutdown([agent], dry_run=True, reason="test"))

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
                blind = self.model.blind_possible() and self.model.silent(now)
                assert self.model.grid is GridStatus.LOST or blind, "shutdown, grid not lost"
                if effect.resend:
                    assert sent, "resend of a shutdown never sent"
                    assert payload == sent[-1].payload, "resend differs from the original"
                else:
                    if sent:
                        previous = sent[-1]
                        assert payload["id"] != previous.payload["id"]
                        assert not previous.pending(now) or previous.released, (
                            "a second shutdown while one is pending on the agent"
                        )
                    sent.append(SentShutdown(now, payload))
            elif effect.action is CommandAction.ABORT:
                assert sent, "abort without a shutdown"
                target = self.abort_target.setdefault(payload["id"], sent[-1])
                assert now < target.commit_at, "abort at or after the commit point"
                assert not target.committed, "abort of a shutdown the agent is executing"
                target.aborted = True
        for agent in AGENTS:
            if not self.model.armed:
                continue
            due = self.model.due_at(agent.agent_id, now)
            if due is None or now < due:
                continue
            sent = self.shutdowns[agent.agent_id]
            last = sent[-1] if sent else None
            assert last is not None, f"{agent.agent_id}: due since {due}, never a shutdown"
            assert not last.released, f"{agent.agent_id}: due since {due}, only an old one"
            held_back = last.terminal or last.past_commit(now)
            if last.aborted and not last.committed:
                raise AssertionError(f"{agent.agent_id}: due since {due}, last one aborted")
            if held_back and cooldown > 0:
                retry_at = max(last.commit_at, last.at + cooldown)
                assert now < retry_at, f"{agent.agent_id}: due, no retry at {now} >= {retry_at}"

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
