//! The matchmaker's Prometheus metrics.
//!
//! Labels carry the configured tenant, pool and queue names (a bounded set: they come from the
//! configuration), outcomes and reasons, never ticket, match or player ids.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::config::QueueKey;

/// A queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The tenant.
    pub tenant: String,
    /// The MatchmakingPool.
    pub pool: String,
    /// The queue.
    pub queue: String,
}

impl From<&QueueKey> for QueueLabels {
    fn from(k: &QueueKey) -> Self {
        Self {
            tenant: k.tenant.clone(),
            pool: k.pool.clone(),
            queue: k.name.clone(),
        }
    }
}

/// A queue and the state tickets entered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The tenant.
    pub tenant: String,
    /// The MatchmakingPool.
    pub pool: String,
    /// The queue.
    pub queue: String,
    /// `created`, `matched`, `backfilled`, `cancelled`, `timed_out`, `removed`.
    pub state: String,
}

/// A refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The tenant (only configured tenants; others count as `unknown`).
    pub tenant: String,
    /// The error code, for example `TenantLimitExceeded`.
    pub reason: String,
}

/// An outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied`, `refused`.
    pub outcome: String,
}

fn wait_buckets() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

fn skill_buckets() -> Histogram {
    Histogram::new([
        1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2500.0,
    ])
}

fn tick_buckets() -> Histogram {
    Histogram::new([
        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    ])
}

type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

/// Every metric the matchmaker exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Tickets waiting now, per queue.
    pub pending: Family<QueueLabels, Gauge>,
    /// Tickets entering each state, per queue.
    pub tickets: Family<StateLabels, Counter>,
    /// Ticket creations refused, per tenant and reason.
    pub rejected: Family<RejectLabels, Counter>,
    /// Matches formed, per queue.
    pub matches: Family<QueueLabels, Counter>,
    /// Backfill requests filled, per queue.
    pub backfills: Family<QueueLabels, Counter>,
    /// Seconds from a ticket's creation to its match, per queue.
    pub wait: HistogramFamily,
    /// Skill spread (highest minus lowest player) of matches formed, per queue.
    pub spread: HistogramFamily,
    /// Team-mean skill gap of matches formed, per queue.
    pub imbalance: HistogramFamily,
    /// Seconds one matching round over every queue took.
    pub tick: Histogram,
    /// Configuration loads, by outcome.
    pub reloads: Family<OutcomeLabels, Counter>,
    /// Queues configured.
    pub queues: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("matchmaker");
        let pending = Family::<QueueLabels, Gauge>::default();
        let tickets = Family::<StateLabels, Counter>::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let matches = Family::<QueueLabels, Counter>::default();
        let backfills = Family::<QueueLabels, Counter>::default();
        let wait: HistogramFamily = Family::new_with_constructor(wait_buckets);
        let spread: HistogramFamily = Family::new_with_constructor(skill_buckets);
        let imbalance: HistogramFamily = Family::new_with_constructor(skill_buckets);
        let tick = tick_buckets();
        let reloads = Family::<OutcomeLabels, Counter>::default();
        let queues = Gauge::default();
        registry.register("tickets_pending", "Tickets waiting", pending.clone());
        registry.register(
            "tickets",
            "Tickets entering a state (created, matched, backfilled, cancelled, timed_out, removed)",
            tickets.clone(),
        );
        registry.register(
            "tickets_rejected",
            "Ticket creations refused, by reason",
            rejected.clone(),
        );
        registry.register("matches", "Matches formed", matches.clone());
        registry.register("backfills", "Backfill requests filled", backfills.clone());
        registry.register(
            "wait_seconds",
            "Time from a ticket's creation to its match",
            wait.clone(),
        );
        registry.register(
            "match_skill_spread",
            "Highest minus lowest player skill of a match",
            spread.clone(),
        );
        registry.register(
            "match_team_imbalance",
            "Highest minus lowest team-mean skill of a match",
            imbalance.clone(),
        );
        registry.register(
            "tick_seconds",
            "Time one matching round over every queue took",
            tick.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration loads, by outcome",
            reloads.clone(),
        );
        registry.register("queues", "Queues configured", queues.clone());
        Self {
            registry,
            pending,
            tickets,
            rejected,
            matches,
            backfills,
            wait,
            spread,
            imbalance,
            tick,
            reloads,
            queues,
        }
    }

    /// Counts tickets entering `state` in a queue.
    pub fn count(&self, q: &QueueLabels, state: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.tickets
            .get_or_create(&StateLabels {
                tenant: q.tenant.clone(),
                pool: q.pool.clone(),
                queue: q.queue.clone(),
                state: state.to_owned(),
            })
            .inc_by(n);
    }

    /// Counts a refused creation.
    pub fn reject(&self, tenant: &str, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                tenant: tenant.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a configuration load.
    pub fn reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Drops the per-queue series of a queue no longer configured.
    pub fn forget(&self, q: &QueueLabels) {
        self.pending.remove(q);
        self.matches.remove(q);
        self.backfills.remove(q);
        self.wait.remove(q);
        self.spread.remove(q);
        self.imbalance.remove(q);
        for state in [
            "created",
            "matched",
            "backfilled",
            "cancelled",
            "timed_out",
            "removed",
        ] {
            self.tickets.remove(&StateLabels {
                tenant: q.tenant.clone(),
                pool: q.pool.clone(),
                queue: q.queue.clone(),
                state: state.to_owned(),
            });
        }
    }

    /// The metrics in the OpenMetrics text format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
