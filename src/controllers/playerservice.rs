//! The PlayerService controller: observe the service and the cell it names, decide with the pure
//! `workload` modules (binding, tier policy, objects), apply the objects where the cell runs,
//! then report in status and Events.
//!
//! Children are applied through `Placement::applier_for(cell)`, carry a controller owner
//! reference to the service (deleting it deletes them) and are re-applied only when they drifted.
//! A refused service (cell missing, foreign namespace, undeclared store, image not allowed) gets
//! nothing new applied and is `Stalled` with the reason; what already runs keeps running.
//!
//! The helpers at the bottom (applying a child, pruning, Events) are shared with the
//! MatchmakingPool controller.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::core::NamespaceResourceScope;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::applied::{Key, PruneKey};
use super::apply::{Applier, NamespacedChild, apply_namespaced_seen};
use super::cells_seen::CellsSeen;
use super::conditions::{find, merge};
use super::status::apply_status;
use super::triggers::{
    CellWakeups, cell_changes_noted, controller_tapped, metadata_touched, objects_of,
};
use super::{Context, Error, error_policy_backoff};
use crate::cell::tenancy::{CellIdentity, shared_tenant_limit_range};
use crate::crds::conditions as cond;
use crate::crds::gamecell::{CellTier, TenantSpec};
use crate::crds::{GameCell, PlayerService, PlayerServiceStatus};
use crate::workload::binding::{Refusal, bind, reasons};
use crate::workload::meta::{
    COMPONENT_PLAYER_SERVICE, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_PLAYER_SERVICE, MANAGED_BY,
    Owner,
};
use crate::workload::policy::ContainerDefaults;
use crate::workload::rollout;
use crate::workload::service::{self, bound_secrets};
use crate::workload::status::{Outcome, POLICY_ADJUSTED, conditions};

/// The PlayerService controller, with its watches: the Deployments it owns (selected by the
/// operator's labels), so readiness follows the rollout, and GameCells, so a service created
/// before its cell, or bound to a cell whose spec changed or that is gone, is looked at again at
/// once (a cell's status writes do not wake it: `triggers`). A service waiting for its cell's
/// Secrets is woken by the GameCell controller when it writes them (`Context::wakeups`). The
/// watches are triggers only, so they watch metadata: at 1,000 cells, full Deployments and cells
/// parsed on every event cost the operator hundreds of MiB for nothing kept.
#[must_use]
pub fn controller(
    client: Client,
    config: watcher::Config,
    cells: CellWakeups,
    cells_seen: CellsSeen,
) -> Controller<PlayerService> {
    let children = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT_PLAYER_SERVICE}"
    ));
    let wake_cell = move |event: &watcher::Event<PlayerService>| {
        if let Some(service) = objects_of(event) {
            cells.wake(&service.spec.cell_ref.name);
        }
    };
    let controller =
        controller_tapped(Api::<PlayerService>::all(client.clone()), config, wake_cell)
            .owns_stream(metadata_touched::<Deployment>(client.clone(), children));
    let store = controller.store();
    controller.watches_stream(
        cell_changes_noted(client, watcher::Config::default(), cells_seen),
        move |cell: PartialObjectMeta<GameCell>| bound_to(&store, &cell.name_any()),
    )
}

/// The services in `store` that name `cell`.
fn bound_to(store: &Store<PlayerService>, cell: &str) -> Vec<ObjectRef<PlayerService>> {
    store
        .state()
        .iter()
        .filter(|s| s.spec.cell_ref.name == cell)
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Reconciles one PlayerService.
///
/// # Errors
/// When the Kubernetes API fails; refusals and rollouts are reported in status instead.
pub async fn reconcile(svc: Arc<PlayerService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "PlayerService", namespace = svc.namespace().unwrap_or_default(), object = %svc.name_any());
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
    let owner = Owner::of(svc).ok_or(Error::MissingField("metadata.uid"))?;
    let cell_name = &svc.spec.cell_ref.name;
    let cells: Api<GameCell> = Api::all(ctx.client.clone());
    let cell = ctx.service_cells.get(&cells, cell_name).await?;
    let outcome = match bind(cell_name, cell.as_deref(), &namespace) {
        Err(refusal) => Outcome::Refused(refusal),
        Ok((cell, tenant)) => deploy(svc, &owner, cell, tenant, ctx).await?,
    };

    let previous = svc.status.as_ref();
    let status = service_status(
        previous,
        svc.metadata.generation,
        &outcome,
        &Time(Timestamp::now()),
    );
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    announce(ctx, svc, before, &status.conditions, &outcome).await;
    let api: Api<PlayerService> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, svc, previous, &status).await?;
    Ok(requeue_after(ctx, &outcome))
}

