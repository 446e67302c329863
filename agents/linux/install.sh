#!/bin/bash
# Install (or uninstall) the EcoFlow Power Management agent on a systemd Linux host.
#
#   sudo ./install.sh --agent-id nas --host 192.168.1.10 [--port 1883]
#                     [--username U] [--secret-file FILE] [--live] [--no-start]
#   sudo ./install.sh --uninstall [--purge]
#
# The secret is read from --secret-file or asked for (not echoed): it never
# goes on a command line. The config is written once, 0600 root; an existing
# config is kept. Python: the system python3 when it has paho-mqtt (Debian/
# Ubuntu: apt install python3-paho-mqtt), else a venv in /opt/ecoflow-agent
# with paho-mqtt from PyPI. The agent starts in dry-run unless --live.
#
# --destdir DIR installs under DIR without touching systemd (used by tests).
set -euo pipefail
umask 077

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DESTDIR=""
AGENT_ID="$(hostname -s 2>/dev/null || hostname)"
MQTT_HOST="127.0.0.1"
MQTT_PORT="1883"
MQTT_USERNAME=""
SECRET_FILE=""
DRY_RUN="true"
START=1
UNINSTALL=0
PURGE=0
SYSTEMD=1

usage() { sed -n '2,14p' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --agent-id) AGENT_ID="$2"; shift 2 ;;
    --host) MQTT_HOST="$2"; shift 2 ;;
    --port) MQTT_PORT="$2"; shift 2 ;;
    --username) MQTT_USERNAME="$2"; shift 2 ;;
    --secret-file) SECRET_FILE="$2"; shift 2 ;;
    --live) DRY_RUN="false"; shift ;;
    --no-start) START=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --destdir) DESTDIR="$2"; SYSTEMD=0; START=0; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done

OPT="$DESTDIR/opt/ecoflow-agent"
ETC="$DESTDIR/etc/ecoflow-agent"
UNIT="$DESTDIR/etc/systemd/system/ecoflow-agent.service"
STATE="$DESTDIR/var/lib/ecoflow-agent"

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
  echo "run as root (sudo $0 ...)" >&2
  exit 1
fi

if [ "$UNINSTALL" = 1 ]; then
  if [ "$SYSTEMD" = 1 ]; then
    systemctl disable --now ecoflow-agent.service 2>/dev/null || true
    rm -f "$UNIT"
    systemctl daemon-reload
  fi
  rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    echo "removed the agent, its config (with the secret) and its state"
  else
    echo "removed the agent; kept $ETC and $STATE (--purge removes them)"
  fi
  exit 0
fi

case "$AGENT_ID" in
  [A-Za-z0-9]*) ;;
  *) echo "agent id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\$" >&2; exit 2 ;;
esac
case "$AGENT_ID" in *[!A-Za-z0-9_.-]*) echo "bad agent id" >&2; exit 2 ;; esac
case "$MQTT_PORT" in '' | *[!0-9]*) echo "bad port" >&2; exit 2 ;; esac

# -- program and Python
mkdir -p "$OPT/bin"
install -m 0755 "$HERE/ecoflow_agent.py" "$OPT/ecoflow_agent.py"
install -m 0644 "$HERE/README.md" "$OPT/README.md"
if [ ! -x "$OPT/bin/python" ]; then
  if python3 -c 'import paho.mqtt.client' 2>/dev/null; then
    ln -sf "$(command -v python3)" "$OPT/bin/python"
    echo "using the system python3 and its paho-mqtt"
  else
    echo "creating a venv in $OPT with paho-mqtt"
    python3 -m venv "$OPT"
    "$OPT/bin/pip" install --quiet "paho-mqtt>=1.6,<3"
  fi
fi

# -- config (kept if present)
mkdir -p "$ETC" "$STATE"
chmod 700 "$ETC" "$STATE"
CONF="$ETC/agent.conf"
if [ -e "$CONF" ]; then
  echo "keeping the existing $CONF"
else
  SECRET=""
  if [ -n "$SECRET_FILE" ]; then
    SECRET="$(head -n 1 "$SECRET_FILE")"
  elif [ -t 0 ]; then
    printf 'Agent secret from the Home Assistant integration: ' >&2
    IFS= read -rs SECRET
    echo >&2
  fi
  SECRET="$(printf '%s' "$SECRET" | tr -d '\r\n')"
  if [ -z "$SECRET" ]; then
    # fail closed: an agent without a secret obeys anyone on the broker
    echo "a secret is required (--secret-file FILE, or type it when asked):" >&2
    echo "Home Assistant shows it once when you add the agent" >&2
    exit 2
  fi
  MQTT_PASSWORD=""
  if [ -n "$MQTT_USERNAME" ] && [ -t 0 ]; then
    printf 'MQTT password for %s: ' "$MQTT_USERNAME" >&2
    IFS= read -rs MQTT_PASSWORD
    echo >&2
  fi
  {
    printf '# written by install.sh; see %s/README.md and agent.conf.example\n' "/opt/ecoflow-agent"
    printf '[mqtt]\nhost = %s\nport = %s\nusername = %s\npassword = %s\n\n' \
      "$MQTT_HOST" "$MQTT_PORT" "$MQTT_USERNAME" "$MQTT_PASSWORD"
    printf '[agent]\nagent_id = %s\nsecret = %s\ndry_run = %s\nstate_dir = %s\n' \
      "$AGENT_ID" "$SECRET" "$DRY_RUN" "${STATE#"$DESTDIR"}"
    printf 'shutdown_sec = 60\nshutdown_command = ["systemctl", "poweroff"]\n'
    printf '\n# [pre_shutdown:example]\n# command = ["/bin/sync"]\n# timeout_sec = 20\n'
  } > "$CONF"
  [ -n "$DESTDIR" ] && sed -i.bak "s#^state_dir = .*#state_dir = $STATE#" "$CONF" && rm -f "$CONF.bak"
  chmod 600 "$CONF"
  [ "$(id -u)" = 0 ] && chown root:root "$CONF"
  echo "wrote $CONF (mode 600)"
fi

"$OPT/bin/python" "$OPT/ecoflow_agent.py" --config "$CONF" --check-config

# -- systemd
if [ "$SYSTEMD" = 1 ]; then
  install -m 0644 "$HERE/ecoflow-agent.service" "$UNIT"
  systemctl daemon-reload
  if [ "$START" = 1 ]; then
    systemctl enable --now ecoflow-agent.service
    systemctl --no-pager --lines=5 status ecoflow-agent.service || true
  else
    echo "installed; start with: systemctl enable --now ecoflow-agent"
  fi
fi
