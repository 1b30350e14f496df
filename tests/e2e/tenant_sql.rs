//! Shared cells' per-tenant databases and logins, for real: the GameCell controller in-process
//! with the AWS cloud against moto (which creates the RDS-managed master secret) and the local
//! SQL servers of `hack/sqlstores.sh` (reached through `GAMECELL_SQL_ENDPOINT_OVERRIDE_*`, as
//! `make e2e` sets them). Each tenant logs in with the password in its own Secret, to its own
//! database only; adding a tenant leaves the others untouched; removing one drops only its parts;
//! a resync with nothing changed runs no SQL write and no Secret write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gamecell_operator::admin::Readiness;
use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::controllers::{self, Timings};
use gamecell_operator::crds::GameCell;
use gamecell_operator::sqlstore::admin::{OVERRIDE_MYSQL, OVERRIDE_POSTGRES, SqlAdmin};
use gamecell_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tokio::sync::watch;

use crate::support::{FIELD_MANAGER, client, install_crds, wait_until};

/// The local server of one engine (`hack/sqlstores.sh`), from the operator's override.
fn local_server(var: &str) -> (String, u16) {
    let endpoint = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the suite with `make e2e` (hack/e2e.sh starts hack/sqlstores.sh)"
        )
    });
    let (host, port) = endpoint.rsplit_once(':').expect("HOST:PORT");
    assert_eq!(host, "127.0.0.1", "{var} must point at loopback");
    (host.to_owned(), port.parse().expect("port"))
}

/// The master of the local servers: what moto 5.2.5 puts in every RDS-managed secret.
const MASTER: (&str, &str) = ("admin", "P@55w0rd!");

struct Operator {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    sql: Arc<SqlAdmin>,
}

impl Operator {
    async fn start(client: &Client) -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1"),
            "AWS_ENDPOINT_URL must point at the local emulator: run the suite with `make e2e`"
        );
        let cloud = Arc::new(AwsCloud::from_env().await);
        let sql = cloud.sql_admin().clone();
        let (stop, rx) = watch::channel(false);
        let readiness = Readiness::default();
        let task = tokio::spawn(controllers::run(
            client.clone(),
            cloud,
            Timings {
                resync: Duration::from_secs(1),
                provisioning_poll: Duration::from_millis(300),
                ..Timings::default()
            },
            Arc::new(Metrics::new()),
            readiness.clone(),
            Reporter {
                controller: "gamecell-e2e-sql".into(),
                instance: None,
            },
            rx,
        ));
        wait_until(Duration::from_secs(30), "controllers ready", || {
            let r = readiness.clone();
            async move { r.get() }
        })
        .await;
        Self {
            stop,
            task: Some(task),
            sql,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

fn cell(name: &str, engine: &str, tenants: &[&str]) -> GameCell {
    let tenants: Vec<Value> = tenants
        .iter()
        .map(|t| json!({"name": t, "namespace": format!("{name}-{t}")}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": name},
        "spec": {
            "tier": "Shared",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": tenants,
            "dataStores": {"sql": {"engine": engine, "version": if engine == "MySQL" { "8.0" } else { "16.4" }}},
            "deletionPolicy": "Delete"
        }
    }))
    .expect("cell")
}

async fn apply(api: &Api<GameCell>, cell: &GameCell) {
    api.patch(
        &cell.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(cell),
    )
    .await
    .expect("apply cell");
}

fn condition_true(cell: &GameCell, type_: &str) -> bool {
    cell.status.as_ref().is_some_and(|s| {
        s.observed_generation == cell.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
    })
}

async fn wait_ready(api: &Api<GameCell>, name: &str) -> GameCell {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = api.get(name).await.expect("cell");
        if condition_true(&c, "Ready") && condition_true(&c, "TenantDatabasesReady") {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not Ready with its tenants' databases: {:#?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tenant's Secret (`gamecell-sql`), once it holds a password.
async fn sql_secret(client: &Client, namespace: &str) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = api.get_opt("gamecell-sql").await.expect("read secret")
            && s.data
                .as_ref()
                .is_some_and(|d| d.contains_key("SQL_PASSWORD"))
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no SQL_PASSWORD in {namespace}/gamecell-sql"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn value(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("data");
    String::from_utf8(data.get(key).unwrap_or_else(|| panic!("{key}")).0.clone()).expect("utf-8")
}

async fn pg(user: &str, password: &str, database: &str) -> Result<PgConnection, sqlx::Error> {
    let (host, port) = local_server(OVERRIDE_POSTGRES);
    PgConnection::connect_with(
        &PgConnectOptions::new()
            .host(&host)
            .port(port)
            .username(user)
            .password(password)
            .database(database)
            .ssl_mode(PgSslMode::Disable),
    )
    .await
}

async fn my(user: &str, password: &str, database: &str) -> Result<MySqlConnection, sqlx::Error> {
    let (host, port) = local_server(OVERRIDE_MYSQL);
    MySqlConnection::connect_with(
        &MySqlConnectOptions::new()
            .host(&host)
            .port(port)
            .username(user)
            .password(password)
            .database(database)
            .ssl_mode(MySqlSslMode::Disabled),
    )
    .await
}

/// Postgres roles and databases with these names, as the master sees them.
async fn pg_existing(names: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut admin = pg(MASTER.0, MASTER.1, "postgres")
        .await
        .expect("master login");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1")
            .bind(&names)
            .fetch_all(&mut admin)
            .await
            .expect("roles");
    let dbs: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname = ANY($1) ORDER BY 1",
    )
    .bind(&names)
    .fetch_all(&mut admin)
    .await
    .expect("databases");
    (roles, dbs)
}

