"""README "Removal": the commands it gives clear the agents' retained topics on a real broker."""

from __future__ import annotations

from pathlib import Path
import re
import shlex
import subprocess

import pytest

from tests.helpers.mosquitto import running_broker

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def removal_commands() -> list[list[str]]:
    section = README.read_text().split("## Removal", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    return [shlex.split(line) for line in blocks[0].splitlines() if line.strip()]


def _run(command: list[str], port: int) -> subprocess.CompletedProcess[str]:
    argv = [("127.0.0.1" if part == "BROKER" else part) for part in command]
    return subprocess.run(
        [*argv, "-p", str(port)], capture_output=True, text=True, timeout=30, check=False
    )


def _retain(port: int, topic: str, payload: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-r", "-m", payload],
        check=True,
        timeout=10,
    )


@pytest.mark.broker
def test_the_removal_commands_list_then_clear_the_agents_retained_topics(
    socket_enabled: None,
) -> None:
    listing, clearing = removal_commands()
    assert listing[0] == clearing[0] == "mosquitto_sub"
    with running_broker() as broker:
        _retain(broker.port, "power-manager/nas/status", '{"state": "online"}')
        _retain(broker.port, "power-manager/desktop/status", '{"state": "offline"}')
        _retain(broker.port, "zigbee2mqtt/bridge/state", "online")  # not ours: stays

        listed = _run(listing, broker.port).stdout
        assert "power-manager/nas/status" in listed
        assert "power-manager/desktop/status" in listed
        assert "zigbee2mqtt" not in listed

        _run(clearing, broker.port)
        assert _run(listing, broker.port).stdout == ""
        others = _run(
            [
                "mosquitto_sub",
                "-h",
                "BROKER",
                "-t",
                "zigbee2mqtt/#",
                "-v",
                "--retained-only",
                "-W",
                "1",
            ],
            broker.port,
        ).stdout
        assert "zigbee2mqtt/bridge/state online" in others


def test_the_removal_names_every_file_the_integration_keeps_in_storage() -> None:
    section = README.read_text().split("## Removal", 1)[1].split("\n## ", 1)[0]
    source = "\n".join(
        path.read_text() for path in (ROOT / "custom_components" / "ecoflow_power").glob("*.py")
    )
    kinds = set(re.findall(r'f"\{DOMAIN\}\.\{entry\.entry_id\}\.(\w+)"', source))
    assert kinds, "no per-entry Store found: the pattern needs updating"
    for kind in kinds:
        assert f"`.storage/ecoflow_power.<entry id>.{kind}`" in section, kind
