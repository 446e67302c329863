"""The Windows (PowerShell 5.1) agent, checked without PowerShell.

PowerShell cannot be installed on the test machines, so the agent is never
run here (agents/windows/README.md says what was and was not run). What can
be checked statically is: it parses with the tree-sitter PowerShell grammar
without errors, every command it calls is one of its own functions or a
Windows PowerShell 5.1 built-in cmdlet, the self-test carries the protocol's
pinned vector, and the protocol-2 wire names (topics, fields, ack codes) are
all there.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path

import pytest

ts = pytest.importorskip("tree_sitter")
ts_powershell = pytest.importorskip("tree_sitter_powershell")

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "agents/windows/ecoflow-agent.ps1", ROOT / "agents/windows/install.ps1"]
AGENT = SCRIPTS[0]
VECTORS = ROOT / "tests/fixtures/protocol/vectors.json"

# Cmdlets of Windows PowerShell 5.1 (Microsoft.PowerShell.*, and NetTCPIP /
# NetAdapter of Windows 8 / Server 2012 and later) the
# scripts may call; anything else must be a function defined in the script.
BUILTINS = {
    "Add-Content",
    "ConvertFrom-Json",
    "ConvertTo-Json",
    "ConvertTo-SecureString",
    "Copy-Item",
    "Find-NetRoute",
    "ForEach-Object",
    "Get-Acl",
    "Get-Content",
    "Get-Date",
    "Get-NetAdapter",
    "Get-ScheduledTask",
    "Join-Path",
    "Move-Item",
    "New-Item",
    "New-Object",
    "Out-Null",
    "Read-Host",
    "Register-ScheduledTask",
    "Remove-Item",
    "Select-Object",
    "Set-Acl",
    "Set-Content",
    "Set-StrictMode",
    "Split-Path",
    "Start-ScheduledTask",
    "Start-Sleep",
    "Stop-ScheduledTask",
    "Test-Path",
    "Unregister-ScheduledTask",
    "Where-Object",
    "Write-Host",
    "Write-Output",
    "Write-Warning",
}


def _parse(path: Path) -> object:
    parser = ts.Parser(ts.Language(ts_powershell.language()))
    return parser.parse(path.read_bytes())


def _walk(node: object) -> Iterator[object]:
    yield node
    for child in node.children:  # type: ignore[attr-defined]
        yield from _walk(child)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_without_errors(script: Path) -> None:
    tree = _parse(script)
    bad = [
        f"line {n.start_point[0] + 1}: {n.text[:60]!r}"
        for n in _walk(tree.root_node)
        if n.type == "ERROR" or n.is_missing
    ]
    assert not bad, bad
    assert not tree.root_node.has_error


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_called_command_is_defined_or_builtin(script: Path) -> None:
    tree = _parse(script)
    nodes = list(_walk(tree.root_node))
    defined = {n.text.decode() for n in nodes if n.type == "function_name"}
    called = {n.text.decode() for n in nodes if n.type == "command_name"}
    # external programs are started by full path through Start-Argv, never by name
    unknown = sorted(c for c in called - defined - BUILTINS if not c.lower().endswith(".exe"))
    assert not unknown, f"called but neither defined nor a PowerShell 5.1 cmdlet: {unknown}"
    if script == AGENT:
        unused = sorted(defined - called)
        assert not unused, f"defined but never called: {unused}"


def test_self_test_carries_the_pinned_vector() -> None:
    pinned = json.loads(VECTORS.read_text())["pinned"]
    text = AGENT.read_text()
    assert pinned["command_canonical"] in text
    assert pinned["command_sig"] in text
    assert pinned["ack_sig"] in text
    assert pinned["secret"] in text


def test_protocol_2_names_are_all_there() -> None:
    text = AGENT.read_text()
    for needle in (
        "/power",
        "'%t %l %x'",
        "protocol = 2",
        "lease_deadline",
        "execute_in",
        "'duplicate'",
        "nothing_pending",
        "too_late",
        "unsupported_version",
        "bad_signature",
        "unsigned",
        "future",
        "allow_unauthenticated",
        "pre_shutdown_mode",
        "kill_grace_sec",
        "late_grace_sec",
        "$MaxPayload = 8192",
        "taskkill.exe",
        "'/T', '/F'",
    ):
        assert needle in text, needle


def test_fail_closed_in_the_installer() -> None:
    assert "A secret is required" in (ROOT / "agents/windows/install.ps1").read_text()
