"""The whole chain on real parts, time-compressed.

    stand-in (signed Open API over HTTP, simulated stations) --> cloud mosquitto
        --> our integration (real CloudMqttSession) in Home Assistant
        --> HA's MQTT integration --> local mosquitto --> Linux agent (process, dry-run)

Two brokers: the "cloud" one has the stand-in's account/password users, the
local one is anonymous (HA's MQTT integration and the agents). A broker restart
on the local side (scenario 5) then leaves the telemetry alone.

`wire` is a paho client in its own thread on the local broker that records every
command and ack (`power-manager/+/cmd`, `.../ack`) for the whole test: the
assertions are made on what really crossed the broker. Every wait is bounded
and fails with the wire log and the agents' logs in its message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any
import uuid

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.util import slugify
import paho.mqtt.client as paho
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.account import account_unique_id
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_BASE_URL,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    DOMAIN,
    EVENT_POLICY,
)
from custom_components.ecoflow_power.policy.protocol import verify_message
from custom_components.ecoflow_power.sentinel import CONF_SENTINELS
from simulator.devices import SimulatedDevice
from simulator.standin import StandIn
from tests.helpers.mosquitto import MosquittoBroker
from tests.integration.mqtt_helpers import setup_real_mqtt

ROOT = Path(__file__).resolve().parents[2]
LINUX_AGENT = ROOT / "agents" / "linux" / "ecoflow_agent.py"
DRY_RUN_SHUTDOWN_LINE = "DRY-RUN: would run shutdown command"
PREFIX = "power-manager"
HA_BIRTH_TOPIC = "homeassistant/status"  # HA's MQTT birth message

ACCESS_KEY = "e2e-access-key"
SECRET_KEY = "e2e-secret-key"
ACCOUNT = "open-e2e-0001"
CLOUD_PASSWORD = "cloud-pass"

# Time compression. Simulated time runs TIME_SCALE times faster: a drain of
# 1 %/min simulated is 1 %/s real. Policy timers are seconds, not minutes.
TIME_SCALE = 60
PUBLISH_INTERVAL = 0.2
FAST_POLICY: dict[str, Any] = {
    "soc_threshold": 20,
    "debounce_sec": 2,
    "delay_sec": 3,
    "ttl_sec": 60,
    "cooldown_sec": 600,
    "runtime_threshold_min": None,
    "dry_run": False,
}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load our integration in every test of this folder."""


# --------------------------------------------------------------------------
# What crossed the local broker
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WireMessage:
    at: float  # time.time() when the recorder got it
    topic: str
    payload: dict[str, Any]

    @property
    def agent(self) -> str:
        # power-manager/<agent>/<kind>
        return self.topic.split("/")[-2]

    @property
    def kind(self) -> str:
        return self.topic.split("/")[-1]


class Wire:
    """Records every command and ack on the local broker, reconnecting if it restarts."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.messages: list[WireMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"e2e-wire-{uuid.uuid4().hex[:8]}"
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            self.close()
            raise AssertionError("the wire recorder could not subscribe to the local broker")

    def _on_connect(self, client: Any, *args: Any) -> None:
        client.subscribe([(f"{PREFIX}/+/cmd", 1), (f"{PREFIX}/+/ack", 1), (HA_BIRTH_TOPIC, 1)])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = {"_raw": message.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append(WireMessage(time.time(), message.topic, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def all(self) -> list[WireMessage]:
        with self._lock:
            return list(self.messages)

    def births(self, since: float = 0.0) -> list[WireMessage]:
        """HA's MQTT birth messages ("online") recorded since `since`."""
        return [
            m
            for m in self.all()
            if m.topic == HA_BIRTH_TOPIC and m.at >= since and m.payload.get("_raw") == "online"
        ]

    def commands(self, agent: str | None = None, action: str | None = None) -> list[WireMessage]:
        return [
            m
            for m in self.all()
            if m.kind == "cmd"
            and (agent is None or m.agent == agent)
            and (action is None or m.payload.get("action") == action)
        ]

    def acks(self, agent: str | None = None, cid: str | None = None) -> list[dict[str, Any]]:
        return [
            m.payload
            for m in self.all()
            if m.kind == "ack"
            and (agent is None or m.agent == agent)
            and (cid is None or m.payload.get("id") == cid)
        ]

    def statuses(self, agent: str, cid: str) -> list[str]:
        return [ack["status"] for ack in self.acks(agent, cid)]

    def dump(self) -> str:
        start = self.messages[0].at if self.messages else 0.0
        return "\n".join(
            f"  +{m.at - start:6.2f}s {m.topic} {json.dumps(m.payload, sort_keys=True)}"
            for m in self.all()
        )


# --------------------------------------------------------------------------
# The Linux agent as a process
# --------------------------------------------------------------------------


