//! The applied memo (src/controllers/applied.rs), in-process against the real API server: once a
//! Shared cell with a PlayerService and a MatchmakingPool has converged, resyncs read none of
//! their children back and write nothing; a child edited or deleted out of band is still
//! repaired at the next resync.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gamecell_operator::admin::Readiness;
use gamecell_operator::cloud::fake::FakeCloud;
use gamecell_operator::controllers::{self, Timings};
use gamecell_operator::crds::{GameCell, MatchmakingPool, PlayerService};
use gamecell_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::{FIELD_MANAGER, client, install_crds, wait_until};

const RESYNC: Duration = Duration::from_secs(2);
const CELL: &str = "ap-shared";
const ALPHA: &str = "ap-shared-alpha";
const BETA: &str = "ap-shared-beta";
const MANAGED: &str = "app.kubernetes.io/managed-by=gamecell-operator";

/// Kinds the operator reads only to decide whether to apply them: with the memo, a quiet resync
/// sends them no GET at all. (Deployments, Namespaces and ConfigMaps are also read for other
/// reasons: a rollout's status, a namespace's owner, the cell matchmaker's document; Secrets are
/// never watched, see the module doc of `applied`. A LimitRange's defaults come from the builder
/// the cell writes it with, not from a read.)
const APPLY_ONLY: &[&str] = &[
    "resourcequotas",
    "limitranges",
    "networkpolicies",
    "services",
    "serviceaccounts",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
];

/// Kinds the PlayerService and MatchmakingPool controllers prune (list the owner's children,
/// delete those no longer wanted): with the prune memo, a quiet resync lists none of them.
const PRUNED: &[&str] = &["deployments", "services", "horizontalpodautoscalers"];

/// The controllers, in this process, with a client that counts its requests in `metrics`.
struct Operator {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<Metrics>,
    cloud: Arc<FakeCloud>,
}

impl Operator {
    async fn start(resync: Duration) -> Self {
        let metrics = Arc::new(Metrics::new());
        let config = kube::Config::infer().await.expect("kubeconfig");
        let counted = metrics.counted_client(config).expect("client");
        let (stop, rx) = watch::channel(false);
        let readiness = Readiness::default();
        let timings = Timings {
            resync,
            provisioning_poll: Duration::from_millis(500),
            ..Timings::default()
        };
        let cloud = Arc::new(FakeCloud::new());
        let task = tokio::spawn(controllers::run(
            counted,
            cloud.clone(),
            timings,
            metrics.clone(),
            readiness.clone(),
            Reporter {
                controller: "gamecell-e2e-applied".into(),
                instance: None,
            },
            rx,
        ));
        wait_until(
            Duration::from_secs(30),
            "in-process controllers ready",
            || {
                let r = readiness.clone();
                async move { r.get() }
            },
        )
        .await;
        Self {
            stop,
            task: Some(task),
            metrics,
            cloud,
        }
    }

