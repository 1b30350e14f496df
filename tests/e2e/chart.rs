//! The Helm chart against the local cluster, and the operator under the chart's own RBAC:
//!
//! - `helm template` output (defaults, and with the optional NetworkPolicy) passes a server-side
//!   dry run in a namespace that enforces the restricted Pod Security Standard, without a
//!   PodSecurity warning; so does the Argo CD `argocd-cm` patch, which embeds
//!   `deploy/argocd/health.lua` for the three kinds;
//! - `helm install` succeeds (the CRDs adopted, the pods admitted under `restricted` and made
//!   Ready by kwok) and `helm uninstall` keeps the CRDs;
//! - RBAC, proven: the operator binary authenticated as the chart's ServiceAccount
//!   (`system:serviceaccount:gamecell-system:gamecell-operator`, a static token of the local
//!   cluster) with nothing but the chart's ClusterRole and leader-election Role bound, configured
//!   as the chart configures it, takes a shared cell with data stores and two tenants, a
//!   PlayerService with an autoscaler and a MatchmakingPool to Ready; removes a tenant (its
//!   namespace deleted) and the autoscaler (pruned); runs a dedicated cell's pool in two regions
//!   and prunes one; deletes everything through the finalizer, with no request forbidden and
//!   every Event published. `kubectl wait --for=condition=Ready` returns for the three kinds, and
//!   the Argo CD health check reads the live objects as Healthy;
//! - and the check can fail: with one needed rule removed (create and patch on Secrets) the same
//!   cell never gets Ready and the operator's log says forbidden.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gamecell_operator::crds::GameCell;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::{
    OperatorProcess, client, dynamic_api, ensure_namespace, install_crds, repo_path, wait_until,
    yaml_documents,
};

const MANAGER: &str = "gamecell-e2e-chart";
/// The chart's ServiceAccount for release `gamecell-operator` in namespace `gamecell-system`:
/// the identity of the static token in `operator.kubeconfig` (hack/cluster.sh).
const OPERATOR_NAMESPACE: &str = "gamecell-system";
const OPERATOR_RELEASE: &str = "gamecell-operator";
const OPERATOR_USER: &str = "system:serviceaccount:gamecell-system:gamecell-operator";
const KINDS: [&str; 3] = ["GameCell", "PlayerService", "MatchmakingPool"];

/// The helm and kubectl binaries hack/build-tools.sh built (paths from hack/lib.sh).
struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
}

fn tools() -> Tools {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source hack/lib.sh && printf '%s\n%s\n' "$HELM" "$KUBECTL""#)
        .current_dir(repo_path("."))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "hack/lib.sh: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(PathBuf::from);
    let helm = lines.next().expect("HELM");
    let kubectl = lines.next().expect("KUBECTL");
    for tool in [&helm, &kubectl] {
        assert!(
            tool.exists(),
            "{} is missing: run `make tools` (hack/build-tools.sh)",
            tool.display()
        );
    }
    Tools { helm, kubectl }
}

/// What a command printed and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(repo_path("."))
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} timed out", program.display()))
        .expect("command output");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `helm template` of the chart for `release` in `namespace`, failing the test on error.
async fn render(tools: &Tools, release: &str, namespace: &str, extra: &[&str]) -> String {
    let chart = repo_path("charts/operator");
    let chart = chart.to_str().expect("utf-8 path");
    let mut args = vec!["template", release, chart, "--namespace", namespace];
    args.extend_from_slice(extra);
    let out = run(&tools.helm, &args, None).await;
    assert!(out.ok, "helm template {extra:?} failed: {}", out.stderr);
    out.stdout
}

/// The kubeconfig of the operator's ServiceAccount, next to the admin one the runner exports.
fn operator_kubeconfig() -> PathBuf {
    let admin = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG: run the suite with `make e2e` (hack/e2e.sh)");
    let path = Path::new(&admin)
        .parent()
        .expect("KUBECONFIG has a directory")
        .join("operator.kubeconfig");
    assert!(
        path.exists(),
        "{} is missing: hack/cluster.sh writes it",
        path.display()
    );
    path
}