async fn deploy(
    svc: &PlayerService,
    owner: &Owner,
    cell: &GameCell,
    tenant: &TenantSpec,
    ctx: &Context,
) -> Result<Outcome, Error> {
    let applier = ctx.placement.applier_for(cell);
    let namespace = owner.namespace.as_str();
    // The defaults of the LimitRange the cell writes, from the same builder: the desired state
    // follows from the desired state, with no read (an out-of-band edit of the LimitRange is
    // the cell's to put right, not something to build on).
    let defaults = if cell.spec.tier == CellTier::Shared {
        let identity = CellIdentity {
            name: &cell.name_any(),
            uid: cell.metadata.uid.as_deref().unwrap_or_default(),
        };
        ContainerDefaults::from_limit_range(&shared_tenant_limit_range(identity, tenant))
            .unwrap_or_else(ContainerDefaults::fallback)
    } else {
        ContainerDefaults::fallback()
    };
    let secrets = bound_secrets(&svc.spec.data_stores.clone().unwrap_or_default());
    let versions = secret_versions(&applier, namespace, &secrets).await?;
    let objects = match service::build(
        svc,
        service::Inputs {
            owner,
            cell,
            tenant,
            defaults: &defaults,
            secret_versions: &versions,
        },
    ) {
        Ok(objects) => objects,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };

    let applied: Result<Option<Deployment>, ChildError> = async {
        apply_child(&applier, &objects.service_account).await?;
        apply_child(&applier, &objects.config_map).await?;
        let deployment = apply_child_seen(&applier, &objects.deployment).await?;
        apply_child(&applier, &objects.service).await?;
        apply_child(&applier, &objects.disruption_budget).await?;
        if let Some(hpa) = &objects.autoscaler {
            apply_child(&applier, hpa).await?;
        }
        Ok(deployment)
    }
    .await;
    let seen_deployment = match applied {
        Ok(deployment) => deployment,
        Err(ChildError::Rejected(refusal)) => return Ok(Outcome::Refused(refusal)),
        Err(ChildError::Failed(e)) => return Err(e),
    };
    // An autoscaler left from before `spec.autoscaling` was removed would fight `replicas`.
    let keep: Vec<String> = objects
        .autoscaler
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    prune::<HorizontalPodAutoscaler>(
        &applier,
        namespace,
        &format!("{LABEL_PLAYER_SERVICE}={}", owner.name),
        &keep,
        &owner.uid,
    )
    .await?;

    let current = deployment_now(&applier, namespace, &owner.name, seen_deployment).await?;
    Ok(Outcome::Deployed {
        adjustments: objects.adjustments,
        rollout: rollout::observe(current.as_ref(), floor(objects.autoscaler.as_ref())),
        missing_secrets: secrets
            .into_iter()
            .filter(|s| !versions.contains_key(s))
            .collect(),
    })
}

/// The replicas an autoscaler keeps at least (0 without one).
pub(crate) fn floor(autoscaler: Option<&HorizontalPodAutoscaler>) -> i32 {
    autoscaler
        .and_then(|a| a.spec.as_ref())
        .and_then(|s| s.min_replicas)
        .unwrap_or(0)
}

/// The status of a service given what its reconcile found (pure).
#[must_use]
pub fn service_status(
    previous: Option<&PlayerServiceStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> PlayerServiceStatus {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (replicas, ready_replicas, updated_replicas) = match outcome {
        Outcome::Deployed { rollout, .. } => (
            Some(rollout.desired),
            Some(rollout.ready),
            Some(rollout.updated),
        ),
        Outcome::Refused(_) => (None, None, None),
    };
    PlayerServiceStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &conditions(outcome), generation, now),
        replicas,
        ready_replicas,
        updated_replicas,
    }
}

