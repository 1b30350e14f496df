//! Faults injected between the operator and the AWS emulator: throttling and 5xx are backed off
//! without duplicates, and an operator killed (SIGKILL) after AWS accepted a create, before it
//! recorded anything, leaves exactly one data store once restarted.

use std::time::Duration;

use gamecell_operator::crds::GameCell;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::fault_proxy::{Fault, FaultProxy};
use crate::support::{FIELD_MANAGER, OperatorProcess, client, install_crds, wait_until};

fn emulator_port() -> u16 {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "run the suite with `make e2e` (AWS_ENDPOINT_URL={endpoint:?})"
    );
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("emulator port")
}

fn cell(name: &str) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [{"name": "game", "namespace": format!("{name}-game")}],
            "dataStores": {
                "sql": {"engine": "Postgres", "version": "16.4", "backupRetentionDays": 1},
                "documentTables": [{"name": "state", "partitionKey": {"name": "id", "type": "S"}}]
            },
            "deletionPolicy": "Delete"
        }
    }))
    .expect("cell")
}

async fn ready(api: &Api<GameCell>, name: &str) -> bool {
    api.get(name).await.ok().is_some_and(|c| {
        c.status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
}

/// RDS instances in the emulator whose identifier starts with `prefix` (asked directly, not
/// through the proxy).
async fn sql_instances(prefix: &str) -> usize {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let rds = aws_sdk_rds::Client::new(&config);
    let out = rds
        .describe_db_instances()
        .send()
        .await
        .expect("describe instances");
    out.db_instances()
        .iter()
        .filter(|i| {
            i.db_instance_identifier()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .count()
}

async fn delete_cell(api: &Api<GameCell>, name: &str) {
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_until(
        Duration::from_secs(60),
        &format!("{name} deleted"),
        || async { api.get_opt(name).await.ok().flatten().is_none() },
    )
    .await;
}

#[tokio::test]
async fn throttling_and_5xx_from_aws_are_backed_off_without_duplicates() {
    let client = client().await;
    install_crds(&client).await;
    let proxy = FaultProxy::start(
        emulator_port(),
        vec![
            Fault::Throttle {
                marker: "Action=CreateDBInstance",
                count: 5,
            },
            Fault::Unavailable {
                marker: "Action=DescribeDBInstances",
                count: 4,
            },
            Fault::Throttle {
                marker: "DynamoDB_20120810.CreateTable",
                count: 5,
            },
        ],
    )
    .await;
    let url = proxy.url();
    let operator = OperatorProcess::start_with(
        "e2e-operator-throttled",
        &[("AWS_ENDPOINT_URL", url.as_str())],
    )
    .await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fault-throttled";
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell(name)),
    )
    .await
    .expect("cell applied");
    wait_until(
        Duration::from_secs(120),
        "the throttled cell to become Ready",
        || ready(&api, name),
    )
    .await;
    assert!(
        proxy.injected() >= 14,
        "every injected fault was hit: {} of 14",
        proxy.injected()
    );
    assert!(proxy.forwarded() > 0);
    let uid = api.get(name).await.expect("cell").uid().expect("uid");
    let prefix = gamecell_operator::cloud::naming::sql(name, &uid);
    assert_eq!(
        sql_instances(&prefix).await,
        1,
        "exactly one SQL store despite the retries"
    );
    delete_cell(&api, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn an_operator_killed_right_after_create_leaves_exactly_one_store() {
    let client = client().await;
    install_crds(&client).await;
    let proxy = FaultProxy::start(
        emulator_port(),
        vec![Fault::HoldResponse {
            marker: "Action=CreateDBInstance",
            hold: Duration::from_secs(60),
        }],
    )
    .await;
    let url = proxy.url();
    let mut first =
        OperatorProcess::start_with("e2e-operator-killed", &[("AWS_ENDPOINT_URL", url.as_str())])
            .await;
    let api: Api<GameCell> = Api::all(client.clone());
    let name = "fault-killed";
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell(name)),
    )
    .await
    .expect("cell applied");
    // AWS has accepted the create; the operator has not seen the answer. Kill it now.
    tokio::time::timeout(Duration::from_secs(60), proxy.held.notified())
        .await
        .expect("the create reached the emulator");
    first.child.start_kill().expect("SIGKILL");
    let _ = first.child.wait().await;
    let uid = api.get(name).await.expect("cell").uid().expect("uid");
    let prefix = gamecell_operator::cloud::naming::sql(name, &uid);
    assert_eq!(
        sql_instances(&prefix).await,
        1,
        "the create went through before the kill"
    );
    let recorded = api
        .get(name)
        .await
        .expect("cell")
        .status
        .map(|s| s.data_stores.len())
        .unwrap_or(0);
    assert_eq!(recorded, 0, "nothing was recorded before the kill");

    let second = OperatorProcess::start_with(
        "e2e-operator-restarted",
        &[("AWS_ENDPOINT_URL", url.as_str())],
    )
    .await;
    wait_until(
        Duration::from_secs(120),
        "the cell to become Ready after the restart",
        || ready(&api, name),
    )
    .await;
    assert_eq!(
        sql_instances(&prefix).await,
        1,
        "the restart found the first store and made no second"
    );
    delete_cell(&api, name).await;
    second.stop().await;
}
