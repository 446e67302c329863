"""The outside world of bench_pipeline.py, in its own process (not a benchmark itself).

It plays the power station publishing on the "cloud" broker and the host agent
listening on the local broker, so both ends of the measured path share one
clock (time.perf_counter) and neither competes with Home Assistant's event
loop or its GIL.

Started by bench_pipeline.py with the broker addresses as arguments; then
reads one JSON request per line on stdin and answers one JSON line on stdout:

    {"msgs": [[topic, base64 payload], ...], "agent": "r3", "action": "shutdown",
     "timeout": 10}
    -> {"ok": true, "ms": 3.21, "id": "<command id>"}   (ms: first publish -> arrival)
    -> {"ok": false, "error": "timeout"}

With "action": null it only publishes and answers {"ok": true} at once.

Only a command whose id was not seen before counts, so a re-sent command
never passes for a new one.
"""

from __future__ import annotations

import argparse
import base64
import json
import queue
import sys
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def connect(host: str, port: int, client_id: str, user: str | None, password: str | None):
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if user:
        client.username_pw_set(user, password)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(host, port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"probe: cannot connect to {host}:{port}")
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cloud-port", type=int, required=True)
    parser.add_argument("--cloud-user", required=True)
    parser.add_argument("--cloud-password", required=True)
    parser.add_argument("--local-port", type=int, required=True)
    parser.add_argument("--prefix", default="power-manager")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    arrivals: queue.Queue[tuple[float, str, dict]] = queue.Queue()
    subscribed = threading.Event()

    def on_message(_client, _userdata, message) -> None:
        arrived = time.perf_counter()  # first thing: the timestamp is the measurement
        agent = message.topic.split("/")[-2]
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        arrivals.put((arrived, agent, payload))

    local = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe-agent")
    local.on_message = on_message
    local.on_subscribe = lambda *_args: subscribed.set()
    local.on_connect = lambda client, *_args: client.subscribe(f"{args.prefix}/+/cmd", qos=1)
    local.connect(args.host, args.local_port, keepalive=60)
    local.loop_start()
    cloud = connect(
        args.host, args.cloud_port, "bench-probe-device", args.cloud_user, args.cloud_password
    )
    if not subscribed.wait(10):
        raise SystemExit("probe: no SUBACK from the local broker")
    print(json.dumps({"ready": True}), flush=True)

    seen: set[str] = set()
    for line in sys.stdin:
        request = json.loads(line)
        msgs = [(topic, base64.b64decode(data)) for topic, data in request["msgs"]]
        # Drop what arrived in between (re-sends, the previous run's tail).
        while not arrivals.empty():
            _t, _agent, payload = arrivals.get_nowait()
            seen.add(str(payload.get("id")))
        started = time.perf_counter()
        for topic, data in msgs:
            cloud.publish(topic, data, qos=1)
        if request.get("action") is None:
            print(json.dumps({"ok": True}), flush=True)
            continue
        deadline = started + float(request.get("timeout", 10))
        answer: dict = {"ok": False, "error": "timeout"}
        while (left := deadline - time.perf_counter()) > 0:
            try:
                arrived, agent, payload = arrivals.get(timeout=left)
            except queue.Empty:
                break
            command_id = str(payload.get("id"))
            if command_id in seen:
                continue
            seen.add(command_id)
            if agent == request["agent"] and payload.get("action") == request["action"]:
                answer = {"ok": True, "ms": (arrived - started) * 1000, "id": command_id}
                break
        print(json.dumps(answer), flush=True)
    cloud.loop_stop()
    local.loop_stop()


if __name__ == "__main__":
    main()
