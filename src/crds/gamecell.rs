//! `GameCell`: one isolated unit of a game's backend (cluster-scoped), its tier, its cloud
//! placement, its tenants and its data stores.
//!
//! Bounds and CEL rules here are what the API server enforces before the operator sees an object.
//! Name lengths are chosen so that the cloud identifiers derived from them fit AWS limits (the
//! tightest is an ElastiCache replication group: 40 characters).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest GameCell name: `gc-<cell>-<6 hex>` must fit the 40 characters of an ElastiCache id.
pub const MAX_CELL_NAME_LEN: usize = 30;
/// Longest tenant name: `gc-<cell>-<tenant>` must fit the 63 characters of an RDS database name.
pub const MAX_TENANT_NAME_LEN: usize = 20;

/// Desired state of a GameCell.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gamecell.dev",
    version = "v1alpha1",
    kind = "GameCell",
    plural = "gamecells",
    shortname = "gc",
    category = "gamecell",
    status = "GameCellStatus",
    derive = "PartialEq",
    cel,
    doc = "A GameCell is an isolated unit of a game backend: a tier (Dedicated, Shared or Enterprise), the AWS account and region it runs in, the tenants (games) it hosts and the data stores the operator provisions for them.",
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier", description = "Dedicated, Shared or Enterprise"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.provider.aws.region", description = "AWS region the cell runs in"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the cell is fully provisioned"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the cell is or is not ready", priority = 1),
    printcolumn(name = "Tenants", type_ = "integer", json_path = ".status.tenantCount", description = "Tenants (games) hosted by the cell"),
    printcolumn(name = "DataStores", type_ = "string", json_path = ".status.dataStoresReady", description = "Data stores ready / total"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 30 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name of a GameCell must be at most 30 characters of lowercase letters, digits and '-', starting with a letter: it becomes part of AWS identifiers"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.tier == 'Shared' || size(self.tenants) == 1").message("a Dedicated or Enterprise cell hosts exactly one tenant: list one entry under spec.tenants, or use tier Shared"),
    validation = Rule::new("self.tenants.all(t, self.tenants.exists_one(u, u.__namespace__ == t.__namespace__))").message("every tenant needs its own namespace: two entries of spec.tenants share a namespace"),
    validation = Rule::new("self.tier != 'Enterprise' || (has(self.provider.aws.accountRoleArn) && has(self.provider.aws.externalId) && has(self.provider.aws.clusterName))").message("an Enterprise cell runs in the customer's account: set provider.aws.accountRoleArn, provider.aws.externalId and provider.aws.clusterName"),
    validation = Rule::new("self.tier != 'Enterprise' || has(self.compliance)").message("an Enterprise cell needs a spec.compliance block (at least allowedRegions)"),
    validation = Rule::new("!has(self.compliance) || self.provider.aws.region in self.compliance.allowedRegions").message("provider.aws.region must be one of compliance.allowedRegions (data residency)"),
    validation = Rule::new("!has(self.compliance) || !self.compliance.deletionProtection || self.deletionPolicy != 'Delete'").message("compliance.deletionProtection forbids deletionPolicy Delete: use Snapshot or Retain"),
    validation = Rule::new("!has(self.nodes) || has(self.provider.aws.clusterName)").message("spec.nodes needs provider.aws.clusterName: the cluster the node group joins"),
    validation = Rule::new("!has(self.nodes) || self.tier != 'Shared'").message("spec.nodes is for Dedicated and Enterprise cells: Shared cells run on the shared node pool"),
)]
pub struct GameCellSpec {
    /// How the cell is isolated. Dedicated: one game with its own data stores and nodes.
    /// Shared: many tenants on shared infrastructure, each isolated by namespace, quota, network
    /// policy and credentials. Enterprise: the customer's own AWS account and EKS cluster, under
    /// their compliance rules. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.tier is immutable: create a new cell and migrate to change tier"))]
    pub tier: CellTier,

    /// Where the cell runs.
    pub provider: ProviderSpec,

