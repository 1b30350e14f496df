//! The matchmaker's state: every queue of every tenant, with its pool, ticket records, matches,
//! backfill requests, idempotency keys and per-tenant limits.
//!
//! No I/O: the clock is passed in (milliseconds since the Unix epoch) and the service layer
//! drives [`Engine::tick`] and [`Engine::apply_config`]. Each queue has its own lock, so a
//! tenant's flood only ever holds its own queues' locks; a tenant's open tickets are capped
//! ([`EngineOptions::default_tenant_limit`], or the configuration's `tenantLimits`), a
//! round searches at most [`EngineOptions::anchor_budget`] anchors per queue, and a round
//! serves its queues cheapest first ([`Engine::tick_with`]), so a flood's backlog is searched
//! after the other tenants' queues.
//!
//! Lock order: registry, then a tenant's key map, then a queue. A queue's lock is never held
//! while taking a tenant's key map.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::config::{Config, QueueKey};
use super::core::{BackfillInput, CoreError, Pool, QueueRules, TicketInput};
use super::metrics::{Metrics, QueueLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Most players one ticket may carry (a queue's team size bounds it further).
pub const MAX_PLAYERS_PER_TICKET: usize = 200;
/// Longest player id, client key or region name accepted.
pub const MAX_ID_LEN: usize = 128;
/// Largest `attributes` object accepted, serialized.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;

/// Tuning of the engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Open (waiting) tickets a tenant may have across its queues, unless the configuration's
    /// `tenantLimits` says otherwise.
    pub default_tenant_limit: usize,
    /// How long finished tickets, matches and backfill requests stay readable.
    pub retention_ms: u64,
    /// Anchors searched per queue per round.
    pub anchor_budget: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            default_tenant_limit: 100_000,
            retention_ms: 600_000,
            anchor_budget: 50_000,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No valid configuration was loaded yet.
    #[error("the matchmaker has no valid configuration yet")]
    NotReady,
    /// Several tenants are served and the request named none.
    #[error("tenant is required: this matchmaker serves several tenants")]
    TenantRequired,
    /// No such queue for the tenant.
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    /// The queue name is used by several pools of the tenant.
    #[error("queue {0} exists in several pools of the tenant: give pool")]
    AmbiguousQueue(String),
    /// A malformed ticket.
    #[error("invalid ticket: {0}")]
    InvalidTicket(String),
    /// The tenant has as many open tickets as it may.
    #[error(
        "tenant {tenant} has {limit} open tickets, its limit: cancel tickets or wait for matches before creating more"
    )]
    TenantLimitExceeded {
        /// The tenant.
        tenant: String,
        /// Its limit.
        limit: usize,
    },
    /// No such ticket, match or backfill request (or it is past its retention).
    #[error("{0} not found")]
    NotFound(String),
    /// The client key names a ticket of another queue.
    #[error("client key {key} already names ticket {ticket} of another queue")]
    KeyConflict {
        /// The key.
        key: String,
        /// The ticket it names.
        ticket: String,
    },
    /// The operation does not apply in the object's state.
    #[error("{0}")]
    Conflict(String),
    /// The queue is no longer configured.
    #[error("queue {0} is no longer configured")]
    QueueRemoved(String),
    /// The queue does not backfill.
    #[error("queue {0} does not backfill running matches (backfill: false)")]
    BackfillDisabled(String),
    /// A malformed backfill request.
    #[error("invalid backfill request: {0}")]
    InvalidBackfill(String),
}

impl EngineError {
    /// A stable, PascalCase code for clients and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotReady => "NotReady",
            Self::TenantRequired => "TenantRequired",
            Self::UnknownQueue(_) => "UnknownQueue",
            Self::AmbiguousQueue(_) => "AmbiguousQueue",
            Self::InvalidTicket(_) => "InvalidTicket",
            Self::TenantLimitExceeded { .. } => "TenantLimitExceeded",
            Self::NotFound(_) => "NotFound",
            Self::KeyConflict { .. } => "KeyConflict",
            Self::Conflict(_) => "Conflict",
            Self::QueueRemoved(_) => "QueueRemoved",
            Self::BackfillDisabled(_) => "BackfillDisabled",
            Self::InvalidBackfill(_) => "InvalidBackfill",
        }
    }
}

/// A player of a new ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPlayer {
    /// The player's id (unique in the ticket).
    pub id: String,
    /// Skill rating.
    pub skill: f64,
    /// Round-trip latency to each region, in milliseconds.
    #[serde(default)]
    pub latencies: BTreeMap<String, u32>,
}

/// A ticket to create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTicket {
    /// The tenant; may be left out when the matchmaker serves one tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The pool; needed only when the tenant has the queue name in several pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The queue's name (or `pool/queue`).
    pub queue: String,
    /// Idempotency key: creating again with the same key (same tenant) returns the same ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// The party: one or more players who stay together.
    pub players: Vec<NewPlayer>,
    /// Free-form attributes, returned with the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
}

/// A ticket's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TicketState {
    /// Waiting for a match.
    Pending,
    /// In a match (see `assignment`).
    Matched,
    /// Cancelled by the client.
    Cancelled,
    /// Left after waiting `timeoutSeconds` (reason `Timeout`).
    TimedOut,
    /// Its queue was removed from the configuration (reason `QueueRemoved`) or changed so the
    /// ticket no longer fits (reason `QueueChanged`).
    Removed,
}

/// Where a matched ticket plays.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The match.
    pub match_id: String,
    /// The ticket's team (0-based).
    pub team: u16,
    /// The hosting region (`None` when the queue has no regions).
    pub region: Option<String>,
    /// Whether the ticket joined a running match through backfill.
    pub backfill: bool,
}

/// A ticket as clients read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The pool.
    pub pool: String,
    /// The queue.
    pub queue: String,
    /// Its state.
    pub state: TicketState,
    /// Why it left without a match (`Cancelled`, `Timeout`, `QueueRemoved`, `QueueChanged`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When its state last changed.
    pub updated_at_ms: u64,
    /// The idempotency key it was created with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// The party.
    pub players: Vec<NewPlayer>,
    /// The attributes it was created with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
    /// Its match, once matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
}