fn require_emulator() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at the local emulator: run the suite with `make e2e`"
    );
}

/// Creates `name` (if needed) enforcing the restricted Pod Security Standard.
async fn restricted_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted"}}});
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&ns),
    )
    .await
    .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
}

async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

#[tokio::test]
async fn chart_and_argocd_patch_pass_a_server_side_dry_run() {
    let client = client().await;
    let tools = tools();
    let namespace = "e2e-chart-dryrun";
    restricted_namespace(&client, namespace).await;

    for extra in [
        &[][..],
        &[
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "replicaCount=2",
            "--set",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/gamecell-operator",
        ][..],
    ] {
        let manifests = render(&tools, "e2e-dryrun", namespace, extra).await;
        let kinds: Vec<&str> = manifests
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        for kind in [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
        ] {
            assert!(kinds.contains(&kind), "{extra:?}: no {kind} in {kinds:?}");
        }
        let out = run(
            &tools.kubectl,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "--field-manager",
                MANAGER,
                "-f",
                "-",
            ],
            Some(&manifests),
        )
        .await;
        assert!(
            out.ok,
            "server-side dry run of the chart {extra:?} failed:\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("PodSecurity"),
            "the Deployment violates the restricted Pod Security Standard:\n{}",
            out.stderr
        );
        assert!(
            out.stdout.contains(
                "deployment.apps/e2e-dryrun-gamecell-operator serverside-applied (server dry run)"
            ),
            "{}",
            out.stdout
        );
    }

    // The argocd-cm patch: the script of every kind is health.lua, byte for byte, and the
    // ConfigMap is valid.
    let script =
        std::fs::read_to_string(repo_path("deploy/argocd/health.lua")).expect("health.lua");
    let patch = yaml_documents(&repo_path("deploy/argocd/argocd-cm.yaml")).remove(0);
    for kind in KINDS {
        let key = format!("resource.customizations.health.gamecell.dev_{kind}");
        assert_eq!(
            patch["data"][&key].as_str(),
            Some(script.as_str()),
            "argocd-cm.yaml {key} differs from health.lua: run `hack/lua-tests.sh generate`"
        );
    }
    ensure_namespace(&client, "argocd").await;
    let out = run(
        &tools.kubectl,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager",
            MANAGER,
            "-f",
            repo_path("deploy/argocd/argocd-cm.yaml")
                .to_str()
                .expect("utf-8 path"),
        ],
        None,
    )
    .await;
    assert!(out.ok, "argocd-cm.yaml dry run failed: {}", out.stderr);
    delete_namespace(&client, "argocd").await;
    delete_namespace(&client, namespace).await;
}

