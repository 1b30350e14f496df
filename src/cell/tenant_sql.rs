//! The per-tenant database and login of a shared cell's SQL store (pure): their names, the
//! password policy, identifier quoting, and the plan of statements that brings an instance from
//! what was observed on it to what the spec asks for, per engine (Postgres, MySQL/MariaDB).
//!
//! Decisions (the I/O side is `crate::sqlstore`):
//! - **Names.** A tenant `foo-bar` gets a database and a login both named `foo_bar` (tenant names
//!   are DNS labels of at most 20 characters, so the result is a plain identifier that fits every
//!   engine's limit; it is still always quoted). Names the engines reserve (`public`, `pg_*`,
//!   ...) are refused with `TenantNameReserved` rather than mangled.
//! - **Ownership.** Every instance carries a registry, `gamecell_operator.tenants` (a schema of
//!   the admin database on Postgres, a database on MySQL), holding `(tenant, cell_uid)`. A tenant
//!   is registered *before* its login and database are created, so whatever the operator created
//!   is always registered. A login or database that exists but is not registered as this cell's
//!   tenant is never altered or dropped (`TenantDatabaseConflict`), and removal only ever acts on
//!   registered tenants: the registry is also how a removed tenant is found again after its
//!   namespace (and connection Secret) is gone.
//! - **Isolation.** Postgres: the tenant role owns its database and `CONNECT`/`TEMPORARY` are
//!   revoked from `PUBLIC`, so no other tenant can connect to it. MySQL: the user holds
//!   `ALL PRIVILEGES` on its own database only.
//! - **Quiet.** The plan is computed from a read-only observation; with nothing to change it is
//!   empty, so a resync runs no write. A password is only (re)set when the operator generated a
//!   new one because the tenant's Secret holds none: the login's password is never rewritten on
//!   a resync.
//! - **Removal** follows the cell's `deletionPolicy`. `Delete` drops the tenant's database and
//!   login and unregisters it. `Snapshot` keeps the data and only takes the login away: on
//!   Postgres the role is kept with `NOLOGIN` (it owns the database's objects, which dropping it
//!   would force onto another role), on MySQL the user is dropped (a MySQL database is not owned
//!   by a user); the registry entry stays, so re-adding the tenant gives it its data back with a
//!   new password. The cell's own final snapshot happens only when the whole store goes; a
//!   tenant removal keeps its database in place, which is the snapshot-equivalent that can be
//!   restored without restoring the instance. `Retain` changes nothing.
//! - **Passwords** are 32 characters of `[A-Za-z0-9]` (about 190 bits) drawn from OS randomness
//!   by rejection sampling. Their only home is the tenant's connection Secret; a Secret value that
//!   does not match this policy is treated as absent (and a new password is issued), so nothing
//!   but a generated password is ever put inside a statement. Statements print redacted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::crds::gamecell::DeletionPolicy;

/// Condition type of a shared cell with a SQL store: every tenant has its database and login.
pub const TENANT_DATABASES_READY: &str = "TenantDatabasesReady";

/// Schema (Postgres, in the admin database) or database (MySQL) of the operator's registry.
pub const REGISTRY_SCHEMA: &str = "gamecell_operator";

/// Length of a generated tenant password.
pub const PASSWORD_LEN: usize = 32;

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The SQL dialect of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// PostgreSQL (RDS `postgres`, Aurora `aurora-postgresql`).
    Postgres,
    /// MySQL or MariaDB (RDS `mysql`, `mariadb`, Aurora `aurora-mysql`).
    MySql,
}

