//! Recovery without restarting the operator: the API server restarts (every watch breaks and
//! is re-established), and the emulator restarts and forgets everything (the operator notices on
//! resync, recreates what it owns, and under `Retain` reports what is gone instead).

use std::time::Duration;

use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::cloud::{CloudProvider, ResourceKind, Scope, naming};
use gamecell_operator::crds::GameCell;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{FIELD_MANAGER, OperatorProcess, client, install_crds, repo_path, wait_until};

fn cell(name: &str, policy: &str) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [{"name": "game", "namespace": format!("{name}-game")}],
            "dataStores": {"documentTables": [{"name": "state", "partitionKey": {"name": "id", "type": "S"}}]},
            "deletionPolicy": policy
        }
    }))
    .expect("cell")
}

async fn condition(
    api: &Api<GameCell>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> bool {
    api.get(name).await.ok().is_some_and(|c| {
        c.status.is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r)
            })
        })
    })
}

fn hack(script: &str, arg: &str) {
    let status = std::process::Command::new(repo_path(&format!("hack/{script}")))
        .arg(arg)
        .status()
        .unwrap_or_else(|e| panic!("hack/{script} {arg}: {e}"));
    assert!(status.success(), "hack/{script} {arg} failed");
}

#[tokio::test]
async fn the_operator_recovers_from_api_server_and_emulator_restarts() {
    let client = client().await;
    install_crds(&client).await;
    let mut operator =
        OperatorProcess::start_with("e2e-operator-recovery", &[("GAMECELL_RESYNC_SECONDS", "2")])
            .await;
    let api: Api<GameCell> = Api::all(client.clone());
    for (name, policy) in [("recover-delete", "Delete"), ("recover-retain", "Retain")] {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cell(name, policy)),
        )
        .await
        .expect("cell applied");
    }
    for name in ["recover-delete", "recover-retain"] {
        wait_until(Duration::from_secs(60), &format!("{name} Ready"), || {
            condition(&api, name, "Ready", "True", None)
        })
        .await;
    }

    // The API server restarts: the operator's watches break; it must carry on by itself.
    hack("cluster.sh", "restart-apiserver");
    let client = crate::support::client().await;
    let api: Api<GameCell> = Api::all(client.clone());
    api.patch(
        "recover-after",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell("recover-after", "Delete")),
    )
    .await
    .expect("cell applied after the restart");
    wait_until(
        Duration::from_secs(90),
        "a cell created after the API server restart to become Ready",
        || condition(&api, "recover-after", "Ready", "True", None),
    )
    .await;
    assert!(
        operator.child.try_wait().expect("status").is_none(),
        "the operator must not have exited"
    );

    // The emulator restarts empty: resync recreates under Delete, reports under Retain.
    hack("moto.sh", "down");
    hack("moto.sh", "up");
    wait_until(
        Duration::from_secs(60),
        "recover-retain to report its missing table",
        || {
            condition(
                &api,
                "recover-retain",
                "Stalled",
                "True",
                Some("DataStoreMissing"),
            )
        },
    )
    .await;
    let cloud = AwsCloud::from_env().await;
    let scope = Scope {
        region: "us-east-1".into(),
        assume_role: None,
    };
    let uid = api
        .get("recover-delete")
        .await
        .expect("cell")
        .uid()
        .expect("uid");
    let table = naming::table("recover-delete", &uid, "state");
    wait_until(
        Duration::from_secs(60),
        "recover-delete's table to be recreated",
        || async {
            cloud
                .describe(&scope, ResourceKind::DocumentTable, &table)
                .await
                .ok()
                .flatten()
                .is_some()
        },
    )
    .await;
    wait_until(
        Duration::from_secs(60),
        "recover-delete Ready again",
        || condition(&api, "recover-delete", "Ready", "True", None),
    )
    .await;
    let retained = api
        .get("recover-retain")
        .await
        .expect("cell")
        .uid()
        .expect("uid");
    let missing = naming::table("recover-retain", &retained, "state");
    assert!(
        cloud
            .describe(&scope, ResourceKind::DocumentTable, &missing)
            .await
            .expect("describe")
            .is_none(),
        "a Retain cell's store is reported, not recreated"
    );

    for name in ["recover-delete", "recover-retain", "recover-after"] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    wait_until(
        Duration::from_secs(60),
        "recovery cells deleted",
        || async {
            let mut gone = true;
            for name in ["recover-delete", "recover-retain", "recover-after"] {
                gone &= api.get_opt(name).await.ok().flatten().is_none();
            }
            gone
        },
    )
    .await;
    let _ = &mut operator;
    operator.stop().await;
}
