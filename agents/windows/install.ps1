<#
.SYNOPSIS
  Install or uninstall the EcoFlow Power Management agent (run as Administrator).
.EXAMPLE
  .\install.ps1 -AgentId pc-study -MqttHost 192.168.1.10
  (asks for the agent secret; starts in dry-run unless -Live)
.EXAMPLE
  .\install.ps1 -Uninstall [-Purge]
#>
[CmdletBinding()]
param(
    [string]$AgentId = $env:COMPUTERNAME,
    [string]$MqttHost = '127.0.0.1',
    [int]$MqttPort = 1883,
    [string]$MqttUsername = '',
    [string]$MosquittoDir = "$env:ProgramFiles\mosquitto",
    [switch]$Live,
    [switch]$Uninstall,
    [switch]$Purge
)
$ErrorActionPreference = 'Stop'
$TaskName = 'EcoFlow Power Agent'
$ProgramDir = "$env:ProgramFiles\EcoFlowAgent"
$DataDir = "$env:ProgramData\EcoFlowAgent"
$ConfigPath = "$DataDir\agent.json"

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { throw 'Run this script as Administrator.' }

if ($Uninstall) {
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $ProgramDir -ErrorAction SilentlyContinue
    if ($Purge) { Remove-Item -Recurse -Force $DataDir -ErrorAction SilentlyContinue; 'Removed agent, config (secret) and state.' }
    else { "Removed agent; kept $DataDir (-Purge removes it)." }
    return
}

if ($AgentId -cnotmatch '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$') { throw 'AgentId must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }
foreach ($exe in 'mosquitto_sub.exe', 'mosquitto_pub.exe') {
    if (-not (Test-Path (Join-Path $MosquittoDir $exe))) { throw "$exe not found in $MosquittoDir (install Eclipse Mosquitto for Windows, or pass -MosquittoDir)" }
}

# program
New-Item -ItemType Directory -Force -Path $ProgramDir | Out-Null
Copy-Item -Force "$PSScriptRoot\ecoflow-agent.ps1" "$ProgramDir\ecoflow-agent.ps1"

# data folder: SYSTEM and Administrators only, no inherited ACEs
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
$acl = New-Object Security.AccessControl.DirectorySecurity
$acl.SetAccessRuleProtection($true, $false)
foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {
    $id = New-Object Security.Principal.SecurityIdentifier $sid
    $acl.AddAccessRule((New-Object Security.AccessControl.FileSystemAccessRule($id, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
}
Set-Acl -LiteralPath $DataDir -AclObject $acl

if (Test-Path $ConfigPath) {
    "Keeping the existing $ConfigPath"
} else {
    $secure = Read-Host -AsSecureString 'Agent secret from the Home Assistant integration (required)'
    $secret = [Runtime.InteropServices.Marshal]::PtrToStringBSTR([Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
    if (-not $secret.Trim()) {
        # fail closed: an agent without a secret obeys anyone on the broker
        throw 'A secret is required: Home Assistant shows it once when you add the agent.'
    }
    $password = ''
    if ($MqttUsername) {
        $sp = Read-Host -AsSecureString "MQTT password for $MqttUsername"
        $password = [Runtime.InteropServices.Marshal]::PtrToStringBSTR([Runtime.InteropServices.Marshal]::SecureStringToBSTR($sp))
    }
    $cfg = [ordered]@{
        mqtt_host = $MqttHost; mqtt_port = $MqttPort; mqtt_username = $MqttUsername; mqtt_password = $password
        agent_id = $AgentId; secret = $secret; prefix = 'power-manager'; skew_sec = 60
        dry_run = (-not $Live); state_dir = "$DataDir\state"; shutdown_sec = 60; heartbeat_sec = 60
        mosquitto_dir = $MosquittoDir
        pre_shutdown = @()
    }
    [IO.File]::WriteAllText($ConfigPath, ($cfg | ConvertTo-Json -Depth 4), (New-Object Text.UTF8Encoding $false))
    "Wrote $ConfigPath (SYSTEM and Administrators only)"
}

& powershell.exe -NoProfile -ExecutionPolicy Bypass -File "$ProgramDir\ecoflow-agent.ps1" -SelfTest
if ($LASTEXITCODE -ne 0) { throw 'agent self-test failed' }

Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
Register-ScheduledTask -TaskName $TaskName -Xml (Get-Content -Raw "$PSScriptRoot\EcoFlowAgent.task.xml") | Out-Null
Start-ScheduledTask -TaskName $TaskName
"Installed and started '$TaskName'. Log: $DataDir\agent.log"
