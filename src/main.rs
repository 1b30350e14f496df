//! The operator binary: parses flags, sets up logging, connects to the cluster, serves the admin
//! endpoints and runs the controllers until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gamecell_operator::admin::{self, Readiness};
use gamecell_operator::cloud::CloudProvider;
use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::cloud::fake::FakeCloud;
use gamecell_operator::cloud::metered::MeteredCloud;
use gamecell_operator::controllers;
use gamecell_operator::leader::{Election, LeaseConfig};
use gamecell_operator::telemetry::{self, LogFormat, Metrics};
use kube::runtime::events::Reporter;
use tokio::sync::watch;

/// Runs game backends as cells on Kubernetes and AWS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "GAMECELL_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// Log format: text for terminals, json for log pipelines.
    #[arg(long, env = "GAMECELL_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter in RUST_LOG syntax.
    #[arg(
        long,
        env = "RUST_LOG",
        default_value = "info,kube=warn,tower=warn,hyper=warn"
    )]
    log_filter: String,
    /// Name this instance reports in Events and holds the lease as (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Run the controllers only while holding a Lease, so several replicas can run safely.
    #[arg(long, env = "GAMECELL_LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    /// Namespace of the leader-election Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "GAMECELL_LEASE_NAME", default_value = "gamecell-operator")]
    lease_name: String,
    /// Seconds a lease lasts without renewal: the longest a failed leader blocks a takeover.
    #[arg(long, env = "GAMECELL_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_seconds: u64,
    /// Seconds between looks at a Ready object (drift detection: a data store deleted out of
    /// band is noticed within this time).
    #[arg(long, env = "GAMECELL_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    resync_seconds: u64,
    /// Reconciles each controller runs at once (GameCells, PlayerServices, MatchmakingPools).
    #[arg(long, env = "GAMECELL_CONCURRENCY", default_value_t = controllers::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Diagnostic: resolve HOST with the resolver the HTTP clients use (getaddrinfo, through
    /// the system's NSS configuration), print the addresses and exit. Proves an image ships
    /// what name resolution needs.
    #[arg(long, value_name = "HOST", hide = true)]
    resolve: Option<String>,
    /// Benchmarks only: which cloud to provision in. `fake` keeps every data store in memory
    /// (ready after two describes, every named EKS cluster present), so the operator process can
    /// be measured at a scale no emulator holds. Never for real use: nothing is provisioned.
    #[arg(
        long,
        env = "GAMECELL_CLOUD",
        value_enum,
        default_value = "aws",
        hide = true
    )]
    cloud: CloudChoice,
}

/// The cloud the operator provisions in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CloudChoice {
    /// AWS through the official SDK (or an emulator at `AWS_ENDPOINT_URL`).
    Aws,
    /// The in-memory fake (benchmarks of the operator process).
    Fake,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(host) = &args.resolve {
        return match tokio::net::lookup_host((host.as_str(), 443)).await {
            Ok(addrs) => {
                for addr in addrs {
                    println!("{}", addr.ip());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot resolve {host}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = telemetry::init_logging(args.log_format, &args.log_filter) {
        eprintln!("cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let metrics = Arc::new(Metrics::new());
    // Kubeconfig from KUBECONFIG or ~/.kube/config, else the in-cluster service account. Every
    // request is counted by verb and resource on /metrics.
    let client = match kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)
        .and_then(|config| metrics.counted_client(config))
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client (no kubeconfig and not in a cluster?)");
            return ExitCode::FAILURE;
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let readiness = Readiness::default();
    let identity = args.instance.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!("{host}-{}", std::process::id())
    });
    let reporter = Reporter {
        controller: controllers::FIELD_MANAGER.to_owned(),
        instance: args.instance,
    };

    let admin = tokio::spawn(admin::serve(
        args.admin_addr,
        readiness.clone(),
        metrics.clone(),
        controllers::shutdown_requested(shutdown_rx.clone()),
    ));
    // With leader election, wait for the lease before running anything that writes. A standby
    // replica is healthy, so it reports ready.
    let mut election = None;
    if args.leader_elect {
        let config = LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(args.lease_seconds),
            grace: Duration::from_secs((args.lease_seconds / 3).max(1)),
        };
        let mut joined = match Election::join(client.clone(), &config).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot join the leader election");
                return ExitCode::FAILURE;
            }
        };
        readiness.set(true);
        tracing::info!(identity = %identity, lease = %config.name, namespace = %config.namespace, "waiting for leadership");
        tokio::select! {
            () = joined.leading() => {}
            () = termination_signal() => {
                tracing::info!("termination signal received while standing by; stopped cleanly");
                joined.resign().await;
                return ExitCode::SUCCESS;
            }
        }
        readiness.set(false);
        metrics.leader.set(1);
        tracing::info!(identity = %identity, "acquired leadership");
        election = Some(joined);
    } else {
        metrics.leader.set(1);
    }

    // AWS: the default credential chain (IRSA / Pod Identity in a cluster); AWS_ENDPOINT_URL
    // points every client at an emulator in tests and the demo.
    let provider: Arc<dyn CloudProvider> = match args.cloud {
        CloudChoice::Aws => Arc::new(AwsCloud::from_env().await),
        CloudChoice::Fake => {
            tracing::warn!(
                "--cloud=fake: data stores exist only in this process's memory (benchmarks only)"
            );
            Arc::new(FakeCloud::for_benchmarks(2))
        }
    };
    let cloud: Arc<dyn CloudProvider> = Arc::new(MeteredCloud::new(provider, metrics.clone()));
    let controllers = tokio::spawn(controllers::run(
        client,
        cloud,
        controllers::Timings {
            resync: Duration::from_secs(args.resync_seconds),
            concurrency: args.concurrency,
            ..controllers::Timings::default()
        },
        metrics,
        readiness,
        reporter,
        shutdown_rx,
    ));

    let lost = async {
        match election.as_mut() {
            Some(e) => e.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = termination_signal() => tracing::info!("termination signal received; shutting down"),
        () = lost => {
            tracing::error!("lost the leader lease: exiting so that only the new leader writes");
            return ExitCode::FAILURE;
        }
        result = admin => {
            tracing::error!(?result, "admin server stopped unexpectedly");
            return ExitCode::FAILURE;
        }
    }
    let _ = shutdown_tx.send(true);
    if let Err(e) = controllers.await {
        tracing::error!(error = %e, "controllers task failed");
        return ExitCode::FAILURE;
    }
    if let Some(e) = election {
        e.resign().await;
    }
    tracing::info!("stopped cleanly");
    ExitCode::SUCCESS
}

async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