impl Engine {
    /// The dialect of an RDS engine name.
    #[must_use]
    pub fn from_rds(engine: &str) -> Option<Self> {
        match engine {
            "postgres" | "aurora-postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" | "aurora-mysql" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The database a master session connects to.
    #[must_use]
    pub fn admin_database(self) -> Option<&'static str> {
        match self {
            Self::Postgres => Some("postgres"),
            Self::MySql => None,
        }
    }
}

/// The database and login name of a tenant: its name with `-` mapped to `_`.
#[must_use]
pub fn tenant_identifier(tenant: &str) -> String {
    tenant.replace('-', "_")
}

/// Why an identifier cannot be a tenant's database or login, if it cannot.
#[must_use]
pub fn reserved_problem(identifier: &str) -> Option<String> {
    const RESERVED: &[&str] = &[
        "public",
        "none",
        "current_user",
        "current_role",
        "session_user",
        "user",
        "all",
        "postgres",
        "template0",
        "template1",
        "rdsadmin",
        "mysql",
        "sys",
        "information_schema",
        "performance_schema",
        "innodb",
        REGISTRY_SCHEMA,
    ];
    let valid = !identifier.is_empty()
        && identifier.len() <= 32
        && identifier.starts_with(|c: char| c.is_ascii_lowercase())
        && identifier
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Some(format!(
            "{identifier:?} is not a plain lowercase identifier of at most 32 characters"
        ));
    }
    if RESERVED.contains(&identifier)
        || identifier.starts_with("pg_")
        || identifier.starts_with("rds")
    {
        return Some(format!(
            "{identifier:?} is reserved by the database engine or the operator; rename the tenant"
        ));
    }
    None
}

/// `ident` quoted for `engine` (any embedded quote character doubled).
#[must_use]
pub fn quote_ident(engine: Engine, ident: &str) -> String {
    match engine {
        Engine::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        Engine::MySql => format!("`{}`", ident.replace('`', "``")),
    }
}

/// `value` as a string literal. Backslashes are escaped too, which is right for MySQL's default
/// mode and harmless for the values used here (identifiers and generated passwords, which hold
/// neither quotes nor backslashes).
#[must_use]
pub fn quote_literal(engine: Engine, value: &str) -> String {
    let escaped = value.replace('\'', "''");
    match engine {
        Engine::Postgres => format!("'{escaped}'"),
        Engine::MySql => format!("'{}'", escaped.replace('\\', "\\\\")),
    }
}

/// The database name of a MySQL grant on `ident`'s database: `_` is a wildcard in grants, so it
/// is escaped (else `a_b` would also be granted a database `axb`). `mysql.db` stores this form.
#[must_use]
pub fn mysql_grant_database(ident: &str) -> String {
    ident
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

/// A MySQL account name (`'user'@'%'`).
fn mysql_account(ident: &str) -> String {
    format!("{}@'%'", quote_literal(Engine::MySql, ident))
}

/// A password from random bytes by rejection sampling (no modulo bias). Returns `None` when the
/// bytes run out before the password is complete.
pub fn password_from_bytes(bytes: impl IntoIterator<Item = u8>) -> Option<String> {
    // 248 = 4 * 62: bytes at or above it would favour the first characters.
    let limit = u8::try_from(PASSWORD_ALPHABET.len() * 4).unwrap_or(u8::MAX);
    let out: String = bytes
        .into_iter()
        .filter(|b| *b < limit)
        .take(PASSWORD_LEN)
        .map(|b| char::from(PASSWORD_ALPHABET[usize::from(b) % PASSWORD_ALPHABET.len()]))
        .collect();
    (out.len() == PASSWORD_LEN).then_some(out)
}

/// Whether `value` is a password this policy could have generated (and so safe in a statement).
#[must_use]
pub fn is_policy_password(value: &str) -> bool {
    value.len() == PASSWORD_LEN && value.bytes().all(|b| PASSWORD_ALPHABET.contains(&b))
}

/// What happens to a removed tenant's database and login, from the cell's deletion policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `Delete`: drop the database and the login.
    Drop,
    /// `Snapshot`: keep the database, take the login away.
    KeepData,
    /// `Retain`: change nothing.
    Keep,
}

impl From<DeletionPolicy> for Removal {
    fn from(policy: DeletionPolicy) -> Self {
        match policy {
            DeletionPolicy::Delete => Self::Drop,
            DeletionPolicy::Snapshot => Self::KeepData,
            DeletionPolicy::Retain => Self::Keep,
        }
    }
}