/// Removes what an earlier run of these tests left on the long-lived local servers (the cells are
/// new each run, so the old registrations would rightly be refused as another cell's).
async fn reset_local(engine: &str, names: &[&str]) {
    if engine == "Postgres" {
        let mut admin = pg(MASTER.0, MASTER.1, "postgres")
            .await
            .expect("master login");
        for n in names {
            for sql in [
                format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"),
                format!("DROP ROLE IF EXISTS \"{n}\""),
            ] {
                sqlx::Executor::execute(&mut admin, sql.as_str())
                    .await
                    .expect("reset");
            }
            let _ = sqlx::query("DELETE FROM gamecell_operator.tenants WHERE tenant = $1")
                .bind(*n)
                .execute(&mut admin)
                .await;
        }
    } else {
        let mut admin = my(MASTER.0, MASTER.1, "mysql").await.expect("master login");
        for n in names {
            for sql in [
                format!("DROP DATABASE IF EXISTS `{n}`"),
                format!("DROP USER IF EXISTS '{n}'@'%'"),
            ] {
                sqlx::Executor::execute(&mut admin, sql.as_str())
                    .await
                    .expect("reset");
            }
            let _ = sqlx::query("DELETE FROM gamecell_operator.tenants WHERE tenant = ?")
                .bind(*n)
                .execute(&mut admin)
                .await;
        }
    }
}

fn is_refused(result: &Result<impl Sized, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(_)))
}

/// A cell left by a failed earlier run (its stale Ready status would pass the waits at once):
/// released without an operator (finalizer stripped) and waited for until gone.
async fn release_leftover(client: &Client, name: &str) {
    let api: Api<GameCell> = Api::all(client.clone());
    if api.get_opt(name).await.expect("read cell").is_none() {
        return;
    }
    let _ = api.delete(name, &DeleteParams::default()).await;
    let patch = json!({"metadata": {"finalizers": null}});
    let _ = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    wait_until(Duration::from_secs(60), "leftover cell gone", || async {
        api.get_opt(name).await.ok().flatten().is_none()
    })
    .await;
}

async fn teardown(client: &Client, name: &str) {
    let api: Api<GameCell> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && api.get_opt(name).await.ok().flatten().is_some() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let patch = json!({"metadata": {"finalizers": null}});
    let _ = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
}

