//! PlayerService and MatchmakingPool controllers, in-process, against the real API server (kwok
//! marks the pods Ready, so Deployments become Available) and the in-memory fake cloud: every
//! tier reaches Ready, scaling through the spec, quota caps applied and reported, refused
//! bindings (foreign namespace, missing cell, image not allowed), a settings change rolling out,
//! matchmakers per region, and children removed with their owner.
//!
//! Every test deletes its cells (which takes their tenant namespaces with them) and stops its
//! controllers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use gamecell_operator::admin::Readiness;
use gamecell_operator::cloud::ObservedCluster;
use gamecell_operator::cloud::fake::FakeCloud;
use gamecell_operator::controllers::{self, Timings};
use gamecell_operator::crds::{GameCell, MatchmakingPool, PlayerService};
use gamecell_operator::telemetry::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::{
    FIELD_MANAGER, client, ensure_namespace, install_crds, wait_event, wait_until,
};

/// How long a workload may take to roll out on the local cluster.
const ROLLOUT: Duration = Duration::from_secs(90);

/// The controllers running in this test process, stopped by [`Operator::stop`].
struct Operator {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Operator {
    async fn start(client: &Client, cloud: Arc<FakeCloud>) -> Self {
        let (stop, rx) = watch::channel(false);
        let readiness = Readiness::default();
        let timings = Timings {
            resync: Duration::from_secs(3),
            provisioning_poll: Duration::from_millis(500),
            ..Timings::default()
        };
        let task = tokio::spawn(controllers::run(
            client.clone(),
            cloud,
            timings,
            Arc::new(Metrics::new()),
            readiness.clone(),
            Reporter {
                controller: "gamecell-e2e-workloads".into(),
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
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

/// Server-side applies a manifest of kind `K` (creating or updating it).
async fn apply<K>(api: &Api<K>, manifest: Value) -> K
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("manifest name")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

fn cell(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
           "metadata": {"name": name}, "spec": spec})
}

fn player_service(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

fn pool(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

fn queue(name: &str, regions: &[&str]) -> Value {
    json!({"name": name, "playersPerMatch": 4, "teams": 2,
           "skillWindow": {"initial": 100, "wideningPerSecond": 10, "maximum": 500},
           "regions": regions})
}

/// The condition `type_` of an object's status, as (status, reason, message).
fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// Waits until the object's status describes its current generation, its condition `type_` is
/// `status` (with `reason`, if given) and `extra` holds; returns the object as JSON.
async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    extra: impl Fn(&Value) -> bool,
) -> Value
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let deadline = tokio::time::Instant::now() + ROLLOUT;
    let mut last = Value::Null;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            let v = serde_json::to_value(&obj).expect("json");
            let current = v["status"]["observedGeneration"] == v["metadata"]["generation"];
            let matches = condition(&v, type_)
                .is_some_and(|(s, r, _)| s == status && reason.is_none_or(|want| r == want));
            if current && matches && extra(&v) {
                return v;
            }
            last = v["status"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} {name}: {type_} never became {status} ({reason:?}); last status: {last:#}",
            K::kind(&())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_ready<K>(api: &Api<K>, name: &str) -> Value
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    wait_for(api, name, "Ready", "True", Some("Available"), |_| true).await
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    wait_until(
        ROLLOUT,
        &format!("{} {name} to be deleted", K::kind(&())),
        || async { matches!(api.get_opt(name).await, Ok(None)) },
    )
    .await;
}

fn template_annotation(deployment: &Deployment, key: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

/// Deletes the workloads in `namespaces`, then the cells (a cell may wait for the services bound
/// to it), and waits until the cells and their tenant namespaces are gone. Also run first, to
/// clear what an interrupted run left behind.
async fn delete_cells(client: &Client, cells: &[&str], namespaces: &[&str]) {
    for ns in namespaces {
        let services: Api<PlayerService> = Api::namespaced(client.clone(), ns);
        let pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), ns);
        let _ = services
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let _ = pools
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
    let api: Api<GameCell> = Api::all(client.clone());
    for name in cells {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    for name in cells {
        wait_gone(&api, name).await;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    for name in namespaces {
        let _ = ns.delete(name, &DeleteParams::default()).await;
    }
    for name in namespaces {
        wait_gone(&ns, name).await;
    }
}

fn shared_cell_spec() -> Value {
    json!({
        "tier": "Shared",
        "provider": {"aws": {"region": "eu-west-1"}},
        "tenants": [
            {"name": "alpha", "namespace": "wl-shared-alpha", "quota": {"cpu": "2", "memory": "4Gi", "pods": 10}},
            {"name": "beta", "namespace": "wl-shared-beta"}
        ],
        "dataStores": {
            "sql": {"engine": "Postgres", "version": "16.4"},
            "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}]
        },
        "deletionPolicy": "Delete"
    })
}

fn players_spec(replicas: i32, log_level: &str) -> Value {
    json!({
        "cellRef": {"name": "wl-shared"},
        "image": "ghcr.io/alpha/players:1.0.0",
        "replicas": replicas,
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "env": [{"name": "LOG_LEVEL", "value": log_level}],
        "dataStores": {"sql": true, "documentTables": ["saves"]}
    })
}

#[tokio::test]
async fn shared_cell_services_scale_under_quota_roll_out_settings_and_go_with_their_owner() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start(&client, Arc::new(FakeCloud::new())).await;
    delete_cells(
        &client,
        &["wl-shared"],
        &["wl-shared-alpha", "wl-shared-beta"],
    )
    .await;
    let cells: Api<GameCell> = Api::all(client.clone());
    apply(&cells, cell("wl-shared", shared_cell_spec())).await;
    wait_for(&cells, "wl-shared", "Ready", "True", None, |_| true).await;

    let ns = "wl-shared-alpha";
    let services: Api<PlayerService> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    // Ready with every child, bound to the stores by Secret reference.
    apply(
        &services,
        player_service(ns, "players", players_spec(2, "info")),
    )
    .await;
    let ready = wait_ready(&services, "players").await;
    assert_eq!(ready["status"]["replicas"], 2);
    assert_eq!(ready["status"]["readyReplicas"], 2);
    assert_eq!(ready["status"]["updatedReplicas"], 2);
    assert_eq!(
        condition(&ready, "PolicyAdjusted").map(|c| c.0).as_deref(),
        Some("False")
    );
    let deployment = deployments.get("players").await.expect("Deployment");
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("PlayerService", Some(true))
    );
    let pod = serde_json::to_value(&deployment).expect("json")["spec"]["template"]["spec"].clone();
    assert_eq!(
        pod["containers"][0]["envFrom"][1]["secretRef"]["name"],
        "gamecell-sql"
    );
    assert_eq!(
        pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"],
        json!({"name": "gamecell-tables", "key": "TABLE_SAVES"})
    );
    Api::<Service>::namespaced(client.clone(), ns)
        .get("players")
        .await
        .expect("Service");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .get("players")
        .await
        .expect("PodDisruptionBudget");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get("players")
        .await
        .expect("ServiceAccount");
    let settings = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("players-settings")
        .await
        .expect("settings ConfigMap");
    assert_eq!(settings.data.as_ref().expect("data")["LOG_LEVEL"], "info");

    // Steady state: resyncs write nothing.
    let rv_service = services
        .get("players")
        .await
        .expect("svc")
        .resource_version();
    let rv_deployment = deployments
        .get("players")
        .await
        .expect("d")
        .resource_version();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let idle = services.get("players").await.expect("svc");
    assert_eq!(
        idle.resource_version(),
        rv_service,
        "no status write when idle; writers: {:?}; status: {:#?}",
        idle.managed_fields()
            .iter()
            .map(|m| (m.manager.clone(), m.subresource.clone(), m.time.clone()))
            .collect::<Vec<_>>(),
        idle.status
    );
    assert_eq!(
        deployments
            .get("players")
            .await
            .expect("d")
            .resource_version(),
        rv_deployment,
        "no Deployment write when idle"
    );

    // Scaling through the spec.
    apply(
        &services,
        player_service(ns, "players", players_spec(3, "info")),
    )
    .await;
    wait_for(
        &services,
        "players",
        "Ready",
        "True",
        Some("Available"),
        |v| v["status"]["readyReplicas"] == 3,
    )
    .await;

    // Beyond the quota: cpu 2 at a 500m limit per replica holds 4, and says so.
    apply(
        &services,
        player_service(ns, "players", players_spec(9, "info")),
    )
    .await;
    let capped = wait_for(
        &services,
        "players",
        "Ready",
        "True",
        Some("Available"),
        |v| v["status"]["readyReplicas"] == 4,
    )
    .await;
    assert_eq!(capped["status"]["replicas"], 4);
    let (status, reason, message) = condition(&capped, "PolicyAdjusted").expect("PolicyAdjusted");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ReplicasCappedByQuota")
    );
    assert!(message.contains("spec.replicas 9 capped to 4"), "{message}");
    wait_event(&client, ns, "players", "ReplicasCappedByQuota").await;
    let deployment = deployments.get("players").await.expect("Deployment");
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(4));

    // A settings change rolls the pods; the new template runs everywhere.
    let before = template_annotation(&deployment, "gamecell.dev/config-hash").expect("hash");
    let applied = apply(
        &services,
        player_service(ns, "players", players_spec(4, "debug")),
    )
    .await;
    let generation = applied.metadata.generation;
    let rolled = wait_for(
        &services,
        "players",
        "Ready",
        "True",
        Some("Available"),
        |v| {
            v["metadata"]["generation"].as_i64() == generation
                && v["status"]["updatedReplicas"] == 4
        },
    )
    .await;
    assert_eq!(rolled["status"]["replicas"], 4);
    let deployment = deployments.get("players").await.expect("Deployment");
    let after = template_annotation(&deployment, "gamecell.dev/config-hash").expect("hash");
    assert_ne!(before, after, "the pod template changed with the settings");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until(ROLLOUT, "every pod to run the new settings", || async {
        pods.list(&ListParams::default().labels("app.kubernetes.io/instance=players"))
            .await
            .is_ok_and(|l| {
                let live: Vec<_> = l
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                live.len() == 4
                    && live
                        .iter()
                        .all(|p| p.annotations().get("gamecell.dev/config-hash") == Some(&after))
            })
    })
    .await;

    // A MatchmakingPool in the other tenant: served by the cell matchmaker, queues configured
    // (the cell matchmaker itself is covered by shared_cell_runs_one_matchmaker_for_every_tenant).
    let beta = "wl-shared-beta";
    let pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), beta);
    apply(
        &pools,
        pool(
            beta,
            "matchmaking",
            json!({"cellRef": {"name": "wl-shared"},
            "queues": [queue("duel", &["eu-west-1"]), queue("squads", &[])]}),
        ),
    )
    .await;
    let ready = wait_ready(&pools, "matchmaking").await;
    assert_eq!(ready["status"]["queues"], 2);
    assert_eq!(ready["status"]["readyReplicas"], 1);
    let config = Api::<ConfigMap>::namespaced(client.clone(), "gamecell-wl-shared")
        .get("matchmaker-config")
        .await
        .expect("the cell matchmaker's ConfigMap");
    let doc: Value = serde_json::from_str(&config.data.as_ref().expect("data")["matchmaker.json"])
        .expect("JSON config");
    assert_eq!(doc["pools"][0]["queues"][0]["id"], "beta/matchmaking/duel");