#[tokio::test]
async fn helm_install_succeeds_and_uninstall_keeps_the_crds() {
    let client = client().await;
    let tools = tools();
    let (release, namespace) = ("e2e-chart", "e2e-chart");
    let fullname = "e2e-chart-gamecell-operator";
    let role_arn = "arn:aws:iam::123456789012:role/gamecell-operator";
    // CRDs installed by `kubectl apply` (as earlier tests did) are adopted by the release.
    install_crds(&client).await;
    restricted_namespace(&client, namespace).await;
    let _ = run(
        &tools.helm,
        &["uninstall", release, "--namespace", namespace, "--wait"],
        None,
    )
    .await;

    let chart = repo_path("charts/operator");
    let role_arn_value =
        format!("serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn={role_arn}");
    let out = run(
        &tools.helm,
        &[
            "install",
            release,
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            namespace,
            "--take-ownership",
            "--wait",
            "--timeout",
            "180s",
            "--set",
            "replicaCount=2",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            &role_arn_value,
        ],
        None,
    )
    .await;
    assert!(
        out.ok,
        "helm install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("STATUS: deployed"), "{}", out.stdout);

    // The pods were admitted under `restricted` and are Ready (kwok runs them).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get(fullname).await.expect("Deployment");
    let status = deployment.status.clone().unwrap_or_default();
    assert_eq!(status.ready_replicas, Some(2), "{status:?}");
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = sa.get(fullname).await.expect("ServiceAccount");
    assert_eq!(
        account.annotations().get("eks.amazonaws.com/role-arn"),
        Some(&role_arn.to_owned())
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "gamecells.gamecell.dev",
        "playerservices.gamecell.dev",
        "matchmakingpools.gamecell.dev",
    ] {
        let crd = crds.get(name).await.expect("CRD");
        assert_eq!(
            crd.annotations().get("meta.helm.sh/release-name"),
            Some(&release.to_owned()),
            "{name} is not the release's"
        );
    }

    let out = run(
        &tools.helm,
        &["uninstall", release, "--namespace", namespace, "--wait"],
        None,
    )
    .await;
    assert!(out.ok, "helm uninstall failed: {}", out.stderr);
    // helm.sh/resource-policy: keep: the CRDs (and every GameCell) survive the uninstall.
    for name in [
        "gamecells.gamecell.dev",
        "playerservices.gamecell.dev",
        "matchmakingpools.gamecell.dev",
    ] {
        let crd = crds.get_opt(name).await.expect("read CRD");
        assert!(
            crd.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
            "helm uninstall deleted {name}"
        );
    }
    let roles: Api<ClusterRole> = Api::all(client.clone());
    assert!(
        roles.get_opt(fullname).await.expect("read").is_none(),
        "the ClusterRole outlived the release"
    );
    delete_namespace(&client, namespace).await;
}

/// The chart's RBAC objects for the ServiceAccount the operator kubeconfig authenticates as.
struct Rbac {
    cluster_role: ClusterRole,
    cluster_binding: ClusterRoleBinding,
    role: Role,
    role_binding: RoleBinding,
}

/// Whether the local kube-apiserver runs the OwnerReferencesPermissionEnforcement admission
/// plugin (as OpenShift does): then the chart is rendered with
/// `rbac.ownerReferencesPermissionEnforcement=true`, as a user of such a cluster would. (Checked
/// both ways by hand: without the switch such a cluster refuses the tenant namespace.)
fn owner_references_enforced() -> bool {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    let pid_file = Path::new(&kubeconfig)
        .parent()
        .map(|d| d.join("pids/kube-apiserver.pid"));
    pid_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|pid| std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok())
        .is_some_and(|cmdline| {
            String::from_utf8_lossy(&cmdline).contains("OwnerReferencesPermissionEnforcement")
        })
}

async fn chart_rbac(tools: &Tools) -> Rbac {
    let enforced = format!(
        "rbac.ownerReferencesPermissionEnforcement={}",
        owner_references_enforced()
    );
    let text = render(
        tools,
        OPERATOR_RELEASE,
        OPERATOR_NAMESPACE,
        &["--show-only", "templates/rbac.yaml", "--set", &enforced],
    )
    .await;
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
        .expect("rendered YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("the chart renders no {kind}"))
    };
    let rbac = Rbac {
        cluster_role: serde_json::from_value(find("ClusterRole")).expect("ClusterRole"),
        cluster_binding: serde_json::from_value(find("ClusterRoleBinding")).expect("binding"),
        role: serde_json::from_value(find("Role")).expect("Role"),
        role_binding: serde_json::from_value(find("RoleBinding")).expect("RoleBinding"),
    };
    let subject = &rbac.cluster_binding.subjects.as_deref().unwrap_or_default()[0];
    assert_eq!(
        format!(
            "system:serviceaccount:{}:{}",
            subject.namespace.as_deref().unwrap_or_default(),
            subject.name
        ),
        OPERATOR_USER,
        "the chart binds another identity than the operator kubeconfig's"
    );
    rbac
}

