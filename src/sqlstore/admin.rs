//! The real tenant bootstrap (I/O): reads the master credentials from the RDS-managed secret in
//! Secrets Manager, opens one master session on the instance (Postgres or MySQL, through sqlx),
//! observes with read-only queries, and runs the pure plan's statements one by one.
//!
//! Reachability and TLS: in production the operator reaches the instance's endpoint from inside
//! the VPC, with TLS required (RDS certificates are verified against the CA bundle named by
//! `GAMECELL_SQL_CA_FILE` when set, else the session is encrypted without verification). Locally
//! moto's endpoints are fake hostnames, so `GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES` /
//! `GAMECELL_SQL_ENDPOINT_OVERRIDE_MYSQL` (`127.0.0.1:PORT`) send every store of that engine to a
//! local server instead. An override must be a loopback address, and only then is TLS off (the
//! local test servers run without it); a non-loopback override is refused.
//!
//! Every statement runs outside a transaction (`CREATE DATABASE` cannot run in one); the plan is
//! idempotent, so a pass cut short is finished by the next one.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::future::BoxFuture;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use super::{Report, SqlError, StoreRef, TenantDatabases, scrub};
use crate::cell::tenant_sql::{
    self, DatabaseState, DesiredTenant, Engine, LoginState, Observed, Removal, Statement,
};
use crate::cloud::aws::{Classified, classify, scoped_config};

/// Environment variable of the local Postgres override.
pub const OVERRIDE_POSTGRES: &str = "GAMECELL_SQL_ENDPOINT_OVERRIDE_POSTGRES";
/// Environment variable of the local MySQL override.
pub const OVERRIDE_MYSQL: &str = "GAMECELL_SQL_ENDPOINT_OVERRIDE_MYSQL";
/// Environment variable naming a CA bundle to verify RDS certificates with.
pub const CA_FILE: &str = "GAMECELL_SQL_CA_FILE";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where to connect and whether with TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS required.
    pub tls: bool,
}

/// The connection target of a store, from its endpoint and the engine's override (pure).
///
/// # Errors
/// When the endpoint is unknown or the override is malformed or not loopback.
pub fn target(
    endpoint: Option<&str>,
    port: Option<i32>,
    override_value: Option<&str>,
) -> Result<Target, SqlError> {
    if let Some(value) = override_value.filter(|v| !v.is_empty()) {
        let addr: SocketAddr = value.parse().map_err(|_| {
            SqlError::Unsupported(format!(
                "the SQL endpoint override {value:?} is not an IP:PORT address"
            ))
        })?;
        if !is_loopback(addr.ip()) {
            return Err(SqlError::Unsupported(format!(
                "the SQL endpoint override {value:?} is not a loopback address: overrides exist for local test servers only"
            )));
        }
        return Ok(Target {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: false,
        });
    }
    let host = endpoint
        .filter(|h| !h.is_empty())
        .ok_or_else(|| SqlError::Unavailable("the store reports no endpoint yet".to_owned()))?;
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| SqlError::Unavailable("the store reports no port yet".to_owned()))?;
    Ok(Target {
        host: host.to_owned(),
        port,
        tls: true,
    })
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Master user name and password from the RDS-managed secret (`{"username", "password"}`).
#[derive(Clone)]
struct Master {
    username: String,
    password: String,
}

/// The master credentials in an RDS-managed secret's JSON (pure).
fn parse_master(secret_string: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(secret_string).ok()?;
    Some((
        value.get("username")?.as_str()?.to_owned(),
        value.get("password")?.as_str()?.to_owned(),
    ))
}

/// The AWS tenant bootstrap.
pub struct SqlAdmin {
    base: SdkConfig,
    writes: AtomicUsize,
    passes: AtomicUsize,
    last_writing_pass_micros: AtomicUsize,
}

