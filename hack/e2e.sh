#!/usr/bin/env bash
# Runs the e2e suite against a fresh local cluster and AWS emulator of its own (separate ports
# and state from `make demo`), and stops both afterwards. Component logs: target/e2e-env/logs.
export GAMECELL_ENV_DIR="${GAMECELL_E2E_ENV_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/e2e-env}"
export GAMECELL_API_PORT="${GAMECELL_E2E_API_PORT:-17443}"
export GAMECELL_ETCD_PORT=13379 GAMECELL_ETCD_PEER_PORT=13380
export GAMECELL_KCM_PORT=21257 GAMECELL_SCHED_PORT=21259 GAMECELL_KWOK_PORT=21247
export GAMECELL_MOTO_PORT="${GAMECELL_E2E_MOTO_PORT:-15001}"
export GAMECELL_PG_PORT="${GAMECELL_E2E_PG_PORT:-17432}" GAMECELL_MYSQL_PORT="${GAMECELL_E2E_MYSQL_PORT:-17306}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start=$SECONDS
cleanup() {
  local rc=$?
  "$HACK_DIR/moto.sh" down || true
  "$HACK_DIR/sqlstores.sh" down || true
  "$HACK_DIR/cluster.sh" down || true
  if [ $rc -ne 0 ]; then log "e2e failed; component logs are in $LOG_DIR"; fi
  exit $rc
}
trap cleanup EXIT

"$HACK_DIR/cluster.sh" up
"$HACK_DIR/moto.sh" up
# Local Postgres and MariaDB for shared cells' tenant databases (moto's RDS endpoints are fake).
"$HACK_DIR/sqlstores.sh" up
eval "$("$HACK_DIR/sqlstores.sh" env)"

export KUBECONFIG="$KUBECONFIG_PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
log "running the e2e suite (KUBECONFIG=$KUBECONFIG, AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL)"
cd "$REPO_ROOT"
cargo test --locked --test e2e -- --test-threads=1
log "e2e passed in $((SECONDS - start))s (cluster start included)"
