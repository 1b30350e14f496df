//! Property tests over generated cell specs: the pure decisions never panic, are deterministic,
//! keep tenants apart, honour enterprise compliance, and only produce identifiers AWS accepts.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::connections::connection_data;
use super::policy::{adopted_violations, spec_violations};
use super::resources::{desired_resources, owned_by};
use super::tenancy::{CellIdentity, tenant_objects};
use crate::cloud::{ObservedResource, ResourceKind, ResourceParams, naming, tags};
use crate::crds::gamecell::GameCellSpec;

const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "ap-northeast-1", "eu-central-1"];

fn spec_strategy() -> impl Strategy<Value = (String, GameCellSpec)> {
    (
        "[a-z][a-z0-9-]{0,28}[a-z0-9]",
        0usize..3,
        0usize..4,
        1usize..5,
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        0usize..3,
        0i32..36,
        proptest::option::of(1i32..36),
        any::<bool>(),
    )
        .prop_map(
            |(name, tier, region, tenants, sql, cache, tables, buckets, retention, min_retention, kms)| {
                let tier = ["Dedicated", "Shared", "Enterprise"][tier];
                let region = REGIONS[region];
                let tenant_count = if tier == "Shared" { tenants } else { 1 };
                let tenants: Vec<Value> = (0..tenant_count)
                    .map(|i| json!({"name": format!("t{i}"), "namespace": format!("{name}-t{i}")}))
                    .collect();
                let mut stores = json!({});
                if sql {
                    stores["sql"] = json!({"engine": "Postgres", "version": "16", "backupRetentionDays": retention});
                }
                if cache {
                    stores["cache"] = json!({"replicas": 1});
                }
                stores["documentTables"] = (0..tables)
                    .map(|i| json!({"name": format!("table{i}"), "partitionKey": {"name": "pk", "type": "S"}}))
                    .collect();
                stores["buckets"] = (0..buckets).map(|i| json!({"name": format!("bucket{i}")})).collect();
                let mut aws = json!({"region": region});
                let mut spec = json!({"tier": tier, "tenants": tenants, "dataStores": stores});
                if tier == "Enterprise" {
                    aws["accountRoleArn"] = json!("arn:aws:iam::123456789012:role/gamecell");
                    aws["externalId"] = json!("ext");
                    aws["clusterName"] = json!("customer");
                    let mut compliance = json!({"allowedRegions": [region], "deletionProtection": true});
                    if let Some(min) = min_retention {
                        compliance["minBackupRetentionDays"] = json!(min);
                    }
                    if kms {
                        compliance["kmsKeyArn"] = json!(format!("arn:aws:kms:{region}:123456789012:key/k"));
                    }
                    spec["compliance"] = compliance;
                }
                spec["provider"] = json!({"aws": aws});
                (name, serde_json::from_value(spec).expect("generated spec deserializes"))
            },
        )
}

fn observed_everything(
    spec: &GameCellSpec,
    name: &str,
    uid: &str,
) -> BTreeMap<(ResourceKind, String), ObservedResource> {
    desired_resources(name, uid, spec)
        .into_iter()
        .map(|d| {
            let o = ObservedResource {
                identifier: d.identifier.clone(),
                state: "available".into(),
                ready: true,
                endpoint: Some("endpoint.local".into()),
                port: Some(1),
                tags: d.tags.clone(),
                secret_arn: Some(
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:master".into(),
                ),
                encrypted: true,
                publicly_accessible: false,
            };
            ((d.kind, d.identifier), o)
        })
        .collect()
}

