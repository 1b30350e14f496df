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
/// sends them no GET at all. (Deployments, LimitRanges, Namespaces and ConfigMaps are also read
/// for other reasons: a rollout's status, a LimitRange's defaults, a namespace's owner, the cell
/// matchmaker's document; Secrets are never watched, see the module doc of `applied`.)
const APPLY_ONLY: &[&str] = &[
    "resourcequotas",
    "networkpolicies",
    "services",
    "serviceaccounts",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
];

/// The controllers, in this process, with a client that counts its requests in `metrics`.
struct Operator {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Operator {
    async fn start() -> Self {
        let metrics = Arc::new(Metrics::new());
        let config = kube::Config::infer().await.expect("kubeconfig");
        let counted = metrics.counted_client(config).expect("client");
        let (stop, rx) = watch::channel(false);
        let readiness = Readiness::default();
        let timings = Timings {
            resync: RESYNC,
            provisioning_poll: Duration::from_millis(500),
            ..Timings::default()
        };
        let task = tokio::spawn(controllers::run(
            counted,
            Arc::new(FakeCloud::new()),
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

#[tokio::test]
async fn quiet_resyncs_read_no_child_back_and_drift_is_still_repaired() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start().await;
    cleanup(&client).await;

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
