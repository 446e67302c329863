#!/usr/bin/env python3
"""Pictures of the demo for the README, taken in a real browser during an outage.

    scripts/screenshots.py [--out docs/images] [--keep-running]

Uses the running demo (scripts/develop) or starts one and stops it again;
installs what it needs first (`scripts/setup --screenshots`: Debian's chromium
and Playwright). Then it cuts the simulated River 3's grid and, while the
shutdown countdown runs, drives headless Chromium through Home Assistant's own
login page and writes:

    docs/images/device-page.png    the station's device page
    docs/images/dashboard.png      the "UPS" dashboard (docs/dashboard.md)
    docs/images/options-flow.png   Configure > Shutdown policy of a power station

At the end the grid comes back (the agent gets its abort) and the station
returns to steady.
"""

# It runs our own scripts and talks to the demo's own URL.
# ruff: noqa: S310, S603

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
import urllib.error
import urllib.request

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
TOKEN_FILE = ROOT / "config" / ".dev" / "ha-token"
DEVELOP_LOG = ROOT / "config" / ".dev" / "logs" / "develop.log"
CHROMIUM = "/usr/bin/chromium"
# Quiet on a closed network (see ../shared/testing-notes.md).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME = PASSWORD = "dev"
STATION = "river_3_simulated"  # the demo's station, see docs/demo.md
AGENT = "agent_demo_host"
DASHBOARD_PATH = "/ecoflow-ups/ups"
VIEWPORT = {"width": 1440, "height": 1000}
DEMO_COOLDOWN_SEC = 180  # the demo policy's cooldown (scripts/dev_bootstrap.py DEMO_POLICY)


def say(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


class Demo:
    """The demo's Home Assistant over REST, and the stand-in through scripts/simulate."""

    def __init__(self, ha_url: str, sim_url: str) -> None:
        self.ha_url = ha_url.rstrip("/")
        self.sim_url = sim_url
        self.token = ""

    def answers(self) -> bool:
        self.token = TOKEN_FILE.read_text().strip() if TOKEN_FILE.exists() else ""
        if not self.token:
            return False
        try:
            return self.get("/api/config").get("state") == "RUNNING"
        except OSError, ValueError:
            return False

    def request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.ha_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def get(self, path: str) -> Any:
        return self.request(path)

    def state(self, entity_id: str) -> str | None:
        try:
            return self.get(f"/api/states/{entity_id}").get("state")
        except urllib.error.HTTPError:
            return None

    def template(self, template: str) -> str:
        return str(self.request("/api/template", {"template": template})).strip()

    def simulate(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "simulate"), "--url", self.sim_url, *args],
            check=True,
            capture_output=True,
            timeout=30,
        )


def wait_until(what: str, predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"[screenshots] error: {what} did not happen within {seconds:.0f} s")
        time.sleep(1)


def start_demo() -> subprocess.Popen[bytes]:
    """scripts/develop in the background, until it says it is running."""
    DEVELOP_LOG.parent.mkdir(parents=True, exist_ok=True)
    log = DEVELOP_LOG.open("wb")
    say(f"starting scripts/develop (log: {DEVELOP_LOG})")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "develop")],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    def running() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"[screenshots] error: scripts/develop exited; see {DEVELOP_LOG}")
        return b"demo is running" in DEVELOP_LOG.read_bytes()

    wait_until("the demo start", running, 1500)
    return process


def stop_demo(process: subprocess.Popen[bytes]) -> None:
    say("stopping the demo")
    process.send_signal(signal.SIGTERM)  # scripts/develop stops what it started
    try:
        process.wait(timeout=150)
    except subprocess.TimeoutExpired:
        process.kill()


def battery(demo: Demo) -> float:
    try:
        return float(demo.state(f"sensor.{STATION}_battery") or "nan")
    except ValueError:
        return float("nan")


def charge(demo: Demo) -> None:
    """Grid on and a nearly full battery, the station steady."""
    demo.simulate("restore", "--charge", "30")
    wait_until("a charged battery", lambda: battery(demo) >= 95, 180)
    demo.simulate("steady")
    wait_until(
        "grid power on", lambda: demo.state(f"binary_sensor.{STATION}_grid_power") == "on", 60
    )


def wait_for_cooldown(demo: Demo) -> None:
    """No new automatic shutdown within the demo policy's cooldown of the last one."""
    last = demo.state(f"sensor.{AGENT}_last_command_time")
    try:
        age = time.time() - datetime.fromisoformat(last or "").timestamp()
    except ValueError:
        return
    if (wait := DEMO_COOLDOWN_SEC + 5 - age) > 0:
        say(f"waiting {wait:.0f} s for the policy's cooldown after the last shutdown")
        time.sleep(wait)


