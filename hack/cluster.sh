#!/usr/bin/env bash
# Local Kubernetes control plane for e2e tests and the demo: etcd + kube-apiserver +
# kube-controller-manager + kube-scheduler + kwok (fake kubelet), as plain processes on
# 127.0.0.1. No containers: Pods are scheduled and marked Running/Ready by kwok but never run.
# Build the binaries first with hack/build-tools.sh (versions: hack/versions.env).
#
# Usage: hack/cluster.sh up|down|status|kubeconfig
#   up          start everything (idempotent: exits 0 if already running and healthy)
#   down        stop only the PIDs recorded in $PID_DIR, newest first; wipe etcd data
#   status      one line per component; exit 1 if any is not running
#   kubeconfig  print the path of the admin kubeconfig
#   restart-apiserver  stop kube-apiserver and start it again with the same flags
#
# Loopback ports (all below the ephemeral range 32768+, each overridable by env):
#   GAMECELL_API_PORT        16443  kube-apiserver (HTTPS; defined in hack/lib.sh)
#   GAMECELL_ETCD_PORT       12379  etcd client (HTTP)
#   GAMECELL_ETCD_PEER_PORT  12380  etcd peer (HTTP)
#   GAMECELL_KCM_PORT        20257  kube-controller-manager /healthz (HTTPS, self-signed)
#   GAMECELL_SCHED_PORT      20259  kube-scheduler /healthz (HTTPS, self-signed)
#   GAMECELL_KWOK_PORT       20247  kwok /healthz and /metrics (HTTP)
#
# Files under $ENV_DIR (default target/localenv): admin.kubeconfig (client cert, system:masters),
# operator.kubeconfig (static token of system:serviceaccount:gamecell-system:gamecell-operator,
# for RBAC tests), pki/, logs/<component>.log, pids/<component>.pid, etcd/ (removed by down).
# Pod and Service IPs are fake (kwok): never connect to them, only to 127.0.0.1.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ETCD_PORT="${GAMECELL_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${GAMECELL_ETCD_PEER_PORT:-12380}"
KCM_PORT="${GAMECELL_KCM_PORT:-20257}"
SCHED_PORT="${GAMECELL_SCHED_PORT:-20259}"
KWOK_PORT="${GAMECELL_KWOK_PORT:-20247}"
SVC_CIDR="${GAMECELL_SVC_CIDR:-10.96.0.0/16}"
POD_CIDR="${GAMECELL_POD_CIDR:-10.244.0.0/16}"
NODE_NAME="${GAMECELL_NODE_NAME:-kwok-node-0}"
# The fake node is big so load tests fit (kwok does not care: nothing runs).
NODE_CPU="${GAMECELL_NODE_CPU:-32}"
NODE_MEMORY="${GAMECELL_NODE_MEMORY:-256Gi}"
NODE_PODS="${GAMECELL_NODE_PODS:-1000}"
STOP_TIMEOUT="${GAMECELL_STOP_TIMEOUT:-10}"
OPERATOR_NS=gamecell-system
OPERATOR_SA=gamecell-operator

PKI="$ENV_DIR/pki"
ETCD_DATA="$ENV_DIR/etcd"
OPERATOR_KUBECONFIG="$ENV_DIR/operator.kubeconfig"
SCHED_CONFIG="$ENV_DIR/kube-scheduler.yaml"
KWOK_CONFIG="$ENV_DIR/kwok.yaml"
API_URL="https://127.0.0.1:$API_PORT"
# Start order; down goes in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

bin_of() {
  case "$1" in
    etcd) echo "$ETCD_BIN/etcd" ;;
    kwok) echo "$KWOK_BIN/kwok" ;;
    *) echo "$K8S_BIN/$1" ;;
  esac
}

# ---------------------------------------------------------------------------- processes

# Alive and not a zombie.
proc_running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# PID of a component from its pid file, only if that process is alive and still runs the
# component's binary (a stale file whose PID was reused by something else is ignored).
comp_pid() {
  local f="$PID_DIR/$1.pid" pid argv0
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  proc_running "$pid" || return 1
  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)
  [ "$argv0" = "$(bin_of "$1")" ] || return 1
  echo "$pid"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# start NAME ARGS...: run the component's binary in its own session (a Ctrl-C in the caller's
