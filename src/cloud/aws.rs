//! AWS implementation of [`CloudProvider`]: RDS (instances and Aurora clusters), ElastiCache
//! Redis replication groups, DynamoDB tables, S3 buckets and EKS managed node groups.
//!
//! Credentials come from the default chain (IRSA / EKS Pod Identity in production); a [`Scope`]
//! with a role assumes it through STS. `AWS_ENDPOINT_URL` (read natively by the SDK) points every
//! client at an emulator, in which case S3 uses path-style addressing.
//!
//! Every SDK failure goes through [`classify`], which turns an error code and HTTP status into
//! "the resource is not there" or a [`CloudError`] the controllers know how to handle. Messages
//! carry the operation, the identifier, the AWS error code and AWS's message, never a request
//! body.
//!
//! Decisions worth knowing:
//! - **Node groups** are addressed as `<cluster>/<nodegroup>` (EKS needs the cluster to find a
//!   node group, and `describe`/`delete` only get the identifier). `create` takes the cluster
//!   from [`NodeGroupParams::cluster_name`] and the node group name from the part after `/`.
//! - **Aurora** (`SqlParams::aurora`) is a DB cluster plus a writer instance `<id>-1` (and a
//!   reader `<id>-2` with `multi_az`). `describe`/`delete` of a Sql identifier look for an
//!   instance first, then a cluster. If an instance cannot be created the new cluster is removed
//!   again (best effort), so a half-built store is never left behind looking finished.
//! - **Buckets** are configured in several calls; if one fails after `CreateBucket`, the new
//!   (empty) bucket is deleted again before the error is returned. `create` refuses a bucket
//!   that already exists instead of overwriting its tags and settings.
//! - **Deletion protection** (RDS, DynamoDB) is switched off right before the delete: `delete`
//!   is only called once the user's `deletionPolicy` has decided the store goes.
//! - `final_snapshot` is honoured for Sql (final DB snapshot), Cache (final ElastiCache snapshot)
//!   and DocumentTable (an on-demand backup of that name taken before the table is deleted); a
//!   bucket or node group has nothing to snapshot.
//! - A create that hits "already exists" is [`CloudError::Busy`]: the resource is there, and the
//!   next reconcile's describe will find it.
//! - `delete` describes first and does not repeat a delete already under way.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::Mutex;

use crate::sqlstore::TenantDatabases;
use crate::sqlstore::admin::SqlAdmin;

use super::{
    BucketParams, CacheParams, CloudError, CloudProvider, DeleteProgress, DesiredResource,
    NodeGroupParams, ObservedCluster, ObservedResource, ResourceKind, ResourceParams,
    STATE_INCOMPLETE, Scope, SqlParams, TableParams,
};

/// STS session name of assumed roles (shows in the customer's CloudTrail).
const SESSION_NAME: &str = "gamecell-operator";
/// Master user of SQL stores; its password is generated and kept in Secrets Manager by RDS.
const MASTER_USERNAME: &str = "gamecell";
/// Objects (and versions) removed per `delete` call of a bucket before reporting progress.
const BUCKET_DELETE_BATCHES: usize = 10;

const RDS: &str = "rds";
const ELASTICACHE: &str = "elasticache";
const DYNAMODB: &str = "dynamodb";
const S3: &str = "s3";
const EKS: &str = "eks";
const STS: &str = "sts";

/// The SDK clients of one scope (region and identity).
#[derive(Clone, Debug)]
struct Clients {
    rds: aws_sdk_rds::Client,
    elasticache: aws_sdk_elasticache::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    eks: aws_sdk_eks::Client,
}

/// The AWS cloud.
pub struct AwsCloud {
    base: SdkConfig,
    s3_path_style: bool,
    clients: Mutex<HashMap<Scope, Clients>>,
    tenant_sql: Arc<SqlAdmin>,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud")
            .field("endpoint_url", &self.base.endpoint_url())
            .field("s3_path_style", &self.s3_path_style)
            .finish_non_exhaustive()
    }
}

impl AwsCloud {
    /// Loads the SDK configuration the usual way: region, credentials (IRSA, Pod Identity,
    /// environment, profile) and `AWS_ENDPOINT_URL`, with bounded timeouts.
    pub async fn from_env() -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(120))
            .build();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await;
        Self::from_config(config)
    }

    /// A cloud acting with an explicit SDK configuration (tests point it at a local server).
    #[must_use]
    pub fn from_config(config: SdkConfig) -> Self {
        let s3_path_style = config.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        Self {
            tenant_sql: Arc::new(SqlAdmin::new(config.clone())),
            base: config,
            s3_path_style,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The SQL bootstrap of shared cells' tenants on this cloud.
    #[must_use]
    pub fn sql_admin(&self) -> &Arc<SqlAdmin> {
        &self.tenant_sql
    }

    async fn clients(&self, scope: &Scope) -> Clients {
        let mut cache = self.clients.lock().await;
        if let Some(clients) = cache.get(scope) {
            return clients.clone();
        }
        let config = scoped_config(&self.base, scope).await;
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(self.s3_path_style)
            .build();
        let clients = Clients {
            rds: aws_sdk_rds::Client::new(&config),
            elasticache: aws_sdk_elasticache::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            eks: aws_sdk_eks::Client::new(&config),
        };
        cache.insert(scope.clone(), clients.clone());
        clients
    }
}

/// The SDK configuration of one scope: its region, and the customer's assumed role if any.
pub async fn scoped_config(base: &SdkConfig, scope: &Scope) -> SdkConfig {
    let region = Region::new(scope.region.clone());
    let mut builder = base.to_builder();
    builder.set_region(Some(region.clone()));
    if let Some(role) = &scope.assume_role {
        // Credentials are fetched lazily on the first call and cached until they expire.
        let provider = AssumeRoleProvider::builder(role.role_arn.clone())
            .external_id(role.external_id.clone())
            .session_name(SESSION_NAME)
            .region(region)
            .configure(base)
            .build()
            .await;
        builder.set_credentials_provider(Some(
            aws_sdk_sts::config::SharedCredentialsProvider::new(provider),
        ));
    }
    builder.build()
}

// ---------------------------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------------------------

/// What a failed AWS call means to the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    /// The addressed resource does not exist: `None` in describe, `Gone` in delete.
    NotFound {
        /// Service that said so.
        service: &'static str,
        /// Its message.
        message: String,
    },
    /// A failure for the controller to handle.
    Error(CloudError),
}

impl Classified {
    /// The failure as an error, for calls where "not found" is itself a failure (a create that
    /// names a missing cluster, say): a request to change, hence [`CloudError::InvalidRequest`].
    #[must_use]
    pub fn into_error(self) -> CloudError {
        match self {
            Self::NotFound { service, message } => CloudError::InvalidRequest { service, message },
            Self::Error(error) => error,
        }
    }
}

/// Codes (normalised, see [`normalize_code`]) meaning the addressed resource does not exist.
const NOT_FOUND_CODES: &[&str] = &[
    "DBInstanceNotFound",
    "DBClusterNotFound",
    "ReplicationGroupNotFound",
    "CacheClusterNotFound",
    "ResourceNotFound",
    "NoSuchBucket",
    "NotFound",
];

const THROTTLED_CODES: &[&str] = &[
    "Throttling",
    "Throttled",
    "RequestLimitExceeded",
    "TooManyRequests",
    "ProvisionedThroughputExceeded",
    "SlowDown",
    "RequestThrottled",
    "LimitExceeded",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "EC2Throttled",
];

const UNAVAILABLE_CODES: &[&str] = &[
    "ServiceUnavailable",
    "Unavailable",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServer",
    "InternalService",
    "Server",
    "Service",
    "RequestTimeout",
    "InsufficientDBInstanceCapacity",
    "InsufficientDBClusterCapacity",
    "InsufficientCacheClusterCapacity",
    "IDPCommunicationError",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "UnauthorizedOperation",
    "Unauthorized",
    "UnrecognizedClient",
    "InvalidClientTokenId",
    "ExpiredToken",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "NotAuthorized",
    "KMSKeyNotAccessible",
    "RegionDisabled",
    "AccountProblem",
    "AllAccessDisabled",
    "OptInRequired",
];

const BUSY_CODES: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBClusterState",
    "InvalidReplicationGroupState",
    "InvalidCacheClusterState",
    "ResourceInUse",
    "OperationAborted",
    "Conflict",
    "ConcurrentModification",
    "BucketNotEmpty",
];

const INVALID_CODES: &[&str] = &[
    "Validation",
    "ValidationError",
    "MissingParameter",
    "MalformedXML",
    "MalformedPolicy",
    "BucketAlreadyExists",
    "TooManyBuckets",
    "ResourceLimitExceeded",
    "StorageTypeNotSupported",
    "UnsupportedAvailabilityZone",
    "UnsupportedOperation",
    "DBSubnetGroupNotFound",
    "CacheSubnetGroupNotFound",
    "DBParameterGroupNotFound",
    "CacheParameterGroupNotFound",
];

/// The bare error name: without a `namespace#` prefix, a `:detail` suffix, or the `Fault` /
/// `Exception` suffixes that differ between services and SDK models.
fn normalize_code(code: &str) -> &str {
    let code = code.rsplit('#').next().unwrap_or(code);
    let code = code.split(':').next().unwrap_or(code).trim();
    let code = code.strip_suffix("Fault").unwrap_or(code);
    code.strip_suffix("Exception").unwrap_or(code)
}

