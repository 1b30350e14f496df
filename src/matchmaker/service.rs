//! The running matchmaker: loads the configuration, reloads it when a file changes (its
//! modification time and size are polled every second, which also catches a ConfigMap volume's
//! symlink swap), runs the matching rounds on a thread of their own, and serves the API.
//! A multi-tenant matchmaker's tenant credentials file is polled and reloaded the same way; an
//! invalid one is logged (without its content) and the previous credentials stay in force.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::api::{self, Access};
use super::config::{Config, ConfigError, Defaults, TenantTokens};
use super::engine::{Engine, EngineOptions};
use super::metrics::Metrics;

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Configuration files (merged).
    pub config_paths: Vec<PathBuf>,
    /// Values the files may leave out.
    pub defaults: Defaults,
    /// Engine tuning.
    pub engine: EngineOptions,
    /// Interval of matching rounds.
    pub tick: Duration,
    /// Interval of configuration polls.
    pub reload: Duration,
}

/// Reads and merges the configuration files.
///
/// # Errors
/// A file that cannot be read or does not parse, or queues configured twice.
pub fn load(paths: &[PathBuf], defaults: &Defaults) -> Result<(Config, Vec<u8>), ConfigError> {
    let mut parts = Vec::new();
    let mut raw = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: e.to_string(),
        })?;
        raw.extend_from_slice(text.as_bytes());
        raw.push(0);
        parts.push(Config::parse(&name, &text, defaults)?);
    }
    Ok((Config::merge(parts)?, raw))
}

type Fingerprint = Vec<Option<(SystemTime, u64)>>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// The engine and its background threads.
pub struct Service {
    engine: Arc<Engine>,
    access: Access,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Service {
    /// Loads the configuration (an invalid one is logged and the matchmaker stays not ready
    /// until a valid one appears) and starts the matching and reload threads.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(options: ServiceOptions) -> std::io::Result<Self> {
        Self::start_with_tenant_tokens(options, None)
    }

    /// As [`Service::start`]; with `tenant_tokens`, the API requires every request's bearer
    /// token to be one of that file's tenants' ([`TenantTokens`]) and binds it to that tenant.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start_with_tenant_tokens(
        options: ServiceOptions,
        tenant_tokens: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let access = if tenant_tokens.is_some() {
            Access::tenants()
        } else {
            Access::open()
        };
        let token_paths: Vec<PathBuf> = tenant_tokens.into_iter().collect();
        let mut last_tokens = None;
        let mut last_token_print = fingerprint(&token_paths);
        apply_tokens(&access, &token_paths, &mut last_tokens);
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine::new(options.engine.clone(), metrics));
        let stop = Arc::new(AtomicBool::new(false));
        let mut last_raw = None;
        let mut last_print = fingerprint(&options.config_paths);
        apply(&engine, &options, &mut last_raw);

        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            let every = options.tick;
            std::thread::Builder::new()
                .name("matchmaker-tick".to_owned())
                .spawn(move || {
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        let started = Instant::now();
                        engine.tick_with(unix_ms);
                        engine
                            .metrics()
                            .tick
                            .observe(started.elapsed().as_secs_f64());
                        next += every;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })?
        };
        let reloader = {
            let engine = engine.clone();
            let access = access.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("matchmaker-config".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(options.reload);
                        let print = fingerprint(&options.config_paths);
                        if print != last_print {
                            last_print = print;
                            apply(&engine, &options, &mut last_raw);
                        }
                        let print = fingerprint(&token_paths);
                        if print != last_token_print {
                            last_token_print = print;
                            apply_tokens(&access, &token_paths, &mut last_tokens);
                        }
                    }
                })?
        };
        Ok(Self {
            engine,
            access,
            stop,
            threads: vec![ticker, reloader],
        })
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// The API's routes, with this service's access rules.
    pub fn router(&self) -> axum::Router {
        api::router_with(self.engine.clone(), self.access.clone())
    }

    /// Stops the background threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Loads the tenant credentials file (if any) when its bytes changed.
fn apply_tokens(access: &Access, paths: &[PathBuf], last: &mut Option<Vec<u8>>) {
    let Some(path) = paths.first() else {
        return;
    };
    let name = path.display().to_string();
    let loaded = std::fs::read(path)
        .map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: e.to_string(),
        })
        .and_then(|raw| {
            let text = String::from_utf8_lossy(&raw).into_owned();
            TenantTokens::parse(&name, &text).map(|t| (t, raw))
        });
    match loaded {
        Ok((tokens, raw)) => {
            if last.as_ref() == Some(&raw) {
                return;
            }
            tracing::info!(tenants = tokens.len(), "tenant credentials applied");
            access.set_tenants(tokens);
            *last = Some(raw);
        }
        // The error names the file and the problem (tenant names), never a credential.
        Err(e) => {
            tracing::error!(error = %e, "tenant credentials refused; the previous ones stay in force")
        }
    }
}

fn apply(engine: &Engine, options: &ServiceOptions, last_raw: &mut Option<Vec<u8>>) {
    match load(&options.config_paths, &options.defaults) {
        Ok((config, raw)) => {
            if last_raw.as_ref() == Some(&raw) {
                return;
            }
            let summary = engine.apply_config(&config, unix_ms());
            *last_raw = Some(raw);
            engine.metrics().reload(true);
            tracing::info!(
                queues = config.queues.len(),
                added = ?summary.added,
                removed = ?summary.removed,
                changed = ?summary.changed,
                "configuration applied"
            );
        }
        Err(e) => {
            engine.metrics().reload(false);
            tracing::error!(error = %e, "configuration refused; the previous one stays in force");
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, api::router(engine), shutdown).await
}

/// Serves `router` (e.g. [`Service::router`]) on `listener` until `shutdown` resolves.
///
/// # Errors
/// When the server fails.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` (port 0 picks a free one) and returns the listener and its address.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