    // Deleting the service deletes its children.
    services
        .delete("players", &DeleteParams::default())
        .await
        .expect("service deleted");
    wait_gone(&deployments, "players").await;
    wait_gone(&Api::<Service>::namespaced(client.clone(), ns), "players").await;
    wait_gone(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        "players-settings",
    )
    .await;
    wait_gone(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        "players",
    )
    .await;
    wait_gone(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        "players",
    )
    .await;

    delete_cells(
        &client,
        &["wl-shared"],
        &["wl-shared-alpha", "wl-shared-beta"],
    )
    .await;
    operator.stop().await;
}

/// Asserts the pod template of a built-in matchmaker Deployment, field by field and exactly (as
/// the API server returns it, defaults included): the built-in image, its port, `env`, mounts,
/// resources, volumes, and the `/readyz` and `/livez` probes on its port.
fn assert_matchmaker_pod(
    deployment: &Deployment,
    env: &Value,
    mounts: &Value,
    resources: &Value,
    volumes: &Value,
) {
    let pod = serde_json::to_value(deployment).expect("json")["spec"]["template"]["spec"].clone();
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "matchmaker");
    assert_eq!(c["image"], "ghcr.io/gamecell/matchmaker:0.1.0");
    assert_eq!(c.get("args"), None, "configured by env only");
    assert_eq!(c.get("command"), None, "the image's entrypoint");
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(&c["env"], env);
    assert_eq!(&c["volumeMounts"], mounts);
    assert_eq!(&c["resources"], resources);
    assert_eq!(&pod["volumes"], volumes);
    let probe = |path: &str, period: i32| {
        json!({"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}, "periodSeconds": period,
               "failureThreshold": 3, "timeoutSeconds": 1, "successThreshold": 1})
    };
    assert_eq!(c["readinessProbe"], probe("/readyz", 5));
    assert_eq!(c["livenessProbe"], probe("/livez", 10));
    assert_eq!(pod["automountServiceAccountToken"], false);
}

