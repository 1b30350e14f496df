//! The GameCell controller: observe the cell and its cloud resources, decide with the pure
//! `cell` modules, apply what is missing, and report it all in status and Events.
//!
//! Order of a reconcile: policy (nothing is created for a non-compliant spec), the customer's
//! cluster for Enterprise cells, the tenants' Kubernetes objects (and a Shared cell's matchmaker,
//! `controllers::cell_matchmaker`), the cloud resources (describe
//! by deterministic identifier before any create, so a lost response never duplicates), the
//! connection Secrets, then status. Cloud failures never escape as errors: they become
//! conditions, with per-object backoff for transient ones and a slow trickle for permanent ones.
//!
//! A reconcile that only the cell's services can have woken (same generation, within the resync
//! interval of a settled full pass) is a light pass: the services and the status, nothing of the
//! cloud or the tenants' objects (`controllers::settled`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use super::apply::{Applier, apply_cluster, apply_namespaced};
use super::conditions::{Desired, find, merge};
use super::status::apply_status;
use super::{Context, Error, PERMANENT_RETRY};
use crate::cell::connections::{connection_data, with_sql_password};
use crate::cell::policy::{
    Violation, adopted_violations, cluster_violations, spec_violations, tier_policy,
};
use crate::cell::resources::{desired_resources, owned_by};
use crate::cell::tenancy::{
    CellIdentity, LABEL_CELL, LABEL_TENANT, connection_secret, tenant_objects,
};
use crate::cell::tenant_sql::TENANT_DATABASES_READY;
use crate::cloud::{
    AssumeRole, CloudError, CloudProvider, DeleteProgress, DesiredResource, ObservedResource,
    ResourceKind, STATE_INCOMPLETE, Scope, naming,
};
use crate::crds::conditions as cond;
use crate::crds::gamecell::{DataStoreStatus, DeletionPolicy, GameCellStatus};
use crate::crds::{GameCell, GameCellSpec, MatchmakingPool, PlayerService};
use crate::sqlstore::{TenantDatabasesOutcome, ensure_tenant_databases};
use crate::telemetry::CellPassLabels;
use crate::workload::summary::{planned_players, services_summary};

/// The finalizer that keeps a GameCell until its cloud resources are dealt with.
pub const FINALIZER: &str = "gamecell.dev/cloud-resources";

