#!/bin/bash
# shellcheck disable=SC2034 # PRE_SHUTDOWN_* are read through ${!name}
# EcoFlow Power Management host agent for macOS (protocol 2; accepts v1 commands).
#
# Listens on $PREFIX/$AGENT_ID/cmd for signed commands and on
# $PREFIX/$AGENT_ID/power for the signed, retained power lease, and shuts the
# Mac down when told to, or on its own when the lease deadline passes with no
# newer lease (Home Assistant, the broker or the cloud gone during an outage).
#
# bash 3.2 compatible (the /bin/bash macOS ships). Needs mosquitto_sub and
# mosquitto_pub (Homebrew "mosquitto"), openssl and jq (macOS 15+ ships
# /usr/bin/jq). Runs as root from launchd.
#
# Safety rules:
#   * No text from a message is ever evaluated, expanded or passed as an
#     argument to a command. Pre-shutdown and shutdown commands come only from
#     the config file, which must not be writable by group or others.
#   * The config file is parsed as KEY=value lines; it is never sourced.
#   * The secret never appears on a command line: HMAC-SHA256 is computed
#     from its definition with `openssl dgst -sha256` reading stdin, and the
#     broker password goes to mosquitto_* through a private options file.
#   * Every command is checked (shape, version, signature, age, id never seen
#     before, ids kept on disk) and acknowledged (rejections rate-limited);
#     payloads above 8 KiB are dropped before parsing.
#   * Fail closed: without a secret it refuses to start unless
#     ALLOW_UNAUTHENTICATED=1.
#   * The pending job and the lease live on disk: a restart resumes them.
#
# Usage: ecoflow-agent.sh [-c CONFIG] [--dry-run] [--check-config]

set -u
umask 077

AGENT_VERSION="2.0.0"
CONFIG_FILE="/usr/local/etc/ecoflow-agent/agent.conf"
FORCE_DRY_RUN=0
CHECK_ONLY=0

# ---------------------------------------------------------------- defaults
MQTT_HOST="127.0.0.1"
MQTT_PORT="1883"
MQTT_USERNAME=""
MQTT_PASSWORD=""
MQTT_CAFILE=""
MQTT_CERTFILE=""
MQTT_KEYFILE=""
MQTT_TLS_INSECURE="0"
MQTT_KEEPALIVE="30"
AGENT_ID="$(hostname -s 2>/dev/null || hostname)"
SECRET=""
PREFIX="power-manager"
SKEW_SEC="60"
DRY_RUN="0"
STATE_DIR="/usr/local/var/ecoflow-agent"
SEEN_RETAIN_SEC="604800"
SHUTDOWN_COMMAND="/sbin/shutdown -h +0"
SHUTDOWN_SEC="60"
HEARTBEAT_SEC="30"
ALLOW_UNAUTHENTICATED="0"
PRE_SHUTDOWN_MODE="commit"
KILL_GRACE_SEC="5"
LATE_GRACE_SEC="3"
PRE_SHUTDOWN_1_UNDO="" PRE_SHUTDOWN_2_UNDO="" PRE_SHUTDOWN_3_UNDO="" PRE_SHUTDOWN_4_UNDO=""
PRE_SHUTDOWN_5_UNDO="" PRE_SHUTDOWN_6_UNDO="" PRE_SHUTDOWN_7_UNDO="" PRE_SHUTDOWN_8_UNDO=""
PRE_SHUTDOWN_9_UNDO=""
PRE_SHUTDOWN_1="" PRE_SHUTDOWN_2="" PRE_SHUTDOWN_3="" PRE_SHUTDOWN_4="" PRE_SHUTDOWN_5=""
PRE_SHUTDOWN_6="" PRE_SHUTDOWN_7="" PRE_SHUTDOWN_8="" PRE_SHUTDOWN_9=""
PRE_SHUTDOWN_1_TIMEOUT="60" PRE_SHUTDOWN_2_TIMEOUT="60" PRE_SHUTDOWN_3_TIMEOUT="60"
PRE_SHUTDOWN_4_TIMEOUT="60" PRE_SHUTDOWN_5_TIMEOUT="60" PRE_SHUTDOWN_6_TIMEOUT="60"
PRE_SHUTDOWN_7_TIMEOUT="60" PRE_SHUTDOWN_8_TIMEOUT="60" PRE_SHUTDOWN_9_TIMEOUT="60"
PRE_SHUTDOWN_KEYS="PRE_SHUTDOWN_1 PRE_SHUTDOWN_2 PRE_SHUTDOWN_3 PRE_SHUTDOWN_4 PRE_SHUTDOWN_5 PRE_SHUTDOWN_6 PRE_SHUTDOWN_7 PRE_SHUTDOWN_8 PRE_SHUTDOWN_9"

# ---------------------------------------------------------------- logging
log() { printf '%s %s %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$1" "$2" >&2; }
info() { log INFO "$*"; }
warn() { log WARNING "$*"; }
err() { log ERROR "$*"; }
die() { err "$*"; exit 2; }
now() { date +%s; }

# ---------------------------------------------------------------- config
# Assign one known key. Unknown keys are an error: a typo must not silently
# leave the agent without its secret.
set_key() {
  case "$1" in
    MQTT_HOST) MQTT_HOST="$2" ;;
    MQTT_PORT) MQTT_PORT="$2" ;;
    MQTT_USERNAME) MQTT_USERNAME="$2" ;;
    MQTT_PASSWORD) MQTT_PASSWORD="$2" ;;
    MQTT_CAFILE) MQTT_CAFILE="$2" ;;
    MQTT_CERTFILE) MQTT_CERTFILE="$2" ;;
    MQTT_KEYFILE) MQTT_KEYFILE="$2" ;;
    MQTT_TLS_INSECURE) MQTT_TLS_INSECURE="$2" ;;
    MQTT_KEEPALIVE) MQTT_KEEPALIVE="$2" ;;
    AGENT_ID) AGENT_ID="$2" ;;
    SECRET) SECRET="$2" ;;
    PREFIX) PREFIX="$2" ;;
    SKEW_SEC) SKEW_SEC="$2" ;;
    DRY_RUN) DRY_RUN="$2" ;;
    STATE_DIR) STATE_DIR="$2" ;;
    SEEN_RETAIN_SEC) SEEN_RETAIN_SEC="$2" ;;
    SHUTDOWN_COMMAND) SHUTDOWN_COMMAND="$2" ;;
    SHUTDOWN_SEC) SHUTDOWN_SEC="$2" ;;
    HEARTBEAT_SEC) HEARTBEAT_SEC="$2" ;;
    ALLOW_UNAUTHENTICATED) ALLOW_UNAUTHENTICATED="$2" ;;
    PRE_SHUTDOWN_MODE) PRE_SHUTDOWN_MODE="$2" ;;
    KILL_GRACE_SEC) KILL_GRACE_SEC="$2" ;;
    LATE_GRACE_SEC) LATE_GRACE_SEC="$2" ;;
    PRE_SHUTDOWN_[1-9]_UNDO) eval_free_set_undo "$1" "$2" ;;
    PRE_SHUTDOWN_1) PRE_SHUTDOWN_1="$2" ;;
    PRE_SHUTDOWN_2) PRE_SHUTDOWN_2="$2" ;;
    PRE_SHUTDOWN_3) PRE_SHUTDOWN_3="$2" ;;
    PRE_SHUTDOWN_4) PRE_SHUTDOWN_4="$2" ;;
    PRE_SHUTDOWN_5) PRE_SHUTDOWN_5="$2" ;;
    PRE_SHUTDOWN_6) PRE_SHUTDOWN_6="$2" ;;
    PRE_SHUTDOWN_7) PRE_SHUTDOWN_7="$2" ;;
    PRE_SHUTDOWN_8) PRE_SHUTDOWN_8="$2" ;;
    PRE_SHUTDOWN_9) PRE_SHUTDOWN_9="$2" ;;
    PRE_SHUTDOWN_1_TIMEOUT) PRE_SHUTDOWN_1_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_2_TIMEOUT) PRE_SHUTDOWN_2_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_3_TIMEOUT) PRE_SHUTDOWN_3_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_4_TIMEOUT) PRE_SHUTDOWN_4_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_5_TIMEOUT) PRE_SHUTDOWN_5_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_6_TIMEOUT) PRE_SHUTDOWN_6_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_7_TIMEOUT) PRE_SHUTDOWN_7_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_8_TIMEOUT) PRE_SHUTDOWN_8_TIMEOUT="$2" ;;
    PRE_SHUTDOWN_9_TIMEOUT) PRE_SHUTDOWN_9_TIMEOUT="$2" ;;
    *) return 1 ;;
  esac
  return 0
}