async fn apply_rbac(client: &Client, rbac: &Rbac) {
    let params = PatchParams::apply(MANAGER).force();
    let ns = OPERATOR_NAMESPACE;
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().expect("name")
    };
    Api::<ClusterRole>::all(client.clone())
        .patch(
            &name(&rbac.cluster_role.metadata),
            &params,
            &Patch::Apply(&rbac.cluster_role),
        )
        .await
        .expect("ClusterRole");
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            &name(&rbac.cluster_binding.metadata),
            &params,
            &Patch::Apply(&rbac.cluster_binding),
        )
        .await
        .expect("ClusterRoleBinding");
    Api::<Role>::namespaced(client.clone(), ns)
        .patch(
            &name(&rbac.role.metadata),
            &params,
            &Patch::Apply(&rbac.role),
        )
        .await
        .expect("Role");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(
            &name(&rbac.role_binding.metadata),
            &params,
            &Patch::Apply(&rbac.role_binding),
        )
        .await
        .expect("RoleBinding");
}

async fn delete_rbac(client: &Client, rbac: &Rbac) {
    let dp = DeleteParams::default();
    let ns = OPERATOR_NAMESPACE;
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&rbac.cluster_binding.name_any(), &dp)
        .await;
    let _ = Api::<ClusterRole>::all(client.clone())
        .delete(&rbac.cluster_role.name_any(), &dp)
        .await;
    let _ = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .delete(&rbac.role_binding.name_any(), &dp)
        .await;
    let _ = Api::<Role>::namespaced(client.clone(), ns)
        .delete(&rbac.role.name_any(), &dp)
        .await;
}

/// What `kubectl auth can-i` answers for the operator's identity.
async fn operator_can(tools: &Tools, args: &[&str]) -> bool {
    let kubeconfig = operator_kubeconfig();
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8 path"),
        "auth",
        "can-i",
    ];
    all.extend_from_slice(args);
    run(&tools.kubectl, &all, None).await.stdout.trim() == "yes"
}

/// Starts the operator binary as the chart's ServiceAccount, configured as the chart configures
/// it (JSON logs, leader election on a Lease in its namespace).
async fn start_operator_as_service_account(client: &Client, log_name: &str) -> OperatorProcess {
    // A Lease left by an earlier, killed run would delay this one until it expires.
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let _ = leases
        .delete(OPERATOR_RELEASE, &DeleteParams::default())
        .await;
    let kubeconfig = operator_kubeconfig();
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().expect("utf-8 path")),
        ("GAMECELL_LOG_FORMAT", "json"),
        ("GAMECELL_LEADER_ELECT", "true"),
        ("GAMECELL_LEASE_NAME", OPERATOR_RELEASE),
        ("POD_NAMESPACE", OPERATOR_NAMESPACE),
        ("POD_NAME", log_name),
    ];
    let operator = OperatorProcess::start_with(log_name, &env).await;
    wait_until(
        Duration::from_secs(60),
        "the operator to lead (gamecell_operator_leader 1)",
        || async { operator.metric("gamecell_operator_leader").await == Some(1.0) },
    )
    .await;
    operator
}

fn shared_cell(name: &str, tenants: &[&str]) -> Value {
    let tenants: Vec<Value> = tenants
        .iter()
        .map(|t| {
            json!({"name": t, "namespace": format!("{name}-{t}"),
                   "quota": {"cpu": "4", "memory": "8Gi", "pods": 20}})
        })
        .collect();
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Shared",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": tenants,
            "dataStores": {
                "documentTables": [{"name": "state", "partitionKey": {"name": "id", "type": "S"}}],
                "buckets": [{"name": "saves"}]
            },
            "deletionPolicy": "Delete"
        }
    })
}

fn player_service(cell: &str, scaling: Value) -> Value {
    let mut spec = json!({
        "cellRef": {"name": cell},
        "image": "ghcr.io/example/lobby:1.0.0",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "200m", "memory": "128Mi"}},
        "dataStores": {"documentTables": ["state"], "buckets": ["saves"]}
    });
    for (k, v) in scaling.as_object().expect("scaling") {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
        "metadata": {"name": "lobby", "namespace": format!("{cell}-game")},
        "spec": spec
    })
}

