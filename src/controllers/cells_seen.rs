//! The GameCell a workload (PlayerService, MatchmakingPool) binds to, read from the API server
//! only when the cell's identity or spec changed since the controller last read it.
//!
//! A workload's reconcile needs its cell's spec and identity (tier, tenants, placement, uid),
//! never its status. It used to GET the cell at every reconcile: 4.8 GETs of GameCells per
//! custom object while 100 cells converged, one per reconcile of each of their workloads.
//! Each workload controller already watches the cells' metadata (to wake the workloads bound to
//! a cell whose spec changed, `triggers::cell_changes_noted`); that watch also notes, per cell,
//! the [`worth_reconciling`] hash (uid, generation, deletion, labels, annotations, finalizers:
//! everything a workload reads but the spec, which `generation` stands for). A reconcile reuses
//! the cell it read last only when that hash, computed from the cell it read, is the one the
//! watch holds now (pure: [`is_current`]); any other case reads the cell.
//!
//! Why this is safe: the watch notes a change before it passes the event on, so a reconcile
//! woken by a cell's change always reads the cell again. A reconcile woken by something else in
//! the milliseconds between a change and its watch event may use the cell as it was; the
//! watch event then wakes the workload, which reads the new cell: the lag of a watch, as any
//! informer-based controller has. A watch error forgets every hash (every reconcile reads until
//! the watch has listed again), and a deleted cell's hash is removed (its workloads read, find
//! it missing and say so).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::Error;
use super::triggers::worth_reconciling;
use crate::crds::GameCell;

/// Whether a cell read earlier is still the one to use (pure): only when the watch holds the
/// cell and its hash is the hash of the cell as it was read.
#[must_use]
pub fn is_current(read: Option<u64>, watched: Option<u64>) -> bool {
    read.is_some() && read == watched
}

#[derive(Default)]
struct State {
    /// The hash of each cell as the metadata watch shows it now.
    watched: HashMap<String, u64>,
    /// The cells named while the watch relists (those not named are gone).
    relisted: HashSet<String>,
    /// The cell each name read last, with its hash.
    read: HashMap<String, (u64, Arc<GameCell>)>,
}

/// The cells one workload controller read, and what its cell watch shows of them. Cheap to
/// clone (shared state).
#[derive(Clone, Default)]
pub struct CellsSeen {
    state: Arc<Mutex<State>>,
}

impl CellsSeen {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A cache: a panic elsewhere cannot leave it wrong in a way that matters (the worst is
        // an extra GET).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes what one event of the controller's GameCell metadata watch shows (called before
    /// the event wakes anything).
    pub fn observe(
        &self,
        event: &Result<watcher::Event<PartialObjectMeta<GameCell>>, watcher::Error>,
    ) {
        let mut state = self.lock();
        match event {
            Err(_) => {
                state.watched.clear();
                state.relisted.clear();
            }
            Ok(watcher::Event::Apply(cell)) => {
                state
                    .watched
                    .insert(cell.name_any(), worth_reconciling(cell));
            }
            Ok(watcher::Event::Delete(cell)) => {
                let name = cell.name_any();
                state.watched.remove(&name);
                state.read.remove(&name);
            }
            Ok(watcher::Event::Init) => state.relisted.clear(),
            Ok(watcher::Event::InitApply(cell)) => {
                let name = cell.name_any();
                state.watched.insert(name.clone(), worth_reconciling(cell));
                state.relisted.insert(name);
            }
            Ok(watcher::Event::InitDone) => {
                let State {
                    watched,
                    relisted,
                    read,
                } = &mut *state;
                watched.retain(|name, _| relisted.contains(name));
                read.retain(|name, _| relisted.contains(name));
                relisted.clear();
            }
        }
    }

    /// The cell `name`: the one read last if the watch shows it unchanged since, else read now.
    ///
    /// # Errors
    /// When the read fails.
    pub async fn get(
        &self,
        api: &Api<GameCell>,
        name: &str,
    ) -> Result<Option<Arc<GameCell>>, Error> {
        {
            let state = self.lock();
            if let Some((hash, cell)) = state.read.get(name)
                && is_current(Some(*hash), state.watched.get(name).copied())
            {
                return Ok(Some(cell.clone()));
            }
        }
        let cell = api.get_opt(name).await?.map(Arc::new);
        let mut state = self.lock();
        match &cell {
            Some(cell) => {
                state.read.insert(
                    name.to_owned(),
                    (worth_reconciling(cell.as_ref()), cell.clone()),
                );
            }
            None => {
                state.read.remove(name);
            }
        }
        Ok(cell)
    }

    /// Number of cells held (for tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().read.len()
    }

