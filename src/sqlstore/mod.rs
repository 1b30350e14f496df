//! The SQL bootstrap of shared cells (I/O): gives every tenant of a shared cell its own database
//! and login on the cell's SQL store, behind the [`TenantDatabases`] seam so the in-memory fake
//! cloud needs no database server ([`InMemoryTenantDatabases`]) while AWS talks to the instance
//! ([`admin::SqlAdmin`]). What to run is decided by the pure `cell::tenant_sql`.
//!
//! Where each secret lives:
//! - the **master** credentials stay in the RDS-managed secret in Secrets Manager (ARN from
//!   `DescribeDBInstances` `MasterUserSecret`; moto 5.2.5 creates that secret too). They are
//!   read for each bootstrap pass, used for one session and dropped; never written anywhere.
//! - a **tenant's** password lives only in its connection Secret (`gamecell-sql`, key
//!   `SQL_PASSWORD`) in the tenant's own namespace: the source of truth, which survives operator
//!   restarts. It is generated when that Secret has none, set on the login first, and published
//!   in the Secret only once the database accepted it, so a crash in between costs at most one
//!   more re-issue, never a Secret that disagrees with the login.
//!
//! Errors never carry a secret: messages are built from the SQLSTATE / error number and the
//! redacted statement, and every known secret is scrubbed from whatever text remains.

pub mod admin;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::cell::tenant_sql::{
    self, Blocked, DesiredTenant, Engine, Removal, TENANT_DATABASES_READY, is_policy_password,
};
use crate::cloud::{DesiredResource, ObservedResource, ResourceKind, ResourceParams, Scope};
use crate::controllers::apply::{Applier, read_secret};
use crate::crds::gamecell::GameCellSpec;

/// The key of the tenant's password in its `gamecell-sql` Secret.
pub const PASSWORD_KEY: &str = "SQL_PASSWORD";
/// Name of the tenant's SQL connection Secret.
pub const SQL_SECRET: &str = "gamecell-sql";

/// The store a bootstrap pass acts on.
#[derive(Clone, Copy, Debug)]
pub struct StoreRef<'a> {
    /// Where the cell's cloud calls act (for the master secret).
    pub scope: &'a Scope,
    /// The store's cloud identifier.
    pub identifier: &'a str,
    /// Its dialect.
    pub engine: Engine,
    /// Endpoint host as the cloud reports it.
    pub endpoint: Option<&'a str>,
    /// Endpoint port.
    pub port: Option<i32>,
    /// ARN of the RDS-managed master secret.
    pub master_secret_arn: Option<&'a str>,
}

/// What one bootstrap pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Write statements run (0 on a quiet pass).
    pub statements_run: usize,
    /// Tenants whose login got its (newly generated) password in this pass.
    pub passwords_set: BTreeSet<String>,
    /// Tenants left alone because something is in the way.
    pub blocked: Vec<Blocked>,
    /// Removed tenants acted on.
    pub removed: Vec<String>,
}

/// Why a bootstrap pass failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The instance cannot be reached or dropped the session: retried with backoff.
    #[error("SQL store unreachable: {0}")]
    Unavailable(String),
    /// The master credentials were refused: waits for a change (or the slow retry).
    #[error("the SQL store refused the master credentials: {0}")]
    MasterAuthFailed(String),
    /// The master secret cannot be read (missing ARN, not found, no permission).
    #[error("cannot read the master secret: {0}")]
    MasterSecretUnavailable(String),
    /// Reading the master secret failed transiently (throttled, 5xx).
    #[error("cannot read the master secret yet: {0}")]
    SecretsManagerUnavailable(String),
    /// The master may not run a statement of the plan.
    #[error("the master user lacks a privilege: {0}")]
    PermissionDenied(String),
    /// A statement failed for another reason: retried with backoff.
    #[error("a statement failed: {0}")]
    StatementFailed(String),
    /// The store's engine has no SQL bootstrap, or it is not configured.
    #[error("{0}")]
    Unsupported(String),
}