/// One team of a match.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamView {
    /// Tickets in the team.
    pub tickets: Vec<String>,
    /// Players in the team (lost players excluded).
    pub players: Vec<String>,
    /// Mean skill of the players now in the team.
    pub mean_skill: f64,
}

/// A match as clients read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchView {
    /// Its id.
    pub id: String,
    /// Its position in the queue's match feed.
    pub cursor: u64,
    /// The tenant.
    pub tenant: String,
    /// The pool.
    pub pool: String,
    /// The queue.
    pub queue: String,
    /// The hosting region.
    pub region: Option<String>,
    /// When it formed.
    pub created_at_ms: u64,
    /// Highest minus lowest player skill when it formed.
    pub skill_spread: f64,
    /// The window it formed under.
    pub window: f64,
    /// Highest minus lowest team-mean skill when it formed.
    pub team_imbalance: f64,
    /// Worst player latency to the region when it formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<u32>,
    /// The teams now (after losses and backfills).
    pub teams: Vec<TeamView>,
    /// Players reported lost.
    pub lost_players: Vec<String>,
    /// Backfill requests made for it.
    pub backfills: Vec<String>,
}

/// A backfill request's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BackfillState {
    /// Waiting for tickets.
    Pending,
    /// Every open place was filled.
    Filled,
    /// Not filled within the queue's timeout.
    TimedOut,
    /// Cancelled by the client, or replaced by a newer request for the same match.
    Cancelled,
}

/// A ticket placed by a backfill.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillPlacement {
    /// The ticket.
    pub ticket_id: String,
    /// Its team.
    pub team: u16,
}

/// A backfill request as clients read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillView {
    /// Its id.
    pub id: String,
    /// The match.
    pub match_id: String,
    /// Its state.
    pub state: BackfillState,
    /// Open places per team when asked for.
    pub open_slots: Vec<u16>,
    /// When it was asked for.
    pub created_at_ms: u64,
    /// When its state last changed.
    pub updated_at_ms: u64,
    /// Tickets placed, once filled.
    pub tickets: Vec<BackfillPlacement>,
}

/// A configured queue as clients read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// `tenant/pool/queue`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The pool.
    pub pool: String,
    /// The queue.
    pub name: String,
    /// Players per match.
    pub players_per_match: u16,
    /// Teams per match.
    pub teams: u16,
    /// Regions.
    pub regions: Vec<String>,
    /// Whether backfill is on.
    pub backfill: bool,
    /// Tickets waiting.
    pub pending: usize,
}

/// What a configuration load changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Queues added.
    pub added: Vec<String>,
    /// Queues removed (their waiting tickets leave with reason `QueueRemoved`).
    pub removed: Vec<String>,
    /// Queues whose rules changed.
    pub changed: Vec<String>,
}

/// What one round over every queue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickSummary {
    /// Matches formed.
    pub matches: usize,
    /// Tickets matched (including backfills).
    pub matched: usize,
    /// Tickets timed out.
    pub timed_out: usize,
    /// Backfill requests filled.
    pub backfills: usize,
    /// Anchors searched.
    pub searches: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ticket,
    Match,
    Backfill,
}

impl Kind {
    fn prefix(self) -> char {
        match self {
            Self::Ticket => 't',
            Self::Match => 'm',
            Self::Backfill => 'b',
        }
    }
}

fn format_id(kind: Kind, slot: usize, seq: u64) -> String {
    format!("{}-{slot:x}-{seq:x}", kind.prefix())
}

fn parse_id(kind: Kind, id: &str) -> Option<(usize, u64)> {
    let rest = id.strip_prefix(kind.prefix())?.strip_prefix('-')?;
    let (slot, seq) = rest.split_once('-')?;
    Some((
        usize::from_str_radix(slot, 16).ok()?,
        u64::from_str_radix(seq, 16).ok()?,
    ))
}

struct TicketRecord {
    client_key: Option<String>,
    created_ms: u64,
    updated_ms: u64,
    players: Vec<NewPlayer>,
    attributes: Option<Value>,
    state: TicketState,
    reason: Option<&'static str>,
    assignment: Option<(u64, u16, bool)>,
}

struct Member {
    ticket: u64,
    team: u16,
    players: Vec<(String, f64)>,
}

struct MatchRecord {
    cursor: u64,
    created_ms: u64,
    updated_ms: u64,
    region: Option<String>,
    spread: f64,
    window: f64,
    imbalance: f64,
    max_latency_ms: Option<u32>,
    members: Vec<Member>,
    lost: Vec<String>,
    backfills: Vec<u64>,
}

struct BackfillRecord {
    match_seq: u64,
    state: BackfillState,
    open: Vec<u16>,
    created_ms: u64,
    updated_ms: u64,
    placed: Vec<(u64, u16)>,
}

struct QueueMetrics {
    pending: Gauge,
    created: Counter,
    matched: Counter,
    backfilled: Counter,
    cancelled: Counter,
    timed_out: Counter,
    removed: Counter,
    matches: Counter,
    backfills: Counter,
    wait: Histogram,
    spread: Histogram,
    imbalance: Histogram,
}

impl QueueMetrics {
    fn new(m: &Metrics, q: &QueueLabels) -> Self {
        let state = |s: &str| {
            m.tickets
                .get_or_create(&super::metrics::StateLabels {
                    tenant: q.tenant.clone(),
                    pool: q.pool.clone(),
                    queue: q.queue.clone(),
                    state: s.to_owned(),
                })
                .clone()
        };
        Self {
            pending: m.pending.get_or_create(q).clone(),
            created: state("created"),
            matched: state("matched"),
            backfilled: state("backfilled"),
            cancelled: state("cancelled"),
            timed_out: state("timed_out"),
            removed: state("removed"),
            matches: m.matches.get_or_create(q).clone(),
            backfills: m.backfills.get_or_create(q).clone(),
            wait: m.wait.get_or_create(q).clone(),
            spread: m.spread.get_or_create(q).clone(),
            imbalance: m.imbalance.get_or_create(q).clone(),
        }
    }
}

