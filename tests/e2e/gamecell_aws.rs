//! The operator process against the local cluster and the AWS emulator: every example cell
//! (one per tier, one set per backend) reaches Ready with exactly the expected resources and
//! tags; tenant Secrets exist where they should and nowhere else; deletion under each policy
//! does what it says; a non-compliant enterprise cell creates nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use gamecell_operator::cell::resources::{desired_resources, owned_by};
use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::cloud::{CloudProvider, ResourceKind, naming};
use gamecell_operator::controllers::gamecell::scope_of;
use gamecell_operator::crds::GameCell;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{
    FIELD_MANAGER, OperatorProcess, client, dynamic_api, install_crds, repo_path, wait_until,
    yaml_documents, yaml_files,
};

fn require_emulator() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at the local emulator: run the suite with `make e2e`"
    );
}

fn is_ready(cell: &GameCell) -> bool {
    cell.status.as_ref().is_some_and(|s| {
        s.observed_generation == cell.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Deletes cells and waits; cells whose cleanup cannot finish on the emulator (moto never
/// completes an ElastiCache deletion) are released by removing the finalizer, test teardown only.
async fn teardown(api: &Api<GameCell>, names: &[String]) {
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let mut left = 0;
        for name in names {
            if api.get_opt(name).await.ok().flatten().is_some() {
                left += 1;
            }
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for name in names {
        let patch = json!({"metadata": {"finalizers": null}});
        let _ = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
}

#[tokio::test]
async fn every_example_cell_reaches_ready_on_the_emulator() {
    require_emulator();
    let client = client().await;
    install_crds(&client).await;
    let seeded = tokio::process::Command::new(env!("CARGO_BIN_EXE_seed-emulator"))
        .arg(repo_path("examples/cells"))
        .status()
        .await
        .expect("seed-emulator runs");
    assert!(
        seeded.success(),
        "seeding the emulator's EKS clusters failed"
    );
    let operator = OperatorProcess::start("e2e-operator-examples").await;
    let cells: Api<GameCell> = Api::all(client.clone());

    let mut names = Vec::new();
    let mut workloads = Vec::new();
    for file in yaml_files("examples/cells") {
        for doc in yaml_documents(&file) {
            if doc["kind"] == "GameCell" {
                let cell: GameCell = serde_json::from_value(doc).expect("example cell");
                let name = cell.name_any();
                cells
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&cell),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
                names.push(name);
            } else {
                workloads.push(doc);
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let list = cells
            .list(&ListParams::default())
            .await
            .expect("list cells");
        let waiting: Vec<_> = list
            .items
            .iter()
            .filter(|c| names.contains(&c.name_any()) && !is_ready(c))
            .map(|c| (c.name_any(), c.status.clone()))
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cells not Ready after 180 s (operator log: {}): {waiting:#?}",
            operator.log.display()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // GitOps: applying the same manifests again (server-side, as Argo CD does) changes nothing,
    // and the operator never wrote spec: its managed fields are status and its finalizer only.
    for file in yaml_files("examples/cells") {
        for doc in yaml_documents(&file) {
            if doc["kind"] != "GameCell" {
                continue;
            }
            let cell: GameCell = serde_json::from_value(doc).expect("example cell");
            let name = cell.name_any();
            let before = cells.get(&name).await.expect("cell");
            let after = cells
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&cell),
                )
                .await
                .expect("re-apply");
            assert_eq!(
                before.resource_version(),
                after.resource_version(),
                "{name}: re-applying the same manifest must not change the object"
            );
            for entry in after.metadata.managed_fields.unwrap_or_default() {
                if entry.manager.as_deref() != Some("gamecell-operator") {
                    continue;
                }
                let fields = entry.fields_v1.map(|f| f.0).unwrap_or_default();
                let keys: Vec<&String> = fields
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                assert!(
                    keys.iter().all(|k| *k == "f:status" || *k == "f:metadata"),
                    "{name}: the operator owns fields outside status/metadata: {keys:?}"
                );
                if let Some(meta) = fields.get("f:metadata").and_then(|m| m.as_object()) {
                    assert!(
                        meta.keys().all(|k| k == "f:finalizers"),
                        "{name}: operator owns metadata {meta:?}"
                    );
                }
            }
        }
    }

    // The emulator holds exactly the expected resources, tagged as each cell's.
    let cloud = AwsCloud::from_env().await;
    let secrets: Api<Secret> = Api::all(client.clone());
    for name in &names {
        let cell = cells.get(name).await.expect("cell");
        let uid = cell.uid().expect("uid");
        let scope = scope_of(&cell.spec);
        let desired = desired_resources(name, &uid, &cell.spec);
        for d in &desired {
            let observed = cloud
                .describe(&scope, d.kind, &d.identifier)
                .await
                .unwrap_or_else(|e| panic!("{name}: describe {}: {e}", d.identifier))
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: {} {} missing in the emulator",
                        d.kind.as_str(),
                        d.identifier
                    )
                });
            assert!(
                owned_by(&observed.tags, &uid),
                "{name}: {} lacks the cell's tags: {:?}",
                d.identifier,
                observed.tags
            );
            if d.kind != ResourceKind::NodeGroup {
                assert!(
                    observed.encrypted,
                    "{name}: {} is not encrypted",
                    d.identifier
                );
            }
            assert!(
                !observed.publicly_accessible,
                "{name}: {} is public",
                d.identifier
            );
        }
        let status = cell.status.clone().expect("status");
        assert_eq!(
            status.data_stores_ready,
            Some(format!("{0}/{0}", desired.len())),
            "{name}"
        );

        // Connection Secrets only in the cell's tenant namespaces, one set per tenant.
        let tenant_namespaces: BTreeSet<String> = cell
            .spec
            .tenants
            .iter()
            .map(|t| t.namespace.clone())
            .collect();
        let owned = secrets
            .list(&ListParams::default().labels(&format!("gamecell.dev/cell={name}")))
            .await
            .expect("list secrets")
            .items;
        for secret in &owned {
            assert!(
                tenant_namespaces.contains(&secret.namespace().unwrap_or_default()),
                "{name}: Secret {} in a namespace outside the cell",
                secret.name_any()
            );
        }
        let has_stores = desired.iter().any(|d| d.kind != ResourceKind::NodeGroup);
        if has_stores {
            for ns in &tenant_namespaces {
                assert!(
                    owned
                        .iter()
                        .any(|s| s.namespace().as_deref() == Some(ns.as_str())),
                    "{name}: no connection Secret in tenant namespace {ns}"
                );
            }
        }
        for secret in &owned {
            for value in secret.data.clone().unwrap_or_default().values() {
                let text = String::from_utf8_lossy(&value.0);
                assert!(
                    !text.to_lowercase().contains("password="),
                    "{name}: a Secret carries a password"
                );
            }
        }
    }

    // With the tenant namespaces in place, every example workload is accepted.
    for doc in workloads {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let obj: kube::api::DynamicObject = serde_json::from_value(doc.clone()).expect("object");
        dynamic_api(&client, &doc)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("applying workload {name}: {e}"));
    }

    teardown(&cells, &names).await;
    operator.stop().await;
}

fn small_cell(name: &str, policy: &str) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [{"name": "game", "namespace": format!("{name}-game")}],
            "dataStores": {
                "sql": {"engine": "Postgres", "version": "16.4", "backupRetentionDays": 1},
                "documentTables": [{"name": "state", "partitionKey": {"name": "id", "type": "S"}}],
                "buckets": [{"name": "saves"}]
            },
            "deletionPolicy": policy
        }
    }))
    .expect("cell")
}

