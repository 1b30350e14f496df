//! The PlayerService controller: observe a service, decide its status, write it when it changed.
//!
//! This stage records each service and reports where it stands; the Deployment, Service,
//! autoscaler and the tier policy plug into the decide/apply steps (see the services issue).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::conditions::{Desired, merge};
use super::status::apply_status;
use super::{Context, Error, error_policy_backoff};
use crate::crds::conditions as cond;
use crate::crds::{PlayerService, PlayerServiceStatus};

/// Reconciles one PlayerService.
///
/// # Errors
/// When the API server refuses the status write.
pub async fn reconcile(svc: Arc<PlayerService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "PlayerService", namespace = svc.namespace().unwrap_or_default(), name = %svc.name_any());
    let result = reconcile_service(&svc, &ctx).instrument(span).await;
    ctx.metrics.observe(
        "PlayerService",
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    result
}

async fn reconcile_service(svc: &PlayerService, ctx: &Context) -> Result<Action, Error> {
    let namespace = svc
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let status = observed_status(
        svc.status.as_ref(),
        svc.metadata.generation,
        &Time(Timestamp::now()),
    );
    let api: Api<PlayerService> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, svc, svc.status.as_ref(), &status).await?;
    Ok(Action::requeue(ctx.timings.resync))
}

/// Retry policy for PlayerService reconcile errors.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(svc: Arc<PlayerService>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %svc.name_any(), reason = error.reason(), error = %error, "PlayerService reconcile failed");
    error_policy_backoff(error)
}

/// The status of a service as this stage of the operator sees it (pure).
#[must_use]
pub fn observed_status(
    previous: Option<&PlayerServiceStatus>,
    generation: Option<i64>,
    now: &Time,
) -> PlayerServiceStatus {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let waiting = "the service is recorded; deployment is not enabled in this operator build";
    let desired = [
        Desired::new(cond::READY, false, "DeploymentNotEnabled", waiting),
        Desired::new(cond::RECONCILING, false, "DeploymentNotEnabled", waiting),
        Desired::new(cond::STALLED, false, "DeploymentNotEnabled", waiting),
    ];
    PlayerServiceStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &desired, generation, now),
        ..PlayerServiceStatus::default()
    }
}