# PRE_SHUTDOWN_n_UNDO without eval: one case per digit
eval_free_set_undo() {
  case "$1" in
    PRE_SHUTDOWN_1_UNDO) PRE_SHUTDOWN_1_UNDO="$2" ;;
    PRE_SHUTDOWN_2_UNDO) PRE_SHUTDOWN_2_UNDO="$2" ;;
    PRE_SHUTDOWN_3_UNDO) PRE_SHUTDOWN_3_UNDO="$2" ;;
    PRE_SHUTDOWN_4_UNDO) PRE_SHUTDOWN_4_UNDO="$2" ;;
    PRE_SHUTDOWN_5_UNDO) PRE_SHUTDOWN_5_UNDO="$2" ;;
    PRE_SHUTDOWN_6_UNDO) PRE_SHUTDOWN_6_UNDO="$2" ;;
    PRE_SHUTDOWN_7_UNDO) PRE_SHUTDOWN_7_UNDO="$2" ;;
    PRE_SHUTDOWN_8_UNDO) PRE_SHUTDOWN_8_UNDO="$2" ;;
    PRE_SHUTDOWN_9_UNDO) PRE_SHUTDOWN_9_UNDO="$2" ;;
  esac
}

ALL_KEYS="MQTT_HOST MQTT_PORT MQTT_USERNAME MQTT_PASSWORD MQTT_CAFILE MQTT_CERTFILE MQTT_KEYFILE
MQTT_TLS_INSECURE MQTT_KEEPALIVE AGENT_ID SECRET PREFIX SKEW_SEC DRY_RUN STATE_DIR SEEN_RETAIN_SEC
SHUTDOWN_COMMAND SHUTDOWN_SEC HEARTBEAT_SEC ALLOW_UNAUTHENTICATED PRE_SHUTDOWN_MODE KILL_GRACE_SEC
LATE_GRACE_SEC PRE_SHUTDOWN_1_UNDO PRE_SHUTDOWN_2_UNDO PRE_SHUTDOWN_3_UNDO PRE_SHUTDOWN_4_UNDO
PRE_SHUTDOWN_5_UNDO PRE_SHUTDOWN_6_UNDO PRE_SHUTDOWN_7_UNDO PRE_SHUTDOWN_8_UNDO PRE_SHUTDOWN_9_UNDO
$PRE_SHUTDOWN_KEYS PRE_SHUTDOWN_1_TIMEOUT PRE_SHUTDOWN_2_TIMEOUT
PRE_SHUTDOWN_3_TIMEOUT PRE_SHUTDOWN_4_TIMEOUT PRE_SHUTDOWN_5_TIMEOUT PRE_SHUTDOWN_6_TIMEOUT
PRE_SHUTDOWN_7_TIMEOUT PRE_SHUTDOWN_8_TIMEOUT PRE_SHUTDOWN_9_TIMEOUT"

file_mode_owner() {
  # prints "MODE UID" (octal mode) on GNU and BSD/macOS stat
  stat -c '%a %u' "$1" 2>/dev/null || stat -f '%Lp %u' "$1" 2>/dev/null
}

load_config() {
  local file="$1" line key value lineno=0 mo mode owner
  [ -f "$file" ] || die "config file $file not found"
  mo="$(file_mode_owner "$file")" || die "cannot stat $file"
  mode="${mo% *}"
  owner="${mo#* }"
  # group/other write bits: the 2 in the tens or units octal digit
  case "$mode" in
    *[2367][0-7] | *[2367]) die "$file is writable by group or others (mode $mode); refusing it: chmod 600 $file" ;;
  esac
  if [ "$owner" != "0" ] && [ "$owner" != "$(id -u)" ]; then
    die "$file is owned by uid $owner, not root"
  fi
  case "$mode" in
    *[1-7][0-7] | *[1-7]) warn "$file is readable by group/others: it holds the secret; chmod 600 it" ;;
  esac
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    # trim leading blanks
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in '' | '#'*) continue ;; esac
    key="${line%%=*}"
    [ "$key" != "$line" ] || die "$file:$lineno: expected KEY=value"
    value="${line#*=}"
    key="${key%"${key##*[![:space:]]}"}"
    case "$key" in *[!A-Z0-9_]* | '') die "$file:$lineno: bad key" ;; esac
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    # strip one pair of matching outer quotes; nothing inside is interpreted
    case "$value" in
      \"*\") value="${value#\"}"; value="${value%\"}" ;;
      \'*\') value="${value#\'}"; value="${value%\'}" ;;
    esac
    set_key "$key" "$value" || die "$file:$lineno: unknown key $key"
  done < "$file"
}

apply_env_overrides() {
  local key envname val
  for key in $ALL_KEYS; do
    envname="ECOFLOW_AGENT_$key"
    if printenv "$envname" >/dev/null 2>&1; then
      val="$(printenv "$envname")"
      set_key "$key" "$val"
    fi
  done
}

is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_true() { case "$1" in 1 | true | TRUE | True | yes | on) return 0 ;; *) return 1 ;; esac; }

validate_config() {
  case "$AGENT_ID" in
    [A-Za-z0-9]*) ;;
    *) die "AGENT_ID must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\$" ;;
  esac
  case "$AGENT_ID" in *[!A-Za-z0-9_.-]*) die "AGENT_ID must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\$" ;; esac
  [ "${#AGENT_ID}" -le 64 ] || die "AGENT_ID is longer than 64 characters"
  case "$PREFIX" in '' | *[!A-Za-z0-9._/-]*) die "PREFIX must match [A-Za-z0-9._/-]+" ;; esac
  is_uint "$MQTT_PORT" || die "MQTT_PORT must be a number"
  is_uint "$SKEW_SEC" || die "SKEW_SEC must be a number"
  is_uint "$SHUTDOWN_SEC" || die "SHUTDOWN_SEC must be a number"
  is_uint "$HEARTBEAT_SEC" || die "HEARTBEAT_SEC must be a number"
  [ "$HEARTBEAT_SEC" -ge 1 ] || die "HEARTBEAT_SEC must be >= 1"
  is_uint "$SEEN_RETAIN_SEC" || die "SEEN_RETAIN_SEC must be a number"
  is_uint "$MQTT_KEEPALIVE" || die "MQTT_KEEPALIVE must be a number"
  local i t
  for i in 1 2 3 4 5 6 7 8 9; do
    t="PRE_SHUTDOWN_${i}_TIMEOUT"
    is_uint "${!t}" || die "$t must be a number"
  done
  [ -n "$SHUTDOWN_COMMAND" ] || die "SHUTDOWN_COMMAND is empty"
  is_uint "$KILL_GRACE_SEC" || die "KILL_GRACE_SEC must be a number"
  is_uint "$LATE_GRACE_SEC" || die "LATE_GRACE_SEC must be a number"
  case "$PRE_SHUTDOWN_MODE" in commit | early) ;; *) die "PRE_SHUTDOWN_MODE must be commit or early" ;; esac
  if is_true "$DRY_RUN"; then DRY_RUN=1; else DRY_RUN=0; fi
  [ "$FORCE_DRY_RUN" = 1 ] && DRY_RUN=1
  if is_true "$ALLOW_UNAUTHENTICATED"; then ALLOW_UNAUTHENTICATED=1; else ALLOW_UNAUTHENTICATED=0; fi
  if [ -z "$SECRET" ] && [ "$ALLOW_UNAUTHENTICATED" != 1 ]; then
    die "no secret configured: refusing to start (paste the secret Home Assistant generated for this agent, or set ALLOW_UNAUTHENTICATED=1 (allow_unauthenticated) to accept unsigned commands from anyone on the broker)"
  fi
  return 0
}

# ---------------------------------------------------------------- HMAC-SHA256
# HMAC from its definition (RFC 2104) so the key never is an argv:
#   H((K ^ opad) || H((K ^ ipad) || m)), K padded to 64 bytes.
IPAD_FMT=""
OPAD_FMT=""