#[tokio::test]
async fn deletion_policies_and_compliance_on_the_emulator() {
    require_emulator();
    let client = client().await;
    install_crds(&client).await;
    let operator = OperatorProcess::start("e2e-operator-deletion").await;
    let cells: Api<GameCell> = Api::all(client.clone());
    let cloud = AwsCloud::from_env().await;

    let mut created = Vec::new();
    for (name, policy) in [
        ("aws-delete", "Delete"),
        ("aws-snapshot", "Snapshot"),
        ("aws-retain", "Retain"),
    ] {
        cells
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&small_cell(name, policy)),
            )
            .await
            .expect("cell applied");
        created.push(name);
    }
    let mut uids = Vec::new();
    for name in &created {
        wait_until(
            Duration::from_secs(120),
            &format!("{name} Ready"),
            || async { cells.get(name).await.ok().is_some_and(|c| is_ready(&c)) },
        )
        .await;
        uids.push(cells.get(name).await.expect("cell").uid().expect("uid"));
    }
    for name in &created {
        cells
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for name in &created {
        wait_until(
            Duration::from_secs(60),
            &format!("{name} deleted"),
            || async { cells.get_opt(name).await.ok().flatten().is_none() },
        )
        .await;
    }
    let scope = gamecell_operator::cloud::Scope {
        region: "us-east-1".into(),
        assume_role: None,
    };
    for (name, uid) in created.iter().zip(&uids) {
        let sql = cloud
            .describe(&scope, ResourceKind::Sql, &naming::sql(name, uid))
            .await
            .expect("describe");
        let bucket = cloud
            .describe(
                &scope,
                ResourceKind::Bucket,
                &naming::bucket(name, uid, "saves"),
            )
            .await
            .expect("describe");
        if *name == "aws-retain" {
            assert!(
                sql.is_some() && bucket.is_some(),
                "Retain keeps the cell's resources"
            );
        } else {
            assert!(
                sql.is_none() && bucket.is_none(),
                "{name}: resources should be gone"
            );
        }
    }
    // Snapshot took a final snapshot of the SQL store; Delete did not.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let rds = aws_sdk_rds::Client::new(&config);
    let snapshot = |name: &str, uid: &str| naming::final_snapshot(&naming::sql(name, uid));
    let found = |id: String| {
        let rds = rds.clone();
        async move {
            rds.describe_db_snapshots()
                .db_snapshot_identifier(id)
                .send()
                .await
                .is_ok()
        }
    };
    assert!(
        found(snapshot("aws-snapshot", &uids[1])).await,
        "final snapshot missing"
    );
    assert!(
        !found(snapshot("aws-delete", &uids[0])).await,
        "Delete must not snapshot"
    );

    // A non-compliant enterprise cell creates nothing, in the cluster or the customer's account.
    let bad: GameCell = serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": "aws-noncompliant"},
        "spec": {
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::210987654321:role/gamecell",
                                  "externalId": "ext-1", "clusterName": "customer"}},
            "tenants": [{"name": "cust", "namespace": "aws-noncompliant-cust"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "kmsKeyArn": "arn:aws:kms:us-east-1:210987654321:key/k1"},
            "dataStores": {"sql": {"engine": "MySQL", "version": "8.0"}}
        }
    }))
    .expect("cell");
    cells
        .patch(
            "aws-noncompliant",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&bad),
        )
        .await
        .expect("applied");
    wait_until(
        Duration::from_secs(60),
        "PolicyCompliant=False KmsKeyRegion",
        || async {
            cells.get("aws-noncompliant").await.ok().is_some_and(|c| {
                c.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "PolicyCompliant"
                            && c.status == "False"
                            && c.reason == "KmsKeyRegion"
                    })
                })
            })
        },
    )
    .await;
    let cell = cells.get("aws-noncompliant").await.expect("cell");
    let uid = cell.uid().expect("uid");
    let customer = scope_of(&cell.spec);
    assert!(customer.assume_role.is_some());
    let sql = cloud
        .describe(
            &customer,
            ResourceKind::Sql,
            &naming::sql("aws-noncompliant", &uid),
        )
        .await
        .expect("describe");
    assert!(
        sql.is_none(),
        "nothing may be created for a non-compliant cell"
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt("aws-noncompliant-cust")
            .await
            .expect("read")
            .is_none()
    );
    teardown(&cells, &["aws-noncompliant".to_owned()]).await;
    operator.stop().await;
}
