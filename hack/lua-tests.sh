#!/usr/bin/env bash
# The Argo CD health checks (deploy/argocd/) and their fixture tests, run by Lua 5.1: the Lua
# version Argo CD embeds.
#
# Usage: hack/lua-tests.sh [run|ensure|generate|health FILE]
#   run       (default) install lua5.1 if missing, then run deploy/argocd/test/run.lua
#   ensure    install lua5.1 if missing (Debian package lua5.1: apt-get update, then install)
#   generate  rewrite deploy/argocd/argocd-cm.yaml from deploy/argocd/health.lua
#   health F  print the health of the object in JSON file F ("STATUS<TAB>MESSAGE")
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARGOCD_DIR="$REPO_ROOT/deploy/argocd"
LUA="${LUA:-lua5.1}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ensure() {
  command -v "$LUA" >/dev/null && return 0
  command -v apt-get >/dev/null || { log "ERROR: $LUA is missing and there is no apt-get: install Lua 5.1"; exit 1; }
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing Lua 5.1 (Debian package lua5.1)"
  # A lock file, so parallel callers (make -j, the e2e suite) do not race apt.
  (
    flock 9
    command -v "$LUA" >/dev/null && exit 0
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq lua5.1 >/dev/null
  ) 9>"${TMPDIR:-/tmp}/gamecell-lua-install.lock"
  command -v "$LUA" >/dev/null || { log "ERROR: $LUA still missing after apt-get install lua5.1"; exit 1; }
}

generate() {
  local out="$ARGOCD_DIR/argocd-cm.yaml" kind
  {
    cat <<'HEAD'
# Argo CD health checks of the gamecell.dev kinds, as a patch of Argo CD's argocd-cm ConfigMap:
#
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm.yaml
#
# (or list it under `patches:` of the kustomization that installs Argo CD). One script serves the
# three kinds; see docs/operations.md ("Argo CD"). Generated from deploy/argocd/health.lua by
# `hack/lua-tests.sh generate`; `make lua-test` fails when this file and the script differ.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
HEAD
    for kind in GameCell PlayerService MatchmakingPool; do
      printf '  resource.customizations.health.gamecell.dev_%s: |\n' "$kind"
      sed -e 's/^\(.\)/    \1/' "$ARGOCD_DIR/health.lua"
    done
  } >"$out"
  log "wrote $out"
}

case "${1:-run}" in
  ensure) ensure ;;
  generate) generate ;;
  health) ensure; "$LUA" "$ARGOCD_DIR/test/run.lua" --object "${2:?usage: $0 health FILE}" ;;
  run)
    ensure
    log "Argo CD health checks: fixture tests ($("$LUA" -v 2>&1))"
    "$LUA" "$ARGOCD_DIR/test/run.lua"
    ;;
  *) echo "usage: $0 [run|ensure|generate|health FILE]" >&2; exit 2 ;;
esac
