//! The controllers: one per kind, wired to one shared context and one shutdown signal.
//!
//! Startup waits for the operator's CRDs (an operator installed before its CRDs waits rather
//! than crash-loops), then starts every controller and reports ready once their caches are
//! synced. Each controller follows the same pipeline: observe, decide (pure), apply, status.

pub mod applied;
pub mod apply;
pub mod backoff;
pub mod cell_matchmaker;
pub mod cells_seen;
pub mod conditions;
pub mod gamecell;
pub mod matchmakingpool;
pub mod placement;
pub mod playerservice;
pub mod settled;
pub mod status;
pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{controller, controller::Action, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::admin::Readiness;
use crate::cloud::CloudProvider;
use crate::crds::{GameCell, MatchmakingPool, PlayerService, all_crds};
use crate::telemetry::Metrics;
use applied::AppliedWatches;
use apply::Applier;
use backoff::Backoff;
use cells_seen::CellsSeen;
use kube::runtime::reflector::Store;
use placement::Placement;
use settled::SettledPasses;
use triggers::{CellWakeups, ServiceWakeups};

/// The field manager of every write the operator makes (server-side apply).
pub const FIELD_MANAGER: &str = "gamecell-operator";

/// What every reconcile gets.
pub struct Context {
    /// Client of the cluster the operator's own objects live in.
    pub client: Client,
    /// Publishes Events; shared so that repeated Events aggregate.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// The cloud the cells' resources live in.
    pub cloud: Arc<dyn CloudProvider>,
    /// Where each cell's Kubernetes objects are applied.
    pub placement: Placement,
    /// Per-object backoff of transient failures.
    pub backoff: Backoff,
    /// How often objects are looked at again.
    pub timings: Timings,
    /// Every PlayerService, as the PlayerService controller's watch sees it (a cell reads its
    /// services here instead of listing them on each reconcile, which is quadratic at scale).
    pub services: Store<PlayerService>,
    /// Every MatchmakingPool, likewise.
    pub pools: Store<MatchmakingPool>,
    /// The cells PlayerServices bind to, read again only when their spec or identity changed.
    pub service_cells: CellsSeen,
    /// The cells MatchmakingPools bind to, likewise (each controller's own cell watch).
    pub pool_cells: CellsSeen,
    /// Wakes the services of a namespace whose connection Secrets the GameCell controller wrote.
    pub wakeups: ServiceWakeups,
    /// The last settled full pass of each cell, for light passes.
    pub settled: SettledPasses,
    /// True once every watch cache has its first full listing. Reconciles wait on this rather
    /// than on `Store::wait_until_ready`, whose one-shot readiness wakes only one of several
    /// concurrent waiters (a reconcile started before the caches synced hung forever).
    pub caches_synced: watch::Receiver<bool>,
}

/// Requeue intervals. The defaults suit production; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// A Ready object is re-examined this often, to detect drift.
    pub resync: Duration,
    /// An object whose cloud resources are still provisioning or deleting is polled this often.
    pub provisioning_poll: Duration,
    /// Reconciles each controller runs at once. Unbounded, 1,000 cells flooded a 2-core API
    /// server until it answered 504 and the operator held hundreds of MiB of requests in
    /// flight; a bound keeps the API server answering and converges sooner.
    pub concurrency: u16,
    /// How long the PlayerService and MatchmakingPool controllers wait after a trigger for the
    /// next one before they reconcile (kube-runtime's trailing-edge debounce). A rollout moves a
    /// Deployment's status several times a second, and each move was a reconcile and, as the
    /// replica counts moved, a status patch: about 4 status patches per PlayerService at N = 100
    /// (BENCHMARKS.md). The GameCell controller is not debounced: a single cell's time to Ready
    /// is a target of its own.
    pub workload_debounce: Duration,
}

/// Default of [`Timings::workload_debounce`].
pub const DEFAULT_WORKLOAD_DEBOUNCE: Duration = Duration::from_secs(1);

/// Default of [`Timings::concurrency`].
pub const DEFAULT_CONCURRENCY: u16 = 16;

impl Default for Timings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            provisioning_poll: Duration::from_secs(10),
            concurrency: DEFAULT_CONCURRENCY,
            workload_debounce: DEFAULT_WORKLOAD_DEBOUNCE,
        }
    }
}

/// Errors a reconcile can end with. "Still converging" is not one of them: that is an `Ok`
/// with a requeue, shown in a condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object arrived without a field the API server always sets.
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// An object could not be serialized (a bug).
    #[error("cannot serialize an object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A cloud call failed; `permanent` ones wait for a change.
    #[error("cloud call failed: {0}")]
    Cloud(#[from] crate::cloud::CloudError),
    /// The finalizer bookkeeping failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A watch cache this reconcile reads was never filled (its watch stopped).
    #[error("the {0} cache is unavailable")]
    CacheUnavailable(&'static str),
    /// Deletion is waiting on the cloud (a store still creating, or deleting). Not a failure:
    /// it is returned as an error only because an `Ok` from a finalizer's cleanup releases the
    /// finalizer, and it is retried at the provisioning poll, without growing a backoff.
    #[error("waiting for the cloud: {0}")]
    CleanupPending(String),
}

impl Error {
    /// A bounded, PascalCase reason for metrics labels and Event reasons.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::MissingField(_) => "InvalidObject",
            Self::Serialize(_) => "SerializationFailed",
            Self::Cloud(e) => e.reason(),
            Self::Finalizer(_) => "FinalizerFailed",
            Self::CleanupPending(_) => "CleanupPending",
            Self::CacheUnavailable(_) => "CacheUnavailable",
        }
    }
}

