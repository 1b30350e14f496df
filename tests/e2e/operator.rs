//! The operator process against the real cluster: it waits for its CRDs instead of crashing,
//! `/livez` answers at once, `/readyz` turns ready once the CRDs exist and its caches are
//! synced, its controllers write status, and SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use gamecell_operator::crds::GameCell;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use tokio::process::Command;

use crate::support::{
    FIELD_MANAGER, client, free_port, http_get, install_crds, repo_path, wait_until, yaml_documents,
};

#[tokio::test]
async fn operator_waits_for_crds_then_serves_ready_and_stops_on_sigterm() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let cells: Api<GameCell> = Api::all(client.clone());

    // Start from a cluster without the operator's CRDs.
    for name in [
        "gamecells.gamecell.dev",
        "playerservices.gamecell.dev",
        "matchmakingpools.gamecell.dev",
    ] {
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
    wait_until(Duration::from_secs(60), "CRDs removed", || async {
        crds.get_opt("gamecells.gamecell.dev")
            .await
            .ok()
            .flatten()
            .is_none()
            && crds
                .get_opt("playerservices.gamecell.dev")
                .await
                .ok()
                .flatten()
                .is_none()
            && crds
                .get_opt("matchmakingpools.gamecell.dev")
                .await
                .ok()
                .flatten()
                .is_none()
    })
    .await;

    let port = free_port();
    let log_path = repo_path("target/e2e-operator.log");
    let log = std::fs::File::create(&log_path).expect("operator log file");
    let mut operator = Command::new(env!("CARGO_BIN_EXE_gamecell-operator"))
        .env("GAMECELL_ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("operator starts");

    wait_until(Duration::from_secs(20), "/livez to answer 200", || async {
        http_get(port, "/livez")
            .await
            .is_some_and(|(code, _)| code == 200)
    })
    .await;
    // Without CRDs it keeps running and reports not ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        operator.try_wait().expect("process status").is_none(),
        "operator exited without its CRDs"
    );
    let (code, _) = http_get(port, "/readyz").await.expect("readyz answers");
    assert_eq!(code, 503, "/readyz must be 503 before the CRDs exist");

    install_crds(&client).await;
    wait_until(Duration::from_secs(60), "/readyz to answer 200", || async {
        http_get(port, "/readyz")
            .await
            .is_some_and(|(code, _)| code == 200)
    })
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.expect("metrics answer");
    assert!(
        metrics.contains("gamecell_operator_ready 1"),
        "metrics:\n{metrics}"
    );

    // The GameCell controller is wired: a new cell gets a status for its generation.
    let manifest = yaml_documents(&repo_path("tests/e2e/fixtures/immutable-cell.yaml")).remove(0);
    let mut cell: GameCell = serde_json::from_value(manifest).expect("fixture cell");
    cell.metadata.name = Some("e2e-wiring".into());
    cells
        .patch(
            "e2e-wiring",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cell),
        )
        .await
        .expect("cell created");
    wait_until(
        Duration::from_secs(30),
        "the cell's status to carry observedGeneration",
        || async {
            cells.get("e2e-wiring").await.ok().is_some_and(|c| {
                c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
                    && c.status.as_ref().is_some_and(|s| s.tenant_count == Some(1))
            })
        },
    )
    .await;
    let before = cells
        .get("e2e-wiring")
        .await
        .expect("cell")
        .resource_version();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cells
        .get("e2e-wiring")
        .await
        .expect("cell")
        .resource_version();
    assert_eq!(before, after, "an unchanged cell must not be written again");
    cells
        .delete("e2e-wiring", &DeleteParams::default())
        .await
        .expect("cleanup");

    // SIGTERM stops it cleanly.
    let pid = operator.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), operator.wait())
        .await
        .expect("operator stops within 15s of SIGTERM")
        .expect("exit status");
    assert!(
        status.success(),
        "operator exited with {status}; log: {}",
        log_path.display()
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("waiting for CRDs"),
        "log should say it waits for CRDs:\n{log}"
    );
    assert!(log.contains("stopped cleanly"), "log:\n{log}");
}
