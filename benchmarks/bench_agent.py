"""Resident memory and command-to-ack latency of the host agent.

Starts a private mosquitto and the Linux agent (dry-run, signed) as real
processes, sends N signed pings one after the other and times each ping ->
pong round trip seen by a paho client. Prints VmRSS/VmHWM of the agent from
/proc/PID/status and p50/p90/p99/max latency.

    .venv/bin/python -m benchmarks.bench_agent [--pings 200] [--agent linux|macos]

`--agent macos` runs the bash agent the same way (for comparison; its RSS
is the bash process alone, without its mosquitto_sub child).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.mosquitto import MosquittoBroker  # noqa: E402

SECRET = "bench-secret-0123456789"
AGENT_ID = "bench"


def sign(msg: dict) -> str:
    canon = json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(SECRET.encode(), canon.encode(), hashlib.sha256).hexdigest()


def ping() -> dict:
    msg = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "action": "ping",
        "delay_sec": 0,
        "ttl_sec": 60,
        "issued_at": int(time.time()),
        "reason": "benchmark",
        "device": "BENCH",
    }
    msg["sig"] = sign(msg)
    return msg


class _Cleanup:
    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker = broker

    def close(self) -> None:
        self.broker.cleanup()


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = value.strip()
    return out


def write_config(kind: str, workdir: Path, host: str, port: int) -> list[str]:
    state = workdir / "state"
    if kind == "linux":
        conf = workdir / "agent.conf"
        conf.write_text(
            f"[mqtt]\nhost = {host}\nport = {port}\n[agent]\nagent_id = {AGENT_ID}\n"
            f"secret = {SECRET}\ndry_run = true\nstate_dir = {state}\n"
        )
        conf.chmod(0o600)
        return [sys.executable, str(ROOT / "agents/linux/ecoflow_agent.py"), "-c", str(conf)]
    conf = workdir / "agent.env"
    conf.write_text(
        f"MQTT_HOST={host}\nMQTT_PORT={port}\nAGENT_ID={AGENT_ID}\nSECRET={SECRET}\n"
        f"DRY_RUN=1\nSTATE_DIR={state}\n"
    )
    conf.chmod(0o600)
    return ["bash", str(ROOT / "agents/macos/ecoflow-agent.sh"), "-c", str(conf)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--agent", choices=("linux", "macos"), default="linux")
    parser.add_argument(
        "--broker-nagle",
        action="store_true",
        help="leave mosquitto's set_tcp_nodelay off (its default): adds ~40 ms per round trip",
    )
    args = parser.parse_args()

    base = f"power-manager/{AGENT_ID}"
    pongs: dict[str, float] = {}
    online = threading.Event()
    cond = threading.Condition()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        if message.topic.endswith("/status") and payload.get("state") == "online":
            online.set()
        elif payload.get("status") == "pong":
            with cond:
                pongs[payload["id"]] = time.perf_counter()
                cond.notify_all()

    broker = MosquittoBroker()
    if not args.broker_nagle:
        conf = broker.log_path.parent / "mosquitto.conf"
        conf.write_text(conf.read_text() + "set_tcp_nodelay true\n")
    broker.start()
    with contextlib.closing(_Cleanup(broker)), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        argv = write_config(args.agent, workdir, broker.host, broker.port)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-client")
        client.on_message = on_message
        client.connect(broker.host, broker.port, 30)
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(base + "/ack", 1), (base + "/status", 1)])
        client.loop_start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOFLOW_AGENT_")}
        env["ECOFLOW_AGENT_LOG_LEVEL"] = "WARNING"
        env["TMPDIR"] = str(workdir)
        started = time.perf_counter()
        agent = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            if not online.wait(20):
                print("agent did not come online", file=sys.stderr)
                return 1
            startup = time.perf_counter() - started
            rss_idle = proc_status(agent.pid)
            latencies = []
            for _ in range(args.pings):
                msg = ping()
                sent = time.perf_counter()
                client.publish(base + "/cmd", json.dumps(msg), qos=1)
                with cond:
                    if not cond.wait_for(lambda mid=msg["id"]: mid in pongs, timeout=10):
                        print(f"no pong for {msg['id']}", file=sys.stderr)
                        return 1
                latencies.append((pongs[msg["id"]] - sent) * 1000)
            rss_after = proc_status(agent.pid)
        finally:
            os.killpg(agent.pid, 15)
            agent.wait(10)
            client.disconnect()
            client.loop_stop()

    qs = statistics.quantiles(latencies, n=100)
    nagle = "off (default)" if args.broker_nagle else "on"
    print(f"agent: {args.agent} ({' '.join(Path(a).name for a in argv[:2])})")
    print(f"broker: mosquitto, set_tcp_nodelay {nagle}")
    print(f"startup to retained online status: {startup * 1000:.0f} ms")
    print(f"memory idle:  VmRSS {rss_idle.get('VmRSS')}  threads {rss_idle.get('Threads')}")
    print(
        f"memory after {args.pings} pings: VmRSS {rss_after.get('VmRSS')}  "
        f"VmHWM {rss_after.get('VmHWM')}"
    )
    print(
        f"ping->pong latency over {len(latencies)} pings: p50 {statistics.median(latencies):.2f} ms"
        f"  p90 {qs[89]:.2f} ms  p99 {qs[98]:.2f} ms  max {max(latencies):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
