#!/usr/bin/env bash
# `make demo`: starts the local cluster and the AWS emulator, installs the CRDs, runs the
# operator on this machine, applies examples/cells/ and shows what came up.
# `hack/demo.sh down` stops everything it started. Logs: target/localenv/logs.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADMIN_PORT="${GAMECELL_DEMO_ADMIN_PORT:-18080}"
OPERATOR_PID="$PID_DIR/operator.pid"

k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# A kwok node labelled and tainted as cell $1's node group.
node_group_node() {
  local cell=$1 node="demo-node-$1"
  k apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {gamecell.dev/cell: $cell, kubernetes.io/hostname: $node, kubernetes.io/os: linux, type: kwok}
spec:
  taints: [{key: gamecell.dev/cell, value: $cell, effect: NoSchedule}]
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "250"}
  capacity: {cpu: "64", memory: 256Gi, pods: "250"}
  nodeInfo: {architecture: amd64, kubeProxyVersion: fake, kubeletVersion: fake, operatingSystem: linux}
  phase: Running
EOF
  log "  node $node: the node group of cell $cell (kwok)"
}

up() {
  "$HACK_DIR/cluster.sh" up
  "$HACK_DIR/moto.sh" up
  # Local Postgres and MariaDB stand in for the shared cells' RDS instances (tenant databases).
  "$HACK_DIR/sqlstores.sh" up
  eval "$("$HACK_DIR/sqlstores.sh" env)"

  log "installing the CRDs (config/crd/)"
  k apply --server-side -f "$REPO_ROOT/config/crd/" >/dev/null
  k wait --for=condition=Established crd --all --timeout=60s >/dev/null

  log "building the operator"
  (cd "$REPO_ROOT" && cargo build --quiet --bin gamecell-operator --bin seed-emulator)
  local bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
  log "creating the EKS clusters the example cells expect in the emulator"
  AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    "$bin/seed-emulator" "$REPO_ROOT/examples/cells"
  if [ -f "$OPERATOR_PID" ] && kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null; then
    log "operator already running (pid $(cat "$OPERATOR_PID"))"
  else
    log "starting the operator (log: $LOG_DIR/operator.log, admin: http://127.0.0.1:$ADMIN_PORT)"
    KUBECONFIG="$KUBECONFIG_PATH" GAMECELL_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" \
      AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
      AWS_REGION=us-east-1 RUST_LOG=info \
      GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES="$GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES" \
      GAMECELL_SQL_ENDPOINT_OVERRIDE_MYSQL="$GAMECELL_SQL_ENDPOINT_OVERRIDE_MYSQL" \
      "$bin/gamecell-operator" >"$LOG_DIR/operator.log" 2>&1 &
    echo $! >"$OPERATOR_PID"
  fi
  wait_for "operator /readyz" 60 curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" \
    || { tail -n 20 "$LOG_DIR/operator.log" >&2; die "operator did not become ready"; }
  log "operator ready"

  log "applying examples/cells/ (first pass: the GameCells; their workloads wait for the tenant namespaces)"
  k apply --server-side -f "$REPO_ROOT/examples/cells/" 2>&1 | grep -v 'namespaces ".*" not found' || true
  log "waiting for the cells to become Ready (the operator creates tenant namespaces, data stores, Secrets)"

  for _ in $(seq 1 60); do
    k get gamecells -o wide
    if ! k get gamecells -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -qv True; then
      break
    fi
    sleep 3
    echo
  done
  # In AWS, each Dedicated or Enterprise cell's EKS managed node group brings nodes that carry the
  # cell's label and taint; here a kwok node stands in for each, so the cells' services schedule.
  local cell
  for cell in $(k get gamecells -o jsonpath='{range .items[?(@.spec.nodes)]}{.metadata.name}{"\n"}{end}'); do
    node_group_node "$cell"
  done
  log "applying the PlayerServices and MatchmakingPools of examples/cells/"
  k apply --server-side -f "$REPO_ROOT/examples/cells/"
  log "waiting for the services to roll out (kwok runs their pods)"
  local ready total
  for _ in $(seq 1 60); do
    ready=$(k get playerservices,matchmakingpools -A \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
    total=$(k get playerservices,matchmakingpools -A --no-headers | wc -l)
    log "  services Ready: $ready/$total"
    [ "$ready" -ge "$total" ] && break
    sleep 5
  done
  echo
  log "kubectl get gamecells"
  k get gamecells -o wide
  echo
  log "kubectl get playerservices,matchmakingpools -A"
  k get playerservices,matchmakingpools -A
  echo
  cat <<MSG
The demo is running. Try:
  export KUBECONFIG=$KUBECONFIG_PATH
  $KUBECTL get gc                      # cells: tier, region, Ready, tenants, data stores
  $KUBECTL describe gc starfall-eu-west-1
  curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep gamecell
Logs of every component: $LOG_DIR
Stop everything: make demo-down
MSG
}

down() {
  if [ -f "$OPERATOR_PID" ]; then
    local pid
    pid=$(cat "$OPERATOR_PID")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$OPERATOR_PID"
  fi
  "$HACK_DIR/moto.sh" down
  "$HACK_DIR/sqlstores.sh" down
  "$HACK_DIR/cluster.sh" down
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