hmac_init() {
  local key_hex byte i=0 ipad="" opad=""
  if [ "${#SECRET}" -gt 64 ]; then
    key_hex="$(printf '%s' "$SECRET" | openssl dgst -sha256 -binary | od -An -v -tx1)"
  else
    key_hex="$(printf '%s' "$SECRET" | od -An -v -tx1)"
  fi
  for byte in $key_hex; do
    ipad="$ipad$(printf '\\x%02x' $((0x$byte ^ 0x36)))"
    opad="$opad$(printf '\\x%02x' $((0x$byte ^ 0x5c)))"
    i=$((i + 1))
  done
  while [ "$i" -lt 64 ]; do
    ipad="$ipad\\x36"
    opad="$opad\\x5c"
    i=$((i + 1))
  done
  IPAD_FMT="$ipad"
  OPAD_FMT="$opad"
}

# hmac_hex MESSAGE -> lowercase hex on stdout
hmac_hex() {
  local out
  # shellcheck disable=SC2059 # the formats hold only \xHH escapes we built
  out="$({
    printf "$OPAD_FMT"
    { printf "$IPAD_FMT"; printf '%s' "$1"; } | openssl dgst -sha256 -binary
  } | openssl dgst -sha256 -hex)" || return 1
  printf '%s' "${out##* }"
}

hmac_selftest() {
  # Pinned vector of the protocol: refuse to run if this host computes it wrong.
  local saved="$SECRET" got
  SECRET="s3cr3t-agent-key-for-tests-only"
  hmac_init
  got="$(hmac_hex '{"action":"shutdown","delay_sec":60,"device":"R651ZAB5XXXX0001","id":"3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b","issued_at":1767225600,"reason":"grid lost and soc_min 19.5 <= 20","ttl_sec":300,"v":1}')"
  SECRET="$saved"
  [ "$got" = "11eeb975bcbd82506888cd37ad2b34e146e2069da47e0f6a0b905276ba12a830" ] ||
    die "HMAC self-test failed (got '$got'): check openssl and od"
  # a key with bytes that XOR to NUL (6 and \) and one longer than 64 bytes
  SECRET='6\6\-key'
  hmac_init
  got="$(hmac_hex 'abc')"
  [ "$got" = "513eeb9751300d4f0f1844dbb8fae4124ff7cc64e779e8deca6c5e9175d6f837" ] ||
    die "HMAC self-test (NUL bytes) failed (got '$got')"
  SECRET="6666666666666666666666666666666666666666666666666666666666666666666666"
  hmac_init
  got="$(hmac_hex 'abc')"
  [ "$got" = "82293f77ac8b37a2947d666f825bd6797f1a9edc467be974eed43aa2adcbec1d" ] ||
    die "HMAC self-test (long key) failed (got '$got')"
  SECRET="$saved"
  hmac_init
}

# ---------------------------------------------------------------- MQTT
RUN_DIR=""
BASE=""
SUB_PID=""
FILTER_PID=""
WATCHDOG_PID=""
MAX_PAYLOAD=8192

write_client_options() {
  # mosquitto_sub/mosquitto_pub read default options from
  # $XDG_CONFIG_HOME/mosquitto_{sub,pub}: keeps the password off argv.
  local f
  for f in mosquitto_sub mosquitto_pub; do
    {
      printf -- '-h %s\n-p %s\n' "$MQTT_HOST" "$MQTT_PORT"
      [ -n "$MQTT_USERNAME" ] && printf -- '-u %s\n' "$MQTT_USERNAME"
      [ -n "$MQTT_PASSWORD" ] && printf -- '-P %s\n' "$MQTT_PASSWORD"
      [ -n "$MQTT_CAFILE" ] && printf -- '--cafile %s\n' "$MQTT_CAFILE"
      [ -n "$MQTT_CERTFILE" ] && printf -- '--cert %s\n' "$MQTT_CERTFILE"
      [ -n "$MQTT_KEYFILE" ] && printf -- '--key %s\n' "$MQTT_KEYFILE"
      is_true "$MQTT_TLS_INSECURE" && printf -- '--insecure\n'
      true
    } > "$RUN_DIR/$f"
  done
}

mqtt_publish() { # topic payload retain(0/1)
  local retain_flag=""
  [ "$3" = 1 ] && retain_flag="-r"
  # shellcheck disable=SC2086 # retain_flag is empty or -r
  XDG_CONFIG_HOME="$RUN_DIR" mosquitto_pub -q 1 -i "ecoflow-agent-$AGENT_ID-pub-$$" \
    -t "$1" -m "$2" $retain_flag >/dev/null 2>&1 || {
    warn "publish to $1 failed"
    return 1
  }
}

# sign_json CANONICAL -> signed JSON on stdout (unchanged if no secret)
sign_json() {
  if [ -n "$SECRET" ]; then
    printf '%s,"sig":"%s"}' "${1%\}}" "$(hmac_hex "$1")"
  else
    printf '%s' "$1"
  fi
}

# shellcheck disable=SC2016 # jq programs, not shell
JQ_CLEAN='def clean: explode | map(if . < 32 then 32 elif . >= 127 then empty else . end) | implode
      | split(" ") | map(select(. != "")) | join(" ") | .[0:200];'

job_state() { # -> none / pending / executing
  if [ -z "$PENDING_ID" ]; then echo none
  elif [ "$EXECUTING" = 1 ]; then echo executing
  else echo pending; fi
}

status_json() { # state
  local canon dr=false job="" jid="" dl=""
  [ "$DRY_RUN" = 1 ] && dr=true
  if [ "$1" = online ]; then
    job="$(job_state)"
    jid="$PENDING_ID"
    [ -n "$LEASE_DEADLINE" ] && dl="$LEASE_BY"
  fi
  canon="$(jq -ncSa --arg agent "$AGENT_ID" --arg state "$1" --arg host "$(hostname)" \
    --arg ver "$AGENT_VERSION" --argjson dry "$dr" --argjson ss "$SHUTDOWN_SEC" \
    --argjson at "$(now)" --arg job "$job" --arg jid "$jid" --arg dl "$dl" \
    --arg mac "$([ "$1" = online ] && printf '%s' "$IF_MAC")" \
    --arg brd "$([ "$1" = online ] && printf '%s' "$IF_BRD")" \
    "$JQ_CLEAN"'
     {v:1, protocol:2, agent:$agent, state:$state, hostname:($host | clean), platform:"macos",
      agent_version:$ver, dry_run:$dry, shutdown_sec:$ss, at:$at}
     + (if $job != "" then {job:$job} else {} end)
     + (if $jid != "" then {job_id:$jid} else {} end)
     + (if $dl != "" then {lease_deadline:($dl|tonumber)} else {} end)
     + (if $mac != "" then {mac:$mac} else {} end)
     + (if $brd != "" then {broadcast:$brd} else {} end)')"
  sign_json "$canon"
}

publish_status() { mqtt_publish "$BASE/status" "$(status_json online)" 1; }

# The MAC and broadcast address of the interface the broker is reached
# through (for Wake-on-LAN by the integration); empty when unknown.
IF_MAC=""
IF_BRD=""
broker_interface() {
  local dev="" ip="$MQTT_HOST"
  IF_MAC=""
  IF_BRD=""
  if [ "$(uname -s)" = Darwin ]; then
    dev="$(route -n get "$MQTT_HOST" 2>/dev/null | awk '/interface:/ {print $2; exit}')"
    [ -n "$dev" ] || return 0
    IF_MAC="$(ifconfig "$dev" 2>/dev/null | awk '/ether / {print $2; exit}')"
    IF_BRD="$(ifconfig "$dev" 2>/dev/null | awk '/inet / {for (i = 1; i < NF; i++) if ($i == "broadcast") {print $(i + 1); exit}}')"
  elif command -v ip >/dev/null 2>&1; then
    case "$ip" in *[!0-9.]*) ip="$(getent ahostsv4 "$ip" 2>/dev/null | awk 'NR == 1 {print $1}')" ;; esac
    [ -n "$ip" ] || return 0
    dev="$(ip route get "$ip" 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')"
    [ -n "$dev" ] || return 0
    [ -r "/sys/class/net/$dev/address" ] && IF_MAC="$(cat "/sys/class/net/$dev/address")"
    IF_BRD="$(ip -o -4 addr show dev "$dev" 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "brd") {print $(i + 1); exit}}')"
  fi
  IF_MAC="$(printf '%s' "$IF_MAC" | tr 'A-F' 'a-f')"
  case "$IF_MAC" in
    00:00:00:00:00:00) IF_MAC="" ;;
    [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;;
    *) IF_MAC="" ;;
  esac
  case "$IF_BRD" in '' | *[!0-9.]*) IF_BRD="" ;; esac
  [ -n "$IF_MAC" ] || IF_BRD=""
  return 0
}

