//! The GameCell controller: observe a cell, decide its status, write it when it changed.
//!
//! This stage records each cell and reports where it stands; cloud provisioning and tenant
//! isolation plug into the decide/apply steps (see the GameCell issue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::conditions::{Desired, merge};
use super::status::apply_status;
use super::{Context, Error, error_policy_backoff};
use crate::crds::conditions as cond;
use crate::crds::gamecell::GameCellStatus;
use crate::crds::{GameCell, GameCellSpec};

/// How often a cell is looked at even when nothing changed (drift detection).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one GameCell.
///
/// # Errors
/// When the API server refuses the status write.
pub async fn reconcile(cell: Arc<GameCell>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", kind = "GameCell", namespace = cell.namespace().unwrap_or_default(), name = %cell.name_any());
    let result = reconcile_cell(&cell, &ctx).instrument(span).await;
    ctx.metrics.observe(
        "GameCell",
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    result
}

async fn reconcile_cell(cell: &GameCell, ctx: &Context) -> Result<Action, Error> {
    let now = Time(Timestamp::now());
    let status = observed_status(
        &cell.spec,
        cell.status.as_ref(),
        cell.metadata.generation,
        &now,
    );
    let api: Api<GameCell> = Api::all(ctx.client.clone());
    if apply_status(&api, cell, cell.status.as_ref(), &status).await? {
        tracing::info!("status updated");
    }
    Ok(Action::requeue(RESYNC))
}

/// Retry policy for GameCell reconcile errors.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
pub fn error_policy(cell: Arc<GameCell>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %cell.name_any(), reason = error.reason(), error = %error, "GameCell reconcile failed");
    error_policy_backoff(error)
}

/// Number of data stores a spec asks for.
#[must_use]
pub fn data_store_count(spec: &GameCellSpec) -> usize {
    spec.data_stores.as_ref().map_or(0, |d| {
        usize::from(d.sql.is_some())
            + usize::from(d.cache.is_some())
            + d.document_tables.len()
            + d.buckets.len()
    })
}

/// The status of a cell as this stage of the operator sees it (pure).
#[must_use]
pub fn observed_status(
    spec: &GameCellSpec,
    previous: Option<&GameCellStatus>,
    generation: Option<i64>,
    now: &Time,
) -> GameCellStatus {
    let previous_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let waiting = "the cell is recorded; cloud provisioning is not enabled in this operator build";
    let desired = [
        Desired::new(cond::READY, false, "ProvisioningNotEnabled", waiting),
        Desired::new(cond::RECONCILING, false, "ProvisioningNotEnabled", waiting),
        Desired::new(cond::STALLED, false, "ProvisioningNotEnabled", waiting),
    ];
    GameCellStatus {
        observed_generation: generation,
        conditions: merge(previous_conditions, &desired, generation, now),
        tenant_count: Some(i32::try_from(spec.tenants.len()).unwrap_or(i32::MAX)),
        data_stores_ready: Some(format!("0/{}", data_store_count(spec))),
        data_stores: Vec::new(),
        services_ready: previous.and_then(|s| s.services_ready.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GameCellSpec {
        serde_json::from_value(serde_json::json!({
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "a", "namespace": "ns-a"}, {"name": "b", "namespace": "ns-b"}],
            "dataStores": {"sql": {"engine": "Postgres", "version": "16"}, "buckets": [{"name": "assets"}]}
        }))
        .expect("valid spec")
    }

    #[test]
    fn status_counts_tenants_and_stores_and_is_stable() {
        let now = Time(Timestamp::from_second(1_000).expect("ts"));
        let first = observed_status(&spec(), None, Some(1), &now);
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(first.tenant_count, Some(2));
        assert_eq!(first.data_stores_ready.as_deref(), Some("0/2"));
        let later = Time(Timestamp::from_second(2_000).expect("ts"));
        let second = observed_status(&spec(), Some(&first), Some(1), &later);
        assert_eq!(
            first, second,
            "recomputing an unchanged cell yields the same status"
        );
    }
}