/// Reconciles one GameCell.
///
/// # Errors
/// When the Kubernetes API fails; cloud failures are reported in status instead.
pub async fn reconcile(cell: Arc<GameCell>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "GameCell", object = %cell.name_any());
    let api: Api<GameCell> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, cell, |event| async {
        match event {
            finalizer::Event::Apply(cell) => apply(&cell, &ctx).await,
            finalizer::Event::Cleanup(cell) => cleanup(&cell, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics.observe(
        "GameCell",
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    result
}

/// Retry policy for GameCell reconcile errors (Kubernetes API failures).
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(cell: Arc<GameCell>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = match error {
        Error::Cloud(e) if e.is_permanent() => PERMANENT_RETRY,
        // Waiting, not failing: poll like provisioning, and don't let the backoff grow (a
        // store created ten minutes ago must not be polled every five minutes afterwards).
        Error::CleanupPending(_) => ctx.timings.provisioning_poll,
        _ => ctx
            .backoff
            .next_delay(&format!("GameCell/{}", cell.name_any())),
    };
    tracing::warn!(name = %cell.name_any(), reason = error.reason(), error = %error, retry_in = ?delay, "GameCell reconcile failed");
    Action::requeue(delay)
}

/// Where the cell's cloud calls act.
#[must_use]
pub fn scope_of(spec: &GameCellSpec) -> Scope {
    let aws = &spec.provider.aws;
    Scope {
        region: aws.region.clone(),
        assume_role: match (&aws.account_role_arn, &aws.external_id) {
            (Some(role_arn), Some(external_id)) if tier_policy(spec.tier).customer_account => {
                Some(AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: external_id.clone(),
                })
            }
            _ => None,
        },
    }
}

/// Why a cell cannot make progress without a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocker {
    /// PascalCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// What one reconcile found: the input of [`cell_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Broken policy or compliance rules.
    pub violations: Vec<Violation>,
    /// For Enterprise cells: broken rules of the customer's cluster (`None` when not checked).
    pub cluster: Option<Vec<Violation>>,
    /// Every data store as observed.
    pub stores: Vec<DataStoreStatus>,
    /// Data stores the spec asks for.
    pub total_stores: usize,
    /// A permanent problem.
    pub blocker: Option<Blocker>,
    /// A transient problem (throttling, 5xx): still reconciling.
    pub transient: Option<Blocker>,
    /// Services bound to the cell: ready, total, and the names of those not ready.
    pub services: (usize, usize, Vec<String>),
    /// Players the bound services could hold at their ceiling, when it exceeds the capacity.
    pub over_capacity: Option<(i64, i64)>,
    /// Shared cells with a SQL store: whether every tenant has its database and login, the
    /// reason and the message (`None` for other cells).
    pub tenant_databases: Option<(bool, &'static str, String)>,
}

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.rule, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The status of a cell given what a reconcile found (pure).
#[must_use]
pub fn cell_status(
    spec: &GameCellSpec,
    previous: Option<&GameCellStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> GameCellStatus {
    let ready_stores = outcome
        .stores
        .iter()
        .filter(|s| s.ready)
        .count()
        .min(outcome.total_stores);
    let stores_ready =
        ready_stores == outcome.total_stores && outcome.stores.len() == outcome.total_stores;
    let mut desired = Vec::new();

    let compliant = outcome.violations.is_empty();
    desired.push(if compliant {
        Desired::new(
            cond::POLICY_COMPLIANT,
            true,
            "Compliant",
            "the spec meets its tier's policy and compliance rules",
        )
    } else {
        Desired::new(
            cond::POLICY_COMPLIANT,
            false,
            outcome.violations[0].rule,
            summary(&outcome.violations),
        )
    });
    let cluster_ok = match &outcome.cluster {
        None => true,
        Some(v) if v.is_empty() => {
            desired.push(Desired::new(
                cond::CLUSTER_VERIFIED,
                true,
                "ClusterActive",
                "the customer's EKS cluster is ACTIVE, supported and in an allowed region",
            ));
            true
        }
        Some(v) => {
            desired.push(Desired::new(
                cond::CLUSTER_VERIFIED,
                false,
                v[0].rule,
                summary(v),
            ));
            false
        }
    };
    let pending: Vec<String> = outcome
        .stores
        .iter()
        .filter(|s| !s.ready)
        .map(|s| format!("{} {} is {}", s.kind, s.identifier, s.state))
        .collect();
    desired.push(if stores_ready {
        Desired::new(
            cond::DATA_STORES_READY,
            true,
            "Available",
            format!(
                "{} of {} data stores available",
                ready_stores, outcome.total_stores
            ),
        )
    } else if !compliant || !cluster_ok {
        Desired::new(
            cond::DATA_STORES_READY,
            false,
            "NotCreated",
            "nothing is created until the cell is compliant",
        )
    } else {
        let detail = if pending.is_empty() {
            "waiting to be created".to_owned()
        } else {
            pending.join("; ")
        };
        Desired::new(
            cond::DATA_STORES_READY,
            false,
            "Provisioning",
            format!(
                "{ready_stores} of {} data stores available: {detail}",
                outcome.total_stores
            ),
        )
    });

    let stall: Option<(&'static str, String)> = if !compliant {
        Some(("PolicyViolation", summary(&outcome.violations)))
    } else if !cluster_ok {
        Some((
            "ClusterCheckFailed",
            outcome.cluster.as_deref().map(summary).unwrap_or_default(),
        ))
    } else {
        outcome
            .blocker
            .as_ref()
            .map(|b| (b.reason, b.message.clone()))
    };
    if let Some((ok, reason, message)) = &outcome.tenant_databases {
        desired.push(Desired::new(
            TENANT_DATABASES_READY,
            *ok,
            reason,
            message.clone(),
        ));
    }
    let tenants_ready = outcome.tenant_databases.as_ref().is_none_or(|t| t.0);
    let ready = stall.is_none() && stores_ready && tenants_ready && outcome.transient.is_none();
    match &stall {
        Some((reason, message)) => {
            desired.push(Desired::new(cond::STALLED, true, reason, message.clone()));
            desired.push(Desired::new(
                cond::RECONCILING,
                false,
                reason,
                "stalled: waiting for a change",
            ));
            desired.push(Desired::new(cond::READY, false, reason, message.clone()));
        }
        None if ready => {
            desired.push(Desired::new(
                cond::STALLED,
                false,
                "Ready",
                "the cell is ready",
            ));
            desired.push(Desired::new(
                cond::RECONCILING,
                false,
                "Ready",
                "the cell is ready",
            ));
            desired.push(Desired::new(
                cond::READY,
                true,
                "Ready",
                format!("{} data stores available", outcome.total_stores),
            ));
        }
        None => {
            let (reason, message) = match (&outcome.transient, &outcome.tenant_databases) {
                (Some(t), _) => (t.reason, t.message.clone()),
                (None, Some((false, _, message))) if stores_ready => (
                    "Provisioning",
                    format!("waiting for the tenants' databases: {message}"),
                ),
                _ => (
                    "Provisioning",
                    format!(
                        "{ready_stores} of {} data stores available",
                        outcome.total_stores
                    ),
                ),
            };
            desired.push(Desired::new(cond::STALLED, false, reason, "progressing"));
            desired.push(Desired::new(
                cond::RECONCILING,
                true,
                reason,
                message.clone(),
            ));
            desired.push(Desired::new(cond::READY, false, reason, message));
        }
    }

    let (services_ready, services_total, not_ready) = &outcome.services;
    desired.push(if services_ready == services_total {
        Desired::new(
            cond::SERVICES_READY,
            true,
            "AllReady",
            format!("{services_ready} of {services_total} services ready"),
        )
    } else {
        Desired::new(
            cond::SERVICES_READY,
            false,
            "ServicesNotReady",
            format!(
                "{services_ready} of {services_total} services ready; waiting for: {}",
                not_ready.join(", ")
            ),
        )
    });
    if let Some((planned, capacity)) = outcome.over_capacity {
        desired.push(Desired::new(
            CAPACITY_EXCEEDED,
            true,
            "PlannedPlayersExceedCapacity",
            format!("the bound services could hold {planned} players at their replica ceilings; spec.capacity.maxConcurrentPlayers is {capacity}"),
        ));
    }

    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    GameCellStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &desired, generation, now),
        tenant_count: Some(i32::try_from(spec.tenants.len()).unwrap_or(i32::MAX)),
        data_stores_ready: Some(format!("{ready_stores}/{}", outcome.total_stores)),
        data_stores: outcome.stores.clone(),
        services_ready: Some(format!("{services_ready}/{services_total}")),
    }
}

/// Warning condition: the services bound to the cell could hold more players than its capacity.
/// Nothing fails because of it.
pub const CAPACITY_EXCEEDED: &str = "CapacityExceeded";

/// The PlayerServices and MatchmakingPools that name `cell`, from the watch caches. Waits for
/// the caches' first full listing: an empty cache at start-up must never read as "no service
/// bound", which would let a deletion take the database from under running services.
async fn bound_to(
    ctx: &Context,
    cell: &GameCell,
) -> Result<(Vec<PlayerService>, Vec<MatchmakingPool>), Error> {
    ctx.caches_synced
        .clone()
        .wait_for(|synced| *synced)
        .await
        .map_err(|_| Error::CacheUnavailable("PlayerService/MatchmakingPool"))?;
    let name = cell.name_any();
    let services = ctx
        .services
        .state()
        .iter()
        .filter(|s| s.spec.cell_ref.name == name)
        .map(|s| PlayerService::clone(s))
        .collect();
    let pools = ctx
        .pools
        .state()
        .iter()
        .filter(|p| p.spec.cell_ref.name == name)
        .map(|p| MatchmakingPool::clone(p))
        .collect();
    Ok((services, pools))
}

/// The services bound to a cell: how many are ready, how many there are, and the names of
/// those not ready.
type ServicesSummary = (usize, usize, Vec<String>);

/// The services bound to `cell` and, when they could outgrow its capacity, (planned players,
/// capacity).
fn observe_services(
    cell: &GameCell,
    services: &[PlayerService],
    pools: &[MatchmakingPool],
) -> (ServicesSummary, Option<(i64, i64)>) {
    let (ready, total, names) = services_summary(cell, services, pools);
    let not_ready: Vec<String> = names
        .into_iter()
        .filter(|n| {
            let (kind, path) = n.split_once(' ').unwrap_or_default();
            let (ns, name) = path.split_once('/').unwrap_or_default();
            let is_ready =
                |conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
                    conds
                        .iter()
                        .any(|c| c.type_ == cond::READY && c.status == "True")
                };
            match kind {
                "PlayerService" => !services.iter().any(|s| {
                    s.namespace().as_deref() == Some(ns)
                        && s.name_any() == name
                        && s.status.as_ref().is_some_and(|st| {
                            is_ready(&st.conditions)
                                && st.observed_generation == s.metadata.generation
                        })
                }),
                _ => !pools.iter().any(|p| {
                    p.namespace().as_deref() == Some(ns)
                        && p.name_any() == name
                        && p.status.as_ref().is_some_and(|st| {
                            is_ready(&st.conditions)
                                && st.observed_generation == p.metadata.generation
                        })
                }),
            }
        })
        .collect();
    let planned = planned_players(cell, services);
    let over = cell
        .spec
        .capacity
        .as_ref()
        .map(|c| c.max_concurrent_players)
        .filter(|capacity| planned > *capacity)
        .map(|capacity| (planned, capacity));
    ((ready, total, not_ready), over)
}

