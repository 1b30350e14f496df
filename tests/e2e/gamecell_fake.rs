//! The GameCell reconciler, in-process, against the real API server and the in-memory fake
//! cloud: the behaviours the emulator cannot show (slow provisioning, throttling, a lost create
//! response, access denied, resources someone else owns), deletion under each policy, drift and
//! a quiet steady state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gamecell_operator::admin::Readiness;
use gamecell_operator::cloud::fake::{FakeCloud, Op};
use gamecell_operator::cloud::{CloudError, ObservedCluster, ResourceKind, naming, tags};
use gamecell_operator::controllers::{self, Timings};
use gamecell_operator::crds::GameCell;
use gamecell_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::{FIELD_MANAGER, client, install_crds, wait_event, wait_until};

/// The controllers running in this test process, stopped on drop.
struct Operator {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Operator {
    async fn start(client: &Client, cloud: Arc<FakeCloud>) -> Self {
        let (stop, rx) = watch::channel(false);
        let readiness = Readiness::default();
        let timings = Timings {
            resync: Duration::from_secs(2),
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
                controller: "gamecell-e2e".into(),
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

fn cell_manifest(name: &str, spec: Value) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("valid cell")
}

fn shared_spec(ns_prefix: &str, policy: &str) -> Value {
    json!({
        "tier": "Shared",
        "provider": {"aws": {"region": "eu-west-1"}},
        "tenants": [
            {"name": "alpha", "namespace": format!("{ns_prefix}-alpha"), "quota": {"cpu": "4", "memory": "8Gi", "pods": 20}},
            {"name": "beta", "namespace": format!("{ns_prefix}-beta")}
        ],
        "dataStores": {
            "sql": {"engine": "Postgres", "version": "16.4"},
            "cache": {"replicas": 1},
            "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}],
            "buckets": [{"name": "assets"}]
        },
        "deletionPolicy": policy
    })
}

/// Creates a cell with server-side apply, as `kubectl apply --server-side` and Argo CD do (so a
/// later apply that drops a list entry removes it).
async fn create(api: &Api<GameCell>, cell: &GameCell) -> GameCell {
    api.patch(
        &cell.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(cell),
    )
    .await
    .expect("cell created")
}

fn condition(cell: &GameCell, type_: &str) -> Option<(String, String)> {
    cell.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn wait_condition(
    api: &Api<GameCell>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> GameCell {
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(cell) = api.get(name).await {
            let current = condition(&cell, type_);
            let generation_seen = cell.status.as_ref().and_then(|s| s.observed_generation)
                == cell.metadata.generation;
            if generation_seen
                && current
                    .as_ref()
                    .is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want))
            {
                return cell;
            }
            last = Some(cell.status.clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {type_} never became {status} ({reason:?}); last status: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn delete_and_wait(api: &Api<GameCell>, name: &str) {
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_until(
        Duration::from_secs(60),
        &format!("{name} to be deleted"),
        || async { api.get_opt(name).await.ok().flatten().is_none() },
    )
    .await;
}

#[tokio::test]
async fn shared_cell_provisions_slowly_then_isolates_tenants_and_is_quiet_when_ready() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::slow(3, 2));
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-shared";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-shared", "Delete")),
    )
    .await;

    // Slow provisioning is waited on, not an error: Reconciling, then Ready.
    let provisioning =
        wait_condition(&api, name, "Reconciling", "True", Some("Provisioning")).await;
    assert_eq!(
        condition(&provisioning, "Stalled").map(|c| c.0).as_deref(),
        Some("False")
    );
    let ready = wait_condition(&api, name, "Ready", "True", Some("Ready")).await;
    let status = ready.status.clone().expect("status");
    // sql + cache + 2 per-tenant tables + 1 bucket
    assert_eq!(status.data_stores_ready.as_deref(), Some("5/5"));
    assert_eq!(status.tenant_count, Some(2));
    assert_eq!(cloud.resource_count(), 5);

