//! Leader election through a `coordination.k8s.io/v1` Lease: with several replicas, exactly one
//! runs the controllers; the others wait, report ready (they are healthy), and take over when the
//! leader's lease expires or is released on a graceful shutdown.
//!
//! A leader that loses its lease exits at once rather than trying to stop mid-reconcile: a
//! replica that no longer holds the lease must not write, and a restart is the simplest proof.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where and how long the lease is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease object.
    pub namespace: String,
    /// Name of the Lease object.
    pub name: String,
    /// This replica's identity (its pod name in a cluster).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// Slack before expiry in which the holder renews.
    pub grace: Duration,
}

/// A running election.
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager>>,
}

impl Election {
    /// Joins the election (creating the Lease if needed).
    ///
    /// # Errors
    /// When the Lease cannot be read or created.
    pub async fn join(client: Client, config: &LeaseConfig) -> Result<Self> {
        let manager = LeaseManagerBuilder::new(client, &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration.as_secs().max(2))
            .with_grace(
                config
                    .grace
                    .as_secs()
                    .clamp(1, config.duration.as_secs().max(2) - 1),
            )
            .with_field_manager(format!("gamecell-operator-lease-{}", config.identity))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Resolves once this replica holds the lease.
    pub async fn leading(&mut self) {
        while !*self.state.borrow_and_update() {
            if self.state.changed().await.is_err() {
                // The election task ended: wait forever rather than claim leadership.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when this replica, having led, no longer holds the lease.
    pub async fn lost(&mut self) {
        loop {
            if !*self.state.borrow_and_update() {
                return;
            }
            if self.state.changed().await.is_err() {
                return;
            }
        }
    }

    /// Leaves the election, releasing the lease so another replica takes over at once.
    pub async fn resign(self) {
        drop(self.state);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("lease released"),
            other => tracing::warn!(?other, "lease not released cleanly; it will expire"),
        }
    }
}
