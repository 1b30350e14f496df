//! Invalid manifests are refused by the API server, each with the message of the rule it breaks.
//!
//! Each file in `tests/e2e/invalid/` starts with `# expect: <fragment of the message>`.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};

use crate::support::{
    FIELD_MANAGER, client, dynamic_api, ensure_namespace, install_crds, repo_path, yaml_documents,
    yaml_files,
};

fn expectation(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable");
    text.lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_the_rule_message() {
    let client = client().await;
    install_crds(&client).await;
    ensure_namespace(&client, "e2e-invalid").await;
    let files = yaml_files("tests/e2e/invalid");
    assert!(
        files.len() >= 10,
        "expected at least 10 invalid manifests, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let expected = expectation(file);
        for doc in yaml_documents(file) {
            let obj: DynamicObject =
                serde_json::from_value(doc.clone()).expect("a Kubernetes object");
            let params = PostParams {
                dry_run: true,
                field_manager: Some(FIELD_MANAGER.into()),
            };
            match dynamic_api(&client, &doc).create(&params, &obj).await {
                Ok(_) => failures.push(format!(
                    "{}: accepted, expected refusal with {expected:?}",
                    file.display()
                )),
                Err(kube::Error::Api(status))
                    if status.code == 422 && status.message.contains(&expected) => {}
                Err(e) => failures.push(format!(
                    "{}: expected a 422 containing {expected:?}, got {e}",
                    file.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn tier_and_region_cannot_change_after_creation() {
    let client = client().await;
    install_crds(&client).await;
    let manifest = yaml_documents(&repo_path("tests/e2e/fixtures/immutable-cell.yaml")).remove(0);
    let api = dynamic_api(&client, &manifest);
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    let obj: DynamicObject = serde_json::from_value(manifest.clone()).expect("object");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("the fixture cell is valid");

    for (pointer, value, message) in [
        ("/spec/tier", "Dedicated", "spec.tier is immutable"),
        (
            "/spec/provider/aws/region",
            "eu-west-2",
            "provider.aws.region is immutable",
        ),
    ] {
        let mut changed = manifest.clone();
        *changed.pointer_mut(pointer).expect("field") = serde_json::json!(value);
        let obj: DynamicObject = serde_json::from_value(changed).expect("object");
        match api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
        {
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(message) => {}
            other => panic!("changing {pointer}: expected a 422 with {message:?}, got {other:?}"),
        }
    }
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("cleanup");
}