fn shared_pool_spec(cell: &str, queues: &[&str], regions: &[&str]) -> Value {
    json!({"cellRef": {"name": cell}, "replicas": 1,
           "queues": queues.iter().map(|q| queue(q, regions)).collect::<Vec<_>>()})
}

/// The `ResourceVersion`s of every object the cell matchmaker and its pools consist of.
async fn matchmaker_versions(client: &Client, cell_ns: &str, tenants: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let rv = |o: Option<String>| o.unwrap_or_default();
    out.push(rv(Api::<Deployment>::namespaced(client.clone(), cell_ns)
        .get("matchmaker")
        .await
        .ok()
        .and_then(|o| o.metadata.resource_version)));
    out.push(rv(Api::<Service>::namespaced(client.clone(), cell_ns)
        .get("matchmaker")
        .await
        .ok()
        .and_then(|o| o.metadata.resource_version)));
    out.push(rv(Api::<ConfigMap>::namespaced(client.clone(), cell_ns)
        .get("matchmaker-config")
        .await
        .ok()
        .and_then(|o| o.metadata.resource_version)));
    out.push(rv(Api::<Secret>::namespaced(client.clone(), cell_ns)
        .get("matchmaker-tenants")
        .await
        .ok()
        .and_then(|o| o.metadata.resource_version)));
    out.push(rv(Api::<Namespace>::all(client.clone())
        .get(cell_ns)
        .await
        .ok()
        .and_then(|o| o.metadata.resource_version)));
    for p in Api::<NetworkPolicy>::namespaced(client.clone(), cell_ns)
        .list(&ListParams::default())
        .await
        .expect("policies")
        .items
    {
        out.push(format!(
            "{}={}",
            p.name_any(),
            rv(p.metadata.resource_version)
        ));
    }
    for t in tenants {
        out.push(rv(Api::<Secret>::namespaced(client.clone(), t)
            .get("gamecell-matchmaker")
            .await
            .ok()
            .and_then(|o| o.metadata.resource_version)));
        for p in Api::<MatchmakingPool>::namespaced(client.clone(), t)
            .list(&ListParams::default())
            .await
            .expect("pools")
            .items
        {
            out.push(format!(
                "{}={}",
                p.name_any(),
                rv(p.metadata.resource_version)
            ));
        }
    }
    out
}

fn secret_value(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8")
}