struct QueueState {
    active: bool,
    pool: Pool,
    tickets: HashMap<u64, TicketRecord>,
    matches: HashMap<u64, MatchRecord>,
    backfills: HashMap<u64, BackfillRecord>,
    next_seq: u64,
    feed: VecDeque<(u64, u64)>,
    next_cursor: u64,
    expiry: VecDeque<(u64, Kind, u64)>,
    version: u64,
    metrics: QueueMetrics,
}

impl QueueState {
    fn rules(&self) -> &QueueRules {
        self.pool.rules()
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn finish_ticket(&mut self, seq: u64, state: TicketState, reason: &'static str, now: u64) {
        if let Some(t) = self.tickets.get_mut(&seq) {
            t.state = state;
            t.reason = Some(reason);
            t.updated_ms = now;
            self.expiry.push_back((now, Kind::Ticket, seq));
        }
    }
}

/// Per-tenant state: the open-ticket count, the limit and the idempotency keys.
struct TenantState {
    name: String,
    open: AtomicUsize,
    limit: AtomicUsize,
    keys: Mutex<HashMap<String, (usize, u64)>>,
}

/// One queue of one tenant.
struct QueueSlot {
    index: usize,
    key: QueueKey,
    labels: QueueLabels,
    tenant: Arc<TenantState>,
    state: Mutex<QueueState>,
    changed: watch::Sender<u64>,
    /// Anchors its last round searched: the order of the next round (cheapest first).
    cost: AtomicUsize,
}

impl QueueSlot {
    fn notify(&self, st: &mut QueueState) {
        st.version += 1;
        self.changed.send_replace(st.version);
    }
}

#[derive(Default)]
struct Registry {
    slots: Vec<Arc<QueueSlot>>,
    by_key: HashMap<QueueKey, usize>,
    tenants: HashMap<String, Arc<TenantState>>,
    /// Active queues of each tenant, by queue name.
    active: HashMap<String, HashMap<String, Vec<usize>>>,
}

/// Every queue the matchmaker serves.
pub struct Engine {
    options: EngineOptions,
    registry: RwLock<Registry>,
    metrics: Arc<Metrics>,
    configured: AtomicBool,
}

fn worst_latencies(players: &[NewPlayer], regions: &[String]) -> Vec<u32> {
    regions
        .iter()
        .map(|r| {
            players
                .iter()
                .map(|p| p.latencies.get(r).copied().unwrap_or(u32::MAX))
                .max()
                .unwrap_or(u32::MAX)
        })
        .collect()
}

fn core_input(seq: u64, t: &TicketRecord, rules: &QueueRules) -> TicketInput {
    TicketInput {
        id: seq,
        created_ms: t.created_ms,
        skills: t.players.iter().map(|p| p.skill).collect(),
        worst_latency_ms: worst_latencies(&t.players, &rules.regions),
    }
}

fn check_ticket(req: &NewTicket) -> Result<(), EngineError> {
    let bad = |m: String| Err(EngineError::InvalidTicket(m));
    if req.players.is_empty() || req.players.len() > MAX_PLAYERS_PER_TICKET {
        return bad(format!(
            "players: 1 to {MAX_PLAYERS_PER_TICKET} players, got {}",
            req.players.len()
        ));
    }
    let mut ids = HashSet::new();
    for (i, p) in req.players.iter().enumerate() {
        if p.id.is_empty() || p.id.len() > MAX_ID_LEN {
            return bad(format!("players[].id must be 1-{MAX_ID_LEN} characters"));
        }
        // Small parties compare directly; large ones use a set.
        let repeated = if req.players.len() <= 16 {
            req.players[..i].iter().any(|q| q.id == p.id)
        } else {
            !ids.insert(p.id.as_str())
        };
        if repeated {
            return bad(format!("player {} is listed twice", p.id));
        }
        if !p.skill.is_finite() || p.skill.abs() > 1e7 {
            return bad(format!("player {}: skill must be a finite rating", p.id));
        }
        if p.latencies.len() > 64 || p.latencies.keys().any(|r| r.len() > MAX_ID_LEN) {
            return bad(format!(
                "player {}: at most 64 latencies, region names up to {MAX_ID_LEN} characters",
                p.id
            ));
        }
    }
    if let Some(k) = &req.client_key
        && (k.is_empty() || k.len() > MAX_ID_LEN)
    {
        return bad(format!("clientKey must be 1-{MAX_ID_LEN} characters"));
    }
    if let Some(a) = &req.attributes {
        if !a.is_object() {
            return bad("attributes must be a JSON object".to_owned());
        }
        if a.to_string().len() > MAX_ATTRIBUTES_BYTES {
            return bad(format!(
                "attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

impl Engine {
    /// An engine with no configuration (not ready until [`Engine::apply_config`]).
    #[must_use]
    pub fn new(options: EngineOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            options,
            registry: RwLock::new(Registry::default()),
            metrics,
            configured: AtomicBool::new(false),
        }
    }

    /// The metrics it records into.
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether a configuration was applied.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    /// Applies a configuration: adds new queues, updates changed ones (their waiting tickets
    /// are re-indexed; those that no longer fit leave with reason `QueueChanged`), and removes
    /// queues no longer listed (their waiting tickets leave with reason `QueueRemoved`).
    pub fn apply_config(&self, config: &Config, now: u64) -> ReloadSummary {
        let mut reg = write(&self.registry);
        let mut summary = ReloadSummary::default();
        let wanted: HashMap<&QueueKey, &QueueRules> =
            config.queues.iter().map(|q| (&q.key, &q.rules)).collect();
        for def in &config.queues {
            let tenant = reg
                .tenants
                .entry(def.key.tenant.clone())
                .or_insert_with(|| {
                    Arc::new(TenantState {
                        name: def.key.tenant.clone(),
                        open: AtomicUsize::new(0),
                        limit: AtomicUsize::new(self.options.default_tenant_limit),
                        keys: Mutex::new(HashMap::new()),
                    })
                })
                .clone();
            if let Some(&i) = reg.by_key.get(&def.key) {
                let slot = reg.slots[i].clone();
                let mut st = lock(&slot.state);
                if !st.active {
                    st.active = true;
                    st.metrics = QueueMetrics::new(&self.metrics, &slot.labels);
                    st.pool = Pool::new(def.rules.clone());
                    summary.added.push(def.key.to_string());
                } else if *st.rules() != def.rules {
                    self.rebuild(&slot, &mut st, def.rules.clone(), now);
                    summary.changed.push(def.key.to_string());
                }
            } else {
                let index = reg.slots.len();
                let labels = QueueLabels::from(&def.key);
                let (changed, _) = watch::channel(0);
                let slot = Arc::new(QueueSlot {
                    index,
                    key: def.key.clone(),
                    tenant,
                    state: Mutex::new(QueueState {
                        active: true,
                        pool: Pool::new(def.rules.clone()),
                        tickets: HashMap::new(),
                        matches: HashMap::new(),
                        backfills: HashMap::new(),
                        next_seq: 0,
                        feed: VecDeque::new(),
                        next_cursor: 0,
                        expiry: VecDeque::new(),
                        version: 0,
                        metrics: QueueMetrics::new(&self.metrics, &labels),
                    }),
                    labels,
                    changed,
                    cost: AtomicUsize::new(0),
                });
                reg.slots.push(slot);
                reg.by_key.insert(def.key.clone(), index);
                summary.added.push(def.key.to_string());
            }
        }
        for slot in reg.slots.clone() {
            if wanted.contains_key(&slot.key) {
                continue;
            }
            let mut st = lock(&slot.state);
            if !st.active {
                continue;
            }
            st.active = false;
            let waiting = st.pool.waiting();
            for seq in &waiting {
                st.finish_ticket(*seq, TicketState::Removed, "QueueRemoved", now);
            }
            slot.tenant.open.fetch_sub(waiting.len(), Ordering::AcqRel);
            st.metrics.removed.inc_by(waiting.len() as u64);
            let pending: Vec<u64> = st
                .backfills
                .iter()
                .filter(|(_, b)| b.state == BackfillState::Pending)
                .map(|(k, _)| *k)
                .collect();
            for seq in pending {
                if let Some(b) = st.backfills.get_mut(&seq) {
                    b.state = BackfillState::Cancelled;
                    b.updated_ms = now;
                }
                st.expiry.push_back((now, Kind::Backfill, seq));
            }
            st.pool = Pool::new(st.rules().clone());
            self.metrics.forget(&slot.labels);
            slot.notify(&mut st);
            summary.removed.push(slot.key.to_string());
        }
        for (name, t) in &reg.tenants {
            let limit = config
                .tenant_limits
                .get(name)
                .copied()
                .unwrap_or(self.options.default_tenant_limit);
            t.limit.store(limit, Ordering::Release);
        }
        let mut active: HashMap<String, HashMap<String, Vec<usize>>> = HashMap::new();
        for def in &config.queues {
            if let Some(&i) = reg.by_key.get(&def.key) {
                active
                    .entry(def.key.tenant.clone())
                    .or_default()
                    .entry(def.key.name.clone())
                    .or_default()
                    .push(i);
            }
        }
        reg.active = active;
        self.metrics.queues.set(config.queues.len() as i64);
        self.configured.store(true, Ordering::Release);
        summary
    }

    fn rebuild(&self, slot: &QueueSlot, st: &mut QueueState, rules: QueueRules, now: u64) {
        let old = std::mem::replace(&mut st.pool, Pool::new(rules.clone()));
        let mut dropped = 0usize;
        for seq in old.waiting() {
            let input = match st.tickets.get(&seq) {
                Some(t) => core_input(seq, t, &rules),
                None => continue,
            };
            if st.pool.insert(input).is_err() {
                st.finish_ticket(seq, TicketState::Removed, "QueueChanged", now);
                dropped += 1;
            }
        }
        // Backfill requests carry a region index of the old rules: cancel them.
        for (seq, b) in &mut st.backfills {
            if b.state == BackfillState::Pending {
                b.state = BackfillState::Cancelled;
                b.updated_ms = now;
                st.expiry.push_back((now, Kind::Backfill, *seq));
            }
        }
        slot.tenant.open.fetch_sub(dropped, Ordering::AcqRel);
        st.metrics.removed.inc_by(dropped as u64);
        slot.notify(st);
    }

    fn slot_of(&self, index: usize) -> Option<Arc<QueueSlot>> {
        read(&self.registry).slots.get(index).cloned()
    }

    fn resolve(
        &self,
        tenant: Option<&str>,
        pool: Option<&str>,
        queue: &str,
    ) -> Result<Arc<QueueSlot>, EngineError> {
        if !self.is_configured() {
            return Err(EngineError::NotReady);
        }
        let reg = read(&self.registry);
        let tenant = match tenant {
            Some(t) => t,
            None if reg.active.len() == 1 => reg
                .active
                .keys()
                .next()
                .map(String::as_str)
                .unwrap_or_default(),
            None => return Err(EngineError::TenantRequired),
        };
        let (pool, name) = match queue.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (pool, queue),
        };
        let unknown = || EngineError::UnknownQueue(format!("{tenant}/{queue}"));
        let slots = reg
            .active
            .get(tenant)
            .and_then(|q| q.get(name))
            .ok_or_else(unknown)?;
        let mut found = slots
            .iter()
            .map(|&i| &reg.slots[i])
            .filter(|s| pool.is_none_or(|p| s.key.pool == p));
        let first = found.next().ok_or_else(unknown)?;
        if found.next().is_some() {
            return Err(EngineError::AmbiguousQueue(name.to_owned()));
        }
        Ok(first.clone())
    }

    fn reject<T>(&self, tenant: &str, e: EngineError) -> Result<T, EngineError> {
        let known = read(&self.registry).tenants.contains_key(tenant);
        self.metrics
            .reject(if known { tenant } else { "unknown" }, e.code());
        Err(e)
    }

    /// Creates a ticket; with a `clientKey` already used by the tenant, returns that ticket
    /// instead (`false`: not created now).
    ///
    /// # Errors
    /// Unknown queue, invalid ticket, tenant limit reached, key used in another queue.
    pub fn create_ticket(
        &self,
        req: NewTicket,
        now: u64,
    ) -> Result<(TicketView, bool), EngineError> {
        let slot = match self.resolve(req.tenant.as_deref(), req.pool.as_deref(), &req.queue) {
            Ok(s) => s,
            Err(e) => return self.reject(req.tenant.as_deref().unwrap_or(""), e),
        };
        let tenant = slot.tenant.clone();
        if let Err(e) = check_ticket(&req) {
            return self.reject(&tenant.name, e);
        }
        match req.client_key.clone() {
            None => self.insert_ticket(&slot, req, now).map(|v| (v, true)),
            Some(key) => {
                let mut keys = lock(&tenant.keys);
                if let Some(&(index, seq)) = keys.get(&key) {
                    let existing = format_id(Kind::Ticket, index, seq);
                    if index != slot.index {
                        return self.reject(
                            &tenant.name,
                            EngineError::KeyConflict {
                                key,
                                ticket: existing,
                            },
                        );
                    }
                    drop(keys);
                    return self.ticket(&existing).map(|v| (v, false));
                }
                let view = self.insert_ticket(&slot, req, now)?;
                if let Some((_, seq)) = parse_id(Kind::Ticket, &view.id) {
                    keys.insert(key, (slot.index, seq));
                }
                Ok((view, true))
            }
        }
    }

    fn insert_ticket(
        &self,
        slot: &QueueSlot,
        req: NewTicket,
        now: u64,
    ) -> Result<TicketView, EngineError> {
        let tenant = &slot.tenant;
        let limit = tenant.limit.load(Ordering::Acquire);
        if tenant.open.fetch_add(1, Ordering::AcqRel) >= limit {
            tenant.open.fetch_sub(1, Ordering::AcqRel);
            return self.reject(
                &tenant.name,
                EngineError::TenantLimitExceeded {
                    tenant: tenant.name.clone(),
                    limit,
                },
            );
        }
        let mut st = lock(&slot.state);
        if !st.active {
            drop(st);
            tenant.open.fetch_sub(1, Ordering::AcqRel);
            return self.reject(
                &tenant.name,
                EngineError::QueueRemoved(slot.key.to_string()),
            );
        }
        let seq = st.seq();
        let record = TicketRecord {
            client_key: req.client_key,
            created_ms: now,
            updated_ms: now,
            players: req.players,
            attributes: req.attributes,
            state: TicketState::Pending,
            reason: None,
            assignment: None,
        };
        let input = core_input(seq, &record, st.rules());
        if let Err(e) = st.pool.insert(input) {
            drop(st);
            tenant.open.fetch_sub(1, Ordering::AcqRel);
            let e = match e {
                CoreError::NoEligibleRegion(_) | CoreError::PartySize { .. } => {
                    EngineError::InvalidTicket(e.to_string())
                }
                other => EngineError::InvalidTicket(other.to_string()),
            };
            return self.reject(&tenant.name, e);
        }
        st.tickets.insert(seq, record);
        st.metrics.created.inc();
        st.metrics.pending.inc();
        let view = self.ticket_view(slot, &st, seq);
        view.ok_or_else(|| EngineError::NotFound(format_id(Kind::Ticket, slot.index, seq)))
    }

    fn ticket_view(&self, slot: &QueueSlot, st: &QueueState, seq: u64) -> Option<TicketView> {
        let t = st.tickets.get(&seq)?;
        let assignment = t.assignment.map(|(m, team, backfill)| Assignment {
            match_id: format_id(Kind::Match, slot.index, m),
            team,
            region: st.matches.get(&m).and_then(|r| r.region.clone()),
            backfill,
        });
        Some(TicketView {
            id: format_id(Kind::Ticket, slot.index, seq),
            tenant: slot.key.tenant.clone(),
            pool: slot.key.pool.clone(),
            queue: slot.key.name.clone(),
            state: t.state,
            reason: t.reason,
            created_at_ms: t.created_ms,
            updated_at_ms: t.updated_ms,
            client_key: t.client_key.clone(),
            players: t.players.clone(),
            attributes: t.attributes.clone(),
            assignment,
        })
    }

    fn locate(&self, kind: Kind, id: &str) -> Result<(Arc<QueueSlot>, u64), EngineError> {
        let not_found = || EngineError::NotFound(id.to_owned());
        let (index, seq) = parse_id(kind, id).ok_or_else(not_found)?;
        let slot = self.slot_of(index).ok_or_else(not_found)?;
        Ok((slot, seq))
    }

    /// Reads a ticket.
    ///
    /// # Errors
    /// `NotFound` (unknown, or past its retention).
    pub fn ticket(&self, id: &str) -> Result<TicketView, EngineError> {
        let (slot, seq) = self.locate(Kind::Ticket, id)?;
        let st = lock(&slot.state);
        self.ticket_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// A receiver that changes whenever the queue of `id` (a ticket, match or backfill id)
    /// changes; long polls wait on it.
    ///
    /// # Errors
    /// `NotFound` when the id names no queue.
    pub fn subscribe(&self, id: &str) -> Result<watch::Receiver<u64>, EngineError> {
        let kind = match id.chars().next() {
            Some('m') => Kind::Match,
            Some('b') => Kind::Backfill,
            _ => Kind::Ticket,
        };
        let (slot, _) = self.locate(kind, id)?;
        Ok(slot.changed.subscribe())
    }

    /// Cancels a waiting ticket (a cancelled or timed-out ticket is returned as it is).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when it is already matched.
    pub fn cancel_ticket(&self, id: &str, now: u64) -> Result<TicketView, EngineError> {
        let (slot, seq) = self.locate(Kind::Ticket, id)?;
        let mut st = lock(&slot.state);
        let state = st
            .tickets
            .get(&seq)
            .map(|t| t.state)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        match state {
            TicketState::Pending => {
                st.pool.remove(seq);
                st.finish_ticket(seq, TicketState::Cancelled, "Cancelled", now);
                slot.tenant.open.fetch_sub(1, Ordering::AcqRel);
                st.metrics.cancelled.inc();
                st.metrics.pending.dec();
                slot.notify(&mut st);
            }
            TicketState::Matched => {
                return Err(EngineError::Conflict(format!(
                    "ticket {id} is already matched: leave the match instead (report the players lost and ask for backfill)"
                )));
            }
            _ => {}
        }
        self.ticket_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    fn match_view(&self, slot: &QueueSlot, st: &QueueState, seq: u64) -> Option<MatchView> {
        let m = st.matches.get(&seq)?;
        let teams = usize::from(st.rules().teams.max(1));
        let mut out: Vec<TeamView> = (0..teams)
            .map(|_| TeamView {
                tickets: Vec::new(),
                players: Vec::new(),
                mean_skill: 0.0,
            })
            .collect();
        let mut counts = vec![0usize; teams];
        for member in &m.members {
            let Some(team) = out.get_mut(usize::from(member.team)) else {
                continue;
            };
            team.tickets
                .push(format_id(Kind::Ticket, slot.index, member.ticket));
            for (p, skill) in &member.players {
                if !m.lost.contains(p) {
                    team.players.push(p.clone());
                    team.mean_skill += skill;
                    counts[usize::from(member.team)] += 1;
                }
            }
        }
        for (team, n) in out.iter_mut().zip(counts) {
            if n > 0 {
                team.mean_skill /= n as f64;
            }
        }
        Some(MatchView {
            id: format_id(Kind::Match, slot.index, seq),
            cursor: m.cursor,
            tenant: slot.key.tenant.clone(),
            pool: slot.key.pool.clone(),
            queue: slot.key.name.clone(),
            region: m.region.clone(),
            created_at_ms: m.created_ms,
            skill_spread: m.spread,
            window: m.window,
            team_imbalance: m.imbalance,
            max_latency_ms: m.max_latency_ms,
            teams: out,
            lost_players: m.lost.clone(),
            backfills: m
                .backfills
                .iter()
                .map(|b| format_id(Kind::Backfill, slot.index, *b))
                .collect(),
        })
    }

    /// Reads a match.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn get_match(&self, id: &str) -> Result<MatchView, EngineError> {
        let (slot, seq) = self.locate(Kind::Match, id)?;
        let st = lock(&slot.state);
        self.match_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// The matches a queue formed after `after` (a cursor from a previous answer; 0 for the
    /// oldest retained), at most `limit`, and the cursor to ask from next.
    ///
    /// # Errors
    /// Unknown queue.
    pub fn matches_after(
        &self,
        tenant: Option<&str>,
        pool: Option<&str>,
        queue: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<MatchView>, u64, watch::Receiver<u64>), EngineError> {
        let slot = self.resolve(tenant, pool, queue)?;
        let rx = slot.changed.subscribe();
        let st = lock(&slot.state);
        let start = st.feed.partition_point(|&(c, _)| c <= after);
        let mut out = Vec::new();
        let mut next = after.max(st.feed.front().map_or(after, |&(c, _)| c.saturating_sub(1)));
        for &(cursor, seq) in st.feed.iter().skip(start).take(limit) {
            if let Some(v) = self.match_view(&slot, &st, seq) {
                out.push(v);
            }
            next = cursor;
        }
        Ok((out, next, rx))
    }

    /// Reports players lost from a running match and asks for backfill of every open place.
    /// A pending request for the same match is replaced (cancelled).
    ///
    /// # Errors
    /// `NotFound`; `BackfillDisabled`; `InvalidBackfill` (unknown or already-lost players, no
    /// open place, nobody left in the match).
    pub fn request_backfill(
        &self,
        match_id: &str,
        lost_players: &[String],
        now: u64,
    ) -> Result<BackfillView, EngineError> {
        let (slot, mseq) = self.locate(Kind::Match, match_id)?;
        let mut st = lock(&slot.state);
        if !st.active {
            return Err(EngineError::QueueRemoved(slot.key.to_string()));
        }
        if !st.rules().backfill {
            return Err(EngineError::BackfillDisabled(slot.key.to_string()));
        }
        let region_index = {
            let m = st
                .matches
                .get(&mseq)
                .ok_or_else(|| EngineError::NotFound(match_id.to_owned()))?;
            for p in lost_players {
                let known = m
                    .members
                    .iter()
                    .any(|mem| mem.players.iter().any(|(id, _)| id == p));
                if !known {
                    return Err(EngineError::InvalidBackfill(format!(
                        "player {p} is not in match {match_id}"
                    )));
                }
            }
            match &m.region {
                Some(r) => st.rules().regions.iter().position(|x| x == r),
                None => Some(0),
            }
            .ok_or_else(|| {
                EngineError::InvalidBackfill("the match's region is no longer served".to_owned())
            })?
        };
        let teams = usize::from(st.rules().teams.max(1));
        let team_size = st.rules().team_size();
        let (open, sums, range, previous) = {
            let Some(m) = st.matches.get_mut(&mseq) else {
                return Err(EngineError::NotFound(match_id.to_owned()));
            };
            for p in lost_players {
                if !m.lost.contains(p) {
                    m.lost.push(p.clone());
                }
            }
            m.updated_ms = now;
            let mut counts = vec![0u16; teams];
            let mut sums = vec![0.0; teams];
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for mem in &m.members {
                for (p, skill) in &mem.players {
                    if !m.lost.contains(p) {
                        let t = usize::from(mem.team).min(teams - 1);
                        counts[t] += 1;
                        sums[t] += skill;
                        lo = lo.min(*skill);
                        hi = hi.max(*skill);
                    }
                }
            }
            let open: Vec<u16> = counts
                .iter()
                .map(|&c| team_size.saturating_sub(c))
                .collect();
            (open, sums, (lo, hi), m.backfills.last().copied())
        };
        if let Some(prev) = previous
            && st
                .backfills
                .get(&prev)
                .is_some_and(|b| b.state == BackfillState::Pending)
        {
            st.pool.remove_backfill(prev);
            if let Some(b) = st.backfills.get_mut(&prev) {
                b.state = BackfillState::Cancelled;
                b.updated_ms = now;
            }
            st.expiry.push_back((now, Kind::Backfill, prev));
        }
        let seq = st.seq();
        st.pool
            .add_backfill(BackfillInput {
                id: seq,
                created_ms: now,
                region: region_index,
                open: open.clone(),
                team_sums: sums,
                skill_range: range,
            })
            .map_err(|e| EngineError::InvalidBackfill(e.to_string()))?;
        st.backfills.insert(
            seq,
            BackfillRecord {
                match_seq: mseq,
                state: BackfillState::Pending,
                open,
                created_ms: now,
                updated_ms: now,
                placed: Vec::new(),
            },
        );
        if let Some(m) = st.matches.get_mut(&mseq) {
            m.backfills.push(seq);
        }
        st.expiry.push_back((now, Kind::Match, mseq));
        slot.notify(&mut st);
        self.backfill_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(match_id.to_owned()))
    }

    fn backfill_view(&self, slot: &QueueSlot, st: &QueueState, seq: u64) -> Option<BackfillView> {
        let b = st.backfills.get(&seq)?;
        Some(BackfillView {
            id: format_id(Kind::Backfill, slot.index, seq),
            match_id: format_id(Kind::Match, slot.index, b.match_seq),
            state: b.state,
            open_slots: b.open.clone(),
            created_at_ms: b.created_ms,
            updated_at_ms: b.updated_ms,
            tickets: b
                .placed
                .iter()
                .map(|&(t, team)| BackfillPlacement {
                    ticket_id: format_id(Kind::Ticket, slot.index, t),
                    team,
                })
                .collect(),
        })
    }

    /// Reads a backfill request.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn get_backfill(&self, id: &str) -> Result<BackfillView, EngineError> {
        let (slot, seq) = self.locate(Kind::Backfill, id)?;
        let st = lock(&slot.state);
        self.backfill_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// Cancels a pending backfill request.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when already filled.
    pub fn cancel_backfill(&self, id: &str, now: u64) -> Result<BackfillView, EngineError> {
        let (slot, seq) = self.locate(Kind::Backfill, id)?;
        let mut st = lock(&slot.state);
        let state = st
            .backfills
            .get(&seq)
            .map(|b| b.state)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        match state {
            BackfillState::Pending => {
                st.pool.remove_backfill(seq);
                if let Some(b) = st.backfills.get_mut(&seq) {
                    b.state = BackfillState::Cancelled;
                    b.updated_ms = now;
                }
                st.expiry.push_back((now, Kind::Backfill, seq));
                slot.notify(&mut st);
            }
            BackfillState::Filled => {
                return Err(EngineError::Conflict(format!(
                    "backfill {id} is already filled"
                )));
            }
            _ => {}
        }
        self.backfill_view(&slot, &st, seq)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    /// The configured queues (of one tenant, or all).
    #[must_use]
    pub fn queues(&self, tenant: Option<&str>) -> Vec<QueueView> {
        let reg = read(&self.registry);
        let mut out = Vec::new();
        for slot in &reg.slots {
            if tenant.is_some_and(|t| t != slot.key.tenant) {
                continue;
            }
            let st = lock(&slot.state);
            if !st.active {
                continue;
            }
            let r = st.rules();
            out.push(QueueView {
                id: slot.key.to_string(),
                tenant: slot.key.tenant.clone(),
                pool: slot.key.pool.clone(),
                name: slot.key.name.clone(),
                players_per_match: r.players_per_match,
                teams: r.teams,
                regions: r.regions.clone(),
                backfill: r.backfill,
                pending: st.pool.len(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Refuses a new ticket of `tenant` when the tenant already has as many open tickets as its
    /// limit (counted in the metrics like any refusal); `Ok` for a tenant under its limit or
    /// unknown. The API asks before parsing a ticket, so a tenant at its limit costs little.
    ///
    /// # Errors
    /// `TenantLimitExceeded`.
    pub fn admit(&self, tenant: &str) -> Result<(), EngineError> {
        let state = read(&self.registry).tenants.get(tenant).cloned();
        let Some(t) = state else { return Ok(()) };
        let limit = t.limit.load(Ordering::Acquire);
        if t.open.load(Ordering::Acquire) < limit {
            return Ok(());
        }
        self.reject(
            tenant,
            EngineError::TenantLimitExceeded {
                tenant: tenant.to_owned(),
                limit,
            },
        )
    }

    /// Open (waiting) tickets of a tenant.
    #[must_use]
    pub fn open_tickets(&self, tenant: &str) -> usize {
        read(&self.registry)
            .tenants
            .get(tenant)
            .map_or(0, |t| t.open.load(Ordering::Acquire))
    }

    /// One round over every queue at `now`: timeouts, backfills, matches, and expiry of
    /// records past their retention. See [`Engine::tick_with`].
    pub fn tick(&self, now: u64) -> TickSummary {
        self.tick_with(|| now)
    }

    /// One round over every queue, reading `clock` as each queue's turn comes (its matches and
    /// timeouts carry that time, so a queue served late in a round says so).
    ///
    /// Queues are served cheapest first: in increasing order of the anchors their previous
    /// round searched (ties in configuration order). A tenant whose queue is expensive, such as
    /// a flood's backlog of unmatchable tickets, is served after every cheaper queue and never
    /// delays their rounds; every queue is still served every round.
    pub fn tick_with(&self, mut clock: impl FnMut() -> u64) -> TickSummary {
        let mut slots: Vec<Arc<QueueSlot>> = read(&self.registry).slots.clone();
        slots.sort_by_key(|s| (s.cost.load(Ordering::Relaxed), s.index));
        let mut summary = TickSummary::default();
        for slot in slots {
            let now = clock();
            let expired_keys = self.tick_slot(&slot, now, &mut summary);
            if !expired_keys.is_empty() {
                let mut keys = lock(&slot.tenant.keys);
                for (key, seq) in expired_keys {
                    if keys.get(&key) == Some(&(slot.index, seq)) {
                        keys.remove(&key);
                    }
                }
            }
        }
        summary
    }

    fn tick_slot(
        &self,
        slot: &QueueSlot,
        now: u64,
        summary: &mut TickSummary,
    ) -> Vec<(String, u64)> {
        let mut guard = lock(&slot.state);
        let st = &mut *guard;
        let mut changed = false;
        slot.cost.store(0, Ordering::Relaxed);
        if st.active {
            let out = st.pool.tick(now, self.options.anchor_budget);
            summary.searches += out.searches;
            slot.cost.store(out.searches, Ordering::Relaxed);
            let rules = st.pool.rules().clone();
            for seq in &out.timed_out {
                st.finish_ticket(*seq, TicketState::TimedOut, "Timeout", now);
            }
            let mut left = out.timed_out.len();
            st.metrics.timed_out.inc_by(out.timed_out.len() as u64);
            for m in out.matches {
                let mseq = st.seq();
                st.next_cursor += 1;
                let cursor = st.next_cursor;
                let mut members = Vec::with_capacity(m.tickets.len());
                for p in &m.tickets {
                    if let Some(t) = st.tickets.get_mut(&p.ticket) {
                        t.state = TicketState::Matched;
                        t.updated_ms = now;
                        t.assignment = Some((mseq, p.team, false));
                        st.metrics
                            .wait
                            .observe(now.saturating_sub(t.created_ms) as f64 / 1000.0);
                        members.push(Member {
                            ticket: p.ticket,
                            team: p.team,
                            players: t
                                .players
                                .iter()
                                .map(|pl| (pl.id.clone(), pl.skill))
                                .collect(),
                        });
                        st.expiry.push_back((now, Kind::Ticket, p.ticket));
                    }
                }
                left += m.tickets.len();
                summary.matched += m.tickets.len();
                st.metrics.matched.inc_by(m.tickets.len() as u64);
                st.metrics.matches.inc();
                st.metrics.spread.observe(m.spread);
                st.metrics.imbalance.observe(m.imbalance);
                st.matches.insert(
                    mseq,
                    MatchRecord {
                        cursor,
                        created_ms: now,
                        updated_ms: now,
                        region: rules.regions.get(m.region).cloned(),
                        spread: m.spread,
                        window: m.window,
                        imbalance: m.imbalance,
                        max_latency_ms: m.max_latency_ms,
                        members,
                        lost: Vec::new(),
                        backfills: Vec::new(),
                    },
                );
                st.feed.push_back((cursor, mseq));
                st.expiry.push_back((now, Kind::Match, mseq));
                summary.matches += 1;
            }
            for b in &out.backfills_timed_out {
                if let Some(r) = st.backfills.get_mut(b) {
                    r.state = BackfillState::TimedOut;
                    r.updated_ms = now;
                }
                st.expiry.push_back((now, Kind::Backfill, *b));
            }
            for fill in out.backfills {
                let Some(mseq) = st.backfills.get(&fill.id).map(|b| b.match_seq) else {
                    continue;
                };
                let mut members = Vec::new();
                for p in &fill.tickets {
                    if let Some(t) = st.tickets.get_mut(&p.ticket) {
                        t.state = TicketState::Matched;
                        t.updated_ms = now;
                        t.assignment = Some((mseq, p.team, true));
                        st.metrics
                            .wait
                            .observe(now.saturating_sub(t.created_ms) as f64 / 1000.0);
                        members.push(Member {
                            ticket: p.ticket,
                            team: p.team,
                            players: t
                                .players
                                .iter()
                                .map(|pl| (pl.id.clone(), pl.skill))
                                .collect(),
                        });
                        st.expiry.push_back((now, Kind::Ticket, p.ticket));
                    }
                }
                left += fill.tickets.len();
                summary.matched += fill.tickets.len();
                summary.backfills += 1;
                st.metrics.backfilled.inc_by(fill.tickets.len() as u64);
                st.metrics.backfills.inc();
                if let Some(m) = st.matches.get_mut(&mseq) {
                    m.members.extend(members);
                    m.updated_ms = now;
                }
                st.expiry.push_back((now, Kind::Match, mseq));
                if let Some(b) = st.backfills.get_mut(&fill.id) {
                    b.state = BackfillState::Filled;
                    b.updated_ms = now;
                    b.placed = fill.tickets.iter().map(|p| (p.ticket, p.team)).collect();
                }
                st.expiry.push_back((now, Kind::Backfill, fill.id));
            }
            summary.timed_out += out.timed_out.len();
            if left > 0 {
                slot.tenant.open.fetch_sub(left, Ordering::AcqRel);
                changed = true;
            }
            st.metrics.pending.set(st.pool.len() as i64);
        }
        // Expiry of records past their retention.
        let mut keys = Vec::new();
        let retention = self.options.retention_ms;
        let expired = |at: u64| at.saturating_add(retention) <= now;
        while let Some(&(at, kind, seq)) = st.expiry.front() {
            if !expired(at) {
                break;
            }
            st.expiry.pop_front();
            match kind {
                Kind::Ticket => {
                    if st
                        .tickets
                        .get(&seq)
                        .is_some_and(|t| t.state != TicketState::Pending && expired(t.updated_ms))
                        && let Some(t) = st.tickets.remove(&seq)
                        && let Some(k) = t.client_key
                    {
                        keys.push((k, seq));
                    }
                }
                Kind::Match => {
                    if st.matches.get(&seq).is_some_and(|m| expired(m.updated_ms)) {
                        st.matches.remove(&seq);
                    }
                }
                Kind::Backfill => {
                    if st
                        .backfills
                        .get(&seq)
                        .is_some_and(|b| b.state != BackfillState::Pending && expired(b.updated_ms))
                    {
                        st.backfills.remove(&seq);
                    }
                }
            }
        }
        while let Some(&(_, mseq)) = st.feed.front() {
            if st.matches.contains_key(&mseq) {
                break;
            }
            st.feed.pop_front();
        }
        if changed {
            slot.notify(st);
        }
        keys
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
