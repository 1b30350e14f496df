//! The cloud resources a cell needs, with their deterministic identifiers and ownership tags
//! (pure).

use std::collections::BTreeMap;

use super::policy::tier_policy;
use crate::cloud::{
    BucketParams, CacheParams, DesiredResource, NodeGroupParams, ResourceKind, ResourceParams,
    SqlParams, TableParams, naming, tags,
};
use crate::crds::gamecell::{GameCellSpec, MaintenanceWindow, SqlEngine, TableBilling, Weekday};

/// Label every node of a cell's node group carries, and its workloads select.
pub const NODE_LABEL: &str = "gamecell.dev/cell";
/// Taint key that keeps other workloads off a cell's nodes.
pub const NODE_TAINT: &str = "gamecell.dev/cell";

/// The ownership tags of every resource of a cell.
#[must_use]
pub fn ownership_tags(cell: &str, uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (tags::CELL.to_owned(), cell.to_owned()),
        (tags::CELL_UID.to_owned(), uid.to_owned()),
        (tags::MANAGED_BY.to_owned(), tags::MANAGER.to_owned()),
    ])
}

/// Whether `observed_tags` say the resource belongs to the cell with this UID.
#[must_use]
pub fn owned_by(observed_tags: &BTreeMap<String, String>, uid: &str) -> bool {
    observed_tags.get(tags::CELL_UID).is_some_and(|u| u == uid)
        && observed_tags
            .get(tags::MANAGED_BY)
            .is_some_and(|m| m == tags::MANAGER)
}

