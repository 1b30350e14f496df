//! Two operator processes with leader election: exactly one reconciles (and so exactly one
//! creates cloud resources); when the leader is killed, the other takes over. The measured
//! takeover time is written to `target/leader-takeover.txt` (and quoted in the README).

use std::time::{Duration, Instant};

use gamecell_operator::crds::GameCell;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{FIELD_MANAGER, OperatorProcess, client, install_crds, repo_path, wait_until};

fn cell(name: &str) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Shared",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [{"name": "t", "namespace": format!("{name}-t")}],
            "dataStores": {"documentTables": [{"name": "state", "partitionKey": {"name": "id", "type": "S"}}]},
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

#[tokio::test]
async fn exactly_one_replica_leads_and_the_other_takes_over() {
    let client = client().await;
    install_crds(&client).await;
    let env = |id: &'static str| {
        [
            ("GAMECELL_LEADER_ELECT", "true"),
            ("GAMECELL_LEASE_SECONDS", "4"),
            ("GAMECELL_LEASE_NAME", "gamecell-e2e-leader"),
            ("POD_NAMESPACE", "default"),
            ("POD_NAME", id),
        ]
    };
    let a = OperatorProcess::start_with("e2e-operator-leader-a", &env("replica-a")).await;
    let b = OperatorProcess::start_with("e2e-operator-leader-b", &env("replica-b")).await;
    wait_until(Duration::from_secs(30), "one replica to lead", || async {
        a.metric("gamecell_operator_leader").await.unwrap_or(0.0)
            + b.metric("gamecell_operator_leader").await.unwrap_or(0.0)
            == 1.0
    })
    .await;
    let (leader, standby) = if a.metric("gamecell_operator_leader").await == Some(1.0) {
        (a, b)
    } else {
        (b, a)
    };

    let api: Api<GameCell> = Api::all(client.clone());
    api.patch(
        "leader-one",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell("leader-one")),
    )
    .await
    .expect("cell applied");
    wait_until(Duration::from_secs(60), "leader-one Ready", || {
        ready(&api, "leader-one")
    })
    .await;
    assert!(
        leader
            .counter_sum("gamecell_operator_reconciles_total")
            .await
            > 0.0
    );
    assert_eq!(
        standby
            .counter_sum("gamecell_operator_reconciles_total")
            .await,
        0.0,
        "the standby must not reconcile anything"
    );
    assert_eq!(standby.metric("gamecell_operator_leader").await, Some(0.0));

    // Kill the leader without a chance to release its lease: the standby takes over once it expires.
    let killed_at = Instant::now();
    let mut leader = leader;
    leader.child.start_kill().expect("SIGKILL");
    let _ = leader.child.wait().await;
    wait_until(
        Duration::from_secs(30),
        "the standby to take over",
        || async { standby.metric("gamecell_operator_leader").await == Some(1.0) },
    )
    .await;
    let takeover = killed_at.elapsed();
    api.patch(
        "leader-two",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cell("leader-two")),
    )
    .await
    .expect("cell applied");
    wait_until(
        Duration::from_secs(60),
        "leader-two Ready under the new leader",
        || ready(&api, "leader-two"),
    )
    .await;
    let _ = std::fs::write(
        repo_path("target/leader-takeover.txt"),
        format!(
            "takeover after SIGKILL with a 4 s lease: {:.1} s\n",
            takeover.as_secs_f64()
        ),
    );
    assert!(
        takeover < Duration::from_secs(20),
        "takeover took {takeover:?}"
    );

    for name in ["leader-one", "leader-two"] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    wait_until(Duration::from_secs(60), "test cells deleted", || async {
        api.get_opt("leader-one").await.ok().flatten().is_none()
            && api.get_opt("leader-two").await.ok().flatten().is_none()
    })
    .await;
    standby.stop().await;
}