class Agent:
    """agents/linux/ecoflow_agent.py in dry-run, in its own session and folder."""

    def __init__(self, agent_id: str, secret: str, broker: MosquittoBroker, workdir: Path) -> None:
        self.agent_id = agent_id
        self.secret = secret
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "agent.conf"
        self.log_path = workdir / "agent.log"
        self.config_path.write_text(
            "\n".join(
                [
                    "[mqtt]",
                    f"host = {broker.host}",
                    f"port = {broker.port}",
                    "[agent]",
                    f"agent_id = {agent_id}",
                    f"secret = {secret}",
                    "dry_run = true",
                    f"state_dir = {workdir / 'state'}",
                    "skew_sec = 60",
                    "shutdown_sec = 30",
                    'shutdown_command = ["/bin/false", "never-run-in-dry-run"]',
                    "[pre_shutdown:sync]",
                    'command = ["/bin/sync"]',
                    "timeout_sec = 5",
                ]
            )
            + "\n"
        )
        self.config_path.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOFLOW_AGENT_")}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(LINUX_AGENT), "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM, as systemd does; SIGKILL if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def dry_run_shutdowns(self) -> int:
        return self.log().count(DRY_RUN_SHUTDOWN_LINE)


# --------------------------------------------------------------------------
# The whole set-up
# --------------------------------------------------------------------------


