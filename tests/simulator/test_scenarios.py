"""Scenarios move the simulated world as described, on a compressed clock."""

from __future__ import annotations

import pytest

from simulator.devices import delta2, river3
from simulator.scenarios import Flap, Glitch, Stall, make_scenario
from simulator.standin import StandIn


def standin(time_scale: float = 60, *devices: object) -> StandIn:
    return StandIn(
        access_key="a",
        secret_key="b",
        devices=list(devices) or [river3(soc=80), delta2(soc=80, extra_pack=True)],  # type: ignore[arg-type]
        time_scale=time_scale,
        auto_tick=False,
    )


async def test_outage_drains_at_the_given_rate_on_compressed_time() -> None:
    sim = standin(60)
    sim.set_scenario("R651ZAB5XXXX0001", "outage", {"drain_pct_per_min": 2})
    for _ in range(5):
        await sim.tick(real_dt=1.0)  # 5 real s x 60 = 5 simulated min
    state = sim.device("R651ZAB5XXXX0001").state
    assert state.grid is False
    assert state.combined_soc == pytest.approx(70.0)
    assert state.sim_time == pytest.approx(300)
    assert state.remaining_minutes()[0] == 35


async def test_restore_charges_and_stops_at_the_limit() -> None:
    sim = standin(60)
    sn = "R651ZAB5XXXX0001"
    sim.set_scenario(sn, "restore", {"charge_pct_per_min": 5})
    for _ in range(10):
        await sim.tick(real_dt=1.0)
    state = sim.device(sn).state
    assert state.grid is True
    assert state.combined_soc == 100.0
    assert state.charge_state == 0  # idle once full


async def test_flap_toggles_the_grid_every_half_period() -> None:
    sim = standin(1)
    sn = "R651ZAB5XXXX0001"
    sim.set_scenario(sn, "flap", {"period_sec": 20})
    grid = []
    for _ in range(8):
        await sim.tick(real_dt=5.0)
        grid.append(sim.device(sn).state.grid)
    # Each tick reports the grid of the step it simulated: off for 10 s, on for 10 s.
    assert grid == [False, False, True, True, False, False, True, True]
    assert isinstance(sim.device(sn).scenario, Flap)


async def test_stall_stops_publishing_but_time_goes_on() -> None:
    sim = standin(60)
    sn = "R331ZEB5XXXX0002"
    device = sim.device(sn)
    sim.set_scenario(sn, "outage")
    await sim.tick(real_dt=1.0)
    sent = device.pushes_sent
    sim.set_scenario(sn, "stall")
    await sim.tick(real_dt=1.0)
    assert device.pushes_sent == sent
    assert device.state.publishing is False
    assert device.state.combined_soc == pytest.approx(78.0)  # still draining
    assert sim._answer_get("acct", sn, b'{"operateType":"latestQuotas"}') == []
    sim.set_scenario(sn, "steady")
    await sim.tick(real_dt=1.0)
    assert device.pushes_sent > sent


async def test_diverge_needs_two_packs() -> None:
    sim = standin(60)
    with pytest.raises(ValueError, match="two"):
        sim.set_scenario("R651ZAB5XXXX0001", "diverge")
    sim.set_scenario("R331ZEB5XXXX0002", "diverge", {"main_pct_per_min": 1, "extra_pct_per_min": 3})
    await sim.tick(real_dt=1.0)
    packs = [p.soc for p in sim.device("R331ZEB5XXXX0002").state.packs]
    assert packs == [pytest.approx(79.0), pytest.approx(77.0)]


def test_glitch_wraps_the_running_scenario() -> None:
    outage = make_scenario("outage")
    glitch = make_scenario("glitch", {"soc": 3}, current=outage)
    assert isinstance(glitch, Glitch)
    assert glitch.base is outage
    assert isinstance(make_scenario("glitch", current=Stall()), Glitch)
    assert make_scenario("glitch", current=Stall()).base.name == "steady"  # type: ignore[attr-defined]


def test_unknown_names_and_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        make_scenario("meltdown")
    with pytest.raises(ValueError, match="bad parameters"):
        make_scenario("outage", {"period_sec": 3})
    assert make_scenario("grid_loss").name == "outage"


async def test_last_gasp_sends_one_outage_message_then_falls_silent() -> None:
    sim = standin(60)
    sn = "R651ZAB5XXXX0001"
    device = sim.device(sn)
    await sim.tick(real_dt=1.0)
    before = device.pushes_sent
    sim.set_scenario(sn, "last_gasp", {"drain_pct_per_min": 2})
    assert device.state.grid is False
    await sim.tick(real_dt=1.0)
    one = device.pushes_sent
    soc = device.state.combined_soc
    assert one > before  # the outage message got out
    for _ in range(3):
        await sim.tick(real_dt=1.0)
    assert device.pushes_sent == one  # then nothing more
    assert device.state.publishing is False
    assert device.state.combined_soc == pytest.approx(soc - 6)  # draining in silence
    assert sim._answer_get("acct", sn, b'{"operateType":"latestQuotas"}') == []