#[tokio::test]
async fn shared_postgres_tenants_get_isolated_databases_and_logins() {
    let client = client().await;
    install_crds(&client).await;
    local_server(OVERRIDE_POSTGRES);
    let name = "sqlt-pg";
    release_leftover(&client, name).await;
    reset_local("Postgres", &["pga", "pgb", "pgc"]).await;
    let operator = Operator::start(&client).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let started = Instant::now();
    apply(&api, &cell(name, "Postgres", &["pga", "pgb"])).await;

    // Time from the instance available (DataStoresReady) to the tenants' databases ready.
    let mut stores_ready_at = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = api.get(name).await.expect("cell");
        if stores_ready_at.is_none() && condition_true(&c, "DataStoresReady") {
            stores_ready_at = Some(Instant::now());
        }
        if condition_true(&c, "TenantDatabasesReady") {
            let now = Instant::now();
            // The bootstrap runs in the reconcile that first sees the store available, so both
            // conditions usually turn True in the same status write.
            eprintln!(
                "FIGURE tenant databases (2 tenants, Postgres): ready {:?} after DataStoresReady was seen, {:?} after apply",
                now - stores_ready_at.unwrap_or(now),
                now - started
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no TenantDatabasesReady: {:#?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(&api, name).await;
    eprintln!(
        "FIGURE bootstrap pass creating 2 Postgres tenants (master secret read, login, observe, statements): {:?}",
        operator.sql.last_writing_pass()
    );
    let writes_after_create = operator.sql.writes();
    eprintln!(
        "FIGURE SQL write statements for a new store with 2 Postgres tenants: {writes_after_create} (5 per tenant, plus 2 once per instance for the registry)"
    );

    let a = sql_secret(&client, &format!("{name}-pga")).await;
    let b = sql_secret(&client, &format!("{name}-pgb")).await;
    let (pa, pb) = (value(&a, "SQL_PASSWORD"), value(&b, "SQL_PASSWORD"));
    assert_ne!(pa, pb, "each tenant has its own password");
    assert_eq!(value(&a, "SQL_DATABASE"), "pga");
    assert_eq!(value(&a, "SQL_USERNAME"), "pga");
    for (key, v) in a.data.as_ref().expect("data") {
        assert_ne!(
            String::from_utf8_lossy(&v.0),
            pb,
            "tenant A's Secret holds B's password in {key}"
        );
        assert_ne!(
            String::from_utf8_lossy(&v.0),
            MASTER.1,
            "tenant Secret holds the master password"
        );
    }

    // A logs in to its own database with its Secret's password and owns it; it cannot connect
    // to B's database, nor log in as B; a wrong password is refused.
    let mut conn = pg("pga", &pa, "pga")
        .await
        .expect("tenant A logs in to its database");
    sqlx::Executor::execute(
        &mut conn,
        "CREATE TABLE saves (id int PRIMARY KEY); INSERT INTO saves VALUES (1)",
    )
    .await
    .expect("tenant A creates a table in its own database");
    conn.close().await.ok();
    assert!(
        is_refused(&pg("pga", &pa, "pgb").await),
        "tenant A must not connect to B's database"
    );
    assert!(
        is_refused(&pg("pgb", &pa, "pgb").await),
        "A's password must not log in as B"
    );
    assert!(
        pg("pgb", &pb, "pgb").await.is_ok(),
        "tenant B logs in with its own Secret"
    );

    // Quiet: several resyncs (every second) with nothing changed: no SQL write, no Secret write.
    let before = operator.sql.writes();
    let passes = operator.sql.passes();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        operator.sql.passes() > passes,
        "the operator kept checking the store"
    );
    assert_eq!(
        operator.sql.writes(),
        before,
        "a resync with nothing changed ran SQL writes"
    );
    let a_again = sql_secret(&client, &format!("{name}-pga")).await;
    assert_eq!(
        a_again.resource_version(),
        a.resource_version(),
        "tenant A's Secret was rewritten"
    );

    // Adding a tenant leaves A alone: same Secret, same password, its data still there.
    let before_add = operator.sql.writes();
    apply(&api, &cell(name, "Postgres", &["pga", "pgb", "pgc"])).await;
    let c = sql_secret(&client, &format!("{name}-pgc")).await;
    wait_ready(&api, name).await;
    eprintln!(
        "FIGURE SQL write statements to add a Postgres tenant: {} (pass: {:?})",
        operator.sql.writes() - before_add,
        operator.sql.last_writing_pass()
    );
    let pc = value(&c, "SQL_PASSWORD");
    assert!(pg("pgc", &pc, "pgc").await.is_ok());
    let a_after = sql_secret(&client, &format!("{name}-pga")).await;
    assert_eq!(
        a_after.resource_version(),
        a.resource_version(),
        "adding C rewrote A's Secret"
    );
    let mut conn = pg("pga", &pa, "pga")
        .await
        .expect("A still logs in with its password");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM saves")
        .fetch_one(&mut conn)
        .await
        .expect("A's data is still there");
    assert_eq!(n, 1);
    conn.close().await.ok();

    // Removing B (deletionPolicy Delete) drops B's database and login, and nothing else.
    apply(&api, &cell(name, "Postgres", &["pga", "pgc"])).await;
    wait_until(
        Duration::from_secs(60),
        "B's database and role dropped",
        || async { pg_existing(&["pgb"]).await == (vec![], vec![]) },
    )
    .await;
    let (roles, dbs) = pg_existing(&["pga", "pgb", "pgc"]).await;
    assert_eq!(roles, vec!["pga", "pgc"]);
    assert_eq!(dbs, vec!["pga", "pgc"]);
    assert!(
        pg("pga", &pa, "pga").await.is_ok(),
        "A untouched by B's removal"
    );
    wait_ready(&api, name).await;

    teardown(&client, name).await;
    operator.stop().await;
}

#[tokio::test]
async fn shared_mysql_tenants_get_isolated_databases_and_logins() {
    let client = client().await;
    install_crds(&client).await;
    local_server(OVERRIDE_MYSQL);
    let name = "sqlt-my";
    release_leftover(&client, name).await;
    reset_local("MySQL", &["mya", "my_b", "myxb"]).await;
    let operator = Operator::start(&client).await;
    let api: Api<GameCell> = Api::all(client.clone());
    let started = Instant::now();
    apply(&api, &cell(name, "MySQL", &["mya", "my-b"])).await;
    wait_ready(&api, name).await;
    eprintln!(
        "FIGURE MySQL: 2 tenants ready {:?} after apply, {} SQL write statements, bootstrap pass {:?}",
        started.elapsed(),
        operator.sql.writes(),
        operator.sql.last_writing_pass()
    );

    let a = sql_secret(&client, &format!("{name}-mya")).await;
    let b = sql_secret(&client, &format!("{name}-my-b")).await;
    let (pa, pb) = (value(&a, "SQL_PASSWORD"), value(&b, "SQL_PASSWORD"));
    assert_eq!(value(&b, "SQL_DATABASE"), "my_b");
    let mut conn = my("mya", &pa, "mya")
        .await
        .expect("tenant A logs in to its database");
    sqlx::Executor::execute(&mut conn, "CREATE TABLE saves (id INT PRIMARY KEY)")
        .await
        .expect("tenant A creates a table");
    // `_` is a grant wildcard: B's grant on `my_b` must not reach a database `myxb`.
    let denied = sqlx::Executor::execute(&mut conn, "CREATE TABLE my_b.stolen (id INT)").await;
    assert!(denied.is_err(), "tenant A wrote into B's database");
    conn.close().await.ok();
    assert!(
        is_refused(&my("mya", &pa, "my_b").await),
        "tenant A must not use B's database"
    );
    assert!(
        is_refused(&my("my_b", &pa, "my_b").await),
        "A's password must not log in as B"
    );
    let mut b_conn = my("my_b", &pb, "my_b").await.expect("tenant B logs in");
    let on_other: Result<sqlx::mysql::MySqlQueryResult, _> =
        sqlx::Executor::execute(&mut b_conn, "CREATE DATABASE myxb").await;
    assert!(
        on_other.is_err(),
        "B may create databases matching its grant's wildcard"
    );
    b_conn.close().await.ok();

    let before = operator.sql.writes();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        operator.sql.writes(),
        before,
        "a MySQL resync with nothing changed ran SQL writes"
    );

    teardown(&client, name).await;
    operator.stop().await;
}

/// The master credentials are refused: a permanent `SqlMasterAuthFailed` (the cell stalls, no
/// retry storm) whose message holds neither password; an instance without a readable master
/// secret is `SqlMasterSecretUnavailable`.
#[tokio::test]
async fn bad_master_credentials_are_reported_without_secrets() {
    use gamecell_operator::cell::tenant_sql::{DesiredTenant, Engine, Removal};
    use gamecell_operator::cloud::Scope;
    use gamecell_operator::sqlstore::{SqlError, StoreRef, TenantDatabases};

    local_server(OVERRIDE_POSTGRES);
    let config = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let wrong = "WrongMasterPassword1234";
    let arn = secrets
        .create_secret()
        .name(format!("rds!e2e-wrong-{}", std::process::id()))
        .secret_string(json!({"username": MASTER.0, "password": wrong}).to_string())
        .send()
        .await
        .expect("create secret in moto")
        .arn
        .expect("arn");
    let sql = SqlAdmin::new(config);
    let scope = Scope {
        region: "us-east-1".into(),
        assume_role: None,
    };
    let tenant_password = "TenantPassword0123456789abcdefgh";
    let tenants = [DesiredTenant {
        name: "nobody".into(),
        password: tenant_password.into(),
        password_known: false,
    }];
    fn store<'a>(scope: &'a Scope, arn: Option<&'a str>) -> StoreRef<'a> {
        StoreRef {
            scope,
            identifier: "gc-e2e-sql",
            engine: Engine::Postgres,
            endpoint: None,
            port: None,
            master_secret_arn: arn,
        }
    }
    let err = sql
        .reconcile(&store(&scope, Some(&arn)), "uid", &tenants, Removal::Keep)
        .await
        .expect_err("wrong master password");
    assert!(matches!(err, SqlError::MasterAuthFailed(_)), "{err:?}");
    assert!(err.is_permanent());
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(wrong) && !text.contains(tenant_password),
        "{text}"
    );
    assert_eq!(sql.writes(), 0);

    let missing = sql
        .reconcile(&store(&scope, None), "uid", &tenants, Removal::Keep)
        .await
        .expect_err("no master secret");
    assert_eq!(missing.reason(), "SqlMasterSecretUnavailable");
    let gone = sql
        .reconcile(
            &store(
                &scope,
                Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!nope-AbCdEf"),
            ),
            "uid",
            &tenants,
            Removal::Keep,
        )
        .await
        .expect_err("unknown secret");
    assert_eq!(gone.reason(), "SqlMasterSecretUnavailable", "{gone}");
}

