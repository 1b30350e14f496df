//! What a tenant's workloads learn about the cell's data stores: the data of the connection
//! Secrets, one per store, in the tenant's namespace (pure).
//!
//! Endpoints, names and prefixes only. Passwords never pass through the operator: a dedicated or
//! enterprise workload reads the RDS-managed master secret by ARN with its own IAM role; a shared
//! tenant is never handed the master secret at all.

use std::collections::BTreeMap;

use super::policy::tier_policy;
use crate::cloud::{DesiredResource, ObservedResource, ResourceKind};
use crate::crds::gamecell::{GameCellSpec, TenantSpec};

/// Secret name suffix (`gamecell-<store>`) and its data.
pub type ConnectionData = BTreeMap<&'static str, BTreeMap<String, String>>;

fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The connection data for `tenant`, from the desired resources and what the cloud reports.
/// Stores not yet observed are left out (their Secret appears once they exist).
#[must_use]
pub fn connection_data(
    spec: &GameCellSpec,
    tenant: &TenantSpec,
    desired: &[DesiredResource],
    observed: &BTreeMap<(ResourceKind, String), ObservedResource>,
) -> ConnectionData {
    let shared = tier_policy(spec.tier).per_tenant_data;
    let mut out = ConnectionData::new();
    for d in desired {
        let Some(o) = observed.get(&(d.kind, d.identifier.clone())) else {
            continue;
        };
        match d.kind {
            ResourceKind::Sql => {
                let engine = match &d.params {
                    crate::cloud::ResourceParams::Sql(p) => p.engine.clone(),
                    _ => String::new(),
                };
                let mut data = BTreeMap::from([
                    ("SQL_ENGINE".to_owned(), engine),
                    (
                        "SQL_HOST".to_owned(),
                        o.endpoint.clone().unwrap_or_default(),
                    ),
                    (
                        "SQL_PORT".to_owned(),
                        o.port.map(|p| p.to_string()).unwrap_or_default(),
                    ),
                ]);
                if shared {
                    // Each tenant has its own database and login on the shared instance.
                    data.insert("SQL_DATABASE".into(), tenant.name.replace('-', "_"));
                    data.insert("SQL_USERNAME".into(), tenant.name.replace('-', "_"));
                } else {
                    data.insert("SQL_DATABASE".into(), "app".into());
                    data.insert("SQL_USERNAME".into(), "gamecell".into());
                    if let Some(arn) = &o.secret_arn {
                        data.insert("SQL_PASSWORD_SECRET_ARN".into(), arn.clone());
                    }
                }
                out.insert("sql", data);
            }
            ResourceKind::Cache => {
                let prefix = if shared {
                    format!("{}:", tenant.name)
                } else {
                    String::new()
                };
                out.insert(
                    "cache",
                    BTreeMap::from([
                        (
                            "CACHE_HOST".to_owned(),
                            o.endpoint.clone().unwrap_or_default(),
                        ),
                        (
                            "CACHE_PORT".to_owned(),
                            o.port.map(|p| p.to_string()).unwrap_or_default(),
                        ),
                        ("CACHE_KEY_PREFIX".to_owned(), prefix),
                    ]),
                );
            }
            ResourceKind::DocumentTable => {
                let tenant_tag = d.tags.get(crate::cloud::tags::TENANT);
                if shared && tenant_tag != Some(&tenant.name) {
                    continue; // another tenant's copy: never named to this tenant
                }
                let logical = if shared {
                    d.logical_name
                        .strip_prefix(&format!("{}-", tenant.name))
                        .unwrap_or(&d.logical_name)
                } else {
                    &d.logical_name
                };
                out.entry("tables")
                    .or_default()
                    .insert(format!("TABLE_{}", env_key(logical)), o.identifier.clone());
            }
            ResourceKind::Bucket => {
                let entry = out.entry("buckets").or_default();
                let key = format!("BUCKET_{}", env_key(&d.logical_name));
                entry.insert(key.clone(), o.identifier.clone());
                let prefix = if shared {
                    format!("tenants/{}/", tenant.name)
                } else {
                    String::new()
                };
                entry.insert(format!("{key}_PREFIX"), prefix);
            }
            ResourceKind::NodeGroup => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::resources::desired_resources;

    fn observed_all(
        desired: &[DesiredResource],
    ) -> BTreeMap<(ResourceKind, String), ObservedResource> {
        desired
            .iter()
            .map(|d| {
                (
                    (d.kind, d.identifier.clone()),
                    ObservedResource {
                        identifier: d.identifier.clone(),
                        state: "available".into(),
                        ready: true,
                        endpoint: Some(format!("{}.example", d.identifier)),
                        port: Some(5432),
                        tags: d.tags.clone(),
                        secret_arn: Some(
                            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1".into(),
                        ),
                        encrypted: true,
                        publicly_accessible: false,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn shared_tenants_see_only_their_own_tables_and_never_the_master_secret() {
        let spec: GameCellSpec = serde_json::from_value(serde_json::json!({
            "tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "alpha", "namespace": "a"}, {"name": "beta", "namespace": "b"}],
            "dataStores": {"sql": {"engine": "Postgres", "version": "16"}, "cache": {},
                           "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}],
                           "buckets": [{"name": "assets"}]}
        }))
        .expect("spec");
        let desired = desired_resources("pool", "uid-1", &spec);
        let observed = observed_all(&desired);
        let alpha = connection_data(&spec, &spec.tenants[0], &desired, &observed);
        let beta = connection_data(&spec, &spec.tenants[1], &desired, &observed);
        assert_eq!(alpha["tables"].len(), 1);
        assert!(alpha["tables"]["TABLE_SAVES"].contains("alpha-saves"));
        assert!(beta["tables"]["TABLE_SAVES"].contains("beta-saves"));
        assert_eq!(alpha["cache"]["CACHE_KEY_PREFIX"], "alpha:");
        assert_eq!(alpha["buckets"]["BUCKET_ASSETS_PREFIX"], "tenants/alpha/");
        assert_eq!(alpha["sql"]["SQL_DATABASE"], "alpha");
        assert!(!alpha["sql"].contains_key("SQL_PASSWORD_SECRET_ARN"));
    }

    #[test]
    fn dedicated_tenant_gets_the_managed_secret_reference_and_nothing_unobserved() {
        let spec: GameCellSpec = serde_json::from_value(serde_json::json!({
            "tier": "Dedicated", "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [{"name": "solo", "namespace": "solo"}],
            "dataStores": {"sql": {"engine": "MySQL", "version": "8.0"}, "cache": {}}
        }))
        .expect("spec");
        let desired = desired_resources("solo", "uid-2", &spec);
        let mut observed = observed_all(&desired);
        observed.remove(&(desired[1].kind, desired[1].identifier.clone()));
        let data = connection_data(&spec, &spec.tenants[0], &desired, &observed);
        assert!(data["sql"]["SQL_PASSWORD_SECRET_ARN"].starts_with("arn:aws:secretsmanager:"));
        assert_eq!(data["sql"]["SQL_ENGINE"], "mysql");
        assert!(
            !data.contains_key("cache"),
            "an unobserved store has no Secret yet"
        );
    }
}
