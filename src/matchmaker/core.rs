//! The matching core: one queue's waiting tickets and the rules that form matches from them.
//!
//! Pure: no I/O, no clock, no locks. Time is passed in as milliseconds; the caller owns the
//! queue and calls [`Pool::tick`] periodically.
//!
//! # Rules
//!
//! - **Oldest first.** Each tick, timed-out tickets leave first (reason `Timeout`: waited at
//!   least `timeout`), then backfill requests are served (oldest first), then every waiting
//!   ticket, oldest first, is the *anchor* of a search. A ticket taken into a match leaves the
//!   pool at once, so no ticket is ever in two matches.
//! - **Window.** The anchor's window is `min(initial + wideningPerSecond × wait, maximum)`.
//!   A match forms only when its **skill spread** — the highest minus the lowest skill of all
//!   its *players* (not ticket means: a party's own range counts) — is at most the anchor's
//!   window. The anchor is the oldest ticket not yet matched, so every other ticket in the match
//!   is younger or failed to match on its own; the spread is also within the window of the
//!   match's oldest ticket. A newer ticket may thus join a wider match than its own window: it
//!   is matched at once instead of waiting, which is what it would choose.
//! - **Latency.** A ticket is eligible in a region when every one of its players has a latency
//!   to it of at most `maxLatencyMs`; each region keeps a skill-sorted index (a `BTreeMap` keyed
//!   by `(skill, ticket id)`) of the tickets eligible there. A match's tickets are all drawn from
//!   one region's index: that region hosts the match. Among regions the anchor is eligible in,
//!   the best match wins in the quality order ([`quality_key`]): balanced (team-mean gap at
//!   most [`BALANCED_GAP`]) first, then smallest spread, then smallest gap, then lowest latency.
//! - **Candidates.** From the anchor's position in the index, tickets are taken outward on
//!   both sides while they stay within the window, until one side alone could fill the match
//!   (plus one team's worth when parties are about, so some can be skipped). In pools of at
//!   most [`SMALL_POOL`] tickets, at least [`EXACT_CANDIDATES`] per side are taken.
//!   - When every in-window candidate was collected and there are at most
//!     [`EXACT_CANDIDATES`] of them, the search is exact: every subset with the right player
//!     count is tried and the best in the quality order is taken.
//!   - Otherwise, a sliding window: for each start left of the anchor, candidates are taken in
//!     skill order (skipping parties that do not fit the remaining places) until the match is
//!     full. For solo tickets this tries every run of consecutive tickets containing the
//!     anchor, which include the minimum-spread set. Sets that split into teams are tried by
//!     increasing spread; an unbalanced one is first rebalanced by swapping its tickets for
//!     same-sized candidates within the window ([`MAX_SWAPS`]); the first balanced set is
//!     taken, else the best of [`BALANCE_CANDIDATES`] (parties: a five-stack against five
//!     solos is balanced by choosing the solos, not by the split).
//! - **Balance patience.** An anchor whose best match is unbalanced (team-mean gap above
//!   [`BALANCED_GAP`]) and holds a party declines it until it has waited
//!   [`BALANCE_PATIENCE_MS`]; meanwhile its window widens and tickets arrive (measured: a
//!   five-stack then usually finds a balanced match; see `BENCHMARKS.md`). Solo-only matches
//!   are never held back: their gap is at most their spread.
//! - **Parties** stay whole: a party larger than one team is refused when the ticket is made,
//!   and team balancing ([`super::teams`]) keeps each party in one team.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;

use super::teams::{self, PartyStats, Split};

/// A ticket's identifier within its pool.
pub type TicketId = u64;
/// A backfill request's identifier within its pool.
pub type BackfillId = u64;

/// A search is exact when the anchor has at most this many candidates in its window.
pub const EXACT_CANDIDATES: usize = 10;
/// A match whose team-mean gap is at most this many rating points is *balanced*. Searches
/// prefer a balanced set to a tighter unbalanced one: the quality order of two candidate
/// matches is (unbalanced, spread, gap, latency), see [`quality_key`].
pub const BALANCED_GAP: f64 = 1.0;
/// Sliding-window searches try at most this many of the lowest-spread sets that split into
/// teams, each rebalanced by swaps (see [`MAX_SWAPS`]), and stop at the first balanced one.
pub const BALANCE_CANDIDATES: usize = 4;
/// Rebalancing swaps per candidate set: a ticket of the match (never the anchor) is exchanged
/// for a waiting candidate of the same party size, in the same team, within the window, when
/// that narrows the gap between the strongest and the weakest team.
pub const MAX_SWAPS: usize = 4;
/// Tickets a rebalancing swap looks at on each side of the anchor in the region's index.
pub const SWAP_SCAN: usize = 16;
/// An anchor takes an unbalanced match (see [`BALANCED_GAP`]) holding a party only after
/// waiting this long; before, it waits for its window to widen and more tickets to arrive.
pub const BALANCE_PATIENCE_MS: u64 = 5_000;
/// Most regions a queue may have (eligibility is a bit mask).
pub const MAX_REGIONS: usize = 32;