    // Each tenant has its namespace, quota and policies, and Secrets naming only its own table.
    let secrets_alpha: Api<Secret> = Api::namespaced(client.clone(), "fake-shared-alpha");
    let tables = secrets_alpha
        .get("gamecell-tables")
        .await
        .expect("alpha tables secret");
    let data = tables.data.unwrap_or_default();
    let table = String::from_utf8(data["TABLE_SAVES"].0.clone()).expect("utf8");
    assert!(table.ends_with("alpha-saves"), "{table}");
    let all_secrets: Api<Secret> = Api::all(client.clone());
    let owned: Vec<_> = all_secrets
        .list(&ListParams::default().labels("gamecell.dev/cell=fake-shared"))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|s| s.namespace().unwrap_or_default())
        .collect();
    assert!(
        owned
            .iter()
            .all(|ns| ns == "fake-shared-alpha" || ns == "fake-shared-beta"),
        "{owned:?}"
    );
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(client.clone(), "fake-shared-alpha");
    quotas.get("gamecell-quota").await.expect("alpha quota");

    // Steady state: several resyncs later, no cloud mutation and no Kubernetes write.
    let mutating = cloud.mutating_calls();
    let rv_cell = api.get(name).await.expect("cell").resource_version();
    let rv_secret = secrets_alpha
        .get("gamecell-tables")
        .await
        .expect("secret")
        .resource_version();
    let describes = cloud.calls("describe");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(cloud.calls("describe") > describes, "resyncs happened");
    assert_eq!(
        cloud.mutating_calls(),
        mutating,
        "no mutating cloud calls when idle"
    );
    assert_eq!(
        api.get(name).await.expect("cell").resource_version(),
        rv_cell,
        "no status write when idle"
    );
    assert_eq!(
        secrets_alpha
            .get("gamecell-tables")
            .await
            .expect("secret")
            .resource_version(),
        rv_secret,
        "no Secret write when idle"
    );

    // Drift: a store deleted out of band is recreated on resync.
    let uid = ready.uid().expect("uid");
    cloud.forget(ResourceKind::Cache, &naming::cache(name, &uid));
    wait_until(
        Duration::from_secs(30),
        "the cache to be recreated",
        || async { cloud.identifiers(ResourceKind::Cache).len() == 1 },
    )
    .await;

    // deletionPolicy Delete: the finalizer waits for the cloud, then everything is gone.
    delete_and_wait(&api, name).await;
    assert_eq!(cloud.resource_count(), 0);
    assert!(cloud.snapshots().is_empty(), "Delete takes no snapshot");
    operator.stop().await;
}

#[tokio::test]
async fn throttling_and_a_lost_create_response_never_duplicate() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    cloud.fail_next(
        Op::Create,
        CloudError::Throttled {
            service: "fake",
            message: "Rate exceeded".into(),
        },
    );
    cloud.fail_next(
        Op::Describe,
        CloudError::Unavailable {
            service: "fake",
            message: "503".into(),
        },
    );
    cloud.lose_next_create_response();
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-flaky";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-flaky", "Delete")),
    )
    .await;
    wait_condition(&api, name, "Ready", "True", None).await;
    assert_eq!(
        cloud.identifiers(ResourceKind::Sql).len(),
        1,
        "exactly one SQL store"
    );
    assert_eq!(
        cloud.identifiers(ResourceKind::Cache).len(),
        1,
        "exactly one cache"
    );
    assert_eq!(cloud.resource_count(), 5);
    delete_and_wait(&api, name).await;
    operator.stop().await;
}

