//! Every manifest in `examples/cells/` passes a server-side dry run against the real API server
//! (schema, CEL rules and all).

use std::collections::BTreeSet;

use kube::api::{DynamicObject, Patch, PatchParams};

use crate::support::{
    FIELD_MANAGER, client, dynamic_api, ensure_namespace, install_crds, yaml_documents, yaml_files,
};

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let client = client().await;
    install_crds(&client).await;
    let mut checked = 0;
    let mut namespaces = BTreeSet::new();
    let files = yaml_files("examples/cells");
    for file in &files {
        for doc in yaml_documents(file) {
            if let Some(ns) = doc["metadata"]["namespace"].as_str() {
                namespaces.insert(ns.to_owned());
            }
        }
    }
    // The operator creates tenant namespaces; a dry run of a namespaced object needs them to exist.
    for ns in &namespaces {
        ensure_namespace(&client, ns).await;
    }
    for file in &files {
        for doc in yaml_documents(file) {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let obj: DynamicObject =
                serde_json::from_value(doc.clone()).expect("a Kubernetes object");
            let params = PatchParams::apply(FIELD_MANAGER).dry_run();
            dynamic_api(&client, &doc)
                .patch(&name, &params, &Patch::Apply(&obj))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {kind}/{name} refused by the API server: {e}",
                        file.display()
                    )
                });
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "expected at least 10 example objects, dry-ran {checked}"
    );
}
