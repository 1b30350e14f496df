//! The MatchmakingPool controller: observe the pool and the cell it names, decide with the pure
//! `workload` modules (binding, queue validation, tier semantics), apply the ConfigMap and the
//! matchmakers where the cell runs, prune matchmakers no longer wanted (a Dedicated pool that
//! dropped a region), then report in status and Events.
//!
//! Same conventions as the PlayerService controller, whose child helpers it uses.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use super::conditions::merge;
use super::playerservice::{ChildError, announce, apply_child, floor, prune, requeue_after};
use super::status::apply_status;
use super::{Context, Error, error_policy_backoff};
use crate::crds::gamecell::TenantSpec;
use crate::crds::{GameCell, MatchmakingPool, MatchmakingPoolStatus};
use crate::workload::binding::bind;
use crate::workload::matchmaker::{self, PoolObjects};
use crate::workload::meta::{
    COMPONENT_MATCHMAKER, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_POOL, MANAGED_BY, Owner,
};
use crate::workload::rollout::{self, Rollout};
use crate::workload::status::{Outcome, conditions};

/// The MatchmakingPool controller, with its watches: the matchmaker Deployments it owns and the
/// GameCells pools bind to (see the PlayerService controller).
#[must_use]
pub fn controller(client: Client, config: watcher::Config) -> Controller<MatchmakingPool> {
    let children = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT_MATCHMAKER}"
    ));
    let controller = Controller::new(Api::<MatchmakingPool>::all(client.clone()), config)
        .owns(Api::<Deployment>::all(client.clone()), children);
    let store = controller.store();
    controller.watches(
        Api::<GameCell>::all(client),
        watcher::Config::default(),
        move |cell: GameCell| bound_to(&store, &cell.name_any()),
    )
}

fn bound_to(store: &Store<MatchmakingPool>, cell: &str) -> Vec<ObjectRef<MatchmakingPool>> {
    store
        .state()
        .iter()
        .filter(|p| p.spec.cell_ref.name == cell)
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Reconciles one MatchmakingPool.
///
/// # Errors
/// When the Kubernetes API fails; refusals and rollouts are reported in status instead.
pub async fn reconcile(pool: Arc<MatchmakingPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "MatchmakingPool", namespace = pool.namespace().unwrap_or_default(), object = %pool.name_any());
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
    let owner = Owner::of(pool).ok_or(Error::MissingField("metadata.uid"))?;
    let cell_name = &pool.spec.cell_ref.name;
    let cells: Api<GameCell> = Api::all(ctx.client.clone());
    let cell = cells.get_opt(cell_name).await?;
    let (outcome, queues) = match bind(cell_name, cell.as_ref(), &namespace) {
        Err(refusal) => (Outcome::Refused(refusal), None),
        Ok((cell, tenant)) => deploy(pool, &owner, cell, tenant, ctx).await?,
    };

    let previous = pool.status.as_ref();
    let status = pool_status(
        previous,
        pool.metadata.generation,
        &outcome,
        queues,
        &Time(Timestamp::now()),
    );
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    announce(ctx, pool, before, &status.conditions, &outcome).await;
    let api: Api<MatchmakingPool> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, pool, previous, &status).await?;
    Ok(requeue_after(ctx, &outcome))
}

async fn apply_objects(client: &Client, objects: &PoolObjects) -> Result<(), ChildError> {
    apply_child(client, &objects.config_map).await?;
    for instance in &objects.instances {
        apply_child(client, &instance.deployment).await?;
        apply_child(client, &instance.service).await?;
        if let Some(hpa) = &instance.autoscaler {
            apply_child(client, hpa).await?;
        }
    }
    if let Some(policy) = &objects.network_policy {
        apply_child(client, policy).await?;
    }
    Ok(())
}