/// A create that stopped half-way (an Aurora cluster whose instance call failed, or an operator
/// killed between the two calls) is finished by the next reconcile: the same resource, its
/// missing parts requested, nothing deleted to start over.
#[tokio::test]
async fn an_interrupted_create_is_finished_never_deleted_or_repeated() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    cloud.interrupt_next_create();
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-interrupted";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-interrupted", "Delete")),
    )
    .await;
    wait_condition(&api, name, "Ready", "True", None).await;
    assert_eq!(cloud.resource_count(), 5, "one resource per store");
    // Five creates, plus the one that finished the interrupted store; no delete at all.
    assert_eq!(cloud.calls("create"), 6);
    assert_eq!(cloud.calls("delete"), 0);
    wait_event(&client, "default", name, "DataStoreResumed").await;
    delete_and_wait(&api, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn access_denied_stalls_with_a_bounded_number_of_calls() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    cloud.deny_all(true);
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-denied";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-denied", "Delete")),
    )
    .await;
    let stalled = wait_condition(&api, name, "Stalled", "True", Some("CloudAccessDenied")).await;
    assert_eq!(
        condition(&stalled, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    let calls = cloud.calls("describe") + cloud.calls("create");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = cloud.calls("describe") + cloud.calls("create");
    assert!(
        later - calls <= 1,
        "no retry storm: {calls} -> {later} calls in 6 s"
    );
    // Deleting a stalled cell must not hang forever on its finalizer once access returns.
    cloud.deny_all(false);
    delete_and_wait(&api, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_resource_tagged_as_someone_elses_is_never_adopted_or_deleted() {
    let client = client().await;
    install_crds(&client).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-foreign";
    // Create the cell before the operator runs, so the foreign resource is in place first.
    let created = create(
        &api,
        &cell_manifest(name, shared_spec("fake-foreign", "Delete")),
    )
    .await;
    let uid = created.uid().expect("uid");
    let cloud = Arc::new(FakeCloud::new());
    let foreign_tags = BTreeMap::from([
        (tags::CELL_UID.to_owned(), "another-cells-uid".to_owned()),
        (tags::MANAGED_BY.to_owned(), tags::MANAGER.to_owned()),
    ]);
    let sql_id = naming::sql(name, &uid);
    cloud.insert_existing(ResourceKind::Sql, &sql_id, foreign_tags);
    let operator = Operator::start(&client, cloud.clone()).await;
    wait_condition(&api, name, "Stalled", "True", Some("ForeignResource")).await;
    delete_and_wait(&api, name).await;
    assert_eq!(
        cloud.identifiers(ResourceKind::Sql),
        vec![sql_id],
        "the foreign store survives the cell's deletion"
    );
    operator.stop().await;
}

#[tokio::test]
async fn snapshot_and_retain_policies_do_what_they_say() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());

    create(
        &api,
        &cell_manifest("fake-snapshot", shared_spec("fake-snap", "Snapshot")),
    )
    .await;
    let cell = wait_condition(&api, "fake-snapshot", "Ready", "True", None).await;
    let sql_id = naming::sql("fake-snapshot", &cell.uid().expect("uid"));
    delete_and_wait(&api, "fake-snapshot").await;
    assert_eq!(cloud.snapshots(), vec![naming::final_snapshot(&sql_id)]);
    assert_eq!(cloud.resource_count(), 0);

    create(
        &api,
        &cell_manifest("fake-retain", shared_spec("fake-retain", "Retain")),
    )
    .await;
    wait_condition(&api, "fake-retain", "Ready", "True", None).await;
    let before = cloud.resource_count();
    delete_and_wait(&api, "fake-retain").await;
    assert_eq!(
        cloud.resource_count(),
        before,
        "Retain keeps every resource"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_cell_deleted_while_its_stores_are_being_created_leaks_nothing() {
    let client = client().await;
    install_crds(&client).await;
    // Stores stay `creating` for 8 describes; like RDS and ElastiCache, the SQL store and the
    // cache refuse deletion until they are available.
    let cloud = Arc::new(FakeCloud::slow(8, 2));
    cloud.refuse_delete_while_creating(true);
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());

    let mut uids = BTreeMap::new();
    for (name, policy) in [
        ("fake-midway-delete", "Delete"),
        ("fake-midway-snapshot", "Snapshot"),
    ] {
        let cell = create(&api, &cell_manifest(name, shared_spec(name, policy))).await;
        uids.insert(name, cell.uid().expect("uid"));
    }
    // Every store of both cells has been asked for (per cell: SQL, cache, one table per
    // tenant, the bucket), and none is ready yet.
    wait_until(
        Duration::from_secs(30),
        "all 10 stores creating",
        || async { cloud.resource_count() == 10 },
    )
    .await;
    for name in uids.keys() {
        let cell = api.get(name).await.expect("cell");
        assert_ne!(
            condition(&cell, "Ready").map(|(s, _)| s),
            Some("True".to_owned()),
            "{name} must still be provisioning when it is deleted"
        );
    }
    let creates_before_delete = cloud.calls("create");
    for name in uids.keys() {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    for name in uids.keys() {
        wait_until(
            Duration::from_secs(90),
            &format!("{name} deleted"),
            || async { api.get_opt(name).await.ok().flatten().is_none() },
        )
        .await;
    }
    assert_eq!(cloud.resource_count(), 0, "no store leaked");
    assert_eq!(
        cloud.calls("create"),
        creates_before_delete,
        "nothing was created after the deletion started"
    );
    assert_eq!(
        creates_before_delete, 10,
        "one create per store, no duplicate"
    );
    assert_eq!(
        cloud.snapshots(),
        vec![naming::final_snapshot(&naming::sql(
            "fake-midway-snapshot",
            &uids["fake-midway-snapshot"]
        ))],
        "Snapshot took its final snapshot once the store was available; Delete took none"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_retained_store_deleted_out_of_band_is_reported_not_recreated() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-drift-retain";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-drift", "Retain")),
    )
    .await;
    let cell = wait_condition(&api, name, "Ready", "True", None).await;
    cloud.forget(
        ResourceKind::Sql,
        &naming::sql(name, &cell.uid().expect("uid")),
    );
    wait_condition(&api, name, "Stalled", "True", Some("DataStoreMissing")).await;
    assert!(
        cloud.identifiers(ResourceKind::Sql).is_empty(),
        "not recreated under Retain"
    );
    delete_and_wait(&api, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_non_compliant_enterprise_cell_creates_nothing() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    cloud.insert_cluster(ObservedCluster {
        name: "acme".into(),
        status: "ACTIVE".into(),
        version: "1.31".into(),
        region: "eu-central-1".into(),
    });
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let spec = |retention: i32| {
        json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/gamecell",
                                  "externalId": "acme-ext", "clusterName": "acme"}},
            "tenants": [{"name": "acme", "namespace": "fake-acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "minBackupRetentionDays": 14, "deletionProtection": true},
            "dataStores": {"sql": {"engine": "Postgres", "version": "16", "backupRetentionDays": retention}},
            "deletionPolicy": "Snapshot"
        })
    };
    let name = "fake-acme";
    create(&api, &cell_manifest(name, spec(3))).await;
    let stalled = wait_condition(
        &api,
        name,
        "PolicyCompliant",
        "False",
        Some("MinBackupRetention"),
    )
    .await;
    assert_eq!(
        condition(&stalled, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(cloud.resource_count(), 0, "nothing created in the cloud");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt("fake-acme")
            .await
            .expect("read")
            .is_none(),
        "nothing created in the cluster"
    );

    // Fixing the spec lets it through, and the cluster is verified in the customer's account.
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell_manifest(name, spec(14))),
    )
    .await
    .expect("patched");
    let ready = wait_condition(&api, name, "Ready", "True", None).await;
    assert_eq!(
        condition(&ready, "ClusterVerified").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(cloud.resource_count(), 1);
    let ns = namespaces.get("fake-acme").await.expect("tenant namespace");
    assert_eq!(
        ns.labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    delete_and_wait(&api, name).await;
    assert_eq!(cloud.resource_count(), 0);
    operator.stop().await;
}

#[tokio::test]
async fn adding_a_tenant_disturbs_no_other_and_removing_one_cleans_only_its_parts() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-tenants";
    let mut spec = shared_spec("fake-tenants", "Delete");
    create(&api, &cell_manifest(name, spec.clone())).await;
    let cell = wait_condition(&api, name, "Ready", "True", None).await;
    let uid = cell.uid().expect("uid");
    let alpha_secrets: Api<Secret> = Api::namespaced(client.clone(), "fake-tenants-alpha");
    let alpha_rv = alpha_secrets
        .get("gamecell-tables")
        .await
        .expect("alpha secret")
        .resource_version();
    let alpha_table = naming::table(name, &uid, "alpha-saves");
    let beta_table = naming::table(name, &uid, "beta-saves");

    // Add gamma: alpha's objects are not rewritten.
    spec["tenants"]
        .as_array_mut()
        .expect("tenants")
        .push(json!({"name": "gamma", "namespace": "fake-tenants-gamma"}));
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell_manifest(name, spec.clone())),
    )
    .await
    .expect("gamma added");
    let cell = wait_condition(&api, name, "Ready", "True", None).await;
    assert_eq!(cell.status.as_ref().and_then(|s| s.tenant_count), Some(3));
    let gamma: Api<Secret> = Api::namespaced(client.clone(), "fake-tenants-gamma");
    gamma
        .get("gamecell-tables")
        .await
        .expect("gamma has its Secret");
    assert_eq!(
        alpha_secrets
            .get("gamecell-tables")
            .await
            .expect("alpha secret")
            .resource_version(),
        alpha_rv,
        "adding a tenant must not touch another tenant's objects"
    );

    // Remove beta: its namespace and table go; alpha's stay.
    spec["tenants"]
        .as_array_mut()
        .expect("tenants")
        .retain(|t| t["name"] != "beta");
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell_manifest(name, spec)),
    )
    .await
    .expect("beta removed");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_until(
        Duration::from_secs(60),
        "beta's namespace to be deleted and its table removed",
        || async {
            let ns_gone = namespaces
                .get_opt("fake-tenants-beta")
                .await
                .ok()
                .flatten()
                .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some());
            ns_gone
                && !cloud
                    .identifiers(ResourceKind::DocumentTable)
                    .contains(&beta_table)
        },
    )
    .await;
    assert!(
        cloud
            .identifiers(ResourceKind::DocumentTable)
            .contains(&alpha_table)
    );
    assert!(
        namespaces
            .get_opt("fake-tenants-alpha")
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        alpha_secrets
            .get("gamecell-tables")
            .await
            .expect("alpha secret")
            .resource_version(),
        alpha_rv,
        "removing a tenant must not touch another tenant's objects"
    );
    delete_and_wait(&api, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_the_crd_never_deletes_a_cloud_resource() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-crd-gone";
    create(
        &api,
        &cell_manifest(name, shared_spec("fake-crd-gone", "Delete")),
    )
    .await;
    wait_condition(&api, name, "Ready", "True", None).await;
    let before = cloud.resource_count();
    assert!(before > 0);

    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.delete("gamecells.gamecell.dev", &DeleteParams::default())
        .await
        .expect("CRD deleted");
    wait_until(
        Duration::from_secs(60),
        "the GameCell CRD to be gone",
        || async {
            crds.get_opt("gamecells.gamecell.dev")
                .await
                .ok()
                .flatten()
                .is_none()
        },
    )
    .await;
    assert_eq!(
        cloud.resource_count(),
        before,
        "deleting the CRD must not delete cloud resources"
    );
    assert_eq!(cloud.calls("delete"), 0);
    operator.stop().await;
    install_crds(&client).await;
}