# ack ID STATUS DETAIL [REF [EXECUTE_AT [EXECUTE_IN [JOB]]]]
ack() {
  local canon
  canon="$(jq -ncSa --arg id "$1" --arg agent "$AGENT_ID" --arg status "$2" --arg detail "$3" \
    --arg ref "${4:-}" --arg ex "${5:-}" --arg ein "${6:-}" --arg job "${7:-}" \
    --argjson at "$(now)" \
    "$JQ_CLEAN"'
     {v:1, id:$id, agent:$agent, status:$status, at:$at, detail:($detail | clean)}
     + (if $ref != "" then {ref:$ref} else {} end)
     + (if $ex != "" then {execute_at:($ex|tonumber)} else {} end)
     + (if $ein != "" then {execute_in:($ein|tonumber)} else {} end)
     + (if $job != "" then {job:$job} else {} end)')"
  info "ack $2 id=${1:--} $3"
  mqtt_publish "$BASE/ack" "$(sign_json "$canon")" 0
}

# Rejection (and duplicate) acks: a burst of 20, then 2 per second.
REJ_TOKENS=20
REJ_AT=0
reject_allowed() {
  local t
  t="$(now)"
  REJ_TOKENS=$((REJ_TOKENS + (t - REJ_AT) * 2))
  [ "$REJ_TOKENS" -gt 20 ] && REJ_TOKENS=20
  REJ_AT="$t"
  if [ "$REJ_TOKENS" -ge 1 ]; then
    REJ_TOKENS=$((REJ_TOKENS - 1))
    return 0
  fi
  return 1
}

reject() { # id status detail
  if reject_allowed; then
    ack "$1" "$2" "$3"
  else
    warn "rejection ack for ${1:--} not sent (rate limit): $3"
  fi
}

# ---------------------------------------------------------------- seen ids
SEEN_FILE=""
SEEN_ADDED=0

seen_prune() {
  local t
  t="$(now)"
  [ -f "$SEEN_FILE" ] || return 0
  awk -F '\t' -v now="$t" '$1 + 0 > now + 0' "$SEEN_FILE" > "$SEEN_FILE.tmp" &&
    mv -f "$SEEN_FILE.tmp" "$SEEN_FILE"
}

# seen_check_add ID KEEP_UNTIL -> 0 if new (and now recorded), 1 if seen
seen_check_add() {
  if [ -f "$SEEN_FILE" ] && cut -f 2- "$SEEN_FILE" | grep -qxF -e "$1"; then
    return 1
  fi
  printf '%s\t%s\n' "$2" "$1" >> "$SEEN_FILE" || err "cannot write $SEEN_FILE"
  SEEN_ADDED=$((SEEN_ADDED + 1))
  if [ "$SEEN_ADDED" -ge 200 ]; then
    SEEN_ADDED=0
    seen_prune
  fi
  return 0
}

# ---------------------------------------------------------------- job state on disk
# The one job under way and the lease, next to the seen ids. KEY=value lines,
# parsed like the config (never sourced); the lease JSON in its own file.
PENDING_ID=""       # the job's id (a command id, lease-<issued_at> or fsd-<issued_at>)
PENDING_IDS=""      # every command id that answers for the job (merged ones), space separated
PENDING_KIND=""     # command, lease, fsd
PENDING_AT=""       # commit point on the sender's clock (acks)
PENDING_DEADLINE="" # when we execute, on our own clock
PENDING_ISSUED=""
PENDING_TTL=""
PENDING_FAILED=""
PREPARING=0
EXECUTING=0
STARTED_PRE=""      # early mode: pre-shutdown keys started (for undo)
LAST_EXEC_ID=""
LAST_EXEC_IDS=""
LAST_EXEC_AT=""
LEASE_ISSUED=""     # the lease held
LEASE_SIG=""
LEASE_BY=""
LEASE_DEADLINE=""   # own countdown, our clock
EXECUTED_LEASE=""
EPISODE_DONE=0      # this host already went down in this outage (until grid present)
JOB_FILE=""
LEASE_FILE=""

save_state() {
  local tmp="$JOB_FILE.tmp" state=pending
  [ "$EXECUTING" = 1 ] && state=executing
  {
    if [ -n "$PENDING_ID" ] && [ "$PENDING_KIND" = command ]; then
      printf 'JOB_ID=%s\nJOB_IDS=%s\nJOB_AT=%s\nJOB_DEADLINE=%s\nJOB_ISSUED=%s\nJOB_TTL=%s\nJOB_STATE=%s\n' \
        "$PENDING_ID" "$PENDING_IDS" "$PENDING_AT" "$PENDING_DEADLINE" "$PENDING_ISSUED" \
        "$PENDING_TTL" "$state"
    fi
    printf 'LEASE_DEADLINE=%s\nLEASE_BY=%s\nEXECUTED_LEASE=%s\nEPISODE_DONE=%s\n' \
      "$LEASE_DEADLINE" "$LEASE_BY" "$EXECUTED_LEASE" "$EPISODE_DONE"
  } > "$tmp" && mv -f "$tmp" "$JOB_FILE" || err "cannot write $JOB_FILE"
}

restore_state() {
  local line key value t j_id="" j_ids="" j_at="" j_dl="" j_iss="" j_ttl="" j_state="" dl="" by=""
  t="$(now)"
  [ -f "$JOB_FILE" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    key="${line%%=*}"
    value="${line#*=}"
    case "$key" in
      JOB_ID) j_id="$value" ;;
      JOB_IDS) j_ids="$value" ;;
      JOB_AT) is_uint "$value" && j_at="$value" ;;
      JOB_DEADLINE) is_uint "$value" && j_dl="$value" ;;
      JOB_ISSUED) is_uint "$value" && j_iss="$value" ;;
      JOB_TTL) is_uint "$value" && j_ttl="$value" ;;
      JOB_STATE) j_state="$value" ;;
      LEASE_DEADLINE) is_uint "$value" && dl="$value" ;;
      LEASE_BY) is_uint "$value" && by="$value" ;;
      EXECUTED_LEASE) is_uint "$value" && EXECUTED_LEASE="$value" ;;
      EPISODE_DONE) [ "$value" = 1 ] && EPISODE_DONE=1 ;;
    esac
  done < "$JOB_FILE"
  if [ -n "$j_id" ] && [ -n "$j_at" ] && [ -n "$j_dl" ] && [ -n "$j_iss" ] && [ -n "$j_ttl" ]; then
    if [ "$j_state" = executing ]; then
      info "job $j_id was executing before this start: not repeated"
    elif [ "$t" -gt $((j_iss + j_ttl + SKEW_SEC)) ]; then
      warn "pending shutdown $j_id expired while stopped: dropped"
    else
      PENDING_ID="$j_id"
      PENDING_IDS="${j_ids:-$j_id}"
      PENDING_KIND=command
      PENDING_AT="$j_at"
      PENDING_DEADLINE="$j_dl"
      PENDING_ISSUED="$j_iss"
      PENDING_TTL="$j_ttl"
      warn "resuming pending shutdown $j_id: executes in $((j_dl > t ? j_dl - t : 0))s"
    fi
  fi
  # the stored lease: used only while it has not expired
  if [ -f "$LEASE_FILE" ] && lease_check "$(cat "$LEASE_FILE")" quiet; then
    LEASE_ISSUED="$L_ISSUED"
    LEASE_SIG="$L_SIG"
    if [ -n "$dl" ] && [ "$EPISODE_DONE" != 1 ]; then
      LEASE_DEADLINE="$dl"
      LEASE_BY="$by"
      warn "resuming the lease countdown: own shutdown in $((dl > t ? dl - t : 0))s"
    fi
  fi
}