impl SqlError {
    /// Failures that wait for a change instead of retrying with backoff.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::MasterAuthFailed(_)
                | Self::MasterSecretUnavailable(_)
                | Self::PermissionDenied(_)
                | Self::Unsupported(_)
        )
    }

    /// PascalCase reason for conditions and Events.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "SqlUnavailable",
            Self::MasterAuthFailed(_) => "SqlMasterAuthFailed",
            Self::MasterSecretUnavailable(_) => "SqlMasterSecretUnavailable",
            Self::SecretsManagerUnavailable(_) => "CloudUnavailable",
            Self::PermissionDenied(_) => "SqlPermissionDenied",
            Self::StatementFailed(_) => "SqlStatementFailed",
            Self::Unsupported(_) => "SqlBootstrapUnsupported",
        }
    }
}

/// Replaces every occurrence of a secret in `text`.
#[must_use]
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |acc, s| acc.replace(s, "<redacted>"))
}

/// Creates, checks and removes tenants' databases and logins on a store.
#[async_trait]
pub trait TenantDatabases: Send + Sync + 'static {
    /// Brings the store's tenants to `tenants` (and removes registered tenants of `cell_uid`
    /// not among them, per `removal`). Writes nothing when nothing changed.
    async fn reconcile(
        &self,
        store: &StoreRef<'_>,
        cell_uid: &str,
        tenants: &[DesiredTenant],
        removal: Removal,
    ) -> Result<Report, SqlError>;
}

/// An in-memory stand-in for reconciler tests on the fake cloud: keeps, per store, which tenant
/// is registered to which cell, and counts the writes a real store would take.
#[derive(Default)]
pub struct InMemoryTenantDatabases {
    stores: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    writes: Mutex<usize>,
}

impl InMemoryTenantDatabases {
    /// Tenants (identifiers) that have a database on `store`.
    #[must_use]
    pub fn tenants(&self, store: &str) -> Vec<String> {
        self.stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(store)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes so far.
    #[must_use]
    pub fn writes(&self) -> usize {
        *self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl TenantDatabases for InMemoryTenantDatabases {
    async fn reconcile(
        &self,
        store: &StoreRef<'_>,
        cell_uid: &str,
        tenants: &[DesiredTenant],
        removal: Removal,
    ) -> Result<Report, SqlError> {
        let mut stores = self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let registered = stores.entry(store.identifier.to_owned()).or_default();
        let mut observed = tenant_sql::Observed {
            registry_exists: true,
            registered: registered.clone(),
            ..tenant_sql::Observed::default()
        };
        for ident in registered.keys() {
            observed.logins.insert(
                ident.clone(),
                tenant_sql::LoginState {
                    can_login: true,
                    master_is_member: true,
                    granted_own_database: true,
                },
            );
            observed.databases.insert(
                ident.clone(),
                tenant_sql::DatabaseState {
                    owner: if store.engine == Engine::Postgres {
                        ident.clone()
                    } else {
                        String::new()
                    },
                    public_can_connect: false,
                },
            );
        }
        let plan = tenant_sql::plan(store.engine, cell_uid, tenants, &observed, removal);
        for t in tenants {
            let ident = tenant_sql::tenant_identifier(&t.name);
            if !plan.blocked.iter().any(|b| b.tenant == t.name) {
                registered.insert(ident, cell_uid.to_owned());
            }
        }
        if removal == Removal::Drop {
            for ident in &plan.removed {
                registered.remove(ident);
            }
        }
        *self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += plan.statements.len();
        Ok(Report {
            statements_run: plan.statements.len(),
            passwords_set: plan.passwords_set,
            blocked: plan.blocked,
            removed: plan.removed,
        })
    }
}

/// A newly generated tenant password (OS randomness, see `cell::tenant_sql`).
///
/// # Errors
/// When the OS has no randomness to give (then nothing is created).
pub fn generate_password() -> Result<String, SqlError> {
    let mut bytes = [0u8; 128];
    getrandom::fill(&mut bytes)
        .map_err(|e| SqlError::StatementFailed(format!("no OS randomness: {e}")))?;
    tenant_sql::password_from_bytes(bytes).ok_or_else(|| {
        SqlError::StatementFailed("not enough random bytes for a password".to_owned())
    })
}

/// What the bootstrap step of one reconcile found: the condition to report and the passwords
/// to publish in the tenants' Secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantDatabasesOutcome {
    /// Whether every tenant has its database and login.
    pub ready: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do, or what is in place.
    pub message: String,
    /// The failure stops progress until something changes (Stalled) rather than retrying.
    pub permanent: bool,
    /// Password to publish per tenant name: the known one, or a new one the login accepted.
    pub passwords: BTreeMap<String, String>,
    /// Write statements run in this pass.
    pub statements_run: usize,
}

impl std::fmt::Debug for TenantDatabasesOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantDatabasesOutcome")
            .field("ready", &self.ready)
            .field("reason", &self.reason)
            .field("message", &self.message)
            .field("permanent", &self.permanent)
            .field("tenants_with_password", &self.passwords.keys())
            .field("statements_run", &self.statements_run)
            .finish()
    }
}