/// The rules of one queue (the MatchmakingPool's `QueueSpec`, checked).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRules {
    /// Players in one match.
    pub players_per_match: u16,
    /// Teams in one match (1: free-for-all).
    pub teams: u16,
    /// Window, in rating points, when a ticket arrives.
    pub window_initial: f64,
    /// Rating points the window widens by per second of waiting.
    pub window_widening_per_second: f64,
    /// Widest window.
    pub window_maximum: f64,
    /// Highest latency a player may have to the match's region.
    pub max_latency_ms: u32,
    /// Regions matches may be hosted in. Empty: no region constraint (latencies ignored).
    pub regions: Vec<String>,
    /// A ticket waiting this long leaves with reason `Timeout`.
    pub timeout_ms: u64,
    /// Whether running matches may ask for backfill.
    pub backfill: bool,
}

impl QueueRules {
    /// Players in one team.
    #[must_use]
    pub fn team_size(&self) -> u16 {
        self.players_per_match / self.teams.max(1)
    }

    /// The window after waiting `wait_ms`.
    #[must_use]
    pub fn window_at(&self, wait_ms: u64) -> f64 {
        (self.window_initial + self.window_widening_per_second * (wait_ms as f64 / 1000.0))
            .min(self.window_maximum)
    }

    /// Milliseconds until the window reaches its maximum.
    #[must_use]
    pub fn widening_ms(&self) -> u64 {
        if self.window_widening_per_second <= 0.0 || self.window_initial >= self.window_maximum {
            0
        } else {
            ((self.window_maximum - self.window_initial) / self.window_widening_per_second * 1000.0)
                .ceil() as u64
        }
    }

    fn index_count(&self) -> usize {
        self.regions.len().max(1)
    }
}

/// Why a ticket or backfill request was refused by the core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// No players, or more than one team holds.
    #[error("a ticket carries 1 to {max} players (a party stays in one team); this one has {got}")]
    PartySize {
        /// Players carried.
        got: usize,
        /// The team size.
        max: u16,
    },
    /// A skill that is not a finite number.
    #[error("skill ratings must be finite numbers")]
    BadSkill,
    /// Latencies not given for the queue's regions.
    #[error("latencies must be given for the queue's {0} regions")]
    BadLatencies(usize),
    /// No region within the latency limit for every player.
    #[error("no region of this queue is within {0} ms of every player of the ticket")]
    NoEligibleRegion(u32),
    /// The id is already in the pool.
    #[error("ticket {0} is already in the pool")]
    Duplicate(TicketId),
    /// The queue does not backfill.
    #[error("this queue does not backfill running matches (backfill: false)")]
    BackfillDisabled,
    /// A malformed backfill request.
    #[error("invalid backfill request: {0}")]
    BadBackfill(String),
}

/// A ticket entering the pool.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketInput {
    /// Unique in the pool.
    pub id: TicketId,
    /// When it was made.
    pub created_ms: u64,
    /// The skill of each player of the party.
    pub skills: Vec<f64>,
    /// The party's worst latency to each region of the queue (its slowest player's), in the
    /// order of [`QueueRules::regions`]; `u32::MAX` when unknown. Empty when the queue has no
    /// regions.
    pub worst_latency_ms: Vec<u32>,
}

/// A running match that lost players and asks for new ones.
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillInput {
    /// Unique in the pool.
    pub id: BackfillId,
    /// When it was asked for (its window widens from then).
    pub created_ms: u64,
    /// Index of the match's region in [`QueueRules::regions`] (0 when the queue has none).
    pub region: usize,
    /// Open places per team.
    pub open: Vec<u16>,
    /// Sum of the skills of the players still in each team.
    pub team_sums: Vec<f64>,
    /// Lowest and highest skill of the players still in the match.
    pub skill_range: (f64, f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Summary {
    min: f64,
    max: f64,
    sum: f64,
    size: u16,
    /// Worst latency to the index's region.
    latency: u32,
}

#[derive(Clone, Debug)]
struct Entry {
    created_ms: u64,
    summary: Summary,
    mask: u32,
    worst: Box<[u32]>,
}

/// Hashes the pool's sequential ids well enough for a SwissTable (Fibonacci hashing).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// An order-preserving integer key for a finite `f64`.
fn skill_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// One ticket placed in a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The ticket.
    pub ticket: TicketId,
    /// Its team (0-based).
    pub team: u16,
}

/// A match formed by a tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// The ticket whose search formed it (the oldest waiting when it formed).
    pub anchor: TicketId,
    /// When the anchor was made.
    pub anchor_created_ms: u64,
    /// Its tickets and their teams.
    pub tickets: Vec<Placed>,
    /// Index of the hosting region in [`QueueRules::regions`] (0 when the queue has none).
    pub region: usize,
    /// Highest minus lowest player skill.
    pub spread: f64,
    /// The anchor's window when the match formed (`spread <= window`).
    pub window: f64,
    /// Mean skill of each team.
    pub team_means: Vec<f64>,
    /// Highest team mean minus lowest.
    pub imbalance: f64,
    /// Worst player latency to the region (`None` when the queue has no regions).
    pub max_latency_ms: Option<u32>,
}