# terminal does not reach it), log to $LOG_DIR/NAME.log, record the PID.
start() {
  local name=$1; shift
  local bin; bin=$(bin_of "$name")
  setsid "$bin" "$@" </dev/null >"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  log "  $name started (pid $!, log: $LOG_DIR/$name.log)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fail() { # NAME MESSAGE: show the component's log tail, stop what was started, exit 1
  local name=$1 msg=$2
  log "ERROR: $msg"
  if [ -f "$LOG_DIR/$name.log" ]; then
    log "last lines of $LOG_DIR/$name.log:"
    tail -n 30 "$LOG_DIR/$name.log" >&2 || true
    log "full log: $LOG_DIR/$name.log (all logs in $LOG_DIR)"
  fi
  if [ "${GAMECELL_KEEP_ON_FAILURE:-}" = 1 ]; then
    log "GAMECELL_KEEP_ON_FAILURE=1: leaving the processes running; '$0 down' stops them"
  else
    log "stopping the components started so far (GAMECELL_KEEP_ON_FAILURE=1 keeps them)"
    down >/dev/null 2>&1 || true
  fi
  exit 1
}

# wait_healthy NAME WHAT TIMEOUT CMD...: poll CMD until it succeeds; fail at once if the
# component NAME died, or after TIMEOUT seconds, with NAME's log.
wait_healthy() {
  local name=$1 what=$2 t=$3; shift 3
  local end=$((SECONDS + t)) start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    comp_pid "$name" >/dev/null || fail "$name" "$name exited during startup (waiting for: $what)"
    [ $SECONDS -lt $end ] || fail "$name" "timeout after ${t}s waiting for: $what"
    sleep 0.5
  done
  log "  $what ($((SECONDS - start))s)"
}

# ---------------------------------------------------------------------------- health checks

etcd_healthy() { curl -fsS -m 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
api_get() { curl -fsS -m 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL$1"; }
api_ready() { api_get /readyz >/dev/null; }
# KCM and the scheduler serve a self-signed in-memory cert; /healthz needs no credentials.
kcm_healthy() { curl -fsSk -m 2 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null; }
sched_healthy() { curl -fsSk -m 2 "https://127.0.0.1:$SCHED_PORT/healthz" >/dev/null; }
kwok_healthy() { curl -fsS -m 2 "http://127.0.0.1:$KWOK_PORT/healthz" >/dev/null; }
kc() { "$KUBECTL" --kubeconfig="$KUBECONFIG_PATH" "$@"; }

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do comp_pid "$c" >/dev/null || return 1; done
}

# ---------------------------------------------------------------------------- PKI

pki_valid() {
  local f
  for f in ca.crt ca.key apiserver.crt apiserver.key admin.crt admin.key sa.key sa.pub tokens.csv \
    admin.token operator.token front-proxy-ca.crt front-proxy-client.crt front-proxy-client.key; do
    [ -s "$PKI/$f" ] || return 1
  done
  # Regenerate a day before anything expires.
  for f in ca.crt apiserver.crt admin.crt front-proxy-ca.crt front-proxy-client.crt; do
    openssl x509 -checkend 86400 -noout -in "$PKI/$f" >/dev/null 2>&1 || return 1
  done
  openssl pkey -pubin -in "$PKI/sa.pub" -noout >/dev/null 2>&1 || return 1
  openssl pkey -in "$PKI/sa.key" -noout >/dev/null 2>&1 || return 1
  openssl verify -CAfile "$PKI/ca.crt" "$PKI/apiserver.crt" "$PKI/admin.crt" >/dev/null 2>&1 &&
    openssl verify -CAfile "$PKI/front-proxy-ca.crt" "$PKI/front-proxy-client.crt" >/dev/null 2>&1
}

gen_pki() {
  log "generating PKI in $PKI (openssl)"
  rm -rf "$PKI"; mkdir -p "$PKI"
  (
    set -e
    cd "$PKI"
    umask 077
    cat >ca.ext <<'EOF'
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier=hash
EOF
    # Every leaf gets its SANs / usages from an -extfile: without one, `openssl x509 -req`
    # makes a v1 cert without SANs, which rustls (kube-rs) rejects.
    cat >apiserver.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${SVC_CIDR%.*}.1
EOF
    cat >client.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
    openssl genrsa -out ca.key 2048
    openssl req -new -key ca.key -subj "/CN=gamecell-local-ca" -out ca.csr
    openssl x509 -req -in ca.csr -signkey ca.key -days 3650 -extfile ca.ext -out ca.crt
    openssl genrsa -out apiserver.key 2048
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out admin.key 2048
    openssl req -new -key admin.key -subj "/O=system:masters/CN=gamecell-admin" -out admin.csr
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt
    # Front-proxy (request-header) CA: without it the apiserver publishes no requestheader CA
    # and KCM/scheduler log "missing content for CA bundle" errors; it also lets aggregated
    # APIs (APIService) work. A separate CA, so it can sign nothing but the proxy client.
    openssl genrsa -out front-proxy-ca.key 2048
    openssl req -new -key front-proxy-ca.key -subj "/CN=gamecell-front-proxy-ca" -out front-proxy-ca.csr
    openssl x509 -req -in front-proxy-ca.csr -signkey front-proxy-ca.key -days 3650 -extfile ca.ext \
      -out front-proxy-ca.crt
    openssl genrsa -out front-proxy-client.key 2048
    openssl req -new -key front-proxy-client.key -subj "/CN=front-proxy-client" -out front-proxy-client.csr
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
      -CAcreateserial -days 3650 -extfile client.ext -out front-proxy-client.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    openssl rand -hex 24 >admin.token
    openssl rand -hex 24 >operator.token
    # Static tokens (token,user,uid,"group1,group2"): an admin, and the operator's
    # ServiceAccount identity for RBAC tests (its rights come only from RBAC objects).
    {
      echo "$(cat admin.token),gamecell-token-admin,uid-gamecell-admin,\"system:masters\""
      echo "$(cat operator.token),system:serviceaccount:$OPERATOR_NS:$OPERATOR_SA,uid-gamecell-operator,\"system:serviceaccounts,system:serviceaccounts:$OPERATOR_NS\""
    } >tokens.csv
    rm -f ./*.csr ./*.srl
  ) >"$LOG_DIR/pki.log" 2>&1 || fail pki "PKI generation failed"
  pki_valid || fail pki "generated PKI does not verify"
}

write_kubeconfigs() {
  local ca; ca=$(base64 -w0 <"$PKI/ca.crt")
  (
    umask 077
    cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gamecell-local
  cluster:
    server: $API_URL
    certificate-authority-data: $ca
users:
- name: gamecell-admin
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/admin.crt")
    client-key-data: $(base64 -w0 <"$PKI/admin.key")
contexts:
- name: gamecell-local
  context:
    cluster: gamecell-local
    user: gamecell-admin
current-context: gamecell-local
EOF
    cat >"$OPERATOR_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gamecell-local
  cluster:
    server: $API_URL
    certificate-authority-data: $ca
users:
- name: $OPERATOR_SA
  user:
    token: $(cat "$PKI/operator.token")
contexts:
- name: gamecell-local-operator
  context:
    cluster: gamecell-local
    user: $OPERATOR_SA
    namespace: $OPERATOR_NS
current-context: gamecell-local-operator
EOF
  )
}

# ---------------------------------------------------------------------------- commands

check_tools() {
  local c b missing=()
  for c in "${COMPONENTS[@]}" kubectl; do
    b=$(bin_of "$c"); [ -x "$b" ] || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing binaries (run hack/build-tools.sh first): ${missing[*]}"
  command -v curl >/dev/null || die "curl is required"
  command -v openssl >/dev/null || die "openssl is required"
}

up() {
  local t0=$SECONDS
  mkdir -p "$LOG_DIR" "$PID_DIR"
  if all_running && api_ready 2>/dev/null; then
    log "cluster already running and healthy: KUBECONFIG=$KUBECONFIG_PATH"
    return 0
  fi
  local c recorded=0 alive=()
  for c in "${COMPONENTS[@]}"; do
    [ -f "$PID_DIR/$c.pid" ] && recorded=1
    comp_pid "$c" >/dev/null && alive+=("$c")
  done
  if [ $recorded = 1 ]; then
    [ ${#alive[@]} -gt 0 ] && log "cluster partially running or unhealthy (alive: ${alive[*]}): restarting it from scratch"
    down
  fi
  check_tools
  local p
  for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT"; do
    port_open "$p" && die "127.0.0.1:$p is in use by another process; override the port (see the top of $0)"
  done
  for p in "${COMPONENTS[@]}" pki node; do rm -f "$LOG_DIR/$p.log"; done
  rm -rf "$ETCD_DATA"
  # Interrupted half-way: stop what was started rather than leave a half cluster behind.
  trap 'log "interrupted: stopping the components started so far"; down; exit 130' INT TERM
  log "starting local control plane (Kubernetes v$KUBE_VERSION, etcd v$ETCD_VERSION, kwok $KWOK_VERSION) in $ENV_DIR"

  pki_valid || gen_pki
  write_kubeconfigs

  start etcd --name=gamecell --data-dir="$ETCD_DATA" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="gamecell=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync=true --auto-compaction-mode=periodic --auto-compaction-retention=5m \
    --quota-backend-bytes=2147483648
  wait_healthy etcd "etcd healthy" 30 etcd_healthy

  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none --profiling=false --v=1
  wait_healthy kube-apiserver "kube-apiserver ready" 120 api_ready

  start kube-controller-manager \
    --kubeconfig="$KUBECONFIG_PATH" \
    --authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SVC_CIDR" \
    --kube-api-qps=200 --kube-api-burst=400 \
    --cluster-name=gamecell-local --profiling=false --v=1

  cat >"$SCHED_CONFIG" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $KUBECONFIG_PATH
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
  start kube-scheduler --config="$SCHED_CONFIG" \
    --authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --profiling=false --v=1

  # Pod IPs come from --cidr (the node has no spec.podCIDR, which kwok would use instead,
  # handing out the network address .0 first); kwok wants a gateway-style address there.
  # Our own (empty) kwok config, so a ~/.kwok/kwok.yaml of the user is not read. With no Stage
  # in it, kwok uses its built-in fast node and pod stages (Pods Running/Ready at once).
  printf '%s\n' 'apiVersion: config.kwok.x-k8s.io/v1alpha1' 'kind: KwokConfiguration' 'options: {}' >"$KWOK_CONFIG"
  start kwok --config="$KWOK_CONFIG" --kubeconfig="$KUBECONFIG_PATH" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="${POD_CIDR%.*}.1/${POD_CIDR#*/}" --node-ip=127.0.0.1 --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:$KWOK_PORT"

  wait_healthy kube-controller-manager "kube-controller-manager healthy" 60 kcm_healthy
  wait_healthy kube-scheduler "kube-scheduler healthy" 60 sched_healthy
  wait_healthy kwok "kwok healthy" 60 kwok_healthy

  # No NoSchedule taint (kwok's docs add one): Pods must schedule onto this node.
  kc apply -f - >"$LOG_DIR/node.log" 2>&1 <<EOF || fail node "creating the fake node $NODE_NAME failed"
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {}
status:
  allocatable: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS"}
  capacity: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS"}
  nodeInfo:
    architecture: amd64
    kubeProxyVersion: fake
    kubeletVersion: fake
    operatingSystem: linux
  phase: Running
EOF
  wait_healthy kwok "node $NODE_NAME Ready ($NODE_CPU cpu, $NODE_MEMORY, $NODE_PODS pods)" 60 \
    kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  wait_healthy kube-controller-manager "ServiceAccount default/default created" 60 \
    kc -n default get serviceaccount default

  trap - INT TERM
  log "cluster up in $((SECONDS - t0))s: $API_URL"
  log "  export KUBECONFIG=$KUBECONFIG_PATH    (admin; $OPERATOR_KUBECONFIG: operator SA token)"
  log "  kubectl: $KUBECTL    logs: $LOG_DIR"
}

down() {
  local i c pid any=0
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[$i]}
    [ -f "$PID_DIR/$c.pid" ] || continue
    any=1
    if pid=$(comp_pid "$c"); then
      log "stopping $c (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      local n
      for ((n = 0; n < STOP_TIMEOUT * 4; n++)); do proc_running "$pid" || break; sleep 0.25; done
      if proc_running "$pid"; then
        log "  $c (pid $pid) still alive after ${STOP_TIMEOUT}s: sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((n = 0; n < 20; n++)); do proc_running "$pid" || break; sleep 0.25; done
      fi
    else
      log "$c: recorded pid $(cat "$PID_DIR/$c.pid") is not running"
    fi
    rm -f "$PID_DIR/$c.pid"
  done
  rm -rf "$ETCD_DATA"
  if [ $any = 1 ]; then log "cluster stopped (etcd data removed; logs kept in $LOG_DIR)"; else log "cluster is not running"; fi
}

status() {
  local c pid rc=0 total=0 rss
  for c in "${COMPONENTS[@]}"; do
    if pid=$(comp_pid "$c"); then
      rss=$(rss_kb "$pid"); total=$((total + rss))
      printf '%-24s running  pid %-7s rss %6d MiB\n' "$c" "$pid" $((rss / 1024))
    else
      printf '%-24s %s\n' "$c" "$([ -f "$PID_DIR/$c.pid" ] && echo "DEAD (log: $LOG_DIR/$c.log)" || echo stopped)"
      rc=1
    fi
  done
  if [ $rc = 0 ]; then
    if api_ready 2>/dev/null; then
      printf '%-24s ready    %s  total rss %d MiB\n' "apiserver /readyz" "$API_URL" $((total / 1024))
    else
      printf '%-24s NOT READY  %s\n' "apiserver /readyz" "$API_URL"; rc=1
    fi
  fi
  return $rc
}

# Stops kube-apiserver and starts it again with the same arguments (for recovery tests: every
# watch breaks and must be re-established by its client).
restart_apiserver() {
  local pid n
  pid=$(comp_pid kube-apiserver) || die "kube-apiserver is not running"
  local -a args=()
  mapfile -d '' args <"/proc/$pid/cmdline"
  log "restarting kube-apiserver (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((n = 0; n < STOP_TIMEOUT * 4; n++)); do proc_running "$pid" || break; sleep 0.25; done
  proc_running "$pid" && kill -KILL "$pid" 2>/dev/null
  start kube-apiserver "${args[@]:1}"
  wait_healthy kube-apiserver "kube-apiserver ready again" 120 api_ready
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  restart-apiserver) restart_apiserver ;;
  *) echo "usage: $0 up|down|status|kubeconfig|restart-apiserver" >&2; exit 2 ;;
esac
