"""Small HTTP control API of the stand-in, used by ``scripts/simulate``.

GET  /simulator/devices                       every device's state
POST /simulator/devices/{sn}/scenario         {"name": "outage", "drain_pct_per_min": 2}
POST /simulator/devices/{sn}/online           {"online": false}
POST /simulator/credentials/rotate            new MQTT password for the account
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .scenarios import SCENARIO_NAMES

if TYPE_CHECKING:
    from .standin import StandIn

STANDIN_KEY: web.AppKey[Any] = web.AppKey("standin", object)


def _standin(request: web.Request) -> StandIn:
    return request.app[STANDIN_KEY]


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def _list_devices(request: web.Request) -> web.Response:
    standin = _standin(request)
    return web.json_response(
        {
            "account": standin.account,
            "time_scale": standin.time_scale,
            "publish_interval": standin.publish_interval,
            "scenarios": list(SCENARIO_NAMES),
            "devices": [d.describe() for d in standin.devices.values()],
        }
    )


async def _set_scenario(request: web.Request) -> web.Response:
    standin = _standin(request)
    sn = request.match_info["sn"]
    body = await _json_body(request)
    name = str(body.pop("name", ""))
    try:
        standin.set_scenario(sn, name, body)
    except KeyError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    except ValueError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    return web.json_response(standin.device(sn).describe())


async def _set_online(request: web.Request) -> web.Response:
    standin = _standin(request)
    sn = request.match_info["sn"]
    body = await _json_body(request)
    try:
        await standin.set_online(sn, bool(body.get("online", True)))
    except KeyError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    return web.json_response(standin.device(sn).describe())


async def _rotate(request: web.Request) -> web.Response:
    standin = _standin(request)
    await standin.rotate_credentials()
    # The new password is for the client to fetch via certification; the
    # control API does not echo it.
    return web.json_response({"account": standin.account, "rotated": True})


def add_control_routes(app: web.Application, standin: StandIn) -> None:
    app[STANDIN_KEY] = standin
    app.router.add_get("/simulator/devices", _list_devices)
    app.router.add_post("/simulator/devices/{sn}/scenario", _set_scenario)
    app.router.add_post("/simulator/devices/{sn}/online", _set_online)
    app.router.add_post("/simulator/credentials/rotate", _rotate)