/// A tenant the spec asks for, with the password its login must have.
#[derive(Clone, PartialEq, Eq)]
pub struct DesiredTenant {
    /// Tenant name (as in the spec).
    pub name: String,
    /// The password: the one in the tenant's Secret, or a newly generated one.
    pub password: String,
    /// The password came from the Secret, so the login (if it exists) already has it.
    pub password_known: bool,
}

impl fmt::Debug for DesiredTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesiredTenant")
            .field("name", &self.name)
            .field("password_known", &self.password_known)
            .finish_non_exhaustive()
    }
}

/// A login as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginState {
    /// It may log in (Postgres `rolcanlogin`; always true for a MySQL user).
    pub can_login: bool,
    /// Postgres: the master session may act as this role (`pg_has_role(.., 'USAGE')`), needed
    /// to make it a database owner. Always true on MySQL.
    pub master_is_member: bool,
    /// MySQL: the user holds privileges on its own database. Always true on Postgres.
    pub granted_own_database: bool,
}

/// A database as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseState {
    /// Postgres: its owner. Empty on MySQL.
    pub owner: String,
    /// Postgres: `PUBLIC` may connect to it. Always false on MySQL.
    pub public_can_connect: bool,
}

/// What a read-only look at the instance found, for the identifiers that matter to one cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The registry table exists.
    pub registry_exists: bool,
    /// Registered tenants: identifier to the UID of the cell that registered it.
    pub registered: BTreeMap<String, String>,
    /// Existing logins among the identifiers looked at.
    pub logins: BTreeMap<String, LoginState>,
    /// Existing databases among the identifiers looked at.
    pub databases: BTreeMap<String, DatabaseState>,
}

/// One statement, run by the master session in the admin database. Its `Debug` and `Display`
/// are the redacted form.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
    shown: String,
    if_not_exists: bool,
}

impl Statement {
    fn plain(sql: String) -> Self {
        Self {
            shown: sql.clone(),
            sql,
            if_not_exists: false,
        }
    }

    /// A `CREATE ... IF NOT EXISTS`: Postgres may still fail it with a unique violation when
    /// another session creates the same object at the same moment; running it again is safe.
    fn if_not_exists(sql: String) -> Self {
        Self {
            if_not_exists: true,
            ..Self::plain(sql)
        }
    }

    fn with_secret(sql: String, secret: &str) -> Self {
        Self {
            shown: sql.replace(secret, "<redacted>"),
            sql,
            if_not_exists: false,
        }
    }

    /// Whether a concurrent-creation race may be retried (see [`Statement::if_not_exists`]).
    #[must_use]
    pub fn retry_on_creation_race(&self) -> bool {
        self.if_not_exists
    }

    /// The SQL to execute. Never log it: print the statement itself (redacted).
    #[must_use]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether it carries a secret (a failure's server message must then not be shown).
    #[must_use]
    pub fn carries_secret(&self) -> bool {
        self.sql != self.shown
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Statement({})", self.shown)
    }
}

/// A tenant that cannot be set up without a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// Tenant name.
    pub tenant: String,
    /// `TenantNameReserved` or `TenantDatabaseConflict`.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The statements that bring an instance to the spec, in order, and what they do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Statements to run, in order (registry first, then tenant by tenant).
    pub statements: Vec<Statement>,
    /// Tenants left alone because something is in the way.
    pub blocked: Vec<Blocked>,
    /// Tenants whose login gets a newly generated password by this plan.
    pub passwords_set: BTreeSet<String>,
    /// Registered tenants of this cell no longer in the spec, acted on per [`Removal`].
    pub removed: Vec<String>,
}

