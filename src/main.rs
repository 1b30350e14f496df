//! The operator binary: parses flags, sets up logging, connects to the cluster, serves the admin
//! endpoints and runs the controllers until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use gamecell_operator::admin::{self, Readiness};
use gamecell_operator::cloud::CloudProvider;
use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::controllers;
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
    /// Name this instance reports in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = telemetry::init_logging(args.log_format, &args.log_filter) {
        eprintln!("cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    // Kubeconfig from KUBECONFIG or ~/.kube/config, else the in-cluster service account.
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client (no kubeconfig and not in a cluster?)");
            return ExitCode::FAILURE;
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
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
    // AWS: the default credential chain (IRSA / Pod Identity in a cluster); AWS_ENDPOINT_URL
    // points every client at an emulator in tests and the demo.
    let cloud: Arc<dyn CloudProvider> = Arc::new(AwsCloud::from_env().await);
    let controllers = tokio::spawn(controllers::run(
        client,
        cloud,
        controllers::Timings::default(),
        metrics,
        readiness,
        reporter,
        shutdown_rx,
    ));

    tokio::select! {
        () = termination_signal() => tracing::info!("termination signal received; shutting down"),
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
