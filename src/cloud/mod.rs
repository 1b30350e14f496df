//! The narrow interface between the controllers and a cloud: "describe, create or delete this
//! resource, and tell me what you see". AWS implements it (`aws`), an in-memory fake implements
//! it for reconciler tests (`fake`), and another cloud would be a third implementation.
//!
//! Every resource is addressed by a deterministic identifier (`naming`) and carries ownership
//! tags; nothing here decides *what* a cell needs (that is `policy`) or touches Kubernetes.

pub mod aws;
pub mod fake;
pub mod metered;
pub mod naming;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

/// Tag keys that mark a cloud resource as a cell's.
pub mod tags {
    /// The GameCell's name.
    pub const CELL: &str = "gamecell.dev/cell";
    /// The GameCell's UID: the key that proves ownership (names can be reused, UIDs cannot).
    pub const CELL_UID: &str = "gamecell.dev/cell-uid";
    /// Always `gamecell-operator`.
    pub const MANAGED_BY: &str = "gamecell.dev/managed-by";
    /// The value of [`MANAGED_BY`].
    pub const MANAGER: &str = "gamecell-operator";
    /// The tenant a per-tenant resource belongs to.
    pub const TENANT: &str = "gamecell.dev/tenant";
}

/// Where a call acts: a region, and for bring-your-own-cloud cells the customer's role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// AWS region.
    pub region: String,
    /// Role to assume in the customer's account; `None` acts with the operator's own identity.
    pub assume_role: Option<AssumeRole>,
}

/// An IAM role to assume through STS.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    /// Role ARN in the customer's account.
    pub role_arn: String,
    /// External ID the role's trust policy requires.
    pub external_id: String,
}

impl fmt::Debug for AssumeRole {
    // The external ID is not a secret by AWS's definition, but it is the customer's: keep it
    // out of logs all the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

/// The kinds of cloud resource a cell owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// A relational database instance (or Aurora cluster).
    Sql,
    /// A Redis replication group.
    Cache,
    /// A key-value / document table.
    DocumentTable,
    /// An object storage bucket.
    Bucket,
    /// A managed node group in the cell's cluster.
    NodeGroup,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Sql,
        Self::Cache,
        Self::DocumentTable,
        Self::Bucket,
        Self::NodeGroup,
    ];

    /// The kind named `name` in status ([`Self::as_str`]).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Name used in status and Events.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sql => "Sql",
            Self::Cache => "Cache",
            Self::DocumentTable => "DocumentTable",
            Self::Bucket => "Bucket",
            Self::NodeGroup => "NodeGroup",
        }
    }
}

/// A resource as the cell wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredResource {
    /// What it is.
    pub kind: ResourceKind,
    /// Its name in the spec (`sql`, `cache`, a table or bucket name, `nodes`).
    pub logical_name: String,
    /// Its deterministic cloud identifier.
    pub identifier: String,
    /// Ownership tags (cell, cell UID, managed-by) and any others.
    pub tags: BTreeMap<String, String>,
    /// Whether the spec named an existing resource to adopt (no ownership tags required).
    pub adopt: bool,
    /// Kind-specific settings.
    pub params: ResourceParams,
}

/// Kind-specific settings of a desired resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceParams {
    /// An RDS instance or Aurora cluster.
    Sql(SqlParams),
    /// An ElastiCache Redis replication group.
    Cache(CacheParams),
    /// A DynamoDB table.
    DocumentTable(TableParams),
    /// An S3 bucket.
    Bucket(BucketParams),
    /// An EKS managed node group.
    NodeGroup(NodeGroupParams),
}

/// Settings of a relational database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlParams {
    /// `postgres` or `mysql` (the RDS engine name; `aurora-postgresql` / `aurora-mysql` with aurora).
    pub engine: String,
    /// Engine version.
    pub engine_version: String,
    /// Instance class.
    pub instance_class: String,
    /// Allocated storage in GiB.
    pub storage_gib: i32,
    /// Standby in a second availability zone.
    pub multi_az: bool,
    /// Days of automated backups.
    pub backup_retention_days: i32,
    /// Customer-managed KMS key; `None` uses the AWS-managed key (encryption is always on).
    pub kms_key_id: Option<String>,
    /// Deletion protection on the instance.
    pub deletion_protection: bool,
    /// Aurora cluster instead of a single instance.
    pub aurora: bool,
    /// Preferred maintenance window in AWS syntax (`sun:03:30-sun:04:30`).
    pub maintenance_window: Option<String>,
}

/// Settings of a Redis cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheParams {
    /// Node type.
    pub node_type: String,
    /// Read replicas beside the primary.
    pub replicas: i32,
    /// Engine version, `None` for the default.
    pub engine_version: Option<String>,
    /// Customer-managed KMS key.
    pub kms_key_id: Option<String>,
    /// Preferred maintenance window in AWS syntax.
    pub maintenance_window: Option<String>,
}

/// Settings of a key-value table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableParams {
    /// Partition key name and type (`S`, `N`, `B`).
    pub partition_key: (String, String),
    /// Sort key name and type, if any.
    pub sort_key: Option<(String, String)>,
    /// Provisioned read/write capacity; `None` is pay-per-request.
    pub provisioned: Option<(i64, i64)>,
    /// Customer-managed KMS key.
    pub kms_key_id: Option<String>,
    /// Deletion protection on the table.
    pub deletion_protection: bool,
}