/// Tickets given to a backfill request.
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillFill {
    /// The request.
    pub id: BackfillId,
    /// Tickets and the team each joins.
    pub tickets: Vec<Placed>,
    /// Spread of the match after the fill (remaining and new players).
    pub spread: f64,
    /// The request's window when filled.
    pub window: f64,
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    /// Matches formed.
    pub matches: Vec<Match>,
    /// Tickets that waited past the timeout and left.
    pub timed_out: Vec<TicketId>,
    /// Backfill requests filled.
    pub backfills: Vec<BackfillFill>,
    /// Backfill requests that waited past the timeout and were dropped.
    pub backfills_timed_out: Vec<BackfillId>,
    /// Anchors searched.
    pub searches: usize,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    id: TicketId,
    s: Summary,
}

struct Found {
    ids: Vec<TicketId>,
    /// Whether a ticket of the match is a party (more than one player).
    party: bool,
    split: Split,
    spread: f64,
    latency: u32,
}

/// The order of match quality, lower first: balanced matches (team-mean gap at most
/// [`BALANCED_GAP`]) before unbalanced ones, then smallest skill spread, then smallest gap,
/// then lowest worst latency.
#[must_use]
pub fn quality_key(spread: f64, gap: f64, latency: u32) -> (bool, f64, f64, u32) {
    (gap > BALANCED_GAP, spread, gap, latency)
}

impl Found {
    fn balanced(&self) -> bool {
        self.split.gap <= BALANCED_GAP
    }

    fn better_than(&self, other: &Found) -> bool {
        quality_key(self.spread, self.split.gap, self.latency)
            .partial_cmp(&quality_key(other.spread, other.split.gap, other.latency))
            .is_some_and(std::cmp::Ordering::is_lt)
    }
}

/// Pools of at most this many tickets collect every in-window candidate, so their searches
/// are exact when the candidates are few.
pub const SMALL_POOL: usize = 4 * EXACT_CANDIDATES;

/// Waiting tickets in arrival order; removed tickets stay until they reach the front or the
/// queue is compacted (lazy deletion).
#[derive(Clone, Debug, Default)]
struct AgeQueue {
    items: VecDeque<(u64, TicketId)>,
    dead: usize,
}

impl AgeQueue {
    fn push(&mut self, created: u64, id: TicketId) {
        if self.items.back().is_none_or(|&(c, _)| c <= created) {
            self.items.push_back((created, id));
        } else {
            let at = self
                .items
                .partition_point(|&(c, i)| (c, i) <= (created, id));
            self.items.insert(at, (created, id));
        }
    }
}

/// A full match a sliding-window start yields.
#[derive(Clone, Copy, Debug)]
struct SlideOption {
    spread: f64,
    latency: u32,
    region: usize,
    a_pos: usize,
    start: usize,
}

/// Buffers reused across searches.
#[derive(Clone, Debug, Default)]
struct Scratch {
    lists: Vec<Vec<Cand>>,
    options: Vec<SlideOption>,
    picked: Vec<usize>,
}

/// Highest minus lowest team skill sum.
fn sum_gap(sums: &[f64]) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &s in sums {
        lo = lo.min(s);
        hi = hi.max(s);
    }
    hi - lo
}

/// Skill spread of `chosen`.
fn spread_of_cands(chosen: &[Cand]) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in chosen {
        lo = lo.min(c.s.min);
        hi = hi.max(c.s.max);
    }
    hi - lo
}

/// The waiting tickets of one queue.
#[derive(Clone, Debug)]
pub struct Pool {
    rules: QueueRules,
    entries: IdMap<Entry>,
    by_age: AgeQueue,
    scratch: Scratch,
    index: Vec<BTreeMap<(u64, TicketId), Summary>>,
    backfills: BTreeMap<BackfillId, BackfillInput>,
    players: u64,
}

impl Pool {
    /// An empty pool with `rules`.
    #[must_use]
    pub fn new(rules: QueueRules) -> Self {
        let index = vec![BTreeMap::new(); rules.index_count()];
        Self {
            rules,
            entries: IdMap::default(),
            by_age: AgeQueue::default(),
            scratch: Scratch::default(),
            index,
            backfills: BTreeMap::new(),
            players: 0,
        }
    }

    /// The queue's rules.
    #[must_use]
    pub fn rules(&self) -> &QueueRules {
        &self.rules
    }