async fn deploy(
    pool: &MatchmakingPool,
    owner: &Owner,
    cell: &GameCell,
    tenant: &TenantSpec,
    ctx: &Context,
) -> Result<(Outcome, Option<i32>), Error> {
    let client = ctx.placement.client_for(cell);
    let namespace = owner.namespace.as_str();
    let objects = match matchmaker::build(
        pool,
        matchmaker::Inputs {
            owner,
            cell,
            tenant,
        },
    ) {
        Ok(objects) => objects,
        Err(refusal) => return Ok((Outcome::Refused(refusal), None)),
    };
    match apply_objects(&client, &objects).await {
        Ok(()) => {}
        Err(ChildError::Rejected(refusal)) => return Ok((Outcome::Refused(refusal), None)),
        Err(ChildError::Failed(e)) => return Err(e),
    }

    // Matchmakers of regions the pool no longer lists, and autoscalers it no longer wants.
    let selector = format!("{LABEL_POOL}={}", owner.name);
    let deployments: Vec<String> = objects
        .instances
        .iter()
        .map(|i| i.deployment.name_any())
        .collect();
    let autoscalers: Vec<String> = objects
        .instances
        .iter()
        .filter_map(|i| i.autoscaler.as_ref().map(ResourceExt::name_any))
        .collect();
    prune::<Deployment>(&client, namespace, &selector, &deployments, &owner.uid).await?;
    prune::<Service>(&client, namespace, &selector, &deployments, &owner.uid).await?;
    prune::<HorizontalPodAutoscaler>(&client, namespace, &selector, &autoscalers, &owner.uid)
        .await?;

    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut rollouts: Vec<Rollout> = Vec::new();
    for instance in &objects.instances {
        let current = api.get_opt(&instance.deployment.name_any()).await?;
        rollouts.push(rollout::observe(
            current.as_ref(),
            floor(instance.autoscaler.as_ref()),
        ));
    }
    let queues = i32::try_from(objects.queues).unwrap_or(i32::MAX);
    Ok((
        Outcome::Deployed {
            adjustments: objects.adjustments,
            rollout: rollout::combine(&rollouts),
            missing_secrets: Vec::new(),
        },
        Some(queues),
    ))
}

/// The status of a pool given what its reconcile found (pure).
#[must_use]
pub fn pool_status(
    previous: Option<&MatchmakingPoolStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    queues: Option<i32>,
    now: &Time,
) -> MatchmakingPoolStatus {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (replicas, ready_replicas) = match outcome {
        Outcome::Deployed { rollout, .. } => (Some(rollout.desired), Some(rollout.ready)),
        Outcome::Refused(_) => (None, None),
    };
    MatchmakingPoolStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &conditions(outcome), generation, now),
        queues,
        replicas,
        ready_replicas,
    }
}

/// Retry policy for MatchmakingPool reconcile errors.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(pool: Arc<MatchmakingPool>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %pool.name_any(), reason = error.reason(), error = %error, "MatchmakingPool reconcile failed");
    error_policy_backoff(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::conditions::find;
    use crate::crds::conditions as cond;
    use crate::workload::binding::{Refusal, reasons};

    #[test]
    fn a_refused_pool_reports_why_and_no_figures() {
        let now = Time(Timestamp::from_second(10).expect("time"));
        let refused =
            Outcome::Refused(Refusal::new(reasons::QUEUE_REGION_NOT_ALLOWED, "us-east-1"));
        let status = pool_status(None, Some(1), &refused, None, &now);
        assert_eq!(status.queues, None);
        assert_eq!(
            find(&status.conditions, cond::READY).map(|c| c.reason.as_str()),
            Some("QueueRegionNotAllowed")
        );
        let deployed = Outcome::Deployed {
            adjustments: vec![],
            rollout: Rollout {
                desired: 2,
                ready: 1,
                ..Rollout::default()
            },
            missing_secrets: vec![],
        };
        let status = pool_status(Some(&status), Some(2), &deployed, Some(3), &now);
        assert_eq!(
            (status.queues, status.replicas, status.ready_replicas),
            (Some(3), Some(2), Some(1))
        );
        assert!(find(&status.conditions, cond::RECONCILING).is_some_and(|c| c.status == "True"));
    }
}
