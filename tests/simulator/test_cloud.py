"""The stand-in's HTTP side: signature checks like the real cloud, control API, CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
import sys
import time

import aiohttp
import pytest

from custom_components.ecoflow_power.ecoflow.signing import signed_headers
from simulator.__main__ import build_devices, parse_args
from simulator.standin import StandIn

AK = "sim-ak"
SK = "sim-sk"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def standin(socket_enabled: None) -> AsyncIterator[StandIn]:
    rotations: list[tuple[str, str]] = []
    sim = StandIn(
        access_key=AK,
        secret_key=SK,
        broker_port=1883,
        on_credentials_rotated=lambda account, password: rotations.append((account, password)),
        auto_tick=False,
    )
    sim.rotations = rotations  # type: ignore[attr-defined]
    await sim.start(with_mqtt=False)
    try:
        yield sim
    finally:
        await sim.stop()


async def get(
    sim: StandIn, path: str, *, query: dict[str, str] | None = None, headers: dict[str, str]
) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.url}{path}", params=query or {}, headers=headers) as resp,
    ):
        assert resp.status == 200
        return await resp.json()


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_properly_signed_request_is_accepted(standin: StandIn) -> None:
    query = {"sn": "R331ZEB5XXXX0002"}
    headers = signed_headers(AK, SK, query, nonce="123456", timestamp=now_ms())
    body = await get(standin, "/iot-open/sign/device/quota/all", query=query, headers=headers)
    assert body["code"] == "0"


@pytest.mark.parametrize(
    "tamper",
    ["signed-for-other-params", "wrong-secret", "stale", "missing-sign", "unknown-key", "bad-hex"],
)
async def test_bad_signatures_are_refused_with_8513(standin: StandIn, tamper: str) -> None:
    query = {"sn": "R331ZEB5XXXX0002"}
    signed_query = {"sn": "R651ZAB5XXXX0001"} if tamper == "signed-for-other-params" else query
    secret = "other" if tamper == "wrong-secret" else SK
    stamp = now_ms() - 3_600_000 if tamper == "stale" else now_ms()
    access = "nobody" if tamper == "unknown-key" else AK
    headers = signed_headers(access, secret, signed_query, nonce="1", timestamp=stamp)
    if tamper == "missing-sign":
        del headers["sign"]
    if tamper == "bad-hex":
        headers["sign"] = headers["sign"][:-1] + ("0" if headers["sign"][-1] != "0" else "1")
    body = await get(standin, "/iot-open/sign/device/quota/all", query=query, headers=headers)
    assert body["code"] == "8513"
    assert "data" not in body


async def test_control_api(standin: StandIn) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{standin.url}/simulator/devices") as resp:
            listing = await resp.json()
        assert [d["sn"] for d in listing["devices"]] == ["R651ZAB5XXXX0001", "R331ZEB5XXXX0002"]
        assert "outage" in listing["scenarios"]

        url = f"{standin.url}/simulator/devices/R651ZAB5XXXX0001/scenario"
        async with http.post(url, json={"name": "outage", "drain_pct_per_min": 4}) as resp:
            assert resp.status == 200
            device = await resp.json()
        assert device["scenario"] == {"name": "outage", "drain_pct_per_min": 4.0}
        assert device["grid"] is False
        async with http.post(url, json={"name": "meltdown"}) as resp:
            assert resp.status == 400
        async with http.post(url, data=b"not json") as resp:
            assert resp.status == 400
        async with http.post(
            f"{standin.url}/simulator/devices/NOPE/scenario", json={"name": "stall"}
        ) as resp:
            assert resp.status == 404

        async with http.post(
            f"{standin.url}/simulator/devices/R651ZAB5XXXX0001/online", json={"online": False}
        ) as resp:
            assert (await resp.json())["online"] is False

        old = standin.mqtt_password
        async with http.post(f"{standin.url}/simulator/credentials/rotate") as resp:
            answer = await resp.text()
        assert standin.mqtt_password != old
        assert standin.mqtt_password not in answer  # fetched via certification only
        assert standin.rotations == [(standin.account, standin.mqtt_password)]  # type: ignore[attr-defined]


async def test_simulate_script_drives_the_stand_in(standin: StandIn) -> None:
    async def simulate(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / "simulate"),
            *args,
            "--url",
            standin.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    code, out = await simulate("outage", "--drain", "3", "--sn", "R331ZEB5XXXX0002")
    assert code == 0, out
    assert "outage" in out
    assert standin.device("R331ZEB5XXXX0002").state.grid is False
    assert standin.device("R651ZAB5XXXX0001").state.grid is True

    code, out = await simulate("stall")
    assert code == 0, out
    assert all(not d.state.publishing for d in standin.devices.values())

    code, out = await simulate("diverge")  # the River 3 has one pack: skipped, not fatal
    assert code == 0, out
    assert "skipped" in out
    assert standin.device("R331ZEB5XXXX0002").scenario.name == "diverge"

    code, out = await simulate("status")
    assert code == 0
    assert out.count("\n") == 2

    code, out = await simulate("flap", "--sn", "NOPE")
    assert code != 0
    assert "404" in out


def test_cli_arguments_and_device_kinds() -> None:
    args = parse_args(["--http-port", "9000", "--time-scale", "60", "--scenario", "outage"])
    assert (args.http_port, args.time_scale, args.scenario) == (9000, 60.0, "outage")
    devices = build_devices("river3, delta2,river3plus")
    assert [d.sn for d in devices] == ["R651ZAB5XXXX0001", "R331ZEB5XXXX0002", "R631ZAB5XXXX0003"]
    assert [len(d.state.packs) for d in devices] == [1, 2, 2]
    with pytest.raises(SystemExit):
        build_devices("toaster")