    /// The games the cell hosts. Dedicated and Enterprise cells have exactly one; Shared cells
    /// one or more, with distinct names and namespaces.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tenants: Vec<TenantSpec>,

    /// Total player capacity the cell is sized for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacitySpec>,

    /// The cloud data stores the operator provisions for the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_stores: Option<DataStoresSpec>,

    /// Compliance rules the operator enforces before creating anything (required for Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceSpec>,

    /// Managed nodes for the cell's workloads (Dedicated and Enterprise only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeGroupSpec>,

    /// Settings applied to every workload (PlayerService, MatchmakingPool) bound to the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<WorkloadPolicySpec>,

    /// Weekly windows in which AWS may apply maintenance to the cell's data stores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub maintenance_windows: Vec<MaintenanceWindow>,

    /// What happens to the cloud data stores when the GameCell is deleted. Retain leaves them in
    /// place; Snapshot takes a final snapshot of the SQL store, then deletes; Delete deletes.
    /// Deleting the operator or its CRDs never deletes a cloud resource.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The isolation model of a cell.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellTier {
    /// One game, its own data stores and nodes.
    Dedicated,
    /// Many tenants on shared infrastructure, isolated per tenant.
    Shared,
    /// Bring your own cloud: the customer's account, cluster and compliance rules.
    Enterprise,
}

/// Where a cell runs. Exactly one provider is set; AWS is the first.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Amazon Web Services placement.
    pub aws: AwsProviderSpec,
}

/// AWS placement of a cell.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.accountRoleArn) == has(oldSelf.accountRoleArn) && (!has(self.accountRoleArn) || self.accountRoleArn == oldSelf.accountRoleArn)").message("provider.aws.accountRoleArn is immutable: the cell's resources live in that account"),
    validation = Rule::new("has(self.clusterName) == has(oldSelf.clusterName) && (!has(self.clusterName) || self.clusterName == oldSelf.clusterName)").message("provider.aws.clusterName is immutable: the cell's workloads run in that cluster"),
)]
pub struct AwsProviderSpec {
    /// AWS region, for example `eu-west-1`. Immutable: moving a cell means creating a new one.
    #[schemars(length(min = 9, max = 25))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$')").message("provider.aws.region must be an AWS region name such as eu-west-1"),
        validation = Rule::new("self == oldSelf").message("provider.aws.region is immutable: create a new cell in the other region and migrate"),
    )]
    pub region: String,

    /// IAM role in the customer's account that the operator assumes (Enterprise cells), for
    /// example `arn:aws:iam::123456789012:role/gamecell-operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')").message("provider.aws.accountRoleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/name"))]
    pub account_role_arn: Option<String>,

    /// External ID the customer's role trust policy requires when it is assumed. Not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@:/_-]+$')").message("provider.aws.externalId may contain letters, digits and +=,.@:/_- only"))]
    pub external_id: Option<String>,

    /// Name of the EKS cluster the cell's workloads run in (the customer's, for Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9A-Za-z][A-Za-z0-9_-]*$')").message("provider.aws.clusterName must be an EKS cluster name: letters, digits, '-' and '_', starting with a letter or digit"))]
    pub cluster_name: Option<String>,
}

/// One game hosted by a cell.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Tenant name, unique in the cell; part of the tenant's database, credentials and key prefix.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("tenants[].name must be at most 20 lowercase letters, digits and '-', starting with a letter"))]
    pub name: String,

    /// Namespace the tenant's workloads run in. The operator creates it and owns its quota,
    /// limits and network policy.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("tenants[].namespace must be a DNS label: lowercase letters, digits and '-'"),
        validation = Rule::new("!(self in ['default', 'kube-system', 'kube-public', 'kube-node-lease']) && !self.startsWith('kube-')").message("tenants[].namespace must not be a system namespace (default, kube-*)"),
    )]
    pub namespace: String,

    /// Resources the tenant may use in its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<TenantQuota>,
}