impl std::fmt::Debug for SqlAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlAdmin")
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl SqlAdmin {
    /// A bootstrap reading master secrets with this SDK configuration.
    #[must_use]
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            writes: AtomicUsize::new(0),
            passes: AtomicUsize::new(0),
            last_writing_pass_micros: AtomicUsize::new(0),
        }
    }

    /// Write statements run since start.
    #[must_use]
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    /// How long the last pass that ran statements took, from fetching the master secret to
    /// its last statement (`None` before the first).
    #[must_use]
    pub fn last_writing_pass(&self) -> Option<Duration> {
        match self.last_writing_pass_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros as u64)),
        }
    }

    /// Bootstrap passes that reached the instance since start.
    #[must_use]
    pub fn passes(&self) -> usize {
        self.passes.load(Ordering::Relaxed)
    }

    async fn master(&self, store: &StoreRef<'_>) -> Result<Master, SqlError> {
        let arn = store.master_secret_arn.ok_or_else(|| {
            SqlError::MasterSecretUnavailable(format!(
                "Sql {} reports no RDS-managed master secret (MasterUserSecret)",
                store.identifier
            ))
        })?;
        let config = scoped_config(&self.base, store.scope).await;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                let message = format!("GetSecretValue {arn}: {}", e.code().unwrap_or("error"));
                match classify(
                    "secretsmanager",
                    e.code(),
                    e.raw_response().map(|r| r.status().as_u16()),
                    message.clone(),
                ) {
                    Classified::NotFound { .. } => SqlError::MasterSecretUnavailable(message),
                    Classified::Error(c) if c.is_permanent() => {
                        SqlError::MasterSecretUnavailable(message)
                    }
                    Classified::Error(_) => SqlError::SecretsManagerUnavailable(message),
                }
            })?;
        let (username, password) = out.secret_string().and_then(parse_master).ok_or_else(|| {
            SqlError::MasterSecretUnavailable(format!(
                "secret {arn} does not hold a JSON username and password"
            ))
        })?;
        Ok(Master { username, password })
    }
}

/// One master session.
enum Session {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

/// A failure of `statement` (or of the session when `None`), classified, with no secret in it.
fn classify_sql(error: &sqlx::Error, statement: Option<&Statement>, secrets: &[&str]) -> SqlError {
    let what = statement.map_or_else(|| "connecting".to_owned(), |s| format!("running `{s}`"));
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            // A server message can quote the statement: never show it for one with a secret.
            let detail = if statement.is_some_and(Statement::carries_secret) {
                format!("SQLSTATE {code}")
            } else {
                scrub(&format!("SQLSTATE {code}: {}", db.message()), secrets)
            };
            let message = format!("{what}: {detail}");
            match (code.as_str(), number) {
                ("28P01" | "28000", _) | (_, Some(1045)) if statement.is_none() => {
                    SqlError::MasterAuthFailed(message)
                }
                ("42501", _) | (_, Some(1044 | 1045 | 1142 | 1227 | 1410)) => {
                    SqlError::PermissionDenied(message)
                }
                ("57P01" | "57P02" | "57P03" | "53300", _)
                | (_, Some(1040 | 1053 | 1205 | 1213)) => SqlError::Unavailable(message),
                _ if code.starts_with("08") => SqlError::Unavailable(message),
                _ => SqlError::StatementFailed(message),
            }
        }
        sqlx::Error::Io(e) => SqlError::Unavailable(scrub(&format!("{what}: {e}"), secrets)),
        sqlx::Error::Tls(_) => SqlError::Unavailable(format!("{what}: TLS handshake failed")),
        sqlx::Error::PoolTimedOut => SqlError::Unavailable(format!("{what}: timed out")),
        other => {
            SqlError::StatementFailed(scrub(&format!("{what}: {}", error_kind(other)), secrets))
        }
    }
}

/// The kind of an sqlx error without its text (which can hold connection details).
fn error_kind(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "configuration error",
        sqlx::Error::Protocol(_) => "protocol error",
        sqlx::Error::RowNotFound => "no row",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "cannot decode a column",
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            "unexpected result shape"
        }
        _ => "driver error",
    }
}