fn pool(cell: &str, namespace: &str, regions: &[&str]) -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
        "metadata": {"name": "duels", "namespace": namespace},
        "spec": {
            "cellRef": {"name": cell},
            "replicas": 1,
            "queues": [{"name": "duel", "playersPerMatch": 2, "teams": 2,
                        "skillWindow": {"initial": 100, "wideningPerSecond": 10, "maximum": 500},
                        "regions": regions}]
        }
    })
}

async fn apply(client: &Client, manifest: &Value) {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    let obj: kube::api::DynamicObject = serde_json::from_value(manifest.clone()).expect("object");
    dynamic_api(client, manifest)
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

/// The live object of `manifest`, as JSON.
async fn live(client: &Client, manifest: &Value) -> Option<Value> {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    let obj = dynamic_api(client, manifest).get_opt(name).await.ok()??;
    serde_json::to_value(obj).ok()
}

/// Ready=True for the object's current generation.
fn is_ready(obj: &Value) -> bool {
    obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        && obj["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits until the live object of `manifest` is Ready for its current generation.
async fn wait_ready(client: &Client, manifest: &Value, log: &Path) {
    let kind = manifest["kind"].as_str().unwrap_or_default();
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    wait_until(
        Duration::from_secs(180),
        &format!(
            "{kind} {name} Ready under the chart's RBAC (operator log: {})",
            log.display()
        ),
        || async { live(client, manifest).await.is_some_and(|o| is_ready(&o)) },
    )
    .await;
}

/// The names of the objects of kind `K` in `namespace` that match `selector`.
async fn names<K>(client: &Client, namespace: &str, selector: &str) -> Vec<String>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items.iter().map(ResourceExt::name_any).collect())
        .unwrap_or_default()
}

/// Deletes a cell while the operator runs (its finalizer deletes the cloud resources) and waits
/// until it is gone; releases it by hand only if that fails, so a broken run leaves no debris.
async fn delete_cell(client: &Client, name: &str) -> bool {
    let cells: Api<GameCell> = Api::all(client.clone());
    let _ = cells.delete(name, &DeleteParams::default()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if cells.get_opt(name).await.ok().flatten().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let patch = json!({"metadata": {"finalizers": null}});
    let _ = cells
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    false
}

/// The operator log's lines that report a refused request.
fn forbidden_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("forbidden") || l.contains("cannot publish event")
        })
        .map(str::to_owned)
        .collect()
}