/// Resource limits of one tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuota {
    /// Total CPU the tenant's pods may request, as a quantity string such as `"8"` or `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("quota.cpu must be a positive quantity such as 8 or 500m"))]
    pub cpu: Option<String>,
    /// Total memory the tenant's pods may request, as a quantity string such as `"16Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("quota.memory must be a positive quantity such as 16Gi"))]
    pub memory: Option<String>,
    /// Most pods the tenant may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub pods: Option<i32>,
    /// Most players the tenant's services may hold at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_concurrent_players: Option<i64>,
}

/// The size a cell is planned for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySpec {
    /// Most players the whole cell may hold at once. The operator warns when the services bound
    /// to the cell could hold more.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_concurrent_players: i64,
}

/// The data stores of a cell. Each is optional; on Shared cells each is split per tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataStoresSpec {
    /// A relational database (Amazon RDS or Aurora).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlStoreSpec>,
    /// A Redis cache (Amazon ElastiCache replication group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStoreSpec>,
    /// Key-value / document tables (Amazon DynamoDB).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub document_tables: Vec<DocumentTableSpec>,
    /// Object storage buckets (Amazon S3), always encrypted and never public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub buckets: Vec<BucketSpec>,
}

/// A relational database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqlStoreSpec {
    /// Database engine. Immutable: changing engines means a migration, not an update.
    #[x_kube(validation = Rule::new("self == oldSelf").message("dataStores.sql.engine is immutable: migrate to a new cell to change engines"))]
    pub engine: SqlEngine,
    /// Engine version, for example `16.4` (PostgreSQL) or `8.0.39` (MySQL).
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+){0,2}$')").message("dataStores.sql.version must look like 16 or 16.4 or 8.0.39"))]
    pub version: String,
    /// Use an Aurora cluster instead of a single RDS instance. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("dataStores.sql.aurora is immutable"))]
    pub aurora: bool,
    /// Instance class, for example `db.r6g.large`.
    #[serde(default = "default_instance_class")]
    #[schemars(length(min = 6, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^db\\\\.[a-z0-9-]+\\\\.[a-z0-9]+$')").message("dataStores.sql.instanceClass must be an RDS instance class such as db.r6g.large"))]
    pub instance_class: String,
    /// Allocated storage in GiB (ignored by Aurora, which grows on its own).
    #[serde(default = "default_storage_gib")]
    #[schemars(range(min = 20, max = 65536))]
    pub storage_gib: i32,
    /// Run a standby in a second availability zone. Unset means the tier's default: on for
    /// Dedicated and Enterprise, off for Shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    /// Days of automated backups to keep (0 turns them off; compliance may require more).
    #[serde(default = "default_backup_retention")]
    #[schemars(range(min = 0, max = 35))]
    pub backup_retention_days: i32,
    /// Identifier of an existing RDS instance (or Aurora cluster) to adopt instead of creating
    /// one. Only a store named here is ever adopted. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z](-?[a-zA-Z0-9])*$')").message("dataStores.sql.adoptInstanceIdentifier must be an RDS identifier: a letter, then letters, digits and single hyphens"))]
    pub adopt_instance_identifier: Option<String>,
}

fn default_instance_class() -> String {
    "db.t4g.medium".to_owned()
}
fn default_storage_gib() -> i32 {
    20
}
fn default_backup_retention() -> i32 {
    7
}

/// Relational engines.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlEngine {
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    MySQL,
}

/// A Redis cache.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CacheStoreSpec {
    /// Node type, for example `cache.r7g.large`.
    #[serde(default = "default_node_type")]
    #[schemars(length(min = 8, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^cache\\\\.[a-z0-9-]+\\\\.[a-z0-9]+$')").message("dataStores.cache.nodeType must be an ElastiCache node type such as cache.r7g.large"))]
    pub node_type: String,
    /// Read replicas beside the primary (0 to 5). With one or more, failover is automatic.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas: i32,
    /// Redis engine version, for example `7.1`. Unset means the AWS default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10))]
    pub engine_version: Option<String>,
}