/// Issue 5's sentinel test, on the operator process (debug logs, JSON) against moto and the
/// local Postgres: the master password the operator reads from Secrets Manager, each tenant's
/// generated SQL password and each tenant's matchmaker token appear nowhere but in that
/// tenant's own Secret: not in the log, Events, any custom resource, ConfigMaps, Deployments,
/// another Secret, or `/metrics`.
#[tokio::test]
async fn secrets_appear_only_in_their_own_secret() {
    let client = client().await;
    install_crds(&client).await;
    let name = "sentinel";
    let tenants = ["sa", "sb"];
    release_leftover(&client, name).await;
    let databases: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    let database_refs: Vec<&str> = databases.iter().map(String::as_str).collect();
    reset_local("Postgres", &database_refs).await;
    let operator = crate::support::OperatorProcess::start_with(
        "sentinel-operator",
        &[
            (
                "RUST_LOG",
                "debug,hyper=info,h2=info,rustls=info,tower=info",
            ),
            ("GAMECELL_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let api: Api<GameCell> = Api::all(client.clone());
    apply(&api, &cell(name, "Postgres", &tenants)).await;
    wait_ready(&api, name).await;

    // The sentinels, and where each may be.
    let mut sentinels: Vec<(String, Option<String>, &str)> =
        vec![(MASTER.1.to_owned(), None, "the master password")];
    for t in tenants {
        let ns = format!("{name}-{t}");
        let sql = sql_secret(&client, &ns).await;
        sentinels.push((
            value(&sql, "SQL_PASSWORD"),
            Some(format!("{ns}/gamecell-sql")),
            "a tenant's SQL password",
        ));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let mm = secrets
            .get("gamecell-matchmaker")
            .await
            .expect("the tenant's matchmaker credential");
        sentinels.push((
            value(&mm, "MATCHMAKER_TOKEN"),
            Some(format!("{ns}/gamecell-matchmaker")),
            "a tenant's matchmaker token",
        ));
    }
    for (s, _, what) in &sentinels {
        assert!(s.len() >= 8, "{what} is too short to be a sentinel");
    }
    // Let a few reconciles and resyncs run (debug logs of every step) before looking.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push((
        "the operator log".into(),
        std::fs::read_to_string(&operator.log).expect("operator log"),
    ));
    let (_, metrics) = crate::support::http_get(operator.port, "/metrics")
        .await
        .expect("/metrics");
    haystacks.push(("/metrics".into(), metrics));
    use kube::core::ApiResource;
    let kinds = [
        ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&()),
        ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&()),
        crate::support::api_resource("GameCell"),
        crate::support::api_resource("PlayerService"),
        crate::support::api_resource("MatchmakingPool"),
        ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
    ];
    for ar in kinds {
        let kind = format!("{}/{}", ar.api_version, ar.kind);
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = api.list(&Default::default()).await.expect("list");
        haystacks.push((
            format!("every {kind}"),
            serde_json::to_string(&list.items).expect("json"),
        ));
    }
    let all_secrets: Api<Secret> = Api::all(client.clone());
    let secrets = all_secrets
        .list(&Default::default())
        .await
        .expect("secrets");
    for (sentinel, home, what) in &sentinels {
        for (place, text) in &haystacks {
            assert!(
                !text.contains(sentinel.as_str()),
                "{what} appears in {place}"
            );
        }
        let holders: Vec<String> = secrets
            .items
            .iter()
            .filter(|s| {
                let data = serde_json::to_string(&s.data).unwrap_or_default()
                    + &s.data
                        .iter()
                        .flatten()
                        .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned())
                        .collect::<String>()
                    + &serde_json::to_string(&s.string_data).unwrap_or_default()
                    + &serde_json::to_string(&s.metadata.annotations).unwrap_or_default();
                data.contains(sentinel.as_str())
            })
            .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
            .collect();
        assert_eq!(
            holders,
            home.iter().cloned().collect::<Vec<_>>(),
            "{what} is held by the wrong Secrets"
        );
    }
    operator.stop().await;
    teardown(&client, name).await;
}
