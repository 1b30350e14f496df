//! What each tier means and which compliance rules a cell breaks (pure).
//!
//! This is the one place that says what Dedicated, Shared and Enterprise imply; the builders and
//! the controller ask it rather than matching on the tier themselves.

use crate::cloud::{ObservedCluster, ObservedResource};
use crate::crds::gamecell::{CellTier, DeletionPolicy, GameCellSpec};

/// The consequences of a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierPolicy {
    /// SQL stores run Multi-AZ unless the spec says otherwise.
    pub multi_az_by_default: bool,
    /// The cell's data stores are split per tenant (databases, tables, key prefixes).
    pub per_tenant_data: bool,
    /// The operator acts in the customer's account through their role.
    pub customer_account: bool,
    /// The customer's EKS cluster is verified before anything is created.
    pub verify_cluster: bool,
}

/// The policy of `tier`.
#[must_use]
pub fn tier_policy(tier: CellTier) -> TierPolicy {
    match tier {
        CellTier::Dedicated => TierPolicy {
            multi_az_by_default: true,
            per_tenant_data: false,
            customer_account: false,
            verify_cluster: false,
        },
        CellTier::Shared => TierPolicy {
            multi_az_by_default: false,
            per_tenant_data: true,
            customer_account: false,
            verify_cluster: false,
        },
        CellTier::Enterprise => TierPolicy {
            multi_az_by_default: true,
            per_tenant_data: false,
            customer_account: true,
            verify_cluster: true,
        },
    }
}

/// EKS versions the operator supports in a customer's cluster (inclusive).
pub const SUPPORTED_EKS_MINORS: std::ops::RangeInclusive<u32> = 29..=34;

/// A broken rule: what the cell shows in `PolicyCompliant=False` and the Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Short name of the rule, e.g. `MinBackupRetention`.
    pub rule: &'static str,
    /// What is wrong and what to change.
    pub message: String,
}

impl Violation {
    fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}

/// The region of a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/...`).
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Rules a spec breaks on its own, before any cloud call.
#[must_use]
pub fn spec_violations(spec: &GameCellSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let region = spec.provider.aws.region.as_str();
    if let Some(compliance) = &spec.compliance {
        if !compliance.allowed_regions.iter().any(|r| r == region) {
            out.push(Violation::new(
                "DataResidency",
                format!("region {region} is not in compliance.allowedRegions"),
            ));
        }
        if let (Some(min), Some(sql)) = (
            compliance.min_backup_retention_days,
            spec.data_stores.as_ref().and_then(|d| d.sql.as_ref()),
        ) && sql.backup_retention_days < min
        {
            out.push(Violation::new(
                "MinBackupRetention",
                format!(
                    "dataStores.sql.backupRetentionDays is {} but compliance requires at least {min}",
                    sql.backup_retention_days
                ),
            ));
        }
        if let Some(key) = &compliance.kms_key_arn
            && arn_region(key) != Some(region)
        {
            out.push(Violation::new(
                "KmsKeyRegion",
                format!(
                    "compliance.kmsKeyArn is in region {} but the cell runs in {region}: use a key of the cell's region",
                    arn_region(key).unwrap_or("?")
                ),
            ));
        }
        if compliance.deletion_protection && spec.deletion_policy == DeletionPolicy::Delete {
            out.push(Violation::new(
                "DeletionProtection",
                "compliance.deletionProtection forbids deletionPolicy Delete",
            ));
        }
    }
    out
}