fn default_node_type() -> String {
    "cache.t4g.small".to_owned()
}
fn default_replicas() -> i32 {
    1
}

/// A DynamoDB table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.billing != 'Provisioned' || (has(self.readCapacityUnits) && has(self.writeCapacityUnits))").message("a Provisioned table needs readCapacityUnits and writeCapacityUnits"),
    validation = Rule::new("self.billing == 'Provisioned' || (!has(self.readCapacityUnits) && !has(self.writeCapacityUnits))").message("readCapacityUnits and writeCapacityUnits apply only to billing Provisioned"),
    validation = Rule::new("!has(self.sortKey) || self.sortKey.name != self.partitionKey.name").message("sortKey.name must differ from partitionKey.name"),
)]
pub struct DocumentTableSpec {
    /// Logical table name, unique in the cell; the real table name is derived from the cell.
    #[schemars(length(min = 1, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9-]*$')").message("documentTables[].name must be lowercase letters, digits and '-', starting with a letter"))]
    pub name: String,
    /// The partition (hash) key.
    pub partition_key: KeyAttribute,
    /// The sort (range) key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,
    /// Billing mode.
    #[serde(default)]
    pub billing: TableBilling,
    /// Read capacity units (billing Provisioned only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 40000))]
    pub read_capacity_units: Option<i64>,
    /// Write capacity units (billing Provisioned only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 40000))]
    pub write_capacity_units: Option<i64>,
}

/// A key attribute of a DynamoDB table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyAttribute {
    /// Attribute name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Attribute type: S (string), N (number) or B (binary).
    #[serde(rename = "type")]
    pub attribute_type: KeyAttributeType,
}

/// DynamoDB key attribute types.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAttributeType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

/// DynamoDB billing modes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TableBilling {
    /// Pay per request: no capacity planning.
    #[default]
    PayPerRequest,
    /// Provisioned read and write capacity units.
    Provisioned,
}

/// An S3 bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Logical bucket name, unique in the cell; the real (global) bucket name is derived from it.
    #[schemars(length(min = 3, max = 20))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9-]*[a-z0-9]$')").message("buckets[].name must be 3-20 lowercase letters, digits and '-'"))]
    pub name: String,
    /// Keep every version of every object.
    #[serde(default)]
    pub versioning: bool,
    /// Lifecycle rules applied to the whole bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<BucketLifecycle>,
}

/// Lifecycle of the objects in a bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.expireAfterDays) || !has(self.transitionToInfrequentAccessAfterDays) || self.transitionToInfrequentAccessAfterDays < self.expireAfterDays").message("lifecycle.transitionToInfrequentAccessAfterDays must be less than lifecycle.expireAfterDays"))]
pub struct BucketLifecycle {
    /// Delete objects this many days after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub expire_after_days: Option<i32>,
    /// Move objects to Standard-IA this many days after creation (30 at least, as S3 requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30, max = 36500))]
    pub transition_to_infrequent_access_after_days: Option<i32>,
    /// Delete non-current versions this many days after they are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub noncurrent_version_expiration_days: Option<i32>,
}

/// Compliance rules of a cell, enforced before anything is created.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSpec {
    /// Regions the cell and its data may live in (data residency).
    #[schemars(length(min = 1, max = 32), inner(length(min = 9, max = 25)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(r, r.matches('^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$'))").message("compliance.allowedRegions entries must be AWS region names such as eu-west-1"),
    )]
    pub allowed_regions: Vec<String>,
    /// KMS key that encrypts every data store of the cell (the customer's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$')").message("compliance.kmsKeyArn must be a KMS key or alias ARN"))]
    pub kms_key_arn: Option<String>,
    /// Fewest days of SQL backups the customer accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 35))]
    pub min_backup_retention_days: Option<i32>,
    /// Data stores must have deletion protection on, and the cell may not use deletionPolicy Delete.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Workloads may pull images only from these registries (prefixes such as
    /// `123456789012.dkr.ecr.eu-west-1.amazonaws.com/`). Empty allows any registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 255)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_registries: Vec<String>,
}

