#!/usr/bin/env python3
"""Bring a fresh Home Assistant to the demo state of ``scripts/develop``, through its real APIs.

Every step checks first and skips what is already done, so running this
against an HA that was bootstrapped before costs a few REST calls:

1. onboarding (user ``dev``/``dev``, core config, analytics, integration);
2. a long-lived access token for scripts and ``curl`` (``config/.dev/ha-token``);
3. the MQTT integration pointing at the demo broker;
4. EcoFlow Power Management pointing at the cloud stand-in (``advanced.base_url``);
5. a demo-friendly shutdown policy on the simulated station (options flow);
6. one host agent mapped to it; the secret the flow shows once goes into the
   Linux agent's config file (``config/.dev/agent.json``, mode 0600);
7. a "UPS" dashboard in the sidebar: the example view of docs/dashboard.md
   for the simulated station and the agent.

No ``.storage`` file is ever written by hand.

    .venv/bin/python scripts/dev_bootstrap.py --ha-url http://localhost:8123 \\
        --state-dir config/.dev --mqtt-port 1883 --sim-url http://127.0.0.1:8089
"""

# Small local files (token, agent config) are read and written inline on purpose.
# ruff: noqa: ASYNC240

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
import contextlib
import itertools
import json
import os
from pathlib import Path
import re
import sys
import time
from typing import Any

import aiohttp
import yaml

USERNAME = "dev"
PASSWORD = "dev"
DOMAIN = "ecoflow_power"

# What the demo wants on the simulated station: a short outage from a full
# battery reaches the threshold within a couple of minutes at the default
# time scale, and there is time to restore the grid during the countdown.
DEMO_POLICY: dict[str, Any] = {
    "soc_threshold": 75,
    "runtime_threshold_min": 0,
    "debounce_sec": 15,
    "delay_sec": 60,
    "ttl_sec": 300,
    "cooldown_sec": 180,
    "dry_run": False,
}


ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DOC = ROOT / "docs" / "dashboard.md"
DASHBOARD_URL = "ecoflow-ups"  # a storage dashboard's url_path needs a hyphen
DASHBOARD_TITLE = "UPS"
DASHBOARD_ICON = "mdi:battery-charging-high"
DEMO_HISTORY_HOURS = 0.25


class BootstrapError(Exception):
    """Something the user has to look at; the message says what."""


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


# ---------------------------------------------------------------------------
# Pure helpers (tested in tests/test_dev_bootstrap.py)
# ---------------------------------------------------------------------------


