//! The MatchmakingPool controller: observe the pool and the cell it names, decide with the pure
//! `workload` modules (binding, queue validation, tier semantics), apply the ConfigMap and the
//! matchmakers where the cell runs, prune matchmakers no longer wanted (a Dedicated pool that
//! dropped a region), then report in status and Events.
//!
//! A Shared cell's pool without an image has no matchmaker of its own: the cell matchmaker the
//! GameCell controller runs serves it (`workload::cell_matchmaker`). This controller then removes
//! the per-pool matchmaker the pool may have had, and reports where the pool is served, Ready
//! once the cell matchmaker is available and its ConfigMap holds the pool's current queues.
//!
//! Same conventions as the PlayerService controller, whose child helpers it uses.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use super::apply::Applier;
use super::cells_seen::CellsSeen;
use super::conditions::merge;
use super::playerservice::{
    ChildError, announce, apply_child, apply_child_seen, deployment_now, floor, prune,
    requeue_after,
};
use super::status::apply_status;
use super::triggers::{
    CellWakeups, cell_changes_noted, controller_tapped, metadata_touched, objects_of,
};
use super::{Context, Error, error_policy_backoff};
use crate::cell::tenancy::{
    COMPONENT_CELL_MATCHMAKER, CellIdentity, LABEL_CELL, shared_namespace_conflict,
    shared_services_namespace,
};
use crate::crds::gamecell::TenantSpec;
use crate::crds::{GameCell, MatchmakingPool, MatchmakingPoolStatus};
use crate::workload::binding::{Refusal, bind, check_image};
use crate::workload::cell_matchmaker::{self, CONFIG_NAME, NAME as CELL_MATCHMAKER};
use crate::workload::matchmaker::{self, CONFIG_KEY, DEFAULT_MATCHMAKER_IMAGE, PoolObjects};
use crate::workload::meta::{
    COMPONENT_MATCHMAKER, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_POOL, MANAGED_BY, Owner,
    bounded_name,
};
use crate::workload::policy::Adjustment;
use crate::workload::rollout::{self, Problem, Rollout};
use crate::workload::status::{Outcome, conditions};

/// `Ready` reason of a shared pool the cell matchmaker does not serve (yet) with its current
/// queues.
pub const WAITING_FOR_CELL_MATCHMAKER: &str = "WaitingForCellMatchmaker";
/// Refusal: the cell's shared-services namespace belongs to someone else.
pub const SHARED_NAMESPACE_CONFLICT: &str = "SharedNamespaceConflict";
/// `PolicyAdjusted` reason: the pool asked for replicas the cell matchmaker does not take.
pub const SERVED_BY_CELL_MATCHMAKER: &str = "ServedByCellMatchmaker";