/// A managed node group for the cell's workloads.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minSize <= self.maxSize").message("nodes.minSize must not exceed nodes.maxSize"),
    validation = Rule::new("!has(self.desiredSize) || (self.minSize <= self.desiredSize && self.desiredSize <= self.maxSize)").message("nodes.desiredSize must lie between nodes.minSize and nodes.maxSize"),
)]
pub struct NodeGroupSpec {
    /// EC2 instance types, in order of preference, for example `c7g.2xlarge`.
    #[schemars(length(min = 1, max = 10), inner(length(min = 3, max = 32)))]
    #[x_kube(validation = Rule::new("self.all(t, t.matches('^[a-z0-9-]+\\\\.[a-z0-9]+$'))").message("nodes.instanceTypes entries must be EC2 instance types such as c7g.2xlarge"))]
    pub instance_types: Vec<String>,
    /// Fewest nodes.
    #[schemars(range(min = 0, max = 1000))]
    pub min_size: i32,
    /// Most nodes.
    #[schemars(range(min = 1, max = 1000))]
    pub max_size: i32,
    /// Nodes to start with; unset means minSize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub desired_size: Option<i32>,
    /// Use Spot capacity (cheaper, may be reclaimed).
    #[serde(default)]
    pub spot: bool,
    /// IAM role the nodes run as.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')").message("nodes.nodeRoleArn must be an IAM role ARN"))]
    pub node_role_arn: String,
    /// Subnets the nodes are placed in (private subnets of the cluster's VPC).
    #[schemars(length(min = 1, max = 16), inner(length(min = 8, max = 32)))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^subnet-[0-9a-f]{8,17}$'))").message("nodes.subnetIds entries must be subnet IDs such as subnet-0123456789abcdef0"))]
    pub subnet_ids: Vec<String>,
}

/// Settings for every workload bound to the cell.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPolicySpec {
    /// IAM role the cell's workloads assume (IRSA / EKS Pod Identity); set on their
    /// ServiceAccounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')").message("workloads.roleArn must be an IAM role ARN"))]
    pub role_arn: Option<String>,
}

/// A weekly maintenance window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Day of the week the window starts (UTC).
    pub day: Weekday,
    /// Start time, `HH:MM` in UTC.
    #[schemars(length(min = 5, max = 5))]
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("maintenanceWindows[].startTime must be HH:MM in UTC, for example 03:30"))]
    pub start_time: String,
    /// Length of the window in minutes (AWS requires at least 30).
    #[schemars(range(min = 30, max = 1440))]
    pub duration_minutes: i32,
}

/// Days of the week.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// What deleting a GameCell does to its cloud data stores.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Leave every data store in place.
    Retain,
    /// Take a final snapshot of the SQL store, then delete the data stores.
    #[default]
    Snapshot,
    /// Delete the data stores.
    Delete,
}

/// Observed state of a GameCell.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GameCellStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled, DataStoresReady, PolicyCompliant, ClusterVerified,
    /// ServicesReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Number of tenants the cell hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_count: Option<i32>,
    /// Data stores ready out of the total, for example `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_stores_ready: Option<String>,
    /// Each data store as AWS reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_stores: Vec<DataStoreStatus>,
    /// Services bound to the cell that are ready, out of the total, for example `4/5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_ready: Option<String>,
}

/// One data store as observed in the cloud. Never carries a credential.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataStoreStatus {
    /// Sql, Cache, DocumentTable or Bucket.
    pub kind: String,
    /// Logical name in the spec (`sql`, `cache`, or the table or bucket name).
    pub name: String,
    /// Cloud identifier of the resource.
    pub identifier: String,
    /// State as the cloud reports it, for example `available` or `creating`.
    pub state: String,
    /// Network endpoint, when the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Whether the store is usable.
    pub ready: bool,
}