fn store_status(desired: &DesiredResource, observed: &ObservedResource) -> DataStoreStatus {
    DataStoreStatus {
        kind: desired.kind.as_str().to_owned(),
        name: desired.logical_name.clone(),
        identifier: observed.identifier.clone(),
        state: observed.state.clone(),
        endpoint: observed.endpoint.clone(),
        ready: observed.ready,
    }
}

async fn publish(
    ctx: &Context,
    cell: &GameCell,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cell.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish Event");
    }
}

/// What [`ensure_resource`] had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provisioning {
    /// It existed.
    Found,
    /// It did not exist and was created.
    Created,
    /// It existed incomplete and its missing parts were requested.
    Resumed,
}

/// Ensures one cloud resource exists and is the cell's. Returns its observation and what was
/// done, or the permanent problem that blocks it.
async fn ensure_resource(
    cloud: &dyn CloudProvider,
    scope: &Scope,
    uid: &str,
    desired: &DesiredResource,
    previously_seen: bool,
    retain: bool,
) -> Result<Result<(ObservedResource, Provisioning), Blocker>, CloudError> {
    match cloud
        .describe(scope, desired.kind, &desired.identifier)
        .await?
    {
        Some(observed) if desired.adopt => {
            let violations = adopted_violations(&observed);
            if violations.is_empty() {
                Ok(Ok((observed, Provisioning::Found)))
            } else {
                Ok(Err(Blocker {
                    reason: "AdoptionRefused",
                    message: summary(&violations),
                }))
            }
        }
        // An interrupted create left it without all its parts: finish it (never start over).
        Some(observed) if owned_by(&observed.tags, uid) && observed.state == STATE_INCOMPLETE => {
            Ok(Ok((
                cloud.create(scope, desired).await?,
                Provisioning::Resumed,
            )))
        }
        Some(observed) if owned_by(&observed.tags, uid) => Ok(Ok((observed, Provisioning::Found))),
        Some(_) => Ok(Err(Blocker {
            reason: "ForeignResource",
            message: format!(
                "{} {} exists but is not tagged as this cell's: it is never adopted or deleted; rename the cell or remove the other resource",
                desired.kind.as_str(),
                desired.identifier
            ),
        })),
        None if desired.adopt => Ok(Err(Blocker {
            reason: "AdoptTargetNotFound",
            message: format!(
                "dataStores.sql.adoptInstanceIdentifier {} does not exist in {}",
                desired.identifier, scope.region
            ),
        })),
        None if previously_seen && retain => Ok(Err(Blocker {
            reason: "DataStoreMissing",
            message: format!(
                "{} {} was deleted outside the operator; under deletionPolicy Retain it is not recreated: restore it or change the policy",
                desired.kind.as_str(),
                desired.identifier
            ),
        })),
        None => Ok(Ok((
            cloud.create(scope, desired).await?,
            Provisioning::Created,
        ))),
    }
}