impl Plan {
    /// Nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// The identifiers whose logins and databases [`plan`] needs observed: the spec's tenants and
/// every tenant registered by `cell_uid`.
#[must_use]
pub fn identifiers_to_observe(
    desired: &[DesiredTenant],
    registered: &BTreeMap<String, String>,
    cell_uid: &str,
) -> Vec<String> {
    let mut out: BTreeSet<String> = desired.iter().map(|t| tenant_identifier(&t.name)).collect();
    out.extend(
        registered
            .iter()
            .filter(|(_, uid)| uid.as_str() == cell_uid)
            .map(|(ident, _)| ident.clone()),
    );
    out.into_iter().collect()
}

fn registry_statements(engine: Engine) -> Vec<Statement> {
    let table = format!("{REGISTRY_SCHEMA}.tenants");
    match engine {
        Engine::Postgres => vec![
            Statement::if_not_exists(format!("CREATE SCHEMA IF NOT EXISTS {REGISTRY_SCHEMA}")),
            Statement::if_not_exists(format!(
                "CREATE TABLE IF NOT EXISTS {table} (tenant text PRIMARY KEY, cell_uid text NOT NULL)"
            )),
        ],
        Engine::MySql => vec![
            Statement::if_not_exists(format!("CREATE DATABASE IF NOT EXISTS {REGISTRY_SCHEMA}")),
            Statement::if_not_exists(format!(
                "CREATE TABLE IF NOT EXISTS {table} (tenant VARCHAR(64) PRIMARY KEY, cell_uid VARCHAR(64) NOT NULL)"
            )),
        ],
    }
}

/// The statements for one tenant the spec asks for.
fn ensure_tenant(
    engine: Engine,
    cell_uid: &str,
    tenant: &DesiredTenant,
    observed: &Observed,
    plan: &mut Plan,
) {
    let ident = tenant_identifier(&tenant.name);
    if let Some(problem) = reserved_problem(&ident) {
        plan.blocked.push(Blocked {
            tenant: tenant.name.clone(),
            reason: "TenantNameReserved",
            message: format!("tenant {}: {problem}", tenant.name),
        });
        return;
    }
    let login = observed.logins.get(&ident);
    let database = observed.databases.get(&ident);
    match observed.registered.get(&ident) {
        Some(uid) if uid != cell_uid => {
            plan.blocked.push(Blocked {
                tenant: tenant.name.clone(),
                reason: "TenantDatabaseConflict",
                message: format!(
                    "tenant {}: database and login {ident} are registered to another cell (UID {uid}) on this instance; they are left alone",
                    tenant.name
                ),
            });
            return;
        }
        Some(_) => {}
        None if login.is_some() || database.is_some() => {
            plan.blocked.push(Blocked {
                tenant: tenant.name.clone(),
                reason: "TenantDatabaseConflict",
                message: format!(
                    "tenant {}: a {} named {ident} already exists on the instance and was not created by the operator for this cell; it is never altered or dropped: rename the tenant or remove it",
                    tenant.name,
                    if login.is_some() { "login" } else { "database" }
                ),
            });
            return;
        }
        None => plan.statements.push(Statement::plain(format!(
            "INSERT INTO {REGISTRY_SCHEMA}.tenants (tenant, cell_uid) VALUES ({}, {})",
            quote_literal(engine, &ident),
            quote_literal(engine, cell_uid)
        ))),
    }

    let q = quote_ident(engine, &ident);
    let password = quote_literal(engine, &tenant.password);
    let secret = &tenant.password;
    match (engine, login) {
        (Engine::Postgres, None) => {
            plan.statements.push(Statement::with_secret(
                format!("CREATE ROLE {q} LOGIN PASSWORD {password}"),
                secret,
            ));
            plan.passwords_set.insert(tenant.name.clone());
        }
        (Engine::Postgres, Some(_)) if !tenant.password_known => {
            plan.statements.push(Statement::with_secret(
                format!("ALTER ROLE {q} LOGIN PASSWORD {password}"),
                secret,
            ));
            plan.passwords_set.insert(tenant.name.clone());
        }
        (Engine::Postgres, Some(l)) if !l.can_login => {
            plan.statements
                .push(Statement::plain(format!("ALTER ROLE {q} LOGIN")));
        }
        (Engine::MySql, None) => {
            plan.statements.push(Statement::with_secret(
                format!(
                    "CREATE USER {} IDENTIFIED BY {password}",
                    mysql_account(&ident)
                ),
                secret,
            ));
            plan.passwords_set.insert(tenant.name.clone());
        }
        (Engine::MySql, Some(_)) if !tenant.password_known => {
            plan.statements.push(Statement::with_secret(
                format!(
                    "ALTER USER {} IDENTIFIED BY {password}",
                    mysql_account(&ident)
                ),
                secret,
            ));
            plan.passwords_set.insert(tenant.name.clone());
        }
        _ => {}
    }

    match engine {
        Engine::Postgres => {
            if !login.is_some_and(|l| l.master_is_member) {
                plan.statements
                    .push(Statement::plain(format!("GRANT {q} TO CURRENT_USER")));
            }
            match database {
                None => plan
                    .statements
                    .push(Statement::plain(format!("CREATE DATABASE {q} OWNER {q}"))),
                Some(d) if d.owner != ident => plan
                    .statements
                    .push(Statement::plain(format!("ALTER DATABASE {q} OWNER TO {q}"))),
                Some(_) => {}
            }
            if database.is_none_or(|d| d.public_can_connect) {
                plan.statements.push(Statement::plain(format!(
                    "REVOKE CONNECT, TEMPORARY ON DATABASE {q} FROM PUBLIC"
                )));
            }
        }
        Engine::MySql => {
            if database.is_none() {
                plan.statements
                    .push(Statement::plain(format!("CREATE DATABASE {q}")));
            }
            if !login.is_some_and(|l| l.granted_own_database) {
                plan.statements.push(Statement::plain(format!(
                    "GRANT ALL PRIVILEGES ON {}.* TO {}",
                    quote_ident(engine, &mysql_grant_database(&ident)),
                    mysql_account(&ident)
                )));
            }
        }
    }
}

/// The statements for a registered tenant of this cell that the spec no longer has.
fn remove_tenant(
    engine: Engine,
    ident: &str,
    observed: &Observed,
    removal: Removal,
    plan: &mut Plan,
) {
    let q = quote_ident(engine, ident);
    let login = observed.logins.get(ident);
    let has_database = observed.databases.contains_key(ident);
    match (removal, engine) {
        (Removal::Keep, _) => {}
        (Removal::Drop, _) => {
            if has_database {
                plan.statements.push(Statement::plain(match engine {
                    Engine::Postgres => format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)"),
                    Engine::MySql => format!("DROP DATABASE IF EXISTS {q}"),
                }));
            }
            if login.is_some() {
                plan.statements.push(Statement::plain(match engine {
                    Engine::Postgres => format!("DROP ROLE IF EXISTS {q}"),
                    Engine::MySql => format!("DROP USER IF EXISTS {}", mysql_account(ident)),
                }));
            }
            plan.statements.push(Statement::plain(format!(
                "DELETE FROM {REGISTRY_SCHEMA}.tenants WHERE tenant = {}",
                quote_literal(engine, ident)
            )));
        }
        (Removal::KeepData, Engine::Postgres) => {
            if login.is_some_and(|l| l.can_login) {
                plan.statements
                    .push(Statement::plain(format!("ALTER ROLE {q} NOLOGIN")));
            }
        }
        (Removal::KeepData, Engine::MySql) => {
            if login.is_some() {
                plan.statements.push(Statement::plain(format!(
                    "DROP USER IF EXISTS {}",
                    mysql_account(ident)
                )));
            }
        }
    }
}