#[tokio::test]
async fn shared_cell_runs_one_matchmaker_for_every_tenant() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start(&client, Arc::new(FakeCloud::new())).await;
    let (name, alpha, beta, cell_ns) = ("wl-mm", "wl-mm-alpha", "wl-mm-beta", "gamecell-wl-mm");
    delete_cells(&client, &[name], &[alpha, beta]).await;
    let cells: Api<GameCell> = Api::all(client.clone());
    apply(
        &cells,
        cell(name, json!({
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [
                {"name": "alpha", "namespace": alpha, "quota": {"cpu": "1", "memory": "1Gi", "pods": 4}},
                {"name": "beta", "namespace": beta}
            ],
            "compliance": {"allowedRegions": ["eu-west-1"]},
            "deletionPolicy": "Delete"
        })),
    )
    .await;
    wait_for(&cells, name, "Ready", "True", None, |_| true).await;

    // Two tenants, each with a pool of the same name and queue names: one matchmaker.
    let alpha_pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), alpha);
    let beta_pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), beta);
    apply(
        &alpha_pools,
        pool(
            alpha,
            "arena",
            shared_pool_spec(name, &["duel", "squads"], &["eu-west-1"]),
        ),
    )
    .await;
    apply(
        &beta_pools,
        pool(beta, "arena", shared_pool_spec(name, &["duel"], &[])),
    )
    .await;
    let a = wait_ready(&alpha_pools, "arena").await;
    let b = wait_ready(&beta_pools, "arena").await;
    assert_eq!(
        (a["status"]["queues"].clone(), b["status"]["queues"].clone()),
        (json!(2), json!(1))
    );
    let (_, _, message) = condition(&a, "Ready").expect("Ready");
    assert!(
        message.contains("gamecell-wl-mm/matchmaker")
            && message.contains("http://matchmaker.gamecell-wl-mm.svc:8080"),
        "the status says where the pool is served: {message}"
    );
    assert_eq!(
        condition(&a, "PolicyAdjusted").map(|c| (c.0, c.1)),
        Some(("False".to_owned(), "AsRequested".to_owned()))
    );

    let managed = "app.kubernetes.io/managed-by=gamecell-operator";
    let cell_deployments = Api::<Deployment>::namespaced(client.clone(), cell_ns)
        .list(&ListParams::default().labels(managed))
        .await
        .expect("list");
    let names: Vec<String> = cell_deployments
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, ["matchmaker"], "exactly one matchmaker for the cell");
    for ns in [alpha, beta] {
        let own = Api::<Deployment>::namespaced(client.clone(), ns)
            .list(&ListParams::default().labels(managed))
            .await
            .expect("list");
        assert!(
            own.items.is_empty(),
            "no per-pool matchmaker in {ns}: {:?}",
            own.items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        );
    }
    let matchmaker = &cell_deployments.items[0];
    assert_eq!(matchmaker.owner_references()[0].kind, "GameCell");
    assert_eq!(matchmaker.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_matchmaker_pod(
        matchmaker,
        &json!([
            {"name": "MATCHMAKER_CONFIG", "value": "/etc/gamecell/matchmaker/matchmaker.json"},
            {"name": "MATCHMAKER_PORT", "value": "8080"},
            {"name": "MATCHMAKER_TENANT_TOKENS", "value": "/etc/gamecell/matchmaker-auth/tenants.json"}
        ]),
        &json!([
            {"name": "config", "mountPath": "/etc/gamecell/matchmaker", "readOnly": true},
            {"name": "tenant-tokens", "mountPath": "/etc/gamecell/matchmaker-auth", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"}
        ]),
        &json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
        &json!([
            {"name": "config", "configMap": {"name": "matchmaker-config", "defaultMode": 420}},
            {"name": "tenant-tokens", "secret": {"secretName": "matchmaker-tenants", "defaultMode": 420}},
            {"name": "tmp", "emptyDir": {}}
        ]),
    );
    // Not charged to a tenant: alpha's quota of 1 CPU holds no matchmaker of the cell.
    assert!(matchmaker.labels().get("gamecell.dev/tenant").is_none());

    // The configuration: both tenants' queues, keyed apart, in a fixed order.
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), cell_ns);
    let document = |c: &ConfigMap| -> Value {
        serde_json::from_str(&c.data.as_ref().expect("data")["matchmaker.json"]).expect("JSON")
    };
    let doc = document(&configs.get("matchmaker-config").await.expect("config"));
    let queue_doc = |tenant: &str, name: &str, regions: &[&str]| {
        json!({
        "id": format!("{tenant}/arena/{name}"), "name": name, "playersPerMatch": 4, "teams": 2,
        "playersPerTeam": 2, "skillWindowInitial": 100, "skillWindowWideningPerSecond": 10,
        "skillWindowMaximum": 500, "maxLatencyMs": 100, "regions": regions, "timeoutSeconds": 120,
        "backfill": false})
    };
    assert_eq!(
        doc,
        json!({"version": 1, "cell": name, "pools": [
            {"version": 1, "cell": name, "tenant": "alpha", "namespace": alpha, "pool": "arena",
             "queues": [queue_doc("alpha", "duel", &["eu-west-1"]), queue_doc("alpha", "squads", &["eu-west-1"])]},
            {"version": 1, "cell": name, "tenant": "beta", "namespace": beta, "pool": "arena",
             "queues": [queue_doc("beta", "duel", &["eu-west-1"])]}
        ]})
    );

    // Credentials: a token per tenant in its own namespace, only hashes in the cell's.
    let token_of = |ns: &'static str| {
        let client = client.clone();
        async move {
            let s = Api::<Secret>::namespaced(client, ns)
                .get("gamecell-matchmaker")
                .await
                .expect("credential");
            assert_eq!(
                secret_value(&s, "MATCHMAKER_URL"),
                "http://matchmaker.gamecell-wl-mm.svc:8080"
            );
            secret_value(&s, "MATCHMAKER_TOKEN")
        }
    };
    let (token_a, token_b) = (token_of(alpha).await, token_of(beta).await);
    assert_ne!(token_a, token_b);
    let hashes: Value = serde_json::from_str(&secret_value(
        &Api::<Secret>::namespaced(client.clone(), cell_ns)
            .get("matchmaker-tenants")
            .await
            .expect("hashes"),
        "tenants.json",
    ))
    .expect("JSON");
    let sha = gamecell_operator::matchmaker::config::token_hash;
    assert_eq!(
        hashes,
        json!({"tenants": {"alpha": sha(&token_a), "beta": sha(&token_b)}})
    );

    // The network: the cell's tenant namespaces, and only they, reach the matchmaker's port.
    let ingress = Api::<NetworkPolicy>::namespaced(client.clone(), cell_ns)
        .get("gamecell-allow-tenants-to-matchmaker")
        .await
        .expect("ingress policy");
    assert_eq!(
        serde_json::to_value(&ingress).expect("json")["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
            ["matchExpressions"][0]["values"],
        json!([alpha, beta])
    );
    Api::<NetworkPolicy>::namespaced(client.clone(), cell_ns)
        .get("gamecell-default-deny")
        .await
        .expect("default deny");
    for ns in [alpha, beta] {
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get("gamecell-allow-cell-matchmaker")
            .await
            .expect("tenant egress to the matchmaker");
    }

    // Steady state: nothing is written, once the cell has seen both pools Ready.
    wait_for(&cells, name, "ServicesReady", "True", None, |_| true).await;
    let before = matchmaker_versions(&client, cell_ns, &[alpha, beta]).await;
    let cell_rv = cells.get(name).await.expect("cell").resource_version();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        matchmaker_versions(&client, cell_ns, &[alpha, beta]).await,
        before,
        "no write when idle"
    );
    assert_eq!(
        cells.get(name).await.expect("cell").resource_version(),
        cell_rv
    );

    // A pool refused by validation is left out and breaks nobody's pools.
    apply(
        &beta_pools,
        pool(
            beta,
            "abroad",
            shared_pool_spec(name, &["duel"], &["us-east-1"]),
        ),
    )
    .await;
    wait_for(
        &beta_pools,
        "abroad",
        "Ready",
        "False",
        Some("QueueRegionNotAllowed"),
        |_| true,
    )
    .await;
    let generation = matchmaker.metadata.generation;

    // Removing beta's pool: the configuration follows, without a rollout; alpha stays Ready.
    beta_pools
        .delete("arena", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_until(ROLLOUT, "the configuration to drop beta's pool", || async {
        configs.get("matchmaker-config").await.is_ok_and(|c| {
            let doc = document(&c);
            doc["pools"]
                .as_array()
                .is_some_and(|p| p.len() == 1 && p[0]["tenant"] == "alpha")
        })
    })
    .await;
    let a = wait_ready(&alpha_pools, "arena").await;
    assert_eq!(a["status"]["queues"], 2);
    let after = Api::<Deployment>::namespaced(client.clone(), cell_ns)
        .get("matchmaker")
        .await
        .expect("matchmaker");
    assert_eq!(
        after.metadata.generation, generation,
        "a pool change does not roll the matchmaker"
    );
    assert_eq!(
        after.spec.as_ref().map(|s| &s.template),
        matchmaker.spec.as_ref().map(|s| &s.template)
    );
    // beta keeps its credential (no regeneration).
    assert_eq!(token_of(beta).await, token_b);

    // A pool that had its own matchmaker (an image) and drops it moves to the cell matchmaker.
    apply(
        &beta_pools,
        pool(
            beta,
            "custom",
            json!({"cellRef": {"name": name}, "replicas": 1,
        "image": "ghcr.io/beta/matchmaker:2", "queues": [queue("duel", &[])]}),
        ),
    )
    .await;
    wait_ready(&beta_pools, "custom").await;
    let own = Api::<Deployment>::namespaced(client.clone(), beta);
    own.get("custom-mm").await.expect("its own matchmaker");
    apply(
        &beta_pools,
        pool(
            beta,
            "custom",
            json!({"cellRef": {"name": name}, "replicas": 1,
        "queues": [queue("duel", &[])]}),
        ),
    )
    .await;
    wait_gone(&own, "custom-mm").await;
    wait_gone(
        &Api::<ConfigMap>::namespaced(client.clone(), beta),
        "custom-mm-config",
    )
    .await;
    wait_gone(
        &Api::<Service>::namespaced(client.clone(), beta),
        "custom-mm",
    )
    .await;
    let c = wait_ready(&beta_pools, "custom").await;
    assert!(condition(&c, "Ready").is_some_and(|r| r.2.contains("gamecell-wl-mm/matchmaker")));

    delete_cells(&client, &[name], &[alpha, beta]).await;
    wait_gone(&Api::<Namespace>::all(client.clone()), cell_ns).await;
    operator.stop().await;
}