fn valid_identifier(kind: ResourceKind, id: &str) -> bool {
    let max = match kind {
        ResourceKind::Cache => naming::CACHE_ID_MAX,
        ResourceKind::DocumentTable => 255,
        ResourceKind::Sql | ResourceKind::Bucket | ResourceKind::NodeGroup => naming::SQL_ID_MAX,
    };
    id.len() <= max
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && !id.contains("--")
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decisions_never_panic_and_are_deterministic((name, spec) in spec_strategy(), uid in "[a-f0-9-]{8,36}") {
        let identity = CellIdentity { name: &name, uid: &uid };
        prop_assert_eq!(desired_resources(&name, &uid, &spec), desired_resources(&name, &uid, &spec));
        prop_assert_eq!(tenant_objects(identity, &spec), tenant_objects(identity, &spec));
        prop_assert_eq!(spec_violations(&spec), spec_violations(&spec));
        let observed = observed_everything(&spec, &name, &uid);
        let desired = desired_resources(&name, &uid, &spec);
        for tenant in &spec.tenants {
            prop_assert_eq!(
                connection_data(&spec, tenant, &desired, &observed),
                connection_data(&spec, tenant, &desired, &observed)
            );
        }
    }

    #[test]
    fn identifiers_are_valid_owned_and_unique((name, spec) in spec_strategy(), uid in "[a-f0-9-]{8,36}") {
        let desired = desired_resources(&name, &uid, &spec);
        let mut seen = std::collections::BTreeSet::new();
        for d in &desired {
            prop_assert!(valid_identifier(d.kind, &d.identifier), "{:?} {}", d.kind, d.identifier);
            prop_assert!(owned_by(&d.tags, &uid));
            prop_assert!(seen.insert((d.kind, d.identifier.clone())), "duplicate {}", d.identifier);
        }
    }

    #[test]
    fn a_shared_tenant_never_gets_another_tenants_namespace_or_secret((name, spec) in spec_strategy(), uid in "[a-f0-9-]{8,36}") {
        let identity = CellIdentity { name: &name, uid: &uid };
        for objects in tenant_objects(identity, &spec) {
            let ns = objects.namespace.metadata.name.clone().unwrap_or_default();
            let tenant = spec.tenants.iter().find(|t| t.name == objects.tenant).expect("tenant");
            prop_assert_eq!(&ns, &tenant.namespace);
            for meta in objects.resource_quota.iter().map(|q| &q.metadata)
                .chain(objects.limit_range.iter().map(|l| &l.metadata))
                .chain(objects.network_policies.iter().map(|p| &p.metadata))
            {
                prop_assert_eq!(meta.namespace.as_deref(), Some(ns.as_str()));
            }
        }
        let desired = desired_resources(&name, &uid, &spec);
        let observed = observed_everything(&spec, &name, &uid);
        for tenant in &spec.tenants {
            let data = connection_data(&spec, tenant, &desired, &observed);
            let others: Vec<&str> = desired
                .iter()
                .filter(|d| d.tags.get(tags::TENANT).is_some_and(|t| *t != tenant.name))
                .map(|d| d.identifier.as_str())
                .collect();
            for values in data.values() {
                for value in values.values() {
                    prop_assert!(!others.contains(&value.as_str()), "tenant {} sees {}", tenant.name, value);
                }
                if super::policy::tier_policy(spec.tier).per_tenant_data {
                    prop_assert!(!values.contains_key("SQL_PASSWORD_SECRET_ARN"), "a shared tenant got the master secret");
                }
            }
        }
    }

    #[test]
    fn enterprise_stores_carry_the_customer_key_and_protection((name, spec) in spec_strategy(), uid in "[a-f0-9-]{8,36}") {
        let Some(compliance) = &spec.compliance else { return Ok(()) };
        for d in desired_resources(&name, &uid, &spec) {
            match &d.params {
                ResourceParams::Sql(p) => {
                    prop_assert_eq!(&p.kms_key_id, &compliance.kms_key_arn);
                    prop_assert_eq!(p.deletion_protection, compliance.deletion_protection);
                    prop_assert!(p.multi_az);
                }
                ResourceParams::Cache(p) => prop_assert_eq!(&p.kms_key_id, &compliance.kms_key_arn),
                ResourceParams::DocumentTable(p) => {
                    prop_assert_eq!(&p.kms_key_id, &compliance.kms_key_arn);
                    prop_assert_eq!(p.deletion_protection, compliance.deletion_protection);
                }
                ResourceParams::Bucket(p) => prop_assert_eq!(&p.kms_key_id, &compliance.kms_key_arn),
                ResourceParams::NodeGroup(_) => {}
            }
        }
        // Backups below the customer's minimum are always caught before anything is created.
        if let (Some(min), Some(sql)) = (compliance.min_backup_retention_days, spec.data_stores.as_ref().and_then(|d| d.sql.as_ref())) {
            let flagged = spec_violations(&spec).iter().any(|v| v.rule == "MinBackupRetention");
            prop_assert_eq!(flagged, sql.backup_retention_days < min);
        }
    }

    #[test]
    fn an_unencrypted_or_public_resource_is_never_adopted(encrypted in any::<bool>(), public in any::<bool>()) {
        let observed = ObservedResource {
            identifier: "legacy".into(), state: "available".into(), ready: true, endpoint: None, port: None,
            tags: BTreeMap::new(), secret_arn: None, encrypted, publicly_accessible: public,
        };
        prop_assert_eq!(adopted_violations(&observed).is_empty(), encrypted && !public);
    }
}