async fn connect(engine: Engine, target: &Target, master: &Master) -> Result<Session, sqlx::Error> {
    let ca = std::env::var(CA_FILE).ok().filter(|v| !v.is_empty());
    let connecting = async {
        match engine {
            Engine::Postgres => {
                let mut options = PgConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .username(&master.username)
                    .password(&master.password)
                    .database(engine.admin_database().unwrap_or("postgres"))
                    .application_name("gamecell-operator");
                options = match (target.tls, &ca) {
                    (false, _) => options.ssl_mode(PgSslMode::Disable),
                    (true, Some(ca)) => options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca),
                    (true, None) => options.ssl_mode(PgSslMode::Require),
                };
                // sqlx logs every statement at debug level, and CREATE/ALTER ROLE carry the
                // tenant's password: never log statements (caught by the sentinel e2e test).
                let options = options.disable_statement_logging();
                PgConnection::connect_with(&options)
                    .await
                    .map(Session::Postgres)
            }
            Engine::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .username(&master.username)
                    .password(&master.password);
                options = match (target.tls, &ca) {
                    (false, _) => options.ssl_mode(MySqlSslMode::Disabled),
                    (true, Some(ca)) => options.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca(ca),
                    (true, None) => options.ssl_mode(MySqlSslMode::Required),
                };
                // As above: statements carry passwords, so they are never logged.
                let options = options.disable_statement_logging();
                MySqlConnection::connect_with(&options)
                    .await
                    .map(Session::MySql)
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

impl Session {
    fn observe<'a>(
        &'a mut self,
        cell_uid: &'a str,
        desired: &'a [DesiredTenant],
    ) -> BoxFuture<'a, Result<Observed, sqlx::Error>> {
        Box::pin(self.observe_inner(cell_uid, desired))
    }

    async fn observe_inner(
        &mut self,
        cell_uid: &str,
        desired: &[DesiredTenant],
    ) -> Result<Observed, sqlx::Error> {
        let mut observed = Observed::default();
        match self {
            Self::Postgres(conn) => {
                observed.registry_exists = sqlx::query_scalar::<_, bool>(
                    "SELECT to_regclass('gamecell_operator.tenants') IS NOT NULL",
                )
                .fetch_one(&mut *conn)
                .await?;
                if observed.registry_exists {
                    observed.registered = sqlx::query_as::<_, (String, String)>(
                        "SELECT tenant, cell_uid FROM gamecell_operator.tenants",
                    )
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .collect();
                }
                let names =
                    tenant_sql::identifiers_to_observe(desired, &observed.registered, cell_uid);
                for (name, can_login, member) in sqlx::query_as::<_, (String, bool, bool)>(
                    "SELECT rolname::text, rolcanlogin, pg_has_role(current_user, oid, 'USAGE') FROM pg_roles WHERE rolname = ANY($1)",
                )
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?
                {
                    observed.logins.insert(
                        name,
                        LoginState {
                            can_login,
                            master_is_member: member,
                            granted_own_database: true,
                        },
                    );
                }
                for (name, owner, public) in sqlx::query_as::<_, (String, String, bool)>(
                    "SELECT datname::text, pg_get_userbyid(datdba)::text, has_database_privilege('public', oid, 'CONNECT') FROM pg_database WHERE datname = ANY($1)",
                )
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?
                {
                    observed.databases.insert(
                        name,
                        DatabaseState {
                            owner,
                            public_can_connect: public,
                        },
                    );
                }
            }
            Self::MySql(conn) => {
                observed.registry_exists = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'gamecell_operator' AND TABLE_NAME = 'tenants'",
                )
                .fetch_one(&mut *conn)
                .await?
                    > 0;
                if observed.registry_exists {
                    observed.registered = sqlx::query_as::<_, (String, String)>(
                        "SELECT CAST(tenant AS CHAR), CAST(cell_uid AS CHAR) FROM gamecell_operator.tenants",
                    )
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .collect();
                }
                let names =
                    tenant_sql::identifiers_to_observe(desired, &observed.registered, cell_uid);
                let users: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(User AS CHAR) FROM mysql.user WHERE Host = '%'",
                )
                .fetch_all(&mut *conn)
                .await?;
                let grants: Vec<(String, String)> = sqlx::query_as(
                    "SELECT CAST(Db AS CHAR), CAST(User AS CHAR) FROM mysql.db WHERE Host = '%'",
                )
                .fetch_all(&mut *conn)
                .await?;
                let schemas: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA",
                )
                .fetch_all(&mut *conn)
                .await?;
                for name in &names {
                    if users.contains(name) {
                        let own = tenant_sql::mysql_grant_database(name);
                        observed.logins.insert(
                            name.clone(),
                            LoginState {
                                can_login: true,
                                master_is_member: true,
                                granted_own_database: grants
                                    .iter()
                                    .any(|(db, user)| user == name && *db == own),
                            },
                        );
                    }
                    if schemas.contains(name) {
                        observed
                            .databases
                            .insert(name.clone(), DatabaseState::default());
                    }
                }
            }
        }
        Ok(observed)
    }

    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        match self {
            Self::Postgres(conn) => {
                Box::pin(async move { sqlx::Executor::execute(conn, sql).await.map(|_| ()) })
            }
            Self::MySql(conn) => {
                Box::pin(async move { sqlx::Executor::execute(conn, sql).await.map(|_| ()) })
            }
        }
    }

    /// [`Session::execute`] within [`STATEMENT_TIMEOUT`].
    async fn execute_bounded(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        tokio::time::timeout(STATEMENT_TIMEOUT, self.execute(sql))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn close(self) {
        let _ = match self {
            Self::Postgres(conn) => conn.close().await,
            Self::MySql(conn) => conn.close().await,
        };
    }
}

