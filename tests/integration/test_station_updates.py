"""Which entities a telemetry message touches (issue 16: one pass, no needless writes)."""

from __future__ import annotations

from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import async_get_platforms
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.const import DOMAIN
from custom_components.ecoflow_power.entity import EcoflowStationEntity
from tests.ecoflow.test_tracker_behaviour import display

from .conftest import DELTA2_SN, RIVER3_SN
from .helpers import capture_bytes, capture_json, feed


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    config_entry: MockConfigEntry,
    fake_session,
    freezer: FrozenDateTimeFactory,
):
    freezer.move_to("2026-11-01T12:00:00+00:00")
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return fake_session.instances[-1]


def _written(hass: HomeAssistant, sn: str) -> dict[str, object]:
    """When each telemetry entity of a station last had its state written."""
    entity_ids = [
        entity.entity_id
        for platform in async_get_platforms(hass, DOMAIN)
        for entity in platform.entities.values()
        if isinstance(entity, EcoflowStationEntity) and entity.sn == sn
    ]
    assert entity_ids
    return {entity_id: hass.states.get(entity_id).last_reported for entity_id in entity_ids}


async def test_a_new_reading_rewrites_only_the_entities_that_show_it(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    await feed(hass, loaded, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    before = _written(hass, RIVER3_SN)
    freezer.tick(5)
    await feed(hass, loaded, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    after = _written(hass, RIVER3_SN)
    # A steady reply: only the "last telemetry" timestamp moves.
    assert {e for e in before if after[e] != before[e]} <= {"sensor.study_ups_last_telemetry"}

    freezer.tick(5)
    await feed(hass, loaded, RIVER3_SN, display(pow_out_sum_w=70.0))
    after = _written(hass, RIVER3_SN)  # entities created on the first reply have written
    freezer.tick(5)
    await feed(hass, loaded, RIVER3_SN, display(pow_out_sum_w=77.0))
    rewritten = {e for e in after if _written(hass, RIVER3_SN)[e] != after[e]}
    assert "sensor.study_ups_output_power" in rewritten
    assert rewritten <= {"sensor.study_ups_output_power", "sensor.study_ups_last_telemetry"}


async def test_a_message_from_one_station_leaves_the_other_stations_entities_alone(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    await feed(hass, loaded, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    before = _written(hass, RIVER3_SN)
    freezer.tick(5)
    await feed(
        hass, loaded, DELTA2_SN, capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    )
    assert _written(hass, RIVER3_SN) == before
