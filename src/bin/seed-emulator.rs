//! Development tool: prepares the local AWS emulator for the example cells by creating the EKS
//! clusters they expect to exist already (a Dedicated cell's node group joins an existing
//! cluster; an Enterprise cell's cluster is the customer's, in the customer's account).
//!
//! Refuses to run unless `AWS_ENDPOINT_URL` points at 127.0.0.1 or localhost: it must never
//! touch a real AWS account.

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_eks::types::VpcConfigRequest;
use gamecell_operator::cell::policy::tier_policy;
use gamecell_operator::controllers::gamecell::scope_of;
use gamecell_operator::crds::GameCell;

#[tokio::main]
async fn main() -> ExitCode {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if !(endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost")) {
        eprintln!(
            "seed-emulator: AWS_ENDPOINT_URL must point at the local emulator (got {endpoint:?}); refusing"
        );
        return ExitCode::FAILURE;
    }
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    if dirs.is_empty() {
        eprintln!("usage: seed-emulator DIR_OR_FILE...");
        return ExitCode::FAILURE;
    }
    let mut cells = Vec::new();
    for arg in &dirs {
        let path = std::path::Path::new(arg);
        let files: Vec<_> = if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
                Err(e) => {
                    eprintln!("seed-emulator: {arg}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            vec![path.to_path_buf()]
        };
        for file in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let Ok(docs) = serde_saphyr::from_multiple::<serde_json::Value>(&text) else {
                eprintln!("seed-emulator: {} is not valid YAML", file.display());
                return ExitCode::FAILURE;
            };
            for doc in docs.into_iter().filter(|d| d["kind"] == "GameCell") {
                match serde_json::from_value::<GameCell>(doc) {
                    Ok(cell) => cells.push(cell),
                    Err(e) => eprintln!(
                        "seed-emulator: skipping a GameCell in {}: {e}",
                        file.display()
                    ),
                }
            }
        }
    }
    let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
    for cell in cells {
        let spec = &cell.spec;
        let Some(cluster) = &spec.provider.aws.cluster_name else {
            continue;
        };
        if spec.nodes.is_none() && !tier_policy(spec.tier).verify_cluster {
            continue;
        }
        let scope = scope_of(spec);
        let region = aws_config::Region::new(scope.region.clone());
        let mut builder = base.to_builder();
        builder.set_region(Some(region.clone()));
        if let Some(role) = &scope.assume_role {
            let provider = AssumeRoleProvider::builder(role.role_arn.clone())
                .external_id(role.external_id.clone())
                .session_name("gamecell-seed")
                .region(region)
                .configure(&base)
                .build()
                .await;
            builder.set_credentials_provider(Some(
                aws_sdk_eks::config::SharedCredentialsProvider::new(provider),
            ));
        }
        let eks = aws_sdk_eks::Client::new(&builder.build());
        if eks.describe_cluster().name(cluster).send().await.is_ok() {
            println!("cluster {cluster} ({}) exists", scope.region);
            continue;
        }
        let created = eks
            .create_cluster()
            .name(cluster)
            .version("1.31")
            .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
            .resources_vpc_config(
                VpcConfigRequest::builder()
                    .subnet_ids("subnet-0a1b2c3d4e5f60718")
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(_) => println!(
                "created EKS cluster {cluster} in {} for cell {:?}",
                scope.region, cell.metadata.name
            ),
            Err(e) => {
                eprintln!("seed-emulator: creating cluster {cluster}: {e:?}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
