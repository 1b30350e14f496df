//! The load benchmark of the built-in matchmaker: `cargo bench --bench matchmaker` (`make bench`;
//! options after `--`, for example `-- --scenario core,api --seconds 3`).
//!
//! Everything runs in this process on 127.0.0.1: the matchmaker (engine, matching thread and
//! HTTP server on a 2-worker runtime of its own) and an open-loop load generator (Poisson
//! arrivals; every latency is measured from the request's *intended* send time, so a server
//! that falls behind is charged for the queueing it causes). Figures are printed as Markdown;
//! they are measurements, never asserted.
//!
//! Scenarios (each bounded to a few seconds):
//! - `core`: the matching core alone, one thread, no HTTP: tickets matched per second.
//! - `sim`: dense and sparse queues fed to the matching core on a simulated clock: wait
//!   p50/p99 (also by distance from the mean skill), spread and team-mean gap p99, and how
//!   many tickets waited while a valid match for them existed.
//! - `api`: tickets/s sustained through `POST /v1/tickets` at stepped offered rates, and through
//!   `POST /v1/tickets/batch`.
//! - `load`: dense and sparse 5v5 queues with parties, cancellations, three regions and a
//!   latency matrix: wait p50/p99 (from intended send time to the match), skill spread and team
//!   imbalance p99, share of matches within their window.
//! - `noisy`: a quiet tenant's wait p99 in alternating phases alone and while another tenant
//!   floods (the same quiet tickets in every phase), and the per-pair change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use gamecell_operator::matchmaker::config::{Config, Defaults};
use gamecell_operator::matchmaker::core::{Pool, QueueRules, TicketInput};
use gamecell_operator::matchmaker::engine::EngineOptions;
use gamecell_operator::matchmaker::service::{self, Service, ServiceOptions, unix_ms};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Load benchmark of the built-in matchmaker.
#[derive(Parser, Debug)]
#[command(name = "matchmaker-bench")]
struct Args {
    /// Scenarios to run: core, sim, api, load, noisy (comma-separated) or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    scenario: Vec<String>,
    /// Seconds of offered load per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds of arrivals in the `load` scenario (default: `--seconds`, at least 10).
    #[arg(long)]
    load_seconds: Option<f64>,
    /// Pairs of phases (alone, under flood) in the `noisy` scenario.
    #[arg(long, default_value_t = 4)]
    noisy_pairs: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---- random numbers ------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn exp(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// ---- the population ------------------------------------------------------------------------

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "us-west-2"];
/// Base round-trip latency (ms) from each home area to each region; jitter is added.
const LATENCY: [[f64; 3]; 4] = [
    [25.0, 95.0, 150.0],  // Europe
    [90.0, 20.0, 70.0],   // US East
    [150.0, 70.0, 20.0],  // US West
    [220.0, 180.0, 95.0], // Asia-Pacific (reaches us-west-2 only, when lucky)
];
const AREA_SHARE: [f64; 4] = [0.35, 0.3, 0.25, 0.1];

fn latencies(rng: &mut Rng) -> [u32; 3] {
    let mut pick = rng.uniform();
    let mut area = 0;
    for (i, share) in AREA_SHARE.iter().enumerate() {
        if pick < *share {
            area = i;
            break;
        }
        pick -= share;
    }
    let mut out = [0u32; 3];
    for (r, base) in LATENCY[area].iter().enumerate() {
        out[r] = (base + rng.uniform() * 30.0) as u32;
    }
    out
}

/// Party size: 70 % solo, 20 % duos, 7 % trios, 3 % five-stacks (max 5 for a 5v5).
fn party_size(rng: &mut Rng, max: u16) -> u16 {
    let u = rng.uniform();
    let size = if u < 0.7 {
        1
    } else if u < 0.9 {
        2
    } else if u < 0.97 {
        3
    } else {
        5
    };
    size.min(max)
}

fn ticket_json(
    rng: &mut Rng,
    tenant: &str,
    queue: &str,
    n: u64,
    parties: bool,
    skill_sd: f64,
) -> Value {
    let size = if parties { party_size(rng, 5) } else { 1 };
    // Players with no region within 100 ms are refused by the matchmaker; the load offers
    // only players who can play.
    let mut lat = latencies(rng);
    while lat.iter().all(|&l| l > 100) {
        lat = latencies(rng);
    }
    let base = rng.normal(1500.0, skill_sd);
    let players: Vec<Value> = (0..size)
        .map(|i| {
            json!({"id": format!("p{n}-{i}"), "skill": (base + rng.normal(0.0, 30.0)).round(),
                   "latencies": {REGIONS[0]: lat[0], REGIONS[1]: lat[1], REGIONS[2]: lat[2]}})
        })
        .collect();
    json!({"tenant": tenant, "queue": queue, "players": players})
}

fn queue_doc(name: &str, players: u16, teams: u16) -> Value {
    json!({"name": name, "playersPerMatch": players, "teams": teams,
           "skillWindow": {"initial": 50, "wideningPerSecond": 25, "maximum": 300},
           "maxLatencyMs": 100, "regions": REGIONS, "timeoutSeconds": 60, "backfill": true})
}

// ---- percentiles -----------------------------------------------------------------------------

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

// ---- core ------------------------------------------------------------------------------------

fn core_rules(players: u16, teams: u16) -> QueueRules {
    QueueRules {
        players_per_match: players,
        teams,
        window_initial: 50.0,
        window_widening_per_second: 25.0,
        window_maximum: 300.0,
        max_latency_ms: 100,
        regions: REGIONS.iter().map(|r| (*r).to_owned()).collect(),
        timeout_ms: 60_000,
        backfill: false,
    }
}

fn bench_core(seed: u64, seconds: f64) {
    println!("\n### Matching core, one thread, no HTTP\n");
    println!(
        "Tickets are inserted in batches of 5,000 (simulated arrival rate 100,000 tickets/s) and a round runs after each batch; the time counted is insert + rounds. Tickets are built before the clock starts.\n"
    );
    println!(
        "| queue | tickets | players/ticket | matched | searches/match | wall s | CPU s | tickets matched/wall s | **tickets matched/CPU s** | players matched/CPU s | spread p99 | team-mean gap p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, players, teams, parties) in [
        ("5v5 solo", 10u16, 2u16, false),
        ("5v5 with parties", 10, 2, true),
        ("1v1", 2, 2, false),
        ("16v16 solo", 32, 2, false),
    ] {
        let rules = core_rules(players, teams);
        let team = rules.team_size();
        let mut rng = Rng(seed);
        let n = 400_000usize;
        let tickets: Vec<TicketInput> = (0..n)
            .map(|i| {
                let size = if parties {
                    party_size(&mut rng, team)
                } else {
                    1
                };
                let base = rng.normal(1500.0, 300.0);
                TicketInput {
                    id: i as u64,
                    created_ms: (i / 100) as u64,
                    skills: (0..size).map(|_| base + rng.normal(0.0, 30.0)).collect(),
                    worst_latency_ms: latencies(&mut rng).to_vec(),
                }
            })
            .filter(|t| t.worst_latency_ms.iter().any(|&l| l <= 100))
            .collect();
        let count = tickets.len();
        let players_total: usize = tickets.iter().map(|t| t.skills.len()).sum();
        let mut pool = Pool::new(rules);
        let mut matched = 0usize;
        let mut matched_players = 0usize;
        let mut spreads = Vec::new();
        let mut gaps = Vec::new();
        let sizes: HashMap<u64, usize> = tickets.iter().map(|t| (t.id, t.skills.len())).collect();
        let started = Instant::now();
        let cpu_start = thread_cpu_seconds();
        let deadline = Duration::from_secs_f64(seconds);
        let mut inserted = 0usize;
        let mut searches = 0usize;
        let mut iter = tickets.into_iter();
        loop {
            let mut last = 0;
            for t in iter.by_ref().take(5000) {
                last = t.created_ms;
                let _ = pool.insert(t);
                inserted += 1;
            }
            let tick = pool.tick(last, usize::MAX);
            searches += tick.searches;
            for m in &tick.matches {
                matched += m.tickets.len();
                matched_players += m
                    .tickets
                    .iter()
                    .map(|p| sizes.get(&p.ticket).copied().unwrap_or(0))
                    .sum::<usize>();
                spreads.push(m.spread);
                gaps.push(m.imbalance);
            }
            if inserted >= count || started.elapsed() > deadline {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = match (cpu_start, thread_cpu_seconds()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => secs,
        };
        let spreads = sorted(spreads);
        let gaps = sorted(gaps);
        println!(
            "| {name} | {inserted} | {:.2} | {matched} | {:.2} | {secs:.2} | {cpu:.2} | {:.0} | **{:.0}** | {:.0} | {:.1} | {:.2} |",
            players_total as f64 / count as f64,
            searches as f64
                / (matched as f64 / f64::from(players) * players_total as f64 / count as f64)
                    .max(1.0),
            matched as f64 / secs,
            matched as f64 / cpu,
            matched_players as f64 / cpu,
            pct(&spreads, 99.0),
            pct(&gaps, 99.0),
        );
    }
}

/// CPU seconds this thread has used (Linux `/proc/thread-self/stat`, 100 Hz clock ticks), so the
/// core's rate is per thread even when other work shares the cores.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

// ---- simulated clock ---------------------------------------------------------------------------

/// One queue simulated with the matching core alone on a simulated clock: exact arrival times,
/// rounds every `round_ms`, no HTTP and no scheduling noise.
struct SimSpec {
    label: &'static str,
    rate: f64,
    parties: bool,
    window: (f64, f64, f64),
    round_ms: u64,
    /// Seconds of arrivals (then 12 s to drain).
    arrivals_s: f64,
}

#[derive(Default)]
struct SimResult {
    offered: usize,
    matched: usize,
    matches: usize,
    /// (wait s, |z| of the ticket's mean skill)
    waits: Vec<(f64, f64)>,
    spreads: Vec<f64>,
    gaps: Vec<f64>,
    /// Team-mean gaps of the matches formed after the last arrival (the drain).
    gaps_drain: Vec<f64>,
    within_window: usize,
    /// Waiting tickets seen at round ends, and how many of them were in a valid match
    /// (solo queues only; `None` for queues with parties).
    ticket_rounds: usize,
    stranded: Option<usize>,
    /// Matches with a team-mean gap above 2 rating points, by party sizes per team.
    unbalanced: HashMap<String, usize>,
}

#[derive(Clone, Copy)]
struct SimTicket {
    id: u64,
    size: usize,
    created_ms: u64,
    skill: f64,
    z: f64,
    mask: u32,
}

/// Marks in `out` the tickets of `waiting` (one region's waiting solo tickets, sorted by skill)
/// that belong to a valid match: `players` consecutive tickets whose spread fits the window of
/// one of them (the set's anchor; older members only widen it). Some valid match exists exactly
/// when some ticket is marked: any valid set spans a run of consecutive tickets holding its
/// anchor.
fn mark_valid(
    waiting: &[SimTicket],
    players: usize,
    rules: &QueueRules,
    now: u64,
    out: &mut [bool],
) {
    let n = waiting.len();
    if n < players {
        return;
    }
    for (i, anchor) in waiting.iter().enumerate() {
        let window = rules.window_at(now.saturating_sub(anchor.created_ms));
        for start in i.saturating_sub(players - 1)..=i.min(n - players) {
            if waiting[start + players - 1].skill - waiting[start].skill <= window {
                for flag in &mut out[start..start + players] {
                    *flag = true;
                }
            }
        }
    }
}

fn simulate(seed: u64, spec: &SimSpec, drain_s: f64) -> SimResult {
    let arrivals_s = spec.arrivals_s;
    let rules = QueueRules {
        window_initial: spec.window.0,
        window_widening_per_second: spec.window.1,
        window_maximum: spec.window.2,
        ..core_rules(10, 2)
    };
    let mut rng = Rng(seed);
    let mut events: Vec<(u64, TicketInput, Option<u64>)> = Vec::new();
    let mut tickets: HashMap<u64, SimTicket> = HashMap::new();
    for (n, at) in poisson(&mut rng, spec.rate, arrivals_s)
        .into_iter()
        .enumerate()
    {
        let size = if spec.parties {
            party_size(&mut rng, 5)
        } else {
            1
        };
        let mut lat = latencies(&mut rng);
        while lat.iter().all(|&l| l > 100) {
            lat = latencies(&mut rng);
        }
        let base = rng.normal(1500.0, 300.0);
        let skills: Vec<f64> = (0..size)
            .map(|_| (base + rng.normal(0.0, 30.0)).round())
            .collect();
        let cancel = (rng.below(100) < 5).then(|| (rng.uniform() * 5000.0) as u64);
        let created_ms = (at * 1000.0) as u64;
        let mean = skills.iter().sum::<f64>() / skills.len() as f64;
        let mask = lat
            .iter()
            .enumerate()
            .filter(|(_, l)| **l <= 100)
            .fold(0u32, |m, (r, _)| m | 1 << r);
        tickets.insert(
            n as u64,
            SimTicket {
                id: n as u64,
                size: skills.len(),
                created_ms,
                skill: skills[0],
                z: ((mean - 1500.0) / 300.0).abs(),
                mask,
            },
        );
        events.push((
            created_ms,
            TicketInput {
                id: n as u64,
                created_ms,
                skills,
                worst_latency_ms: lat.to_vec(),
            },
            cancel.map(|c| created_ms + c),
        ));
    }
    let mut result = SimResult {
        offered: events.len(),
        stranded: (!spec.parties).then_some(0),
        ..SimResult::default()
    };
    let mut cancels: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|(_, t, c)| c.map(|c| (c, t.id)))
        .collect();
    cancels.sort_unstable();
    let mut pool = Pool::new(rules.clone());
    let (mut next_event, mut next_cancel) = (0, 0);
    let end = ((arrivals_s + drain_s) * 1000.0) as u64;
    let mut now = 0;
    let mut flags = Vec::new();
    let mut by_region: Vec<Vec<SimTicket>> = vec![Vec::new(); REGIONS.len()];
    while now <= end {
        while next_event < events.len() && events[next_event].0 <= now {
            let _ = pool.insert(events[next_event].1.clone());
            next_event += 1;
        }
        while next_cancel < cancels.len() && cancels[next_cancel].0 <= now {
            pool.remove(cancels[next_cancel].1);
            next_cancel += 1;
        }
        let tick = pool.tick(now, usize::MAX);
        for m in &tick.matches {
            result.matches += 1;
            result.spreads.push(m.spread);
            if now as f64 > arrivals_s * 1000.0 {
                result.gaps_drain.push(m.imbalance);
            } else {
                result.gaps.push(m.imbalance);
            }
            if m.spread <= m.window {
                result.within_window += 1;
            }
            if m.imbalance > 2.0 {
                let mut teams: Vec<Vec<usize>> = vec![Vec::new(); 2];
                for p in &m.tickets {
                    teams[usize::from(p.team).min(1)].push(tickets[&p.ticket].size);
                }
                let mut parts: Vec<String> = teams
                    .iter_mut()
                    .map(|t| {
                        t.sort_unstable_by(|a, b| b.cmp(a));
                        t.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("+")
                    })
                    .collect();
                parts.sort();
                *result.unbalanced.entry(parts.join(" v ")).or_default() += 1;
            }
            for p in &m.tickets {
                let t = &tickets[&p.ticket];
                result.matched += 1;
                result
                    .waits
                    .push(((now - t.created_ms) as f64 / 1000.0, t.z));
            }
        }
        if let Some(stranded) = result.stranded.as_mut() {
            // Every waiting ticket that is part of a valid match right after the round.
            let waiting = pool.waiting();
            result.ticket_rounds += waiting.len();
            let mut in_valid: std::collections::HashSet<u64> = std::collections::HashSet::new();
            for (r, list) in by_region.iter_mut().enumerate() {
                list.clear();
                list.extend(
                    waiting
                        .iter()
                        .map(|id| tickets[id])
                        .filter(|t| t.mask & (1 << r) != 0),
                );
                list.sort_by(|a, b| a.skill.total_cmp(&b.skill));
                flags.clear();
                flags.resize(list.len(), false);
                mark_valid(list, 10, &rules, now, &mut flags);
                for (t, &f) in list.iter().zip(&flags) {
                    if f {
                        in_valid.insert(t.id);
                    }
                }
            }
            *stranded += in_valid.len();
        }
        now += spec.round_ms;
    }
    result
}

fn bench_sim(seed: u64) {
    println!("\n### Dense and sparse queues on a simulated clock (matching core only)\n");
    println!(
        "The `load` population (skill N(1500, 300), + N(0, 30) per party member, 3 regions with the latency matrix, 5 % cancelled 0-5 s after creation) fed to one `Pool` at exact Poisson arrival times, rounds every `round` ms of simulated time: `arrivals` s of arrivals (20 s, or the `load` scenario's 10 s), then 12 s to drain. No HTTP, no threads: the waits are the algorithm's and the population's alone. `valid match left` counts waiting tickets that, right after a round, were in some valid match (10 tickets of one region whose spread fits the window of the oldest of them; solo queues only): a positive count would be a ticket waiting while it could have played. Wait p99 is split by the ticket's distance from the mean skill (|z| = |mean skill - 1500| / 300). The team-mean gap p99 is over every match, then split into matches formed while tickets arrive and those formed in the drain after the last arrival (the tickets left when arrivals stop: parties that waited out their balance patience with nobody new to balance them).\n"
    );
    println!(
        "| queue | window (initial/widening/max) | round ms | tickets/s | arrivals s | offered | matched | wait p50 s | **wait p99 s** | p99 \\|z\\|<2 | p99 \\|z\\|≥2 | share \\|z\\|≥2 | spread p99 | **team-mean gap p99** | gap p99 while arriving | gap p99 drain (matches) | within window | valid match left / ticket-rounds |"
    );
    println!(
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let base = (50.0, 25.0, 300.0);
    let spec = |label, rate, parties, window, round_ms, arrivals_s| SimSpec {
        label,
        rate,
        parties,
        window,
        round_ms,
        arrivals_s,
    };
    let specs = [
        spec("dense-solo", 2000.0, false, base, 50, 20.0),
        spec("dense-solo", 2000.0, false, base, 10, 20.0),
        spec("dense-parties", 2000.0, true, base, 50, 20.0),
        // The `load` scenario's length: its arrivals last 10 s.
        spec("dense-parties", 2000.0, true, base, 50, 10.0),
        spec("sparse-solo", 50.0, false, base, 50, 20.0),
        spec("sparse-parties", 50.0, true, base, 50, 20.0),
        spec("dense-solo", 2000.0, false, (50.0, 50.0, 300.0), 50, 20.0),
        spec("dense-parties", 2000.0, true, (50.0, 50.0, 300.0), 50, 20.0),
        // Denser queues, same window: how the p99 falls with the population's density.
        spec("dense-solo", 5000.0, false, base, 50, 20.0),
        spec("dense-parties", 5000.0, true, base, 50, 20.0),
    ];
    let mut notes = Vec::new();
    for spec in &specs {
        let r = simulate(seed, spec, 12.0);
        let all = sorted(r.waits.iter().map(|w| w.0).collect());
        let inner = sorted(r.waits.iter().filter(|w| w.1 < 2.0).map(|w| w.0).collect());
        let outer = sorted(r.waits.iter().filter(|w| w.1 >= 2.0).map(|w| w.0).collect());
        println!(
            "| {} | {:.0}/{:.0}/{:.0} | {} | {:.0} | {:.0} | {} | {} | {:.3} | **{:.3}** | {:.3} | {:.3} | {:.1} % | {:.1} | **{:.2}** | {:.2} | {:.2} ({}) | {:.1} % | {} |",
            spec.label,
            spec.window.0,
            spec.window.1,
            spec.window.2,
            spec.round_ms,
            spec.rate,
            spec.arrivals_s,
            r.offered,
            r.matched,
            pct(&all, 50.0),
            pct(&all, 99.0),
            pct(&inner, 99.0),
            pct(&outer, 99.0),
            100.0 * outer.len() as f64 / all.len().max(1) as f64,
            pct(&sorted(r.spreads.clone()), 99.0),
            pct(
                &sorted([r.gaps.clone(), r.gaps_drain.clone()].concat()),
                99.0
            ),
            pct(&sorted(r.gaps.clone()), 99.0),
            pct(&sorted(r.gaps_drain.clone()), 99.0),
            r.gaps_drain.len(),
            100.0 * r.within_window as f64 / r.matches.max(1) as f64,
            r.stranded.map_or("n/a (parties)".to_owned(), |s| format!(
                "{s} / {}",
                r.ticket_rounds
            )),
        );
        let mut unbalanced: Vec<(&String, &usize)> = r.unbalanced.iter().collect();
        unbalanced.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        notes.push(format!(
            "{} {}/{}/{} round {} ms, {} s of arrivals: {} of {} matches with a gap above 2 ({} of them in the drain){}{}",
            spec.label,
            spec.window.0,
            spec.window.1,
            spec.window.2,
            spec.round_ms,
            spec.arrivals_s,
            r.unbalanced.values().sum::<usize>(),
            r.matches,
            r.gaps_drain.iter().filter(|g| **g > 2.0).count(),
            if unbalanced.is_empty() {
                ""
            } else {
                "; by team composition: "
            },
            unbalanced
                .iter()
                .take(6)
                .map(|(k, v)| format!("{k} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
}

// ---- HTTP client -----------------------------------------------------------------------------

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends a prepared request; returns the status and the body.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    let n = self.stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, self.buf[end + 4..end + 4 + length].to_vec()));
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<Value, BoxError> {
    let mut c = Conn::connect(addr).await?;
    let (_, body) = c.send(&request("GET", path, b"")).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// One offered request: when it is due (seconds after the start) and its bytes.
struct Offer {
    at: f64,
    request: Arc<Vec<u8>>,
    tag: usize,
    /// Cancel the ticket this many seconds after its creation.
    cancel_after: Option<f64>,
}

/// What happened to one request.
struct Outcome {
    tag: usize,
    intended_unix_ms: f64,
    latency: f64,
    status: u16,
    id: Option<String>,
}

/// Sends `offers` open-loop over `conns` keep-alive connections.
async fn open_loop(
    addr: SocketAddr,
    conns: usize,
    offers: Arc<Vec<Offer>>,
    keep_ids: bool,
    cancelled: Arc<AtomicUsize>,
) -> Result<(Vec<Outcome>, f64), BoxError> {
    let start = (
        tokio::time::Instant::now() + Duration::from_millis(50),
        unix_ms() as f64 + 50.0,
    );
    open_loop_from(addr, conns, offers, keep_ids, cancelled, start).await
}

/// As [`open_loop`], with offers due from `start` (an instant and the same time in Unix ms),
/// so several loads over their own connections share one schedule.
async fn open_loop_from(
    addr: SocketAddr,
    conns: usize,
    offers: Arc<Vec<Offer>>,
    keep_ids: bool,
    cancelled: Arc<AtomicUsize>,
    (start, start_unix): (tokio::time::Instant, f64),
) -> Result<(Vec<Outcome>, f64), BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let offers = offers.clone();
        let next = next.clone();
        let cancelled = cancelled.clone();
        let mut conn = Conn::connect(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(offer) = offers.get(i) else { break };
                let due = start + Duration::from_secs_f64(offer.at);
                tokio::time::sleep_until(due).await;
                let (status, body) = conn.send(&offer.request).await.unwrap_or_default();
                let latency = due.elapsed().as_secs_f64();
                let id = if keep_ids {
                    find(&body, b"\"id\":\"").and_then(|p| {
                        let rest = &body[p + 6..];
                        let end = rest.iter().position(|&b| b == b'"')?;
                        Some(String::from_utf8_lossy(&rest[..end]).to_string())
                    })
                } else {
                    None
                };
                if let (Some(after), Some(id)) = (offer.cancel_after, &id) {
                    let id = id.clone();
                    let cancelled = cancelled.clone();
                    let when = due + Duration::from_secs_f64(after);
                    tokio::spawn(async move {
                        tokio::time::sleep_until(when).await;
                        if let Ok(mut c) = Conn::connect(addr).await
                            && let Ok((200, body)) = c
                                .send(&request("DELETE", &format!("/v1/tickets/{id}"), b""))
                                .await
                            && find(&body, b"\"Cancelled\"").is_some()
                        {
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                out.push(Outcome {
                    tag: offer.tag,
                    intended_unix_ms: start_unix + offer.at * 1000.0,
                    latency,
                    status,
                    id,
                });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((all, elapsed))
}

fn poisson(rng: &mut Rng, rate: f64, seconds: f64) -> Vec<f64> {
    let mut t = 0.0;
    let mut out = Vec::new();
    loop {
        t += rng.exp(rate);
        if t >= seconds {
            return out;
        }
        out.push(t);
    }
}

/// A matchmaker serving `doc`, on its own 2-worker runtime.
struct Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    service: Option<Service>,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(doc: &Value, limit: usize) -> Result<Self, BoxError> {
        let dir = std::env::temp_dir().join(format!(
            "matchmaker-bench-{}-{}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("matchmaker.json");
        std::fs::write(&path, doc.to_string())?;
        Config::parse("bench", &doc.to_string(), &Defaults::default())?;
        let service = Service::start(ServiceOptions {
            config_paths: vec![path],
            defaults: Defaults::default(),
            engine: EngineOptions {
                default_tenant_limit: limit,
                retention_ms: 600_000,
                anchor_budget: 50_000,
            },
            tick: Duration::from_millis(50),
            reload: Duration::from_secs(1),
        })?;
        let engine = service.engine();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let served = engine;
        runtime.spawn(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = service::serve(listener, served, std::future::pending()).await;
            }
        });
        Ok(Self {
            addr,
            runtime: Some(runtime),
            service: Some(service),
            dir,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.service.take() {
            s.stop();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- api throughput --------------------------------------------------------------------------

async fn bench_api(seed: u64, seconds: f64) -> Result<(), BoxError> {
    println!("\n### Tickets/s through the HTTP API\n");
    println!(
        "Open loop, Poisson arrivals, 64 keep-alive connections; latency from the intended send time; a 5v5 queue (tickets are matched while the load runs). Server and load generator share the 2 cores.\n"
    );
    println!(
        "| endpoint | offered tickets/s | **achieved tickets/s** | ok | errors | latency p50 ms | p99 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let doc = json!({"tenant": "bench", "pool": "mm", "queues": [queue_doc("ranked", 10, 2)]});
    let mut rng = Rng(seed);
    let bodies: Vec<Arc<Vec<u8>>> = (0..8192)
        .map(|n| {
            let t = ticket_json(&mut rng, "bench", "ranked", n, false, 300.0);
            Arc::new(request("POST", "/v1/tickets", t.to_string().as_bytes()))
        })
        .collect();
    for rate in [10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0] {
        let server = Server::start(&doc, 10_000_000)?;
        let offers: Vec<Offer> = poisson(&mut rng, rate, seconds)
            .into_iter()
            .enumerate()
            .map(|(i, at)| Offer {
                at,
                request: bodies[i % bodies.len()].clone(),
                tag: 0,
                cancel_after: None,
            })
            .collect();
        let n = offers.len();
        let (out, elapsed) =
            open_loop(server.addr, 64, Arc::new(offers), false, Arc::default()).await?;
        report_api("POST /v1/tickets", rate, n, &out, elapsed);
        drop(server);
    }
    for (batch, batches_per_s) in [(100usize, 500.0), (100, 1000.0), (100, 1500.0)] {
        let server = Server::start(&doc, 10_000_000)?;
        let requests: Vec<Arc<Vec<u8>>> = (0..256)
            .map(|b| {
                let tickets: Vec<Value> = (0..batch)
                    .map(|i| {
                        ticket_json(
                            &mut rng,
                            "bench",
                            "ranked",
                            (b * batch + i) as u64,
                            false,
                            300.0,
                        )
                    })
                    .collect();
                Arc::new(request(
                    "POST",
                    "/v1/tickets/batch",
                    json!({"tickets": tickets}).to_string().as_bytes(),
                ))
            })
            .collect();
        let offers: Vec<Offer> = poisson(&mut rng, batches_per_s, seconds)
            .into_iter()
            .enumerate()
            .map(|(i, at)| Offer {
                at,
                request: requests[i % requests.len()].clone(),
                tag: 0,
                cancel_after: None,
            })
            .collect();
        let n = offers.len();
        let (out, elapsed) =
            open_loop(server.addr, 16, Arc::new(offers), false, Arc::default()).await?;
        report_batch(batch, batches_per_s, n, &out, elapsed);
        drop(server);
    }
    Ok(())
}

fn report_api(name: &str, rate: f64, offered: usize, out: &[Outcome], elapsed: f64) {
    let ok = out.iter().filter(|o| o.status == 201).count();
    let lat = sorted(out.iter().map(|o| o.latency * 1000.0).collect());
    println!(
        "| {name} | {rate:.0} | **{:.0}** | {ok} | {} | {:.2} | {:.2} | {:.1} |",
        ok as f64 / elapsed,
        offered - ok,
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}

fn report_batch(batch: usize, per_s: f64, offered: usize, out: &[Outcome], elapsed: f64) {
    let ok = out.iter().filter(|o| o.status == 200).count();
    let lat = sorted(out.iter().map(|o| o.latency * 1000.0).collect());
    println!(
        "| POST /v1/tickets/batch ({batch}/request) | {:.0} | **{:.0}** | {} | {} | {:.2} | {:.2} | {:.1} |",
        per_s * batch as f64,
        (ok * batch) as f64 / elapsed,
        ok * batch,
        (offered - ok) * batch,
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}

// ---- matchmaking under load ------------------------------------------------------------------

struct QueueLoad {
    tenant: &'static str,
    queue: &'static str,
    rate: f64,
    parties: bool,
    skill_sd: f64,
}

#[derive(Default)]
struct QueueResult {
    created: usize,
    rejected: usize,
    matched: usize,
    cancelled: usize,
    timed_out_or_waiting: usize,
    waits: Vec<f64>,
    spreads: Vec<f64>,
    /// Team-mean gaps of the matches formed while tickets arrived.
    gaps: Vec<f64>,
    /// Team-mean gaps of the matches formed after the last arrival (the drain).
    gaps_drain: Vec<f64>,
    /// Matches with a gap above 2, by party sizes per team (parties from the player ids).
    unbalanced: HashMap<String, usize>,
    matches: usize,
    within_window: usize,
}

/// Runs `loads` open-loop for `seconds` (5 % of tickets cancelled 0-5 s after creation), then
/// lets the matchmaker finish for `grace` seconds, then reads every match from the feed.
async fn run_load(
    seed: u64,
    seconds: f64,
    grace: f64,
    loads: &[QueueLoad],
    limits: Value,
) -> Result<Vec<QueueResult>, BoxError> {
    let mut pools: HashMap<&str, Vec<Value>> = HashMap::new();
    for l in loads {
        pools
            .entry(l.tenant)
            .or_default()
            .push(queue_doc(l.queue, 10, 2));
    }
    let doc = json!({"pools": pools.iter().map(|(t, q)| json!({"tenant": t, "pool": "mm", "queues": q})).collect::<Vec<_>>(),
                     "tenantLimits": limits});
    let server = Server::start(&doc, 100_000)?;
    let mut rng = Rng(seed);
    let mut offers = Vec::new();
    for (tag, l) in loads.iter().enumerate() {
        for (n, at) in poisson(&mut rng, l.rate, seconds).into_iter().enumerate() {
            let t = ticket_json(&mut rng, l.tenant, l.queue, n as u64, l.parties, l.skill_sd);
            let cancel_after = (rng.below(100) < 5).then(|| rng.uniform() * 5.0);
            offers.push(Offer {
                at,
                request: Arc::new(request("POST", "/v1/tickets", t.to_string().as_bytes())),
                tag,
                cancel_after,
            });
        }
    }
    offers.sort_by(|a, b| a.at.total_cmp(&b.at));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (out, _) = open_loop(server.addr, 64, Arc::new(offers), true, cancelled.clone()).await?;
    let mut results: Vec<QueueResult> = loads.iter().map(|_| QueueResult::default()).collect();
    let mut intended: HashMap<String, (usize, f64)> = HashMap::new();
    for o in &out {
        let r = &mut results[o.tag];
        match (o.status, &o.id) {
            (201, Some(id)) => {
                r.created += 1;
                intended.insert(id.clone(), (o.tag, o.intended_unix_ms));
            }
            _ => r.rejected += 1,
        }
    }
    let arrivals_end = out.iter().map(|o| o.intended_unix_ms).fold(0.0, f64::max);
    tokio::time::sleep(Duration::from_secs_f64(grace)).await;
    let mut matched_ids = std::collections::HashSet::new();
    for (tag, l) in loads.iter().enumerate() {
        let mut after = 0u64;
        loop {
            let page = get_json(
                server.addr,
                &format!(
                    "/v1/matches?tenant={}&queue={}&after={after}&limit=1000",
                    l.tenant, l.queue
                ),
            )
            .await?;
            let matches = page["matches"].as_array().cloned().unwrap_or_default();
            if matches.is_empty() {
                break;
            }
            after = page["next"].as_u64().unwrap_or(u64::MAX);
            let r = &mut results[tag];
            for m in matches {
                let created = m["createdAtMs"].as_f64().unwrap_or(0.0);
                let spread = m["skillSpread"].as_f64().unwrap_or(f64::NAN);
                r.matches += 1;
                if spread <= m["window"].as_f64().unwrap_or(0.0) {
                    r.within_window += 1;
                }
                r.spreads.push(spread);
                let gap = m["teamImbalance"].as_f64().unwrap_or(f64::NAN);
                if created > arrivals_end {
                    r.gaps_drain.push(gap);
                } else {
                    r.gaps.push(gap);
                }
                if gap > 2.0 {
                    *r.unbalanced.entry(composition(&m)).or_default() += 1;
                }
                for team in m["teams"].as_array().cloned().unwrap_or_default() {
                    for t in team["tickets"].as_array().cloned().unwrap_or_default() {
                        let Some(id) = t.as_str() else { continue };
                        if let Some((_, sent)) = intended.get(id) {
                            r.waits.push((created - sent).max(0.0) / 1000.0);
                            r.matched += 1;
                            matched_ids.insert(id.to_owned());
                        }
                    }
                }
            }
        }
    }
    let total_cancelled = cancelled.load(Ordering::Relaxed);
    for (tag, r) in results.iter_mut().enumerate() {
        let unmatched = intended
            .iter()
            .filter(|(id, (t, _))| *t == tag && !matched_ids.contains(*id))
            .count();
        r.timed_out_or_waiting = unmatched;
    }
    if let Some(first) = results.first_mut() {
        first.cancelled = total_cancelled;
    }
    drop(server);
    Ok(results)
}

/// A match's teams as party sizes, e.g. `3+2 v 5` (players of one ticket are `p{n}-{i}`).
fn composition(m: &Value) -> String {
    let mut parts: Vec<String> = m["teams"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|team| {
            let mut sizes: HashMap<&str, usize> = HashMap::new();
            for p in team["players"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let id = p.as_str().unwrap_or_default();
                *sizes
                    .entry(id.rsplit_once('-').map_or(id, |x| x.0))
                    .or_default() += 1;
            }
            let mut sizes: Vec<usize> = sizes.into_values().collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    parts.sort();
    parts.join(" v ")
}

fn print_queue(label: &str, rate: f64, r: &QueueResult) {
    let waits = sorted(r.waits.clone());
    let spreads = sorted(r.spreads.clone());
    let all_gaps = sorted([r.gaps.clone(), r.gaps_drain.clone()].concat());
    println!(
        "| {label} | {rate:.0} | {} | {} | {} | {} | {:.3} | **{:.3}** | {:.1} | **{:.2}** | {:.2} | {:.2} ({}) | {:.1} % |",
        r.created,
        r.matched,
        r.matches,
        r.timed_out_or_waiting,
        pct(&waits, 50.0),
        pct(&waits, 99.0),
        pct(&spreads, 99.0),
        pct(&all_gaps, 99.0),
        pct(&sorted(r.gaps.clone()), 99.0),
        pct(&sorted(r.gaps_drain.clone()), 99.0),
        r.gaps_drain.len(),
        if r.matches == 0 {
            f64::NAN
        } else {
            100.0 * r.within_window as f64 / r.matches as f64
        },
    );
}

async fn bench_load(seed: u64, seconds: f64, load_seconds: Option<f64>) -> Result<(), BoxError> {
    // Sparse queues need longer than the other scenarios to say anything.
    let arrivals = load_seconds.unwrap_or(seconds.max(10.0));
    println!("\n### Dense and sparse queues under open-loop load\n");
    println!(
        "5v5 queues (window 50 widening 25/s to 300: 10 s to the maximum; max latency 100 ms; 3 regions). Tickets: skill N(1500, 300) (+ N(0, 30) per party member); in the `-parties` queues 70 % solo, 20 % duos, 7 % trios, 3 % five-stacks (the `-solo` queues: solo only); home areas Europe 35 %, US East 30 %, US West 25 %, Asia-Pacific 10 % with a latency matrix plus 0-30 ms jitter; 5 % cancelled 0-5 s after creation. Arrivals for {arrivals} s, then 12 s for the queues to drain; wait = match formation − intended send time; unmatched = still waiting or cancelled at the end. The team-mean gap p99 is over every match, then split into matches formed while tickets arrive and those formed in the drain after the last arrival.\n"
    );
    println!(
        "| queue | tickets/s | created | matched | matches | unmatched | wait p50 s | **wait p99 s** | spread p99 | **team-mean gap p99** | gap p99 while arriving | gap p99 drain (matches) | within window |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let load = |queue, rate, parties| QueueLoad {
        tenant: "alpha",
        queue,
        rate,
        parties,
        skill_sd: 300.0,
    };
    let loads = [
        load("dense-solo", 2000.0, false),
        load("dense-parties", 2000.0, true),
        load("sparse-solo", 50.0, false),
        load("sparse-parties", 50.0, true),
    ];
    let r = run_load(seed, arrivals, 12.0, &loads, json!({})).await?;
    for (l, res) in loads.iter().zip(&r) {
        print_queue(l.queue, l.rate, res);
    }
    println!();
    for (l, res) in loads.iter().zip(&r) {
        let mut unbalanced: Vec<(&String, &usize)> = res.unbalanced.iter().collect();
        unbalanced.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        println!(
            "- {}: {} of {} matches with a gap above 2 ({} of them in the drain){}{}",
            l.queue,
            res.unbalanced.values().sum::<usize>(),
            res.matches,
            res.gaps_drain.iter().filter(|g| **g > 2.0).count(),
            if unbalanced.is_empty() {
                ""
            } else {
                "; by team composition: "
            },
            unbalanced
                .iter()
                .take(6)
                .map(|(k, v)| format!("{k} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "\nCancelled during the run: {} tickets.",
        r.first().map_or(0, |x| x.cancelled)
    );
    Ok(())
}

/// The waits (s, from the intended send time to the match) of the tickets in `intended` (id:
/// tag and intended send time) that `tenant`'s `queue` matched, by tag, read from its feed.
async fn feed_waits(
    addr: SocketAddr,
    tenant: &str,
    queue: &str,
    intended: &HashMap<String, (usize, f64)>,
) -> Result<HashMap<usize, Vec<f64>>, BoxError> {
    let mut waits: HashMap<usize, Vec<f64>> = HashMap::new();
    let mut after = 0u64;
    loop {
        let page = get_json(
            addr,
            &format!("/v1/matches?tenant={tenant}&queue={queue}&after={after}&limit=1000"),
        )
        .await?;
        let matches = page["matches"].as_array().cloned().unwrap_or_default();
        if matches.is_empty() {
            return Ok(waits);
        }
        after = page["next"].as_u64().unwrap_or(u64::MAX);
        for m in matches {
            let created = m["createdAtMs"].as_f64().unwrap_or(0.0);
            for team in m["teams"].as_array().map(Vec::as_slice).unwrap_or_default() {
                for t in team["tickets"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if let Some((tag, sent)) = t.as_str().and_then(|id| intended.get(id)) {
                        waits
                            .entry(*tag)
                            .or_default()
                            .push((created - sent).max(0.0) / 1000.0);
                    }
                }
            }
        }
    }
}

fn median(v: &[f64]) -> f64 {
    pct(&sorted(v.to_vec()), 50.0)
}

async fn bench_noisy(seed: u64, seconds: f64, pairs: usize) -> Result<(), BoxError> {
    const QUIET_RATE: f64 = 2000.0;
    const FLOOD_RATE: f64 = 20_000.0;
    const FLOOD_LIMIT: usize = 5000;
    // Quiet tickets sent in [COUNT_FROM, phase - COUNT_STOP_BEFORE) of a phase are counted:
    // the queue is in its steady state by then, and nearly all of them are matched before the
    // phase ends.
    const COUNT_FROM: f64 = 1.0;
    const COUNT_STOP_BEFORE: f64 = 3.0;
    let phase_len = (seconds + COUNT_FROM + COUNT_STOP_BEFORE).max(6.0);
    let count_to = phase_len - COUNT_STOP_BEFORE;
    // The flood stops 1.5 s before its phase ends; its tickets time out after 1 s, so the next
    // phase starts with no flood backlog.
    let flood_len = phase_len - 1.5;
    // Pairs in ABBA order (alone, flood | flood, alone | ...), so a drift of the machine's
    // load over the run weighs on both conditions alike.
    let phases: Vec<bool> = (0..pairs)
        .flat_map(|p| {
            if p % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            }
        })
        .collect();
    println!("\n### Noisy neighbour\n");
    println!(
        "One matchmaker serves tenants `quiet` and `noisy` (`noisy` first in the configuration). The run alternates {n} phases of {phase_len} s, alone and under flood, in ABBA order ({pairs} pairs). `quiet` offers {QUIET_RATE} tickets/s to one 5v5 queue throughout, and every phase's arrivals are the same (same seed: identical tickets and arrival times); the tickets sent from {COUNT_FROM} s to {count_to} s into a phase are counted (the queue is in its steady state, and they are matched before the phase ends). In flood phases `noisy` offers {FLOOD_RATE} tickets/s for {flood_len} s to its own queue, skills N(1500, 30000) so few match: its open tickets pile up to its limit ({FLOOD_LIMIT}) and the rest are refused (429); its queue times out tickets after 1 s, so no backlog outlives its phase. Each tenant has its own keep-alive connections (quiet 8, noisy 56), as separate clients would. Wait = match formation − intended send time; create p99 = latency of the quiet tenant's `POST /v1/tickets` from its intended send time.\n",
        n = phases.len()
    );
    let mut flood_queue = queue_doc("flood", 10, 2);
    flood_queue["timeoutSeconds"] = json!(1);
    let doc = json!({"pools": [
        {"tenant": "noisy", "pool": "mm", "queues": [flood_queue]},
        {"tenant": "quiet", "pool": "mm", "queues": [queue_doc("ranked", 10, 2)]}],
        "tenantLimits": {"noisy": FLOOD_LIMIT}});
    let server = Server::start(&doc, 100_000)?;
    let mut quiet = Vec::new();
    for k in 0..phases.len() {
        let mut rng = Rng(seed);
        let offset = k as f64 * phase_len;
        for (n, at) in poisson(&mut rng, QUIET_RATE, phase_len)
            .into_iter()
            .enumerate()
        {
            let t = ticket_json(&mut rng, "quiet", "ranked", n as u64, false, 300.0);
            quiet.push(Offer {
                at: offset + at,
                request: Arc::new(request("POST", "/v1/tickets", t.to_string().as_bytes())),
                tag: if (COUNT_FROM..count_to).contains(&at) {
                    k
                } else {
                    usize::MAX
                },
                cancel_after: None,
            });
        }
    }
    let mut rng = Rng(seed ^ 0x5EED);
    let bodies: Vec<Arc<Vec<u8>>> = (0..8192)
        .map(|n| {
            let t = ticket_json(&mut rng, "noisy", "flood", n, false, 30_000.0);
            Arc::new(request("POST", "/v1/tickets", t.to_string().as_bytes()))
        })
        .collect();
    let mut flood = Vec::new();
    for (k, _) in phases.iter().enumerate().filter(|(_, f)| **f) {
        let offset = k as f64 * phase_len;
        for at in poisson(&mut rng, FLOOD_RATE, flood_len) {
            flood.push(Offer {
                at: offset + at,
                request: bodies[flood.len() % bodies.len()].clone(),
                tag: k,
                cancel_after: None,
            });
        }
    }
    let start = (
        tokio::time::Instant::now() + Duration::from_millis(100),
        unix_ms() as f64 + 100.0,
    );
    let (quiet_out, flood_out) = tokio::join!(
        open_loop_from(server.addr, 8, Arc::new(quiet), true, Arc::default(), start),
        open_loop_from(
            server.addr,
            56,
            Arc::new(flood),
            false,
            Arc::default(),
            start
        ),
    );
    let (quiet_out, flood_out) = (quiet_out?.0, flood_out?.0);
    tokio::time::sleep(Duration::from_secs_f64(1.0)).await;
    let intended: HashMap<String, (usize, f64)> = quiet_out
        .iter()
        .filter(|o| o.status == 201 && o.tag != usize::MAX)
        .filter_map(|o| Some((o.id.clone()?, (o.tag, o.intended_unix_ms))))
        .collect();
    let mut waits = feed_waits(server.addr, "quiet", "ranked", &intended).await?;
    println!(
        "| phase | flood | quiet counted | matched | create p99 ms | wait p50 s | **wait p99 s** | noisy created | noisy refused |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut p99s = Vec::new();
    for (k, &flooded) in phases.iter().enumerate() {
        let counted = intended.values().filter(|(t, _)| *t == k).count();
        let w = sorted(waits.remove(&k).unwrap_or_default());
        let create = sorted(
            quiet_out
                .iter()
                .filter(|o| o.tag == k)
                .map(|o| o.latency * 1000.0)
                .collect(),
        );
        let noisy: Vec<&Outcome> = flood_out.iter().filter(|o| o.tag == k).collect();
        let p99 = pct(&w, 99.0);
        p99s.push(p99);
        println!(
            "| {k} | {} | {counted} | {} | {:.2} | {:.3} | **{:.3}** | {} | {} |",
            if flooded { "yes" } else { "no" },
            w.len(),
            pct(&create, 99.0),
            pct(&w, 50.0),
            p99,
            noisy.iter().filter(|o| o.status == 201).count(),
            noisy.iter().filter(|o| o.status == 429).count(),
        );
    }
    let mut ratios = Vec::new();
    for pair in 0..pairs {
        let (a, b) = (2 * pair, 2 * pair + 1);
        let (alone, flooded) = if phases[a] { (b, a) } else { (a, b) };
        ratios.push(p99s[flooded] / p99s[alone] - 1.0);
    }
    let alone: Vec<f64> = phases
        .iter()
        .zip(&p99s)
        .filter(|(f, _)| !**f)
        .map(|(_, p)| *p)
        .collect();
    let alone_median = median(&alone);
    let noise: Vec<f64> = alone.iter().map(|p| p / alone_median - 1.0).collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{:+.1} %", 100.0 * r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\nQuiet tenant's wait p99 under flood against the same pair's alone phase: {} (median **{:+.1} %**, from {:+.1} % to {:+.1} %). Alone phases against their median (the noise floor): {}.",
        fmt(&ratios),
        100.0 * median(&ratios),
        100.0 * ratios.iter().copied().fold(f64::INFINITY, f64::min),
        100.0 * ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        fmt(&noise),
    );
    drop(server);
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let all = args.scenario.iter().any(|s| s == "all");
    let wants = |s: &str| all || args.scenario.iter().any(|x| x == s);
    println!(
        "matchmaker-bench {} ({} cores visible)",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    if wants("core") {
        bench_core(args.seed, args.seconds);
    }
    if wants("sim") {
        bench_sim(args.seed);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if wants("api") {
        runtime.block_on(bench_api(args.seed, args.seconds))?;
    }
    if wants("load") {
        runtime.block_on(bench_load(args.seed, args.seconds, args.load_seconds))?;
    }
    if wants("noisy") {
        runtime.block_on(bench_noisy(args.seed, args.seconds, args.noisy_pairs))?;
    }
    Ok(())
}
