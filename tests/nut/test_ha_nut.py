"""The NUT server inside Home Assistant: options, life cycle, sensor, events, diagnostics,
and Home Assistant's own `nut` integration (aionut) reading our station."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.const import EVENT_POLICY
from custom_components.ecoflow_power.diagnostics import async_get_config_entry_diagnostics
from custom_components.ecoflow_power.nut.config import CONF_NUT
from tests.integration.conftest import DELTA2_SN, RIVER3_SN, make_entry
from tests.integration.helpers import capture_json, feed

PASSWORD = "Nt7qRk2vLw9x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nut_options(port: int, **station: Any) -> dict[str, Any]:
    return {
        CONF_NUT: {
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "users": {"monuser": {"password": PASSWORD}},
            "stations": {
                DELTA2_SN: {"name": "rack", "aliases": ["ups"], **station},
                RIVER3_SN: {"name": "study", "aliases": []},
            },
        }
    }


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


class Line:
    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> Line:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def ask(self, line: str) -> str:
        self.writer.write(f"{line}\n".encode())
        await self.writer.drain()
        return (await asyncio.wait_for(self.reader.readline(), 5)).decode().rstrip("\n")


async def until(check: Any) -> None:
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - the server updates HA from its own tasks
            await asyncio.sleep(0.02)


async def test_the_server_follows_the_entry_and_ha_nut_integration_reads_our_station(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    port = free_port()
    entry = make_entry(**nut_options(port))
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    await feed(
        hass, session, DELTA2_SN, capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    )
    manager = entry.runtime_data.nut
    assert manager is not None
    assert manager.server is not None
    assert manager.server.running

    # Home Assistant's own NUT integration, as a user would add it.
    nut_entry = MockConfigEntry(
        domain="nut",
        data={
            "host": "127.0.0.1",
            "port": port,
            "alias": "rack",
            "username": "monuser",
            "password": PASSWORD,
        },
    )
    nut_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(nut_entry.entry_id)
    await hass.async_block_till_done()
    assert nut_entry.state is ConfigEntryState.LOADED
    registry = er.async_get(hass)
    states = {
        e.unique_id.rsplit("_", 1)[-1]: hass.states.get(e.entity_id).state
        for e in er.async_entries_for_config_entry(registry, nut_entry.entry_id)
        if hass.states.get(e.entity_id) is not None
    }
    # Source: lcdShowSoc 87 (the weakest pack of a single-pack DELTA 2 is the pack).
    charge = states["battery.charge"]
    status = states["ups.status"]
    variables = manager.backend.snapshot("rack").variables  # type: ignore[union-attr]
    assert variables is not None
    state = entry.runtime_data.telemetry.data[DELTA2_SN]
    assert float(charge) == float(variables["battery.charge"]) == state.soc_min
    assert status == variables["ups.status"]
    assert status.split()[0] == "OL"
    assert await hass.config_entries.async_unload(nut_entry.entry_id)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not manager.server.running


async def test_clients_logged_in_show_on_the_station_and_a_drop_on_battery_fires_an_event(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    port = free_port()
    entry = make_entry(**nut_options(port), grid_confirm_sec=0)
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    quotas = capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    await feed(hass, session, DELTA2_SN, quotas)
    events: list[Event] = []
    hass.bus.async_listen(EVENT_POLICY, events.append)
    sensor = "sensor.rack_nut_clients"
    assert hass.states.get(sensor).state == "0"
    async with Line(port) as nas:
        assert await nas.ask("USERNAME monuser") == "OK"
        assert await nas.ask(f"PASSWORD {PASSWORD}") == "OK"
        assert await nas.ask("LOGIN ups") == "OK"
        await until(lambda: hass.states.get(sensor).state == "1")
        assert hass.states.get(sensor).attributes["clients"] == ["monuser@127.0.0.1 (ups)"]
        assert await nas.ask("LOGOUT") == "OK Goodbye"
    await until(lambda: hass.states.get(sensor).state == "0")
    assert [e for e in events if e.data["type"] == "nut_client_left"] == []  # on grid

    # The same capture with the AC input gone: the grid is lost.
    quota_map = dict(quotas["data"]["quotaMap"])
    for key in ("inv.acInVol", "inv.acInAmp", "inv.inputWatts", "pd.chgPowerAC", "inv.acInFreq"):
        quota_map[key] = 0
    on_battery = {**quotas, "data": {**quotas["data"], "quotaMap": quota_map}}
    await feed(hass, session, DELTA2_SN, on_battery)
    snapshot = entry.runtime_data.nut.backend.snapshot("rack")  # type: ignore[union-attr]
    assert snapshot is not None
    assert snapshot.variables is not None
    status = snapshot.variables["ups.status"]
    assert status.split()[0] == "OB"
    async with Line(port) as nas:
        await nas.ask("USERNAME monuser")
        await nas.ask(f"PASSWORD {PASSWORD}")
        assert await nas.ask("LOGIN rack") == "OK"
    await until(lambda: any(e.data["type"] == "nut_client_left" for e in events))
    [left] = [e for e in events if e.data["type"] == "nut_client_left"]
    assert left.data["reason"] == "dropped"
    assert left.data["ups"] == "rack"
    assert left.data["device_id"] == entry.runtime_data.telemetry.device_ids[DELTA2_SN]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_show_the_server_without_passwords(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**nut_options(free_port()))
    await _setup(hass, entry)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    nut = diagnostics["nut"]
    assert nut["running"] is True
    assert nut["users"] == ["monuser"]
    [rack] = [v for v in nut["stations"].values() if v["name"] == "rack"]
    assert rack["aliases"] == ["ups"]
    assert rack["agent_id"] == "nut-rack"
    assert DELTA2_SN not in repr(diagnostics)  # serials masked like everywhere else
    assert PASSWORD not in repr(diagnostics)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_port_in_use_raises_a_repair_and_ha_keeps_running(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        entry = make_entry(**nut_options(port))
        await _setup(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        from homeassistant.helpers import issue_registry as ir

        issues = [i for (domain, i) in ir.async_get(hass).issues if domain == "ecoflow_power"]
        assert any(i.startswith("nut_port_unavailable") for i in issues)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_nut_consumer_is_a_local_binding_of_the_station_engine(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**nut_options(free_port(), soc_threshold=35.0, delay_sec=30))
    await _setup(hass, entry)
    engine = entry.runtime_data.policy.engines[DELTA2_SN]  # type: ignore[union-attr]
    binding = engine.agents["nut-rack"]
    assert binding.local
    assert binding.soc_threshold == 35.0
    assert binding.delay_sec == 30
    assert "nut-study" in entry.runtime_data.policy.engines[RIVER3_SN].agents  # type: ignore[union-attr]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_flow_users_presets_and_station_names(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    await _setup(hass, entry)

    async def step(name: str) -> dict[str, Any]:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        assert "nut" in result["menu_options"]
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "nut"}
        )
        assert result["type"] is FlowResultType.MENU
        return await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": name}
        )

    # Enabling without a user is refused.
    result = await step("nut_server")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"enabled": True, "host": "127.0.0.1", "port": free_port()}
    )
    assert result["errors"] == {"base": "nut_no_users"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"enabled": False, "host": "nas.local", "port": 3493}
    )
    assert result["errors"] == {"host": "invalid_host"}
    hass.config_entries.options.async_abort(result["flow_id"])

    # A generated password, shown once.
    result = await step("nut_add_user")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"username": "proxmox", "preset": "generated"}
    )
    assert result["step_id"] == "nut_user_created"
    password = result["description_placeholders"]["password"]
    assert len(password) >= 20
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_NUT]["users"]["proxmox"]["password"] == password

    # A public preset needs the warning accepted.
    result = await step("nut_add_user")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"preset": "synology"}
    )
    assert result["errors"] == {"accept_public_password": "public_password_not_accepted"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"preset": "synology", "accept_public_password": True}
    )
    assert result["description_placeholders"]["username"] == "monuser"
    assert result["description_placeholders"]["password"] == "secret"
    await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()

    # Enable: every station gets a UPS name.
    port = free_port()
    result = await step("nut_server")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"enabled": True, "host": "127.0.0.1", "port": port}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    stations = entry.options[CONF_NUT]["stations"]
    assert {stations[DELTA2_SN]["name"], stations[RIVER3_SN]["name"]} == {"delta2", "river3"}
    assert entry.runtime_data.nut is not None
    assert entry.runtime_data.nut.server.running

    # Station names: valid, unique, aliases owned by one station.
    result = await step("nut_station")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"name": "bad name", "aliases": []}
    )
    assert result["errors"] == {"name": "invalid_ups_name"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"name": "river3", "aliases": []}
    )
    assert result["errors"] == {"name": "ups_name_taken"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"name": "rack", "aliases": ["ups"], "soc_threshold": 40, "delay_sec": 90},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    result = await step("nut_station")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": RIVER3_SN}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"name": "study", "aliases": ["ups"]}
    )
    assert result["errors"] == {"aliases": "alias_taken"}
    hass.config_entries.options.async_abort(result["flow_id"])
    engine = entry.runtime_data.policy.engines[DELTA2_SN]  # type: ignore[union-attr]
    assert engine.agents["nut-rack"].soc_threshold == 40

    # A port another program holds is refused in the form.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = await step("nut_server")
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {"enabled": True, "host": "127.0.0.1", "port": taken.getsockname()[1]},
        )
        assert result["errors"] == {"port": "port_in_use"}
        hass.config_entries.options.async_abort(result["flow_id"])

    result = await step("nut_remove_user")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"users": ["monuser"]}
    )
    await hass.async_block_till_done()
    assert list(entry.options[CONF_NUT]["users"]) == ["proxmox"]
    assert await hass.config_entries.async_unload(entry.entry_id)