    /// Every labelled counter, by metric name and labels, e.g.
    /// `gamecell_operator_kube_requests_total{verb="get",resource="services"}`.
    fn counters(&self) -> BTreeMap<String, f64> {
        self.metrics
            .encode()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

/// What changed between two snapshots of the counters (only what grew).
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn requests(delta: &BTreeMap<String, f64>, verbs: &[&str]) -> BTreeMap<String, f64> {
    delta
        .iter()
        .filter(|(k, _)| {
            k.starts_with("gamecell_operator_kube_requests_total{")
                && verbs.iter().any(|v| k.contains(&format!("verb=\"{v}\"")))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn sum_matching(delta: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    delta
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

async fn apply<K>(api: &Api<K>, manifest: Value)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

/// Whether the object's Ready condition is True for its current generation.
async fn ready<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let Ok(Some(obj)) = api.get_opt(name).await else {
        return false;
    };
    let v = serde_json::to_value(&obj).expect("json");
    v["status"]["observedGeneration"] == v["metadata"]["generation"]
        && v["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

async fn cleanup(client: &Client) {
    for ns in [ALPHA, BETA] {
        let _ = Api::<PlayerService>::namespaced(client.clone(), ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let _ = Api::<MatchmakingPool>::namespaced(client.clone(), ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
    let cells: Api<GameCell> = Api::all(client.clone());
    let _ = cells.delete(CELL, &DeleteParams::default()).await;
    wait_until(Duration::from_secs(90), "the cell gone", || async {
        matches!(cells.get_opt(CELL).await, Ok(None))
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [ALPHA, BETA] {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
    for ns in [ALPHA, BETA] {
        wait_until(
            Duration::from_secs(90),
            "a tenant namespace gone",
            || async { matches!(namespaces.get_opt(ns).await, Ok(None)) },
        )
        .await;
    }
}

/// Waits until the operator wrote nothing for `quiet` (the Deployments' rollouts and the
/// status updates they cause are over).
async fn wait_quiet(operator: &Operator, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let before = operator.counters();
        tokio::time::sleep(quiet).await;
        let writes = requests(
            &delta(&before, &operator.counters()),
            &["create", "update", "patch", "delete"],
        );
        if writes.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator never went quiet; writes in the last {quiet:?}: {writes:#?}"
        );
    }
}

/// Applies the Shared cell, a PlayerService and a MatchmakingPool, and waits until all three are
/// Ready.
async fn converge(client: &Client) {
    let cells: Api<GameCell> = Api::all(client.clone());
    apply(
        &cells,
        json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
               "metadata": {"name": CELL},
               "spec": {
                   "tier": "Shared",
                   "provider": {"aws": {"region": "eu-west-1"}},
                   "tenants": [
                       {"name": "alpha", "namespace": ALPHA, "quota": {"cpu": "4", "memory": "8Gi", "pods": 10}},
                       {"name": "beta", "namespace": BETA}
                   ],
                   "dataStores": {"documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}]},
                   "deletionPolicy": "Delete"
               }}),
    )
    .await;
    wait_until(Duration::from_secs(90), "the cell Ready", || {
        ready(&cells, CELL)
    })
    .await;
    let services: Api<PlayerService> = Api::namespaced(client.clone(), ALPHA);
    apply(
        &services,
        json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
               "metadata": {"name": "players", "namespace": ALPHA},
               "spec": {"cellRef": {"name": CELL}, "image": "ghcr.io/alpha/players:1.0.0",
                        "replicas": 1,
                        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "dataStores": {"documentTables": ["saves"]}}}),
    )
    .await;
    let pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), ALPHA);
    apply(
        &pools,
        json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
               "metadata": {"name": "arena", "namespace": ALPHA},
               "spec": {"cellRef": {"name": CELL}, "replicas": 1,
                        "queues": [{"name": "duel", "playersPerMatch": 4, "teams": 2, "regions": [],
                                    "skillWindow": {"initial": 100, "wideningPerSecond": 10, "maximum": 500}}]}}),
    )
    .await;
    wait_until(Duration::from_secs(90), "the service Ready", || {
        ready(&services, "players")
    })
    .await;
    wait_until(Duration::from_secs(90), "the pool Ready", || {
        ready(&pools, "arena")
    })
    .await;
}

#[tokio::test]
async fn quiet_resyncs_read_no_child_back_and_drift_is_still_repaired() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start(RESYNC).await;
    cleanup(&client).await;

    converge(&client).await;
    wait_quiet(&operator, RESYNC * 3).await;

    // A quiet window of several resyncs of every object: no write, and no child read back.
    let before = operator.counters();
    tokio::time::sleep(RESYNC * 6).await;
    let quiet = delta(&before, &operator.counters());
    let reconciles = sum_matching(&quiet, "gamecell_operator_reconciles_total{");
    let gets = requests(&quiet, &["get"]);
    eprintln!("quiet window: {reconciles} reconciles; GETs: {gets:#?}; all: {quiet:#?}");
    assert!(
        reconciles >= 9.0,
        "every object resynced several times in the window: {quiet:#?}"
    );
    let writes = requests(&quiet, &["create", "update", "patch", "delete"]);
    assert!(writes.is_empty(), "writes while quiet: {writes:#?}");
    assert_eq!(
        quiet
            .get("gamecell_operator_child_reads_total{outcome=\"sent\"}")
            .copied()
            .unwrap_or(0.0),
        0.0,
        "the apply step read no child back: {quiet:#?}"
    );
    assert!(
        quiet
            .get("gamecell_operator_child_reads_total{outcome=\"skipped\"}")
            .copied()
            .unwrap_or(0.0)
            >= reconciles,
        "the resyncs went through the apply step and skipped its reads: {quiet:#?}"
    );
    for resource in APPLY_ONLY {
        let key = format!(
            "gamecell_operator_kube_requests_total{{verb=\"get\",resource=\"{resource}\"}}"
        );
        assert!(
            !quiet.contains_key(&key),
            "GETs of {resource} while quiet: {gets:#?}"
        );
    }
    // The prune memo: the prunes of the service's and the pool's children, whose kept sets
    // did not change, list nothing.
    for resource in PRUNED {
        let key = format!(
            "gamecell_operator_kube_requests_total{{verb=\"list\",resource=\"{resource}\"}}"
        );
        assert!(
            !quiet.contains_key(&key),
            "lists of {resource} while quiet: {:#?}",
            requests(&quiet, &["list"])
        );
    }

    // Drift is still repaired: a quota raised out of band, a network policy deleted.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ALPHA);
    let quota = quotas
        .list(&ListParams::default().labels(MANAGED))
        .await
        .expect("quotas")
        .items
        .into_iter()
        .next()
        .expect("the tenant's quota");
    let quota_name = quota.name_any();
    let hard = |q: &ResourceQuota| {
        q.spec
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .and_then(|h| h.get("pods"))
            .map(|p| p.0.clone())
    };
    assert_eq!(hard(&quota).as_deref(), Some("10"));
    quotas
        .patch(
            &quota_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "99"}}})),
        )
        .await
        .expect("quota edited out of band");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ALPHA);
    let policy = policies
        .list(&ListParams::default().labels(MANAGED))
        .await
        .expect("policies")
        .items
        .into_iter()
        .next()
        .expect("a tenant network policy");
    let (policy_name, policy_uid) = (policy.name_any(), policy.uid());
    let before_repair = operator.counters();
    policies
        .delete(&policy_name, &DeleteParams::default())
        .await
        .expect("policy deleted out of band");

    wait_until(
        RESYNC * 10,
        "the quota restored by the operator",
        || async {
            quotas
                .get(&quota_name)
                .await
                .is_ok_and(|q| hard(&q).as_deref() == Some("10"))
        },
    )
    .await;
    wait_until(
        RESYNC * 10,
        "the network policy recreated by the operator",
        || async {
            policies
                .get_opt(&policy_name)
                .await
                .is_ok_and(|p| p.is_some_and(|p| p.uid() != policy_uid))
        },
    )
    .await;

    // The deleted policy, gone from its kind's watch, was written back without a read first
    // (`controllers::applied::known_absent`).
    let repair = delta(&before_repair, &operator.counters());
    assert!(
        repair
            .get("gamecell_operator_child_reads_total{outcome=\"absent\"}")
            .copied()
            .unwrap_or(0.0)
            >= 1.0,
        "the deleted policy was recreated without a read: {repair:#?}"
    );

    // And once repaired, quiet again.
    wait_quiet(&operator, RESYNC * 3).await;
    let before = operator.counters();
    tokio::time::sleep(RESYNC * 3).await;
    let again = delta(&before, &operator.counters());
    assert_eq!(
        again
            .get("gamecell_operator_child_reads_total{outcome=\"sent\"}")
            .copied()
            .unwrap_or(0.0),
        0.0,
        "the repaired children are verified again and their reads skipped: {again:#?}"
    );

    cleanup(&client).await;
    operator.stop().await;
}

