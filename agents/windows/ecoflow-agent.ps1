<#
.SYNOPSIS
  EcoFlow Power Management host agent for Windows (command protocol v1).

.DESCRIPTION
  Windows PowerShell 5.1, mosquitto_sub.exe / mosquitto_pub.exe (Eclipse
  Mosquitto for Windows) and .NET HMACSHA256. No Python.

  Safety rules: no text from a message is ever passed to a command or
  evaluated; commands come only from the config file (which install.ps1
  restricts to SYSTEM and Administrators). Every command is checked (shape,
  version, signature, age, id never seen before, ids kept on disk) and
  acknowledged. Shutdown: shutdown.exe /s /t N, scheduled when the command is
  accepted so Windows itself keeps the deadline; abort: shutdown.exe /a.

  STATUS: written against docs/protocol.md but NOT run yet (see README.md).

.PARAMETER Config
  Path of the JSON config (default C:\ProgramData\EcoFlowAgent\agent.json).
.PARAMETER SelfTest
  Check canonical JSON and HMAC against the protocol's pinned vector and exit.
#>
[CmdletBinding()]
param(
    [string]$Config = "$env:ProgramData\EcoFlowAgent\agent.json",
    [switch]$SelfTest,
    [switch]$DryRun
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$AgentVersion = '1.0.0'
$MaxSafeInt = [long]9007199254740991

# ------------------------------------------------------------------ logging
$script:LogFile = $null
function Write-Log([string]$Level, [string]$Text) {
    $line = '{0} {1} {2}' -f (Get-Date -Format 'yyyy-MM-dd HH:mm:ss'), $Level, $Text
    Write-Host $line
    if ($script:LogFile) { Add-Content -LiteralPath $script:LogFile -Value $line -Encoding ASCII }
}
function Get-Now { [long][Math]::Floor(([DateTimeOffset]::UtcNow).ToUnixTimeSeconds()) }

# ------------------------------------------------------------------ canonical JSON + HMAC
function Test-Printable([string]$s) { return $s -cmatch '^[\x20-\x7E]*$' }

function ConvertTo-CanonicalJson([hashtable]$Obj) {
    # keys sorted ordinally, no whitespace, only '"' and '\' escaped (values are
    # printable ASCII by protocol), integers and booleans as JSON literals
    $keys = [string[]]@($Obj.Keys | Where-Object { $_ -cne 'sig' })
    [Array]::Sort($keys, [StringComparer]::Ordinal)
    $parts = foreach ($k in $keys) {
        $v = $Obj[$k]
        if ($v -is [bool]) { $j = if ($v) { 'true' } else { 'false' } }
        elseif ($v -is [int] -or $v -is [long]) { $j = ([long]$v).ToString([Globalization.CultureInfo]::InvariantCulture) }
        else { $j = '"' + ([string]$v).Replace('\', '\\').Replace('"', '\"') + '"' }
        '"' + $k.Replace('\', '\\').Replace('"', '\"') + '":' + $j
    }
    return '{' + ($parts -join ',') + '}'
}

function Get-Hmac([string]$Text) {
    $h = New-Object System.Security.Cryptography.HMACSHA256 (, [Text.Encoding]::UTF8.GetBytes($script:Secret))
    try {
        $bytes = $h.ComputeHash([Text.Encoding]::UTF8.GetBytes($Text))
        return (($bytes | ForEach-Object { $_.ToString('x2') }) -join '')
    } finally { $h.Dispose() }
}

function Test-Equal([string]$a, [string]$b) {
    # constant-time comparison
    if ($a.Length -ne $b.Length) { return $false }
    $d = 0
    for ($i = 0; $i -lt $a.Length; $i++) { $d = $d -bor ([int][char]$a[$i] -bxor [int][char]$b[$i]) }
    return ($d -eq 0)
}

function Invoke-SelfTest {
    $saved = $script:Secret
    $script:Secret = 's3cr3t-agent-key-for-tests-only'
    $cmd = [ordered]@{ v = 1; id = '3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b'; action = 'shutdown'; delay_sec = 60
        ttl_sec = 300; issued_at = 1767225600; reason = 'grid lost and soc_min 19.5 <= 20'; device = 'R651ZAB5XXXX0001' }
    $ack = [ordered]@{ v = 1; id = '3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b'; agent = 'nas'; status = 'received'; at = 1767225601; detail = '' }
    $h1 = @{}; foreach ($k in $cmd.Keys) { $h1[$k] = $cmd[$k] }
    $h2 = @{}; foreach ($k in $ack.Keys) { $h2[$k] = $ack[$k] }
    $c1 = ConvertTo-CanonicalJson $h1
    $ok = ($c1 -ceq '{"action":"shutdown","delay_sec":60,"device":"R651ZAB5XXXX0001","id":"3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b","issued_at":1767225600,"reason":"grid lost and soc_min 19.5 <= 20","ttl_sec":300,"v":1}')
    $ok = $ok -and ((Get-Hmac $c1) -ceq '11eeb975bcbd82506888cd37ad2b34e146e2069da47e0f6a0b905276ba12a830')
    $ok = $ok -and ((Get-Hmac (ConvertTo-CanonicalJson $h2)) -ceq 'a55d515ed6fe87d63c14a2b59530b8d5362f34f11acbca40d303e180195c8999')
    $script:Secret = $saved
    return $ok
}

# ------------------------------------------------------------------ config
$script:Cfg = $null
$script:Secret = ''

function Test-ConfigAcl([string]$Path) {
    # refuse a config that ordinary users may change
    $acl = Get-Acl -LiteralPath $Path
    $weak = @('S-1-1-0', 'S-1-5-11', 'S-1-5-32-545')  # Everyone, Authenticated Users, Users
    foreach ($ace in $acl.Access) {
        if ($ace.AccessControlType -ne 'Allow') { continue }
        try { $sid = $ace.IdentityReference.Translate([Security.Principal.SecurityIdentifier]).Value } catch { continue }
        $rights = [int]$ace.FileSystemRights
        $write = [int]([Security.AccessControl.FileSystemRights]::Write -bor [Security.AccessControl.FileSystemRights]::Modify -bor [Security.AccessControl.FileSystemRights]::FullControl -bor [Security.AccessControl.FileSystemRights]::ChangePermissions -bor [Security.AccessControl.FileSystemRights]::TakeOwnership)
        if (($weak -contains $sid) -and ($rights -band $write)) {
            throw "$Path is writable by $($ace.IdentityReference); refusing it (run install.ps1 or fix its ACL)"
        }
    }
}

function Read-Config([string]$Path) {
    Test-ConfigAcl $Path
    $raw = Get-Content -LiteralPath $Path -Raw | ConvertFrom-Json
    $c = @{
        mqtt_host = '127.0.0.1'; mqtt_port = 1883; mqtt_username = ''; mqtt_password = ''; mqtt_cafile = ''
        agent_id = $env:COMPUTERNAME; secret = ''; prefix = 'power-manager'; skew_sec = 60; dry_run = $false
        state_dir = "$env:ProgramData\EcoFlowAgent\state"; shutdown_sec = 60; heartbeat_sec = 60
        mosquitto_dir = "$env:ProgramFiles\mosquitto"; pre_shutdown = @()
    }
    foreach ($p in $raw.PSObject.Properties) {
        if (-not $c.ContainsKey($p.Name)) { throw "unknown key '$($p.Name)' in $Path" }
        $c[$p.Name] = $p.Value
    }
    if ([string]$c.agent_id -cnotmatch '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$') { throw 'agent_id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }
    foreach ($n in 'mqtt_port', 'skew_sec', 'shutdown_sec', 'heartbeat_sec') { $c[$n] = [long]$c[$n] }
    $c.dry_run = [bool]$c.dry_run -or [bool]$DryRun
    return $c
}

# ------------------------------------------------------------------ processes
function ConvertTo-Arg([string]$a) {
    # quote one argument for CommandLineToArgvW / the MSVC runtime
    if ($a -ne '' -and $a -notmatch '[\s"]') { return $a }
    $out = '"'; $bs = 0
    foreach ($ch in $a.ToCharArray()) {
        if ($ch -eq '\') { $bs++; continue }
        if ($ch -eq '"') { $out += ('\' * (2 * $bs + 1)) + '"' } else { $out += ('\' * $bs) + $ch }
        $bs = 0
    }
    return $out + ('\' * (2 * $bs)) + '"'
}

function Start-Argv([string[]]$Argv, [bool]$Redirect) {
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = $Argv[0]
    $psi.Arguments = (@($Argv | Select-Object -Skip 1 | ForEach-Object { ConvertTo-Arg $_ }) -join ' ')
    $psi.UseShellExecute = $false
    $psi.CreateNoWindow = $true
    $psi.RedirectStandardOutput = $Redirect
    return [System.Diagnostics.Process]::Start($psi)
}

function Invoke-Argv([string[]]$Argv, [int]$TimeoutSec) {
    try { $p = Start-Argv $Argv $false } catch { return "cannot start: $($_.Exception.Message)" }
    if (-not $p.WaitForExit($TimeoutSec * 1000)) {
        try { $p.Kill() } catch { }
        return "timeout after ${TimeoutSec}s"
    }
    if ($p.ExitCode -ne 0) { return "exit $($p.ExitCode)" }
    return ''
}

function Get-BrokerArgs {
    $a = @('-h', [string]$script:Cfg.mqtt_host, '-p', [string]$script:Cfg.mqtt_port)
    if ($script:Cfg.mqtt_username) { $a += @('-u', [string]$script:Cfg.mqtt_username) }
    if ($script:Cfg.mqtt_password) { $a += @('-P', [string]$script:Cfg.mqtt_password) }
    if ($script:Cfg.mqtt_cafile) { $a += @('--cafile', [string]$script:Cfg.mqtt_cafile) }
    return $a
}

function Publish([string]$Topic, [string]$Payload, [bool]$Retain) {
    # the payload goes through a file (-f): no quoting of JSON on a command line
    $file = Join-Path $script:RunDir ('pub-' + [guid]::NewGuid().ToString('N') + '.json')
    [IO.File]::WriteAllText($file, $Payload, (New-Object Text.UTF8Encoding $false))
    $argv = @((Join-Path $script:Cfg.mosquitto_dir 'mosquitto_pub.exe')) + (Get-BrokerArgs) + @('-q', '1', '-t', $Topic, '-f', $file)
    if ($Retain) { $argv += '-r' }
    $err = Invoke-Argv $argv 15
    Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue
    if ($err) { Write-Log WARNING "publish to $Topic failed: $err" }
}

function Format-Signed([hashtable]$Msg) {
    $canon = ConvertTo-CanonicalJson $Msg
    if ($script:Secret) { return $canon.Substring(0, $canon.Length - 1) + ',"sig":"' + (Get-Hmac $canon) + '"}' }
    return $canon
}

function ConvertTo-Clean([string]$s) {
    $s = ($s -replace '[^\x20-\x7E]', ' ') -replace ' {2,}', ' '
    $s = $s.Trim()
    if ($s.Length -gt 200) { $s = $s.Substring(0, 200) }
    return $s
}

function Get-StatusJson([string]$State) {
    return Format-Signed @{ v = 1; agent = [string]$script:Cfg.agent_id; state = $State
        hostname = (ConvertTo-Clean $env:COMPUTERNAME); platform = 'windows'; agent_version = $AgentVersion
        dry_run = [bool]$script:Cfg.dry_run; shutdown_sec = [long]$script:Cfg.shutdown_sec; at = (Get-Now) }
}

function Send-Ack([string]$Id, [string]$Status, [string]$Detail, [string]$Ref = '', $ExecuteAt = $null) {
    $m = @{ v = 1; id = $Id; agent = [string]$script:Cfg.agent_id; status = $Status; at = (Get-Now); detail = (ConvertTo-Clean $Detail) }
    if ($Ref) { $m.ref = $Ref }
    if ($null -ne $ExecuteAt) { $m.execute_at = [long]$ExecuteAt }
    Write-Log INFO "ack $Status id=$Id $Detail"
    Publish "$script:Base/ack" (Format-Signed $m) $false
}

# ------------------------------------------------------------------ seen ids
$script:Seen = @{}
function Import-Seen {
    $script:SeenFile = Join-Path $script:Cfg.state_dir 'seen_ids.txt'
    if (-not (Test-Path -LiteralPath $script:SeenFile)) { return }
    $now = Get-Now
    $keep = @()
    foreach ($line in [IO.File]::ReadAllLines($script:SeenFile)) {
        $parts = $line.Split("`t", 2)
        if ($parts.Count -eq 2 -and [long]$parts[0] -gt $now) { $script:Seen[$parts[1]] = $true; $keep += $line }
    }
    [IO.File]::WriteAllLines($script:SeenFile, [string[]]$keep)
}
function Add-Seen([string]$Id, [long]$KeepUntil) {
    if ($script:Seen.ContainsKey($Id)) { return $false }
    $script:Seen[$Id] = $true
    [IO.File]::AppendAllText($script:SeenFile, "$KeepUntil`t$Id`r`n")
    return $true
}

# ------------------------------------------------------------------ commands
$script:Pending = $null      # @{ id; execute_at; failed }
$script:LastExecuted = $null

function Test-Command([hashtable]$m, [long]$now) {
    # returns $null when accepted, else @(status, detail); checks in protocol order
    foreach ($k in @($m.Keys)) {
        $v = $m[$k]
        $flat = ($v -is [bool]) -or ((($v -is [int]) -or ($v -is [long])) -and $v -ge 0 -and $v -le $MaxSafeInt) -or (($v -is [string]) -and (Test-Printable $v))
        if (-not $flat) { return @('rejected', "malformed: $k is not a flat value") }
    }
    $isInt = { param($x) ($x -is [int]) -or ($x -is [long]) }
    if (-not ($m.id -is [string]) -or $m.id.Length -lt 1 -or $m.id.Length -gt 128) { return @('rejected', 'malformed: id') }
    if (@('shutdown', 'abort', 'ping') -cnotcontains $m.action) { return @('rejected', 'malformed: unknown action') }
    foreach ($k in 'delay_sec', 'ttl_sec', 'issued_at') { if ($m.ContainsKey($k) -and -not (& $isInt $m[$k])) { return @('rejected', "malformed: $k") } }
    foreach ($k in 'reason', 'device') { if ($m.ContainsKey($k) -and -not ($m[$k] -is [string])) { return @('rejected', "malformed: $k") } }
    if (-not $m.ContainsKey('ttl_sec')) { return @('rejected', 'malformed: ttl_sec missing') }
    if ($m.action -ceq 'shutdown' -and -not $m.ContainsKey('delay_sec')) { return @('rejected', 'malformed: delay_sec missing') }
    $legacy = -not ($m.ContainsKey('v') -or $m.ContainsKey('issued_at') -or $m.ContainsKey('sig'))
    if (-not $legacy) {
        if (-not (& $isInt $m.v) -or $m.v -ne 1) { return @('rejected', 'unsupported_version') }
        if (-not $m.ContainsKey('issued_at')) { return @('rejected', 'malformed: issued_at missing') }
    }
    if ($script:Secret) {
        if ($legacy -or -not $m.ContainsKey('sig')) { return @('rejected', 'unsigned: a signature is required') }
        if (-not (Test-Equal (Get-Hmac (ConvertTo-CanonicalJson $m)) ([string]$m.sig).ToLowerInvariant())) { return @('rejected', 'bad_signature') }
    }
    if ($legacy) { $m.issued_at = $now }
    if ([long]$m.issued_at -gt $now + $script:Cfg.skew_sec) { return @('rejected', 'future: issued_at beyond the clock skew allowance') }
    if ($now -gt [long]$m.issued_at + [long]$m.ttl_sec + $script:Cfg.skew_sec) { return @('expired', 'expired') }
    if (-not $m.ContainsKey('delay_sec')) { $m.delay_sec = 0 }
    $keep = [Math]::Max([long]$m.issued_at + [long]$m.ttl_sec + $script:Cfg.skew_sec, $now + 7 * 86400)
    if (-not (Add-Seen $m.id $keep)) { return @('duplicate', 'duplicate: id seen before') }
    return $null
}

function Invoke-Shutdown([hashtable]$m) {
    $id = $m.id; $at = [long]$m.issued_at + [long]$m.delay_sec
    Send-Ack $id 'received' ''
    if ($script:Pending) {
        if ($at -lt $script:Pending.execute_at) {
            $script:Pending.execute_at = $at
            Start-OsShutdown $at
        }
        Send-Ack $id 'scheduled' 'merged into pending shutdown' $script:Pending.id $script:Pending.execute_at
        return
    }
    $failed = @()
    $i = 0
    foreach ($pre in @($script:Cfg.pre_shutdown)) {
        $i++
        $name = if ($pre.PSObject.Properties['name']) { [string]$pre.name } else { "pre$i" }
        $argv = [string[]]@($pre.command)
        $timeout = if ($pre.PSObject.Properties['timeout_sec']) { [int]$pre.timeout_sec } else { 60 }
        if ($script:Cfg.dry_run) { Write-Log INFO "DRY-RUN: would run pre-shutdown '$name': $($argv -join ' ') (timeout ${timeout}s)"; continue }
        Write-Log INFO "running pre-shutdown '$name'"
        $err = Invoke-Argv $argv $timeout
        if ($err) { Write-Log ERROR "pre-shutdown '$name' failed: $err"; $failed += "$name($err)" }
    }
    $detail = if ($failed.Count) { 'pre-shutdown failed: ' + ($failed -join ', ') } else { '' }
    $script:Pending = @{ id = $id; execute_at = $at; failed = $detail }
    Start-OsShutdown $at
    Send-Ack $id 'scheduled' $detail '' $at
}

function Start-OsShutdown([long]$ExecuteAt) {
    # Windows keeps the deadline itself (even if this agent dies); +2 s lets the
    # agent send "executing" at the commit point first. /t > 0 implies /f.
    $t = [Math]::Max(0, $ExecuteAt - (Get-Now)) + 2
    $argv = @("$env:SystemRoot\System32\shutdown.exe", '/s', '/t', [string]$t, '/d', 'p:6:12', '/c', 'EcoFlow Power Management: shutdown on battery')
    if ($script:Cfg.dry_run) { Write-Log WARNING "DRY-RUN: would run shutdown command: $($argv -join ' ')"; return }
    [void](Invoke-Argv @("$env:SystemRoot\System32\shutdown.exe", '/a') 15)   # replace an earlier one
    $err = Invoke-Argv $argv 15
    if ($err) { Write-Log ERROR "shutdown.exe failed: $err"; Send-Ack $script:Pending.id 'rejected' "shutdown_command_failed: $err" }
}

function Test-CommitPoint {
    if (-not $script:Pending -or (Get-Now) -lt $script:Pending.execute_at) { return }
    $p = $script:Pending
    $script:Pending = $null
    $script:LastExecuted = $p
    Send-Ack $p.id 'executing' $p.failed
}

function Invoke-Abort([hashtable]$m) {
    if (-not $script:Pending) {
        if ($script:LastExecuted) { Send-Ack $m.id 'rejected' "too_late: commit point passed at $($script:LastExecuted.execute_at)" $script:LastExecuted.id }
        else { Send-Ack $m.id 'rejected' 'nothing_pending' }
        return
    }
    if ((Get-Now) -ge $script:Pending.execute_at) {
        Test-CommitPoint
        Send-Ack $m.id 'rejected' "too_late: commit point passed at $($script:LastExecuted.execute_at)" $script:LastExecuted.id
        return
    }
    if ($script:Cfg.dry_run) { Write-Log WARNING 'DRY-RUN: would run shutdown.exe /a' }
    else { $err = Invoke-Argv @("$env:SystemRoot\System32\shutdown.exe", '/a') 15; if ($err) { Write-Log ERROR "shutdown.exe /a: $err" } }
    $ref = $script:Pending.id
    $script:Pending = $null
    Send-Ack $m.id 'aborted' 'shutdown cancelled' $ref
}

function Invoke-Message([string]$Hex) {
    $now = Get-Now
    $m = $null; $ackId = ''
    try {
        if ($Hex.Length % 2 -ne 0 -or $Hex -notmatch '^[0-9a-f]*$' -or $Hex.Length -gt 32768) { throw 'bad payload' }
        $bytes = New-Object byte[] ($Hex.Length / 2)
        for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = [Convert]::ToByte($Hex.Substring(2 * $i, 2), 16) }
        $text = (New-Object Text.UTF8Encoding($false, $true)).GetString($bytes)
        $obj = $text | ConvertFrom-Json
        if (-not ($obj -is [Management.Automation.PSCustomObject])) { throw 'not an object' }
        $m = @{}
        foreach ($p in $obj.PSObject.Properties) { $m[$p.Name] = $p.Value }
    } catch {
        Write-Log WARNING 'command -: malformed'
        Send-Ack '' 'rejected' 'malformed: not a JSON object'
        return
    }
    if (($m.id -is [string]) -and $m.id.Length -le 128 -and (Test-Printable $m.id)) { $ackId = $m.id }
    $fail = Test-Command $m $now
    if ($fail) { Write-Log WARNING "command ${ackId}: $($fail[1])"; Send-Ack $ackId $fail[0] $fail[1]; return }
    Write-Log INFO "command $($m.id): $($m.action) delay=$($m.delay_sec)s ttl=$($m.ttl_sec)s"
    switch -CaseSensitive ($m.action) {
        'ping' { Send-Ack $m.id 'pong' '' }
        'abort' { Invoke-Abort $m }
        'shutdown' { Invoke-Shutdown $m }
    }
}

# ------------------------------------------------------------------ main
function Start-Agent {
    $script:Cfg = Read-Config $Config
    $script:Secret = [string]$script:Cfg.secret
    if (-not (Invoke-SelfTest)) { throw 'HMAC/canonical JSON self-test failed' }
    $script:Base = "$($script:Cfg.prefix)/$($script:Cfg.agent_id)"
    New-Item -ItemType Directory -Force -Path $script:Cfg.state_dir | Out-Null
    $script:RunDir = Join-Path $script:Cfg.state_dir 'run'
    New-Item -ItemType Directory -Force -Path $script:RunDir | Out-Null
    $script:LogFile = Join-Path (Split-Path $script:Cfg.state_dir) 'agent.log'
    Import-Seen
    Write-Log INFO "ecoflow agent $AgentVersion (windows): id=$($script:Cfg.agent_id) dry_run=$($script:Cfg.dry_run) signed=$([bool]$script:Secret)"
    if (-not $script:Secret) { Write-Log WARNING 'no secret configured: commands are NOT authenticated' }
    $backoff = 1
    while ($true) {
        $will = Get-StatusJson 'offline'
        $argv = @((Join-Path $script:Cfg.mosquitto_dir 'mosquitto_sub.exe')) + (Get-BrokerArgs) + @(
            '-q', '1', '-c', '-i', "ecoflow-agent-$($script:Cfg.agent_id)", '-t', "$script:Base/cmd", '-F', '%x',
            '--will-topic', "$script:Base/status", '--will-payload', $will, '--will-qos', '1', '--will-retain')
        $sub = Start-Argv $argv $true
        Start-Sleep -Seconds 2
        $nextStatus = 0
        $task = $sub.StandardOutput.ReadLineAsync()
        while ($true) {
            if ($task.Wait(1000)) {
                $line = $task.Result
                if ($null -eq $line) { break }
                Invoke-Message $line.Trim()
                $task = $sub.StandardOutput.ReadLineAsync()
            } elseif ($sub.HasExited) { break }
            Test-CommitPoint
            if ((Get-Now) -ge $nextStatus -and -not $sub.HasExited) {
                # online at start and every heartbeat_sec: heals a will published
                # while mosquitto_sub reconnected by itself
                Publish "$script:Base/status" (Get-StatusJson 'online') $true
                $nextStatus = (Get-Now) + $script:Cfg.heartbeat_sec
                $backoff = 1
            }
        }
        Write-Log WARNING "mosquitto_sub ended; restarting in ${backoff}s"
        for ($i = 0; $i -lt $backoff; $i++) { Start-Sleep -Seconds 1; Test-CommitPoint }
        $backoff = [Math]::Min(60, $backoff * 2)
    }
}

if ($SelfTest) {
    if (Invoke-SelfTest) { Write-Output 'self-test PASS'; exit 0 } else { Write-Output 'self-test FAIL'; exit 1 }
}
Start-Agent