/// A kwok node of the dedicated cell's node group: labelled and tainted as the node group's.
fn cell_node(name: &str, cell: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"gamecell.dev/cell": cell, "kubernetes.io/hostname": name, "type": "kwok"}},
        "spec": {"taints": [{"key": "gamecell.dev/cell", "value": cell, "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                   "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                   "nodeInfo": {"architecture": "amd64", "kubeProxyVersion": "fake", "kubeletVersion": "fake",
                                "operatingSystem": "linux"},
                   "phase": "Running"}
    }))
    .expect("node")
}

#[tokio::test]
async fn dedicated_and_enterprise_cells_place_restrict_and_refuse() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    cloud.insert_cluster(ObservedCluster {
        name: "wl-acme".into(),
        status: "ACTIVE".into(),
        version: "1.31".into(),
        region: "eu-central-1".into(),
    });
    let nodes: Api<Node> = Api::all(client.clone());
    let node_name = "wl-dedicated-node";
    let _ = nodes
        .patch(
            node_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cell_node(node_name, "wl-dedicated")),
        )
        .await
        .expect("node of the cell");
    let operator = Operator::start(&client, cloud).await;
    delete_cells(
        &client,
        &["wl-dedicated", "wl-acme"],
        &["wl-dedicated", "wl-acme"],
    )
    .await;
    let cells: Api<GameCell> = Api::all(client.clone());

    // A service created before its cell waits (CellNotFound) and comes up when the cell does.
    let ded = "wl-dedicated";
    ensure_namespace(&client, ded).await;
    let services: Api<PlayerService> = Api::namespaced(client.clone(), ded);
    apply(
        &services,
        player_service(
            ded,
            "sessions",
            json!({"cellRef": {"name": "wl-dedicated"},
            "image": "ghcr.io/solo/sessions:3", "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
            "resources": {"requests": {"cpu": "100m"}}}),
        ),
    )
    .await;
    wait_for(
        &services,
        "sessions",
        "Ready",
        "False",
        Some("CellNotFound"),
        |_| true,
    )
    .await;
    wait_event(&client, ded, "sessions", "CellNotFound").await;
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ded)
            .get_opt("sessions")
            .await
            .expect("read")
            .is_none(),
        "nothing deployed without a cell"
    );
    apply(
        &cells,
        cell(ded, json!({
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1", "clusterName": "wl-eks"}},
            "tenants": [{"name": "solo", "namespace": ded}],
            "nodes": {"instanceTypes": ["c7g.large"], "minSize": 1, "maxSize": 3,
                      "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes", "subnetIds": ["subnet-0123456789abcdef0"]},
            "workloads": {"roleArn": "arn:aws:iam::123456789012:role/solo-games"},
            "deletionPolicy": "Delete"
        })),
    )
    .await;
    let ready = wait_ready(&services, "sessions").await;
    assert_eq!(ready["status"]["readyReplicas"], 2, "autoscaler floor");
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ded)
        .get("sessions")
        .await
        .expect("autoscaler");
    assert_eq!(hpa.spec.as_ref().map(|s| s.max_replicas), Some(5));
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), ded)
        .get("sessions")
        .await
        .expect("ServiceAccount");
    assert_eq!(
        sa.annotations()
            .get("eks.amazonaws.com/role-arn")
            .map(String::as_str),
        Some("arn:aws:iam::123456789012:role/solo-games")
    );
    // On the cell's own node, through its taint.
    let pods = Api::<Pod>::namespaced(client.clone(), ded)
        .list(&ListParams::default().labels("app.kubernetes.io/instance=sessions"))
        .await
        .expect("pods");
    assert!(!pods.items.is_empty());
    for p in &pods.items {
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node_name),
            "{} runs on the cell's node",
            p.name_any()
        );
    }

    // Switching to fixed replicas removes the autoscaler.
    apply(
        &services,
        player_service(
            ded,
            "sessions",
            json!({"cellRef": {"name": "wl-dedicated"},
            "image": "ghcr.io/solo/sessions:3", "replicas": 1,
            "resources": {"requests": {"cpu": "100m"}}}),
        ),
    )
    .await;
    wait_for(
        &services,
        "sessions",
        "Ready",
        "True",
        Some("Available"),
        |v| v["status"]["replicas"] == 1 && v["status"]["updatedReplicas"] == 1,
    )
    .await;
    wait_gone(
        &Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ded),
        "sessions",
    )
    .await;

    // One matchmaker per region; dropping a region removes its matchmaker.
    let pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), ded);
    let two_regions = json!({"cellRef": {"name": "wl-dedicated"}, "replicas": 1,
        "queues": [queue("ranked", &["eu-west-1", "us-east-1"]), queue("casual", &[])]});
    apply(&pools, pool(ded, "matchmaking", two_regions)).await;
    let ready = wait_ready(&pools, "matchmaking").await;
    assert_eq!(
        ready["status"]["replicas"], 2,
        "one replica in each of two regions"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ded);
    let eu = deployments
        .get("matchmaking-mm-eu-west-1")
        .await
        .expect("eu matchmaker");
    // The built-in matchmaker exactly as it runs for a pool without an image.
    assert_matchmaker_pod(
        &eu,
        &json!([
            {"name": "MATCHMAKER_CONFIG", "value": "/etc/gamecell/matchmaker/matchmaker.json"},
            {"name": "MATCHMAKER_POOL", "value": "matchmaking"},
            {"name": "MATCHMAKER_TENANT", "value": "solo"},
            {"name": "MATCHMAKER_PORT", "value": "8080"},
            {"name": "MATCHMAKER_REGION", "value": "eu-west-1"}
        ]),
        &json!([{"name": "config", "mountPath": "/etc/gamecell/matchmaker", "readOnly": true}]),
        &json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}),
        &json!([{"name": "config", "configMap": {"name": "matchmaking-mm-config", "defaultMode": 420}}]),
    );
    let dedicated_config = Api::<ConfigMap>::namespaced(client.clone(), ded)
        .get("matchmaking-mm-config")
        .await
        .expect("the pool's ConfigMap");
    let doc: Value =
        serde_json::from_str(&dedicated_config.data.as_ref().expect("data")["matchmaker.json"])
            .expect("JSON config");
    assert_eq!(
        doc,
        json!({"version": 1, "cell": "wl-dedicated", "tenant": "solo", "namespace": "wl-dedicated",
               "pool": "matchmaking", "queues": [
            {"id": "solo/matchmaking/casual", "name": "casual", "playersPerMatch": 4, "teams": 2,
             "playersPerTeam": 2, "skillWindowInitial": 100, "skillWindowWideningPerSecond": 10,
             "skillWindowMaximum": 500, "maxLatencyMs": 100, "regions": ["us-east-1"],
             "timeoutSeconds": 120, "backfill": false},
            {"id": "solo/matchmaking/ranked", "name": "ranked", "playersPerMatch": 4, "teams": 2,
             "playersPerTeam": 2, "skillWindowInitial": 100, "skillWindowWideningPerSecond": 10,
             "skillWindowMaximum": 500, "maxLatencyMs": 100, "regions": ["eu-west-1", "us-east-1"],
             "timeoutSeconds": 120, "backfill": false}
        ]})
    );
    let env = serde_json::to_value(&eu).expect("json")["spec"]["template"]["spec"]["containers"][0]
        ["env"]
        .clone();
    assert!(
        env.as_array()
            .expect("env")
            .contains(&json!({"name": "MATCHMAKER_REGION", "value": "eu-west-1"}))
    );
    deployments
        .get("matchmaking-mm-us-east-1")
        .await
        .expect("us matchmaker");
    apply(
        &pools,
        pool(
            ded,
            "matchmaking",
            json!({"cellRef": {"name": "wl-dedicated"}, "replicas": 1,
            "queues": [queue("casual", &[])]}),
        ),
    )
    .await;
    wait_for(
        &pools,
        "matchmaking",
        "Ready",
        "True",
        Some("Available"),
        |v| v["status"]["replicas"] == 1,
    )
    .await;
    wait_gone(&deployments, "matchmaking-mm-eu-west-1").await;
    wait_gone(
        &Api::<Service>::namespaced(client.clone(), ded),
        "matchmaking-mm-eu-west-1",
    )
    .await;

    // Enterprise: restricted pods (the namespace enforces the restricted profile, so a pod that
    // did not meet it would be refused), images only from the customer's registry, a private
    // matchmaker.
    let ent = "wl-acme";
    apply(
        &cells,
        cell(ent, json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/gamecell",
                                  "externalId": "acme-ext", "clusterName": "wl-acme"}},
            "tenants": [{"name": "acme", "namespace": ent}],
            "compliance": {"allowedRegions": ["eu-central-1"],
                           "allowedRegistries": ["registry.acme.example/"]},
            "deletionPolicy": "Snapshot"
        })),
    )
    .await;
    wait_for(&cells, ent, "Ready", "True", None, |_| true).await;
    let ent_services: Api<PlayerService> = Api::namespaced(client.clone(), ent);
    apply(
        &ent_services,
        player_service(
            ent,
            "inventory",
            json!({"cellRef": {"name": ent},
            "image": "registry.acme.example/inventory:7", "replicas": 2}),
        ),
    )
    .await;
    wait_ready(&ent_services, "inventory").await;
    let inventory = Api::<Deployment>::namespaced(client.clone(), ent)
        .get("inventory")
        .await
        .expect("Deployment");
    let pod = serde_json::to_value(&inventory).expect("json")["spec"]["template"]["spec"].clone();
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );

    apply(
        &ent_services,
        player_service(
            ent,
            "rogue",
            json!({"cellRef": {"name": ent},
            "image": "docker.io/library/rogue:1"}),
        ),
    )
    .await;
    let refused = wait_for(
        &ent_services,
        "rogue",
        "Ready",
        "False",
        Some("ImageNotAllowed"),
        |_| true,
    )
    .await;
    assert_eq!(
        condition(&refused, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    wait_event(&client, ent, "rogue", "ImageNotAllowed").await;
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ent)
            .get_opt("rogue")
            .await
            .expect("read")
            .is_none(),
        "a refused image is never deployed"
    );

    let ent_pools: Api<MatchmakingPool> = Api::namespaced(client.clone(), ent);
    apply(
        &ent_pools,
        pool(
            ent,
            "matchmaking",
            json!({"cellRef": {"name": ent}, "image": "registry.acme.example/matchmaker:0.1.0",
            "queues": [queue("ranked", &[])]}),
        ),
    )
    .await;
    wait_ready(&ent_pools, "matchmaking").await;
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ent)
        .get("matchmaking-mm")
        .await
        .expect("matchmaker NetworkPolicy");
    assert_eq!(
        serde_json::to_value(&policy).expect("json")["spec"]["ingress"][0]["from"],
        json!([{"podSelector": {}}])
    );

    // Binding to another tenant's cell from one's own namespace is refused.
    apply(
        &services,
        player_service(
            ded,
            "intruder",
            json!({"cellRef": {"name": ent}, "image": "registry.acme.example/x:1"}),
        ),
    )
    .await;
    wait_for(
        &services,
        "intruder",
        "Ready",
        "False",
        Some("NamespaceNotInCell"),
        |_| true,
    )
    .await;
    assert!(
        deployments
            .get_opt("intruder")
            .await
            .expect("read")
            .is_none(),
        "nothing deployed for a refused binding"
    );

    delete_cells(&client, &[ded, ent], &[ded, ent]).await;
    let _ = nodes.delete(node_name, &DeleteParams::default()).await;
    operator.stop().await;
}