in_list() { # word list
  case " $2 " in *" $1 "*) return 0 ;; esac
  return 1
}

# ---------------------------------------------------------------- commands
# run_argv TIMEOUT WORDS [WATCH_ID]: words split on blanks, no globbing, no
# shell, in its own process group (set -m) so that stopping it ends its whole
# tree: TERM to the group, KILL after KILL_GRACE_SEC. Messages keep being
# handled while it runs; with WATCH_ID the command is stopped as soon as that
# job is no longer pending (aborted).
RUN_PID=""
run_argv() {
  local timeout="$1" words="$2" watch="${3:-}" pid start rc line
  local -a argv
  set -f
  # shellcheck disable=SC2206 # deliberate word splitting of the config value
  argv=($words)
  set +f
  set -m
  "${argv[@]}" < /dev/null >&2 2>&1 &
  pid=$!
  set +m
  RUN_PID="$pid"
  start="$(now)"
  while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$watch" ] && [ "$PENDING_ID" != "$watch" ]; then
      stop_tree "$pid"
      RUN_RESULT="aborted"
      RUN_PID=""
      return 1
    fi
    if [ $(($(now) - start)) -ge "$timeout" ]; then
      stop_tree "$pid"
      RUN_RESULT="timeout after ${timeout}s"
      RUN_PID=""
      return 1
    fi
    if [ -n "$SUB_PID" ] && [ "$IN_RUN" = 0 ]; then
      IN_RUN=1
      if IFS= read -r -t 1 line <&3; then dispatch_line "$line"; fi
      IN_RUN=0
    else
      sleep 1
    fi
  done
  wait "$pid"
  rc=$?
  RUN_PID=""
  if [ "$rc" -ne 0 ]; then
    RUN_RESULT="exit $rc"
    return 1
  fi
  RUN_RESULT="ok"
  return 0
}
IN_RUN=0

stop_tree() { # pid: TERM to its process group, KILL after the grace
  local pid="$1" waited=0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((KILL_GRACE_SEC * 5)) ]; do
    sleep 0.2
    waited=$((waited + 1))
  done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

run_pre_commands() { # id watch(0/1)
  local id="$1" watch="" key cmd tkey failed=""
  [ "$2" = 1 ] && watch="$id"
  for key in $PRE_SHUTDOWN_KEYS; do
    cmd="${!key}"
    [ -n "$cmd" ] || continue
    tkey="${key}_TIMEOUT"
    if [ "$DRY_RUN" = 1 ]; then
      info "DRY-RUN: would run pre-shutdown '$key': $cmd (timeout ${!tkey}s)"
      continue
    fi
    info "running pre-shutdown '$key': $cmd"
    STARTED_PRE="$key $STARTED_PRE"
    if ! run_argv "${!tkey}" "$cmd" "$watch"; then
      if [ -n "$watch" ] && [ "$PENDING_ID" != "$id" ]; then
        info "shutdown $id aborted during pre-shutdown '$key'"
        return 1
      fi
      err "pre-shutdown '$key' failed: $RUN_RESULT"
      failed="${failed:+$failed, }$key($RUN_RESULT)"
    fi
    if [ -n "$watch" ] && [ "$PENDING_ID" != "$id" ]; then return 1; fi
  done
  PENDING_FAILED=""
  [ -n "$failed" ] && PENDING_FAILED="pre-shutdown failed: $failed"
  return 0
}

run_undo() { # keys, most recent first
  local key ukey tkey
  for key in $1; do
    ukey="${key}_UNDO"
    tkey="${key}_TIMEOUT"
    [ -n "${!ukey}" ] || continue
    warn "abort: undoing pre-shutdown '$key': ${!ukey}"
    run_argv "${!tkey}" "${!ukey}" || err "undo of '$key' failed: $RUN_RESULT"
  done
}

# countdown ISSUED SECONDS NOW -> seconds left, kept relative: an age up to
# SKEW_SEC is clock skew, not transit; only the age beyond it is deducted.
countdown() {
  local late=$(($3 - $1 - SKEW_SEC))
  [ "$late" -lt 0 ] && late=0
  echo $(($2 - late))
}

new_job() { # id kind commit_at deadline issued ttl
  PENDING_ID="$1"
  PENDING_IDS="$1"
  PENDING_KIND="$2"
  PENDING_AT="$3"
  PENDING_DEADLINE="$4"
  PENDING_ISSUED="$5"
  PENDING_TTL="$6"
  PENDING_FAILED=""
  PREPARING=0
  EXECUTING=0
  STARTED_PRE=""
}

clear_job() {
  PENDING_ID=""
  PENDING_IDS=""
  PENDING_KIND=""
  PENDING_DEADLINE=""
  PREPARING=0
  EXECUTING=0
}

do_shutdown() { # id issued_at delay ttl
  local id="$1" exec_at=$(($2 + $3)) t left late_note="" deadline
  t="$(now)"
  left="$(countdown "$2" "$3" "$t")"
  if [ "$left" -le 0 ]; then
    left="$LATE_GRACE_SEC" # after its commit point: a grace for an abort queued behind it
    late_note="late: commit point passed"
  fi
  deadline=$((t + left))
  if [ -n "$PENDING_ID" ] && [ "$EXECUTING" = 0 ]; then
    PENDING_IDS="$PENDING_IDS $id"
    [ "$exec_at" -lt "$PENDING_AT" ] && PENDING_AT="$exec_at"
    [ "$deadline" -lt "$PENDING_DEADLINE" ] && PENDING_DEADLINE="$deadline"
    save_state
    ack "$id" received ""
    ack "$id" scheduled "merged into pending shutdown" "$PENDING_ID" "$PENDING_AT" \
      "$((PENDING_DEADLINE - t))"
    return
  fi
  new_job "$id" command "$exec_at" "$deadline" "$2" "$4"
  save_state
  ack "$id" received "$late_note"
  publish_status
  if [ "$PRE_SHUTDOWN_MODE" = early ]; then
    PREPARING=1
    if ! run_pre_commands "$id" 1; then
      PREPARING=0
      return
    fi
    PREPARING=0
    ack "$id" scheduled "$PENDING_FAILED" "" "$PENDING_AT" "$((PENDING_DEADLINE > $(now) ? PENDING_DEADLINE - $(now) : 0))"
  else
    ack "$id" scheduled "" "" "$PENDING_AT" "$left"
  fi
  info "shutdown $id: commit point in $((PENDING_DEADLINE - $(now)))s"
}

check_commit_point() {
  [ -n "$PENDING_ID" ] || return 0
  [ "$PREPARING" = 0 ] || return 0
  [ "$EXECUTING" = 0 ] || return 0
  [ "$(now)" -ge "$PENDING_DEADLINE" ] || return 0
  local id="$PENDING_ID" kind="$PENDING_KIND"
  EXECUTING=1
  save_state
  publish_status
  if [ "$PRE_SHUTDOWN_MODE" != early ] || [ "$kind" != command ]; then
    run_pre_commands "$id" 0 # at the commit point: nothing irreversible before it
  fi
  if [ "$kind" = command ]; then
    ack "$id" executing "$PENDING_FAILED"
  else
    warn "self-decided shutdown ($kind), no command from Home Assistant"
  fi
  LAST_EXEC_ID="$id"
  LAST_EXEC_IDS="$PENDING_IDS"
  LAST_EXEC_AT="$PENDING_AT"
  # one shutdown per outage: the lease countdown does not repeat it
  EPISODE_DONE=1
  LEASE_DEADLINE=""
  LEASE_BY=""
  clear_job
  save_state
  publish_status
  if [ "$DRY_RUN" = 1 ]; then
    warn "DRY-RUN: would run shutdown command: $SHUTDOWN_COMMAND"
    return 0
  fi
  warn "shutting down now: $SHUTDOWN_COMMAND"
  if ! run_argv 120 "$SHUTDOWN_COMMAND"; then
    err "shutdown command failed: $RUN_RESULT"
    [ "$kind" = command ] && ack "$id" rejected "shutdown_command_failed: $RUN_RESULT"
  fi
}