async fn apply(cell: &GameCell, ctx: &Context) -> Result<Action, Error> {
    let name = cell.name_any();
    let uid = cell.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let spec = &cell.spec;
    let generation = cell.metadata.generation;
    let previous = cell.status.as_ref();
    let scope = scope_of(spec);
    let desired = desired_resources(&name, &uid, spec);
    let mut outcome = Outcome {
        total_stores: desired.len(),
        ..Outcome::default()
    };
    let key = format!("GameCell/{name}");
    let mut steps = ctx.metrics.step_timer();
    // One read of the services and pools bound to the cell, for the cell matchmaker and the
    // status alike.
    let (bound_services, bound_pools) = bound_to(ctx, cell).await?;
    steps.lap("bound");

    // 0. Within the resync interval of a settled full pass of this generation, what woke the
    //    cell can only be its services: a light pass (`controllers::settled`).
    let started = Instant::now();
    if let Some((settled, left)) =
        ctx.settled
            .light_pass(&uid, generation, started, ctx.timings.resync)
    {
        count_pass(ctx, "light");
        let mut outcome = settled;
        // A Shared cell's matchmaker serves its pools, whose queues may be what changed.
        let identity = CellIdentity {
            name: &name,
            uid: &uid,
        };
        let applier = ctx.placement.applier_for(cell);
        super::cell_matchmaker::apply(&applier, cell, identity, &bound_pools).await?;
        publish_status(ctx, cell, &mut outcome, &bound_services, &bound_pools).await?;
        steps.lap("light");
        return Ok(Action::requeue(left));
    }
    count_pass(ctx, "full");

    // 1. Policy: a non-compliant spec creates nothing.
    outcome.violations = spec_violations(spec);
    // 2. The customer's cluster, in the customer's account.
    if outcome.violations.is_empty() && tier_policy(spec.tier).verify_cluster {
        let cluster_name = spec.provider.aws.cluster_name.clone().unwrap_or_default();
        match ctx.cloud.describe_cluster(&scope, &cluster_name).await {
            Ok(cluster) => outcome.cluster = Some(cluster_violations(spec, cluster.as_ref())),
            Err(e) => record_cloud_error(&mut outcome, e),
        }
    }
    let compliant =
        outcome.violations.is_empty() && outcome.cluster.as_ref().is_none_or(Vec::is_empty);
    steps.lap("policy");
    let mut observed: BTreeMap<(ResourceKind, String), ObservedResource> = BTreeMap::new();
    // Whether this pass asked the cloud to create (or finish creating) a store.
    let mut requested = false;

    if compliant && outcome.blocker.is_none() && outcome.transient.is_none() {
        // 3. The tenants' Kubernetes objects, in the cluster the cell runs in.
        let applier = ctx.placement.applier_for(cell);
        let client = applier.client().clone();
        let identity = CellIdentity {
            name: &name,
            uid: &uid,
        };
        apply_tenancy(&applier, identity, spec).await?;
        steps.lap("tenancy");
        // 3b. Shared cells: the cell matchmaker serving every tenant's pools.
        super::cell_matchmaker::apply(&applier, cell, identity, &bound_pools).await?;
        steps.lap("cell_matchmaker");

        // 4. The cloud resources.
        let seen: Vec<&str> = previous
            .map(|s| {
                s.data_stores
                    .iter()
                    .map(|d| d.identifier.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let retain = spec.deletion_policy == DeletionPolicy::Retain;
        for d in &desired {
            match ensure_resource(
                ctx.cloud.as_ref(),
                &scope,
                &uid,
                d,
                seen.contains(&d.identifier.as_str()),
                retain,
            )
            .await
            {
                Ok(Ok((o, provisioning))) => {
                    let verb = match provisioning {
                        Provisioning::Found => None,
                        Provisioning::Resumed => Some("Resumed"),
                        Provisioning::Created if seen.contains(&d.identifier.as_str()) => {
                            Some("Recreated")
                        }
                        Provisioning::Created => Some("Created"),
                    };
                    requested |= verb.is_some();
                    if let Some(verb) = verb {
                        publish(
                            ctx,
                            cell,
                            EventType::Normal,
                            &format!("DataStore{verb}"),
                            "CreateDataStore",
                            format!("{verb} {} {} ({})", d.kind.as_str(), d.identifier, o.state),
                        )
                        .await;
                    }
                    outcome.stores.push(store_status(d, &o));
                    observed.insert((d.kind, d.identifier.clone()), o);
                }
                Ok(Err(blocker)) => {
                    outcome.stores.push(DataStoreStatus {
                        kind: d.kind.as_str().to_owned(),
                        name: d.logical_name.clone(),
                        identifier: d.identifier.clone(),
                        state: blocker.reason.to_owned(),
                        endpoint: None,
                        ready: false,
                    });
                    outcome.blocker.get_or_insert(blocker);
                }
                Err(e) => {
                    record_cloud_error(&mut outcome, e);
                    break;
                }
            }
        }

        // A transient failure cut the pass short: keep what was last known of the stores not
        // looked at, so that a store seen before is still known as seen (a store that vanished
        // under Retain is then reported, never silently recreated).
        if outcome.transient.is_some()
            && let Some(previous) = previous
        {
            for d in &desired {
                let looked_at = outcome
                    .stores
                    .iter()
                    .any(|s| s.identifier == d.identifier && s.kind == d.kind.as_str());
                if !looked_at
                    && let Some(known) = previous
                        .data_stores
                        .iter()
                        .find(|s| s.identifier == d.identifier && s.kind == d.kind.as_str())
                {
                    outcome.stores.push(known.clone());
                }
            }
        }

        // 5. Resources the spec no longer asks for (a removed tenant's tables, a removed store):
        //    deleted under the cell's deletion policy, only if they are provably the cell's.
        if outcome.transient.is_none() {
            let wanted: Vec<(ResourceKind, &str)> = desired
                .iter()
                .map(|d| (d.kind, d.identifier.as_str()))
                .collect();
            let stale: Vec<(ResourceKind, String)> = previous
                .map(|s| s.data_stores.iter())
                .into_iter()
                .flatten()
                .filter_map(|d| ResourceKind::parse(&d.kind).map(|k| (k, d.identifier.clone())))
                .filter(|(k, id)| !wanted.contains(&(*k, id.as_str())))
                .collect();
            for (kind, identifier) in stale {
                match remove_stale(ctx, cell, &scope, &uid, kind, &identifier).await {
                    Ok(Some(still_deleting)) => outcome.stores.push(still_deleting),
                    Ok(None) => {}
                    Err(e) => {
                        record_cloud_error(&mut outcome, e);
                        break;
                    }
                }
            }
        }
        steps.lap("cloud");
        prune_tenants(&client, ctx, cell, &uid).await?;
        steps.lap("prune_tenants");

        // 5b. Shared cells: each tenant's own database and login on the SQL store, before the
        //     Secrets so that a new password is published only once the login has it.
        let tenant_sql = ensure_tenant_databases(
            &applier,
            ctx.cloud.tenant_databases().as_ref(),
            spec,
            &uid,
            &desired,
            &observed,
            &scope,
        )
        .await?;
        record_tenant_databases(&mut outcome, tenant_sql.as_ref());
        steps.lap("tenant_sql");

        // 6. Connection Secrets in each tenant's namespace, for the stores that exist. The
        //    services of a namespace whose Secrets changed are woken: they roll their pods to
        //    the new version, or stop waiting for a Secret that was missing.
        for tenant in &spec.tenants {
            let password = tenant_sql
                .as_ref()
                .and_then(|t| t.passwords.get(&tenant.name))
                .map(String::as_str);
            let data =
                with_sql_password(connection_data(spec, tenant, &desired, &observed), password);
            let mut wrote = false;
            for (store, data) in data {
                let secret = connection_secret(identity, &tenant.namespace, store, data);
                wrote |= apply_namespaced(&applier, &secret).await?;
            }
            if wrote {
                ctx.wakeups.wake_in(&tenant.namespace, &bound_services);
            }
        }
        steps.lap("secrets");
    }

    // 7. Status, Events on transitions, and when to look again.
    publish_status(ctx, cell, &mut outcome, &bound_services, &bound_pools).await?;
    steps.lap("status");
    ctx.settled.record(&uid, generation, &outcome, started);

    Ok(if outcome.transient.is_some() {
        Action::requeue(ctx.backoff.next_delay(&key))
    } else {
        ctx.backoff.reset(&key);
        if outcome.blocker.is_some() || !outcome.violations.is_empty() || !compliant {
            Action::requeue(PERMANENT_RETRY)
        } else if outcome.stores.iter().all(|s| s.ready) {
            Action::requeue(ctx.timings.resync)
        } else {
            Action::requeue(next_provisioning_look(
                requested,
                ctx.timings.provisioning_poll,
            ))
        }
    })
}

/// How soon a store that was just requested is described again: a cloud that creates at once
/// (a bucket, a table, an emulator) shows it ready a second later, not a whole poll later.
pub const JUST_REQUESTED_RECHECK: Duration = Duration::from_secs(1);

/// When a cell still provisioning is looked at again (pure): soon after this pass requested a
/// store, at the provisioning poll otherwise. (Before triggers were filtered, the status write
/// of the requesting pass woke the next pass at once; this keeps that one quick look, on
/// purpose, and no others.)
#[must_use]
pub fn next_provisioning_look(requested_now: bool, provisioning_poll: Duration) -> Duration {
    if requested_now {
        provisioning_poll.min(JUST_REQUESTED_RECHECK)
    } else {
        provisioning_poll
    }
}

/// The status of `cell` from `outcome` and the services bound to it, with Events on its
/// transitions; written only if it changed.
async fn publish_status(
    ctx: &Context,
    cell: &GameCell,
    outcome: &mut Outcome,
    bound_services: &[PlayerService],
    bound_pools: &[MatchmakingPool],
) -> Result<(), Error> {
    let previous = cell.status.as_ref();
    let (services, over_capacity) = observe_services(cell, bound_services, bound_pools);
    outcome.services = services;
    outcome.over_capacity = over_capacity;
    let now = Time(Timestamp::now());
    let status = cell_status(
        &cell.spec,
        previous,
        cell.metadata.generation,
        outcome,
        &now,
    );
    announce_transitions(ctx, cell, previous, &status).await;
    let api: Api<GameCell> = Api::all(ctx.client.clone());
    apply_status(&api, cell, previous, &status).await?;
    Ok(())
}

fn count_pass(ctx: &Context, pass: &'static str) {
    ctx.metrics
        .cell_passes
        .get_or_create(&CellPassLabels { pass })
        .inc();
}

/// Deals with a resource the spec no longer asks for. Returns its status while the cloud is
/// still deleting it.
async fn remove_stale(
    ctx: &Context,
    cell: &GameCell,
    scope: &Scope,
    uid: &str,
    kind: ResourceKind,
    identifier: &str,
) -> Result<Option<DataStoreStatus>, CloudError> {
    let policy = cell.spec.deletion_policy;
    let Some(observed) = ctx.cloud.describe(scope, kind, identifier).await? else {
        return Ok(None);
    };
    if !owned_by(&observed.tags, uid) {
        return Ok(None);
    }
    if policy == DeletionPolicy::Retain {
        publish(
            ctx,
            cell,
            EventType::Normal,
            "DataStoreRetained",
            "RemoveDataStore",
            format!(
                "{} {identifier} is no longer in the spec; kept under deletionPolicy Retain",
                kind.as_str()
            ),
        )
        .await;
        return Ok(None);
    }
    let snapshot = (policy == DeletionPolicy::Snapshot && kind == ResourceKind::Sql)
        .then(|| naming::final_snapshot(identifier));
    match ctx
        .cloud
        .delete(scope, kind, identifier, snapshot.as_deref())
        .await?
    {
        DeleteProgress::Gone => {
            publish(
                ctx,
                cell,
                EventType::Normal,
                "DataStoreDeleted",
                "RemoveDataStore",
                format!(
                    "{} {identifier} is no longer in the spec and was deleted",
                    kind.as_str()
                ),
            )
            .await;
            Ok(None)
        }
        DeleteProgress::InProgress => Ok(Some(DataStoreStatus {
            kind: kind.as_str().to_owned(),
            name: identifier.to_owned(),
            identifier: identifier.to_owned(),
            state: "deleting".into(),
            endpoint: None,
            ready: false,
        })),
    }
}

/// Deletes the namespaces of tenants removed from the spec (and with them every object in
/// them): only namespaces labelled and owned by this very cell.
async fn prune_tenants(
    client: &Client,
    ctx: &Context,
    cell: &GameCell,
    uid: &str,
) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    // Tenant namespaces carry the tenant label; the cell's shared-services namespace does not.
    let selector = format!("{LABEL_CELL}={},{LABEL_TENANT}", cell.name_any());
    let wanted: Vec<&str> = cell
        .spec
        .tenants
        .iter()
        .map(|t| t.namespace.as_str())
        .collect();
    for ns in api
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let name = ns.name_any();
        let ours = ns.owner_references().iter().any(|o| o.uid == uid);
        if wanted.contains(&name.as_str()) || !ours || ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        api.delete(&name, &DeleteParams::background()).await?;
        publish(
            ctx,
            cell,
            EventType::Normal,
            "TenantRemoved",
            "RemoveTenant",
            format!("namespace {name} of a tenant no longer in the spec was deleted"),
        )
        .await;
    }
    Ok(())
}

/// The tenant databases' condition, and their failure as a blocker (permanent) or a transient
/// problem (backoff).
fn record_tenant_databases(outcome: &mut Outcome, tenant_sql: Option<&TenantDatabasesOutcome>) {
    let Some(t) = tenant_sql else { return };
    outcome.tenant_databases = Some((t.ready, t.reason, t.message.clone()));
    if t.ready || t.reason == "WaitingForStore" {
        return;
    }
    let problem = Blocker {
        reason: t.reason,
        message: t.message.clone(),
    };
    if t.permanent {
        outcome.blocker.get_or_insert(problem);
    } else {
        outcome.transient.get_or_insert(problem);
    }
}

fn record_cloud_error(outcome: &mut Outcome, error: CloudError) {
    let blocker = Blocker {
        reason: error.reason(),
        message: error.to_string(),
    };
    if error.is_permanent() {
        outcome.blocker.get_or_insert(blocker);
    } else {
        outcome.transient.get_or_insert(blocker);
    }
}

async fn apply_tenancy(
    applier: &Applier,
    identity: CellIdentity<'_>,
    spec: &GameCellSpec,
) -> Result<(), Error> {
    for tenant in tenant_objects(identity, spec) {
        apply_cluster(applier, &tenant.namespace).await?;
        if let Some(quota) = &tenant.resource_quota {
            apply_namespaced(applier, quota).await?;
        }
        if let Some(limits) = &tenant.limit_range {
            apply_namespaced(applier, limits).await?;
        }
        for policy in &tenant.network_policies {
            apply_namespaced(applier, policy).await?;
        }
    }
    Ok(())
}

async fn announce_transitions(
    ctx: &Context,
    cell: &GameCell,
    previous: Option<&GameCellStatus>,
    status: &GameCellStatus,
) {
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for type_ in [
        cond::READY,
        cond::STALLED,
        cond::POLICY_COMPLIANT,
        cond::CLUSTER_VERIFIED,
    ] {
        let Some(now) = find(&status.conditions, type_) else {
            continue;
        };
        let changed =
            find(before, type_).is_none_or(|b| b.status != now.status || b.reason != now.reason);
        if !changed {
            continue;
        }
        let warning = match type_ {
            cond::STALLED | CAPACITY_EXCEEDED => now.status == "True",
            _ => now.status == "False" && type_ != cond::READY,
        };
        if type_ == cond::STALLED && now.status != "True" {
            continue;
        }
        if type_ == cond::READY
            && now.status != "True"
            && find(&status.conditions, cond::STALLED).is_some_and(|s| s.status == "True")
        {
            continue; // the Stalled Event already says why
        }
        let type_event = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(
            ctx,
            cell,
            type_event,
            &now.reason,
            type_,
            format!("{type_}={}: {}", now.status, now.message),
        )
        .await;
    }
}

async fn crd_is_being_deleted(client: &Client) -> Result<bool, Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = api.get_opt("gamecells.gamecell.dev").await?;
    Ok(crd.is_none_or(|c| c.metadata.deletion_timestamp.is_some()))
}

