#!/bin/bash
# shellcheck disable=SC2034 # PRE_SHUTDOWN_* are read through ${!name}
# EcoFlow Power Management host agent for macOS (command protocol v1).
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
#     before, ids kept on disk) and acknowledged.
#
# Usage: ecoflow-agent.sh [-c CONFIG] [--dry-run] [--check-config]

set -u
umask 077

AGENT_VERSION="1.0.0"
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

ALL_KEYS="MQTT_HOST MQTT_PORT MQTT_USERNAME MQTT_PASSWORD MQTT_CAFILE MQTT_CERTFILE MQTT_KEYFILE
MQTT_TLS_INSECURE MQTT_KEEPALIVE AGENT_ID SECRET PREFIX SKEW_SEC DRY_RUN STATE_DIR SEEN_RETAIN_SEC
SHUTDOWN_COMMAND SHUTDOWN_SEC HEARTBEAT_SEC $PRE_SHUTDOWN_KEYS PRE_SHUTDOWN_1_TIMEOUT PRE_SHUTDOWN_2_TIMEOUT
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
  if is_true "$DRY_RUN"; then DRY_RUN=1; else DRY_RUN=0; fi
  [ "$FORCE_DRY_RUN" = 1 ] && DRY_RUN=1
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

status_json() { # state
  local canon dr=false
  [ "$DRY_RUN" = 1 ] && dr=true
  canon="$(jq -ncSa --arg agent "$AGENT_ID" --arg state "$1" --arg host "$(hostname)" \
    --arg ver "$AGENT_VERSION" --argjson dry "$dr" --argjson ss "$SHUTDOWN_SEC" \
    --argjson at "$(now)" \
    'def clean: explode | map(if . < 32 then 32 elif . >= 127 then empty else . end) | implode
      | split(" ") | map(select(. != "")) | join(" ") | .[0:200];
     {v:1, agent:$agent, state:$state, hostname:($host | clean), platform:"macos",
      agent_version:$ver, dry_run:$dry, shutdown_sec:$ss, at:$at}')"
  sign_json "$canon"
}