do_abort() { # id ref
  local id="$1" ref="$2" target
  if [ -n "$PENDING_ID" ] && [ "$PENDING_KIND" = command ] &&
    { [ -z "$ref" ] || in_list "$ref" "$PENDING_IDS"; }; then
    target="${ref:-$PENDING_ID}"
    if [ "$EXECUTING" = 1 ] || { [ "$(now)" -ge "$PENDING_DEADLINE" ] && [ "$PREPARING" = 0 ]; }; then
      ack "$id" rejected "too_late: commit point passed at $PENDING_AT" "$target"
      check_commit_point
      return
    fi
    if [ "$(now)" -ge "$PENDING_DEADLINE" ]; then
      ack "$id" rejected "too_late: commit point passed at $PENDING_AT" "$target"
      return
    fi
    warn "shutdown $PENDING_ID aborted by $id"
    local undo="$STARTED_PRE"
    if [ -n "$RUN_PID" ]; then
      warn "abort: stopping the running pre-shutdown command"
      stop_tree "$RUN_PID"
    fi
    clear_job
    save_state
    ack "$id" aborted "shutdown cancelled" "$target"
    publish_status
    [ -n "$undo" ] && [ "$PRE_SHUTDOWN_MODE" = early ] && run_undo "$undo"
    return
  fi
  if [ -n "$LAST_EXEC_ID" ] && { [ -z "$ref" ] || in_list "$ref" "$LAST_EXEC_IDS"; }; then
    ack "$id" rejected "too_late: commit point passed at $LAST_EXEC_AT" "${ref:-$LAST_EXEC_ID}"
    return
  fi
  if [ -n "$ref" ]; then
    ack "$id" rejected "nothing_pending: $ref" "$ref"
  else
    ack "$id" rejected "nothing_pending"
  fi
}

do_duplicate() { # id
  local job=none ex=""
  if [ -n "$PENDING_ID" ] && in_list "$1" "$PENDING_IDS"; then
    job="$(job_state)"
    ex="$PENDING_AT"
  elif [ -n "$LAST_EXEC_ID" ] && in_list "$1" "$LAST_EXEC_IDS"; then
    job=executing
  fi
  warn "command $1: id seen before"
  if reject_allowed; then
    ack "$1" duplicate "duplicate: id seen before" "" "$ex" "" "$job"
  fi
}