/// Retry policy for PlayerService reconcile errors.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(svc: Arc<PlayerService>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %svc.name_any(), reason = error.reason(), error = %error, "PlayerService reconcile failed");
    error_policy_backoff(error)
}

/// When to look at a workload again: soon while it converges (the Deployment and GameCell
/// watches usually come first), at the resync interval otherwise.
pub(crate) fn requeue_after(ctx: &Context, outcome: &Outcome) -> Action {
    if outcome.converging() {
        Action::requeue(ctx.timings.provisioning_poll)
    } else {
        Action::requeue(ctx.timings.resync)
    }
}

/// The resource versions of the Secrets in `names` that exist. Metadata only: the operator
/// never reads a connection Secret's values here. A Secret the GameCell controller read or wrote
/// recently is known at the version it saw (`Applier::last_version`), without a request; it
/// wakes the services when it writes a new one.
async fn secret_versions(
    applier: &Applier,
    namespace: &str,
    names: &[String],
) -> Result<BTreeMap<String, String>, Error> {
    let api: Api<Secret> = Api::namespaced(applier.client().clone(), namespace);
    let mut versions = BTreeMap::new();
    for name in names {
        if let Some(version) = applier.last_version::<Secret>(namespace, name) {
            versions.insert(name.clone(), version);
        } else if let Some(meta) = api.get_metadata_opt(name).await? {
            versions.insert(name.clone(), meta.resource_version().unwrap_or_default());
        }
    }
    Ok(versions)
}

/// Why a child could not be applied.
pub(crate) enum ChildError {
    /// The API server refused it for good (invalid, forbidden): reported, not retried hot.
    Rejected(Refusal),
    /// Anything else: returned as an error and retried with backoff.
    Failed(Error),
}

/// Applies one child with server-side apply (skipped when it already matches).
pub(crate) async fn apply_child<K: NamespacedChild>(
    applier: &Applier,
    obj: &K,
) -> Result<(), ChildError> {
    apply_child_seen(applier, obj).await.map(|_| ())
}

/// [`apply_child`], returning the child as the apply step read or wrote it (`None` when its
/// read was skipped).
pub(crate) async fn apply_child_seen<K: NamespacedChild>(
    applier: &Applier,
    obj: &K,
) -> Result<Option<K>, ChildError> {
    match apply_namespaced_seen(applier, obj).await {
        Ok(seen) => Ok(seen.object),
        Err(Error::Kube(kube::Error::Api(status))) if matches!(status.code, 400 | 403 | 422) => {
            Err(ChildError::Rejected(Refusal::new(
                reasons::APPLY_REJECTED,
                format!(
                    "the API server refused {} {}: {}",
                    K::kind(&()),
                    obj.name_any(),
                    status.message
                ),
            )))
        }
        Err(e) => Err(ChildError::Failed(e)),
    }
}

/// The Deployment `name` for its rollout: as the apply step saw it, else (the apply skipped its
/// read: the Deployment is at the resourceVersion last verified) the copy kept then, else read
/// now. What is seen is kept (slimmed to what `rollout::observe` reads) for the next reconcile.
///
/// # Errors
/// When the read fails.
pub(crate) async fn deployment_now(
    applier: &Applier,
    namespace: &str,
    name: &str,
    seen: Option<Deployment>,
) -> Result<Option<Deployment>, Error> {
    let key = Key {
        kind: "apps/v1/Deployment".to_owned(),
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    };
    let current = match seen {
        Some(deployment) => Some(deployment),
        None => match applier.applied().verified_copy::<Deployment>(&key) {
            Some(copy) => return Ok(Some(copy)),
            None => {
                Api::<Deployment>::namespaced(applier.client().clone(), namespace)
                    .get_opt(name)
                    .await?
            }
        },
    };
    if let Some(deployment) = &current {
        applier.applied().keep_copy(rollout::slim(deployment));
    }
    Ok(current)
}