# ack ID STATUS DETAIL [REF [EXECUTE_AT]]
ack() {
  local canon
  canon="$(jq -ncSa --arg id "$1" --arg agent "$AGENT_ID" --arg status "$2" --arg detail "$3" \
    --arg ref "${4:-}" --arg ex "${5:-}" --argjson at "$(now)" \
    'def clean: explode | map(if . < 32 then 32 elif . >= 127 then empty else . end) | implode
      | split(" ") | map(select(. != "")) | join(" ") | .[0:200];
     {v:1, id:$id, agent:$agent, status:$status, at:$at, detail:($detail | clean)}
     + (if $ref != "" then {ref:$ref} else {} end)
     + (if $ex != "" then {execute_at:($ex|tonumber)} else {} end)')"
  info "ack $2 id=${1:--} $3"
  mqtt_publish "$BASE/ack" "$(sign_json "$canon")" 0
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

# ---------------------------------------------------------------- commands
# run_argv TIMEOUT WORDS [WATCH_ID]: words split on blanks, no globbing, no
# shell. With WATCH_ID, commands keep being handled while it runs, and the
# process is killed as soon as that shutdown is no longer pending (aborted).
run_argv() {
  local timeout="$1" words="$2" watch="${3:-}" pid start rc line
  local -a argv
  set -f
  # shellcheck disable=SC2206 # deliberate word splitting of the config value
  argv=($words)
  set +f
  "${argv[@]}" < /dev/null >&2 2>&1 &
  pid=$!
  start="$(now)"
  while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$watch" ] && [ "$PENDING_ID" != "$watch" ]; then
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      RUN_RESULT="aborted"
      return 1
    fi
    if [ $(($(now) - start)) -ge "$timeout" ]; then
      kill -TERM "$pid" 2>/dev/null
      sleep 1
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      RUN_RESULT="timeout after ${timeout}s"
      return 1
    fi
    if [ -n "$watch" ] && [ -n "$SUB_PID" ]; then
      if IFS= read -r -t 1 line <&3; then dispatch_line "$line"; fi
    else
      sleep 1
    fi
  done
  wait "$pid"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    RUN_RESULT="exit $rc"
    return 1
  fi
  RUN_RESULT="ok"
  return 0
}

PENDING_ID=""
PENDING_AT=""
PENDING_FAILED=""
PREPARING=0
LAST_EXEC_ID=""
LAST_EXEC_AT=""

do_shutdown() { # id issued_at delay
  local id="$1" exec_at=$(($2 + $3)) key cmd tkey failed="" detail=""
  if [ -n "$PENDING_ID" ]; then
    ack "$id" received ""
    [ "$exec_at" -lt "$PENDING_AT" ] && PENDING_AT="$exec_at"
    ack "$id" scheduled "merged into pending shutdown" "$PENDING_ID" "$PENDING_AT"
    return
  fi
  PENDING_ID="$id"
  PENDING_AT="$exec_at"
  PENDING_FAILED=""
  PREPARING=1
  ack "$id" received ""
  for key in $PRE_SHUTDOWN_KEYS; do
    cmd="${!key}"
    [ -n "$cmd" ] || continue
    tkey="${key}_TIMEOUT"
    if [ "$DRY_RUN" = 1 ]; then
      info "DRY-RUN: would run pre-shutdown '$key': $cmd (timeout ${!tkey}s)"
      continue
    fi
    info "running pre-shutdown '$key': $cmd"
    if ! run_argv "${!tkey}" "$cmd" "$id"; then
      if [ "$PENDING_ID" != "$id" ]; then
        info "shutdown $id aborted during pre-shutdown '$key'"
        PREPARING=0
        return
      fi
      err "pre-shutdown '$key' failed: $RUN_RESULT"
      failed="${failed:+$failed, }$key($RUN_RESULT)"
    fi
    [ "$PENDING_ID" = "$id" ] || { PREPARING=0; return; }
  done
  PREPARING=0
  [ -n "$failed" ] && detail="pre-shutdown failed: $failed"
  PENDING_FAILED="$detail"
  ack "$id" scheduled "$detail" "" "$PENDING_AT"
  info "shutdown $id scheduled at $PENDING_AT"
}

check_commit_point() {
  [ -n "$PENDING_ID" ] || return 0
  [ "$PREPARING" = 0 ] || return 0
  [ "$(now)" -ge "$PENDING_AT" ] || return 0
  local id="$PENDING_ID"
  LAST_EXEC_ID="$PENDING_ID"
  LAST_EXEC_AT="$PENDING_AT"
  PENDING_ID=""
  ack "$id" executing "$PENDING_FAILED"
  if [ "$DRY_RUN" = 1 ]; then
    warn "DRY-RUN: would run shutdown command: $SHUTDOWN_COMMAND"
    return 0
  fi
  warn "shutting down now: $SHUTDOWN_COMMAND"
  if ! run_argv 120 "$SHUTDOWN_COMMAND"; then
    err "shutdown command failed: $RUN_RESULT"
    ack "$id" rejected "shutdown_command_failed: $RUN_RESULT"
  fi
}

do_abort() { # id
  if [ -z "$PENDING_ID" ]; then
    if [ -n "$LAST_EXEC_ID" ]; then
      ack "$1" rejected "too_late: commit point passed at $LAST_EXEC_AT" "$LAST_EXEC_ID"
    else
      ack "$1" rejected "nothing_pending"
    fi
    return
  fi
  if [ "$(now)" -ge "$PENDING_AT" ] && [ "$PREPARING" = 0 ]; then
    check_commit_point
    ack "$1" rejected "too_late: commit point passed at $LAST_EXEC_AT" "$LAST_EXEC_ID"
    return
  fi
  if [ "$(now)" -ge "$PENDING_AT" ]; then
    # still running pre-shutdown commands, but the commit point has passed
    ack "$1" rejected "too_late: commit point passed at $PENDING_AT" "$PENDING_ID"
    return
  fi
  warn "shutdown $PENDING_ID aborted by $1"
  local ref="$PENDING_ID"
  PENDING_ID=""
  ack "$1" aborted "shutdown cancelled" "$ref"
}

# The jq program: checks shape and version, prints one line of fields joined
# by the unit separator (0x1f, never in a checked field):
#   OK  id  action  delay  ttl  issued_at-or-empty  legacy(0/1)  sig
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
       (if $legacy then "1" else "0" end), ((.sig // "") | ascii_downcase)]
    end
  | join("\u001f")
end
end'

US="$(printf '\037')"

# decode the hex line mosquitto_sub printed (-F %x) into PAYLOAD
hex_decode() {
  local hex="$1" fmt
  case "$hex" in *[!0-9a-f]*) return 1 ;; esac
  [ $(( ${#hex} % 2 )) -eq 0 ] || return 1
  [ "${#hex}" -le 32768 ] || return 1
  # reject NUL bytes (an even-aligned "00")
  fmt="$(printf '%s' "$hex" | sed 's/../\\x&/g')"
  case "$fmt" in *'\x00'*) return 1 ;; esac
  # shellcheck disable=SC2059 # fmt holds only \xHH escapes
  PAYLOAD="$(printf "$fmt"; printf x)"
  PAYLOAD="${PAYLOAD%x}"
  return 0
}

handle_message() {
  local hex="$1" out line1 canon t status ack_id detail
  local id action delay ttl issued legacy sig expect keep
  t="$(now)"
  if ! hex_decode "$hex"; then
    warn "command -: malformed: undecodable payload"
    ack "" rejected "malformed: payload too large or binary"
    return
  fi
  if ! out="$(printf '%s' "$PAYLOAD" | jq -s -r "$JQ_CHECK" 2>/dev/null)" || [ -z "$out" ]; then
    warn "command -: malformed: not JSON"
    ack "" rejected "malformed: not JSON"
    return
  fi
  line1="$(printf '%s\n' "$out" | head -n 1)"
  IFS="$US" read -r status ack_id action detail <<EOF_ERR
$line1
EOF_ERR
  if [ "$status" = "ERR" ]; then
    # fields: ERR ack-id status detail
    warn "command ${ack_id:--}: $detail"
    ack "$ack_id" "$action" "$detail"
    return
  fi
  IFS="$US" read -r status id action delay ttl issued legacy sig <<EOF_OK
$line1
EOF_OK
  # -- signature
  if [ -n "$SECRET" ]; then
    if [ "$legacy" = 1 ] || [ -z "$sig" ]; then
      warn "command $id: unsigned"
      ack "$id" rejected "unsigned: a signature is required"
      return
    fi
    canon="$(printf '%s' "$PAYLOAD" | jq -cSa 'del(.sig)')"
    expect="$(hmac_hex "$canon")"
    if [ -z "$expect" ] || [ "$expect" != "$sig" ]; then
      warn "command $id: bad_signature"
      ack "$id" rejected "bad_signature"
      return
    fi
  fi
  # -- age
  [ "$legacy" = 1 ] && issued="$t"
  if [ "$issued" -gt $((t + SKEW_SEC)) ]; then
    warn "command $id: issued_at in the future"
    ack "$id" rejected "future: issued_at beyond the clock skew allowance"
    return
  fi
  if [ "$t" -gt $((issued + ttl + SKEW_SEC)) ]; then
    warn "command $id: expired"
    ack "$id" expired "expired: issued_at $issued + ttl_sec $ttl"
    return
  fi
  # -- id
  keep=$((issued + ttl + SKEW_SEC))
  [ "$keep" -lt $((t + SEEN_RETAIN_SEC)) ] && keep=$((t + SEEN_RETAIN_SEC))
  if ! seen_check_add "$id" "$keep"; then
    warn "command $id: id seen before"
    ack "$id" duplicate "duplicate: id seen before"
    return
  fi
  if [ "$legacy" = 1 ]; then
    info "command $id: $action delay=${delay}s ttl=${ttl}s (unsigned legacy)"
  else
    info "command $id: $action delay=${delay}s ttl=${ttl}s"
  fi
  case "$action" in
    ping) ack "$id" pong "" ;;
    abort) do_abort "$id" ;;
    shutdown) do_shutdown "$id" "$issued" "$delay" ;;
  esac
}

# ---------------------------------------------------------------- main loop
STOPPING=0

stop_sub() {
  if [ -n "$SUB_PID" ]; then
    kill "$SUB_PID" 2>/dev/null
    wait "$SUB_PID" 2>/dev/null
    SUB_PID=""
  fi
}

on_term() {
  STOPPING=1
  info "stopping"
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
    info "connected to $MQTT_HOST:$MQTT_PORT and subscribed to $BASE/cmd"
    mqtt_publish "$BASE/status" "$(status_json online)" 1
  fi
}

dispatch_line() {
  local topic="${1%% *}" hex="${1#* }"
  [ "$topic" != "$1" ] || hex=""
  case "$topic" in
    "$BASE/probe") probe_seen "$hex" ;;
    "$BASE/cmd") handle_message "$hex" ;;
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

run() {
  local backoff=1 fifo line will waited
  trap on_term TERM INT HUP
  while [ "$STOPPING" = 0 ]; do
    fifo="$RUN_DIR/sub.fifo"
    rm -f "$fifo"
    mkfifo "$fifo" || die "cannot create $fifo"
    will="$(status_json offline)"
    XDG_CONFIG_HOME="$RUN_DIR" mosquitto_sub -d -q 1 -c -i "ecoflow-agent-$AGENT_ID" \
      -k "$MQTT_KEEPALIVE" -t "$BASE/cmd" -t "$BASE/probe" -F '%t %x' \
      --will-topic "$BASE/status" --will-payload "$will" --will-qos 1 --will-retain \
      > "$fifo" 2>/dev/null &
    SUB_PID=$!
    exec 3< "$fifo"
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
      check_commit_point
    done
    exec 3<&-
    wait "$SUB_PID" 2>/dev/null
    SUB_PID=""
    ONLINE=0
    warn "mosquitto_sub ended (broker unreachable?); restarting it in ${backoff}s"
    # keep the shutdown timer running while we wait
    waited=0
    while [ "$waited" -lt "$backoff" ]; do
      sleep 1
      waited=$((waited + 1))
      check_commit_point
    done
    backoff=$((backoff * 2))
    [ "$backoff" -gt 60 ] && backoff=60
  done
}

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
  for tool in mosquitto_sub mosquitto_pub openssl jq od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
  done
  hmac_selftest
  if [ "$CHECK_ONLY" = 1 ]; then
    echo "config OK: agent_id=$AGENT_ID dry_run=$DRY_RUN"
    exit 0
  fi
  BASE="$PREFIX/$AGENT_ID"
  mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR"
  chmod 700 "$STATE_DIR"
  SEEN_FILE="$STATE_DIR/seen_ids.tsv"
  seen_prune
  RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ecoflow-agent.XXXXXX")" || die "cannot create a run dir"
  write_client_options
  info "ecoflow agent $AGENT_VERSION (bash): id=$AGENT_ID broker=$MQTT_HOST:$MQTT_PORT dry_run=$DRY_RUN signed=$([ -n "$SECRET" ] && echo yes || echo no)"
  [ -n "$SECRET" ] || warn "no secret configured: commands are NOT authenticated"
  run
}

main "$@"
