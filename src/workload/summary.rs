//! A cell's view of the workloads bound to it (pure), for the GameCell controller: how many are
//! ready, which are still bound (a cell being deleted waits for them), and how many players they
//! could hold against the cell's capacity.

use kube::ResourceExt;

use crate::crds::conditions as cond;
use crate::crds::{GameCell, MatchmakingPool, PlayerService};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn in_cell(cell: &GameCell, cell_ref: &str, namespace: Option<String>) -> bool {
    cell_ref == cell.name_any()
        && namespace.is_some_and(|ns| cell.spec.tenants.iter().any(|t| t.namespace == ns))
}

fn ready(conditions: &[Condition], generation: Option<i64>, observed: Option<i64>) -> bool {
    observed == generation
        && conditions
            .iter()
            .any(|c| c.type_ == cond::READY && c.status == "True")
}

/// The PlayerServices and MatchmakingPools bound to `cell`: `(ready, total, names)`.
///
/// Bound means `spec.cellRef` names the cell and the object lives in one of its tenant
/// namespaces (an object elsewhere is refused `NamespaceNotInCell` and runs nothing, so it
/// neither counts nor holds up the cell's deletion). Ready means `Ready=True` at the object's
/// current generation. `names` lists every bound object as `PlayerService <ns>/<name>` or
/// `MatchmakingPool <ns>/<name>`, sorted: what a deletion waits for.
#[must_use]
pub fn services_summary(
    cell: &GameCell,
    services: &[PlayerService],
    pools: &[MatchmakingPool],
) -> (usize, usize, Vec<String>) {
    let mut ready_count = 0;
    let mut names = Vec::new();
    for s in services
        .iter()
        .filter(|s| in_cell(cell, &s.spec.cell_ref.name, s.namespace()))
    {
        let status = s.status.as_ref();
        if ready(
            status
                .map(|st| st.conditions.as_slice())
                .unwrap_or_default(),
            s.metadata.generation,
            status.and_then(|st| st.observed_generation),
        ) {
            ready_count += 1;
        }
        names.push(format!(
            "PlayerService {}/{}",
            s.namespace().unwrap_or_default(),
            s.name_any()
        ));
    }
    for p in pools
        .iter()
        .filter(|p| in_cell(cell, &p.spec.cell_ref.name, p.namespace()))
    {
        let status = p.status.as_ref();
        if ready(
            status
                .map(|st| st.conditions.as_slice())
                .unwrap_or_default(),
            p.metadata.generation,
            status.and_then(|st| st.observed_generation),
        ) {
            ready_count += 1;
        }
        names.push(format!(
            "MatchmakingPool {}/{}",
            p.namespace().unwrap_or_default(),
            p.name_any()
        ));
    }
    names.sort();
    let total = names.len();
    (ready_count, total, names)
}

/// The players the PlayerServices bound to `cell` could hold at their replica ceiling:
/// the sum of `maxReplicas` (or `replicas`, or 1) times `playersPerReplica`, over the services
/// that set `playersPerReplica`. Compare with `spec.capacity.maxConcurrentPlayers` (and a
/// tenant's `quota.maxConcurrentPlayers`) to warn when the services could outgrow the cell.
#[must_use]
pub fn planned_players(cell: &GameCell, services: &[PlayerService]) -> i64 {
    services
        .iter()
        .filter(|s| in_cell(cell, &s.spec.cell_ref.name, s.namespace()))
        .filter_map(|s| {
            let per = s.spec.players_per_replica?;
            let ceiling = match (&s.spec.autoscaling, s.spec.replicas) {
                (Some(a), _) => a.max_replicas,
                (None, Some(r)) => r,
                (None, None) => 1,
            };
            Some(i64::from(per) * i64::from(ceiling))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell() -> GameCell {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell", "metadata": {"name": "c1"},
            "spec": {"tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
                     "tenants": [{"name": "a", "namespace": "ns-a"}, {"name": "b", "namespace": "ns-b"}]}
        }))
        .expect("cell")
    }

    fn svc(
        ns: &str,
        name: &str,
        cell: &str,
        ready: &str,
        generation: i64,
        observed: i64,
    ) -> PlayerService {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
            "metadata": {"name": name, "namespace": ns, "generation": generation},
            "spec": {"cellRef": {"name": cell}, "image": "x", "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
                     "playersPerReplica": 100},
            "status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": ready,
                "reason": "r", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
        }))
        .expect("service")
    }

    #[test]
    fn counts_bound_services_and_names_them() {
        let pool: MatchmakingPool = serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
            "metadata": {"name": "mm", "namespace": "ns-b", "generation": 1},
            "spec": {"cellRef": {"name": "c1"}, "queues": []}
        }))
        .expect("pool");
        let services = [
            svc("ns-a", "players", "c1", "True", 2, 2),
            svc("ns-b", "stale", "c1", "True", 3, 2),
            svc("ns-x", "foreign", "c1", "True", 1, 1),
            svc("ns-a", "elsewhere", "c2", "True", 1, 1),
        ];
        let (ready, total, names) = services_summary(&cell(), &services, &[pool]);
        assert_eq!((ready, total), (1, 3));
        assert_eq!(
            names,
            [
                "MatchmakingPool ns-b/mm",
                "PlayerService ns-a/players",
                "PlayerService ns-b/stale"
            ]
        );
        assert_eq!(planned_players(&cell(), &services), 600);
    }
}
