"""Run the EcoFlow cloud stand-in.

    python -m simulator --http-port 8089 --broker-host 127.0.0.1 --broker-port 1883 \\
        --access-key sim-access --secret-key sim-secret [--scenario steady] [--time-scale 1]

Point the integration's config flow at the printed URL and keys; drive the
devices with ``scripts/simulate``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys

from .broker import ManagedBroker
from .devices import SimulatedDevice, delta2, river3
from .scenarios import SCENARIO_NAMES
from .standin import DEFAULT_ACCOUNT, StandIn

DEFAULT_ACCESS_KEY = "sim-access-key-0001"
DEFAULT_SECRET_KEY = "sim-secret-key-0001"
SIM_USER = "ecoflow-simulator"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8089)
    parser.add_argument("--broker-host", default="127.0.0.1")
    parser.add_argument("--broker-port", type=int, default=1883)
    parser.add_argument(
        "--advertise-host", help="broker host handed out by certification (default: --broker-host)"
    )
    parser.add_argument(
        "--spawn-broker",
        action="store_true",
        help="start a private mosquitto with a password file on --broker-port "
        "(makes credential rotation real)",
    )
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument("--account", default=DEFAULT_ACCOUNT, help="MQTT certificateAccount")
    parser.add_argument("--mqtt-password", help="initial certificatePassword (default: random)")
    parser.add_argument("--publisher-username", help="MQTT user the simulated devices use")
    parser.add_argument("--publisher-password")
    parser.add_argument("--scenario", default="steady", choices=SCENARIO_NAMES)
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated s per real s")
    parser.add_argument("--publish-interval", type=float, default=2.0, help="real s between pushes")
    parser.add_argument(
        "--devices",
        default="river3,delta2",
        help="comma list of river3, river3plus (two packs), delta2 (two packs), delta2single",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def build_devices(spec: str) -> list[SimulatedDevice]:
    factories = {
        "river3": lambda n: river3(f"R651ZAB5XXXX{n:04d}"),
        "river3plus": lambda n: river3(f"R631ZAB5XXXX{n:04d}", extra_pack=True),
        "delta2": lambda n: delta2(f"R331ZEB5XXXX{n:04d}", extra_pack=True),
        "delta2single": lambda n: delta2(f"R331ZEB5XXXX{n:04d}"),
    }
    devices = []
    for index, name in enumerate(filter(None, (s.strip() for s in spec.split(","))), start=1):
        if name not in factories:
            raise SystemExit(f"unknown device kind {name!r}; known: {', '.join(factories)}")
        devices.append(factories[name](index))
    return devices


async def run(args: argparse.Namespace) -> None:
    password = args.mqtt_password or secrets.token_urlsafe(12)
    publisher_user, publisher_password = args.publisher_username, args.publisher_password
    broker: ManagedBroker | None = None
    if args.spawn_broker:
        publisher_user = publisher_user or SIM_USER
        publisher_password = publisher_password or secrets.token_urlsafe(12)
        broker = ManagedBroker(
            args.broker_host,
            args.broker_port,
            {args.account: password, publisher_user: publisher_password},
        )
        await asyncio.to_thread(broker.start)

    async def rotate(account: str, new_password: str) -> None:
        if broker is not None:
            broker.set_users({account: new_password, publisher_user: publisher_password or ""})
            await asyncio.to_thread(broker.restart)

    standin = StandIn(
        access_key=args.access_key,
        secret_key=args.secret_key,
        broker_host=args.broker_host,
        broker_port=args.broker_port,
        advertised_broker_host=args.advertise_host,
        devices=build_devices(args.devices),
        account=args.account,
        mqtt_password=password,
        publisher_username=publisher_user,
        publisher_password=publisher_password,
        time_scale=args.time_scale,
        publish_interval=args.publish_interval,
        on_credentials_rotated=rotate,
        http_host=args.http_host,
        http_port=args.http_port,
    )
    for sn in standin.devices:
        standin.set_scenario(sn, args.scenario)
    try:
        await standin.start(wait_for_broker=False)
        print_banner(standin, args)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await standin.stop()
        if broker is not None:
            await asyncio.to_thread(broker.cleanup)


def print_banner(standin: StandIn, args: argparse.Namespace) -> None:
    lines = [
        "EcoFlow cloud stand-in is running",
        f"  Open API base URL : {standin.url}",
        f"  Access key        : {args.access_key.strip()}",
        f"  Secret key        : {args.secret_key.strip()}",
        f"  MQTT broker       : {args.broker_host}:{args.broker_port} "
        f"(account {standin.account}{', private broker' if args.spawn_broker else ''})",
        f"  Time scale        : x{args.time_scale:g}, publishing every {args.publish_interval:g} s",
        "  Devices:",
    ]
    lines += [
        f"    {d.sn}  {d.product_name:<8} {d.encoding:<8} scenario {d.scenario.name}"
        for d in standin.devices.values()
    ]
    lines.append(f"  Control           : scripts/simulate outage --url {standin.url} [--sn SN]")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