    /// Tickets waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no ticket waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` waits in the pool.
    #[must_use]
    pub fn contains(&self, id: TicketId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Backfill requests waiting.
    #[must_use]
    pub fn backfills_waiting(&self) -> usize {
        self.backfills.len()
    }

    /// Checks a ticket against the rules without adding it; returns its region mask.
    ///
    /// # Errors
    /// The reason the ticket cannot wait in this queue.
    pub fn check(&self, ticket: &TicketInput) -> Result<u32, CoreError> {
        let size = ticket.skills.len();
        let max = if self.rules.teams <= 1 {
            self.rules.players_per_match
        } else {
            self.rules.team_size()
        };
        if size == 0 || size > usize::from(max) {
            return Err(CoreError::PartySize { got: size, max });
        }
        if ticket.skills.iter().any(|s| !s.is_finite()) {
            return Err(CoreError::BadSkill);
        }
        if self.rules.regions.is_empty() {
            return Ok(1);
        }
        if ticket.worst_latency_ms.len() != self.rules.regions.len() {
            return Err(CoreError::BadLatencies(self.rules.regions.len()));
        }
        let mut mask = 0u32;
        for (r, &l) in ticket.worst_latency_ms.iter().enumerate() {
            if l <= self.rules.max_latency_ms {
                mask |= 1 << r;
            }
        }
        if mask == 0 {
            return Err(CoreError::NoEligibleRegion(self.rules.max_latency_ms));
        }
        Ok(mask)
    }

    /// Adds a waiting ticket.
    ///
    /// # Errors
    /// When the ticket breaks the queue's rules or its id is taken.
    pub fn insert(&mut self, ticket: TicketInput) -> Result<(), CoreError> {
        let mask = self.check(&ticket)?;
        if self.entries.contains_key(&ticket.id) {
            return Err(CoreError::Duplicate(ticket.id));
        }
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for &s in &ticket.skills {
            min = min.min(s);
            max = max.max(s);
            sum += s;
        }
        let summary = Summary {
            min,
            max,
            sum,
            size: ticket.skills.len() as u16,
            latency: 0,
        };
        for r in 0..self.index.len() {
            if mask & (1 << r) != 0 {
                let latency = ticket.worst_latency_ms.get(r).copied().unwrap_or(0);
                self.index[r].insert((skill_key(min), ticket.id), Summary { latency, ..summary });
            }
        }
        self.by_age.push(ticket.created_ms, ticket.id);
        self.players += u64::from(summary.size);
        self.entries.insert(
            ticket.id,
            Entry {
                created_ms: ticket.created_ms,
                summary,
                mask,
                worst: ticket.worst_latency_ms.into_boxed_slice(),
            },
        );
        Ok(())
    }

    /// Removes a waiting ticket (cancelled); `false` when it was not waiting.
    pub fn remove(&mut self, id: TicketId) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        self.by_age.dead += 1;
        let key = (skill_key(entry.summary.min), id);
        for (r, index) in self.index.iter_mut().enumerate() {
            if entry.mask & (1 << r) != 0 {
                index.remove(&key);
            }
        }
        self.players -= u64::from(entry.summary.size);
        true
    }

