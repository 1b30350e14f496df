//! `matchmaker`: the built-in matchmaker a MatchmakingPool runs when it sets no image.
//!
//! Reads the pool's configuration (`MATCHMAKER_CONFIG`, the ConfigMap the controller writes),
//! reloads it when it changes, matches every queue every `--tick-ms`, and serves the HTTP/JSON
//! API of `docs/matchmaker-api.md` with `/livez`, `/readyz` and `/metrics`. With
//! `MATCHMAKER_TENANT_TOKENS` (the shared cell matchmaker) every request acts as the tenant of
//! its bearer token only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gamecell_operator::matchmaker::config::Defaults;
use gamecell_operator::matchmaker::engine::EngineOptions;
use gamecell_operator::matchmaker::service::{self, Service, ServiceOptions};
use gamecell_operator::telemetry::{LogFormat, init_logging};

/// The built-in matchmaker.
#[derive(Parser, Debug)]
#[command(name = "matchmaker", version, about)]
struct Args {
    /// Configuration files (comma-separated); every pool they list is served.
    #[arg(
        long,
        env = "MATCHMAKER_CONFIG",
        value_delimiter = ',',
        default_value = "/etc/gamecell/matchmaker/matchmaker.json"
    )]
    config: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "MATCHMAKER_HOST", default_value = "0.0.0.0")]
    host: IpAddr,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, env = "MATCHMAKER_PORT", default_value_t = 8080)]
    port: u16,
    /// Tenant of configuration documents that name none.
    #[arg(long, env = "MATCHMAKER_TENANT")]
    tenant: Option<String>,
    /// Tenant credentials file (`{"tenants": {"<tenant>": "<sha256 hex of its token>"}}`): when
    /// set, every API request needs a tenant's bearer token and acts as that tenant only.
    #[arg(long, env = "MATCHMAKER_TENANT_TOKENS")]
    tenant_tokens: Option<PathBuf>,
    /// Pool of configuration documents that name none.
    #[arg(long, env = "MATCHMAKER_POOL")]
    pool: Option<String>,
    /// Serve only this region (Dedicated cells run one matchmaker per region).
    #[arg(long, env = "MATCHMAKER_REGION")]
    region: Option<String>,
    /// Milliseconds between matching rounds.
    #[arg(long, env = "MATCHMAKER_TICK_MS", default_value_t = 50)]
    tick_ms: u64,
    /// Milliseconds between configuration polls.
    #[arg(long, env = "MATCHMAKER_RELOAD_MS", default_value_t = 1000)]
    reload_ms: u64,
    /// Open tickets one tenant may have (the configuration's tenantLimits override it).
    #[arg(
        long,
        env = "MATCHMAKER_MAX_OPEN_TICKETS_PER_TENANT",
        default_value_t = 100_000
    )]
    max_open_tickets_per_tenant: usize,
    /// Seconds finished tickets, matches and backfills stay readable.
    #[arg(long, env = "MATCHMAKER_RETENTION_SECONDS", default_value_t = 600)]
    retention_seconds: u64,
    /// Anchors searched per queue per round.
    #[arg(long, env = "MATCHMAKER_ANCHOR_BUDGET", default_value_t = 50_000)]
    anchor_budget: usize,
    /// Log format.
    #[arg(
        long,
        env = "MATCHMAKER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "MATCHMAKER_LOG", default_value = "info")]
    log_filter: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    init_logging(args.log_format, &args.log_filter)?;
    let service = Service::start_with_tenant_tokens(
        ServiceOptions {
            config_paths: args.config,
            defaults: Defaults {
                tenant: args.tenant,
                pool: args.pool,
                region: args.region,
            },
            engine: EngineOptions {
                default_tenant_limit: args.max_open_tickets_per_tenant,
                retention_ms: args.retention_seconds.saturating_mul(1000),
                anchor_budget: args.anchor_budget.max(1),
            },
            tick: Duration::from_millis(args.tick_ms.max(1)),
            reload: Duration::from_millis(args.reload_ms.max(10)),
        },
        args.tenant_tokens,
    )?;
    let (listener, addr) = service::bind(SocketAddr::new(args.host, args.port)).await?;
    // A plain line on stdout, so tests and scripts can learn the port chosen for port 0.
    println!("matchmaker listening on {addr}");
    tracing::info!(%addr, "matchmaker listening");
    service::serve_router(listener, service.router(), shutdown_signal()).await?;
    service.stop();
    tracing::info!("matchmaker stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
