#!/usr/bin/env bash
# Shared paths and helpers for the local environment scripts (sourced, not run).
# Every tool lives in a cache directory keyed by its version, outside the repo.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"

CACHE="${GAMECELL_CACHE:-$HOME/.cache/gamecell-operator}"
KUBE_MINOR="${KUBE_VERSION#1.}"; KUBE_MINOR="${KUBE_MINOR%%.*}"
K8S_BIN="$CACHE/k8s-v$KUBE_VERSION/bin"
ETCD_BIN="$CACHE/etcd-v$ETCD_VERSION/bin"
KWOK_BIN="$CACHE/kwok-$KWOK_VERSION/bin"
HELM_BIN="$CACHE/helm-$HELM_VERSION-k8s1.$KUBE_MINOR/bin"
MOTO_VENV="$CACHE/moto-$MOTO_VERSION/venv"

# Where a running local environment keeps its state; logs of every component go to $ENV_DIR/logs.
ENV_DIR="${GAMECELL_ENV_DIR:-$REPO_ROOT/target/localenv}"
LOG_DIR="$ENV_DIR/logs"
PID_DIR="$ENV_DIR/pids"
KUBECONFIG_PATH="$ENV_DIR/admin.kubeconfig"
API_PORT="${GAMECELL_API_PORT:-16443}"
MOTO_PORT="${GAMECELL_MOTO_PORT:-15000}"

KUBECTL="$K8S_BIN/kubectl"
HELM="$HELM_BIN/helm"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# with_progress NAME LOGFILE CMD...: run CMD with its output in LOGFILE, printing a heartbeat
# with the elapsed time and the number of lines it logged (packages compiled for go build -v),
# so a cold build visibly makes progress. Fails with the log's tail when CMD fails.
with_progress() {
  local name=$1 logfile=$2; shift 2
  mkdir -p "$(dirname "$logfile")"
  local start=$SECONDS
  "$@" >"$logfile" 2>&1 &
  local pid=$! n=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1; n=$((n + 1))
    if [ $((n % 20)) -eq 0 ]; then
      log "  ... $name: $((SECONDS - start))s elapsed, $(wc -l <"$logfile") lines of output (log: $logfile)"
    fi
  done
  if ! wait "$pid"; then
    tail -n 40 "$logfile" >&2
    die "$name failed after $((SECONDS - start))s; full log: $logfile"
  fi
  log "  $name done in $((SECONDS - start))s"
}

# wait_for DESC TIMEOUT_S CMD...: poll CMD every half second until it succeeds.
wait_for() {
  local desc=$1 t=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then log "timeout after ${t}s waiting for $desc"; return 1; fi
    sleep 0.5
  done
}