@dataclass
class Env:
    hass: HomeAssistant
    standin: StandIn
    cloud: MosquittoBroker
    local: MosquittoBroker
    wire: Wire
    agents: dict[str, Agent]
    entry: MockConfigEntry
    events: list[dict[str, Any]] = field(default_factory=list)
    # (time, entity_id, state) of every state change of our entities
    history: list[tuple[float, str, str]] = field(default_factory=list)

    # -- names ------------------------------------------------------------

    def slug(self, sn: str) -> str:
        return slugify(self.standin.device(sn).device_name)

    def policy_entity(self, sn: str) -> str:
        return f"sensor.{self.slug(sn)}_shutdown_policy"

    def grid_entity(self, sn: str) -> str:
        return f"binary_sensor.{self.slug(sn)}_grid_power"

    def state(self, entity_id: str) -> str | None:
        state = self.hass.states.get(entity_id)
        return None if state is None else state.state

    def policy_state(self, sn: str) -> str | None:
        return self.state(self.policy_entity(sn))

    def last_ack(self, agent_id: str) -> str | None:
        return self.state(f"sensor.agent_{agent_id}_last_acknowledgement")

    def states_seen(self, entity_id: str) -> list[str]:
        return [state for _, eid, state in self.history if eid == entity_id]

    def event_types(self, agent_id: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if agent_id is None or e.get("agent_id") == agent_id]

    # -- waiting ----------------------------------------------------------

    def report(self) -> str:
        parts = [f"wire:\n{self.wire.dump() or '  (nothing)'}"]
        for agent in self.agents.values():
            parts.append(f"agent {agent.agent_id} log:\n{agent.log()}")
        parts.append(
            "policy events: " + ", ".join(f"{e['type']}({e.get('agent_id')})" for e in self.events)
        )
        for sn in self.standin.devices:
            parts.append(f"stand-in {sn}: {self.standin.device(sn).describe()}")
            parts.append(f"{self.policy_entity(sn)}: {self.policy_state(sn)}")
        return "\n".join(parts)

    async def wait(self, predicate: Callable[[], Any], within: float, what: str) -> Any:
        """Poll `predicate` in real time; fail with everything we know after `within`."""
        deadline = time.monotonic() + within
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {within:g} s waiting for {what}\n{self.report()}"
                )
            await asyncio.sleep(0.05)

    async def wait_command(
        self, agent_id: str, action: str, within: float, after: int = 0
    ) -> dict[str, Any]:
        """The first `action` command to `agent_id` (skipping the first `after` ones)."""

        def find() -> dict[str, Any] | None:
            found = self.wire.commands(agent_id, action)
            return found[after].payload if len(found) > after else None

        return await self.wait(find, within, f"a {action} command to {agent_id}")

    async def wait_ack(
        self, agent_id: str, cid: str, status: str, within: float = 15
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next(
                (a for a in self.wire.acks(agent_id, cid) if a.get("status") == status), None
            )

        return await self.wait(find, within, f"ack {status!r} from {agent_id} for {cid}")

    async def wait_entity(self, entity_id: str, state: str, within: float = 15) -> None:
        await self.wait(
            lambda: self.state(entity_id) == state,
            within,
            f"{entity_id} == {state!r} (is {self.state(entity_id)!r})",
        )

    async def wait_dry_run_shutdown(self, agent_id: str, within: float = 10) -> None:
        agent = self.agents[agent_id]
        await self.wait(
            lambda: agent.dry_run_shutdowns() >= 1, within, f"the dry-run shutdown of {agent_id}"
        )

    async def restart_home_assistant(self) -> None:
        """Home Assistant restarts: the entry unloads (state stored) and sets up again."""
        assert await self.hass.config_entries.async_unload(self.entry.entry_id)
        await self.hass.async_block_till_done()
        assert await self.hass.config_entries.async_setup(self.entry.entry_id)
        await self.hass.async_block_till_done()
        assert self.entry.state is ConfigEntryState.LOADED

    def assert_signed(self, agent_id: str, message: dict[str, Any]) -> None:
        secret = self.agents[agent_id].secret
        assert verify_message(message, secret), f"bad signature on {message}"


def agent_secret(agent_id: str) -> str:
    return f"e2e-secret-of-{agent_id}-0123456789"


@pytest.fixture
async def e2e(
    socket_enabled: None, hass: HomeAssistant, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await e2e(devices=..., agents=..., policy=...)` starts everything.

    `agents` maps an agent id to its per-agent options (`soc_threshold`,
    `delay_sec`); every agent is mapped to the first device. `policy` overrides
    FAST_POLICY for that device; `sentinel` ({"entity_id", "kind"}) is that
    device's mains sentinel. `time_scale` 1 runs the station in real time, so
    the watts it reports match how fast it drains (what the energy estimate,
    which runs on Home Assistant's clock, needs to be checked against).
    """
    cleanups: list[Callable[[], Any]] = []

    async def start(
        *,
        devices: Iterable[SimulatedDevice],
        agents: dict[str, dict[str, Any]],
        policy: dict[str, Any] | None = None,
        stale_after_sec: int = 30,
        grid_confirm_sec: int = 1,
        sentinel: dict[str, str] | None = None,
        time_scale: float = TIME_SCALE,
        options: dict[str, Any] | None = None,
    ) -> Env:
        devices = list(devices)
        sn = devices[0].sn
        # Hold every station steady on grid (no charging) until the test moves it.
        for device in devices:
            device.set_scenario(_steady_no_charge())

        cloud = MosquittoBroker(users={ACCOUNT: CLOUD_PASSWORD, "simulator": "sim-pass"})
        cloud.start()
        cleanups.append(cloud.cleanup)
        local = MosquittoBroker()
        local.start()
        cleanups.append(local.cleanup)

        standin = StandIn(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            broker_host=cloud.host,
            broker_port=cloud.port,
            devices=devices,
            account=ACCOUNT,
            mqtt_password=CLOUD_PASSWORD,
            publisher_username="simulator",
            publisher_password="sim-pass",
            time_scale=time_scale,
            publish_interval=PUBLISH_INTERVAL,
        )
        await standin.start()
        cleanups.append(standin.stop)

        wire = Wire(local)
        cleanups.append(wire.close)

        procs: dict[str, Agent] = {}
        for agent_id in agents:
            agent = Agent(agent_id, agent_secret(agent_id), local, tmp_path / agent_id)
            agent.start()
            cleanups.append(agent.stop)
            procs[agent_id] = agent

        mqtt_entry = await setup_real_mqtt(hass, local)
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="EcoFlow (stand-in)",
            unique_id=account_unique_id(ACCESS_KEY),
            data={
                CONF_ACCESS_KEY: ACCESS_KEY,
                CONF_SECRET_KEY: SECRET_KEY,
                CONF_REGION: "eu",
                CONF_BASE_URL: standin.url,
            },
            options={
                CONF_ADD_NEW_DEVICES: True,
                CONF_GRID_CONFIRM: grid_confirm_sec,
                CONF_STALE_AFTER: stale_after_sec,
                CONF_AGENTS: {
                    agent_id: {
                        "device": sn,
                        "secret": agent_secret(agent_id),
                        "soc_threshold": options.get("soc_threshold"),
                        "delay_sec": options.get("delay_sec"),
                    }
                    for agent_id, options in agents.items()
                },
                CONF_POLICY: {sn: FAST_POLICY | (policy or {})},
                CONF_SENTINELS: {sn: sentinel} if sentinel else {},
                **(options or {}),
            },
        )
        entry.add_to_hass(hass)

        async def unload() -> None:
            if entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(entry.entry_id)
            if mqtt_entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(mqtt_entry.entry_id)
            await hass.async_block_till_done()

        # Unloaded before the stand-in and the brokers go away (cleanups run reversed).
        cleanups.append(unload)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED

        env = Env(hass, standin, cloud, local, wire, procs, entry)
        hass.bus.async_listen(EVENT_POLICY, lambda event: env.events.append(dict(event.data)))

        def record(event: Any) -> None:
            new = event.data.get("new_state")
            if new is not None and (
                new.entity_id.startswith(("sensor.agent_", "binary_sensor.agent_"))
                or new.entity_id.endswith(("_shutdown_policy", "_grid_power"))
            ):
                env.history.append((time.time(), new.entity_id, new.state))

        hass.bus.async_listen("state_changed", record)

        # Ready means: HA's MQTT subscriptions reached the broker (the agents'
        # retained online status arrived), and every station is seen on grid.
        for agent_id in agents:
            await env.wait_entity(f"binary_sensor.agent_{agent_id}_online", "on", within=20)
        for device in devices:
            await env.wait_entity(env.grid_entity(device.sn), "on", within=20)
            await env.wait_entity(env.policy_entity(device.sn), "normal", within=10)
        return env

    try:
        yield start
    finally:
        errors: list[BaseException] = []
        for cleanup in reversed(cleanups):
            try:
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as err:  # clean up everything, report later
                errors.append(err)
        if errors:
            raise errors[0]


def _steady_no_charge() -> Any:
    from simulator.scenarios import Steady

    return Steady(charge_pct_per_min=0.0)