#[tokio::test]
async fn binding_a_store_the_cell_lacks_is_refused_until_the_cell_declares_it() {
    let client = client().await;
    install_crds(&client).await;
    let operator = Operator::start(&client, Arc::new(FakeCloud::new())).await;
    let ns = "wl-stores";
    delete_cells(&client, &["wl-stores"], &[ns]).await;
    let cells: Api<GameCell> = Api::all(client.clone());
    let spec = |with_cache: bool| {
        let mut spec = json!({
            "tier": "Dedicated", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "stores", "namespace": ns}],
            "dataStores": {"sql": {"engine": "MySQL", "version": "8.0.39"}},
            "deletionPolicy": "Delete"
        });
        if with_cache {
            spec["dataStores"]["cache"] = json!({"replicas": 0});
        }
        spec
    };
    apply(&cells, cell("wl-stores", spec(false))).await;
    wait_for(&cells, "wl-stores", "Ready", "True", None, |_| true).await;
    let services: Api<PlayerService> = Api::namespaced(client.clone(), ns);
    apply(
        &services,
        player_service(
            ns,
            "saves",
            json!({"cellRef": {"name": "wl-stores"}, "image": "ghcr.io/s/saves:1",
            "dataStores": {"sql": true, "cache": true}}),
        ),
    )
    .await;
    let refused = wait_for(
        &services,
        "saves",
        "Ready",
        "False",
        Some("DataStoreNotInCell"),
        |_| true,
    )
    .await;
    let (_, _, message) = condition(&refused, "Ready").expect("Ready");
    assert!(message.contains("cache"), "{message}");

    // The cell adds a cache: the GameCell watch brings the service up with both Secrets.
    apply(&cells, cell("wl-stores", spec(true))).await;
    wait_ready(&services, "saves").await;
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("saves")
        .await
        .expect("Deployment");
    let sources: BTreeMap<String, ()> = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].env_from.clone().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.secret_ref.map(|r| (r.name, ())))
        .collect();
    assert!(sources.contains_key("gamecell-sql") && sources.contains_key("gamecell-cache"));

    delete_cells(&client, &["wl-stores"], &[ns]).await;
    operator.stop().await;
}

