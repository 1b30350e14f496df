#!/usr/bin/env bash
# Static checks of the Helm chart (charts/operator), no cluster needed:
#   - `helm lint --strict` is clean, with the default values and with every switch flipped;
#   - `helm template` renders the default, the everything-on and the everything-off variants, and
#     the restricted security context, probes and POD_NAME are in the Deployment;
#   - the ServiceMonitor appears only when enabled AND monitoring.coreos.com/v1 is served;
#   - values.schema.json refuses bad values (each case below must make `helm template` fail
#     with the schema's message).
# The server-side dry run and `helm install` against a cluster are in tests/e2e/chart.rs.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CHART="$REPO_ROOT/charts/operator"
[ -x "$HELM" ] || die "helm not built: run hack/build-tools.sh (make tools)"
failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }
render() { "$HELM" template gamecell-operator "$CHART" --namespace gamecell-system "$@"; }

ALL_ON=(--set metrics.serviceMonitor.enabled=true
  --set networkPolicy.enabled=true --set 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=observability'
  --set 'serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/gamecell-operator'
  --set replicaCount=2 --set aws.region=eu-west-1 --set rbac.ownerReferencesPermissionEnforcement=true --set 'env[0].name=EXTRA' --set 'env[0].value=1'
  --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef)
ALL_OFF=(--set crds.install=false --set rbac.create=false --set serviceAccount.create=false
  --set serviceAccount.name=existing --set metrics.service.enabled=false --set leaderElection.enabled=false)

log "helm lint --strict ($("$HELM" version --short))"
"$HELM" lint --strict "$CHART" >/dev/null || { "$HELM" lint --strict "$CHART"; fail "helm lint (defaults)"; }
"$HELM" lint --strict "$CHART" "${ALL_ON[@]}" >/dev/null || fail "helm lint (everything on)"
"$HELM" lint --strict "$CHART" "${ALL_OFF[@]}" >/dev/null || fail "helm lint (everything off)"

log "helm template: defaults, everything on, everything off"
default=$(render) || fail "render (defaults)"
on=$(render "${ALL_ON[@]}" --api-versions monitoring.coreos.com/v1) || fail "render (everything on)"
off=$(render "${ALL_OFF[@]}") || fail "render (everything off)"

# expect NAME TEXT PATTERN...: every (fixed-string) pattern occurs in TEXT.
expect() {
  local name=$1 text=$2 p; shift 2
  for p in "$@"; do grep -qF -- "$p" <<<"$text" || fail "$name: missing '$p'"; done
}
# refuse NAME TEXT PATTERN...: no pattern occurs in TEXT.
refuse() {
  local name=$1 text=$2 p; shift 2
  for p in "$@"; do ! grep -qF -- "$p" <<<"$text" || fail "$name: unexpected '$p'"; done
}
kinds() { grep -E '^kind: ' <<<"$1" | sort | uniq -c | awk '{print $3"="$1}' | paste -sd' '; }

expect defaults "$default" \
  "kind: CustomResourceDefinition" "helm.sh/resource-policy: keep" \
  "kind: ServiceAccount" "kind: ClusterRole" "kind: ClusterRoleBinding" "kind: Role" "kind: RoleBinding" \
  "kind: Deployment" "kind: Service" \
  "runAsNonRoot: true" "readOnlyRootFilesystem: true" "allowPrivilegeEscalation: false" "- ALL" \
  "type: RuntimeDefault" "path: /livez" "path: /readyz" "fieldPath: metadata.name" \
  "name: GAMECELL_LOG_FORMAT" 'value: "json"' "containerPort: 8080" "memory: 128Mi"
refuse defaults "$default" "kind: ServiceMonitor" "kind: NetworkPolicy" "strategy:" "gamecells/finalizers"
[ "$(grep -c '^kind: CustomResourceDefinition' <<<"$default")" = 3 ] || fail "defaults: want 3 CRDs"
# Every ClusterRole rule carries a comment saying why (a comment line right above "- apiGroups").
rules=$(render --show-only templates/rbac.yaml | awk '/^kind: ClusterRole$/{on=1} /^---/{on=0} on')
uncommented=$(awk '/^  - apiGroups:/ { if (prev !~ /^ *#/) n++ } { prev = $0 } END { print n + 0 }' <<<"$rules")
[ "$uncommented" = 0 ] || fail "ClusterRole: $uncommented rule(s) without a comment"

expect everything-on "$on" "kind: ServiceMonitor" "kind: NetworkPolicy" "eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/gamecell-operator" \
  "replicas: 2" "name: AWS_REGION" "name: EXTRA" "@sha256:0123456789abcdef" "team: observability" \
  '"gamecells/finalizers", "playerservices/finalizers", "matchmakingpools/finalizers"'
# Enabled but the cluster does not serve monitoring.coreos.com/v1: no ServiceMonitor.
sm_without_api=$(render --set metrics.serviceMonitor.enabled=true) || fail "render (ServiceMonitor, no API)"
refuse serviceMonitor-without-api "$sm_without_api" "kind: ServiceMonitor"

refuse everything-off "$off" "kind: CustomResourceDefinition" "kind: ClusterRole" "kind: Role" \
  "kind: ServiceAccount" "kind: Service" "GAMECELL_LEASE_NAME"
expect everything-off "$off" "serviceAccountName: existing" "type: Recreate" 'value: "false"'
log "  defaults:        $(kinds "$default")"
log "  everything on:   $(kinds "$on")"
log "  everything off:  $(kinds "$off")"

log "values.schema.json refuses bad values"
bad_values=(
  logFormat=yaml
  replicaCount=0
  unknownKey=1
  image.pullPolicy=Sometimes
  image.digest=latest
  crds.install=maybe
  adminPort=70000
  'replicaCount=2,leaderElection.enabled=false'
  leaderElection.leaseDurationSeconds=1
  serviceAccount.create=false
  securityContext.allowPrivilegeEscalation=true
  securityContext.privileged=true
  podSecurityContext.runAsNonRoot=false
  podSecurityContext.runAsUser=0
  resources.limits.memory=lots
  metrics.service.type=External
  metrics.serviceMonitor.interval=often
  'networkPolicy.egress.to[0]=everywhere'
  aws.region=Europe
  rbac.ownerReferencesPermissionEnforcement=yes
)
for v in "${bad_values[@]}"; do
  if out=$(render --set "$v" 2>&1 >/dev/null); then
    fail "schema accepted --set $v"
  elif ! grep -q "don't meet the specifications of the schema" <<<"$out"; then
    fail "--set $v failed, but not on the schema: $out"
  else
    log "  refused --set $v: $(grep -E "^ *- at " <<<"$out" | tail -n 1 | sed 's/^ *//')"
  fi
done
# And `helm lint` reports them too.
"$HELM" lint "$CHART" --set logFormat=yaml >/dev/null 2>&1 && fail "helm lint accepted logFormat=yaml"

if [ "$failures" -gt 0 ]; then die "$failures chart check(s) failed"; fi
log "chart checks passed"