#[tokio::test]
async fn a_cell_shows_its_services_warns_on_capacity_and_is_not_deleted_under_them() {
    let client = client().await;
    install_crds(&client).await;
    let cloud = Arc::new(FakeCloud::new());
    let operator = Operator::start(&client, cloud.clone()).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fake-bound";
    let mut spec = shared_spec("fake-bound", "Delete");
    spec["capacity"] = json!({"maxConcurrentPlayers": 1000});
    create(&api, &cell_manifest(name, spec)).await;
    wait_condition(&api, name, "Ready", "True", None).await;

    let services: Api<gamecell_operator::crds::PlayerService> =
        Api::namespaced(client.clone(), "fake-bound-alpha");
    let svc: gamecell_operator::crds::PlayerService = serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
        "metadata": {"name": "lobby", "namespace": "fake-bound-alpha"},
        "spec": {"cellRef": {"name": name}, "image": "registry.example.com/lobby:1", "replicas": 2,
                 "playersPerReplica": 800,
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}}
    }))
    .expect("service");
    services
        .patch(
            "lobby",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&svc),
        )
        .await
        .expect("service applied");
    wait_until(
        Duration::from_secs(60),
        "the cell to count its ready service",
        || async {
            api.get(name)
                .await
                .ok()
                .is_some_and(|c| c.status.and_then(|s| s.services_ready).as_deref() == Some("1/1"))
        },
    )
    .await;
    let cell = wait_condition(&api, name, "ServicesReady", "True", None).await;
    assert_eq!(
        condition(&cell, "CapacityExceeded").map(|c| c.0).as_deref(),
        Some("True"),
        "2 x 800 players exceed the cell's 1000"
    );

    // Deleting the cell waits while the service is bound.
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete requested");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let waiting = api
        .get(name)
        .await
        .expect("the cell waits while a service is bound");
    assert!(
        waiting
            .status
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready"
                && c.reason == "DeletionWaitingForServices"
                && c.message.contains("PlayerService fake-bound-alpha/lobby"))),
        "the cell says which services block its deletion"
    );
    assert!(
        cloud.resource_count() > 0,
        "no data store is deleted under a running service"
    );
    assert_eq!(cloud.calls("delete"), 0);
    services
        .delete("lobby", &DeleteParams::default())
        .await
        .expect("service deleted");
    wait_until(
        Duration::from_secs(60),
        "the cell to be deleted once nothing is bound",
        || async { api.get_opt(name).await.ok().flatten().is_none() },
    )
    .await;
    assert_eq!(cloud.resource_count(), 0);
    operator.stop().await;
}