/// Settings of a bucket. Public access is always blocked and encryption always on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketParams {
    /// Keep object versions.
    pub versioning: bool,
    /// Expire objects after this many days.
    pub expire_after_days: Option<i32>,
    /// Move objects to infrequent access after this many days.
    pub transition_to_ia_after_days: Option<i32>,
    /// Expire non-current versions after this many days.
    pub noncurrent_expiration_days: Option<i32>,
    /// Customer-managed KMS key; `None` uses S3-managed keys.
    pub kms_key_id: Option<String>,
}

/// Settings of a managed node group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroupParams {
    /// The EKS cluster the node group joins.
    pub cluster_name: String,
    /// Instance types in order of preference.
    pub instance_types: Vec<String>,
    /// Fewest, most and initial nodes.
    pub min_size: i32,
    /// Most nodes.
    pub max_size: i32,
    /// Initial nodes.
    pub desired_size: i32,
    /// Spot capacity.
    pub spot: bool,
    /// Labels the cell's workloads select.
    pub labels: BTreeMap<String, String>,
    /// Taint key=value:NoSchedule that keeps other workloads off.
    pub taint: (String, String),
    /// IAM role of the nodes.
    pub node_role_arn: String,
    /// Subnets of the nodes.
    pub subnets: Vec<String>,
}

/// The state of a resource that an interrupted create left without all its parts (an Aurora
/// cluster whose instances were never requested, because the operator crashed or the instance
/// call failed). It is the cell's, so `create` finishes it; it is never deleted to start over,
/// since by then it may hold data.
pub const STATE_INCOMPLETE: &str = "incomplete";

/// A resource as the cloud reports it. Never carries a credential: at most the ARN of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedResource {
    /// Cloud identifier.
    pub identifier: String,
    /// State as reported (`available`, `creating`, `ACTIVE`, ...).
    pub state: String,
    /// Whether it is usable.
    pub ready: bool,
    /// Endpoint host, if any.
    pub endpoint: Option<String>,
    /// Endpoint port, if any.
    pub port: Option<i32>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// ARN of the secret holding its managed credentials (RDS-managed master password).
    pub secret_arn: Option<String>,
    /// Encrypted at rest.
    pub encrypted: bool,
    /// Reachable from the internet.
    pub publicly_accessible: bool,
}

/// An EKS cluster as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedCluster {
    /// Cluster name.
    pub name: String,
    /// `ACTIVE`, `CREATING`, ...
    pub status: String,
    /// Kubernetes version, e.g. `1.31`.
    pub version: String,
    /// Region (from its ARN).
    pub region: String,
}

/// What a delete call achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteProgress {
    /// The cloud confirms the resource is gone.
    Gone,
    /// Deletion is under way; ask again later.
    InProgress,
}

/// Cloud failures, classified by what the controller should do about them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The cloud asked us to slow down: back off and retry.
    #[error("throttled by {service}: {message}")]
    Throttled {
        /// Service that throttled.
        service: &'static str,
        /// Its message.
        message: String,
    },
    /// A 5xx, a timeout or a network failure: back off and retry.
    #[error("{service} unavailable: {message}")]
    Unavailable {
        /// Service that failed.
        service: &'static str,
        /// What happened.
        message: String,
    },
    /// Our credentials may not do this: wait for a change to the spec or the credentials.
    #[error("access denied by {service}: {message}")]
    AccessDenied {
        /// Service that refused.
        service: &'static str,
        /// Its message.
        message: String,
    },
    /// The request itself is wrong (a parameter AWS refuses): wait for a change to the spec.
    #[error("{service} refused the request: {message}")]
    InvalidRequest {
        /// Service that refused.
        service: &'static str,
        /// Its message.
        message: String,
    },
    /// The resource is in a state that does not allow the call yet (e.g. still creating).
    #[error("{service}: resource busy: {message}")]
    Busy {
        /// Service.
        service: &'static str,
        /// Its message.
        message: String,
    },
}

impl CloudError {
    /// Permanent errors wait for a change instead of retrying.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::AccessDenied { .. } | Self::InvalidRequest { .. }
        )
    }

    /// A bounded PascalCase reason for conditions, Events and metrics.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "CloudThrottled",
            Self::Unavailable { .. } => "CloudUnavailable",
            Self::AccessDenied { .. } => "CloudAccessDenied",
            Self::InvalidRequest { .. } => "CloudInvalidRequest",
            Self::Busy { .. } => "CloudResourceBusy",
        }
    }
}

/// A cloud the operator can provision cell resources in.
#[async_trait]
pub trait CloudProvider: Send + Sync + 'static {
    /// The resource with this identifier, or `None` if it does not exist.
    async fn describe(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
    ) -> Result<Option<ObservedResource>, CloudError>;

    /// Starts creating the resource and returns what the cloud reports right after. Creating a
    /// resource that already exists is an error of the caller: always `describe` first. The one
    /// exception is a resource reported [`STATE_INCOMPLETE`]: `create` then requests only its
    /// missing parts. `create` never deletes anything, not even to undo a half-done create.
    async fn create(
        &self,
        scope: &Scope,
        desired: &DesiredResource,
    ) -> Result<ObservedResource, CloudError>;

    /// Starts deleting the resource (taking a final snapshot named `final_snapshot` first for
    /// SQL stores), or reports that it is gone. Deleting a missing resource is `Gone`.
    async fn delete(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<DeleteProgress, CloudError>;

    /// The SQL bootstrap of shared cells (each tenant's database and login on the cell's SQL
    /// store) in this cloud.
    fn tenant_databases(&self) -> std::sync::Arc<dyn crate::sqlstore::TenantDatabases>;

    /// The EKS cluster with this name, or `None`.
    async fn describe_cluster(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<ObservedCluster>, CloudError>;
}