/// Classifies a failed call from its AWS error code and HTTP status.
///
/// Known codes decide first; an unknown code falls back on the status (5xx unavailable, 429
/// throttled, 401/403 denied, 409 busy, other 3xx/4xx a request to change). "Not found" comes
/// only from a known code, never from a bare 404: treating an unexpected 404 (a wrong endpoint,
/// say) as "gone" would let a delete finish while the resource lives on.
#[must_use]
pub fn classify(
    service: &'static str,
    code: Option<&str>,
    status: Option<u16>,
    message: String,
) -> Classified {
    use CloudError::{AccessDenied, Busy, InvalidRequest, Throttled, Unavailable};
    let err = Classified::Error;
    if let Some(code) = code.map(normalize_code).filter(|c| !c.is_empty()) {
        if NOT_FOUND_CODES.contains(&code) {
            return Classified::NotFound { service, message };
        }
        if THROTTLED_CODES.contains(&code) {
            return err(Throttled { service, message });
        }
        if UNAVAILABLE_CODES.contains(&code) {
            return err(Unavailable { service, message });
        }
        if ACCESS_DENIED_CODES.contains(&code) {
            return err(AccessDenied { service, message });
        }
        if BUSY_CODES.contains(&code) {
            return err(Busy { service, message });
        }
        if INVALID_CODES.contains(&code) {
            return err(InvalidRequest { service, message });
        }
        // Quotas stay exceeded until the spec (or the account's quota) changes.
        if code.contains("Quota") {
            return err(InvalidRequest { service, message });
        }
        if code.ends_with("AlreadyExists") || code == "BucketAlreadyOwnedByYou" {
            // A snapshot or backup name that is taken stays taken; the store itself existing
            // means the next describe will find it.
            return if code.contains("Snapshot") || code.contains("Backup") {
                err(InvalidRequest { service, message })
            } else {
                err(Busy { service, message })
            };
        }
        if code.starts_with("Invalid") {
            return err(InvalidRequest { service, message });
        }
    }
    match status {
        Some(429) => err(Throttled { service, message }),
        Some(401 | 403) => err(AccessDenied { service, message }),
        Some(409) => err(Busy { service, message }),
        Some(s) if (300..500).contains(&s) => err(InvalidRequest { service, message }),
        _ => err(Unavailable { service, message }),
    }
}

/// `error: cause: cause ...`, from the error's own source chain (no request or response bodies).
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

type AssumeRoleSdkError =
    aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>;

/// The STS AssumeRole failure behind a credentials failure, if that is what this is.
fn assume_role_failure<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a AssumeRoleSdkError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(sts) = e.downcast_ref::<AssumeRoleSdkError>() {
            return Some(sts);
        }
        current = e.source();
    }
    None
}

/// One AWS call, for logs and error messages.
#[derive(Clone, Copy, Debug)]
struct Call<'a> {
    service: &'static str,
    operation: &'static str,
    identifier: &'a str,
}

fn call<'a>(service: &'static str, operation: &'static str, identifier: &'a str) -> Call<'a> {
    Call {
        service,
        operation,
        identifier,
    }
}

/// Classifies an SDK error of `call`.
fn sdk_failure<E>(call: Call<'_>, error: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let Call {
        service,
        operation,
        identifier,
    } = call;
    match error {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let code = error.code();
            let detail = match (code, error.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(msg)) => msg.to_owned(),
                (None, None) => match status {
                    Some(status) => format!("HTTP {status}: {}", error_chain(error)),
                    None => error_chain(error),
                },
            };
            classify(
                service,
                code,
                status,
                format!("{operation} {identifier}: {detail}"),
            )
        }
        SdkError::TimeoutError(_) => Classified::Error(CloudError::Unavailable {
            service,
            message: format!("{operation} {identifier}: timed out"),
        }),
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            // A credentials failure surfaces here; an assumed role refused by STS is as final as
            // an access denied by the service itself.
            if let Some(sts) = assume_role_failure(error) {
                return match sts_failure(sts) {
                    Classified::Error(e) => Classified::Error(prefix(e, operation, identifier)),
                    not_found => not_found,
                };
            }
            let message = format!("{operation} {identifier}: {}", error_chain(error));
            let user_error = match error {
                SdkError::DispatchFailure(d) => d.is_user(),
                _ => true,
            };
            if user_error {
                Classified::Error(CloudError::InvalidRequest { service, message })
            } else {
                Classified::Error(CloudError::Unavailable { service, message })
            }
        }
        _ => Classified::Error(CloudError::Unavailable {
            service,
            message: format!("{operation} {identifier}: {}", error_chain(error)),
        }),
    }
}

/// An STS AssumeRole failure: "not found" here would be about the role, so it is denied access.
fn sts_failure(error: &AssumeRoleSdkError) -> Classified {
    match sdk_failure(call(STS, "AssumeRole", "(credentials)"), error) {
        Classified::NotFound { message, .. } => Classified::Error(CloudError::AccessDenied {
            service: STS,
            message,
        }),
        other => other,
    }
}

fn prefix(error: CloudError, operation: &str, identifier: &str) -> CloudError {
    let wrap = |m: String| format!("{operation} {identifier}: {m}");
    match error {
        CloudError::Throttled { service, message } => CloudError::Throttled {
            service,
            message: wrap(message),
        },
        CloudError::Unavailable { service, message } => CloudError::Unavailable {
            service,
            message: wrap(message),
        },
        CloudError::AccessDenied { service, message } => CloudError::AccessDenied {
            service,
            message: wrap(message),
        },
        CloudError::InvalidRequest { service, message } => CloudError::InvalidRequest {
            service,
            message: wrap(message),
        },
        CloudError::Busy { service, message } => CloudError::Busy {
            service,
            message: wrap(message),
        },
    }
}

/// Sends one SDK call: logs mutating calls at debug level and classifies a failure.
async fn send<T, E, F>(call: Call<'_>, mutating: bool, request: F) -> Result<T, Classified>
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if mutating {
        tracing::debug!(
            service = call.service,
            operation = call.operation,
            identifier = call.identifier,
            "AWS call"
        );
    } else {
        tracing::trace!(
            service = call.service,
            operation = call.operation,
            identifier = call.identifier,
            "AWS call"
        );
    }
    request.await.map_err(|e| {
        let classified = sdk_failure(call, &e);
        tracing::debug!(
            service = call.service,
            operation = call.operation,
            identifier = call.identifier,
            failure = ?classified,
            "AWS call failed"
        );
        classified
    })
}

/// [`send`] for a read whose "this resource has no such configuration" answer is the error
/// `absent`: that answer is `Ok(None)`.
async fn send_unless<T, E, F>(
    call: Call<'_>,
    absent: &str,
    request: F,
) -> Result<Option<T>, Classified>
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match request.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some(absent) => Ok(None),
        Err(e) => Err(sdk_failure(call, &e)),
    }
}

/// Turns "not found" into `None` and keeps other failures as errors.
trait Found<T> {
    fn found(self) -> Result<Option<T>, CloudError>;
    fn required(self) -> Result<T, CloudError>;
}

impl<T> Found<T> for Result<T, Classified> {
    fn found(self) -> Result<Option<T>, CloudError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Classified::NotFound { .. }) => Ok(None),
            Err(Classified::Error(e)) => Err(e),
        }
    }

    fn required(self) -> Result<T, CloudError> {
        self.map_err(Classified::into_error)
    }
}

fn build_error(
    service: &'static str,
    what: &str,
    error: &aws_smithy_types::error::operation::BuildError,
) -> CloudError {
    CloudError::InvalidRequest {
        service,
        message: format!("cannot build {what}: {error}"),
    }
}

