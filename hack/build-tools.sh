#!/usr/bin/env bash
# Builds and caches the local control plane from the Go module proxy: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and helm, each keyed by the
# version pinned in hack/versions.env. A warm run only checks `--version` and exits.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}"
SRC="$CACHE/src"
BUILD_LOGS="$CACHE/logs"
mkdir -p "$SRC" "$BUILD_LOGS"

has_version() { # BIN EXPECTED-SUBSTRING
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF -- "$2"
}

build_kubernetes() {
  local want="v$KUBE_VERSION"
  if has_version "$K8S_BIN/kube-apiserver" "$want" && has_version "$K8S_BIN/kube-controller-manager" "$want" \
    && has_version "$K8S_BIN/kube-scheduler" "$want" && [ -x "$K8S_BIN/kubectl" ]; then
    log "kubernetes $want: cached in $K8S_BIN"; return
  fi
  log "kubernetes $want: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl from source"
  log "  (cold build: 15-35 minutes on 2 cores; progress every 20s)"
  local w="$SRC/k8s-$want"; mkdir -p "$w" "$K8S_BIN"
  (
    cd "$w"
    if [ ! -f go.sum ]; then
      rm -f go.mod tools.go
      printf 'module gamecell.local/k8s-bins\n\ngo 1.24.0\n' >go.mod
      # k8s.io/kubernetes replaces every staging module with ./staging/...; pin each to its
      # published k8s.io/X v0.Y.Z instead, reading the list from the real go.mod.
      local gomod
      gomod="$(go mod download -json "k8s.io/kubernetes@$want" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
      [ -s "$gomod" ] || die "could not download the go.mod of k8s.io/kubernetes@$want"
      go mod edit -require="k8s.io/kubernetes@$want"
      local staging="v0.${KUBE_VERSION#1.}" m
      for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
        go mod edit -replace="$m=$m@$staging"
      done
      cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
      go mod tidy || { rm -f go.sum; exit 1; }
    fi
  ) >"$BUILD_LOGS/k8s-modules.log" 2>&1 || { tail -n 30 "$BUILD_LOGS/k8s-modules.log" >&2; die "resolving k8s.io/kubernetes modules failed"; }
  local v="-X k8s.io/component-base/version" c="-X k8s.io/client-go/pkg/version"
  local z=0000000000000000000000000000000000000000 d=1970-01-01T00:00:00Z
  local ldf="-s -w $v.gitVersion=$want $v.gitMajor=1 $v.gitMinor=$KUBE_MINOR $v.gitTreeState=clean $v.gitCommit=$z $v.buildDate=$d"
  ldf="$ldf $c.gitVersion=$want $c.gitMajor=1 $c.gitMinor=$KUBE_MINOR $c.gitTreeState=clean $c.gitCommit=$z $c.buildDate=$d"
  with_progress "go build kubernetes" "$BUILD_LOGS/k8s-build.log" \
    bash -c "cd '$w' && go build -v -ldflags '$ldf' -o '$K8S_BIN/' k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
  has_version "$K8S_BIN/kube-apiserver" "$want" || die "kube-apiserver does not report $want"
}

build_etcd() {
  local want="$ETCD_VERSION"
  if has_version "$ETCD_BIN/etcd" "etcd Version: $want"; then log "etcd v$want: cached"; return; fi
  log "etcd v$want: building from source"
  local w="$SRC/etcd-v$want"; mkdir -p "$w" "$ETCD_BIN"
  (
    cd "$w"
    if [ ! -f go.sum ]; then
      rm -f go.mod tools.go
      printf 'module gamecell.local/etcd-bin\n\ngo 1.23.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$want" >go.mod
      printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
      go mod tidy || { rm -f go.sum; exit 1; }
    fi
  ) >"$BUILD_LOGS/etcd-modules.log" 2>&1 || { tail -n 30 "$BUILD_LOGS/etcd-modules.log" >&2; die "resolving etcd modules failed"; }
  with_progress "go build etcd" "$BUILD_LOGS/etcd-build.log" \
    bash -c "cd '$w' && go build -v -ldflags '-s -w' -o '$ETCD_BIN/etcd' go.etcd.io/etcd/server/v3"
  has_version "$ETCD_BIN/etcd" "etcd Version: $want" || die "etcd does not report $want"
}

build_kwok() {
  if [ -x "$KWOK_BIN/kwok" ] && "$KWOK_BIN/kwok" --version 2>/dev/null | grep -qF "$KWOK_VERSION"; then
    log "kwok $KWOK_VERSION: cached"; return
  fi
  log "kwok $KWOK_VERSION: building from source"
  mkdir -p "$KWOK_BIN"
  with_progress "go install kwok" "$BUILD_LOGS/kwok-build.log" \
    env GOBIN="$KWOK_BIN" go install -v -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  if has_version "$HELM_BIN/helm" "$HELM_VERSION"; then log "helm $HELM_VERSION: cached"; return; fi
  log "helm $HELM_VERSION: building from source"
  mkdir -p "$HELM_BIN"
  local h=helm.sh/helm/v3
  # Stamp the Kubernetes minor too: helm otherwise assumes 1.20 for kubeVersion checks and lint.
  with_progress "go install helm" "$BUILD_LOGS/helm-build.log" \
    env GOBIN="$HELM_BIN" go install -v -ldflags "-s -w -X $h/internal/version.version=$HELM_VERSION \
      -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR \
      -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR" \
      "$h/cmd/helm@$HELM_VERSION"
}

start=$SECONDS
log "local control plane tools -> $CACHE (versions: hack/versions.env)"
command -v go >/dev/null || die "go is required to build the local control plane"
build_etcd
build_kwok
build_helm
build_kubernetes
log "tools ready in $((SECONDS - start))s"