def outage(demo: Demo) -> None:
    """Grid lost, battery draining: wait for the shutdown countdown and the agent's ack."""
    charge(demo)
    wait_until(
        "policy normal",
        lambda: demo.state(f"sensor.{STATION}_shutdown_policy") == "normal",
        60,
    )
    wait_for_cooldown(demo)
    say("cutting the grid of the simulated River 3")
    demo.simulate("outage", "--drain", "2")
    wait_until(
        "the shutdown",
        lambda: demo.state(f"sensor.{STATION}_shutdown_policy") == "shutdown_sent",
        240,
    )
    wait_until(
        "the agent's ack",
        lambda: demo.state(f"sensor.{AGENT}_last_acknowledgement") == "scheduled",
        30,
    )
    say("shutdown sent, countdown running")


def shoot(demo: Demo, out: Path) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional dependency)

    device_id = demo.template(f"{{{{ device_id('sensor.{STATION}_battery') }}}}")
    out.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        context = browser.new_context(
            viewport=VIEWPORT, locale="en-US", timezone_id="UTC", color_scheme="light"
        )
        page = context.new_page()
        try:
            take_pictures(page, demo, device_id, out)
        except Exception:
            failure = DEVELOP_LOG.parent / "screenshots-failure.png"
            page.screenshot(path=str(failure))
            say(f"failed on {page.url}; what the browser showed: {failure}")
            raise
        finally:
            browser.close()


def settle(page: Page, seconds: float = 3) -> None:
    """Cards fade in and graphs draw; the pointer rests where it highlights nothing."""
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)
    page.wait_for_timeout(seconds * 1000)


def take_pictures(page: Page, demo: Demo, device_id: str, out: Path) -> None:
    """Sign in, then the three pictures."""
    page.goto(demo.ha_url + "/")
    page.locator("input[name=username]").fill(USERNAME)
    page.locator("input[name=password]").fill(PASSWORD)
    page.keyboard.press("Enter")
    # Signed in once the frontend has traded the code for tokens and kept them
    # ("Keep me logged in"); navigating earlier lands on the login page again.
    page.wait_for_function("() => localStorage.getItem('hassTokens') !== null", timeout=60_000)
    page.locator("ha-sidebar").first.wait_for(timeout=60_000)

    page.goto(f"{demo.ha_url}/config/devices/device/{device_id}")
    page.get_by_text("Battery (weakest pack)").first.wait_for(timeout=60_000)
    settle(page)
    page.screenshot(path=str(out / "device-page.png"))
    say(f"wrote {out / 'device-page.png'}")

    page.goto(demo.ha_url + DASHBOARD_PATH)
    page.locator("hui-gauge-card").first.wait_for(timeout=60_000)
    page.locator("hui-history-graph-card").first.wait_for(timeout=60_000)
    settle(page, 8)  # the history is fetched and drawn last
    page.screenshot(path=str(out / "dashboard.png"))
    say(f"wrote {out / 'dashboard.png'}")

    page.goto(demo.ha_url + "/config/integrations/integration/ecoflow_power")
    page.get_by_role("button", name="Configure").first.click(timeout=60_000)
    page.get_by_text("Shutdown policy of a power station").first.click(timeout=30_000)
    page.get_by_text("Battery threshold").first.wait_for(timeout=30_000)
    settle(page)
    page.screenshot(path=str(out / "options-flow.png"))
    say(f"wrote {out / 'options-flow.png'}")
    page.keyboard.press("Escape")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--ha-url", default="http://localhost:8123")
    parser.add_argument("--sim-url", default="http://127.0.0.1:8089")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave a demo this script started running"
    )
    args = parser.parse_args(argv)

    subprocess.run([str(ROOT / "scripts" / "setup"), "--screenshots"], check=True)
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(
            f"[screenshots] error: {CHROMIUM} is missing (scripts/setup --screenshots)"
        )
    demo = Demo(args.ha_url, args.sim_url)
    started = None
    if demo.answers():
        say(f"using the demo running at {demo.ha_url}")
    else:
        started = start_demo()
        if not demo.answers():
            raise SystemExit("[screenshots] error: the demo runs but its API token does not work")
    try:
        outage(demo)
        shoot(demo, Path(args.out))
    finally:
        say("grid back, battery charged, station steady")
        charge(demo)
        if started is not None and not args.keep_running:
            stop_demo(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