/// SQLSTATE 23505 (Postgres `unique_violation`).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

impl SqlAdmin {
    /// Observes, plans and runs the plan on an open session.
    async fn run_plan(
        &self,
        session: &mut Session,
        store: &StoreRef<'_>,
        cell_uid: &str,
        tenants: &[DesiredTenant],
        removal: Removal,
        secrets: &[&str],
    ) -> Result<Report, SqlError> {
        let observed = session
            .observe(cell_uid, tenants)
            .await
            .map_err(|e| match classify_sql(&e, None, secrets) {
                // Observation runs after a successful login: a refusal there is a missing
                // privilege, not bad credentials.
                SqlError::MasterAuthFailed(m) => SqlError::PermissionDenied(m),
                other => other,
            })?;
        let plan = tenant_sql::plan(store.engine, cell_uid, tenants, &observed, removal);
        for statement in &plan.statements {
            tracing::debug!(store = %store.identifier, statement = %statement, "SQL");
            let mut outcome = session.execute_bounded(statement.sql()).await;
            if statement.retry_on_creation_race()
                && outcome.as_ref().is_err_and(is_unique_violation)
            {
                // Lost a race with another session creating the same object: it exists now.
                outcome = session.execute_bounded(statement.sql()).await;
            }
            outcome.map_err(|e| classify_sql(&e, Some(statement), secrets))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Report {
            statements_run: plan.statements.len(),
            passwords_set: plan.passwords_set,
            blocked: plan.blocked,
            removed: plan.removed,
        })
    }
}

#[async_trait]
impl TenantDatabases for SqlAdmin {
    async fn reconcile(
        &self,
        store: &StoreRef<'_>,
        cell_uid: &str,
        tenants: &[DesiredTenant],
        removal: Removal,
    ) -> Result<Report, SqlError> {
        let override_var = match store.engine {
            Engine::Postgres => OVERRIDE_POSTGRES,
            Engine::MySql => OVERRIDE_MYSQL,
        };
        let override_value = std::env::var(override_var).ok();
        let target = target(store.endpoint, store.port, override_value.as_deref())?;
        let started = std::time::Instant::now();
        let master = self.master(store).await?;
        let mut secrets: Vec<&str> = vec![master.password.as_str()];
        secrets.extend(tenants.iter().map(|t| t.password.as_str()));
        let mut session = connect(store.engine, &target, &master)
            .await
            .map_err(|e| classify_sql(&e, None, &secrets))?;
        self.passes.fetch_add(1, Ordering::Relaxed);
        let result = self
            .run_plan(&mut session, store, cell_uid, tenants, removal, &secrets)
            .await;
        session.close().await;
        if result.as_ref().is_ok_and(|r| r.statements_run > 0) {
            let micros = usize::try_from(started.elapsed().as_micros()).unwrap_or(usize::MAX);
            self.last_writing_pass_micros
                .store(micros.max(1), Ordering::Relaxed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_must_be_loopback_and_turns_tls_off() {
        let t = target(
            Some("db.rds.amazonaws.com"),
            Some(5432),
            Some("127.0.0.1:15432"),
        )
        .expect("override");
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1".into(),
                port: 15432,
                tls: false
            }
        );
        assert!(matches!(
            target(None, None, Some("10.0.0.5:5432")),
            Err(SqlError::Unsupported(_))
        ));
        assert!(target(None, None, Some("localhost")).is_err());
        let t = target(Some("db.rds.amazonaws.com"), Some(5432), None).expect("endpoint");
        assert!(t.tls);
        assert!(matches!(
            target(None, Some(5432), None),
            Err(SqlError::Unavailable(_))
        ));
    }

    #[test]
    fn master_secret_json_is_read_and_bad_json_is_refused() {
        assert_eq!(
            parse_master(r#"{"username":"gamecell","password":"p"}"#),
            Some(("gamecell".into(), "p".into()))
        );
        assert_eq!(parse_master("not json"), None);
        assert_eq!(parse_master(r#"{"username":"gamecell"}"#), None);
    }

    #[test]
    fn driver_errors_without_a_database_answer_carry_no_text() {
        let e = classify_sql(
            &sqlx::Error::Configuration("postgres://gamecell:s3cretpassword@host".into()),
            None,
            &[],
        );
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused s3cretpassword",
        ));
        let e = classify_sql(&io, None, &["s3cretpassword"]);
        assert!(matches!(e, SqlError::Unavailable(_)));
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