/// Retry policy shared by the controllers: transient failures retry after a pause instead of
/// hot-looping.
pub fn error_policy_backoff(error: &Error) -> Action {
    match error {
        Error::Cloud(e) if e.is_permanent() => Action::requeue(PERMANENT_RETRY),
        Error::Kube(_)
        | Error::Cloud(_)
        | Error::Finalizer(_)
        | Error::CleanupPending(_)
        | Error::CacheUnavailable(_) => Action::requeue(Duration::from_secs(10)),
        Error::MissingField(_) | Error::Serialize(_) => Action::await_change(),
    }
}

/// How long a permanent failure (access denied, invalid request) waits before one more try, in
/// case credentials changed: a bounded trickle instead of a retry storm.
pub const PERMANENT_RETRY: Duration = Duration::from_secs(600);

/// Resolves when the shutdown signal fires (or its sender is gone).
pub async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Polls until every CRD of the operator exists and is Established, or shutdown is requested.
/// Returns false on shutdown.
pub async fn wait_for_crds(client: &Client, shutdown: watch::Receiver<bool>) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = all_crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let mut attempt: u64 = 0;
    loop {
        let mut missing = Vec::new();
        for name in &names {
            match api.get_opt(name).await {
                Ok(Some(crd)) if is_established(&crd) => {}
                Ok(_) => missing.push(name.clone()),
                Err(e) => {
                    missing.push(name.clone());
                    tracing::debug!(error = %e, crd = %name, "cannot read CRD yet");
                }
            }
        }
        if missing.is_empty() {
            tracing::info!("all CRDs are established");
            return true;
        }
        if attempt.is_multiple_of(15) {
            tracing::warn!(missing = ?missing, "waiting for CRDs to be installed (kubectl apply -f config/crd/)");
        }
        attempt += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown_requested(shutdown.clone()) => return false,
        }
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Runs every controller until shutdown. Marks `readiness` once all caches are synced.
pub async fn run(
    client: Client,
    cloud: Arc<dyn CloudProvider>,
    timings: Timings,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    reporter: Reporter,
    shutdown: watch::Receiver<bool>,
) {
    if !wait_for_crds(&client, shutdown.clone()).await {
        return;
    }
    let config = watcher::Config::default().any_semantic();

    // A cell's status aggregates its services: any change to a PlayerService or MatchmakingPool
    // re-reconciles the cell it names, woken from the workload controllers' own watches once
    // their stores (which the cell reads) hold the change (`triggers::CellWakeups`).
    let (cell_wakeups, woken_cells) = CellWakeups::new();
    let cells = triggers::controller_of(Api::<GameCell>::all(client.clone()), config.clone())
        .reconcile_on(woken_cells)
        .with_config(controller::Config::default().concurrency(timings.concurrency))
        .graceful_shutdown_on(shutdown_requested(shutdown.clone()));
    let workload_config = controller::Config::default()
        .concurrency(timings.concurrency)
        .debounce(timings.workload_debounce);
    let (wakeups, woken_services) = ServiceWakeups::new();
    let (service_cells, pool_cells) = (CellsSeen::default(), CellsSeen::default());
    let services = playerservice::controller(
        client.clone(),
        config.clone(),
        cell_wakeups.clone(),
        service_cells.clone(),
    )
    .reconcile_on(woken_services)
    .with_config(workload_config.clone())
    .graceful_shutdown_on(shutdown_requested(shutdown.clone()));
    let pools =
        matchmakingpool::controller(client.clone(), config, cell_wakeups, pool_cells.clone())
            .with_config(workload_config)
            .graceful_shutdown_on(shutdown_requested(shutdown.clone()));

    // The applied memo's metadata watches (one per child kind), stopped with the controllers.
    let applied = AppliedWatches::new(&client, &metrics);
    let applied_watches = {
        let run = applied.run;
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = run => {}
                () = shutdown_requested(shutdown) => {}
            }
        }
    };
    let (synced_tx, synced_rx) = watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        cloud,
        placement: Placement::local(Applier::new(client.clone(), applied.applied.clone())),
        backoff: Backoff::default(),
        timings,
        services: services.store(),
        pools: pools.store(),
        service_cells,
        pool_cells,
        wakeups,
        settled: SettledPasses::default(),
        caches_synced: synced_rx,
    });
    let stores = (cells.store(), services.store(), pools.store());
    let applied_synced = applied.synced;
    let mark_ready = {
        let metrics = metrics.clone();
        async move {
            let synced = stores.0.wait_until_ready().await.is_ok()
                && stores.1.wait_until_ready().await.is_ok()
                && stores.2.wait_until_ready().await.is_ok()
                && applied_synced.await;
            if synced {
                let _ = synced_tx.send(true);
                readiness.set(true);
                metrics.ready.set(1);
                tracing::info!("caches synced; operator ready");
            }
        }
    };

    let cells = cells
        .run(gamecell::reconcile, gamecell::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let services = services
        .run(
            playerservice::reconcile,
            playerservice::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let pools = pools
        .run(
            matchmakingpool::reconcile,
            matchmakingpool::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    tokio::join!(mark_ready, applied_watches, cells, services, pools);
    tracing::info!("controllers stopped");
}