# The jq program: checks shape and version, prints one line of fields joined
# by the unit separator (0x1f, never in a checked field):
#   OK  id  action  delay  ttl  issued_at-or-empty  legacy(0/1)  sig  ref
# or  ERR  ack-id  status  detail
# shellcheck disable=SC2016 # a jq program, not shell
JQ_CHECK='
def uint: type == "number" and . >= 0 and . == floor and . < 9007199254740992;
def pstr: type == "string" and (explode | all(. >= 32 and . < 127));
if length != 1 then ["ERR", "", "rejected", "malformed: not one JSON value"] | join("\u001f")
else .[0] |
if type != "object" then ["ERR", "", "rejected", "malformed: not a JSON object"] | join("\u001f")
else
  ((.id | if pstr and length <= 128 then . else "" end)) as $ackid
  | ((has("v") or has("sig") or has("issued_at")) | not) as $legacy
  | if [.[] | select((type == "boolean") or uint or pstr | not)] | length > 0 then
      ["ERR", $ackid, "rejected", "malformed: only printable-ASCII strings, integers and booleans"]
    elif (.id | pstr and length >= 1 and length <= 128) | not then
      ["ERR", $ackid, "rejected", "malformed: id must be a non-empty printable string"]
    elif (.action | IN("shutdown", "abort", "ping")) | not then
      ["ERR", $ackid, "rejected", "malformed: unknown action"]
    elif [("delay_sec", "ttl_sec", "issued_at") as $k | select(has($k)) | .[$k] | select(uint | not)] | length > 0 then
      ["ERR", $ackid, "rejected", "malformed: delay_sec, ttl_sec and issued_at must be non-negative integers"]
    elif [("reason", "device") as $k | select(has($k)) | .[$k] | select(type != "string")] | length > 0 then
      ["ERR", $ackid, "rejected", "malformed: reason and device must be strings"]
    elif has("ref") and (.ref | pstr and length >= 1 and length <= 128 | not) then
      ["ERR", $ackid, "rejected", "malformed: ref must be a non-empty printable string"]
    elif has("ttl_sec") | not then ["ERR", $ackid, "rejected", "malformed: ttl_sec missing"]
    elif .action == "shutdown" and (has("delay_sec") | not) then
      ["ERR", $ackid, "rejected", "malformed: delay_sec missing"]
    elif ($legacy | not) and (.v != 1) then ["ERR", $ackid, "rejected", "unsupported_version"]
    elif ($legacy | not) and (has("issued_at") | not) then
      ["ERR", $ackid, "rejected", "malformed: issued_at missing"]
    elif has("sig") and (.sig | pstr and length <= 128 | not) then
      ["ERR", $ackid, "rejected", "bad_signature"]
    else
      ["OK", .id, .action, (.delay_sec // 0 | tostring), (.ttl_sec | tostring),
       (if $legacy then "" else (.issued_at | tostring) end),
       (if $legacy then "1" else "0" end), ((.sig // "") | ascii_downcase),
       (if .action == "abort" then (.ref // "") else "" end)]
    end
  | join("\u001f")
end
end'

# Leases: OK  issued  expires  grid  fsd  shutdown_by-or-empty  sig   or   ERR reason
# shellcheck disable=SC2016 # a jq program, not shell
JQ_LEASE='
def uint: type == "number" and . >= 0 and . == floor and . < 9007199254740992;
def pstr: type == "string" and (explode | all(. >= 32 and . < 127));
if length != 1 or (.[0] | type) != "object" then "ERR\u001fnot a JSON object"
else .[0] |
  if [.[] | select((type == "boolean") or uint or pstr | not)] | length > 0 then "ERR\u001fnot flat"
  elif .v != 2 or .type != "lease" then "ERR\u001fnot a version 2 lease"
  elif .agent != $agent then "ERR\u001flease for another agent"
  elif (.grid | IN("present", "on_battery", "unknown") | not) or (.fsd | type) != "boolean" then
    "ERR\u001fbad grid or fsd"
  elif (.issued_at | uint | not) or (.expires_at | uint | not) then "ERR\u001fmissing times"
  elif has("shutdown_by") and (.shutdown_by | uint | not) then "ERR\u001fbad shutdown_by"
  elif has("sig") and (.sig | pstr | not) then "ERR\u001fbad_signature"
  else
    ["OK", (.issued_at | tostring), (.expires_at | tostring), .grid, (.fsd | tostring),
     (if has("shutdown_by") then (.shutdown_by | tostring) else "" end),
     ((.sig // "") | ascii_downcase)] | join("\u001f")
  end
end'

US="$(printf '\037')"

# decode the hex (mosquitto_sub -F %x) into PAYLOAD
hex_decode() {
  local hex="$1" fmt
  case "$hex" in *[!0-9a-f]*) return 1 ;; esac
  [ $(( ${#hex} % 2 )) -eq 0 ] || return 1
  [ "${#hex}" -le $((MAX_PAYLOAD * 2)) ] || return 1
  # reject NUL bytes (an even-aligned "00")
  fmt="$(printf '%s' "$hex" | sed 's/../\\x&/g')"
  case "$fmt" in *'\x00'*) return 1 ;; esac
  # shellcheck disable=SC2059 # fmt holds only \xHH escapes
  PAYLOAD="$(printf "$fmt"; printf x)"
  PAYLOAD="${PAYLOAD%x}"
  return 0
}

# lease_check JSON [quiet] -> 0 and L_* set if the lease may be acted on
lease_check() {
  local out status reason canon expect t
  t="$(now)"
  if ! out="$(printf '%s' "$1" | jq -s -r --arg agent "$AGENT_ID" "$JQ_LEASE" 2>/dev/null)" ||
    [ -z "$out" ]; then
    [ -n "${2:-}" ] || warn "lease ignored: not JSON"
    return 1
  fi
  IFS="$US" read -r status L_ISSUED L_EXPIRES L_GRID L_FSD L_BY L_SIG <<EOF_LEASE
$out
EOF_LEASE
  if [ "$status" != OK ]; then
    reason="$L_ISSUED"
    [ -n "${2:-}" ] || warn "lease ignored: $reason"
    return 1
  fi
  if [ -n "$SECRET" ]; then
    if [ -z "$L_SIG" ]; then
      [ -n "${2:-}" ] || warn "lease ignored: unsigned"
      return 1
    fi
    canon="$(printf '%s' "$1" | jq -cSa 'del(.sig)')"
    expect="$(hmac_hex "$canon")"
    if [ -z "$expect" ] || [ "$expect" != "$L_SIG" ]; then
      [ -n "${2:-}" ] || warn "lease ignored: bad_signature"
      return 1
    fi
  fi
  if [ "$L_ISSUED" -gt $((t + SKEW_SEC)) ]; then
    [ -n "${2:-}" ] || warn "lease ignored: issued in the future"
    return 1
  fi
  if [ "$t" -gt $((L_EXPIRES + SKEW_SEC)) ]; then
    [ -n "${2:-}" ] || warn "lease ignored: expired at $L_EXPIRES"
    return 1
  fi
  return 0
}

handle_lease() { # hex
  local t left
  if [ -z "$1" ]; then
    info "lease cleared by Home Assistant"
    return
  fi
  hex_decode "$1" || { warn "lease ignored: undecodable"; return; }
  lease_check "$PAYLOAD" || return
  if [ -n "$LEASE_ISSUED" ]; then
    if [ "$L_ISSUED" -lt "$LEASE_ISSUED" ]; then return; fi
    if [ "$L_ISSUED" = "$LEASE_ISSUED" ] && [ "$L_SIG" = "$LEASE_SIG" ]; then return; fi
  fi
  LEASE_ISSUED="$L_ISSUED"
  LEASE_SIG="$L_SIG"
  printf '%s' "$PAYLOAD" > "$LEASE_FILE.tmp" && mv -f "$LEASE_FILE.tmp" "$LEASE_FILE"
  info "lease: grid=$L_GRID fsd=$L_FSD shutdown_by=${L_BY:--} issued_at=$L_ISSUED expires_at=$L_EXPIRES"
  t="$(now)"
  if [ "$L_GRID" = present ]; then
    # the outage is over (fsd may still be held for the restore confirmation)
    [ -n "$LEASE_DEADLINE" ] && warn "lease says the grid is present: own shutdown cancelled"
    LEASE_DEADLINE=""
    LEASE_BY=""
    EPISODE_DONE=0
  elif [ "$L_FSD" != true ] && [ -z "$L_BY" ]; then
    [ -n "$LEASE_DEADLINE" ] && warn "lease without deadline (grid $L_GRID): own shutdown cancelled"
    LEASE_DEADLINE=""
    LEASE_BY=""
  elif [ "$EPISODE_DONE" != 1 ]; then
    # fsd: the shutdown is due, at its commit point (shutdown_by) or now
    left=0
    [ -n "$L_BY" ] && left="$(countdown "$L_ISSUED" $((L_BY - L_ISSUED)) "$t")"
    [ "$left" -lt 0 ] && left=0
    LEASE_DEADLINE=$((t + left))
    LEASE_BY="${L_BY:-$t}"
    if [ "$L_FSD" = true ]; then
      warn "lease says fsd: own shutdown in ${left}s unless a newer lease arrives"
    else
      info "lease: own shutdown in ${left}s unless a newer lease arrives"
    fi
  fi
  save_state
  publish_status
}

execute_now() { # kind lease_issued: a pending job commits now, or a new one starts
  local t
  t="$(now)"
  if [ -n "$PENDING_ID" ]; then
    [ "$EXECUTING" = 0 ] && PENDING_DEADLINE="$t"
    return
  fi
  new_job "$1-$2" "$1" "$t" "$t" "$2" 0
}

check_lease_deadline() {
  [ -n "$LEASE_DEADLINE" ] || return 0
  [ "$(now)" -ge "$LEASE_DEADLINE" ] || return 0
  warn "no newer lease by shutdown_by $LEASE_BY: shutting down on our own"
  LEASE_DEADLINE=""
  EXECUTED_LEASE="$LEASE_ISSUED"
  EPISODE_DONE=1
  execute_now lease "$LEASE_ISSUED"
  save_state
}

handle_message() {
  local hex="$1" out line1 canon t status ack_id detail
  local id action delay ttl issued legacy sig ref expect keep
  t="$(now)"
  if ! hex_decode "$hex"; then
    warn "command -: malformed: undecodable payload"
    reject "" rejected "malformed: binary payload"
    return
  fi
  if ! out="$(printf '%s' "$PAYLOAD" | jq -s -r "$JQ_CHECK" 2>/dev/null)" || [ -z "$out" ]; then
    warn "command -: malformed: not JSON"
    reject "" rejected "malformed: not JSON"
    return
  fi
  line1="$(printf '%s\n' "$out" | head -n 1)"
  IFS="$US" read -r status ack_id action detail <<EOF_ERR
$line1
EOF_ERR
  if [ "$status" = "ERR" ]; then
    # fields: ERR ack-id status detail
    warn "command ${ack_id:--}: $detail"
    reject "$ack_id" "$action" "$detail"
    return
  fi
  IFS="$US" read -r status id action delay ttl issued legacy sig ref <<EOF_OK
$line1
EOF_OK
  # -- signature
  if [ -n "$SECRET" ]; then
    if [ "$legacy" = 1 ] || [ -z "$sig" ]; then
      warn "command $id: unsigned"
      reject "$id" rejected "unsigned: a signature is required"
      return
    fi
    canon="$(printf '%s' "$PAYLOAD" | jq -cSa 'del(.sig)')"
    expect="$(hmac_hex "$canon")"
    if [ -z "$expect" ] || [ "$expect" != "$sig" ]; then
      warn "command $id: bad_signature"
      reject "$id" rejected "bad_signature"
      return
    fi
  fi
  # -- age
  [ "$legacy" = 1 ] && issued="$t"
  if [ "$issued" -gt $((t + SKEW_SEC)) ]; then
    warn "command $id: issued_at in the future"
    reject "$id" rejected "future: issued_at beyond the clock skew allowance"
    return
  fi
  if [ "$t" -gt $((issued + ttl + SKEW_SEC)) ]; then
    # an abort naming the pending job may arrive late (queued behind a late shutdown)
    if ! { [ "$action" = abort ] && [ -n "$ref" ] && [ -n "$PENDING_ID" ] &&
      [ "$EXECUTING" = 0 ] && in_list "$ref" "$PENDING_IDS"; }; then
      warn "command $id: expired"
      reject "$id" expired "expired: issued_at $issued + ttl_sec $ttl"
      return
    fi
  fi
  # -- id
  keep=$((issued + ttl + SKEW_SEC))
  [ "$keep" -lt $((t + SEEN_RETAIN_SEC)) ] && keep=$((t + SEEN_RETAIN_SEC))
  if ! seen_check_add "$id" "$keep"; then
    do_duplicate "$id"
    return
  fi
  if [ "$legacy" = 1 ]; then
    info "command $id: $action delay=${delay}s ttl=${ttl}s (unsigned legacy)"
  else
    info "command $id: $action delay=${delay}s ttl=${ttl}s${ref:+ ref=$ref}"
  fi
  case "$action" in
    ping) ack "$id" pong "" ;;
    abort) do_abort "$id" "$ref" ;;
    shutdown) do_shutdown "$id" "$issued" "$delay" "$ttl" ;;
  esac
}

# ---------------------------------------------------------------- main loop
STOPPING=0
OVERSIZE_LOGGED=0

stop_sub() {
  local p
  for p in "$WATCHDOG_PID" "$SUB_PID" "$FILTER_PID"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null
  done
  for p in "$WATCHDOG_PID" "$SUB_PID" "$FILTER_PID"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null
  done
  SUB_PID=""
  FILTER_PID=""
  WATCHDOG_PID=""
}

on_term() {
  STOPPING=1
  info "stopping"
  [ -n "$RUN_PID" ] && stop_tree "$RUN_PID"
  stop_sub
  mqtt_publish "$BASE/status" "$(status_json offline)" 1
  exec 3<&- 2>/dev/null
  rm -rf "$RUN_DIR"
  exit 0
}

# Is the subscription live? mosquitto_sub buffers its stdout when it is a
# pipe (its debug lines show up only with the next message), so the agent
# publishes a probe to its own "$BASE/probe" topic (subscribed together with
# the command topic) and publishes the retained online status once the probe
# comes back: at start, after mosquitto_sub reconnected, and whenever a
# heartbeat probe got lost (the broker may have published our will meanwhile).
PROBE_TOKEN=""
PROBE_SENT_AT=0
NEXT_PROBE=0
ONLINE=0

probe_tick() {
  local t
  t="$(now)"
  if [ -n "$PROBE_TOKEN" ]; then
    if [ "$ONLINE" = 1 ] && [ $((t - PROBE_SENT_AT)) -ge 5 ]; then
      warn "heartbeat probe not seen for 5s: broker connection lost?"
      ONLINE=0
      PROBE_TOKEN=""
    elif [ "$ONLINE" = 0 ] && [ $((t - PROBE_SENT_AT)) -ge 2 ]; then
      PROBE_TOKEN=""
    fi
  fi
  if [ -z "$PROBE_TOKEN" ] && { [ "$ONLINE" = 0 ] || [ "$t" -ge "$NEXT_PROBE" ]; }; then
    PROBE_TOKEN="probe-$t-$RANDOM$RANDOM"
    PROBE_SENT_AT="$t"
    NEXT_PROBE=$((t + HEARTBEAT_SEC))
    if ! mqtt_publish "$BASE/probe" "$PROBE_TOKEN" 0 && [ "$ONLINE" = 1 ]; then
      warn "broker connection lost; waiting for mosquitto_sub to reconnect"
      ONLINE=0
    fi
  fi
}

probe_seen() { # hex payload
  hex_decode "$1" || return 0
  [ -n "$PROBE_TOKEN" ] && [ "$PAYLOAD" = "$PROBE_TOKEN" ] || return 0
  PROBE_TOKEN=""
  if [ "$ONLINE" = 0 ]; then
    ONLINE=1
    info "connected to $MQTT_HOST:$MQTT_PORT and subscribed to $BASE/cmd and $BASE/power"
    broker_interface
    publish_status
  fi
}

# Lines from the filter: "TOPIC LENGTH HEX" (HEX cut off above MAX_PAYLOAD).
dispatch_line() {
  local topic="${1%% *}" rest="${1#* }" len hex
  [ "$topic" != "$1" ] || rest=""
  len="${rest%% *}"
  hex="${rest#* }"
  [ "$hex" != "$rest" ] || hex=""
  case "$topic" in
    "$BASE/probe" | "$BASE/cmd" | "$BASE/power")
      if ! is_uint "$len" || [ "$len" -gt "$MAX_PAYLOAD" ]; then
        # dropped before parsing: no ack (logged at most once a minute)
        if [ $(($(now) - OVERSIZE_LOGGED)) -ge 60 ]; then
          OVERSIZE_LOGGED="$(now)"
          warn "dropped a ${len}-byte payload on $topic"
        fi
        return
      fi
      ;;
  esac
  case "$topic" in
    "$BASE/probe") probe_seen "$hex" ;;
    "$BASE/cmd") handle_message "$hex" ;;
    "$BASE/power") handle_lease "$hex" ;;
    Client)
      # mosquitto_sub -d debug line; stdout is flushed with the next message
      # (a heartbeat probe at the latest). A CONNACK after the first one is a
      # reconnect: the broker may have published our offline will (or lost
      # our retained status), so confirm the subscription and say online.
      case "$1" in
        *'received CONNACK (0)'*)
          if [ "$ONLINE" = 1 ]; then
            warn "mosquitto_sub reconnected to the broker"
            ONLINE=0
          fi
          ;;
      esac
      ;;
    *) ;;
  esac
}

# mosquitto_sub -> awk -> fifo. awk (C speed) cuts a line above the payload
# limit down to its topic and length, so bash never reads a 1 MiB line; a
# watchdog ends both if this shell dies without its TERM trap (SIGKILL).
start_sub() {
  local raw="$RUN_DIR/raw.fifo" fifo="$RUN_DIR/sub.fifo" will
  rm -f "$raw" "$fifo"
  mkfifo "$raw" "$fifo" || die "cannot create fifos in $RUN_DIR"
  will="$(status_json offline)"
  XDG_CONFIG_HOME="$RUN_DIR" mosquitto_sub -d -q 1 -c -i "ecoflow-agent-$AGENT_ID" \
    -k "$MQTT_KEEPALIVE" -t "$BASE/cmd" -t "$BASE/power" -t "$BASE/probe" -F '%t %l %x' \
    --will-topic "$BASE/status" --will-payload "$will" --will-qos 1 --will-retain \
    > "$raw" 2>/dev/null &
  SUB_PID=$!
  # mawk reads a pipe in blocks unless -W interactive (BWK awk on macOS and
  # gawk hand over each line as it comes)
  local -a awk_opts=()
  if awk -W version < /dev/null 2>&1 | grep -qi mawk; then awk_opts=(-W interactive); fi
  awk ${awk_opts[@]+"${awk_opts[@]}"} -v max=$((MAX_PAYLOAD * 2 + 400)) \
    '{ if (length($0) > max) { split($0, f, " "); print f[1] " " f[2] } else print; fflush() }' \
    < "$raw" > "$fifo" 2>/dev/null &
  FILTER_PID=$!
  (
    trap - TERM INT HUP
    while kill -0 "$AGENT_PID" 2>/dev/null && kill -0 "$SUB_PID" 2>/dev/null; do sleep 1; done
    kill "$SUB_PID" "$FILTER_PID" 2>/dev/null
  ) < /dev/null > /dev/null 2>&1 &
  WATCHDOG_PID=$!
  exec 3< "$fifo"
}

run() {
  local backoff=1 line waited
  trap on_term TERM INT HUP
  while [ "$STOPPING" = 0 ]; do
    start_sub
    ONLINE=0
    PROBE_TOKEN=""
    while :; do
      if IFS= read -r -t 1 line <&3; then
        dispatch_line "$line"
      elif ! kill -0 "$SUB_PID" 2>/dev/null; then
        # drain anything left, then restart the subscriber
        while IFS= read -r -t 1 line <&3; do dispatch_line "$line"; done
        break
      fi
      probe_tick
      check_lease_deadline
      check_commit_point
    done
    exec 3<&-
    stop_sub
    ONLINE=0
    warn "mosquitto_sub ended (broker unreachable?); restarting it in ${backoff}s"
    # keep the shutdown timers running while we wait
    waited=0
    while [ "$waited" -lt "$backoff" ]; do
      sleep 1
      waited=$((waited + 1))
      check_lease_deadline
      check_commit_point
    done
    backoff=$((backoff * 2))
    [ "$backoff" -gt 60 ] && backoff=60
  done
}

AGENT_PID=""

main() {
  while [ $# -gt 0 ]; do
    case "$1" in
      -c | --config) CONFIG_FILE="$2"; shift 2 ;;
      --dry-run) FORCE_DRY_RUN=1; shift ;;
      --check-config) CHECK_ONLY=1; shift ;;
      -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  load_config "$CONFIG_FILE"
  apply_env_overrides
  validate_config
  local tool
  for tool in mosquitto_sub mosquitto_pub openssl jq od awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
  done
  hmac_selftest
  if [ "$CHECK_ONLY" = 1 ]; then
    echo "config OK: agent_id=$AGENT_ID dry_run=$DRY_RUN"
    exit 0
  fi
  AGENT_PID=$$
  BASE="$PREFIX/$AGENT_ID"
  mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR"
  chmod 700 "$STATE_DIR"
  SEEN_FILE="$STATE_DIR/seen_ids.tsv"
  JOB_FILE="$STATE_DIR/job.env"
  LEASE_FILE="$STATE_DIR/lease.json"
  seen_prune
  RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ecoflow-agent.XXXXXX")" || die "cannot create a run dir"
  write_client_options
  restore_state
  info "ecoflow agent $AGENT_VERSION (bash): id=$AGENT_ID broker=$MQTT_HOST:$MQTT_PORT dry_run=$DRY_RUN signed=$([ -n "$SECRET" ] && echo yes || echo no) pre_shutdown_mode=$PRE_SHUTDOWN_MODE"
  [ -n "$SECRET" ] || warn "no secret configured: commands are NOT authenticated"
  run
}

main "$@"
