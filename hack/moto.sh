#!/usr/bin/env bash
# AWS emulator for local runs and e2e tests: moto in server mode on 127.0.0.1:$MOTO_PORT.
#
# Usage: hack/moto.sh up|down|status|endpoint
#   up        create/reuse the virtualenv with moto[server]==$MOTO_VERSION (hack/versions.env),
#             start moto_server on loopback and wait until it answers (idempotent)
#   down      stop the moto_server whose PID is recorded in $PID_DIR/moto.pid (only that PID)
#   status    print whether it runs; exit 1 if it does not
#   endpoint  print the endpoint URL (for AWS_ENDPOINT_URL)
#
# Port: $GAMECELL_MOTO_PORT (default 15000, see hack/lib.sh). Log: $LOG_DIR/moto.log.
# moto keeps all state in memory: `down` + `up` is an empty cloud.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MOTO_URL="http://127.0.0.1:$MOTO_PORT"
MOTO_PID_FILE="$PID_DIR/moto.pid"
MOTO_LOG="$LOG_DIR/moto.log"
MOTO_INSTALL_LOG="$CACHE/logs/moto-install.log"
MOTO_STOP_TIMEOUT="${GAMECELL_STOP_TIMEOUT:-10}"

# The installed moto (with the server extras) matches the pinned version.
venv_ok() {
  [ -x "$MOTO_VENV/bin/moto_server" ] && [ -x "$MOTO_VENV/bin/python" ] &&
    "$MOTO_VENV/bin/python" - "$MOTO_VERSION" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, sys
import flask, flask_cors  # the [server] extras
sys.exit(0 if md.version("moto") == sys.argv[1] else 1)
PY
}

ensure_venv() {
  if venv_ok; then log "moto $MOTO_VERSION: cached in $MOTO_VENV"; return; fi
  command -v python3 >/dev/null || die "python3 is required for moto"
  log "moto $MOTO_VERSION: creating virtualenv $MOTO_VENV"
  mkdir -p "$(dirname "$MOTO_VENV")"
  python3 -m venv --clear "$MOTO_VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  with_progress "pip install moto[server]==$MOTO_VERSION" "$MOTO_INSTALL_LOG" \
    "$MOTO_VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
    "moto[server]==$MOTO_VERSION"
  venv_ok || die "moto in $MOTO_VENV does not report $MOTO_VERSION; see $MOTO_INSTALL_LOG"
}

# PID recorded in the pid file, if that process is alive and is really our moto_server
# (guards against a stale file whose PID was reused by something else).
moto_pid() {
  [ -f "$MOTO_PID_FILE" ] || return 1
  local pid; pid=$(cat "$MOTO_PID_FILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server || return 1
  echo "$pid"
}

# Anything listening on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# moto 5.x serves its dashboard (HTML, 200) at GET /moto-api/ once the server is up.
answers() { curl -fs -m 2 -o /dev/null "$MOTO_URL/moto-api/" 2>/dev/null; }

smoke() {
  # A real AWS query-protocol call (STS GetCallerIdentity) with fake credentials: moto only
  # checks that an Authorization header is there unless INITIAL_NO_AUTH_ACTION_COUNT is set.
  local out
  out=$(curl -fsS -m 5 "$MOTO_URL/" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0' \
    --data 'Action=GetCallerIdentity&Version=2011-06-15') || return 1
  grep -q '<Account>' <<<"$out"
}

up() {
  mkdir -p "$LOG_DIR" "$PID_DIR"
  local pid
  if pid=$(moto_pid); then
    if answers; then log "moto already running (pid $pid) at $MOTO_URL"; return 0; fi
    die "moto pid $pid is alive but $MOTO_URL does not answer; run '$0 down' first (log: $MOTO_LOG)"
  fi
  rm -f "$MOTO_PID_FILE"
  port_open "$MOTO_PORT" && die "127.0.0.1:$MOTO_PORT is in use by another process (set GAMECELL_MOTO_PORT)"
  ensure_venv
  log "starting moto_server on $MOTO_URL (log: $MOTO_LOG)"
  # setsid: its own session, so a Ctrl-C in the caller's terminal does not kill it.
  setsid "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >"$MOTO_LOG" 2>&1 &
  echo $! >"$MOTO_PID_FILE"
  pid=$!
  local end=$((SECONDS + 60))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$MOTO_LOG" >&2 || true
      rm -f "$MOTO_PID_FILE"
      die "moto_server exited during startup; full log: $MOTO_LOG"
    fi
    if [ $SECONDS -ge $end ]; then
      tail -n 30 "$MOTO_LOG" >&2 || true
      die "moto_server (pid $pid) did not answer within 60s; full log: $MOTO_LOG ('$0 down' stops it)"
    fi
    sleep 0.3
  done
  smoke || { tail -n 30 "$MOTO_LOG" >&2; die "moto answers but the STS GetCallerIdentity smoke call failed; log: $MOTO_LOG"; }
  log "moto $MOTO_VERSION up (pid $pid): AWS_ENDPOINT_URL=$MOTO_URL"
}

down() {
  local pid i
  if ! pid=$(moto_pid); then
    [ -f "$MOTO_PID_FILE" ] && log "moto: recorded pid $(cat "$MOTO_PID_FILE") is not running; cleaning up"
    rm -f "$MOTO_PID_FILE"; log "moto is not running"; return 0
  fi
  log "stopping moto (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < MOTO_STOP_TIMEOUT * 4; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "moto (pid $pid) still alive after ${MOTO_STOP_TIMEOUT}s: sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$MOTO_PID_FILE"
  log "moto stopped"
}

status() {
  local pid
  if pid=$(moto_pid); then
    if answers; then echo "moto       running  pid $pid  $MOTO_URL"; return 0; fi
    echo "moto       NOT ANSWERING  pid $pid  $MOTO_URL (log: $MOTO_LOG)"; return 1
  fi
  echo "moto       stopped"; return 1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  endpoint) echo "$MOTO_URL" ;;
  *) echo "usage: $0 up|down|status|endpoint" >&2; exit 2 ;;
esac