fn wrong_params(kind: ResourceKind) -> CloudError {
    CloudError::InvalidRequest {
        service: "gamecell",
        message: format!("parameters do not match resource kind {}", kind.as_str()),
    }
}

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl CloudProvider for AwsCloud {
    fn tenant_databases(&self) -> Arc<dyn TenantDatabases> {
        self.tenant_sql.clone()
    }

    async fn describe(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
    ) -> Result<Option<ObservedResource>, CloudError> {
        let clients = self.clients(scope).await;
        match kind {
            ResourceKind::Sql => describe_sql(&clients.rds, identifier).await,
            ResourceKind::Cache => describe_cache(&clients.elasticache, identifier).await,
            ResourceKind::DocumentTable => describe_table(&clients.dynamodb, identifier).await,
            ResourceKind::Bucket => describe_bucket(&clients.s3, identifier).await,
            ResourceKind::NodeGroup => describe_node_group(&clients.eks, identifier).await,
        }
    }

    async fn create(
        &self,
        scope: &Scope,
        desired: &DesiredResource,
    ) -> Result<ObservedResource, CloudError> {
        let clients = self.clients(scope).await;
        let id = desired.identifier.as_str();
        let tags = &desired.tags;
        match (&desired.kind, &desired.params) {
            (ResourceKind::Sql, ResourceParams::Sql(p)) if p.aurora => {
                create_aurora(&clients.rds, id, tags, p).await
            }
            (ResourceKind::Sql, ResourceParams::Sql(p)) => {
                create_sql_instance(&clients.rds, id, tags, p).await
            }
            (ResourceKind::Cache, ResourceParams::Cache(p)) => {
                create_cache(&clients.elasticache, id, tags, p).await
            }
            (ResourceKind::DocumentTable, ResourceParams::DocumentTable(p)) => {
                create_table(&clients.dynamodb, id, tags, p).await
            }
            (ResourceKind::Bucket, ResourceParams::Bucket(p)) => {
                create_bucket(&clients.s3, &scope.region, id, tags, p).await
            }
            (ResourceKind::NodeGroup, ResourceParams::NodeGroup(p)) => {
                create_node_group(&clients.eks, id, tags, p).await
            }
            (kind, _) => Err(wrong_params(*kind)),
        }
    }

    async fn delete(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<DeleteProgress, CloudError> {
        let clients = self.clients(scope).await;
        match kind {
            ResourceKind::Sql => delete_sql(&clients.rds, identifier, final_snapshot).await,
            ResourceKind::Cache => {
                delete_cache(&clients.elasticache, identifier, final_snapshot).await
            }
            ResourceKind::DocumentTable => {
                delete_table(&clients.dynamodb, identifier, final_snapshot).await
            }
            ResourceKind::Bucket => delete_bucket(&clients.s3, identifier).await,
            ResourceKind::NodeGroup => delete_node_group(&clients.eks, identifier).await,
        }
    }

    async fn describe_cluster(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<ObservedCluster>, CloudError> {
        let clients = self.clients(scope).await;
        let c = call(EKS, "DescribeCluster", name);
        let Some(out) = send(c, false, clients.eks.describe_cluster().name(name).send())
            .await
            .found()?
        else {
            return Ok(None);
        };
        let Some(cluster) = out.cluster() else {
            return Ok(None);
        };
        let region = cluster
            .arn()
            .and_then(region_from_arn)
            .unwrap_or(&scope.region)
            .to_owned();
        Ok(Some(ObservedCluster {
            name: cluster.name().unwrap_or(name).to_owned(),
            status: cluster
                .status()
                .map_or("UNKNOWN", |s| s.as_str())
                .to_owned(),
            version: cluster.version().unwrap_or_default().to_owned(),
            region,
        }))
    }
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` -> `REGION`.
fn region_from_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    (parts.next()? == "arn").then_some(())?;
    let region = parts.nth(2)?;
    (!region.is_empty()).then_some(region)
}

fn tag_map<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sql: RDS instances and Aurora clusters
// ---------------------------------------------------------------------------------------------

fn rds_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// Instance `n` of an Aurora cluster: `<cluster>-<n>`, within the 63-character limit.
fn aurora_instance_id(cluster: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let mut base = cluster.to_owned();
    base.truncate(63 - suffix.len());
    format!("{}{suffix}", base.trim_end_matches('-'))
}

fn observed_instance(identifier: &str, db: &aws_sdk_rds::types::DbInstance) -> ObservedResource {
    let state = db.db_instance_status().unwrap_or("unknown").to_owned();
    ObservedResource {
        identifier: identifier.to_owned(),
        ready: state == "available",
        state,
        endpoint: db.endpoint().and_then(|e| e.address()).map(str::to_owned),
        port: db.endpoint().and_then(aws_sdk_rds::types::Endpoint::port),
        tags: tag_map(db.tag_list().iter().map(|t| (t.key(), t.value()))),
        secret_arn: db
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_owned),
        encrypted: db.storage_encrypted().unwrap_or(false),
        // Unknown counts as public: the conservative reading.
        publicly_accessible: db.publicly_accessible().unwrap_or(true),
    }
}

fn observed_cluster(
    identifier: &str,
    cluster: &aws_sdk_rds::types::DbCluster,
    instances: &[aws_sdk_rds::types::DbInstance],
) -> ObservedResource {
    let status = cluster.status().unwrap_or("unknown");
    // No instance at all, and not on its way out: a create was interrupted after the cluster.
    let incomplete =
        status != "deleting" && cluster.db_cluster_members().is_empty() && instances.is_empty();
    let state = if incomplete { STATE_INCOMPLETE } else { status }.to_owned();
    let writer = cluster
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier());
    let writer_available = writer.is_some_and(|w| {
        instances.iter().any(|i| {
            i.db_instance_identifier() == Some(w) && i.db_instance_status() == Some("available")
        })
    });
    ObservedResource {
        identifier: identifier.to_owned(),
        ready: state == "available" && writer_available,
        state,
        endpoint: cluster.endpoint().map(str::to_owned),
        port: cluster.port(),
        tags: tag_map(cluster.tag_list().iter().map(|t| (t.key(), t.value()))),
        secret_arn: cluster
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_owned),
        encrypted: cluster.storage_encrypted().unwrap_or(false),
        publicly_accessible: instances
            .iter()
            .any(|i| i.publicly_accessible().unwrap_or(true)),
    }
}

async fn find_instance(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
) -> Result<Option<aws_sdk_rds::types::DbInstance>, CloudError> {
    let c = call(RDS, "DescribeDBInstances", identifier);
    let out = send(
        c,
        false,
        rds.describe_db_instances()
            .db_instance_identifier(identifier)
            .send(),
    )
    .await
    .found()?;
    Ok(out.and_then(|o| o.db_instances().first().cloned()))
}

async fn find_cluster(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
) -> Result<Option<aws_sdk_rds::types::DbCluster>, CloudError> {
    let c = call(RDS, "DescribeDBClusters", identifier);
    let out = send(
        c,
        false,
        rds.describe_db_clusters()
            .db_cluster_identifier(identifier)
            .send(),
    )
    .await
    .found()?;
    Ok(out.and_then(|o| o.db_clusters().first().cloned()))
}

async fn cluster_instances(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
) -> Result<Vec<aws_sdk_rds::types::DbInstance>, CloudError> {
    let filter = aws_sdk_rds::types::Filter::builder()
        .name("db-cluster-id")
        .values(identifier)
        .build();
    let c = call(RDS, "DescribeDBInstances", identifier);
    let out = send(c, false, rds.describe_db_instances().filters(filter).send())
        .await
        .found()?;
    Ok(out.map(|o| o.db_instances().to_vec()).unwrap_or_default())
}

async fn describe_sql(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    if let Some(db) = find_instance(rds, identifier).await? {
        return Ok(Some(observed_instance(identifier, &db)));
    }
    let Some(cluster) = find_cluster(rds, identifier).await? else {
        return Ok(None);
    };
    let instances = cluster_instances(rds, identifier).await?;
    Ok(Some(observed_cluster(identifier, &cluster, &instances)))
}

async fn create_sql_instance(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
    tags: &BTreeMap<String, String>,
    p: &SqlParams,
) -> Result<ObservedResource, CloudError> {
    let request = rds
        .create_db_instance()
        .db_instance_identifier(identifier)
        .engine(&p.engine)
        .engine_version(&p.engine_version)
        .db_instance_class(&p.instance_class)
        .allocated_storage(p.storage_gib)
        .master_username(MASTER_USERNAME)
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .set_kms_key_id(p.kms_key_id.clone())
        .publicly_accessible(false)
        .multi_az(p.multi_az)
        .backup_retention_period(p.backup_retention_days)
        .deletion_protection(p.deletion_protection)
        .copy_tags_to_snapshot(true)
        .set_preferred_maintenance_window(p.maintenance_window.clone())
        .set_tags(Some(rds_tags(tags)));
    let out = send(
        call(RDS, "CreateDBInstance", identifier),
        true,
        request.send(),
    )
    .await
    .required()?;
    let db = out.db_instance().ok_or_else(|| CloudError::Unavailable {
        service: RDS,
        message: format!("CreateDBInstance {identifier}: response without the instance"),
    })?;
    Ok(observed_instance(identifier, db))
}

/// Creates an Aurora cluster and its instances (a writer, and a reader when Multi-AZ), or
/// finishes a cluster that an interrupted create left [`STATE_INCOMPLETE`]: only the parts that
/// do not exist are requested. Nothing is deleted here, not even to undo a failed instance call:
/// the cluster stays, the next reconcile sees it incomplete and finishes it. (An earlier version
/// rolled the cluster back with `skip_final_snapshot`; had the cluster create answered for an
/// existing cluster, as moto 5.2.5 does, that would have deleted a database.)
async fn create_aurora(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
    tags: &BTreeMap<String, String>,
    p: &SqlParams,
) -> Result<ObservedResource, CloudError> {
    let existing = find_cluster(rds, identifier).await?;
    let resuming = existing.is_some();
    let (cluster, instances) = if let Some(cluster) = existing {
        let instances = cluster_instances(rds, identifier).await?;
        (cluster, instances)
    } else {
        let request = rds
            .create_db_cluster()
            .db_cluster_identifier(identifier)
            .engine(&p.engine)
            .engine_version(&p.engine_version)
            .master_username(MASTER_USERNAME)
            .manage_master_user_password(true)
            .storage_encrypted(true)
            .set_kms_key_id(p.kms_key_id.clone())
            .backup_retention_period(p.backup_retention_days)
            .deletion_protection(p.deletion_protection)
            .copy_tags_to_snapshot(true)
            .set_preferred_maintenance_window(p.maintenance_window.clone())
            .set_tags(Some(rds_tags(tags)));
        let out = send(
            call(RDS, "CreateDBCluster", identifier),
            true,
            request.send(),
        )
        .await
        .required()?;
        let cluster = out
            .db_cluster()
            .cloned()
            .ok_or_else(|| CloudError::Unavailable {
                service: RDS,
                message: format!("CreateDBCluster {identifier}: response without the cluster"),
            })?;
        (cluster, Vec::new())
    };
    let missing = missing_aurora_instances(identifier, p.multi_az, &instances);
    if resuming && missing.is_empty() {
        return Err(CloudError::Busy {
            service: RDS,
            message: format!("DBCluster {identifier} already exists with all its instances"),
        });
    }
    for instance in &missing {
        let request = rds
            .create_db_instance()
            .db_instance_identifier(instance)
            .db_cluster_identifier(identifier)
            .engine(&p.engine)
            .db_instance_class(&p.instance_class)
            .publicly_accessible(false)
            .set_preferred_maintenance_window(p.maintenance_window.clone())
            .set_tags(Some(rds_tags(tags)));
        send(
            call(RDS, "CreateDBInstance", instance),
            true,
            request.send(),
        )
        .await
        .required()?;
    }
    // The instances were just requested: not ready until a describe says so.
    Ok(ObservedResource {
        ready: false,
        state: "creating".to_owned(),
        ..observed_cluster(identifier, &cluster, &instances)
    })
}

/// The instances an Aurora cluster should have (a writer, and a reader when Multi-AZ) that are
/// not among `existing`.
fn missing_aurora_instances(
    cluster: &str,
    multi_az: bool,
    existing: &[aws_sdk_rds::types::DbInstance],
) -> Vec<String> {
    let wanted = if multi_az { 2 } else { 1 };
    (1..=wanted)
        .map(|n| aurora_instance_id(cluster, n))
        .filter(|id| {
            !existing
                .iter()
                .any(|i| i.db_instance_identifier() == Some(id.as_str()))
        })
        .collect()
}

async fn delete_sql(
    rds: &aws_sdk_rds::Client,
    identifier: &str,
    final_snapshot: Option<&str>,
) -> Result<DeleteProgress, CloudError> {
    if let Some(db) = find_instance(rds, identifier).await? {
        if db.db_instance_status() == Some("deleting") {
            return Ok(DeleteProgress::InProgress);
        }
        if db.deletion_protection() == Some(true) {
            let request = rds
                .modify_db_instance()
                .db_instance_identifier(identifier)
                .deletion_protection(false)
                .apply_immediately(true);
            let modified = send(
                call(RDS, "ModifyDBInstance", identifier),
                true,
                request.send(),
            )
            .await
            .found()?;
            if modified.is_none() {
                return Ok(DeleteProgress::Gone);
            }
        }
        let request = rds.delete_db_instance().db_instance_identifier(identifier);
        let request = match final_snapshot {
            Some(snapshot) => request.final_db_snapshot_identifier(snapshot),
            None => request.skip_final_snapshot(true),
        };
        let deleted = send(
            call(RDS, "DeleteDBInstance", identifier),
            true,
            request.send(),
        )
        .await
        .found()?;
        return Ok(if deleted.is_some() {
            DeleteProgress::InProgress
        } else {
            DeleteProgress::Gone
        });
    }
    let Some(cluster) = find_cluster(rds, identifier).await? else {
        return Ok(DeleteProgress::Gone);
    };
    if cluster.status() == Some("deleting") {
        return Ok(DeleteProgress::InProgress);
    }
    // Aurora: the instances go first (they take no snapshot of their own), then the cluster.
    for instance in cluster_instances(rds, identifier).await? {
        let Some(instance_id) = instance.db_instance_identifier() else {
            continue;
        };
        if instance.db_instance_status() == Some("deleting") {
            continue;
        }
        let request = rds.delete_db_instance().db_instance_identifier(instance_id);
        send(
            call(RDS, "DeleteDBInstance", instance_id),
            true,
            request.send(),
        )
        .await
        .found()?;
    }
    if cluster.deletion_protection() == Some(true) {
        let request = rds
            .modify_db_cluster()
            .db_cluster_identifier(identifier)
            .deletion_protection(false)
            .apply_immediately(true);
        if send(
            call(RDS, "ModifyDBCluster", identifier),
            true,
            request.send(),
        )
        .await
        .found()?
        .is_none()
        {
            return Ok(DeleteProgress::Gone);
        }
    }
    let request = rds.delete_db_cluster().db_cluster_identifier(identifier);
    let request = match final_snapshot {
        Some(snapshot) => request.final_db_snapshot_identifier(snapshot),
        None => request.skip_final_snapshot(true),
    };
    match send(
        call(RDS, "DeleteDBCluster", identifier),
        true,
        request.send(),
    )
    .await
    {
        Ok(_) => Ok(DeleteProgress::InProgress),
        Err(Classified::NotFound { .. }) => Ok(DeleteProgress::Gone),
        // The instances are still being deleted: the cluster follows on a later call.
        Err(Classified::Error(CloudError::Busy { .. })) => Ok(DeleteProgress::InProgress),
        Err(Classified::Error(e)) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Cache: ElastiCache Redis replication groups
// ---------------------------------------------------------------------------------------------

async fn find_replication_group(
    ec: &aws_sdk_elasticache::Client,
    identifier: &str,
) -> Result<Option<aws_sdk_elasticache::types::ReplicationGroup>, CloudError> {
    let c = call(ELASTICACHE, "DescribeReplicationGroups", identifier);
    let out = send(
        c,
        false,
        ec.describe_replication_groups()
            .replication_group_id(identifier)
            .send(),
    )
    .await
    .found()?;
    Ok(out.and_then(|o| o.replication_groups().first().cloned()))
}

fn observed_cache(
    identifier: &str,
    group: &aws_sdk_elasticache::types::ReplicationGroup,
    tags: BTreeMap<String, String>,
) -> ObservedResource {
    let state = group.status().unwrap_or("unknown").to_owned();
    // Cluster mode off: the primary endpoint; cluster mode on: the configuration endpoint.
    let endpoint = group
        .node_groups()
        .first()
        .and_then(|ng| ng.primary_endpoint())
        .or_else(|| group.configuration_endpoint());
    ObservedResource {
        identifier: identifier.to_owned(),
        ready: state == "available",
        state,
        endpoint: endpoint.and_then(|e| e.address()).map(str::to_owned),
        port: endpoint.and_then(aws_sdk_elasticache::types::Endpoint::port),
        tags,
        secret_arn: None,
        encrypted: group.at_rest_encryption_enabled().unwrap_or(false),
        // Replication groups live in a VPC and have no public endpoint.
        publicly_accessible: false,
    }
}

async fn describe_cache(
    ec: &aws_sdk_elasticache::Client,
    identifier: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    let Some(group) = find_replication_group(ec, identifier).await? else {
        return Ok(None);
    };
    let mut tags = BTreeMap::new();
    if let Some(arn) = group.arn() {
        let c = call(ELASTICACHE, "ListTagsForResource", identifier);
        let Some(out) = send(
            c,
            false,
            ec.list_tags_for_resource().resource_name(arn).send(),
        )
        .await
        .found()?
        else {
            return Ok(None);
        };
        tags = tag_map(out.tag_list().iter().map(|t| (t.key(), t.value())));
    }
    Ok(Some(observed_cache(identifier, &group, tags)))
}

async fn create_cache(
    ec: &aws_sdk_elasticache::Client,
    identifier: &str,
    tags: &BTreeMap<String, String>,
    p: &CacheParams,
) -> Result<ObservedResource, CloudError> {
    let replicas = p.replicas.max(0);
    let request = ec
        .create_replication_group()
        .replication_group_id(identifier)
        .replication_group_description(format!("gamecell cache {identifier}"))
        .engine("redis")
        .set_engine_version(p.engine_version.clone())
        .cache_node_type(&p.node_type)
        .num_cache_clusters(1 + replicas)
        .automatic_failover_enabled(replicas > 0)
        .multi_az_enabled(replicas > 0)
        .at_rest_encryption_enabled(true)
        .transit_encryption_enabled(true)
        .set_kms_key_id(p.kms_key_id.clone())
        .set_preferred_maintenance_window(p.maintenance_window.clone())
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| {
                    aws_sdk_elasticache::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                })
                .collect(),
        ));
    let c = call(ELASTICACHE, "CreateReplicationGroup", identifier);
    let out = send(c, true, request.send()).await.required()?;
    let group = out
        .replication_group()
        .ok_or_else(|| CloudError::Unavailable {
            service: ELASTICACHE,
            message: format!("CreateReplicationGroup {identifier}: response without the group"),
        })?;
    // The tags were part of the request; the response does not repeat them.
    Ok(observed_cache(identifier, group, tags.clone()))
}

async fn delete_cache(
    ec: &aws_sdk_elasticache::Client,
    identifier: &str,
    final_snapshot: Option<&str>,
) -> Result<DeleteProgress, CloudError> {
    let Some(group) = find_replication_group(ec, identifier).await? else {
        return Ok(DeleteProgress::Gone);
    };
    if group.status() == Some("deleting") {
        return Ok(DeleteProgress::InProgress);
    }
    let request = ec
        .delete_replication_group()
        .replication_group_id(identifier)
        .retain_primary_cluster(false)
        .set_final_snapshot_identifier(final_snapshot.map(str::to_owned));
    let c = call(ELASTICACHE, "DeleteReplicationGroup", identifier);
    let deleted = send(c, true, request.send()).await.found()?;
    Ok(if deleted.is_some() {
        DeleteProgress::InProgress
    } else {
        DeleteProgress::Gone
    })
}

// ---------------------------------------------------------------------------------------------
// DocumentTable: DynamoDB
// ---------------------------------------------------------------------------------------------

fn observed_table(
    identifier: &str,
    table: &aws_sdk_dynamodb::types::TableDescription,
    tags: BTreeMap<String, String>,
) -> ObservedResource {
    let state = table
        .table_status()
        .map_or("UNKNOWN", |s| s.as_str())
        .to_owned();
    ObservedResource {
        identifier: identifier.to_owned(),
        ready: state == "ACTIVE",
        state,
        endpoint: None,
        port: None,
        tags,
        secret_arn: None,
        // DynamoDB encrypts every table at rest (an AWS-owned key unless a KMS key is set).
        encrypted: true,
        // A table is reachable only through IAM-authorised API calls.
        publicly_accessible: false,
    }
}

async fn find_table(
    ddb: &aws_sdk_dynamodb::Client,
    identifier: &str,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, CloudError> {
    let c = call(DYNAMODB, "DescribeTable", identifier);
    let out = send(c, false, ddb.describe_table().table_name(identifier).send())
        .await
        .found()?;
    Ok(out.and_then(|o| o.table().cloned()))
}

async fn describe_table(
    ddb: &aws_sdk_dynamodb::Client,
    identifier: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    let Some(table) = find_table(ddb, identifier).await? else {
        return Ok(None);
    };
    let mut tags = BTreeMap::new();
    if let Some(arn) = table.table_arn() {
        let mut next_token: Option<String> = None;
        loop {
            let c = call(DYNAMODB, "ListTagsOfResource", identifier);
            let request = ddb
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(next_token.take());
            let Some(out) = send(c, false, request.send()).await.found()? else {
                return Ok(None);
            };
            tags.extend(
                out.tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned())),
            );
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
    }
    Ok(Some(observed_table(identifier, &table, tags)))
}

async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    identifier: &str,
    tags: &BTreeMap<String, String>,
    p: &TableParams,
) -> Result<ObservedResource, CloudError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput,
        ScalarAttributeType, SseSpecification, SseType, Tag,
    };
    let berr = |what: &str, e: &aws_smithy_types::error::operation::BuildError| {
        build_error(DYNAMODB, what, e)
    };
    let mut keys = vec![(&p.partition_key, KeyType::Hash)];
    if let Some(sort) = &p.sort_key {
        keys.push((sort, KeyType::Range));
    }
    let mut request = ddb.create_table().table_name(identifier);
    for ((name, ty), key_type) in keys {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(ty.as_str()))
                    .build()
                    .map_err(|e| berr("attribute definition", &e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .map_err(|e| berr("key schema", &e))?,
            );
    }
    request = match p.provisioned {
        Some((read, write)) => request
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(
                ProvisionedThroughput::builder()
                    .read_capacity_units(read)
                    .write_capacity_units(write)
                    .build()
                    .map_err(|e| berr("provisioned throughput", &e))?,
            ),
        None => request.billing_mode(BillingMode::PayPerRequest),
    };
    if let Some(key) = &p.kms_key_id {
        request = request.sse_specification(
            SseSpecification::builder()
                .enabled(true)
                .sse_type(SseType::Kms)
                .kms_master_key_id(key)
                .build(),
        );
    }
    for (k, v) in tags {
        request = request.tags(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| berr("tag", &e))?,
        );
    }
    request = request.deletion_protection_enabled(p.deletion_protection);
    let out = send(
        call(DYNAMODB, "CreateTable", identifier),
        true,
        request.send(),
    )
    .await
    .required()?;
    let table = out
        .table_description()
        .ok_or_else(|| CloudError::Unavailable {
            service: DYNAMODB,
            message: format!("CreateTable {identifier}: response without the table"),
        })?;
    Ok(observed_table(identifier, table, tags.clone()))
}

async fn delete_table(
    ddb: &aws_sdk_dynamodb::Client,
    identifier: &str,
    final_snapshot: Option<&str>,
) -> Result<DeleteProgress, CloudError> {
    use aws_sdk_dynamodb::types::TableStatus;
    let Some(table) = find_table(ddb, identifier).await? else {
        return Ok(DeleteProgress::Gone);
    };
    if table.table_status() == Some(&TableStatus::Deleting) {
        return Ok(DeleteProgress::InProgress);
    }
    if let Some(backup) = final_snapshot
        && !backup_exists(ddb, identifier, backup).await?
    {
        let request = ddb
            .create_backup()
            .table_name(identifier)
            .backup_name(backup);
        if send(
            call(DYNAMODB, "CreateBackup", identifier),
            true,
            request.send(),
        )
        .await
        .found()?
        .is_none()
        {
            return Ok(DeleteProgress::Gone);
        }
    }
    if table.deletion_protection_enabled() == Some(true) {
        let request = ddb
            .update_table()
            .table_name(identifier)
            .deletion_protection_enabled(false);
        if send(
            call(DYNAMODB, "UpdateTable", identifier),
            true,
            request.send(),
        )
        .await
        .found()?
        .is_none()
        {
            return Ok(DeleteProgress::Gone);
        }
    }
    let request = ddb.delete_table().table_name(identifier);
    let deleted = send(
        call(DYNAMODB, "DeleteTable", identifier),
        true,
        request.send(),
    )
    .await
    .found()?;
    Ok(if deleted.is_some() {
        DeleteProgress::InProgress
    } else {
        DeleteProgress::Gone
    })
}

/// Whether an on-demand backup of this name exists for the table (so a retried delete does not
/// take a second one).
async fn backup_exists(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    backup: &str,
) -> Result<bool, CloudError> {
    let mut start: Option<String> = None;
    loop {
        let request = ddb
            .list_backups()
            .table_name(table)
            .set_exclusive_start_backup_arn(start.take());
        let Some(out) = send(call(DYNAMODB, "ListBackups", table), false, request.send())
            .await
            .found()?
        else {
            return Ok(false);
        };
        if out
            .backup_summaries()
            .iter()
            .any(|b| b.backup_name() == Some(backup))
        {
            return Ok(true);
        }
        match out.last_evaluated_backup_arn() {
            Some(arn) if !arn.is_empty() => start = Some(arn.to_owned()),
            _ => return Ok(false),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bucket: S3
// ---------------------------------------------------------------------------------------------

async fn describe_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    let head = send(
        call(S3, "HeadBucket", bucket),
        false,
        s3.head_bucket().bucket(bucket).send(),
    )
    .await
    .found()?;
    if head.is_none() {
        return Ok(None);
    }
    // Each of these answers a bucket without that configuration with an error code of its own.
    let c = call(S3, "GetBucketTagging", bucket);
    let Some(tagging) = send_unless(
        c,
        "NoSuchTagSet",
        s3.get_bucket_tagging().bucket(bucket).send(),
    )
    .await
    .found()?
    else {
        return Ok(None);
    };
    let tags = tagging
        .map(|out| {
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let c = call(S3, "GetBucketEncryption", bucket);
    let absent = "ServerSideEncryptionConfigurationNotFoundError";
    let Some(encryption) = send_unless(c, absent, s3.get_bucket_encryption().bucket(bucket).send())
        .await
        .found()?
    else {
        return Ok(None);
    };
    let encrypted = encryption.is_some_and(|out| {
        out.server_side_encryption_configuration().is_some_and(|c| {
            c.rules()
                .iter()
                .any(|r| r.apply_server_side_encryption_by_default().is_some())
        })
    });
    let c = call(S3, "GetPublicAccessBlock", bucket);
    let absent = "NoSuchPublicAccessBlockConfiguration";
    let Some(block) = send_unless(
        c,
        absent,
        s3.get_public_access_block().bucket(bucket).send(),
    )
    .await
    .found()?
    else {
        return Ok(None);
    };
    let all_blocked = block.is_some_and(|out| {
        out.public_access_block_configuration().is_some_and(|b| {
            b.block_public_acls() == Some(true)
                && b.ignore_public_acls() == Some(true)
                && b.block_public_policy() == Some(true)
                && b.restrict_public_buckets() == Some(true)
        })
    });
    Ok(Some(ObservedResource {
        identifier: bucket.to_owned(),
        state: "available".to_owned(),
        ready: true,
        endpoint: None,
        port: None,
        tags,
        secret_arn: None,
        encrypted,
        // Without all four public access blocks a policy or ACL could make it public.
        publicly_accessible: !all_blocked,
    }))
}

async fn create_bucket(
    s3: &aws_sdk_s3::Client,
    region: &str,
    bucket: &str,
    tags: &BTreeMap<String, String>,
    p: &BucketParams,
) -> Result<ObservedResource, CloudError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    // us-east-1 answers a CreateBucket for a bucket we already own with success; refuse
    // explicitly rather than overwrite another store's tags and settings.
    if send(
        call(S3, "HeadBucket", bucket),
        false,
        s3.head_bucket().bucket(bucket).send(),
    )
    .await
    .found()?
    .is_some()
    {
        return Err(CloudError::Busy {
            service: S3,
            message: format!("CreateBucket {bucket}: the bucket already exists"),
        });
    }
    let mut request = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    send(call(S3, "CreateBucket", bucket), true, request.send())
        .await
        .required()?;
    if let Err(e) = configure_bucket(s3, bucket, tags, p).await {
        tracing::warn!(bucket, error = %e, "bucket configuration failed: removing the new bucket again");
        if let Err(rollback) = send(
            call(S3, "DeleteBucket", bucket),
            true,
            s3.delete_bucket().bucket(bucket).send(),
        )
        .await
        {
            tracing::warn!(bucket, failure = ?rollback, "could not remove the half-configured bucket");
        }
        return Err(e);
    }
    Ok(ObservedResource {
        identifier: bucket.to_owned(),
        state: "available".to_owned(),
        ready: true,
        endpoint: None,
        port: None,
        tags: tags.clone(),
        secret_arn: None,
        encrypted: true,
        publicly_accessible: false,
    })
}

async fn configure_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tags: &BTreeMap<String, String>,
    p: &BucketParams,
) -> Result<(), CloudError> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
        LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
        PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, Transition,
        TransitionStorageClass, VersioningConfiguration,
    };
    let berr =
        |what: &str, e: &aws_smithy_types::error::operation::BuildError| build_error(S3, what, e);

    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    let request = s3
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(block);
    send(
        call(S3, "PutPublicAccessBlock", bucket),
        true,
        request.send(),
    )
    .await
    .required()?;

    let by_default = match &p.kms_key_id {
        Some(key) => ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(key),
        None => {
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256)
        }
    }
    .build()
    .map_err(|e| berr("encryption default", &e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .bucket_key_enabled(p.kms_key_id.is_some())
        .build();
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| berr("encryption", &e))?;
    let request = s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption);
    send(
        call(S3, "PutBucketEncryption", bucket),
        true,
        request.send(),
    )
    .await
    .required()?;

    if p.versioning {
        let versioning = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        let request = s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(versioning);
        send(
            call(S3, "PutBucketVersioning", bucket),
            true,
            request.send(),
        )
        .await
        .required()?;
    }

    if p.expire_after_days.is_some()
        || p.transition_to_ia_after_days.is_some()
        || p.noncurrent_expiration_days.is_some()
    {
        let mut rule = LifecycleRule::builder()
            .id("gamecell")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build());
        if let Some(days) = p.expire_after_days {
            rule = rule.expiration(LifecycleExpiration::builder().days(days).build());
        }
        if let Some(days) = p.transition_to_ia_after_days {
            rule = rule.transitions(
                Transition::builder()
                    .days(days)
                    .storage_class(TransitionStorageClass::StandardIa)
                    .build(),
            );
        }
        if let Some(days) = p.noncurrent_expiration_days {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        let lifecycle = BucketLifecycleConfiguration::builder()
            .rules(rule.build().map_err(|e| berr("lifecycle rule", &e))?)
            .build()
            .map_err(|e| berr("lifecycle", &e))?;
        let request = s3
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(lifecycle);
        send(
            call(S3, "PutBucketLifecycleConfiguration", bucket),
            true,
            request.send(),
        )
        .await
        .required()?;
    }

    let tag_set = tags
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| berr("tag", &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| berr("tagging", &e))?;
    let request = s3.put_bucket_tagging().bucket(bucket).tagging(tagging);
    send(call(S3, "PutBucketTagging", bucket), true, request.send())
        .await
        .required()?;
    Ok(())
}

/// Deletes objects, versions, delete markers and unfinished uploads: up to
/// [`BUCKET_DELETE_BATCHES`] batches per call. `Ok(true)` when the bucket is empty.
async fn empty_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<bool>, CloudError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let berr =
        |what: &str, e: &aws_smithy_types::error::operation::BuildError| build_error(S3, what, e);
    for _ in 0..BUCKET_DELETE_BATCHES {
        // Every object of the bucket, current or not, versioned or not (version id "null").
        let c = call(S3, "ListObjectVersions", bucket);
        let Some(listed) = send(
            c,
            false,
            s3.list_object_versions()
                .bucket(bucket)
                .max_keys(1000)
                .send(),
        )
        .await
        .found()?
        else {
            return Ok(None);
        };
        let mut objects = Vec::new();
        let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = listed
            .delete_markers()
            .iter()
            .map(|m| (m.key(), m.version_id()));
        for (key, version) in versions.chain(markers) {
            let Some(key) = key else { continue };
            let id = ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.map(str::to_owned))
                .build()
                .map_err(|e| berr("object identifier", &e))?;
            objects.push(id);
        }
        if objects.is_empty() {
            // Some stores list plain objects only through ListObjectsV2.
            let c = call(S3, "ListObjectsV2", bucket);
            let Some(listed) = send(
                c,
                false,
                s3.list_objects_v2().bucket(bucket).max_keys(1000).send(),
            )
            .await
            .found()?
            else {
                return Ok(None);
            };
            for key in listed.contents().iter().filter_map(|o| o.key()) {
                objects.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .build()
                        .map_err(|e| berr("object identifier", &e))?,
                );
            }
        }
        if objects.is_empty() {
            abort_uploads(s3, bucket).await?;
            return Ok(Some(true));
        }
        let count = objects.len();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| berr("delete", &e))?;
        let c = call(S3, "DeleteObjects", bucket);
        tracing::debug!(bucket, count, "deleting objects before deleting the bucket");
        let Some(out) = send(
            c,
            true,
            s3.delete_objects().bucket(bucket).delete(delete).send(),
        )
        .await
        .found()?
        else {
            return Ok(None);
        };
        if let Some(first) = out.errors().first() {
            return Err(classify(
                S3,
                first.code(),
                None,
                format!(
                    "DeleteObjects {bucket}: {} of {count} objects not deleted: {}: {}",
                    out.errors().len(),
                    first.code().unwrap_or("unknown"),
                    first.message().unwrap_or("no message"),
                ),
            )
            .into_error());
        }
    }
    Ok(Some(false))
}

async fn abort_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), CloudError> {
    let c = call(S3, "ListMultipartUploads", bucket);
    let Some(listed) = send(c, false, s3.list_multipart_uploads().bucket(bucket).send())
        .await
        .found()?
    else {
        return Ok(());
    };
    for upload in listed.uploads() {
        let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        let request = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id);
        send(
            call(S3, "AbortMultipartUpload", bucket),
            true,
            request.send(),
        )
        .await
        .found()?;
    }
    Ok(())
}

async fn delete_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<DeleteProgress, CloudError> {
    let head = send(
        call(S3, "HeadBucket", bucket),
        false,
        s3.head_bucket().bucket(bucket).send(),
    )
    .await
    .found()?;
    if head.is_none() {
        return Ok(DeleteProgress::Gone);
    }
    match empty_bucket(s3, bucket).await? {
        None => return Ok(DeleteProgress::Gone),
        Some(false) => return Ok(DeleteProgress::InProgress),
        Some(true) => {}
    }
    // DeleteBucket is synchronous: once it answers (or the bucket is already gone), it is gone.
    send(
        call(S3, "DeleteBucket", bucket),
        true,
        s3.delete_bucket().bucket(bucket).send(),
    )
    .await
    .found()?;
    Ok(DeleteProgress::Gone)
}

// ---------------------------------------------------------------------------------------------
// NodeGroup: EKS managed node groups
// ---------------------------------------------------------------------------------------------

/// `<cluster>/<nodegroup>` -> (cluster, nodegroup).
fn split_node_group_id(identifier: &str) -> Result<(&str, &str), CloudError> {
    match identifier.split_once('/') {
        Some((cluster, name)) if !cluster.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((cluster, name))
        }
        _ => Err(CloudError::InvalidRequest {
            service: EKS,
            message: format!("node group identifier {identifier:?} is not <cluster>/<nodegroup>"),
        }),
    }
}

fn observed_node_group(identifier: &str, ng: &aws_sdk_eks::types::Nodegroup) -> ObservedResource {
    let state = ng.status().map_or("UNKNOWN", |s| s.as_str()).to_owned();
    ObservedResource {
        identifier: identifier.to_owned(),
        ready: state == "ACTIVE",
        state,
        endpoint: None,
        port: None,
        tags: ng
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        secret_arn: None,
        // Node volumes are encrypted only by the account's EBS default or a launch template,
        // neither of which this call sees: not claimed.
        encrypted: false,
        // No remote access is configured; nodes take the subnets' addressing.
        publicly_accessible: false,
    }
}

async fn find_node_group(
    eks: &aws_sdk_eks::Client,
    identifier: &str,
) -> Result<Option<aws_sdk_eks::types::Nodegroup>, CloudError> {
    let (cluster, name) = split_node_group_id(identifier)?;
    let c = call(EKS, "DescribeNodegroup", identifier);
    let out = send(
        c,
        false,
        eks.describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send(),
    )
    .await
    .found()?;
    Ok(out.and_then(|o| o.nodegroup().cloned()))
}

async fn describe_node_group(
    eks: &aws_sdk_eks::Client,
    identifier: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    Ok(find_node_group(eks, identifier)
        .await?
        .map(|ng| observed_node_group(identifier, &ng)))
}

async fn create_node_group(
    eks: &aws_sdk_eks::Client,
    identifier: &str,
    tags: &BTreeMap<String, String>,
    p: &NodeGroupParams,
) -> Result<ObservedResource, CloudError> {
    use aws_sdk_eks::types::{CapacityTypes, NodegroupScalingConfig, Taint, TaintEffect};
    let name = match identifier.split_once('/') {
        Some((cluster, name)) if cluster == p.cluster_name => name,
        Some((cluster, _)) => {
            return Err(CloudError::InvalidRequest {
                service: EKS,
                message: format!(
                    "node group {identifier}: cluster {cluster} differs from {}",
                    p.cluster_name
                ),
            });
        }
        None => identifier,
    };
    let request = eks
        .create_nodegroup()
        .cluster_name(&p.cluster_name)
        .nodegroup_name(name)
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(p.min_size)
                .max_size(p.max_size)
                .desired_size(p.desired_size)
                .build(),
        )
        .set_instance_types(Some(p.instance_types.clone()))
        .set_subnets(Some(p.subnets.clone()))
        .node_role(&p.node_role_arn)
        .capacity_type(if p.spot {
            CapacityTypes::Spot
        } else {
            CapacityTypes::OnDemand
        })
        .set_labels(Some(
            p.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
        .taints(
            Taint::builder()
                .key(&p.taint.0)
                .value(&p.taint.1)
                .effect(TaintEffect::NoSchedule)
                .build(),
        )
        .set_tags(Some(
            tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    let out = send(
        call(EKS, "CreateNodegroup", identifier),
        true,
        request.send(),
    )
    .await
    .required()?;
    let ng = out.nodegroup().ok_or_else(|| CloudError::Unavailable {
        service: EKS,
        message: format!("CreateNodegroup {identifier}: response without the node group"),
    })?;
    let mut observed = observed_node_group(identifier, ng);
    observed.identifier = format!("{}/{name}", p.cluster_name);
    Ok(observed)
}

async fn delete_node_group(
    eks: &aws_sdk_eks::Client,
    identifier: &str,
) -> Result<DeleteProgress, CloudError> {
    use aws_sdk_eks::types::NodegroupStatus;
    let Some(ng) = find_node_group(eks, identifier).await? else {
        return Ok(DeleteProgress::Gone);
    };
    if ng.status() == Some(&NodegroupStatus::Deleting) {
        return Ok(DeleteProgress::InProgress);
    }
    let (cluster, name) = split_node_group_id(identifier)?;
    let request = eks
        .delete_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name);
    let deleted = send(
        call(EKS, "DeleteNodegroup", identifier),
        true,
        request.send(),
    )
    .await
    .found()?;
    Ok(if deleted.is_some() {
        DeleteProgress::InProgress
    } else {
        DeleteProgress::Gone
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::AssumeRole;

    fn cluster(status: &str, members: &[(&str, bool)]) -> aws_sdk_rds::types::DbCluster {
        let mut b = aws_sdk_rds::types::DbCluster::builder().status(status);
        for (id, writer) in members {
            b = b.db_cluster_members(
                aws_sdk_rds::types::DbClusterMember::builder()
                    .db_instance_identifier(*id)
                    .is_cluster_writer(*writer)
                    .build(),
            );
        }
        b.build()
    }

    fn instance(id: &str, status: &str) -> aws_sdk_rds::types::DbInstance {
        aws_sdk_rds::types::DbInstance::builder()
            .db_instance_identifier(id)
            .db_instance_status(status)
            .publicly_accessible(false)
            .build()
    }

    #[test]
    fn a_cluster_without_instances_is_incomplete_unless_it_is_being_deleted() {
        for status in ["creating", "available"] {
            let o = observed_cluster("c", &cluster(status, &[]), &[]);
            assert_eq!(o.state, STATE_INCOMPLETE);
            assert!(!o.ready);
        }
        assert_eq!(
            observed_cluster("c", &cluster("deleting", &[]), &[]).state,
            "deleting"
        );
        let writer = [instance("c-1", "available")];
        let o = observed_cluster("c", &cluster("available", &[("c-1", true)]), &writer);
        assert_eq!(o.state, "available");
        assert!(o.ready);
        // An instance still being created already counts: the create was not interrupted.
        let creating = [instance("c-1", "creating")];
        let o = observed_cluster("c", &cluster("creating", &[]), &creating);
        assert_eq!(o.state, "creating");
    }

    #[test]
    fn only_the_missing_aurora_instances_are_requested() {
        assert_eq!(missing_aurora_instances("c", true, &[]), ["c-1", "c-2"]);
        assert_eq!(missing_aurora_instances("c", false, &[]), ["c-1"]);
        let writer = [instance("c-1", "creating")];
        assert_eq!(missing_aurora_instances("c", true, &writer), ["c-2"]);
        assert!(missing_aurora_instances("c", false, &writer).is_empty());
    }

    fn class(code: Option<&str>, status: Option<u16>) -> Classified {
        classify("svc", code, status, "msg".to_owned())
    }

    fn reason(code: Option<&str>, status: Option<u16>) -> &'static str {
        match class(code, status) {
            Classified::NotFound { .. } => "NotFound",
            Classified::Error(e) => e.reason(),
        }
    }

    #[test]
    fn throttling_codes_are_throttled() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "SlowDown",
            "RequestThrottled",
            "RequestThrottledException",
            "LimitExceededException",
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        ] {
            assert_eq!(reason(Some(code), Some(400)), "CloudThrottled", "{code}");
        }
        assert_eq!(reason(None, Some(429)), "CloudThrottled");
        assert_eq!(reason(Some("SomethingNew"), Some(429)), "CloudThrottled");
    }

    #[test]
    fn server_side_failures_are_unavailable() {
        for code in [
            "ServiceUnavailable",
            "InternalFailure",
            "InternalError",
            "InternalServerError",
            "ServerException",
        ] {
            assert_eq!(reason(Some(code), Some(500)), "CloudUnavailable", "{code}");
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(reason(None, Some(status)), "CloudUnavailable", "{status}");
            assert_eq!(
                reason(Some("SomethingNew"), Some(status)),
                "CloudUnavailable",
                "{status}"
            );
        }
        assert_eq!(
            reason(Some("InsufficientDBInstanceCapacity"), Some(400)),
            "CloudUnavailable"
        );
        // No response at all (a dispatch failure) is not the request's fault.
        assert_eq!(reason(None, None), "CloudUnavailable");
    }

    #[test]
    fn credential_and_permission_failures_are_access_denied() {
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "ExpiredTokenException",
            "AuthFailure",
            "SignatureDoesNotMatch",
            "KMSKeyNotAccessibleFault",
        ] {
            assert_eq!(reason(Some(code), Some(403)), "CloudAccessDenied", "{code}");
            // The code decides, whatever status the service chose.
            assert_eq!(reason(Some(code), Some(400)), "CloudAccessDenied", "{code}");
        }
        assert_eq!(reason(None, Some(403)), "CloudAccessDenied");
        assert_eq!(reason(None, Some(401)), "CloudAccessDenied");
    }

    #[test]
    fn bad_requests_and_quotas_are_invalid_requests() {
        for code in [
            "InvalidParameterValue",
            "InvalidParameterValueException",
            "InvalidParameterCombination",
            "InvalidParameterException",
            "ValidationException",
            "ValidationError",
            "InvalidSubnet",
            "InvalidVPCNetworkStateFault",
            "InstanceQuotaExceeded",
            "StorageQuotaExceeded",
            "NodeQuotaForCustomerExceeded",
            "ClusterQuotaForCustomerExceeded",
            "DBClusterQuotaExceededFault",
            "ResourceLimitExceededException",
            "DBSubnetGroupNotFoundFault",
            "BucketAlreadyExists",
            "DBSnapshotAlreadyExists",
            "SnapshotAlreadyExistsFault",
        ] {
            assert_eq!(
                reason(Some(code), Some(400)),
                "CloudInvalidRequest",
                "{code}"
            );
        }
        assert_eq!(
            reason(Some("SomethingNew"), Some(400)),
            "CloudInvalidRequest"
        );
        assert_eq!(reason(None, Some(400)), "CloudInvalidRequest");
        // A redirect to another region: the name is taken there.
        assert_eq!(
            reason(Some("PermanentRedirect"), Some(301)),
            "CloudInvalidRequest"
        );
    }

    #[test]
    fn state_conflicts_and_existing_resources_are_busy() {
        for code in [
            "InvalidDBInstanceState",
            "InvalidDBInstanceStateFault",
            "InvalidDBClusterStateFault",
            "InvalidReplicationGroupState",
            "InvalidReplicationGroupStateFault",
            "ResourceInUseException",
            "OperationAborted",
            "BucketNotEmpty",
            "DBInstanceAlreadyExists",
            "DBClusterAlreadyExistsFault",
            "ReplicationGroupAlreadyExists",
            "ReplicationGroupAlreadyExistsFault",
            "BucketAlreadyOwnedByYou",
        ] {
            assert_eq!(reason(Some(code), Some(400)), "CloudResourceBusy", "{code}");
        }
        assert_eq!(reason(None, Some(409)), "CloudResourceBusy");
    }

    #[test]
    fn missing_resources_are_not_found_but_a_bare_404_is_not() {
        for code in [
            "DBInstanceNotFound",
            "DBInstanceNotFoundFault",
            "DBClusterNotFoundFault",
            "ReplicationGroupNotFoundFault",
            "ResourceNotFoundException",
            "NoSuchBucket",
            "NotFound",
        ] {
            assert_eq!(reason(Some(code), Some(404)), "NotFound", "{code}");
            assert_eq!(reason(Some(code), Some(400)), "NotFound", "{code}");
        }
        // A 404 without a code (a wrong endpoint, a proxy) must never make a delete "Gone".
        assert_eq!(reason(None, Some(404)), "CloudInvalidRequest");
        assert_eq!(reason(Some("NoSuchKey"), Some(404)), "CloudInvalidRequest");
        assert!(
            class(Some("NoSuchBucket"), Some(404))
                .into_error()
                .is_permanent()
        );
    }

    #[test]
    fn classification_keeps_service_and_message() {
        assert_eq!(
            classify(
                "rds",
                Some("Throttling"),
                Some(400),
                "DescribeDBInstances db-1: Throttling: Rate exceeded".into()
            ),
            Classified::Error(CloudError::Throttled {
                service: "rds",
                message: "DescribeDBInstances db-1: Throttling: Rate exceeded".into()
            })
        );
    }

    #[test]
    fn codes_are_normalised() {
        assert_eq!(
            normalize_code("ReplicationGroupNotFoundFault"),
            "ReplicationGroupNotFound"
        );
        assert_eq!(
            normalize_code("ResourceNotFoundException"),
            "ResourceNotFound"
        );
        assert_eq!(
            normalize_code("com.amazonaws.dynamodb.v20120810#ResourceInUseException"),
            "ResourceInUse"
        );
        assert_eq!(
            normalize_code("ValidationException:http://internal.amazon.com/coral/"),
            "Validation"
        );
        assert_eq!(normalize_code("DBInstanceNotFound"), "DBInstanceNotFound");
    }

    #[test]
    fn regions_come_from_arns() {
        assert_eq!(
            region_from_arn("arn:aws:eks:eu-west-1:123456789012:cluster/prod"),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_arn("arn:aws-cn:eks:cn-north-1:123456789012:cluster/a:b"),
            Some("cn-north-1")
        );
        assert_eq!(region_from_arn("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(region_from_arn("not-an-arn"), None);
    }

    #[test]
    fn aurora_instances_fit_the_rds_limit() {
        assert_eq!(
            aurora_instance_id("gc-starfall-abc123", 1),
            "gc-starfall-abc123-1"
        );
        let long = format!("gc-{}", "a".repeat(60));
        let id = aurora_instance_id(&long, 2);
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("a-2"));
        let hyphen_at_cut = format!("gc-{}-x", "a".repeat(56));
        assert!(!aurora_instance_id(&hyphen_at_cut, 1).contains("--"));
    }

    #[test]
    fn node_group_identifiers_name_their_cluster() {
        assert_eq!(split_node_group_id("prod/gc-a-1"), Ok(("prod", "gc-a-1")));
        for bad in ["gc-a-1", "/gc", "prod/", "a/b/c"] {
            assert!(
                matches!(
                    split_node_group_id(bad),
                    Err(CloudError::InvalidRequest { .. })
                ),
                "{bad}"
            );
        }
    }

    // --- Against a local HTTP server that answers every request the same way -----------------

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `response` (a full HTTP response) to every request; `None` never answers.
    async fn server(response: Option<String>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let response = response.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (name, value) = l.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse().ok())?
                                })
                                .unwrap_or(0usize);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    match response {
                        Some(r) => {
                            let _ = socket.write_all(r.as_bytes()).await;
                            let _ = socket.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn http(status: &str, content_type: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: r1\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn query_error(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r1</RequestId></ErrorResponse>"
        )
    }

    async fn cloud_at(endpoint: &str) -> AwsCloud {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(2))
                    .build(),
            )
            .load()
            .await;
        AwsCloud::from_config(config)
    }

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            assume_role: None,
        }
    }

    #[tokio::test]
    async fn an_rds_not_found_answer_is_none_and_gone() {
        let body = query_error("DBInstanceNotFound", "DBInstance db-1 not found.");
        let cloud = cloud_at(&server(Some(http("404 Not Found", "text/xml", &body))).await).await;
        // Instance, then cluster: both answer "not found" (the cluster with an instance code,
        // which is still a "not found" code).
        assert_eq!(
            cloud.describe(&scope(), ResourceKind::Sql, "db-1").await,
            Ok(None)
        );
        assert_eq!(
            cloud
                .delete(&scope(), ResourceKind::Sql, "db-1", None)
                .await,
            Ok(DeleteProgress::Gone)
        );
    }

    #[tokio::test]
    async fn a_dynamodb_throttle_is_throttled() {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
        let cloud = cloud_at(
            &server(Some(http(
                "400 Bad Request",
                "application/x-amz-json-1.0",
                body,
            )))
            .await,
        )
        .await;
        let err = cloud
            .describe(&scope(), ResourceKind::DocumentTable, "t")
            .await
            .expect_err("throttled");
        assert_eq!(err.reason(), "CloudThrottled", "{err}");
        assert!(err.to_string().contains("DescribeTable t"), "{err}");
    }

    #[tokio::test]
    async fn a_dynamodb_access_denied_is_access_denied() {
        let body = r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"not authorized to perform dynamodb:DescribeTable"}"#;
        let cloud = cloud_at(
            &server(Some(http(
                "400 Bad Request",
                "application/x-amz-json-1.0",
                body,
            )))
            .await,
        )
        .await;
        let err = cloud
            .describe(&scope(), ResourceKind::DocumentTable, "t")
            .await
            .expect_err("denied");
        assert!(
            matches!(
                err,
                CloudError::AccessDenied {
                    service: "dynamodb",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_permanent());
    }

    #[tokio::test]
    async fn a_503_is_unavailable() {
        let cloud = cloud_at(
            &server(Some(http(
                "503 Service Unavailable",
                "text/html",
                "<html>busy</html>",
            )))
            .await,
        )
        .await;
        let err = cloud
            .describe(&scope(), ResourceKind::Sql, "db-1")
            .await
            .expect_err("503");
        assert_eq!(err.reason(), "CloudUnavailable", "{err}");
        let err = cloud
            .describe(&scope(), ResourceKind::NodeGroup, "c/ng")
            .await
            .expect_err("503");
        assert_eq!(err.reason(), "CloudUnavailable", "{err}");
    }

    #[tokio::test]
    async fn s3_head_answers_map_by_status() {
        let cloud =
            cloud_at(&server(Some(http("404 Not Found", "application/xml", ""))).await).await;
        assert_eq!(
            cloud.describe(&scope(), ResourceKind::Bucket, "b").await,
            Ok(None)
        );
        assert_eq!(
            cloud
                .delete(&scope(), ResourceKind::Bucket, "b", None)
                .await,
            Ok(DeleteProgress::Gone)
        );
        let cloud =
            cloud_at(&server(Some(http("403 Forbidden", "application/xml", ""))).await).await;
        let err = cloud
            .describe(&scope(), ResourceKind::Bucket, "b")
            .await
            .expect_err("403");
        assert_eq!(err.reason(), "CloudAccessDenied", "{err}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let cloud = cloud_at(&format!("http://127.0.0.1:{port}")).await;
        let err = cloud
            .describe(&scope(), ResourceKind::Cache, "c")
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                CloudError::Unavailable {
                    service: "elasticache",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_as_unavailable() {
        let cloud = cloud_at(&server(None).await).await;
        let err = cloud
            .describe(&scope(), ResourceKind::DocumentTable, "t")
            .await
            .expect_err("timeout");
        assert!(
            matches!(
                err,
                CloudError::Unavailable {
                    service: "dynamodb",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_assume_role_is_access_denied_by_sts() {
        let body = query_error(
            "AccessDenied",
            "User is not authorized to perform: sts:AssumeRole",
        );
        let cloud = cloud_at(&server(Some(http("403 Forbidden", "text/xml", &body))).await).await;
        let scope = Scope {
            region: "eu-west-1".into(),
            assume_role: Some(AssumeRole {
                role_arn: "arn:aws:iam::111111111111:role/gamecell".into(),
                external_id: "ext".into(),
            }),
        };
        let err = cloud
            .describe(&scope, ResourceKind::DocumentTable, "t")
            .await
            .expect_err("denied");
        assert!(
            matches!(err, CloudError::AccessDenied { service: "sts", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("DescribeTable t"), "{err}");
        assert!(
            !err.to_string().contains("ext"),
            "the external id stays out of messages: {err}"
        );
    }

    #[tokio::test]
    async fn params_of_another_kind_are_refused_without_a_call() {
        let cloud = cloud_at("http://127.0.0.1:9").await;
        let desired = DesiredResource {
            kind: ResourceKind::Bucket,
            logical_name: "b".into(),
            identifier: "b".into(),
            tags: BTreeMap::new(),
            adopt: false,
            params: ResourceParams::Cache(CacheParams {
                node_type: "cache.t4g.micro".into(),
                replicas: 0,
                engine_version: None,
                kms_key_id: None,
                maintenance_window: None,
            }),
        };
        let err = cloud
            .create(&scope(), &desired)
            .await
            .expect_err("mismatch");
        assert_eq!(err.reason(), "CloudInvalidRequest");
    }
}