fn day(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

const DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// A maintenance window in AWS syntax: `ddd:hh:mm-ddd:hh:mm`, wrapping past midnight and Sunday.
#[must_use]
pub fn aws_window(window: &MaintenanceWindow) -> Option<String> {
    let (h, m) = window.start_time.split_once(':')?;
    let start = h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?;
    let day_index = i32::try_from(DAYS.iter().position(|d| *d == window.day)?).ok()?;
    let end_total = day_index * 1440 + start + window.duration_minutes;
    let end_day = usize::try_from((end_total / 1440) % 7).ok()?;
    let end = end_total % 1440;
    Some(format!(
        "{}:{:02}:{:02}-{}:{:02}:{:02}",
        day(window.day),
        start / 60,
        start % 60,
        day(DAYS[end_day]),
        end / 60,
        end % 60
    ))
}

/// Everything in the cloud the cell needs, in a stable order.
#[must_use]
pub fn desired_resources(cell: &str, uid: &str, spec: &GameCellSpec) -> Vec<DesiredResource> {
    let policy = tier_policy(spec.tier);
    let owner_tags = ownership_tags(cell, uid);
    let kms = spec.compliance.as_ref().and_then(|c| c.kms_key_arn.clone());
    let deletion_protection = spec
        .compliance
        .as_ref()
        .is_some_and(|c| c.deletion_protection);
    let window = spec.maintenance_windows.first().and_then(aws_window);
    let mut out = Vec::new();

    if let Some(stores) = &spec.data_stores {
        if let Some(sql) = &stores.sql {
            let engine = match (sql.engine, sql.aurora) {
                (SqlEngine::Postgres, false) => "postgres",
                (SqlEngine::MySQL, false) => "mysql",
                (SqlEngine::Postgres, true) => "aurora-postgresql",
                (SqlEngine::MySQL, true) => "aurora-mysql",
            };
            out.push(DesiredResource {
                kind: ResourceKind::Sql,
                logical_name: "sql".into(),
                identifier: sql
                    .adopt_instance_identifier
                    .clone()
                    .unwrap_or_else(|| naming::sql(cell, uid)),
                tags: owner_tags.clone(),
                adopt: sql.adopt_instance_identifier.is_some(),
                params: ResourceParams::Sql(SqlParams {
                    engine: engine.into(),
                    engine_version: sql.version.clone(),
                    instance_class: sql.instance_class.clone(),
                    storage_gib: sql.storage_gib,
                    multi_az: sql.multi_az.unwrap_or(policy.multi_az_by_default),
                    backup_retention_days: sql.backup_retention_days,
                    kms_key_id: kms.clone(),
                    deletion_protection,
                    aurora: sql.aurora,
                    maintenance_window: window.clone(),
                }),
            });
        }
        if let Some(cache) = &stores.cache {
            out.push(DesiredResource {
                kind: ResourceKind::Cache,
                logical_name: "cache".into(),
                identifier: naming::cache(cell, uid),
                tags: owner_tags.clone(),
                adopt: false,
                params: ResourceParams::Cache(CacheParams {
                    node_type: cache.node_type.clone(),
                    replicas: cache.replicas,
                    engine_version: cache.engine_version.clone(),
                    kms_key_id: kms.clone(),
                    maintenance_window: window.clone(),
                }),
            });
        }
        // Shared cells give every tenant its own copy of each table: isolation by IAM policy on
        // the table ARN is then possible, which a shared table with key prefixes cannot offer.
        let table_owners: Vec<Option<&str>> = if policy.per_tenant_data {
            spec.tenants.iter().map(|t| Some(t.name.as_str())).collect()
        } else {
            vec![None]
        };
        for table in &stores.document_tables {
            for tenant in &table_owners {
                let part = match tenant {
                    Some(t) => format!("{t}-{}", table.name),
                    None => table.name.clone(),
                };
                let mut tags = owner_tags.clone();
                if let Some(t) = tenant {
                    tags.insert(tags::TENANT.into(), (*t).to_owned());
                }
                out.push(DesiredResource {
                    kind: ResourceKind::DocumentTable,
                    logical_name: part.clone(),
                    identifier: naming::table(cell, uid, &part),
                    tags,
                    adopt: false,
                    params: ResourceParams::DocumentTable(TableParams {
                        partition_key: (
                            table.partition_key.name.clone(),
                            format!("{:?}", table.partition_key.attribute_type),
                        ),
                        sort_key: table
                            .sort_key
                            .as_ref()
                            .map(|k| (k.name.clone(), format!("{:?}", k.attribute_type))),
                        provisioned: match table.billing {
                            TableBilling::PayPerRequest => None,
                            TableBilling::Provisioned => Some((
                                table.read_capacity_units.unwrap_or(1),
                                table.write_capacity_units.unwrap_or(1),
                            )),
                        },
                        kms_key_id: kms.clone(),
                        deletion_protection,
                    }),
                });
            }
        }
        // Buckets are shared by a cell's tenants with a per-tenant prefix (`tenants/<name>/`):
        // S3 bucket names are a global, scarce namespace, and prefix-scoped IAM policies isolate.
        for bucket in &stores.buckets {
            let lifecycle = bucket.lifecycle.as_ref();
            out.push(DesiredResource {
                kind: ResourceKind::Bucket,
                logical_name: bucket.name.clone(),
                identifier: naming::bucket(cell, uid, &bucket.name),
                tags: owner_tags.clone(),
                adopt: false,
                params: ResourceParams::Bucket(BucketParams {
                    versioning: bucket.versioning,
                    expire_after_days: lifecycle.and_then(|l| l.expire_after_days),
                    transition_to_ia_after_days: lifecycle
                        .and_then(|l| l.transition_to_infrequent_access_after_days),
                    noncurrent_expiration_days: lifecycle
                        .and_then(|l| l.noncurrent_version_expiration_days),
                    kms_key_id: kms.clone(),
                }),
            });
        }
    }

    if let (Some(nodes), Some(cluster)) = (&spec.nodes, &spec.provider.aws.cluster_name) {
        out.push(DesiredResource {
            kind: ResourceKind::NodeGroup,
            logical_name: "nodes".into(),
            // EKS addresses a node group within its cluster: `<cluster>/<node group>`.
            identifier: format!("{cluster}/{}", naming::node_group(cell, uid)),
            tags: owner_tags,
            adopt: false,
            params: ResourceParams::NodeGroup(NodeGroupParams {
                cluster_name: cluster.clone(),
                instance_types: nodes.instance_types.clone(),
                min_size: nodes.min_size,
                max_size: nodes.max_size,
                desired_size: nodes.desired_size.unwrap_or(nodes.min_size),
                spot: nodes.spot,
                labels: BTreeMap::from([(NODE_LABEL.to_owned(), cell.to_owned())]),
                taint: (NODE_TAINT.to_owned(), cell.to_owned()),
                node_role_arn: nodes.node_role_arn.clone(),
                subnets: nodes.subnet_ids.clone(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b4f6c1e-1111-2222-3333-444455556666";

    fn spec(value: serde_json::Value) -> GameCellSpec {
        serde_json::from_value(value).expect("valid spec")
    }

    fn stores() -> serde_json::Value {
        serde_json::json!({
            "sql": {"engine": "Postgres", "version": "16.4"},
            "cache": {"replicas": 1},
            "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}],
            "buckets": [{"name": "assets"}]
        })
    }

    #[test]
    fn dedicated_cell_gets_one_of_each_and_a_node_group() {
        let s = spec(serde_json::json!({
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1", "clusterName": "games"}},
            "tenants": [{"name": "solo", "namespace": "solo"}],
            "dataStores": stores(),
            "nodes": {"instanceTypes": ["c7g.xlarge"], "minSize": 2, "maxSize": 4,
                      "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes", "subnetIds": ["subnet-0123456789abcdef0"]}
        }));
        let r = desired_resources("starfall", UID, &s);
        let kinds: Vec<_> = r.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                ResourceKind::Sql,
                ResourceKind::Cache,
                ResourceKind::DocumentTable,
                ResourceKind::Bucket,
                ResourceKind::NodeGroup
            ]
        );
        let ResourceParams::Sql(sql) = &r[0].params else {
            panic!("sql params")
        };
        assert!(sql.multi_az, "dedicated defaults to Multi-AZ");
        for d in &r {
            assert!(
                owned_by(&d.tags, UID),
                "{} lacks ownership tags",
                d.identifier
            );
        }
        let ResourceParams::NodeGroup(ng) = &r[4].params else {
            panic!("node group params")
        };
        assert_eq!(ng.desired_size, 2);
        assert!(
            r[4].identifier.starts_with("games/gc-starfall-"),
            "{}",
            r[4].identifier
        );
        assert_eq!(
            ng.labels.get(NODE_LABEL).map(String::as_str),
            Some("starfall")
        );
    }

    #[test]
    fn shared_cell_splits_tables_per_tenant_and_is_single_az() {
        let s = spec(serde_json::json!({
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "a", "namespace": "ns-a"}, {"name": "b", "namespace": "ns-b"}],
            "dataStores": stores()
        }));
        let r = desired_resources("pool", UID, &s);
        let tables: Vec<_> = r
            .iter()
            .filter(|d| d.kind == ResourceKind::DocumentTable)
            .collect();
        assert_eq!(tables.len(), 2);
        assert_eq!(
            tables[0].tags.get(tags::TENANT).map(String::as_str),
            Some("a")
        );
        assert_ne!(tables[0].identifier, tables[1].identifier);
        let ResourceParams::Sql(sql) = &r[0].params else {
            panic!("sql params")
        };
        assert!(!sql.multi_az);
    }

    #[test]
    fn adoption_uses_the_named_identifier_and_compliance_flows_into_params() {
        let s = spec(serde_json::json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/x", "externalId": "e", "clusterName": "acme"}},
            "tenants": [{"name": "acme", "namespace": "acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "deletionProtection": true, "kmsKeyArn": "arn:aws:kms:eu-central-1:123456789012:key/k"},
            "dataStores": {"sql": {"engine": "MySQL", "version": "8.0", "adoptInstanceIdentifier": "legacy-db"}}
        }));
        let r = desired_resources("acme", UID, &s);
        assert_eq!(r[0].identifier, "legacy-db");
        assert!(r[0].adopt);
        let ResourceParams::Sql(sql) = &r[0].params else {
            panic!("sql params")
        };
        assert!(sql.deletion_protection);
        assert_eq!(
            sql.kms_key_id.as_deref(),
            Some("arn:aws:kms:eu-central-1:123456789012:key/k")
        );
    }

    #[test]
    fn resources_are_deterministic() {
        let s = spec(serde_json::json!({
            "tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "a", "namespace": "ns-a"}], "dataStores": stores()
        }));
        assert_eq!(
            desired_resources("c", UID, &s),
            desired_resources("c", UID, &s)
        );
    }

    #[test]
    fn maintenance_windows_wrap_days() {
        let w = |day: Weekday, start: &str, minutes: i32| MaintenanceWindow {
            day,
            start_time: start.into(),
            duration_minutes: minutes,
        };
        assert_eq!(
            aws_window(&w(Weekday::Sun, "03:30", 60)).as_deref(),
            Some("sun:03:30-sun:04:30")
        );
        assert_eq!(
            aws_window(&w(Weekday::Sun, "23:30", 60)).as_deref(),
            Some("sun:23:30-mon:00:30")
        );
        assert_eq!(
            aws_window(&w(Weekday::Tue, "22:00", 180)).as_deref(),
            Some("tue:22:00-wed:01:00")
        );
    }

    #[test]
    fn foreign_tags_are_not_ownership() {
        let mut t = ownership_tags("c", UID);
        assert!(owned_by(&t, UID));
        t.insert(tags::CELL_UID.into(), "someone-else".into());
        assert!(!owned_by(&t, UID));
        assert!(!owned_by(&BTreeMap::new(), UID));
    }
}
