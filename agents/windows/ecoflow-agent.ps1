<#
.SYNOPSIS
  EcoFlow Power Management host agent for Windows (protocol 2; accepts v1 commands).

.DESCRIPTION
  Windows PowerShell 5.1, mosquitto_sub.exe / mosquitto_pub.exe (Eclipse
  Mosquitto for Windows) and .NET HMACSHA256. No Python.

  Safety rules: no text from a message is ever passed to a command or
  evaluated; commands come only from the config file (which install.ps1
  restricts to SYSTEM and Administrators). Every command is checked (shape,
  version, signature, age, id never seen before, ids kept on disk) and
  acknowledged (rejections rate-limited); payloads above 8 KiB are dropped
  before parsing. The retained power lease on {prefix}/{agent_id}/power lets
  the host shut down on its own when Home Assistant falls silent during an
  outage. Without a secret the agent refuses to start unless
  allow_unauthenticated is true. The pending job and the lease live in
  state_dir\job.json and are resumed at start.

  Shutdown: pre-shutdown commands at the commit point (default) or at receipt
  (pre_shutdown_mode "early", with undo commands on abort), then
  shutdown.exe /s /t 0. When a shutdown is accepted a backstop
  shutdown.exe /s /t N (commit point + the pre-shutdown budget) is scheduled
  too, so Windows itself goes down if this agent dies; an abort cancels it
  with shutdown.exe /a.

  STATUS: written against docs/protocol.md but NOT run yet (see README.md):
  tests/agents/test_windows_agent.py parses it with the tree-sitter
  PowerShell grammar and checks what can be checked without PowerShell.

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
$AgentVersion = '2.0.0'
$MaxPayload = 8192
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
        allow_unauthenticated = $false; pre_shutdown_mode = 'commit'; kill_grace_sec = 5; late_grace_sec = 3
    }
    foreach ($p in $raw.PSObject.Properties) {
        if (-not $c.ContainsKey($p.Name)) { throw "unknown key '$($p.Name)' in $Path" }
        $c[$p.Name] = $p.Value
    }
    if ([string]$c.agent_id -cnotmatch '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$') { throw 'agent_id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }
    foreach ($n in 'mqtt_port', 'skew_sec', 'shutdown_sec', 'heartbeat_sec', 'kill_grace_sec', 'late_grace_sec') { $c[$n] = [long]$c[$n] }
    if (@('commit', 'early') -cnotcontains [string]$c.pre_shutdown_mode) { throw 'pre_shutdown_mode must be commit or early' }
    $c.dry_run = [bool]$c.dry_run -or [bool]$DryRun
    $c.allow_unauthenticated = [bool]$c.allow_unauthenticated
    if (-not [string]$c.secret -and -not $c.allow_unauthenticated) {
        throw 'no secret configured: refusing to start (paste the secret Home Assistant generated for this agent, or set allow_unauthenticated to true to accept unsigned commands from anyone on the broker)'
    }
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

function Stop-Tree($Proc) {
    # the whole tree: taskkill /T asks politely (TERM), /F after the grace (KILL)
    if ($Proc.HasExited) { return }
    $taskkill = "$env:SystemRoot\System32\taskkill.exe"
    try { [void](Start-Argv @($taskkill, '/PID', [string]$Proc.Id, '/T') $false).WaitForExit(5000) } catch { }
    if (-not $Proc.WaitForExit([int]$script:Cfg.kill_grace_sec * 1000)) {
        try { [void](Start-Argv @($taskkill, '/PID', [string]$Proc.Id, '/T', '/F') $false).WaitForExit(5000) } catch { }
        try { $Proc.Kill() } catch { }
    }
}

$script:Running = $null   # the pre-shutdown command under way (early mode, for abort)

function Invoke-Argv([string[]]$Argv, [int]$TimeoutSec, [bool]$Watch = $false) {
    # with $Watch, messages keep being handled while it runs (an abort stops it)
    # (only a watched command is $script:Running: an abort stops it and clears it)
    try { $p = Start-Argv $Argv $false } catch { return "cannot start: $($_.Exception.Message)" }
    if ($Watch) { $script:Running = $p }
    try {
        $deadline = (Get-Now) + $TimeoutSec
        while (-not $p.WaitForExit(200)) {
            if ($Watch) { [void](Read-Messages 0) }
            if ($p.HasExited) { break }
            if ($Watch -and $null -eq $script:Running) { return 'aborted' }
            if ((Get-Now) -ge $deadline) { Stop-Tree $p; return "timeout after ${TimeoutSec}s" }
        }
    } finally { if ($Watch) { $script:Running = $null } }
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

function Get-JobState {
    if (-not $script:Pending) { return 'none' }
    if ($script:Pending.executing) { return 'executing' }
    return 'pending'
}

function Get-StatusJson([string]$State) {
    $m = @{ v = 1; protocol = 2; agent = [string]$script:Cfg.agent_id; state = $State
        hostname = (ConvertTo-Clean $env:COMPUTERNAME); platform = 'windows'; agent_version = $AgentVersion
        dry_run = [bool]$script:Cfg.dry_run; shutdown_sec = [long]$script:Cfg.shutdown_sec; at = (Get-Now) }
    if ($State -ceq 'online') {
        $m.job = Get-JobState
        if ($script:Pending) { $m.job_id = [string]$script:Pending.id }
        if ($null -ne $script:LeaseDeadline -and $null -ne $script:LeaseBy) { $m.lease_deadline = [long]$script:LeaseBy }
        foreach ($k in @($script:Interface.Keys)) { $m[$k] = $script:Interface[$k] }
    }
    return Format-Signed $m
}

$script:Interface = @{}
function Get-BrokerInterface {
    # MAC and broadcast address of the interface that routes to the broker (Wake-on-LAN)
    $r = @{}
    try {
        $ip = [Net.Dns]::GetHostAddresses([string]$script:Cfg.mqtt_host) | Where-Object { $_.AddressFamily -eq 'InterNetwork' } | Select-Object -First 1
        if ($null -eq $ip -or [Net.IPAddress]::IsLoopback($ip)) { return $r }
        $local = Find-NetRoute -RemoteIPAddress $ip.IPAddressToString -ErrorAction Stop | Where-Object { $_.PSObject.Properties['PrefixLength'] -and $_.PSObject.Properties['IPAddress'] } | Select-Object -First 1
        if ($null -eq $local) { return $r }
        $adapter = Get-NetAdapter -InterfaceIndex $local.InterfaceIndex -ErrorAction Stop
        $mac = ([string]$adapter.MacAddress).Replace('-', ':').ToLowerInvariant()
        if ($mac -cnotmatch '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$') { return $r }
        $r.mac = $mac
        $bytes = ([Net.IPAddress]::Parse([string]$local.IPAddress)).GetAddressBytes()
        $prefix = [int]$local.PrefixLength
        for ($i = 0; $i -lt 4; $i++) {
            $bits = [Math]::Max(0, [Math]::Min(8, $prefix - 8 * $i))
            $hostMask = (255 -shr $bits) -band 255
            $bytes[$i] = [byte]($bytes[$i] -bor $hostMask)
        }
        $r.broadcast = ($bytes | ForEach-Object { [string]$_ }) -join '.'
    } catch { Write-Log INFO "interface towards the broker unknown: $($_.Exception.Message)" }
    return $r
}

function Publish-Status { Publish "$script:Base/status" (Get-StatusJson 'online') $true }

function Send-Ack([string]$Id, [string]$Status, [string]$Detail, [string]$Ref = '', $ExecuteAt = $null, $ExecuteIn = $null, [string]$Job = '') {
    $m = @{ v = 1; id = $Id; agent = [string]$script:Cfg.agent_id; status = $Status; at = (Get-Now); detail = (ConvertTo-Clean $Detail) }
    if ($Ref) { $m.ref = $Ref }
    if ($null -ne $ExecuteAt) { $m.execute_at = [long]$ExecuteAt }
    if ($null -ne $ExecuteIn) { $m.execute_in = [long][Math]::Max(0, $ExecuteIn) }
    if ($Job) { $m.job = $Job }
    Write-Log INFO "ack $Status id=$Id $Detail"
    Publish "$script:Base/ack" (Format-Signed $m) $false
}

# rejection (and duplicate) acks: a burst of 20, then 2 per second
$script:RejTokens = 20.0
$script:RejAt = 0
function Test-RejectAllowed {
    $t = Get-Now
    $script:RejTokens = [Math]::Min(20.0, $script:RejTokens + ($t - $script:RejAt) * 2.0)
    $script:RejAt = $t
    if ($script:RejTokens -ge 1) { $script:RejTokens -= 1; return $true }
    return $false
}
function Send-Rejection([string]$Id, [string]$Status, [string]$Detail) {
    if (Test-RejectAllowed) { Send-Ack $Id $Status $Detail }
    else { Write-Log WARNING "rejection ack for $Id not sent (rate limit): $Detail" }
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

# ------------------------------------------------------------------ job and lease state (job.json)
# Pending: @{ id; ids (array); kind command/lease/fsd; commit_at (sender clock);
#             deadline (our clock); issued_at; ttl_sec; failed; executing; started }
$script:Pending = $null
$script:LastExecuted = $null
$script:Lease = $null          # @{ issued_at; sig; json }
$script:LeaseDeadline = $null  # our clock
$script:LeaseBy = $null
$script:ExecutedLease = 0
$script:EpisodeDone = $false  # this host already went down in this outage (until grid present)

function Save-State {
    $job = $null
    if ($script:Pending -and $script:Pending.kind -ceq 'command') {
        $job = @{ id = $script:Pending.id; ids = @($script:Pending.ids); kind = 'command'; commit_at = $script:Pending.commit_at
            deadline = $script:Pending.deadline; issued_at = $script:Pending.issued_at; ttl_sec = $script:Pending.ttl_sec
            state = $(if ($script:Pending.executing) { 'executing' } else { 'pending' }) }
    }
    $leaseJson = $null
    if ($script:Lease) { $leaseJson = $script:Lease.json }
    $data = @{ v = 1; job = $job; lease = $leaseJson; lease_deadline = $script:LeaseDeadline; lease_by = $script:LeaseBy
        executed_lease = $script:ExecutedLease; episode_done = $script:EpisodeDone }
    $file = Join-Path $script:Cfg.state_dir 'job.json'
    $tmp = "$file.tmp"
    [IO.File]::WriteAllText($tmp, ($data | ConvertTo-Json -Depth 4 -Compress), (New-Object Text.UTF8Encoding $false))
    Move-Item -LiteralPath $tmp -Destination $file -Force
}

function Restore-State {
    $file = Join-Path $script:Cfg.state_dir 'job.json'
    if (-not (Test-Path -LiteralPath $file)) { return }
    try { $d = Get-Content -LiteralPath $file -Raw | ConvertFrom-Json } catch { Write-Log ERROR "state file $file unreadable: starting without it"; return }
    $now = Get-Now
    if ($d.PSObject.Properties['executed_lease'] -and $null -ne $d.executed_lease) { $script:ExecutedLease = [long]$d.executed_lease }
    if ($d.PSObject.Properties['episode_done']) { $script:EpisodeDone = [bool]$d.episode_done }
    if ($d.PSObject.Properties['job'] -and $null -ne $d.job) {
        $j = $d.job
        if ([string]$j.state -ceq 'executing') { Write-Log INFO "job $($j.id) was executing before this start: not repeated" }
        elseif ($now -gt [long]$j.issued_at + [long]$j.ttl_sec + $script:Cfg.skew_sec) { Write-Log WARNING "pending shutdown $($j.id) expired while stopped: dropped" }
        else {
            $script:Pending = @{ id = [string]$j.id; ids = [string[]]@($j.ids); kind = 'command'; commit_at = [long]$j.commit_at
                deadline = [long]$j.deadline; issued_at = [long]$j.issued_at; ttl_sec = [long]$j.ttl_sec; failed = ''
                executing = $false; started = @() }
            Write-Log WARNING "resuming pending shutdown $($j.id): executes in $([Math]::Max(0, [long]$j.deadline - $now))s"
        }
    }
    if ($d.PSObject.Properties['lease'] -and $d.lease) {
        $l = Test-Lease ([string]$d.lease) $now
        if ($l -is [hashtable]) {
            $script:Lease = @{ issued_at = $l.issued_at; sig = $l.sig; json = [string]$d.lease }
            if ($null -ne $d.lease_deadline -and -not $script:EpisodeDone) {
                $script:LeaseDeadline = [long]$d.lease_deadline
                $script:LeaseBy = $d.lease_by
                Write-Log WARNING "resuming the lease countdown: own shutdown in $([Math]::Max(0, $script:LeaseDeadline - $now))s"
            }
        } else { Write-Log INFO "stored lease not used at start: $l" }
    }
}

function Get-Countdown([long]$IssuedAt, [long]$Seconds, [long]$Now) {
    # kept relative: an age up to skew_sec is clock skew, not transit; only the
    # age beyond it (a message queued while we were away) is deducted
    $late = [Math]::Max(0, ($Now - $IssuedAt) - $script:Cfg.skew_sec)
    return $Seconds - $late
}

# ------------------------------------------------------------------ commands
function Test-Flat([hashtable]$m) {
    foreach ($k in @($m.Keys)) {
        $v = $m[$k]
        $flat = ($v -is [bool]) -or ((($v -is [int]) -or ($v -is [long])) -and $v -ge 0 -and $v -le $MaxSafeInt) -or (($v -is [string]) -and (Test-Printable $v))
        if (-not $flat) { return $k }
    }
    return ''
}

function Test-IsInt($x) { return (($x -is [int]) -or ($x -is [long])) }

function Test-Command([hashtable]$m, [long]$now) {
    # returns $null when accepted, else @(status, detail); checks in protocol order
    $bad = Test-Flat $m
    if ($bad) { return @('rejected', "malformed: $bad is not a flat value") }
    if (-not ($m.id -is [string]) -or $m.id.Length -lt 1 -or $m.id.Length -gt 128) { return @('rejected', 'malformed: id') }
    if (@('shutdown', 'abort', 'ping') -cnotcontains $m.action) { return @('rejected', 'malformed: unknown action') }
    foreach ($k in 'delay_sec', 'ttl_sec', 'issued_at') { if ($m.ContainsKey($k) -and -not (Test-IsInt $m[$k])) { return @('rejected', "malformed: $k") } }
    foreach ($k in 'reason', 'device') { if ($m.ContainsKey($k) -and -not ($m[$k] -is [string])) { return @('rejected', "malformed: $k") } }
    if ($m.ContainsKey('ref') -and (-not ($m.ref -is [string]) -or $m.ref.Length -lt 1 -or $m.ref.Length -gt 128)) { return @('rejected', 'malformed: ref') }
    if (-not $m.ContainsKey('ttl_sec')) { return @('rejected', 'malformed: ttl_sec missing') }
    if ($m.action -ceq 'shutdown' -and -not $m.ContainsKey('delay_sec')) { return @('rejected', 'malformed: delay_sec missing') }
    $legacy = -not ($m.ContainsKey('v') -or $m.ContainsKey('issued_at') -or $m.ContainsKey('sig'))
    if (-not $legacy) {
        if (-not (Test-IsInt $m.v) -or $m.v -ne 1) { return @('rejected', 'unsupported_version') }
        if (-not $m.ContainsKey('issued_at')) { return @('rejected', 'malformed: issued_at missing') }
    }
    if ($script:Secret) {
        if ($legacy -or -not $m.ContainsKey('sig')) { return @('rejected', 'unsigned: a signature is required') }
        if (-not (Test-Equal (Get-Hmac (ConvertTo-CanonicalJson $m)) ([string]$m.sig).ToLowerInvariant())) { return @('rejected', 'bad_signature') }
    }
    if ($legacy) { $m.issued_at = $now }
    if ([long]$m.issued_at -gt $now + $script:Cfg.skew_sec) { return @('rejected', 'future: issued_at beyond the clock skew allowance') }
    # an abort naming the pending job is honoured past its ttl (queued behind a late shutdown)
    $lateAbort = ($m.action -ceq 'abort') -and $m.ContainsKey('ref') -and $script:Pending -and -not $script:Pending.executing -and (@($script:Pending.ids) -ccontains $m.ref)
    if ($now -gt [long]$m.issued_at + [long]$m.ttl_sec + $script:Cfg.skew_sec -and -not $lateAbort) { return @('expired', 'expired') }
    if (-not $m.ContainsKey('delay_sec')) { $m.delay_sec = 0 }
    $keep = [Math]::Max([long]$m.issued_at + [long]$m.ttl_sec + $script:Cfg.skew_sec, $now + 7 * 86400)
    if (-not (Add-Seen $m.id $keep)) { return @('duplicate', 'duplicate: id seen before') }
    return $null
}

function Send-Duplicate([string]$Id) {
    $job = 'none'; $at = $null
    if ($script:Pending -and (@($script:Pending.ids) -ccontains $Id)) { $job = Get-JobState; $at = $script:Pending.commit_at }
    elseif ($script:LastExecuted -and (@($script:LastExecuted.ids) -ccontains $Id)) { $job = 'executing' }
    Write-Log WARNING "command ${Id}: id seen before"
    if (Test-RejectAllowed) { Send-Ack $Id 'duplicate' 'duplicate: id seen before' '' $at $null $job }
}

function Get-PreBudget {
    $sum = 0
    foreach ($pre in @($script:Cfg.pre_shutdown)) {
        if ($pre.PSObject.Properties['timeout_sec']) { $sum += [int]$pre.timeout_sec } else { $sum += 60 }
    }
    return $sum
}

function Invoke-PreCommands([bool]$Watch) {
    # runs the configured pre-shutdown commands for $script:Pending; returns $false if aborted meanwhile
    $job = $script:Pending
    $failed = @()
    $i = 0
    foreach ($pre in @($script:Cfg.pre_shutdown)) {
        $i++
        $name = if ($pre.PSObject.Properties['name']) { [string]$pre.name } else { "pre$i" }
        $argv = [string[]]@($pre.command)
        $timeout = if ($pre.PSObject.Properties['timeout_sec']) { [int]$pre.timeout_sec } else { 60 }
        if ($script:Cfg.dry_run) { Write-Log INFO "DRY-RUN: would run pre-shutdown '$name': $($argv -join ' ') (timeout ${timeout}s)"; continue }
        Write-Log INFO "running pre-shutdown '$name'"
        $job.started = @($pre) + @($job.started)
        $err = Invoke-Argv $argv $timeout $Watch
        if ($script:Pending -ne $job) { Write-Log INFO "shutdown $($job.id) aborted during pre-shutdown '$name'"; return $false }
        if ($err) { Write-Log ERROR "pre-shutdown '$name' failed: $err"; $failed += "$name($err)" }
    }
    $job.failed = if ($failed.Count) { 'pre-shutdown failed: ' + ($failed -join ', ') } else { '' }
    return $true
}

function Invoke-Undo($Started) {
    foreach ($pre in @($Started)) {
        if (-not $pre.PSObject.Properties['undo']) { continue }
        $argv = [string[]]@($pre.undo)
        Write-Log WARNING "abort: undoing pre-shutdown: $($argv -join ' ')"
        $err = Invoke-Argv $argv 60
        if ($err) { Write-Log ERROR "undo failed: $err" }
    }
}

function Invoke-Shutdown([hashtable]$m) {
    $id = $m.id; $now = Get-Now; $at = [long]$m.issued_at + [long]$m.delay_sec
    $left = Get-Countdown ([long]$m.issued_at) ([long]$m.delay_sec) $now
    $note = ''
    if ($left -le 0) { $left = $script:Cfg.late_grace_sec; $note = 'late: commit point passed' }
    $deadline = $now + $left
    if ($script:Pending -and -not $script:Pending.executing) {
        $script:Pending.ids = @($script:Pending.ids) + @($id)
        if ($at -lt $script:Pending.commit_at) { $script:Pending.commit_at = $at }
        if ($deadline -lt $script:Pending.deadline) { $script:Pending.deadline = $deadline; Start-Backstop }
        Save-State
        Send-Ack $id 'received' ''
        Send-Ack $id 'scheduled' 'merged into pending shutdown' $script:Pending.id $script:Pending.commit_at ($script:Pending.deadline - $now)
        return
    }
    $script:Pending = @{ id = $id; ids = @($id); kind = 'command'; commit_at = $at; deadline = $deadline
        issued_at = [long]$m.issued_at; ttl_sec = [long]$m.ttl_sec; failed = ''; executing = $false; started = @() }
    Save-State
    Send-Ack $id 'received' $note
    Start-Backstop
    Publish-Status
    if ($script:Cfg.pre_shutdown_mode -ceq 'early') {
        if (-not (Invoke-PreCommands $true)) { return }
        Send-Ack $id 'scheduled' $script:Pending.failed '' $at ($script:Pending.deadline - (Get-Now))
    } else {
        Send-Ack $id 'scheduled' '' '' $at $left
    }
}

function Start-Backstop {
    # Windows keeps a deadline itself in case this agent dies: the commit point
    # plus the pre-shutdown budget. /t > 0 implies /f.
    $t = [Math]::Max(0, $script:Pending.deadline - (Get-Now)) + (Get-PreBudget) + 30
    $argv = @("$env:SystemRoot\System32\shutdown.exe", '/s', '/t', [string]$t, '/d', 'p:6:12', '/c', 'EcoFlow Power Management: shutdown on battery')
    if ($script:Cfg.dry_run) { Write-Log INFO "DRY-RUN: would schedule the backstop: $($argv -join ' ')"; return }
    [void](Invoke-Argv @("$env:SystemRoot\System32\shutdown.exe", '/a') 15)   # replace an earlier one
    $err = Invoke-Argv $argv 15
    if ($err) { Write-Log ERROR "shutdown.exe (backstop) failed: $err" }
}

function Test-CommitPoint {
    $p = $script:Pending
    if (-not $p -or $p.executing -or (Get-Now) -lt $p.deadline) { return }
    $p.executing = $true
    Save-State
    Publish-Status
    if ($script:Cfg.pre_shutdown_mode -cne 'early' -or $p.kind -cne 'command') { [void](Invoke-PreCommands $false) }
    if ($p.kind -ceq 'command') { Send-Ack $p.id 'executing' $p.failed }
    else { Write-Log WARNING "self-decided shutdown ($($p.kind)), no command from Home Assistant" }
    $script:Pending = $null
    $script:LastExecuted = $p
    # one shutdown per outage: the lease countdown does not repeat it
    $script:EpisodeDone = $true
    $script:LeaseDeadline = $null; $script:LeaseBy = $null
    Save-State
    Publish-Status
    $argv = @("$env:SystemRoot\System32\shutdown.exe", '/s', '/t', '0', '/d', 'p:6:12', '/c', 'EcoFlow Power Management: shutdown on battery')
    if ($script:Cfg.dry_run) { Write-Log WARNING "DRY-RUN: would run shutdown command: $($argv -join ' ')"; return }
    [void](Invoke-Argv @("$env:SystemRoot\System32\shutdown.exe", '/a') 15)
    $err = Invoke-Argv $argv 15
    if ($err -and $p.kind -ceq 'command') { Write-Log ERROR "shutdown.exe failed: $err"; Send-Ack $p.id 'rejected' "shutdown_command_failed: $err" }
}

function Invoke-Abort([hashtable]$m) {
    $ref = if ($m.ContainsKey('ref')) { [string]$m.ref } else { '' }
    $p = $script:Pending
    if ($p -and $p.kind -ceq 'command' -and (-not $ref -or (@($p.ids) -ccontains $ref))) {
        $target = if ($ref) { $ref } else { $p.id }
        if ($p.executing -or (Get-Now) -ge $p.deadline) {
            Send-Ack $m.id 'rejected' "too_late: commit point passed at $($p.commit_at)" $target
            return
        }
        if ($script:Cfg.dry_run) { Write-Log WARNING 'DRY-RUN: would run shutdown.exe /a' }
        else { $err = Invoke-Argv @("$env:SystemRoot\System32\shutdown.exe", '/a') 15; if ($err) { Write-Log ERROR "shutdown.exe /a: $err" } }
        if ($script:Running) { $run = $script:Running; $script:Running = $null; Stop-Tree $run }
        $script:Pending = $null
        Save-State
        Send-Ack $m.id 'aborted' 'shutdown cancelled' $target
        Publish-Status
        if ($script:Cfg.pre_shutdown_mode -ceq 'early') { Invoke-Undo $p.started }
        return
    }
    $last = $script:LastExecuted
    if ($last -and (-not $ref -or (@($last.ids) -ccontains $ref))) {
        $target = if ($ref) { $ref } else { $last.id }
        Send-Ack $m.id 'rejected' "too_late: commit point passed at $($last.commit_at)" $target
        return
    }
    if ($ref) { Send-Ack $m.id 'rejected' "nothing_pending: $ref" $ref }
    else { Send-Ack $m.id 'rejected' 'nothing_pending' }
}

function Invoke-ExecuteNow([string]$Kind, [long]$LeaseIssued) {
    # fsd or the lease deadline: a pending job commits now, or a new one starts
    $now = Get-Now
    if ($script:Pending) {
        if (-not $script:Pending.executing) { $script:Pending.deadline = $now }
        return
    }
    $script:Pending = @{ id = "$Kind-$LeaseIssued"; ids = @("$Kind-$LeaseIssued"); kind = $Kind; commit_at = $now; deadline = $now
        issued_at = $LeaseIssued; ttl_sec = 0; failed = ''; executing = $false; started = @() }
}

function ConvertFrom-Hex([string]$Hex) {
    if ($Hex.Length % 2 -ne 0 -or $Hex -notmatch '^[0-9a-f]*$' -or $Hex.Length -gt 2 * $MaxPayload) { throw 'bad payload' }
    $bytes = New-Object byte[] ($Hex.Length / 2)
    for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = [Convert]::ToByte($Hex.Substring(2 * $i, 2), 16) }
    return (New-Object Text.UTF8Encoding($false, $true)).GetString($bytes)
}

function ConvertTo-Table([string]$Text) {
    $obj = $Text | ConvertFrom-Json
    if (-not ($obj -is [Management.Automation.PSCustomObject])) { throw 'not an object' }
    $m = @{}
    foreach ($p in $obj.PSObject.Properties) { $m[$p.Name] = $p.Value }
    return $m
}

function Invoke-Message([string]$Hex) {
    $now = Get-Now
    $m = $null; $ackId = ''
    try { $m = ConvertTo-Table (ConvertFrom-Hex $Hex) } catch {
        Write-Log WARNING 'command -: malformed'
        Send-Rejection '' 'rejected' 'malformed: not a JSON object'
        return
    }
    if (($m.id -is [string]) -and $m.id.Length -le 128 -and (Test-Printable $m.id)) { $ackId = $m.id }
    $fail = Test-Command $m $now
    if ($fail) {
        if ($fail[0] -ceq 'duplicate') { Send-Duplicate $ackId; return }
        Write-Log WARNING "command ${ackId}: $($fail[1])"; Send-Rejection $ackId $fail[0] $fail[1]; return
    }
    Write-Log INFO "command $($m.id): $($m.action) delay=$($m.delay_sec)s ttl=$($m.ttl_sec)s"
    switch -CaseSensitive ($m.action) {
        'ping' { Send-Ack $m.id 'pong' '' }
        'abort' { Invoke-Abort $m }
        'shutdown' { Invoke-Shutdown $m }
    }
}

# ------------------------------------------------------------------ lease (protocol 2)
function Test-Lease([string]$Text, [long]$Now) {
    # returns a hashtable for a lease that may be acted on, else the reason (string)
    try { $m = ConvertTo-Table $Text } catch { return 'not a JSON object' }
    $bad = Test-Flat $m
    if ($bad) { return "$bad is not a flat value" }
    if (-not (Test-IsInt $m.v) -or $m.v -ne 2 -or $m.type -cne 'lease') { return 'not a version 2 lease' }
    if ($m.agent -cne [string]$script:Cfg.agent_id) { return 'lease for another agent' }
    if (@('present', 'on_battery', 'unknown') -cnotcontains $m.grid -or -not ($m.fsd -is [bool])) { return 'bad grid or fsd' }
    if (-not (Test-IsInt $m.issued_at) -or -not (Test-IsInt $m.expires_at)) { return 'missing times' }
    if ($m.ContainsKey('shutdown_by') -and -not (Test-IsInt $m.shutdown_by)) { return 'bad shutdown_by' }
    if ($script:Secret) {
        if (-not $m.ContainsKey('sig')) { return 'unsigned' }
        if (-not (Test-Equal (Get-Hmac (ConvertTo-CanonicalJson $m)) ([string]$m.sig).ToLowerInvariant())) { return 'bad_signature' }
    }
    if ([long]$m.issued_at -gt $Now + $script:Cfg.skew_sec) { return 'issued in the future' }
    if ($Now -gt [long]$m.expires_at + $script:Cfg.skew_sec) { return "expired at $($m.expires_at)" }
    $by = $null
    if ($m.ContainsKey('shutdown_by')) { $by = [long]$m.shutdown_by }
    $sig = ''
    if ($m.ContainsKey('sig')) { $sig = [string]$m.sig }
    return @{ issued_at = [long]$m.issued_at; expires_at = [long]$m.expires_at; grid = [string]$m.grid; fsd = [bool]$m.fsd
        shutdown_by = $by; sig = $sig }
}

function Invoke-Lease([string]$Hex) {
    if (-not $Hex) { Write-Log INFO 'lease cleared by Home Assistant'; return }
    $now = Get-Now
    try { $text = ConvertFrom-Hex $Hex } catch { Write-Log WARNING 'lease ignored: undecodable'; return }
    $l = Test-Lease $text $now
    if (-not ($l -is [hashtable])) { Write-Log WARNING "lease ignored: $l"; return }
    if ($script:Lease) {
        if ($l.issued_at -lt $script:Lease.issued_at) { return }
        if ($l.issued_at -eq $script:Lease.issued_at -and $l.sig -ceq $script:Lease.sig) { return }
    }
    $script:Lease = @{ issued_at = $l.issued_at; sig = $l.sig; json = $text }
    Write-Log INFO "lease: grid=$($l.grid) fsd=$($l.fsd) shutdown_by=$($l.shutdown_by) issued_at=$($l.issued_at) expires_at=$($l.expires_at)"
    if ($l.grid -ceq 'present') {
        # the outage is over (fsd may still be held for the restore confirmation)
        if ($null -ne $script:LeaseDeadline) { Write-Log WARNING 'lease says the grid is present: own shutdown cancelled' }
        $script:LeaseDeadline = $null; $script:LeaseBy = $null
        $script:EpisodeDone = $false
    } elseif (-not $l.fsd -and $null -eq $l.shutdown_by) {
        if ($null -ne $script:LeaseDeadline) { Write-Log WARNING "lease without deadline (grid $($l.grid)): own shutdown cancelled" }
        $script:LeaseDeadline = $null; $script:LeaseBy = $null
    } elseif (-not $script:EpisodeDone) {
        # fsd: the shutdown is due, at its commit point (shutdown_by) or now
        $span = 0
        $by = $now
        if ($null -ne $l.shutdown_by) { $span = $l.shutdown_by - $l.issued_at; $by = $l.shutdown_by }
        $left = [Math]::Max(0, (Get-Countdown $l.issued_at $span $now))
        $script:LeaseDeadline = $now + $left
        $script:LeaseBy = $by
        Write-Log WARNING "lease (fsd $($l.fsd)): own shutdown in ${left}s unless a newer lease arrives"
    }
    Save-State
    Publish-Status
}

function Test-LeaseDeadline {
    if ($null -eq $script:LeaseDeadline -or (Get-Now) -lt $script:LeaseDeadline) { return }
    Write-Log WARNING "no newer lease by shutdown_by $($script:LeaseBy): shutting down on our own"
    $script:LeaseDeadline = $null
    $script:ExecutedLease = [long]$script:Lease.issued_at
    $script:EpisodeDone = $true
    Invoke-ExecuteNow 'lease' $script:ExecutedLease
    Save-State
}

# ------------------------------------------------------------------ main
$script:Sub = $null
$script:Task = $null

function Invoke-Line([string]$Line) {
    # "TOPIC LENGTH HEX" from mosquitto_sub -F '%t %l %x'
    $parts = $Line.Trim().Split(' ', 3)
    if ($parts.Count -lt 2) { return }
    $topic = $parts[0]
    $len = [long]0
    if (-not [long]::TryParse($parts[1], [ref]$len) -or $len -gt $MaxPayload) {
        Write-Log WARNING "dropped a $($parts[1])-byte payload on $topic"
        return
    }
    $hex = ''
    if ($parts.Count -eq 3) { $hex = $parts[2] }
    if ($topic -ceq "$script:Base/cmd") { Invoke-Message $hex }
    elseif ($topic -ceq "$script:Base/power") { Invoke-Lease $hex }
}

function Read-Messages([int]$WaitMs) {
    # handles the lines mosquitto_sub printed; returns $false once it ended
    if ($null -eq $script:Task) { return $false }
    while ($script:Task.Wait($WaitMs)) {
        $line = $script:Task.Result
        if ($null -eq $line) { $script:Task = $null; return $false }
        $script:Task = $script:Sub.StandardOutput.ReadLineAsync()
        if ($line.Length -le 2 * $MaxPayload + 400) { Invoke-Line $line }
        else { Invoke-Line (($line.Split(' ', 3) | Select-Object -First 2) -join ' ') }
        $WaitMs = 0
    }
    return -not $script:Sub.HasExited
}

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
    try { Restore-State } catch { Write-Log ERROR "state file unreadable ($($_.Exception.Message)): starting without it" }
    Write-Log INFO "ecoflow agent $AgentVersion (windows): id=$($script:Cfg.agent_id) dry_run=$($script:Cfg.dry_run) signed=$([bool]$script:Secret) pre_shutdown_mode=$($script:Cfg.pre_shutdown_mode)"
    if (-not $script:Secret) { Write-Log WARNING 'no secret configured: commands are NOT authenticated' }
    $backoff = 1
    while ($true) {
        $will = Get-StatusJson 'offline'
        $argv = @((Join-Path $script:Cfg.mosquitto_dir 'mosquitto_sub.exe')) + (Get-BrokerArgs) + @(
            '-q', '1', '-c', '-i', "ecoflow-agent-$($script:Cfg.agent_id)", '-t', "$script:Base/cmd", '-t', "$script:Base/power",
            '-F', '%t %l %x', '--will-topic', "$script:Base/status", '--will-payload', $will, '--will-qos', '1', '--will-retain')
        $script:Sub = Start-Argv $argv $true
        $script:Interface = Get-BrokerInterface
        Start-Sleep -Seconds 2
        $nextStatus = 0
        $script:Task = $script:Sub.StandardOutput.ReadLineAsync()
        while (Read-Messages 1000) {
            Test-LeaseDeadline
            Test-CommitPoint
            if ((Get-Now) -ge $nextStatus -and -not $script:Sub.HasExited) {
                # online at start and every heartbeat_sec: heals a will published
                # while mosquitto_sub reconnected by itself
                Publish-Status
                $nextStatus = (Get-Now) + $script:Cfg.heartbeat_sec
                $backoff = 1
            }
        }
        Write-Log WARNING "mosquitto_sub ended; restarting in ${backoff}s"
        for ($i = 0; $i -lt $backoff; $i++) { Start-Sleep -Seconds 1; Test-LeaseDeadline; Test-CommitPoint }
        $backoff = [Math]::Min(60, $backoff * 2)
    }
}

if ($SelfTest) {
    if (Invoke-SelfTest) { Write-Output 'self-test PASS'; exit 0 } else { Write-Output 'self-test FAIL'; exit 1 }
}
try { Start-Agent }
finally {
    if ($script:Running) { Stop-Tree $script:Running }
    if ($script:Sub -and -not $script:Sub.HasExited) { Stop-Tree $script:Sub }
}
