#!/usr/bin/env bash
# `make bench`: the operator's scale benchmark (issue 5) and the matchmaker's (issue 6).
#
# Operator: N cells (+3N PlayerServices, N MatchmakingPools) against a fresh local cluster of
# its own, once with the AWS emulator (BENCH_N_AWS, default 100) and once with the operator's
# in-process fake cloud (BENCH_N_FAKE, default 1000); each run ends with an idle window
# (BENCH_IDLE_SECONDS, default 300) and the plain-client floor. Reports go to target/bench/.
# Matchmaker: `cargo bench --bench matchmaker` (its own defaults). BENCH_ONLY=operator|matchmaker
# runs one half.
export GAMECELL_ENV_DIR="${GAMECELL_BENCH_ENV_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/bench-env}"
export GAMECELL_API_PORT="${GAMECELL_BENCH_API_PORT:-18443}"
export GAMECELL_ETCD_PORT=14379 GAMECELL_ETCD_PEER_PORT=14380
export GAMECELL_KCM_PORT=22257 GAMECELL_SCHED_PORT=22259 GAMECELL_KWOK_PORT=22247
export GAMECELL_MOTO_PORT="${GAMECELL_BENCH_MOTO_PORT:-15002}"
# Room on the fake node for every benchmark pod (kwok runs nothing), the floor's copies included
# (with 32 CPUs the floor's pods stayed Pending: "Insufficient cpu").
export GAMECELL_NODE_PODS="${GAMECELL_NODE_PODS:-20000}"
export GAMECELL_NODE_CPU="${GAMECELL_NODE_CPU:-4000}" GAMECELL_NODE_MEMORY="${GAMECELL_NODE_MEMORY:-16Ti}"
# Local Postgres/MariaDB for shared cells' tenant databases, on ports of the benchmark's own.
export GAMECELL_PG_PORT="${GAMECELL_BENCH_PG_PORT:-15434}" GAMECELL_MYSQL_PORT="${GAMECELL_BENCH_MYSQL_PORT:-13308}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N_AWS="${BENCH_N_AWS:-100}"
N_FAKE="${BENCH_N_FAKE:-1000}"
IDLE="${BENCH_IDLE_SECONDS:-300}"
SINGLE="${BENCH_SINGLE:-20}"
# How long a run waits for everything Ready before it reports what it has (the report says how
# many were Ready).
TIMEOUT="${BENCH_TIMEOUT_SECONDS:-1800}"
ONLY="${BENCH_ONLY:-}"
# The operator's admin port: another run on the machine (a demo, another checkout's benchmark)
# may hold the default, and the benchmark would then read that operator's metrics.
ADMIN_PORT="${GAMECELL_BENCH_ADMIN_PORT:-18080}"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
OUT="$REPO_ROOT/target/bench"
mkdir -p "$OUT"

cleanup() {
  "$HACK_DIR/moto.sh" down >/dev/null 2>&1 || true
  "$HACK_DIR/sqlstores.sh" down >/dev/null 2>&1 || true
  "$HACK_DIR/cluster.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

machine() {
  log "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

run_operator() {
  local cloud=$1 n=$2
  log "operator benchmark: N=$n, $cloud cloud (fresh cluster)"
  cleanup
  rm -rf "$GAMECELL_ENV_DIR"
  "$HACK_DIR/cluster.sh" up
  export KUBECONFIG="$KUBECONFIG_PATH"
  if [ "$cloud" = aws ]; then
    "$HACK_DIR/moto.sh" up
    export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
    "$HACK_DIR/sqlstores.sh" up
    eval "$("$HACK_DIR/sqlstores.sh" env)"
  fi
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  machine
  local start=$SECONDS
  (cd "$REPO_ROOT" && cargo bench --locked --bench operator -- \
    --n "$n" --cloud "$cloud" --idle-seconds "$IDLE" --single "$SINGLE" --timeout-seconds "$TIMEOUT" \
    --operator-bin "$TARGET/release/gamecell-operator" --admin-port "$ADMIN_PORT" \
    --out "$OUT/operator-$cloud-$n.md")
  log "N=$n ($cloud) done in $((SECONDS - start))s; report: $OUT/operator-$cloud-$n.md"
  machine
}

cd "$REPO_ROOT"
if [ "$ONLY" != matchmaker ]; then
  "$HACK_DIR/build-tools.sh"
  log "building the operator (release) and the benchmark"
  with_progress "cargo build --release" "$OUT/cargo-build.log" \
    cargo build --locked --release --bin gamecell-operator --bin seed-emulator
  with_progress "cargo bench --no-run" "$OUT/cargo-bench-build.log" \
    cargo bench --locked --bench operator --no-run
  [ "$N_AWS" -gt 0 ] && run_operator aws "$N_AWS"
  [ "$N_FAKE" -gt 0 ] && run_operator fake "$N_FAKE"
fi
if [ "$ONLY" != operator ]; then
  machine
  log "matchmaker benchmark"
  cargo bench --locked --bench matchmaker
  machine
fi