/// The MatchmakingPool controller, with its watches: the matchmaker Deployments it owns, the cell
/// matchmakers (which serve the pools of their cell) and the GameCells pools bind to (see the
/// PlayerService controller).
#[must_use]
pub fn controller(
    client: Client,
    config: watcher::Config,
    cells: CellWakeups,
    cells_seen: CellsSeen,
) -> Controller<MatchmakingPool> {
    let children = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT_MATCHMAKER}"
    ));
    let cell_matchmakers = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT_CELL_MATCHMAKER}"
    ));
    let wake_cell = move |event: &watcher::Event<MatchmakingPool>| {
        if let Some(pool) = objects_of(event) {
            cells.wake(&pool.spec.cell_ref.name);
        }
    };
    let controller = controller_tapped(
        Api::<MatchmakingPool>::all(client.clone()),
        config,
        wake_cell,
    )
    .owns_stream(metadata_touched::<Deployment>(client.clone(), children));
    let store = controller.store();
    let served = store.clone();
    controller
        .watches_stream(
            metadata_touched::<Deployment>(client.clone(), cell_matchmakers),
            move |d: PartialObjectMeta<Deployment>| {
                d.labels()
                    .get(LABEL_CELL)
                    .map(|cell| bound_to(&served, cell))
                    .unwrap_or_default()
            },
        )
        .watches_stream(
            cell_changes_noted(client, watcher::Config::default(), cells_seen),
            move |cell: PartialObjectMeta<GameCell>| bound_to(&store, &cell.name_any()),
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
    let cell = ctx.pool_cells.get(&cells, cell_name).await?;
    let (outcome, queues) = match bind(cell_name, cell.as_deref(), &namespace) {
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

/// Applies the pool's objects; returns each instance's Deployment as the apply step saw it
/// (`None` where its read was skipped).
async fn apply_objects(
    applier: &Applier,
    objects: &PoolObjects,
) -> Result<Vec<Option<Deployment>>, ChildError> {
    apply_child(applier, &objects.config_map).await?;
    let mut deployments = Vec::with_capacity(objects.instances.len());
    for instance in &objects.instances {
        deployments.push(apply_child_seen(applier, &instance.deployment).await?);
        apply_child(applier, &instance.service).await?;
        if let Some(hpa) = &instance.autoscaler {
            apply_child(applier, hpa).await?;
        }
    }
    if let Some(policy) = &objects.network_policy {
        apply_child(applier, policy).await?;
    }
    Ok(deployments)
}

async fn deploy(
    pool: &MatchmakingPool,
    owner: &Owner,
    cell: &GameCell,
    tenant: &TenantSpec,
    ctx: &Context,
) -> Result<(Outcome, Option<i32>), Error> {
    if cell_matchmaker::served_by_cell(pool, cell) {
        return served_by_cell(pool, owner, cell, tenant, ctx).await;
    }
    let applier = ctx.placement.applier_for(cell);
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
    let seen = match apply_objects(&applier, &objects).await {
        Ok(seen) => seen,
        Err(ChildError::Rejected(refusal)) => return Ok((Outcome::Refused(refusal), None)),
        Err(ChildError::Failed(e)) => return Err(e),
    };

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
    prune::<Deployment>(&applier, namespace, &selector, &deployments, &owner.uid).await?;
    prune::<Service>(&applier, namespace, &selector, &deployments, &owner.uid).await?;
    prune::<HorizontalPodAutoscaler>(&applier, namespace, &selector, &autoscalers, &owner.uid)
        .await?;

    let mut rollouts: Vec<Rollout> = Vec::new();
    for (instance, seen) in objects.instances.iter().zip(seen) {
        let current =
            deployment_now(&applier, namespace, &instance.deployment.name_any(), seen).await?;
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

/// A Shared cell's pool served by the cell matchmaker: its own matchmaker removed, its status
/// from the cell matchmaker's Deployment and ConfigMap.
async fn served_by_cell(
    pool: &MatchmakingPool,
    owner: &Owner,
    cell: &GameCell,
    tenant: &TenantSpec,
    ctx: &Context,
) -> Result<(Outcome, Option<i32>), Error> {
    let applier = ctx.placement.applier_for(cell);
    let client = applier.client().clone();
    let cell_name = cell.name_any();
    let config = match matchmaker::queue_config(pool, cell, tenant)
        .and_then(|c| check_image(&cell_name, &cell.spec, DEFAULT_MATCHMAKER_IMAGE).map(|()| c))
    {
        Ok(config) => config,
        Err(refusal) => return Ok((Outcome::Refused(refusal), None)),
    };

    // The per-pool matchmaker of before (same pool, same UID), if any.
    let namespace = owner.namespace.as_str();
    let selector = format!("{LABEL_POOL}={}", owner.name);
    prune::<Deployment>(&applier, namespace, &selector, &[], &owner.uid).await?;
    prune::<Service>(&applier, namespace, &selector, &[], &owner.uid).await?;
    prune::<HorizontalPodAutoscaler>(&applier, namespace, &selector, &[], &owner.uid).await?;
    let old_config = bounded_name(&[&owner.name, "mm", "config"]);
    super::cell_matchmaker::delete_owned::<ConfigMap>(&client, namespace, &old_config, &owner.uid)
        .await?;

    let shared_ns = shared_services_namespace(&cell_name);
    let identity = CellIdentity {
        name: &cell_name,
        uid: cell.metadata.uid.as_deref().unwrap_or_default(),
    };
    let owners = super::cell_matchmaker::namespace_owners(&client, &shared_ns).await?;
    if let Some(conflict) = shared_namespace_conflict(identity, &cell.spec, owners.as_deref()) {
        return Ok((
            Outcome::Refused(Refusal::new(SHARED_NAMESPACE_CONFLICT, conflict)),
            None,
        ));
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), &shared_ns)
        .get_opt(CELL_MATCHMAKER)
        .await?;
    let document = Api::<ConfigMap>::namespaced(client.clone(), &shared_ns)
        .get_opt(CONFIG_NAME)
        .await?
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(CONFIG_KEY));
    let queues = i32::try_from(config.queues.len()).unwrap_or(i32::MAX);
    let rollout = served_rollout(
        rollout::observe(deployment.as_ref(), 0),
        document
            .as_deref()
            .is_some_and(|d| cell_matchmaker::serves(d, &config)),
        &shared_ns,
        &cell_matchmaker::url(&cell_name),
        queues,
    );
    let asked_for_more =
        pool.spec.autoscaling.is_some() || pool.spec.replicas.is_some_and(|r| r != 1);
    let adjustments = if asked_for_more {
        vec![Adjustment {
            reason: SERVED_BY_CELL_MATCHMAKER,
            message: format!(
                "the cell matchmaker {shared_ns}/{CELL_MATCHMAKER} serves every tenant's pools with one replica of its own, outside tenant {}'s quota: spec.replicas and spec.autoscaling are not used",
                tenant.name
            ),
            warning: false,
        }]
    } else {
        Vec::new()
    };
    Ok((
        Outcome::Deployed {
            adjustments,
            rollout,
            missing_secrets: Vec::new(),
        },
        Some(queues),
    ))
}

/// The rollout a pool served by the cell matchmaker reports (pure): the cell matchmaker's, not
/// complete until its configuration serves the pool's current queues, and saying where the pool
/// is served.
#[must_use]
pub fn served_rollout(
    mut cell: Rollout,
    configured: bool,
    namespace: &str,
    url: &str,
    queues: i32,
) -> Rollout {
    let place = format!("the cell matchmaker {namespace}/{CELL_MATCHMAKER} ({url})");
    if !configured {
        cell.complete = false;
        cell.problem = Some(Problem {
            reason: WAITING_FOR_CELL_MATCHMAKER,
            message: format!(
                "waiting for {place} to be configured with this pool's current {queues} queues"
            ),
            stalled: false,
        });
    } else if cell.complete {
        cell.progress = format!("served by {place}: {queues} queues; {}", cell.progress);
    } else {
        cell.progress = format!("{place}: {}", cell.progress);
    }
    cell
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
    fn a_shared_pool_is_ready_only_when_the_cell_matchmaker_serves_its_queues() {
        let now = Time(Timestamp::from_second(10).expect("time"));
        let available = Rollout {
            desired: 1,
            ready: 1,
            complete: true,
            progress: "1 of 1 replicas available".to_owned(),
            ..Rollout::default()
        };
        let url = "http://matchmaker.gamecell-c1.svc:8080";
        let outcome = |rollout| Outcome::Deployed {
            adjustments: vec![],
            rollout,
            missing_secrets: vec![],
        };
        let waiting = served_rollout(available.clone(), false, "gamecell-c1", url, 2);
        let status = pool_status(None, Some(1), &outcome(waiting), Some(2), &now);
        let ready = find(&status.conditions, cond::READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", WAITING_FOR_CELL_MATCHMAKER)
        );
        let served = served_rollout(available, true, "gamecell-c1", url, 2);
        let status = pool_status(Some(&status), Some(1), &outcome(served), Some(2), &now);
        let ready = find(&status.conditions, cond::READY).expect("Ready");
        assert_eq!(ready.status, "True");
        assert!(
            ready.message.contains("gamecell-c1/matchmaker") && ready.message.contains(url),
            "{}",
            ready.message
        );
        let rolling = served_rollout(Rollout::default(), true, "gamecell-c1", url, 2);
        assert!(!rolling.complete);
    }

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
