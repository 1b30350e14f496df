//! The last settled pass of each GameCell: what lets a reconcile that only the cell's services
//! woke skip the cloud and the tenants' objects.
//!
//! A cell's status aggregates its services, so every status write of a PlayerService or a
//! MatchmakingPool wakes the cell. A full pass then describes every data store, reads every
//! connection Secret back (Secrets are not watched, see `applied`), lists the tenant namespaces
//! and checks the tenants' databases: at 100 cells, most of the operator's requests during
//! convergence. None of it can have changed because a service did: what a full pass finds
//! changes with the cell's spec (its generation), or behind the operator's back, which only a
//! resync looks for.
//!
//! So a full pass whose outcome is settled (compliant, every store Ready, no failure) is
//! remembered with the cell's generation; a reconcile of the same generation within the resync
//! interval of it is a light pass: the remembered outcome with the services observed anew, the
//! cell matchmaker (which serves the pools) applied, the status written if it changed. The next
//! full pass is due one resync after the last one, however many light passes came between, so
//! drift is found as soon as before. In memory: a restart starts with full passes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::gamecell::Outcome;

/// A light pass is allowed only while this much of the resync interval is left, so that the
/// resync's own reconcile, due when the interval ends, is always a full pass.
const MARGIN_DIVISOR: u32 = 10;

/// Whether a full pass's outcome can stand for the next reconciles: nothing in it is waiting,
/// failing or refused (pure).
#[must_use]
pub fn is_settled(outcome: &Outcome) -> bool {
    outcome.violations.is_empty()
        && outcome.cluster.as_ref().is_none_or(Vec::is_empty)
        && outcome.blocker.is_none()
        && outcome.transient.is_none()
        && outcome.stores.len() == outcome.total_stores
        && outcome.stores.iter().all(|s| s.ready)
        && outcome
            .tenant_databases
            .as_ref()
            .is_none_or(|(ok, _, _)| *ok)
}

/// How long until the full pass that ends a run of light passes, if a light pass is allowed now:
/// the same generation as the settled pass, and more than a tenth of the resync interval left
/// (pure).
#[must_use]
pub fn light_pass_left(
    settled_generation: Option<i64>,
    settled_at: Instant,
    generation: Option<i64>,
    now: Instant,
    resync: Duration,
) -> Option<Duration> {
    if settled_generation != generation {
        return None;
    }
    let left = resync.saturating_sub(now.saturating_duration_since(settled_at));
    (left > resync / MARGIN_DIVISOR).then_some(left)
}

struct Settled {
    generation: Option<i64>,
    at: Instant,
    outcome: Outcome,
}

/// The last settled full pass of each cell, by UID.
#[derive(Default)]
pub struct SettledPasses {
    passes: Mutex<HashMap<String, Settled>>,
}

impl SettledPasses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Settled>> {
        // A panic elsewhere cannot leave the map half-written: every write is one insert or
        // remove.
        self.passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a full pass: remembered if settled, forgotten otherwise.
    pub fn record(&self, uid: &str, generation: Option<i64>, outcome: &Outcome, now: Instant) {
        if is_settled(outcome) {
            self.lock().insert(
                uid.to_owned(),
                Settled {
                    generation,
                    at: now,
                    outcome: outcome.clone(),
                },
            );
        } else {
            self.forget(uid);
        }
    }

    /// Forgets a cell (deleted, or its pass failed).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// The settled outcome a light pass of `uid` reuses, and how long until its next full pass;
    /// `None` when this reconcile must be a full pass.
    #[must_use]
    pub fn light_pass(
        &self,
        uid: &str,
        generation: Option<i64>,
        now: Instant,
        resync: Duration,
    ) -> Option<(Outcome, Duration)> {
        let passes = self.lock();
        let settled = passes.get(uid)?;
        let left = light_pass_left(settled.generation, settled.at, generation, now, resync)?;
        Some((settled.outcome.clone(), left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::gamecell::Blocker;
    use crate::crds::gamecell::DataStoreStatus;

    fn store(ready: bool) -> DataStoreStatus {
        DataStoreStatus {
            kind: "DocumentTable".into(),
            name: "saves".into(),
            identifier: "gc-x-saves".into(),
            state: if ready { "ACTIVE" } else { "CREATING" }.into(),
            endpoint: None,
            ready,
        }
    }

    fn settled() -> Outcome {
        Outcome {
            stores: vec![store(true), store(true)],
            total_stores: 2,
            ..Outcome::default()
        }
    }

    #[test]
    fn only_a_compliant_ready_failure_free_outcome_is_settled() {
        assert!(is_settled(&settled()));
        assert!(is_settled(&Outcome {
            tenant_databases: Some((true, "Ready", String::new())),
            ..settled()
        }));
        let unsettled = [
            Outcome {
                stores: vec![store(true), store(false)],
                ..settled()
            },
            Outcome {
                total_stores: 3,
                ..settled()
            },
            Outcome {
                transient: Some(Blocker {
                    reason: "Throttled",
                    message: String::new(),
                }),
                ..settled()
            },
            Outcome {
                blocker: Some(Blocker {
                    reason: "AccessDenied",
                    message: String::new(),
                }),
                ..settled()
            },
            Outcome {
                cluster: Some(vec![crate::cell::policy::Violation {
                    rule: "encryption",
                    message: String::new(),
                }]),
                ..settled()
            },
            Outcome {
                tenant_databases: Some((false, "Pending", String::new())),
                ..settled()
            },
        ];
        for outcome in unsettled {
            assert!(!is_settled(&outcome), "{outcome:?}");
        }
    }

    #[test]
    fn a_light_pass_needs_the_same_generation_and_ends_before_the_resync() {
        let resync = Duration::from_secs(300);
        let at = Instant::now();
        let after = |s| at + Duration::from_secs(s);
        assert_eq!(
            light_pass_left(Some(1), at, Some(1), after(100), resync),
            Some(Duration::from_secs(200))
        );
        assert_eq!(
            light_pass_left(Some(1), at, Some(2), after(1), resync),
            None
        );
        // The last tenth of the interval, and past it, belong to the resync's full pass.
        assert_eq!(
            light_pass_left(Some(1), at, Some(1), after(271), resync),
            None
        );
        assert_eq!(
            light_pass_left(Some(1), at, Some(1), after(400), resync),
            None
        );
    }

    #[test]
    fn an_unsettled_pass_forgets_the_settled_one() {
        let passes = SettledPasses::default();
        let now = Instant::now();
        let resync = Duration::from_secs(60);
        passes.record("u", Some(1), &settled(), now);
        let (outcome, left) = passes
            .light_pass("u", Some(1), now, resync)
            .expect("light pass");
        assert_eq!(outcome, settled());
        assert_eq!(left, resync);
        assert!(passes.light_pass("other", Some(1), now, resync).is_none());
        let failing = Outcome {
            total_stores: 3,
            ..settled()
        };
        passes.record("u", Some(1), &failing, now);
        assert!(passes.light_pass("u", Some(1), now, resync).is_none());
        passes.record("u", Some(1), &settled(), now);
        passes.forget("u");
        assert!(passes.light_pass("u", Some(1), now, resync).is_none());
    }
}