/// `kubectl wait --for=condition=Ready` on the live object, then Argo CD's health check on it.
async fn wait_and_check_health(tools: &Tools, client: &Client, manifest: &Value) {
    let kind = manifest["kind"].as_str().unwrap_or_default().to_lowercase();
    let target = format!(
        "{kind}/{}",
        manifest["metadata"]["name"].as_str().unwrap_or_default()
    );
    let mut args = vec![
        "wait",
        "--for=condition=Ready",
        "--timeout=60s",
        target.as_str(),
    ];
    if let Some(ns) = manifest["metadata"]["namespace"].as_str() {
        args.extend_from_slice(&["--namespace", ns]);
    }
    let out = run(&tools.kubectl, &args, None).await;
    assert!(
        out.ok && out.stdout.contains("condition met"),
        "kubectl {args:?}: {}{}",
        out.stdout,
        out.stderr
    );

    let object = live(client, manifest).await.expect("live object");
    let file = repo_path(&format!("target/e2e-argocd-{kind}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&object).expect("json")).expect("write object");
    let script = repo_path("hack/lua-tests.sh");
    let out = run(
        &script,
        &["health", file.to_str().expect("utf-8 path")],
        None,
    )
    .await;
    assert!(
        out.ok && out.stdout.starts_with("Healthy\t"),
        "Argo CD health of the live {kind}: {}{}",
        out.stdout,
        out.stderr
    );
}

#[tokio::test]
async fn operator_runs_with_the_chart_rbac_and_nothing_else() {
    require_emulator();
    let client = client().await;
    let tools = tools();
    install_crds(&client).await;
    ensure_namespace(&client, OPERATOR_NAMESPACE).await;
    let rbac = chart_rbac(&tools).await;
    apply_rbac(&client, &rbac).await;

    // The kubeconfig really is the ServiceAccount, and it holds no more than the chart grants.
    let kubeconfig = operator_kubeconfig();
    let whoami = run(
        &tools.kubectl,
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )
    .await;
    assert_eq!(whoami.stdout.trim(), OPERATOR_USER, "{}", whoami.stderr);
    for (allowed, args) in [
        (
            true,
            &["patch", "gamecells.gamecell.dev", "--subresource=status"][..],
        ),
        (true, &["create", "secrets", "-n", "any-tenant"][..]),
        (false, &["list", "secrets", "-A"][..]),
        (false, &["watch", "secrets", "-A"][..]),
        (false, &["create", "pods", "-n", "any-tenant"][..]),
        (false, &["create", "clusterroles"][..]),
        (false, &["update", "gamecells.gamecell.dev"][..]),
        (false, &["delete", "customresourcedefinitions"][..]),
        (false, &["patch", "leases", "-n", "default"][..]),
    ] {
        assert_eq!(
            operator_can(&tools, args).await,
            allowed,
            "kubectl auth can-i {args:?} as {OPERATOR_USER}"
        );
    }

    let operator = start_operator_as_service_account(&client, "e2e-operator-rbac").await;
    let log = operator.log.clone();

    // A shared cell with two tenants and data stores, a PlayerService with an autoscaler binding
    // the stores, a MatchmakingPool: all Ready.
    let shared = "e2e-rbac";
    let game = format!("{shared}-game");
    let cell = shared_cell(shared, &["game", "extra"]);
    apply(&client, &cell).await;
    // The workloads go into a tenant namespace, which the operator creates.
    wait_ready(&client, &cell, &log).await;
    let service = player_service(
        shared,
        json!({"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}),
    );
    apply(&client, &service).await;
    let duels = pool(shared, &game, &["us-east-1"]);
    apply(&client, &duels).await;
    for manifest in [&cell, &service, &duels] {
        wait_ready(&client, manifest, &log).await;
    }
    let hpa_selector = "gamecell.dev/playerservice=lobby";
    assert_eq!(
        names::<HorizontalPodAutoscaler>(&client, &game, hpa_selector).await,
        ["lobby"]
    );

    // kubectl wait works for the three kinds, and Argo CD's health check reads them as Healthy.
    for manifest in [&cell, &service, &duels] {
        wait_and_check_health(&tools, &client, manifest).await;
    }

    // The transitions were published as Events (events.k8s.io), which the RBAC allows.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let published = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(shared)
                && e.reporting_controller.as_deref() == Some("gamecell-operator")
        });
    assert!(published, "no Event about GameCell {shared}");

    // Changes that take the delete paths: a tenant removed (its namespace is listed and deleted),
    // autoscaling replaced by replicas (the autoscaler is pruned).
    apply(&client, &shared_cell(shared, &["game"])).await;
    let service = player_service(shared, json!({"replicas": 1}));
    apply(&client, &service).await;
    wait_ready(&client, &service, &log).await;
    wait_until(Duration::from_secs(60), "the HPA to be pruned", || async {
        names::<HorizontalPodAutoscaler>(&client, &game, hpa_selector)
            .await
            .is_empty()
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_until(
        Duration::from_secs(60),
        "the removed tenant's namespace to be deleted",
        || async {
            namespaces
                .get_opt(&format!("{shared}-extra"))
                .await
                .ok()
                .flatten()
                .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
        },
    )
    .await;

    // A dedicated cell's pool runs a matchmaker per region; dropping a region prunes its
    // Deployment and Service.
    let dedicated = "e2e-rbac-ded";
    let solo = format!("{dedicated}-solo");
    let ded_cell = json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": dedicated},
        "spec": {"tier": "Dedicated", "provider": {"aws": {"region": "us-east-1"}},
                 "tenants": [{"name": "solo", "namespace": solo}],
                 "deletionPolicy": "Delete"}
    });
    apply(&client, &ded_cell).await;
    wait_ready(&client, &ded_cell, &log).await;
    let regional = pool(dedicated, &solo, &["us-east-1", "eu-west-1"]);
    apply(&client, &regional).await;
    wait_ready(&client, &regional, &log).await;
    let pool_selector = "gamecell.dev/matchmakingpool=duels";
    assert_eq!(
        names::<Deployment>(&client, &solo, pool_selector)
            .await
            .len(),
        2,
        "one matchmaker per region"
    );
    let regional = pool(dedicated, &solo, &["us-east-1"]);
    apply(&client, &regional).await;
    wait_ready(&client, &regional, &log).await;
    wait_until(
        Duration::from_secs(60),
        "the dropped region's matchmaker to be pruned",
        || async {
            names::<Deployment>(&client, &solo, pool_selector)
                .await
                .len()
                == 1
                && names::<Service>(&client, &solo, pool_selector).await.len() == 1
        },
    )
    .await;

    // Deleting: workloads first, then the cells through their finalizer, still as the
    // ServiceAccount.
    for manifest in [&service, &duels, &regional] {
        let obj_name = manifest["metadata"]["name"].as_str().unwrap_or_default();
        let _ = dynamic_api(&client, manifest)
            .delete(obj_name, &DeleteParams::default())
            .await;
    }
    let released = delete_cell(&client, shared).await && delete_cell(&client, dedicated).await;
    let refused = forbidden_lines(&log);
    operator.stop().await;
    delete_rbac(&client, &rbac).await;
    assert!(released, "the operator did not release the cells");
    assert!(
        refused.is_empty(),
        "requests refused under the chart's RBAC:\n{}",
        refused.join("\n")
    );
}

#[tokio::test]
async fn removing_a_needed_rule_makes_the_operator_fail_forbidden() {
    require_emulator();
    let client = client().await;
    let tools = tools();
    install_crds(&client).await;
    ensure_namespace(&client, OPERATOR_NAMESPACE).await;
    let mut rbac = chart_rbac(&tools).await;
    // The rule that lets the operator write the tenants' connection Secrets: keep only get.
    let mut removed = false;
    for rule in rbac.cluster_role.rules.iter_mut().flatten() {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "secrets"))
        {
            rule.verbs.retain(|v| v != "create" && v != "patch");
            removed = true;
        }
    }
    assert!(removed, "the chart's ClusterRole has no rule for Secrets");
    apply_rbac(&client, &rbac).await;
    assert!(!operator_can(&tools, &["patch", "secrets", "-n", "any-tenant"]).await);

    let operator = start_operator_as_service_account(&client, "e2e-operator-rbac-denied").await;
    let name = "e2e-rbac-denied";
    let cell = shared_cell(name, &["game"]);
    apply(&client, &cell).await;
    wait_until(
        Duration::from_secs(90),
        &format!(
            "the operator to log a forbidden Secret write (log: {})",
            operator.log.display()
        ),
        || async {
            forbidden_lines(&operator.log)
                .iter()
                .any(|l| l.contains("secrets"))
        },
    )
    .await;
    // Everything before the Secrets (namespace, quota, policies, cloud resources) went through,
    // but the cell never gets Ready.
    for _ in 0..10 {
        let object = live(&client, &cell).await.expect("cell");
        assert!(
            !is_ready(&object),
            "the cell got Ready without the Secrets rule: {object:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let denied = forbidden_lines(&operator.log);
    let released = delete_cell(&client, name).await;
    operator.stop().await;
    delete_rbac(&client, &rbac).await;
    assert!(
        denied.iter().all(|l| l.contains("secrets")),
        "only the Secret writes should be refused:\n{}",
        denied.join("\n")
    );
    assert!(released, "the operator did not release GameCell {name}");
}