/// Every document of `examples/cells/`, as (kind, manifest).
fn examples() -> Vec<(String, Value)> {
    crate::support::yaml_files("examples/cells")
        .iter()
        .flat_map(|f| crate::support::yaml_documents(f))
        .map(|d| (d["kind"].as_str().unwrap_or_default().to_owned(), d))
        .collect()
}

#[tokio::test]
async fn every_seed_example_comes_up_whole() {
    let client = client().await;
    install_crds(&client).await;
    let docs = examples();
    let of_kind = |kind: &str| -> Vec<Value> {
        docs.iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, d)| d.clone())
            .collect()
    };
    let example_cells = of_kind("GameCell");
    let cell_names: Vec<String> = example_cells
        .iter()
        .map(|c| c["metadata"]["name"].as_str().expect("name").to_owned())
        .collect();
    let namespaces: Vec<String> = example_cells
        .iter()
        .flat_map(|c| c["spec"]["tenants"].as_array().cloned().unwrap_or_default())
        .map(|t| t["namespace"].as_str().expect("namespace").to_owned())
        .collect();

    // The customers' clusters the Enterprise cells check, and a node for each node group.
    let cloud = Arc::new(FakeCloud::new());
    let nodes: Api<Node> = Api::all(client.clone());
    let mut node_names = Vec::new();
    for c in &example_cells {
        let name = c["metadata"]["name"].as_str().expect("name");
        if c["spec"]["tier"] == "Enterprise" {
            cloud.insert_cluster(ObservedCluster {
                name: c["spec"]["provider"]["aws"]["clusterName"]
                    .as_str()
                    .expect("clusterName")
                    .into(),
                status: "ACTIVE".into(),
                version: "1.31".into(),
                region: c["spec"]["provider"]["aws"]["region"]
                    .as_str()
                    .expect("region")
                    .into(),
            });
        }
        if c["spec"].get("nodes").is_some() {
            let node = format!("wl-ex-{name}");
            let mut manifest = cell_node(&node, name);
            manifest.status.as_mut().expect("status").allocatable = Some(
                [("cpu", "64"), ("memory", "256Gi"), ("pods", "250")]
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_owned(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.to_owned()),
                        )
                    })
                    .collect(),
            );
            nodes
                .patch(
                    &node,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&manifest),
                )
                .await
                .expect("node of the cell");
            node_names.push(node);
        }
    }
    let operator = Operator::start(&client, cloud).await;
    let cell_refs: Vec<&str> = cell_names.iter().map(String::as_str).collect();
    let ns_refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    delete_cells(&client, &cell_refs, &ns_refs).await;

    let cells: Api<GameCell> = Api::all(client.clone());
    for c in example_cells {
        apply(&cells, c).await;
    }
    for name in &cell_names {
        wait_for(&cells, name, "Ready", "True", None, |_| true).await;
    }
    let mut expected = Vec::new();
    for kind in ["PlayerService", "MatchmakingPool"] {
        for doc in of_kind(kind) {
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
                .to_owned();
            let name = doc["metadata"]["name"].as_str().expect("name").to_owned();
            if kind == "PlayerService" {
                apply(&Api::<PlayerService>::namespaced(client.clone(), &ns), doc).await;
            } else {
                apply(
                    &Api::<MatchmakingPool>::namespaced(client.clone(), &ns),
                    doc,
                )
                .await;
            }
            expected.push((kind, ns, name));
        }
    }
    for (kind, ns, name) in &expected {
        let ready = if *kind == "PlayerService" {
            wait_ready(&Api::<PlayerService>::namespaced(client.clone(), ns), name).await
        } else {
            wait_ready(
                &Api::<MatchmakingPool>::namespaced(client.clone(), ns),
                name,
            )
            .await
        };
        // The examples are sized to fit their tenants: policy caps nothing. It only fills in
        // the resources of the one example that leaves them to the tenant's LimitRange.
        let adjusted = condition(&ready, "PolicyAdjusted");
        let expect = if (ns.as_str(), name.as_str()) == ("pixel-rally", "leaderboards") {
            ("True", "ResourcesDefaulted")
        } else {
            ("False", "AsRequested")
        };
        assert_eq!(
            adjusted.as_ref().map(|c| (c.0.as_str(), c.1.as_str())),
            Some(expect),
            "{kind} {ns}/{name}: {adjusted:?}"
        );
    }

    delete_cells(&client, &cell_refs, &ns_refs).await;
    for node in &node_names {
        let _ = nodes.delete(node, &DeleteParams::default()).await;
    }
    operator.stop().await;
}