/// Deletes the objects of kind `K` in `namespace` that match `selector`, are controlled by the
/// owner with `owner_uid` and are not named in `keep`: children left over when the desired set
/// shrank. An object someone else controls is never touched.
///
/// A prune that keeps what the last completed one of the same owner kept sends nothing (see
/// `applied`: no one else creates such children, so nothing new can be left over).
pub(crate) async fn prune<K>(
    applier: &Applier,
    namespace: &str,
    selector: &str,
    keep: &[String],
    owner_uid: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let memo_key = PruneKey::of::<K>(Some(namespace), selector, owner_uid);
    if applier.applied().can_skip_prune(&memo_key, keep) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(applier.client().clone(), namespace);
    let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY},{selector}");
    for item in api
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let name = item.name_any();
        let ours = item
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid && o.controller == Some(true));
        if !ours || keep.contains(&name) {
            continue;
        }
        tracing::info!(kind = %K::kind(&()), %name, "pruning a child no longer desired");
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    applier.applied().record_prune(memo_key, keep);
    Ok(())
}

/// Publishes the Events of a workload's condition transitions: a refusal, a stalled or failing
/// rollout and becoming available (on a change of `Ready`'s status or reason), and a change of
/// what the tier's policy adjusted. Nothing is published when nothing changed.
pub(crate) async fn announce<K>(
    ctx: &Context,
    obj: &K,
    before: &[Condition],
    after: &[Condition],
    outcome: &Outcome,
) where
    K: Resource<DynamicType = ()>,
{
    let mut events = Vec::new();
    if let Some(ready) = find(after, cond::READY) {
        let changed = find(before, cond::READY)
            .is_none_or(|b| b.status != ready.status || b.reason != ready.reason);
        let stalled = find(after, cond::STALLED).is_some_and(|c| c.status == "True");
        if changed {
            if ready.status == "True" {
                events.push((
                    EventType::Normal,
                    ready.reason.clone(),
                    ready.message.clone(),
                ));
            } else if stalled || ready.reason == "ReplicaFailure" {
                events.push((
                    EventType::Warning,
                    ready.reason.clone(),
                    ready.message.clone(),
                ));
            }
        }
    }
    if let (Some(adjusted), Outcome::Deployed { adjustments, .. }) =
        (find(after, POLICY_ADJUSTED), outcome)
    {
        let changed = find(before, POLICY_ADJUSTED).is_none_or(|b| {
            b.status != adjusted.status
                || b.reason != adjusted.reason
                || b.message != adjusted.message
        });
        if changed && adjusted.status == "True" {
            let type_ = if adjustments.iter().any(|a| a.warning) {
                EventType::Warning
            } else {
                EventType::Normal
            };
            events.push((type_, adjusted.reason.clone(), adjusted.message.clone()));
        }
    }
    for (type_, reason, note) in events {
        let event = Event {
            type_,
            reason,
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::policy::Adjustment;
    use crate::workload::rollout::Rollout;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn status_is_a_fixed_point_once_nothing_changes() {
        let outcome = Outcome::Deployed {
            adjustments: vec![Adjustment {
                reason: "ReplicasCappedByQuota",
                message: "capped".into(),
                warning: true,
            }],
            rollout: Rollout {
                desired: 2,
                ready: 2,
                updated: 2,
                available: 2,
                complete: true,
                progress: "Deployment p: 2 of 2 replicas available".into(),
                problem: None,
            },
            missing_secrets: vec![],
        };
        let first = service_status(None, Some(3), &outcome, &at(10));
        let second = service_status(Some(&first), Some(3), &outcome, &at(99));
        assert_eq!(first, second, "a resync with nothing new writes nothing");
        assert_eq!(first.replicas, Some(2));
        assert_eq!(first.observed_generation, Some(3));

        let refused = Outcome::Refused(Refusal::new(reasons::CELL_NOT_FOUND, "no cell"));
        let status = service_status(Some(&first), Some(4), &refused, &at(200));
        assert_eq!(status.replicas, None);
        let ready = find(&status.conditions, cond::READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "CellNotFound")
        );
        assert_eq!(ready.last_transition_time, at(200));
    }
}