    /// Adds a backfill request.
    ///
    /// # Errors
    /// When the queue does not backfill or the request is malformed.
    pub fn add_backfill(&mut self, req: BackfillInput) -> Result<(), CoreError> {
        if !self.rules.backfill {
            return Err(CoreError::BackfillDisabled);
        }
        let teams = usize::from(self.rules.teams.max(1));
        let bad = |m: &str| Err(CoreError::BadBackfill(m.to_owned()));
        if req.region >= self.index.len() {
            return bad("unknown region");
        }
        if req.open.len() != teams || req.team_sums.len() != teams {
            return bad("open places and team sums must be given for every team");
        }
        if req.open.iter().all(|&o| o == 0) {
            return bad("no open places");
        }
        if req.open.iter().any(|&o| o > self.rules.team_size()) {
            return bad("more open places than a team has");
        }
        let (lo, hi) = req.skill_range;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return bad("the match has no remaining players");
        }
        if self.backfills.contains_key(&req.id) {
            return bad("duplicate id");
        }
        self.backfills.insert(req.id, req);
        Ok(())
    }

    /// Drops a backfill request; `false` when it was not waiting.
    pub fn remove_backfill(&mut self, id: BackfillId) -> bool {
        self.backfills.remove(&id).is_some()
    }

    /// Ids of the waiting tickets, oldest first.
    #[must_use]
    pub fn waiting(&self) -> Vec<TicketId> {
        self.by_age
            .items
            .iter()
            .filter(|&&(c, id)| self.live(c, id))
            .map(|&(_, id)| id)
            .collect()
    }

    fn live(&self, created: u64, id: TicketId) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.created_ms == created)
    }

    /// Runs one round: timeouts, backfills, then matches, searching at most `budget` anchors.
    pub fn tick(&mut self, now_ms: u64, budget: usize) -> Tick {
        let mut out = Tick::default();
        // Timeouts: the oldest tickets are at the front.
        let timeout = self.rules.timeout_ms;
        while let Some(&(created, id)) = self.by_age.items.front() {
            if self.live(created, id) {
                if now_ms.saturating_sub(created) < timeout {
                    break;
                }
                self.remove(id);
                out.timed_out.push(id);
            }
            self.by_age.items.pop_front();
            self.by_age.dead = self.by_age.dead.saturating_sub(1);
        }
        if self.by_age.dead > self.entries.len() + 1024 {
            let entries = &self.entries;
            self.by_age
                .items
                .retain(|&(c, id)| entries.get(&id).is_some_and(|e| e.created_ms == c));
            self.by_age.dead = 0;
        }
        let expired: Vec<BackfillId> = self
            .backfills
            .values()
            .filter(|b| now_ms.saturating_sub(b.created_ms) >= timeout)
            .map(|b| b.id)
            .collect();
        for id in expired {
            self.backfills.remove(&id);
            out.backfills_timed_out.push(id);
        }
        let pending: Vec<BackfillId> = self.backfills.keys().copied().collect();
        for id in pending {
            if let Some(fill) = self.try_backfill(id, now_ms) {
                self.backfills.remove(&id);
                out.backfills.push(fill);
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let p = u64::from(self.rules.players_per_match);
        let mut i = 0;
        while i < self.by_age.items.len() && out.searches < budget && self.players >= p {
            let (created, id) = self.by_age.items[i];
            i += 1;
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if entry.created_ms != created {
                continue;
            }
            out.searches += 1;
            let wait = now_ms.saturating_sub(created);
            let window = self.rules.window_at(wait);
            if let Some((region, found)) = self.search(id, entry, wait, &mut scratch) {
                out.matches
                    .push(self.commit(id, created, region, window, found));
            }
        }
        self.scratch = scratch;
        out
    }

    fn commit(
        &mut self,
        anchor: TicketId,
        anchor_created_ms: u64,
        region: usize,
        window: f64,
        found: Found,
    ) -> Match {
        let tickets = found
            .ids
            .iter()
            .zip(&found.split.team_of)
            .map(|(&ticket, &team)| Placed { ticket, team })
            .collect();
        for &id in &found.ids {
            self.remove(id);
        }
        Match {
            anchor,
            anchor_created_ms,
            tickets,
            region,
            spread: found.spread,
            window,
            imbalance: found.split.gap,
            team_means: found.split.team_means,
            max_latency_ms: (!self.rules.regions.is_empty()).then_some(found.latency),
        }
    }

    /// Candidates around the anchor in one region's index, in skill order, into `list`;
    /// returns the anchor's position and whether every in-window candidate was collected.
    fn candidates(
        &self,
        anchor: TicketId,
        a: Summary,
        region: usize,
        window: f64,
        list: &mut Vec<Cand>,
    ) -> (usize, bool) {
        list.clear();
        let need = u32::from(self.rules.players_per_match - a.size);
        let slack = u32::from(self.rules.team_size());
        // Small pools collect every candidate they can (the exact search needs them all);
        // large ones only what a sliding window can use.
        let min_tickets = if self.entries.len() <= SMALL_POOL {
            EXACT_CANDIDATES
        } else {
            0
        };
        let lo = a.max - window;
        let hi = a.min + window;
        let index = &self.index[region];
        let key = (skill_key(a.min), anchor);
        let enough = |tickets: usize, players: u32, party: bool| {
            tickets >= min_tickets && players >= need && (!party || players >= need + slack)
        };
        let mut complete = true;
        let (mut players, mut party) = (0u32, false);
        for (&(_, id), s) in index.range(..key).rev() {
            if s.min < lo {
                break;
            }
            if s.max > hi {
                continue;
            }
            list.push(Cand { id, s: *s });
            players += u32::from(s.size);
            party |= s.size > 1;
            if enough(list.len(), players, party) {
                complete = false;
                break;
            }
        }
        list.reverse();
        let a_pos = list.len();
        list.push(Cand { id: anchor, s: a });
        let (mut players, mut party, mut taken) = (0u32, false, 0usize);
        for (&(_, id), s) in index.range((Bound::Excluded(key), Bound::Unbounded)) {
            if s.min > hi {
                break;
            }
            if s.max > hi {
                continue;
            }
            list.push(Cand { id, s: *s });
            taken += 1;
            players += u32::from(s.size);
            party |= s.size > 1;
            if enough(taken, players, party) {
                complete = false;
                break;
            }
        }
        (a_pos, complete)
    }

    /// The best match for an anchor that has waited `wait_ms`; an unbalanced one holding a
    /// party only once it has waited [`BALANCE_PATIENCE_MS`].
    fn search(
        &self,
        anchor: TicketId,
        entry: &Entry,
        wait_ms: u64,
        scratch: &mut Scratch,
    ) -> Option<(usize, Found)> {
        let found = self.search_within(anchor, entry, self.rules.window_at(wait_ms), scratch)?;
        let f = &found.1;
        (f.balanced() || !f.party || wait_ms >= BALANCE_PATIENCE_MS).then_some(found)
    }

    fn search_within(
        &self,
        anchor: TicketId,
        entry: &Entry,
        window: f64,
        scratch: &mut Scratch,
    ) -> Option<(usize, Found)> {
        let a = entry.summary;
        if a.max - a.min > window {
            return None;
        }
        let p = self.rules.players_per_match;
        let regions = self.index.len();
        if a.size == p {
            let r = (0..regions).find(|r| entry.mask & (1 << r) != 0)?;
            let anchor = Cand {
                id: anchor,
                s: Summary {
                    latency: entry.worst.get(r).copied().unwrap_or(0),
                    ..a
                },
            };
            return self.found(&[anchor], a.max - a.min).map(|f| (r, f));
        }
        if scratch.lists.len() < regions {
            scratch.lists.resize_with(regions, Vec::new);
        }
        scratch.options.clear();
        let mut best: Option<(usize, Found)> = None;
        for r in 0..regions {
            if entry.mask & (1 << r) == 0 {
                continue;
            }
            let anchor_here = Summary {
                latency: entry.worst.get(r).copied().unwrap_or(0),
                ..a
            };
            let mut list = std::mem::take(&mut scratch.lists[r]);
            let (a_pos, complete) = self.candidates(anchor, anchor_here, r, window, &mut list);
            let total: u32 = list.iter().map(|c| u32::from(c.s.size)).sum();
            if total >= u32::from(p) {
                if complete && list.len() - 1 <= EXACT_CANDIDATES {
                    if let Some(f) = self.exact(&list, a_pos, window)
                        && best.as_ref().is_none_or(|(_, b)| f.better_than(b))
                    {
                        best = Some((r, f));
                    }
                } else {
                    self.sliding(&list, a_pos, window, r, &mut scratch.options);
                }
            }
            scratch.lists[r] = list;
        }
        if scratch.options.is_empty() {
            return best;
        }
        scratch.options.sort_unstable_by(|x, y| {
            (x.spread, x.latency)
                .partial_cmp(&(y.spread, y.latency))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // The lowest-spread sets that split into teams, each rebalanced by swaps: the first
        // balanced one wins, else the best of BALANCE_CANDIDATES of them (quality order).
        let mut sliding: Option<(usize, Found)> = None;
        let mut tried = 0;
        let mut picked = std::mem::take(&mut scratch.picked);
        for o in &scratch.options {
            if tried >= BALANCE_CANDIDATES {
                break;
            }
            let list = &scratch.lists[o.region];
            picked.clear();
            self.fill(list, o.a_pos, o.start, window, Some(&mut picked));
            let Some(mut f) = self.found_at(list, &picked, o.spread) else {
                continue;
            };
            tried += 1;
            if !f.balanced() {
                // The anchor first: rebalancing never swaps it out.
                let mut chosen: Vec<Cand> = Vec::with_capacity(picked.len());
                chosen.extend(picked.iter().map(|&i| list[i]));
                let mut team_of = f.split.team_of.clone();
                if let Some(at) = picked.iter().position(|&i| i == o.a_pos) {
                    chosen.swap(0, at);
                    team_of.swap(0, at);
                }
                if self.rebalance(o.region, &mut chosen, &team_of, window) {
                    let spread = spread_of_cands(&chosen);
                    if let Some(g) = self.found(&chosen, spread)
                        && g.better_than(&f)
                    {
                        f = g;
                    }
                }
            }
            if sliding.as_ref().is_none_or(|(_, b)| f.better_than(b)) {
                let done = f.balanced();
                sliding = Some((o.region, f));
                if done {
                    break;
                }
            }
        }
        scratch.picked = picked;
        match (best, sliding) {
            (Some(b), Some(s)) => Some(if s.1.better_than(&b.1) { s } else { b }),
            (b, s) => b.or(s),
        }
    }

    fn found_at(&self, list: &[Cand], picked: &[usize], spread: f64) -> Option<Found> {
        let chosen: Vec<Cand> = picked.iter().map(|&i| list[i]).collect();
        self.found(&chosen, spread)
    }

    /// Narrows the team-mean gap of the match `chosen` (teams `team_of`) by up to
    /// [`MAX_SWAPS`] swaps: each time, the exchange of one of its tickets (never the anchor,
    /// `chosen[0]`) for a waiting ticket of `region` outside the match, of the same party size,
    /// in the same team, that keeps the spread within `window` and leaves the smallest gap
    /// between the strongest and the weakest team, if that is smaller. Tickets are looked up in
    /// the region's index around the anchor, at most [`SWAP_SCAN`] on each side. Returns
    /// whether `chosen` changed (the caller splits it again, which can only improve on the
    /// swapped teams).
    fn rebalance(&self, region: usize, chosen: &mut [Cand], team_of: &[u16], window: f64) -> bool {
        let teams = usize::from(self.rules.teams.max(1));
        let mut sums = [0.0f64; 8];
        if !(2..=sums.len()).contains(&teams) {
            return false;
        }
        for (c, &t) in chosen.iter().zip(team_of) {
            sums[usize::from(t)] += c.s.sum;
        }
        let sums = &mut sums[..teams];
        let target = BALANCED_GAP * f64::from(self.rules.team_size()) / 2.0;
        let a = chosen[0];
        let (lo_bound, hi_bound) = (a.s.max - window, a.s.min + window);
        let index = &self.index[region];
        let key = (skill_key(a.s.min), a.id);
        let mut without = [(0.0f64, 0.0f64); 64];
        if chosen.len() > without.len() {
            return false;
        }
        let mut changed = false;
        for _ in 0..MAX_SWAPS {
            let gap = sum_gap(sums);
            if gap <= target {
                break;
            }
            // The skill range of the match without each of its tickets.
            for (k, range) in without.iter_mut().enumerate().take(chosen.len()) {
                let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                for (j, c) in chosen.iter().enumerate() {
                    if j != k {
                        lo = lo.min(c.s.min);
                        hi = hi.max(c.s.max);
                    }
                }
                *range = (lo, hi);
            }
            // (gap after, member index, candidate)
            let mut best: Option<(f64, usize, Cand)> = None;
            let mut consider = |id: TicketId, s: &Summary| {
                if s.max > hi_bound || s.min < lo_bound || chosen.iter().any(|c| c.id == id) {
                    return;
                }
                for (k, m) in chosen.iter().enumerate().skip(1) {
                    let (lo, hi) = without[k];
                    if m.s.size != s.size || hi.max(s.max) - lo.min(s.min) > window {
                        continue;
                    }
                    let team = usize::from(team_of[k]);
                    let delta = s.sum - m.s.sum;
                    sums[team] += delta;
                    let after = sum_gap(sums);
                    sums[team] -= delta;
                    if after < gap - 1e-9 && best.is_none_or(|(b, _, _)| after < b) {
                        best = Some((after, k, Cand { id, s: *s }));
                    }
                }
            };
            let scan = SWAP_SCAN;
            for (&(_, id), s) in index.range(..key).rev().take(scan) {
                if s.min < lo_bound {
                    break;
                }
                consider(id, s);
            }
            for (&(_, id), s) in index
                .range((Bound::Excluded(key), Bound::Unbounded))
                .take(scan)
            {
                if s.min > hi_bound {
                    break;
                }
                consider(id, s);
            }
            let Some((_, k, c)) = best else { break };
            sums[usize::from(team_of[k])] += c.s.sum - chosen[k].s.sum;
            chosen[k] = c;
            changed = true;
        }
        changed
    }

    /// The best split of `chosen` into teams (parties gathered on the stack for common sizes).
    fn split_of(&self, chosen: &[Cand]) -> Option<Split> {
        let party = |c: &Cand| PartyStats {
            size: c.s.size,
            sum: c.s.sum,
        };
        let (teams, size) = (self.rules.teams.max(1), self.rules.team_size());
        let mut buf = [PartyStats { size: 0, sum: 0.0 }; 32];
        if chosen.len() <= buf.len() {
            for (b, c) in buf.iter_mut().zip(chosen) {
                *b = party(c);
            }
            teams::split(&buf[..chosen.len()], teams, size)
        } else {
            let parties: Vec<PartyStats> = chosen.iter().map(party).collect();
            teams::split(&parties, teams, size)
        }
    }

    fn found(&self, chosen: &[Cand], spread: f64) -> Option<Found> {
        let split = self.split_of(chosen)?;
        Some(Found {
            ids: chosen.iter().map(|c| c.id).collect(),
            party: chosen.iter().any(|c| c.s.size > 1),
            latency: chosen.iter().map(|c| c.s.latency).max().unwrap_or(0),
            split,
            spread,
        })
    }

    /// Every subset containing the anchor with the right player count; best (spread, gap).
    fn exact(&self, list: &[Cand], a_pos: usize, window: f64) -> Option<Found> {
        let a = list[a_pos];
        let others: Vec<Cand> = list
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != a_pos)
            .map(|(_, c)| *c)
            .collect();
        let need = self.rules.players_per_match - a.s.size;
        let mut best: Option<Found> = None;
        let mut chosen = vec![a];
        self.exact_dfs(
            &others,
            0,
            need,
            (a.s.min, a.s.max),
            window,
            &mut chosen,
            &mut best,
        );
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn exact_dfs(
        &self,
        others: &[Cand],
        from: usize,
        need: u16,
        range: (f64, f64),
        window: f64,
        chosen: &mut Vec<Cand>,
        best: &mut Option<Found>,
    ) {
        let spread = range.1 - range.0;
        // Adding tickets never narrows the spread: once a balanced match is known, wider
        // sets cannot beat it.
        if spread > window
            || best
                .as_ref()
                .is_some_and(|b| b.balanced() && spread > b.spread)
        {
            return;
        }
        if need == 0 {
            // Only a better set is worth its Found (ids and all).
            let latency = chosen.iter().map(|c| c.s.latency).max().unwrap_or(0);
            if let Some(split) = self.split_of(chosen)
                && best.as_ref().is_none_or(|b| {
                    quality_key(spread, split.gap, latency)
                        < quality_key(b.spread, b.split.gap, b.latency)
                })
            {
                *best = Some(Found {
                    ids: chosen.iter().map(|c| c.id).collect(),
                    party: chosen.iter().any(|c| c.s.size > 1),
                    split,
                    spread,
                    latency,
                });
            }
            return;
        }
        for i in from..others.len() {
            let c = others[i];
            if c.s.size > need {
                continue;
            }
            chosen.push(c);
            self.exact_dfs(
                others,
                i + 1,
                need - c.s.size,
                (range.0.min(c.s.min), range.1.max(c.s.max)),
                window,
                chosen,
                best,
            );
            chosen.pop();
        }
    }

    /// Greedy fill from `start`: candidates in skill order (the anchor always), skipping
    /// parties that do not fit the places left or the window. Returns the spread and the worst
    /// latency of a full match, and the positions taken into `picked`.
    fn fill(
        &self,
        list: &[Cand],
        a_pos: usize,
        start: usize,
        window: f64,
        mut picked: Option<&mut Vec<usize>>,
    ) -> Option<(f64, u32)> {
        let a = list[a_pos];
        let mut rem = self.rules.players_per_match - a.s.size;
        let (mut mn, mut mx, mut lat) = (a.s.min, a.s.max, a.s.latency);
        if let Some(p) = picked.as_deref_mut() {
            p.push(a_pos);
        }
        for (j, c) in list.iter().enumerate().skip(start) {
            if rem == 0 {
                break;
            }
            if j == a_pos || c.s.size > rem {
                continue;
            }
            if j > a_pos && c.s.min - mn > window {
                break;
            }
            let (nmn, nmx) = (mn.min(c.s.min), mx.max(c.s.max));
            if nmx - nmn > window {
                continue;
            }
            if let Some(p) = picked.as_deref_mut() {
                p.push(j);
            }
            rem -= c.s.size;
            (mn, mx) = (nmn, nmx);
            lat = lat.max(c.s.latency);
        }
        (rem == 0).then_some((mx - mn, lat))
    }

    /// The sliding window: one greedy fill per start left of the anchor.
    fn sliding(
        &self,
        list: &[Cand],
        a_pos: usize,
        window: f64,
        region: usize,
        options: &mut Vec<SlideOption>,
    ) {
        let need = self.rules.players_per_match - list[a_pos].s.size;
        let reach = u32::from(need) + u32::from(self.rules.team_size());
        let mut left_players = 0u32;
        let mut start = a_pos;
        loop {
            if let Some((spread, latency)) = self.fill(list, a_pos, start, window, None) {
                options.push(SlideOption {
                    spread,
                    latency,
                    region,
                    a_pos,
                    start,
                });
            }
            if start == 0 {
                break;
            }
            start -= 1;
            left_players += u32::from(list[start].s.size);
            if left_players > reach {
                break;
            }
        }
    }

    fn try_backfill(&mut self, id: BackfillId, now_ms: u64) -> Option<BackfillFill> {
        let req = self.backfills.get(&id)?;
        let window = self.rules.window_at(now_ms.saturating_sub(req.created_ms));
        let (smin, smax) = req.skill_range;
        if smax - smin > window {
            return None;
        }
        let lo = smax - window;
        let hi = smin + window;
        let mid = (smin + smax) / 2.0;
        let open_total: u32 = req.open.iter().map(|&o| u32::from(o)).sum();
        let index = self.index.get(req.region)?;
        let key = (skill_key(mid), 0);
        let limit = 4 * open_total as usize + EXACT_CANDIDATES;
        let mut cands: Vec<Cand> = Vec::new();
        for (&(_, cid), s) in index.range(..key).rev() {
            if s.min < lo || cands.len() >= limit {
                break;
            }
            if s.max <= hi {
                cands.push(Cand { id: cid, s: *s });
            }
        }
        let left = cands.len();
        for (&(_, cid), s) in index.range(key..) {
            if s.min > hi || cands.len() >= left + limit {
                break;
            }
            if s.max <= hi {
                cands.push(Cand { id: cid, s: *s });
            }
        }
        let centre = |c: &Cand| (c.s.sum / f64::from(c.s.size) - mid).abs();
        cands.sort_by(|x, y| centre(x).total_cmp(&centre(y)));
        let mut open = req.open.clone();
        let mut sums = req.team_sums.clone();
        let (mut mn, mut mx) = (smin, smax);
        let mut rem = open_total;
        let mut placed = Vec::new();
        for c in cands {
            if rem == 0 {
                break;
            }
            let (nmn, nmx) = (mn.min(c.s.min), mx.max(c.s.max));
            if nmx - nmn > window {
                continue;
            }
            // The team with the most room that fits the party; ties go to the weaker team.
            let mut team: Option<usize> = None;
            for t in 0..open.len() {
                if open[t] < c.s.size {
                    continue;
                }
                team = match team {
                    Some(b) if open[b] > open[t] || (open[b] == open[t] && sums[b] <= sums[t]) => {
                        Some(b)
                    }
                    _ => Some(t),
                };
            }
            let Some(t) = team else { continue };
            open[t] -= c.s.size;
            sums[t] += c.s.sum;
            rem -= u32::from(c.s.size);
            (mn, mx) = (nmn, nmx);
            placed.push(Placed {
                ticket: c.id,
                team: t as u16,
            });
        }
        if rem != 0 {
            return None;
        }
        for p in &placed {
            self.remove(p.ticket);
        }
        Some(BackfillFill {
            id,
            tickets: placed,
            spread: mx - mn,
            window,
        })
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