    /// Whether no cell is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a reconcile now would reuse the cell read last for `name` (for tests).
    #[must_use]
    pub fn would_reuse(&self, name: &str) -> bool {
        let state = self.lock();
        is_current(
            state.read.get(name).map(|(hash, _)| *hash),
            state.watched.get(name).copied(),
        )
    }

    /// Records `cell` as read (for tests of the reuse rule without an API server).
    pub fn record_read(&self, cell: GameCell) {
        let name = cell.name_any();
        let hash = worth_reconciling(&cell);
        self.lock().read.insert(name, (hash, Arc::new(cell)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn meta(name: &str, uid: &str, generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        }
    }

    fn cell(name: &str, uid: &str, generation: i64) -> GameCell {
        let mut cell: GameCell = serde_json::from_value(serde_json::json!({
            "apiVersion": "gamecell.dev/v1alpha1",
            "kind": "GameCell",
            "metadata": {"name": name},
            "spec": {"tier": "Dedicated", "provider": {"aws": {"region": "eu-west-1"}},
                     "tenants": [{"name": "alpha", "namespace": "a"}]}
        }))
        .expect("a minimal GameCell");
        cell.metadata = meta(name, uid, generation);
        cell
    }

    fn watched(name: &str, uid: &str, generation: i64) -> PartialObjectMeta<GameCell> {
        PartialObjectMeta {
            types: None,
            metadata: meta(name, uid, generation),
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn only_a_cell_read_at_the_hash_the_watch_holds_is_reused() {
        assert!(is_current(Some(3), Some(3)));
        assert!(!is_current(Some(3), Some(4)));
        assert!(!is_current(None, Some(3)));
        assert!(!is_current(Some(3), None));
        assert!(!is_current(None, None));
    }

    #[test]
    fn a_change_a_deletion_or_a_watch_error_makes_the_next_reconcile_read() {
        let seen = CellsSeen::default();
        seen.record_read(cell("c", "u1", 1));
        assert!(
            !seen.would_reuse("c"),
            "the watch has not shown the cell yet"
        );
        seen.observe(&Ok(watcher::Event::Apply(watched("c", "u1", 1))));
        assert!(seen.would_reuse("c"));
        // A status write (the same hash) changes nothing; a spec change does.
        seen.observe(&Ok(watcher::Event::Apply(watched("c", "u1", 1))));
        assert!(seen.would_reuse("c"));
        seen.observe(&Ok(watcher::Event::Apply(watched("c", "u1", 2))));
        assert!(!seen.would_reuse("c"), "spec changed");
        seen.record_read(cell("c", "u1", 2));
        assert!(seen.would_reuse("c"));
        // Recreated under the same name.
        seen.observe(&Ok(watcher::Event::Apply(watched("c", "u2", 1))));
        assert!(!seen.would_reuse("c"), "a new cell");
        seen.record_read(cell("c", "u2", 1));
        assert!(seen.would_reuse("c"));
        seen.observe(&Err(watcher::Error::NoResourceVersion));
        assert!(
            !seen.would_reuse("c"),
            "a watch error forgets what it showed"
        );
        seen.observe(&Ok(watcher::Event::Init));
        seen.observe(&Ok(watcher::Event::InitApply(watched("c", "u2", 1))));
        seen.observe(&Ok(watcher::Event::InitDone));
        assert!(seen.would_reuse("c"), "relisted unchanged");
        seen.observe(&Ok(watcher::Event::Delete(watched("c", "u2", 1))));
        assert!(!seen.would_reuse("c"));
        assert!(seen.is_empty(), "a deleted cell is not held");
    }

    #[test]
    fn a_relist_forgets_the_cells_it_no_longer_lists() {
        let seen = CellsSeen::default();
        for name in ["a", "b"] {
            seen.observe(&Ok(watcher::Event::Apply(watched(name, name, 1))));
            seen.record_read(cell(name, name, 1));
        }
        assert_eq!(seen.len(), 2);
        seen.observe(&Ok(watcher::Event::Init));
        seen.observe(&Ok(watcher::Event::InitApply(watched("a", "a", 1))));
        seen.observe(&Ok(watcher::Event::InitDone));
        assert!(seen.would_reuse("a"));
        assert!(!seen.would_reuse("b"), "deleted while the watch was down");
        assert_eq!(seen.len(), 1);
    }
}