async fn cleanup(cell: &GameCell, ctx: &Context) -> Result<Action, Error> {
    let name = cell.name_any();
    let uid = cell.uid().ok_or(Error::MissingField("metadata.uid"))?;
    ctx.settled.forget(&uid);
    let spec = &cell.spec;
    // Deleting the CRD deletes every GameCell: that is never a decision to delete databases.
    if crd_is_being_deleted(&ctx.client).await? {
        tracing::warn!(
            "the GameCell CRD is being deleted: releasing the cell and keeping every cloud resource"
        );
        return Ok(Action::await_change());
    }
    // A database never disappears under running services: wait until none is bound.
    let (services, pools) = bound_to(ctx, cell).await?;
    let (_, bound, names) = services_summary(cell, &services, &pools);
    if bound > 0 {
        let message = format!(
            "deletion waits for the services still bound to the cell: {}",
            names.join(", ")
        );
        let previous = cell.status.clone();
        let mut status = previous.clone().unwrap_or_default();
        let others: Vec<_> = status
            .conditions
            .iter()
            .filter(|c| c.type_ != cond::READY)
            .cloned()
            .collect();
        let desired = [Desired::new(
            cond::READY,
            false,
            "DeletionWaitingForServices",
            message.clone(),
        )];
        let mut conditions = merge(
            &status.conditions,
            &desired,
            cell.metadata.generation,
            &Time(Timestamp::now()),
        );
        conditions.extend(others);
        if find(&status.conditions, cond::READY).is_none_or(|c| c.message != message) {
            publish(
                ctx,
                cell,
                EventType::Warning,
                "DeletionWaitingForServices",
                "DeleteCell",
                message.clone(),
            )
            .await;
        }
        status.conditions = conditions;
        let api: Api<GameCell> = Api::all(ctx.client.clone());
        apply_status(&api, cell, previous.as_ref(), &status).await?;
        return Err(Error::Finalizer(message));
    }
    if spec.deletion_policy == DeletionPolicy::Retain {
        publish(
            ctx,
            cell,
            EventType::Normal,
            "ResourcesRetained",
            "DeleteCell",
            "deletionPolicy Retain: every cloud resource of the cell is kept".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let scope = scope_of(spec);
    let mut pending = Vec::new();
    for d in desired_resources(&name, &uid, spec).iter().rev() {
        if d.adopt {
            continue; // adopted resources were never ours to delete
        }
        let observed = match ctx.cloud.describe(&scope, d.kind, &d.identifier).await {
            Ok(o) => o,
            Err(e) => return Err(cleanup_failed(ctx, cell, e).await),
        };
        let Some(observed) = observed else { continue };
        if !owned_by(&observed.tags, &uid) {
            tracing::warn!(identifier = %d.identifier, "not deleting a resource tagged as someone else's");
            continue;
        }
        // A cell deleted while its stores are still being created: RDS and ElastiCache refuse
        // to delete (or snapshot) a store before it is available, so wait for it rather than
        // collect errors; it is deleted on the first poll that finds it available.
        if !observed.ready && observed.state.eq_ignore_ascii_case("creating") {
            pending.push(format!(
                "{} {} (still creating; deleted once available)",
                d.kind.as_str(),
                d.identifier
            ));
            continue;
        }
        let snapshot = (spec.deletion_policy == DeletionPolicy::Snapshot
            && d.kind == ResourceKind::Sql)
            .then(|| naming::final_snapshot(&d.identifier));
        match ctx
            .cloud
            .delete(&scope, d.kind, &d.identifier, snapshot.as_deref())
            .await
        {
            Ok(DeleteProgress::Gone) => {}
            Ok(DeleteProgress::InProgress) => {
                pending.push(format!("{} {}", d.kind.as_str(), d.identifier))
            }
            // The store is in a state that refuses deletion for now (modifying, backing up).
            Err(CloudError::Busy { .. }) => pending.push(format!(
                "{} {} (busy; retried)",
                d.kind.as_str(),
                d.identifier
            )),
            Err(e) => return Err(cleanup_failed(ctx, cell, e).await),
        }
    }
    if pending.is_empty() {
        publish(
            ctx,
            cell,
            EventType::Normal,
            "ResourcesDeleted",
            "DeleteCell",
            format!(
                "deletionPolicy {:?}: every cloud resource of the cell is gone",
                spec.deletion_policy
            ),
        )
        .await;
        Ok(Action::await_change())
    } else {
        tracing::info!(pending = ?pending, "waiting for the cloud to finish deleting");
        publish(
            ctx,
            cell,
            EventType::Normal,
            "DeletionInProgress",
            "DeleteCell",
            format!("waiting for the cloud: {}", pending.join(", ")),
        )
        .await;
        // The finalizer stays until the cloud confirms every resource is gone.
        Err(Error::CleanupPending(pending.join(", ")))
    }
}

/// Reports a failed deletion step. It is returned as an error so the finalizer stays (an `Ok`
/// from cleanup would release it); the error policy backs off.
async fn cleanup_failed(ctx: &Context, cell: &GameCell, error: CloudError) -> Error {
    publish(
        ctx,
        cell,
        EventType::Warning,
        error.reason(),
        "DeleteCell",
        format!("cannot delete the cell's resources yet: {error}"),
    )
    .await;
    Error::Cloud(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_just_requested_is_looked_at_again_within_a_second() {
        let poll = Duration::from_secs(10);
        assert_eq!(next_provisioning_look(true, poll), JUST_REQUESTED_RECHECK);
        assert_eq!(next_provisioning_look(false, poll), poll);
        // A shorter poll (tests) is never lengthened.
        let short = Duration::from_millis(300);
        assert_eq!(next_provisioning_look(true, short), short);
    }
}
