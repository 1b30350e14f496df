//! The MatchmakingPool controller: observe a service, decide its status, write it when it changed.
//!
//! This stage records each pool and reports where it stands; the matchmaker Deployment, its configuration,
//! Service and the tier semantics plug into the decide/apply steps (see the services issue).

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
use crate::crds::{MatchmakingPool, MatchmakingPoolStatus};

/// Reconciles one MatchmakingPool.
///
/// # Errors
/// When the API server refuses the status write.
pub async fn reconcile(pool: Arc<MatchmakingPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "MatchmakingPool", namespace = pool.namespace().unwrap_or_default(), name = %pool.name_any());
    let result = reconcile_pool(&pool, &ctx).instrument(span).await;
    ctx.metrics.observe(
        "MatchmakingPool",
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    result
}

async fn reconcile_pool(pool: &MatchmakingPool, ctx: &Context) -> Result<Action, Error> {
    let namespace = pool
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let status = observed_status(
        pool.status.as_ref(),
        pool.metadata.generation,
        &Time(Timestamp::now()),
    );
    let api: Api<MatchmakingPool> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, pool, pool.status.as_ref(), &status).await?;
    Ok(Action::requeue(ctx.timings.resync))
}

/// Retry policy for MatchmakingPool reconcile errors.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(pool: Arc<MatchmakingPool>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %pool.name_any(), reason = error.reason(), error = %error, "MatchmakingPool reconcile failed");
    error_policy_backoff(error)
}

/// The status of a pool as this stage of the operator sees it (pure).
#[must_use]
pub fn observed_status(
    previous: Option<&MatchmakingPoolStatus>,
    generation: Option<i64>,
    now: &Time,
) -> MatchmakingPoolStatus {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let waiting = "the pool is recorded; deployment is not enabled in this operator build";
    let desired = [
        Desired::new(cond::READY, false, "DeploymentNotEnabled", waiting),
        Desired::new(cond::RECONCILING, false, "DeploymentNotEnabled", waiting),
        Desired::new(cond::STALLED, false, "DeploymentNotEnabled", waiting),
    ];
    MatchmakingPoolStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &desired, generation, now),
        ..MatchmakingPoolStatus::default()
    }
}