/// Rules the customer's EKS cluster breaks (Enterprise cells).
#[must_use]
pub fn cluster_violations(
    spec: &GameCellSpec,
    cluster: Option<&ObservedCluster>,
) -> Vec<Violation> {
    let wanted = spec
        .provider
        .aws
        .cluster_name
        .as_deref()
        .unwrap_or_default();
    let Some(cluster) = cluster else {
        return vec![Violation::new(
            "ClusterNotFound",
            format!(
                "EKS cluster {wanted} was not found in {} with the cell's role",
                spec.provider.aws.region
            ),
        )];
    };
    let mut out = Vec::new();
    if cluster.status != "ACTIVE" {
        out.push(Violation::new(
            "ClusterNotActive",
            format!(
                "EKS cluster {} is {}, not ACTIVE",
                cluster.name, cluster.status
            ),
        ));
    }
    let minor = cluster
        .version
        .strip_prefix("1.")
        .and_then(|m| m.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    if !minor.is_some_and(|m| SUPPORTED_EKS_MINORS.contains(&m)) {
        out.push(Violation::new(
            "ClusterVersionUnsupported",
            format!(
                "EKS cluster {} runs Kubernetes {}; supported: 1.{} to 1.{}",
                cluster.name,
                cluster.version,
                SUPPORTED_EKS_MINORS.start(),
                SUPPORTED_EKS_MINORS.end()
            ),
        ));
    }
    if let Some(compliance) = &spec.compliance
        && !compliance.allowed_regions.contains(&cluster.region)
    {
        out.push(Violation::new(
            "DataResidency",
            format!(
                "EKS cluster {} is in {}, not in compliance.allowedRegions",
                cluster.name, cluster.region
            ),
        ));
    }
    out
}

/// Rules an existing resource named for adoption breaks (it must meet the same bar as one the
/// operator would create).
#[must_use]
pub fn adopted_violations(observed: &ObservedResource) -> Vec<Violation> {
    let mut out = Vec::new();
    if !observed.encrypted {
        out.push(Violation::new(
            "EncryptionRequired",
            format!(
                "{} is not encrypted at rest and cannot be adopted",
                observed.identifier
            ),
        ));
    }
    if observed.publicly_accessible {
        out.push(Violation::new(
            "NoPublicAccess",
            format!(
                "{} is publicly accessible and cannot be adopted",
                observed.identifier
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> GameCellSpec {
        serde_json::from_value(value).expect("valid spec")
    }

    fn enterprise() -> serde_json::Value {
        serde_json::json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/x", "externalId": "e", "clusterName": "acme"}},
            "tenants": [{"name": "acme", "namespace": "acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "minBackupRetentionDays": 14, "deletionProtection": true,
                            "kmsKeyArn": "arn:aws:kms:eu-central-1:123456789012:key/abc"},
            "dataStores": {"sql": {"engine": "Postgres", "version": "16", "backupRetentionDays": 14}}
        })
    }

    fn cluster(status: &str, version: &str, region: &str) -> ObservedCluster {
        ObservedCluster {
            name: "acme".into(),
            status: status.into(),
            version: version.into(),
            region: region.into(),
        }
    }

    #[test]
    fn tier_table() {
        let table = [
            (CellTier::Dedicated, true, false, false, false),
            (CellTier::Shared, false, true, false, false),
            (CellTier::Enterprise, true, false, true, true),
        ];
        for (tier, multi_az, per_tenant, customer, verify) in table {
            let p = tier_policy(tier);
            assert_eq!(
                (
                    p.multi_az_by_default,
                    p.per_tenant_data,
                    p.customer_account,
                    p.verify_cluster
                ),
                (multi_az, per_tenant, customer, verify),
                "{tier:?}"
            );
        }
    }

    #[test]
    fn compliant_spec_has_no_violations() {
        assert_eq!(spec_violations(&spec(enterprise())), vec![]);
    }

    #[test]
    fn each_compliance_rule_is_reported_by_name() {
        let mut v = enterprise();
        v["dataStores"]["sql"]["backupRetentionDays"] = 3.into();
        assert_eq!(spec_violations(&spec(v))[0].rule, "MinBackupRetention");

        let mut v = enterprise();
        v["compliance"]["kmsKeyArn"] = "arn:aws:kms:us-east-1:123456789012:key/abc".into();
        assert_eq!(spec_violations(&spec(v))[0].rule, "KmsKeyRegion");

        let mut v = enterprise();
        v["compliance"]["allowedRegions"] = serde_json::json!(["eu-west-1"]);
        assert_eq!(spec_violations(&spec(v))[0].rule, "DataResidency");

        let mut v = enterprise();
        v["deletionPolicy"] = "Delete".into();
        assert_eq!(spec_violations(&spec(v))[0].rule, "DeletionProtection");
    }

    #[test]
    fn cluster_checks() {
        let s = spec(enterprise());
        assert_eq!(
            cluster_violations(&s, Some(&cluster("ACTIVE", "1.31", "eu-central-1"))),
            vec![]
        );
        assert_eq!(cluster_violations(&s, None)[0].rule, "ClusterNotFound");
        assert_eq!(
            cluster_violations(&s, Some(&cluster("CREATING", "1.31", "eu-central-1")))[0].rule,
            "ClusterNotActive"
        );
        assert_eq!(
            cluster_violations(&s, Some(&cluster("ACTIVE", "1.22", "eu-central-1")))[0].rule,
            "ClusterVersionUnsupported"
        );
        assert_eq!(
            cluster_violations(&s, Some(&cluster("ACTIVE", "1.31", "us-east-1")))[0].rule,
            "DataResidency"
        );
    }
}