def fill_form(data_schema: list[dict[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """The input for a data-entry form: ``values`` where given, else the form's defaults.

    ``data_schema`` is the serialized schema HA returns with a form. Sections
    (``type: expandable``) are filled recursively; required sections are always
    sent (HA rejects a form without them), optional fields without a value or
    default are left out.
    """
    result: dict[str, Any] = {}
    for field in data_schema:
        name = field["name"]
        if field.get("type") == "expandable":
            nested = values.get(name) or {}
            section = fill_form(field.get("schema", []), nested)
            if section or field.get("required") or name in values:
                result[name] = section
        elif name in values:
            result[name] = values[name]
        elif "default" in field:
            result[name] = field["default"]
        elif field.get("required") and (
            field.get("type") == "boolean" or "boolean" in (field.get("selector") or {})
        ):
            result[name] = False  # what the frontend sends for an untouched toggle
    return result


def form_defaults(data_schema: list[dict[str, Any]]) -> dict[str, Any]:
    """Current values of a form: its defaults, and suggested values when no default."""
    result: dict[str, Any] = {}
    for field in data_schema:
        if field.get("type") == "expandable":
            result[field["name"]] = form_defaults(field.get("schema", []))
        elif "default" in field:
            result[field["name"]] = field["default"]
        elif "suggested_value" in (field.get("description") or {}):
            result[field["name"]] = field["description"]["suggested_value"]
    return result


def select_values(data_schema: list[dict[str, Any]], name: str) -> list[str]:
    """The option values of the select selector called ``name``."""
    for field in data_schema:
        if field.get("name") != name:
            continue
        options = (field.get("selector") or {}).get("select", {}).get("options", [])
        return [o["value"] if isinstance(o, dict) else str(o) for o in options]
    return []


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def settings_differ(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the ``wanted`` settings whose current value is something else."""
    return [key for key, value in wanted.items() if not _same(current.get(key), value)]


def agent_config(
    *,
    agent_id: str,
    secret: str,
    mqtt_host: str,
    mqtt_port: int,
    prefix: str,
    state_dir: str,
) -> dict[str, Any]:
    """The Linux agent's JSON config for the demo: dry run, with one harmless pre-shutdown step."""
    return {
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
        "agent_id": agent_id,
        "secret": secret,
        "prefix": prefix,
        "dry_run": True,
        "state_dir": state_dir,
        "shutdown_sec": 30,
        "shutdown_command": ["systemctl", "poweroff"],
        "pre_shutdown": [
            {"name": "flush disks", "command": ["sync"], "timeout_sec": 30},
        ],
        "log_level": "INFO",
    }


def dashboard_view(
    doc_text: str, *, station_prefix: str, agent_entity_prefix: str, agent_id: str
) -> dict[str, Any]:
    """The example view of docs/dashboard.md, for one station and one agent.

    The doc is written for a station called "Rack" (``sensor.rack_...``) and an
    agent ``nas`` (``binary_sensor.agent_nas_...``); ``station_prefix`` and
    ``agent_entity_prefix`` are the object ids in front of the entity names
    (``river_3_simulated``, ``agent_demo_host``).
    """
    blocks = re.findall(r"```yaml\n(.*?)```", doc_text, flags=re.DOTALL)
    if len(blocks) != 1:
        raise BootstrapError(f"{DASHBOARD_DOC} should hold exactly one yaml block")
    text = re.sub(r"\.agent_nas_", f".{agent_entity_prefix}_", blocks[0])
    text = re.sub(r"\.rack_", f".{station_prefix}_", text)
    view = yaml.safe_load(text)
    return _rename_agent(view, agent_id)


def with_history_hours(view: dict[str, Any], hours: float) -> dict[str, Any]:
    """The view with its history graphs over ``hours`` (a demo has minutes of history)."""
    if hours < 1:
        title = f"Last {round(hours * 60)} minutes"
    else:
        title = "Last hour" if hours == 1 else f"Last {hours:g} hours"
    cards = [
        {**card, "hours_to_show": hours, "title": title}
        if card.get("type") == "history-graph"
        else card
        for card in view.get("cards", [])
    ]
    return {**view, "cards": cards}


def _rename_agent(node: Any, agent_id: str) -> Any:
    """The agent's own id where the doc says "nas": the ping target, labels, names."""
    if isinstance(node, dict):
        return {key: _rename_agent(value, agent_id) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename_agent(item, agent_id) for item in node]
    if isinstance(node, str):
        return re.sub(r"(?<![\w.-])nas(?![\w-])", agent_id, node)
    return node


def entity_prefix(entity_id: str, name_suffix: str) -> str | None:
    """``sensor.river_3_simulated_battery_weakest_pack`` -> ``river_3_simulated``."""
    object_id = entity_id.split(".", 1)[-1]
    if not object_id.endswith("_" + name_suffix):
        return None
    return object_id[: -len(name_suffix) - 1]


def write_private_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON readable by the owner only (created 0600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError, ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------
# Home Assistant over HTTP
# ---------------------------------------------------------------------------


class HomeAssistant:
    def __init__(self, session: aiohttp.ClientSession, url: str, ha_pid: int | None) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.client_id = self.url + "/"
        self.token: str | None = None
        self.ha_pid = ha_pid

    def check_alive(self) -> None:
        if self.ha_pid is None:
            return
        try:
            os.kill(self.ha_pid, 0)
        except ProcessLookupError:
            raise BootstrapError(
                "Home Assistant exited; see config/home-assistant.log and config/.dev/logs/hass.log"
            ) from None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        form: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        headers = {}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(
            method,
            self.url + path,
            json=body if form is None else None,
            data=form,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response:
            text = await response.text()
            if response.status not in ok:
                raise BootstrapError(f"{method} {path}: HTTP {response.status}: {text[:500]}")
            try:
                return json.loads(text) if text else None
            except ValueError:
                return text

    async def wait_http(self, wait_sec: float) -> list[dict[str, Any]] | None:
        """Wait until HA answers; return the onboarding status (None: onboarding finished)."""
        deadline = time.monotonic() + wait_sec
        next_note = time.monotonic() + 30
        started = time.monotonic()
        while True:
            self.check_alive()
            try:
                async with self.session.get(self.url + "/api/onboarding") as response:
                    if response.status == 200:
                        return await response.json()
                    if response.status == 404:
                        # Once onboarding is complete HA no longer serves its views.
                        return None
            except aiohttp.ClientError, TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise BootstrapError(
                    f"Home Assistant did not answer at {self.url} in {wait_sec:.0f} s"
                )
            if time.monotonic() > next_note:
                say(
                    f"still waiting for Home Assistant ({time.monotonic() - started:.0f} s; the "
                    "first start installs packages, see config/.dev/logs/hass.log)"
                )
                next_note = time.monotonic() + 30
            await asyncio.sleep(2)

    async def wait_running(self, wait_sec: float) -> None:
        deadline = time.monotonic() + wait_sec
        while True:
            self.check_alive()
            config = await self.call("GET", "/api/config")
            if config.get("state") == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise BootstrapError("Home Assistant did not reach RUNNING")
            await asyncio.sleep(2)

    async def token_from_code(self, code: str) -> str:
        tokens = await self.call(
            "POST",
            "/auth/token",
            auth=False,
            form={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        )
        return tokens["access_token"]

    async def login(self) -> str:
        """The login flow the web UI uses; returns an access token."""
        flow = await self.call(
            "POST",
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": self.client_id,
            },
            auth=False,
        )
        result = await self.call(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"username": USERNAME, "password": PASSWORD, "client_id": self.client_id},
            auth=False,
        )
        if result.get("type") != "create_entry":
            raise BootstrapError(
                f"cannot sign in as {USERNAME}/{PASSWORD} ({result.get('errors')}); "
                "reset the demo (see docs/demo.md)"
            )
        return await self.token_from_code(result["result"])

    async def token_works(self, token: str) -> bool:
        async with self.session.get(
            self.url + "/api/", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            return response.status == 200

    async def long_lived_token(self) -> str:
        async with self.session.ws_connect(self.url + "/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise BootstrapError(f"websocket auth failed: {answer}")
            await ws.send_json(
                {
                    "id": 1,
                    "type": "auth/long_lived_access_token",
                    "client_name": f"scripts/develop {time.strftime('%Y-%m-%d %H:%M:%S')}",
                    "lifespan": 3650,
                }
            )
            answer = await ws.receive_json()
            if not answer.get("success"):
                raise BootstrapError(f"cannot create a long-lived token: {answer}")
            return answer["result"]

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[Callable[..., Awaitable[dict[str, Any]]]]:
        """One authenticated websocket; yields ``call(type, **fields)`` -> the result message."""
        async with self.session.ws_connect(self.url + "/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise BootstrapError(f"websocket auth failed: {answer}")
            numbers = itertools.count(1)

            async def call(kind: str, **fields: Any) -> dict[str, Any]:
                number = next(numbers)
                await ws.send_json({"id": number, "type": kind, **fields})
                while True:
                    message = await ws.receive_json(timeout=60)
                    if message.get("id") == number and message.get("type") == "result":
                        return message

            yield call

    # -- config entries and flows ---------------------------------------------

    async def entries(self, domain: str) -> list[dict[str, Any]]:
        return await self.call("GET", f"/api/config/config_entries/entry?domain={domain}")

    async def flow_start(self, handler: str) -> dict[str, Any]:
        return await self.call(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": handler, "show_advanced_options": True},
        )

    async def flow_step(self, flow_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("POST", f"/api/config/config_entries/flow/{flow_id}", dict(data))

    async def options_start(self, entry_id: str) -> dict[str, Any]:
        return await self.call(
            "POST", "/api/config/config_entries/options/flow", {"handler": entry_id}
        )

    async def options_step(self, flow_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call(
            "POST", f"/api/config/config_entries/options/flow/{flow_id}", dict(data)
        )

    async def options_abandon(self, flow_id: str) -> None:
        await self.call("DELETE", f"/api/config/config_entries/options/flow/{flow_id}")

    async def wait_entry_loaded(self, domain: str, wait_sec: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + wait_sec
        state = "?"
        while time.monotonic() < deadline:
            self.check_alive()
            entries = await self.entries(domain)
            if entries:
                state = entries[0].get("state", "?")
                if state == "loaded":
                    return entries[0]
            await asyncio.sleep(1)
        raise BootstrapError(
            f"the {domain} entry did not load (state {state}); see config/home-assistant.log"
        )


def expect(result: dict[str, Any], kind: str, step: str | None = None) -> dict[str, Any]:
    """Fail clearly when a flow answers something else than expected."""
    if result.get("type") != kind or (step is not None and result.get("step_id") != step):
        raise BootstrapError(
            f"expected {kind} {step or ''}, got {result.get('type')} "
            f"{result.get('step_id') or result.get('reason') or ''} "
            f"errors={result.get('errors')}"
        )
    return result


# ---------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------


async def onboard(ha: HomeAssistant, status: list[dict[str, Any]] | None, token_file: Path) -> bool:
    """Finish onboarding and get a token; True when this run did the core_config step."""
    if status is None:
        done = {"user", "core_config", "analytics", "integration"}
    else:
        done = {item["step"] for item in status if item.get("done")}
    if "user" not in done:
        say(f"onboarding: creating user {USERNAME}")
        answer = await ha.call(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": ha.client_id,
                "name": "Dev",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
            auth=False,
        )
        ha.token = await ha.token_from_code(answer["auth_code"])
    else:
        stored = token_file.read_text().strip() if token_file.exists() else ""
        if stored and await ha.token_works(stored):
            ha.token = stored
        else:
            ha.token = await ha.login()
    for step, body in (
        ("core_config", None),
        ("analytics", None),
        ("integration", {"client_id": ha.client_id, "redirect_uri": ha.client_id}),
    ):
        if step not in done:
            say(f"onboarding: {step}")
            await ha.call("POST", f"/api/onboarding/{step}", body)
    if not token_file.exists() or token_file.read_text().strip() != ha.token:
        ha.token = await ha.long_lived_token()
        write_private_text(token_file, ha.token + "\n")
        say(f"long-lived access token saved in {token_file}")
    return "core_config" not in done


def write_private_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


async def drop_offline_extras(ha: HomeAssistant) -> None:
    """Remove what onboarding added that cannot work without the internet.

    Finishing onboarding's core_config step adds Radio Browser, which needs the
    internet; on a closed network it stays "Failed to set up" and puzzles a
    newcomer. Only an entry that failed is removed.
    """
    entries: list[dict[str, Any]] = []
    for _ in range(15):
        entries = await ha.entries("radio_browser")
        if entries and all(
            e.get("state") not in ("not_loaded", "setup_in_progress") for e in entries
        ):
            break
        await asyncio.sleep(1)
    for entry in entries:
        if entry.get("state") in ("setup_retry", "setup_error"):
            await ha.call("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")
            say(f"removed {entry['title']} (added by onboarding, needs the internet)")


async def ensure_mqtt(ha: HomeAssistant, host: str, port: int) -> None:
    entries = await ha.entries("mqtt")
    if entries:
        say(f"MQTT integration already set up ({entries[0]['title']})")
        return
    say(f"adding the MQTT integration (broker {host}:{port})")
    form = expect(await ha.flow_start("mqtt"), "form", "broker")
    result = await ha.flow_step(
        form["flow_id"],
        fill_form(
            form["data_schema"],
            {
                "broker": host,
                "port": port,
                "other_settings": {"set_client_cert": False, "set_ca_cert": "off"},
            },
        ),
    )
    expect(result, "create_entry")


async def ensure_ecoflow(
    ha: HomeAssistant, base_url: str, access_key: str, secret_key: str
) -> dict[str, Any]:
    entries = await ha.entries(DOMAIN)
    if not entries:
        say(f"adding EcoFlow Power Management (stand-in at {base_url})")
        form = expect(await ha.flow_start(DOMAIN), "form", "user")
        values = {
            "access_key": access_key,
            "secret_key": secret_key,
            "region": "eu",
            "advanced": {"base_url": base_url},
        }
        result = await ha.flow_step(form["flow_id"], fill_form(form["data_schema"], values))
        devices = expect(result, "form", "devices")
        serials = select_values(devices["data_schema"], "devices")
        result = await ha.flow_step(
            devices["flow_id"],
            fill_form(devices["data_schema"], {"devices": serials, "add_new_devices": True}),
        )
        expect(result, "create_entry")
        say(f"EcoFlow entry created for {', '.join(serials)}")
    else:
        say(f"EcoFlow Power Management already set up ({entries[0]['title']})")
    return await ha.wait_entry_loaded(DOMAIN)


async def ensure_policy(ha: HomeAssistant, entry_id: str) -> tuple[str, str]:
    """Apply DEMO_POLICY when it differs; return (station serial, topic prefix)."""
    menu = expect(await ha.options_start(entry_id), "menu")
    if "policy" not in menu.get("menu_options", []):
        await ha.options_abandon(menu["flow_id"])
        raise BootstrapError("the options menu offers no policy: no station is loaded")
    result = await ha.options_step(menu["flow_id"], {"next_step_id": "policy"})
    if result.get("step_id") == "policy":
        stations = select_values(result["data_schema"], "station")
        result = await ha.options_step(result["flow_id"], {"station": stations[0]})
    form = expect(result, "form", "policy_settings")
    station = form.get("description_placeholders", {}).get("station", "")
    serial = station.rsplit("(", 1)[-1].rstrip(")") if "(" in station else station
    current = form_defaults(form["data_schema"])
    prefix = str(current.get("topic_prefix") or "power-manager")
    changed = settings_differ(current, DEMO_POLICY)
    if not changed:
        await ha.options_abandon(form["flow_id"])
        say(f"policy of {station} already set for the demo")
        return serial, prefix
    result = await ha.options_step(
        form["flow_id"], fill_form(form["data_schema"], {**DEMO_POLICY, "topic_prefix": prefix})
    )
    expect(result, "create_entry")
    say(
        f"policy of {station}: threshold {DEMO_POLICY['soc_threshold']} %, debounce "
        f"{DEMO_POLICY['debounce_sec']} s, delay {DEMO_POLICY['delay_sec']} s, ttl "
        f"{DEMO_POLICY['ttl_sec']} s, cooldown {DEMO_POLICY['cooldown_sec']} s"
    )
    await asyncio.sleep(1)  # the options flow reloads the entry
    await ha.wait_entry_loaded(DOMAIN)
    return serial, prefix


async def configured_agents(ha: HomeAssistant, entry_id: str) -> list[str]:
    menu = expect(await ha.options_start(entry_id), "menu")
    if "edit_agent" not in menu.get("menu_options", []):
        await ha.options_abandon(menu["flow_id"])
        return []
    form = await ha.options_step(menu["flow_id"], {"next_step_id": "edit_agent"})
    agents = select_values(form.get("data_schema", []), "agent_id")
    await ha.options_abandon(form["flow_id"])
    return agents


async def ensure_agent(
    ha: HomeAssistant,
    entry_id: str,
    *,
    agent_id: str,
    station: str,
    agent_file: Path,
    agent_state_dir: Path,
    mqtt_host: str,
    mqtt_port: int,
    prefix: str,
) -> None:
    existing = read_json(agent_file)
    in_ha = agent_id in await configured_agents(ha, entry_id)
    secret = ""
    if in_ha and existing and existing.get("secret") and existing.get("agent_id") == agent_id:
        if existing.get("mqtt_port") == mqtt_port and existing.get("prefix") == prefix:
            say(f"agent {agent_id} already set up ({agent_file})")
            return
        secret = existing["secret"]
        say(f"agent {agent_id}: updating broker/prefix in {agent_file}")
    elif in_ha:
        # The secret was shown once and is lost with the agent file: rotate it.
        say(f"agent {agent_id} exists in HA but {agent_file} is missing: issuing a new secret")
        menu = expect(await ha.options_start(entry_id), "menu")
        form = await ha.options_step(menu["flow_id"], {"next_step_id": "edit_agent"})
        form = await ha.options_step(form["flow_id"], {"agent_id": agent_id})
        form = expect(form, "form", "agent_settings")
        values = {**form_defaults(form["data_schema"]), "new_secret": True}
        values = {k: v for k, v in values.items() if v is not None}
        shown = expect(await ha.options_step(form["flow_id"], values), "form", "agent_secret")
        secret = shown["description_placeholders"]["secret"]
        expect(await ha.options_step(shown["flow_id"], {}), "create_entry")
    else:
        say(f"adding host agent {agent_id} on station {station}")
        menu = expect(await ha.options_start(entry_id), "menu")
        form = expect(
            await ha.options_step(menu["flow_id"], {"next_step_id": "add_agent"}),
            "form",
            "add_agent",
        )
        shown = expect(
            await ha.options_step(form["flow_id"], {"agent_id": agent_id, "station": station}),
            "form",
            "agent_secret",
        )
        secret = shown["description_placeholders"]["secret"]
        expect(await ha.options_step(shown["flow_id"], {}), "create_entry")
    agent_state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(agent_state_dir, 0o700)
    write_private_json(
        agent_file,
        agent_config(
            agent_id=agent_id,
            secret=secret,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            prefix=prefix,
            state_dir=str(agent_state_dir),
        ),
    )
    say(f"agent config written to {agent_file} (mode 0600, dry run)")
    await asyncio.sleep(1)
    await ha.wait_entry_loaded(DOMAIN)


async def demo_entity_prefixes(
    call: Callable[..., Awaitable[dict[str, Any]]],
    *,
    station: str,
    agent_id: str,
    wait_sec: float = 60,
) -> tuple[str, str]:
    """(station prefix, agent prefix) of the demo's entity ids, from the entity registry."""
    deadline = time.monotonic() + wait_sec
    while True:
        answer = await call("config/entity_registry/list")
        entries = [e for e in answer.get("result") or [] if e.get("platform") == DOMAIN]
        station_prefix = agent_prefix = None
        for entry in entries:
            unique_id, entity_id = entry.get("unique_id", ""), entry.get("entity_id", "")
            if unique_id == f"{station}_battery_weakest_pack":
                station_prefix = entity_prefix(entity_id, "battery_weakest_pack")
            elif unique_id.endswith(f"{agent_id}_online") and entity_id.startswith("binary_"):
                agent_prefix = entity_prefix(entity_id, "online")
        if station_prefix and agent_prefix:
            return station_prefix, agent_prefix
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"no entities of station {station} and agent {agent_id} in the entity registry"
            )
        await asyncio.sleep(1)


async def ensure_dashboard(ha: HomeAssistant, *, station: str, agent_id: str) -> str:
    """The docs/dashboard.md view as a "UPS" dashboard in the sidebar; returns its URL."""
    async with ha.websocket() as call:
        station_prefix, agent_prefix = await demo_entity_prefixes(
            call, station=station, agent_id=agent_id
        )
        view = dashboard_view(
            DASHBOARD_DOC.read_text(encoding="utf-8"),
            station_prefix=station_prefix,
            agent_entity_prefix=agent_prefix,
            agent_id=agent_id,
        )
        # The doc's graph spans 24 h; a demo outage lasts minutes.
        view = with_history_hours(view, DEMO_HISTORY_HOURS)
        wanted = {"title": DASHBOARD_TITLE, "views": [view]}
        dashboards = (await call("lovelace/dashboards/list")).get("result") or []
        if not any(d.get("url_path") == DASHBOARD_URL for d in dashboards):
            created = await call(
                "lovelace/dashboards/create",
                url_path=DASHBOARD_URL,
                title=DASHBOARD_TITLE,
                icon=DASHBOARD_ICON,
                show_in_sidebar=True,
                require_admin=False,
            )
            if not created.get("success"):
                raise BootstrapError(f"cannot create the dashboard: {created.get('error')}")
        current = await call("lovelace/config", url_path=DASHBOARD_URL)
        url = f"{ha.url}/{DASHBOARD_URL}/{view.get('path', '0')}"
        if current.get("success") and current.get("result") == wanted:
            say(f"dashboard {DASHBOARD_TITLE} already set up ({url})")
            return url
        saved = await call("lovelace/config/save", url_path=DASHBOARD_URL, config=wanted)
        if not saved.get("success"):
            raise BootstrapError(f"cannot save the dashboard: {saved.get('error')}")
        say(f"dashboard {DASHBOARD_TITLE} (docs/dashboard.md) at {url}")
        return url


async def run(args: argparse.Namespace) -> None:
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = state_dir / "ha-token"
    async with aiohttp.ClientSession() as session:
        ha = HomeAssistant(session, args.ha_url, args.ha_pid)
        say(f"waiting for Home Assistant at {ha.url}")
        started = time.monotonic()
        status = await ha.wait_http(args.timeout)
        say(f"Home Assistant answers ({time.monotonic() - started:.0f} s)")
        onboarded_now = await onboard(ha, status, token_file)
        await ha.wait_running(args.timeout)
        await ensure_mqtt(ha, args.mqtt_host, args.mqtt_port)
        entry = await ensure_ecoflow(ha, args.sim_url, args.access_key, args.secret_key)
        station, prefix = await ensure_policy(ha, entry["entry_id"])
        await ensure_agent(
            ha,
            entry["entry_id"],
            agent_id=args.agent_id,
            station=station,
            agent_file=state_dir / "agent.json",
            agent_state_dir=state_dir / "agent-state",
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            prefix=prefix,
        )
        await ensure_dashboard(ha, station=station, agent_id=args.agent_id)
        if onboarded_now:
            await drop_offline_extras(ha)
        say(f"done in {time.monotonic() - started:.0f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ha-url", default="http://localhost:8123")
    parser.add_argument("--ha-pid", type=int, help="give up when this process exits")
    parser.add_argument("--state-dir", default="config/.dev")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--sim-url", default="http://127.0.0.1:8089")
    parser.add_argument("--access-key", default="sim-access-key-0001")
    parser.add_argument("--secret-key", default="sim-secret-key-0001")
    parser.add_argument("--agent-id", default="demo-host")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for HA")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except BootstrapError as err:
        print(f"[bootstrap] error: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