/// The counter of the operator's GETs of GameCells.
const GET_CELLS: &str =
    "gamecell_operator_kube_requests_total{verb=\"get\",resource=\"gamecells\"}";

/// Reconciles of `kind` in a counters delta.
fn reconciles(delta: &BTreeMap<String, f64>, kind: &str) -> f64 {
    sum_matching(
        delta,
        &format!("gamecell_operator_reconciles_total{{kind=\"{kind}\""),
    )
}

/// What wakes a reconcile (src/controllers/triggers.rs), with resyncs too far apart to happen
/// during the test: a status write wakes nothing, neither the object written nor the workloads
/// bound to it; a change of the cell's metadata wakes the cell and every workload bound to it.
#[tokio::test]
async fn status_writes_wake_nothing_and_a_cell_change_wakes_its_workloads() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start(Duration::from_secs(600)).await;
    cleanup(&client).await;
    converge(&client).await;
    wait_quiet(&operator, Duration::from_secs(3)).await;

    // A status write of the cell (here out of band, as the operator's own would be): nothing
    // reconciles.
    let cells: Api<GameCell> = Api::all(client.clone());
    let before = operator.counters();
    cells
        .patch_status(
            CELL,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"tenantCount": 99}})),
        )
        .await
        .expect("the cell's status patched");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_status = delta(&before, &operator.counters());
    for kind in ["GameCell", "PlayerService", "MatchmakingPool"] {
        assert_eq!(
            reconciles(&after_status, kind),
            0.0,
            "a status write of the cell woke a {kind} reconcile: {after_status:#?}"
        );
    }

    // A change of a workload itself (an annotation): it is reconciled, and reuses the cell it
    // read before, which has not changed since (src/controllers/cells_seen.rs).
    let before = operator.counters();
    Api::<PlayerService>::namespaced(client.clone(), ALPHA)
        .patch(
            "players",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched": "1"}}})),
        )
        .await
        .expect("the service annotated");
    wait_until(
        Duration::from_secs(20),
        "the annotated service reconciled",
        || {
            let woken = delta(&before, &operator.counters());
            async move { reconciles(&woken, "PlayerService") >= 1.0 }
        },
    )
    .await;
    let touched = delta(&before, &operator.counters());
    assert_eq!(
        touched.get(GET_CELLS).copied().unwrap_or(0.0),
        0.0,
        "a workload whose cell did not change read it again: {touched:#?}"
    );
    assert_eq!(
        touched
            .get("gamecell_operator_kube_requests_total{verb=\"get\",resource=\"deployments\"}")
            .copied()
            .unwrap_or(0.0),
        0.0,
        "the service's rollout came from the copy of its unchanged Deployment: {touched:#?}"
    );

    // A change of the cell's labels: the cell and both workloads are reconciled, and the cell
    // puts its status right. Same generation, within the resync interval of a settled pass: the
    // cell's pass is light, without a cloud call or a tenant namespace listed.
    let before = operator.counters();
    let describes = operator.cloud.calls("describe");
    cells
        .patch(
            CELL,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "blue"}}})),
        )
        .await
        .expect("the cell relabelled");
    wait_until(
        Duration::from_secs(20),
        "the cell and both workloads reconciled after the cell changed",
        || {
            let woken = delta(&before, &operator.counters());
            async move {
                ["GameCell", "PlayerService", "MatchmakingPool"]
                    .iter()
                    .all(|kind| reconciles(&woken, kind) >= 1.0)
            }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the cell's status put right",
        || async {
            cells
                .get(CELL)
                .await
                .is_ok_and(|c| c.status.is_some_and(|s| s.tenant_count == Some(2)))
        },
    )
    .await;
    let woken = delta(&before, &operator.counters());
    assert!(
        woken.get(GET_CELLS).copied().unwrap_or(0.0) >= 2.0,
        "both workloads read their changed cell: {woken:#?}"
    );
    assert!(
        woken.contains_key("gamecell_operator_cell_passes_total{pass=\"light\"}")
            && !woken.contains_key("gamecell_operator_cell_passes_total{pass=\"full\"}"),
        "the relabelled cell had a light pass and no full one: {woken:#?}"
    );
    assert_eq!(
        operator.cloud.calls("describe"),
        describes,
        "a light pass describes no data store"
    );
    assert!(
        !woken.contains_key(
            "gamecell_operator_kube_requests_total{verb=\"list\",resource=\"namespaces\"}"
        ),
        "a light pass lists no tenant namespace: {woken:#?}"
    );

    // A spec change (a new generation) is a full pass again.
    let before = operator.counters();
    cells
        .patch(
            CELL,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"capacity": {"maxConcurrentPlayers": 5000}}})),
        )
        .await
        .expect("the cell's spec changed");
    wait_until(
        Duration::from_secs(20),
        "a full pass of the changed cell",
        || {
            let woken = delta(&before, &operator.counters());
            async move { woken.contains_key("gamecell_operator_cell_passes_total{pass=\"full\"}") }
        },
    )
    .await;

    cleanup(&client).await;
    operator.stop().await;
}