/// The plan for one cell's tenants on its instance (see the module docs for the rules).
#[must_use]
pub fn plan(
    engine: Engine,
    cell_uid: &str,
    desired: &[DesiredTenant],
    observed: &Observed,
    removal: Removal,
) -> Plan {
    let mut plan = Plan::default();
    for tenant in desired {
        ensure_tenant(engine, cell_uid, tenant, observed, &mut plan);
    }
    let wanted: BTreeSet<String> = desired.iter().map(|t| tenant_identifier(&t.name)).collect();
    for (ident, uid) in &observed.registered {
        if uid == cell_uid && !wanted.contains(ident) {
            let before = plan.statements.len();
            remove_tenant(engine, ident, observed, removal, &mut plan);
            if plan.statements.len() > before {
                plan.removed.push(ident.clone());
            }
        }
    }
    if !observed.registry_exists && !plan.statements.is_empty() {
        let mut statements = registry_statements(engine);
        statements.append(&mut plan.statements);
        plan.statements = statements;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registry_creates_are_retried_after_a_creation_race() {
        for engine in [Engine::Postgres, Engine::MySql] {
            let registry = registry_statements(engine);
            assert!(registry.iter().all(Statement::retry_on_creation_race));
            assert!(registry.iter().all(|s| s.sql().contains("IF NOT EXISTS")));
        }
        assert!(!Statement::plain("CREATE ROLE a".into()).retry_on_creation_race());
        assert!(!Statement::with_secret("x".into(), "x").retry_on_creation_race());
    }

    const UID: &str = "0b7c6a52-1111-2222-3333-444455556666";

    fn pw(c: char) -> String {
        std::iter::repeat_n(c, PASSWORD_LEN).collect()
    }

    fn tenant(name: &str, known: bool) -> DesiredTenant {
        DesiredTenant {
            name: name.into(),
            password: pw('K'),
            password_known: known,
        }
    }

    /// What the instance looks like once `plan` ran for these tenants.
    fn converged(engine: Engine, idents: &[&str]) -> Observed {
        let mut o = Observed {
            registry_exists: true,
            ..Observed::default()
        };
        for i in idents {
            o.registered.insert((*i).into(), UID.into());
            o.logins.insert(
                (*i).into(),
                LoginState {
                    can_login: true,
                    master_is_member: true,
                    granted_own_database: true,
                },
            );
            o.databases.insert(
                (*i).into(),
                DatabaseState {
                    owner: if engine == Engine::Postgres {
                        (*i).into()
                    } else {
                        String::new()
                    },
                    public_can_connect: false,
                },
            );
        }
        o
    }

    fn sql(plan: &Plan) -> Vec<String> {
        plan.statements.iter().map(|s| s.sql().to_owned()).collect()
    }

    #[test]
    fn a_new_postgres_tenant_gets_registry_role_owned_database_and_no_public_connect() {
        let p = plan(
            Engine::Postgres,
            UID,
            &[tenant("blue-moon", false)],
            &Observed::default(),
            Removal::Drop,
        );
        let k = pw('K');
        assert_eq!(
            sql(&p),
            vec![
                "CREATE SCHEMA IF NOT EXISTS gamecell_operator".to_owned(),
                "CREATE TABLE IF NOT EXISTS gamecell_operator.tenants (tenant text PRIMARY KEY, cell_uid text NOT NULL)".into(),
                format!("INSERT INTO gamecell_operator.tenants (tenant, cell_uid) VALUES ('blue_moon', '{UID}')"),
                format!("CREATE ROLE \"blue_moon\" LOGIN PASSWORD '{k}'"),
                "GRANT \"blue_moon\" TO CURRENT_USER".into(),
                "CREATE DATABASE \"blue_moon\" OWNER \"blue_moon\"".into(),
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"blue_moon\" FROM PUBLIC".into(),
            ]
        );
        assert!(p.passwords_set.contains("blue-moon"));
        assert!(p.blocked.is_empty());
    }

    #[test]
    fn a_new_mysql_tenant_gets_a_user_with_privileges_on_its_own_database_only() {
        let p = plan(
            Engine::MySql,
            UID,
            &[tenant("alpha", false)],
            &converged(Engine::MySql, &[]),
            Removal::Drop,
        );
        let k = pw('K');
        assert_eq!(
            sql(&p),
            vec![
                format!(
                    "INSERT INTO gamecell_operator.tenants (tenant, cell_uid) VALUES ('alpha', '{UID}')"
                ),
                format!("CREATE USER 'alpha'@'%' IDENTIFIED BY '{k}'"),
                "CREATE DATABASE `alpha`".into(),
                "GRANT ALL PRIVILEGES ON `alpha`.* TO 'alpha'@'%'".into(),
            ]
        );
    }

    #[test]
    fn a_converged_instance_needs_no_statement_in_either_engine() {
        for engine in [Engine::Postgres, Engine::MySql] {
            let desired = [tenant("alpha", true), tenant("beta", true)];
            let p = plan(
                engine,
                UID,
                &desired,
                &converged(engine, &["alpha", "beta"]),
                Removal::Drop,
            );
            assert!(p.is_empty(), "{engine:?}: {p:?}");
        }
    }

    #[test]
    fn adding_a_tenant_touches_only_the_new_one() {
        for engine in [Engine::Postgres, Engine::MySql] {
            let desired = [tenant("alpha", true), tenant("gamma", false)];
            let p = plan(
                engine,
                UID,
                &desired,
                &converged(engine, &["alpha"]),
                Removal::Drop,
            );
            assert!(!p.is_empty());
            for s in &p.statements {
                assert!(
                    !s.sql().contains("alpha"),
                    "{engine:?}: statement touches alpha: {s}"
                );
            }
            assert_eq!(p.passwords_set, BTreeSet::from(["gamma".to_owned()]));
        }
    }

    #[test]
    fn a_lost_secret_reissues_the_password_of_an_existing_login_only() {
        let p = plan(
            Engine::Postgres,
            UID,
            &[tenant("alpha", false)],
            &converged(Engine::Postgres, &["alpha"]),
            Removal::Drop,
        );
        assert_eq!(p.statements.len(), 1);
        assert!(
            p.statements[0]
                .sql()
                .starts_with("ALTER ROLE \"alpha\" LOGIN PASSWORD")
        );
        let p = plan(
            Engine::MySql,
            UID,
            &[tenant("alpha", false)],
            &converged(Engine::MySql, &["alpha"]),
            Removal::Drop,
        );
        assert_eq!(p.statements.len(), 1);
        assert!(
            p.statements[0]
                .sql()
                .starts_with("ALTER USER 'alpha'@'%' IDENTIFIED BY")
        );
    }

    #[test]
    fn removal_follows_the_deletion_policy_and_touches_only_the_removed_tenant() {
        let observed = converged(Engine::Postgres, &["alpha", "beta"]);
        let keep = [tenant("alpha", true)];
        let drop = plan(Engine::Postgres, UID, &keep, &observed, Removal::Drop);
        assert_eq!(
            sql(&drop),
            vec![
                "DROP DATABASE IF EXISTS \"beta\" WITH (FORCE)".to_owned(),
                "DROP ROLE IF EXISTS \"beta\"".into(),
                "DELETE FROM gamecell_operator.tenants WHERE tenant = 'beta'".into(),
            ]
        );
        assert_eq!(drop.removed, vec!["beta".to_owned()]);
        let snapshot = plan(Engine::Postgres, UID, &keep, &observed, Removal::KeepData);
        assert_eq!(
            sql(&snapshot),
            vec!["ALTER ROLE \"beta\" NOLOGIN".to_owned()]
        );
        let retain = plan(Engine::Postgres, UID, &keep, &observed, Removal::Keep);
        assert!(retain.is_empty());

        let mut locked = observed.clone();
        if let Some(l) = locked.logins.get_mut("beta") {
            l.can_login = false;
        }
        assert!(plan(Engine::Postgres, UID, &keep, &locked, Removal::KeepData).is_empty());

        let my = converged(Engine::MySql, &["alpha", "beta"]);
        assert_eq!(
            sql(&plan(Engine::MySql, UID, &keep, &my, Removal::KeepData)),
            vec!["DROP USER IF EXISTS 'beta'@'%'".to_owned()]
        );
        let mut gone = my.clone();
        gone.logins.remove("beta");
        assert!(plan(Engine::MySql, UID, &keep, &gone, Removal::KeepData).is_empty());
    }

    #[test]
    fn another_cells_or_unregistered_objects_are_never_touched() {
        let mut observed = converged(Engine::Postgres, &["alpha"]);
        observed
            .registered
            .insert("alpha".into(), "other-uid".into());
        // A registered tenant of another cell, absent from this spec, is not removed either.
        observed
            .registered
            .insert("zeta".into(), "other-uid".into());
        let p = plan(
            Engine::Postgres,
            UID,
            &[tenant("alpha", false)],
            &observed,
            Removal::Drop,
        );
        assert!(p.is_empty());
        assert_eq!(p.blocked[0].reason, "TenantDatabaseConflict");

        let mut unregistered = converged(Engine::MySql, &["alpha"]);
        unregistered.registered.clear();
        let p = plan(
            Engine::MySql,
            UID,
            &[tenant("alpha", false)],
            &unregistered,
            Removal::Drop,
        );
        assert!(p.is_empty());
        assert_eq!(p.blocked[0].reason, "TenantDatabaseConflict");
    }

    #[test]
    fn reserved_names_are_refused_not_mangled() {
        for name in [
            "public",
            "pg-stats",
            "postgres",
            "mysql",
            "rdsadmin",
            "information-schema",
        ] {
            let p = plan(
                Engine::Postgres,
                UID,
                &[tenant(name, false)],
                &Observed::default(),
                Removal::Drop,
            );
            assert!(p.is_empty(), "{name}");
            assert_eq!(p.blocked[0].reason, "TenantNameReserved", "{name}");
        }
        assert!(reserved_problem("blue_moon").is_none());
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident(Engine::Postgres, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(Engine::MySql, "a`b"), "`a``b`");
        assert_eq!(quote_literal(Engine::Postgres, "o'k"), "'o''k'");
        assert_eq!(quote_literal(Engine::MySql, "o'k\\"), "'o''k\\\\'");
        assert_eq!(tenant_identifier("blue-moon-2"), "blue_moon_2");
        // `_` is a wildcard in MySQL grants: escaped, so `blue_moon` is not granted `blueXmoon`.
        assert_eq!(mysql_grant_database("blue_moon"), "blue\\_moon");
        let p = plan(
            Engine::MySql,
            UID,
            &[tenant("blue-moon", false)],
            &Observed::default(),
            Removal::Drop,
        );
        assert!(
            p.statements
                .iter()
                .any(|s| s.sql() == "GRANT ALL PRIVILEGES ON `blue\\_moon`.* TO 'blue_moon'@'%'"),
            "{p:?}"
        );
    }

    #[test]
    fn statements_print_without_the_password() {
        let p = plan(
            Engine::MySql,
            UID,
            &[tenant("alpha", false)],
            &Observed::default(),
            Removal::Drop,
        );
        let secret = pw('K');
        let create = p
            .statements
            .iter()
            .find(|s| s.sql().starts_with("CREATE USER"))
            .expect("create user");
        assert!(create.carries_secret());
        assert!(!format!("{create}").contains(&secret));
        assert!(!format!("{p:?}").contains(&secret));
        assert!(!format!("{:?}", tenant("alpha", false)).contains(&secret));
    }

    #[test]
    fn passwords_follow_the_policy_without_bias_from_rejected_bytes() {
        let bytes = (0..=255u8).cycle().take(1024);
        let p = password_from_bytes(bytes).expect("enough bytes");
        assert!(is_policy_password(&p));
        assert!(
            password_from_bytes([255u8; 64]).is_none(),
            "rejected bytes only"
        );
        assert!(password_from_bytes([0u8; 10]).is_none(), "too few bytes");
        assert!(!is_policy_password("short"));
        assert!(!is_policy_password(&format!("{}'", &pw('a')[1..])));
    }

    #[test]
    fn engines_map_from_rds_names() {
        assert_eq!(
            Engine::from_rds("aurora-postgresql"),
            Some(Engine::Postgres)
        );
        assert_eq!(Engine::from_rds("mysql"), Some(Engine::MySql));
        assert_eq!(Engine::from_rds("oracle-ee"), None);
    }
}