impl TenantDatabasesOutcome {
    /// The condition type this outcome reports.
    pub const CONDITION: &'static str = TENANT_DATABASES_READY;
}

/// The shared cell's SQL store (desired and observed), if the cell is shared and has one.
fn shared_sql_store<'a>(
    spec: &GameCellSpec,
    desired: &'a [DesiredResource],
    observed: &'a BTreeMap<(ResourceKind, String), ObservedResource>,
) -> Option<(&'a DesiredResource, Option<&'a ObservedResource>)> {
    if !crate::cell::policy::tier_policy(spec.tier).per_tenant_data {
        return None;
    }
    let d = desired.iter().find(|d| d.kind == ResourceKind::Sql)?;
    Some((d, observed.get(&(d.kind, d.identifier.clone()))))
}

/// The password in the tenant's `gamecell-sql` Secret, if it holds one the policy could have
/// generated.
async fn published_password(
    applier: &Applier,
    namespace: &str,
) -> Result<Option<String>, kube::Error> {
    let secret = read_secret(applier, namespace, SQL_SECRET, &[PASSWORD_KEY]).await?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|d| d.get(PASSWORD_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|p| is_policy_password(p)))
}

/// Runs the bootstrap for a shared cell's SQL store once it is available. `None` for cells
/// without one (not shared, or no SQL store).
///
/// # Errors
/// When the tenants' Secrets cannot be read (a Kubernetes API failure).
pub async fn ensure_tenant_databases(
    applier: &Applier,
    databases: &dyn TenantDatabases,
    spec: &GameCellSpec,
    cell_uid: &str,
    desired: &[DesiredResource],
    observed: &BTreeMap<(ResourceKind, String), ObservedResource>,
    scope: &Scope,
) -> Result<Option<TenantDatabasesOutcome>, kube::Error> {
    let Some((store, seen)) = shared_sql_store(spec, desired, observed) else {
        return Ok(None);
    };
    let engine_name = match &store.params {
        ResourceParams::Sql(p) => p.engine.as_str(),
        _ => "",
    };
    let Some(engine) = Engine::from_rds(engine_name) else {
        let e = SqlError::Unsupported(format!("engine {engine_name:?} has no tenant bootstrap"));
        return Ok(Some(failed(&e, BTreeMap::new())));
    };
    // Every published password is read (and republished) whatever happens next: the Secret
    // apply owns SQL_PASSWORD, so leaving it out would delete it.
    let mut tenants = Vec::new();
    for t in &spec.tenants {
        let (password, known) = match published_password(applier, &t.namespace).await? {
            Some(p) => (p, true),
            None => match generate_password() {
                Ok(p) => (p, false),
                Err(e) => return Ok(Some(failed(&e, BTreeMap::new()))),
            },
        };
        tenants.push(DesiredTenant {
            name: t.name.clone(),
            password,
            password_known: known,
        });
    }
    let known: BTreeMap<String, String> = tenants
        .iter()
        .filter(|t| t.password_known)
        .map(|t| (t.name.clone(), t.password.clone()))
        .collect();
    let Some(seen) = seen.filter(|o| o.ready) else {
        return Ok(Some(TenantDatabasesOutcome {
            ready: false,
            reason: "WaitingForStore",
            message: format!(
                "tenants' databases are created once Sql {} is available",
                store.identifier
            ),
            permanent: false,
            passwords: known,
            statements_run: 0,
        }));
    };
    let store_ref = StoreRef {
        scope,
        identifier: &store.identifier,
        engine,
        endpoint: seen.endpoint.as_deref(),
        port: seen.port,
        master_secret_arn: seen.secret_arn.as_deref(),
    };
    let removal = Removal::from(spec.deletion_policy);
    let started = std::time::Instant::now();
    match databases
        .reconcile(&store_ref, cell_uid, &tenants, removal)
        .await
    {
        Ok(report) => {
            let mut passwords = known;
            for t in &tenants {
                if report.passwords_set.contains(&t.name) {
                    passwords.insert(t.name.clone(), t.password.clone());
                }
            }
            if report.statements_run > 0 {
                tracing::info!(
                    store = %store.identifier,
                    statements = report.statements_run,
                    removed = ?report.removed,
                    elapsed_ms = started.elapsed().as_millis(),
                    "tenant databases reconciled"
                );
            }
            let ready_count = spec.tenants.len() - report.blocked.len();
            Ok(Some(match report.blocked.first() {
                Some(b) => TenantDatabasesOutcome {
                    ready: false,
                    reason: b.reason,
                    message: report
                        .blocked
                        .iter()
                        .map(|b| b.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                    permanent: true,
                    passwords,
                    statements_run: report.statements_run,
                },
                None => TenantDatabasesOutcome {
                    ready: true,
                    reason: "TenantDatabasesReady",
                    message: format!(
                        "{ready_count} of {} tenants have their own database and login on Sql {}",
                        spec.tenants.len(),
                        store.identifier
                    ),
                    permanent: false,
                    passwords,
                    statements_run: report.statements_run,
                },
            }))
        }
        Err(e) => {
            tracing::warn!(store = %store.identifier, reason = e.reason(), error = %e, "tenant databases not reconciled");
            Ok(Some(failed(&e, known)))
        }
    }
}

fn failed(error: &SqlError, passwords: BTreeMap<String, String>) -> TenantDatabasesOutcome {
    TenantDatabasesOutcome {
        ready: false,
        reason: error.reason(),
        message: error.to_string(),
        permanent: error.is_permanent(),
        passwords,
        statements_run: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_known_secret() {
        let text = "connect to postgres://gamecell:hunter2hunter@db failed; pw hunter2hunter";
        let out = scrub(text, &["hunter2hunter", "ab"]);
        assert!(!out.contains("hunter2hunter"));
        assert!(out.contains("<redacted>"));
    }

    #[test]
    fn only_misconfiguration_waits_for_a_change() {
        assert!(SqlError::MasterAuthFailed(String::new()).is_permanent());
        assert!(SqlError::PermissionDenied(String::new()).is_permanent());
        assert!(!SqlError::Unavailable(String::new()).is_permanent());
        assert!(!SqlError::StatementFailed(String::new()).is_permanent());
        assert_eq!(
            SqlError::MasterAuthFailed(String::new()).reason(),
            "SqlMasterAuthFailed"
        );
    }

    #[test]
    fn a_shared_cell_is_not_ready_until_its_tenants_databases_are() {
        use crate::controllers::gamecell::{Outcome, cell_status};
        use crate::crds::conditions::READY;
        use crate::crds::gamecell::DataStoreStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

        let spec: GameCellSpec = serde_json::from_value(serde_json::json!({
            "tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "alpha", "namespace": "a"}],
            "dataStores": {"sql": {"engine": "Postgres", "version": "16"}}
        }))
        .expect("spec");
        let mut outcome = Outcome {
            stores: vec![DataStoreStatus {
                kind: "Sql".into(),
                name: "sql".into(),
                identifier: "gc-x-sql".into(),
                state: "available".into(),
                endpoint: None,
                ready: true,
            }],
            total_stores: 1,
            tenant_databases: Some((false, "SqlStatementFailed", "SQLSTATE 42P07".into())),
            ..Outcome::default()
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status_of = |outcome: &Outcome, type_: &str| {
            cell_status(&spec, None, Some(1), outcome, &now)
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        assert_eq!(status_of(&outcome, READY).expect("Ready").0, "False");
        assert_eq!(
            status_of(&outcome, TENANT_DATABASES_READY),
            Some(("False".into(), "SqlStatementFailed".into()))
        );
        outcome.tenant_databases = Some((true, "TenantDatabasesReady", "1 of 1".into()));
        assert_eq!(status_of(&outcome, READY).expect("Ready").0, "True");
        outcome.tenant_databases = None;
        assert_eq!(status_of(&outcome, TENANT_DATABASES_READY), None);
    }

    #[test]
    fn generated_passwords_follow_the_policy_and_differ() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert!(is_policy_password(&a));
        assert_ne!(a, b);
    }
}
