//! Tests of the engine: tenants and queues kept apart, limits, idempotency, cancel, backfill,
//! reload and retention.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::matchmaker::config::Defaults;

fn config(doc: serde_json::Value) -> Config {
    Config::parse("test", &doc.to_string(), &Defaults::default()).expect("config")
}

fn queue(name: &str, players: u16, teams: u16) -> serde_json::Value {
    json!({"name": name, "playersPerMatch": players, "teams": teams,
           "skillWindow": {"initial": 100, "wideningPerSecond": 100, "maximum": 1000},
           "regions": ["eu", "us"], "maxLatencyMs": 100, "timeoutSeconds": 30, "backfill": true})
}

fn two_tenants() -> Config {
    config(json!({"pools": [
        {"tenant": "alpha", "pool": "p", "queues": [queue("duel", 2, 2), queue("squad", 4, 2)]},
        {"tenant": "beta", "pool": "p", "queues": [queue("duel", 2, 2), queue("squad", 4, 2)]}
    ], "tenantLimits": {"beta": 3}}))
}

fn engine(c: &Config) -> Engine {
    let opts = EngineOptions {
        retention_ms: 1 << 40,
        ..EngineOptions::default()
    };
    let e = Engine::new(opts, Arc::new(Metrics::new()));
    e.apply_config(c, 0);
    e
}

fn ticket(tenant: &str, queue: &str, player: &str, skill: f64) -> NewTicket {
    NewTicket {
        tenant: Some(tenant.to_owned()),
        pool: None,
        queue: queue.to_owned(),
        client_key: None,
        players: vec![NewPlayer {
            id: player.to_owned(),
            skill,
            latencies: BTreeMap::from([("eu".to_owned(), 20), ("us".to_owned(), 90)]),
        }],
        attributes: None,
    }
}

#[test]
fn a_duel_is_matched_and_readable() {
    let e = engine(&two_tenants());
    let (a, created) = e
        .create_ticket(ticket("alpha", "duel", "p1", 1000.0), 1)
        .expect("a");
    assert!(created);
    assert_eq!(a.state, TicketState::Pending);
    let (b, _) = e
        .create_ticket(ticket("alpha", "duel", "p2", 1050.0), 2)
        .expect("b");
    let summary = e.tick(10);
    assert_eq!((summary.matches, summary.matched), (1, 2));
    let a = e.ticket(&a.id).expect("read");
    assert_eq!(a.state, TicketState::Matched);
    let assignment = a.assignment.expect("assigned");
    assert_eq!(assignment.region.as_deref(), Some("eu"));
    let m = e.get_match(&assignment.match_id).expect("match");
    assert_eq!(m.teams.len(), 2);
    assert_eq!(m.skill_spread, 50.0);
    let everyone: Vec<String> = m.teams.iter().flat_map(|t| t.tickets.clone()).collect();
    assert!(everyone.contains(&b.id));
    let (feed, next, _) = e
        .matches_after(Some("alpha"), None, "duel", 0, 10)
        .expect("feed");
    assert_eq!(feed.len(), 1);
    assert_eq!(next, feed[0].cursor);
    assert!(
        e.matches_after(Some("alpha"), None, "duel", next, 10)
            .expect("feed")
            .0
            .is_empty()
    );
    assert_eq!(e.open_tickets("alpha"), 0);
}

#[test]
fn tenants_and_queues_never_share_a_match() {
    let e = engine(&two_tenants());
    e.create_ticket(ticket("alpha", "duel", "a", 1000.0), 0)
        .expect("a");
    e.create_ticket(ticket("beta", "duel", "b", 1000.0), 0)
        .expect("b");
    e.create_ticket(ticket("alpha", "squad", "c", 1000.0), 0)
        .expect("c");
    assert_eq!(e.tick(10).matches, 0);
}

#[test]
fn a_tenant_over_its_limit_is_refused_and_others_are_not() {
    let e = engine(&two_tenants());
    let mut ids = Vec::new();
    for i in 0..3 {
        let (v, _) = e
            .create_ticket(ticket("beta", "squad", &format!("b{i}"), 1000.0), 0)
            .expect("under the limit");
        ids.push(v.id);
    }
    let err = e
        .create_ticket(ticket("beta", "squad", "b3", 1000.0), 0)
        .expect_err("over");
    assert_eq!(err.code(), "TenantLimitExceeded");
    assert!(err.to_string().contains("limit"), "{err}");
    e.create_ticket(ticket("alpha", "squad", "a0", 1000.0), 0)
        .expect("alpha is not limited by beta");
    let queues = e.queues(Some("beta"));
    assert_eq!(queues.iter().map(|q| q.pending).sum::<usize>(), 3);
    // A cancellation frees a place.
    e.cancel_ticket(&ids[0], 1).expect("cancel");
    e.create_ticket(ticket("beta", "squad", "b3", 1000.0), 2)
        .expect("room again");
    let text = e.metrics().encode();
    assert!(
        text.contains(
            "matchmaker_tickets_rejected_total{tenant=\"beta\",reason=\"TenantLimitExceeded\"} 1"
        ),
        "{text}"
    );
}

/// A round serves the cheapest queues first: a tenant's backlog of unmatchable tickets (a
/// flood) is searched after another tenant's queue, even when the flooding tenant's queue comes
/// first in the configuration. Each queue's turn reads the clock, so the order shows in the
/// time its match carries.
#[test]
fn a_flooded_queue_is_served_after_the_other_tenants_queues() {
    let e = engine(&config(json!({"pools": [
        {"tenant": "noisy", "pool": "p", "queues": [queue("duel", 2, 2)]},
        {"tenant": "quiet", "pool": "p", "queues": [queue("duel", 2, 2)]}
    ]})));
    // Skills 5,000 apart never fit a window of at most 1,000.
    for i in 0..100u32 {
        e.create_ticket(
            ticket("noisy", "duel", &format!("n{i}"), f64::from(i) * 5000.0),
            1,
        )
        .expect("noisy ticket");
    }
    let mut clock = 100;
    let first = e.tick_with(|| {
        clock += 1;
        clock
    });
    assert_eq!((first.matches, first.searches), (0, 100));
    let (q1, _) = e
        .create_ticket(ticket("quiet", "duel", "q1", 1000.0), 200)
        .expect("q1");
    e.create_ticket(ticket("quiet", "duel", "q2", 1010.0), 200)
        .expect("q2");
    let mut clock = 1000;
    let round = e.tick_with(|| {
        clock += 1;
        clock
    });
    assert_eq!(round.matches, 1);
    assert_eq!(
        round.searches, 101,
        "the flood is still searched every round"
    );
    let view = e.ticket(&q1.id).expect("q1");
    let match_id = view.assignment.expect("q1 matched").match_id;
    let m = e.get_match(&match_id).expect("match");
    assert_eq!(
        m.created_at_ms, 1001,
        "the quiet tenant's queue had the round's first turn"
    );
    // The order follows the cost: once the flood is gone, configuration order again.
    for i in 0..100u32 {
        e.cancel_ticket(&format!("t-0-{:x}", i + 1), 1002)
            .expect("cancel");
    }
    e.tick(1003);
    e.create_ticket(ticket("quiet", "duel", "q3", 1000.0), 1004)
        .expect("q3");
    let (q4, _) = e
        .create_ticket(ticket("quiet", "duel", "q4", 1010.0), 1004)
        .expect("q4");
    let mut clock = 2000;
    e.tick_with(|| {
        clock += 1;
        clock
    });
    let view = e.ticket(&q4.id).expect("q4");
    let m = e
        .get_match(&view.assignment.expect("q4 matched").match_id)
        .expect("match");
    assert_eq!(m.created_at_ms, 2002, "noisy's empty queue came first");
}

#[test]
fn client_keys_make_creation_idempotent() {
    let e = engine(&two_tenants());
    let mut t = ticket("alpha", "duel", "p1", 1000.0);
    t.client_key = Some("k1".to_owned());
    let (first, created) = e.create_ticket(t.clone(), 0).expect("first");
    assert!(created);
    let (again, created) = e.create_ticket(t.clone(), 5).expect("again");
    assert!(!created);
    assert_eq!(first.id, again.id);
    assert_eq!(e.open_tickets("alpha"), 1);
    t.queue = "squad".to_owned();
    assert_eq!(
        e.create_ticket(t.clone(), 5)
            .expect_err("other queue")
            .code(),
        "KeyConflict"
    );
    // The same key in another tenant is another ticket.
    t.tenant = Some("beta".to_owned());
    t.queue = "duel".to_owned();
    let (other, created) = e.create_ticket(t, 5).expect("beta");
    assert!(created);
    assert_ne!(other.id, first.id);
}

#[test]
fn cancel_timeout_and_retention() {
    let opts = EngineOptions {
        retention_ms: 1000,
        ..EngineOptions::default()
    };
    let e = Engine::new(opts, Arc::new(Metrics::new()));
    e.apply_config(&two_tenants(), 0);
    let (a, _) = e
        .create_ticket(ticket("alpha", "squad", "a", 1000.0), 0)
        .expect("a");
    let (b, _) = e
        .create_ticket(ticket("alpha", "squad", "b", 1000.0), 0)
        .expect("b");
    let cancelled = e.cancel_ticket(&a.id, 10).expect("cancel");
    assert_eq!(
        (cancelled.state, cancelled.reason),
        (TicketState::Cancelled, Some("Cancelled"))
    );
    assert_eq!(
        e.cancel_ticket(&a.id, 11).expect("again").state,
        TicketState::Cancelled
    );
    e.tick(30_000);
    let b = e.ticket(&b.id).expect("b");
    assert_eq!(
        (b.state, b.reason),
        (TicketState::TimedOut, Some("Timeout"))
    );
    assert_eq!(e.open_tickets("alpha"), 0);
    e.tick(31_001);
    assert_eq!(e.ticket(&b.id).expect_err("expired").code(), "NotFound");
    assert_eq!(e.ticket("nonsense").expect_err("bad").code(), "NotFound");
}

#[test]
fn invalid_tickets_are_refused_with_the_reason() {
    let e = engine(&two_tenants());
    let mut t = ticket("alpha", "duel", "p", 1000.0);
    t.players[0].latencies.clear();
    let err = e.create_ticket(t, 0).expect_err("no latency");
    assert!(err.to_string().contains("100 ms"), "{err}");
    let mut t = ticket("alpha", "duel", "p", f64::NAN);
    t.players[0].skill = f64::NAN;
    assert_eq!(
        e.create_ticket(t, 0).expect_err("nan").code(),
        "InvalidTicket"
    );
    let mut t = ticket("alpha", "duel", "p", 1.0);
    t.players.push(t.players[0].clone());
    assert!(
        e.create_ticket(t, 0)
            .expect_err("twice")
            .to_string()
            .contains("twice")
    );
    let mut t = ticket("alpha", "duel", "p", 1.0);
    t.players.push(NewPlayer {
        id: "q".to_owned(),
        ..t.players[0].clone()
    });
    assert!(
        e.create_ticket(t, 0)
            .expect_err("party too large")
            .to_string()
            .contains("1 to 1 players")
    );
    assert_eq!(
        e.create_ticket(ticket("gamma", "duel", "p", 1.0), 0)
            .expect_err("unknown")
            .code(),
        "UnknownQueue"
    );
    let mut t = ticket("alpha", "duel", "p", 1.0);
    t.tenant = None;
    assert_eq!(
        e.create_ticket(t, 0).expect_err("which tenant").code(),
        "TenantRequired"
    );
}

#[test]
fn backfill_replaces_lost_players() {
    let e = engine(&two_tenants());
    let mut ids = Vec::new();
    for (i, skill) in [1000.0, 1010.0, 1020.0, 1030.0].iter().enumerate() {
        ids.push(
            e.create_ticket(ticket("alpha", "squad", &format!("p{i}"), *skill), 0)
                .expect("t")
                .0
                .id,
        );
    }
    e.tick(1);
    let m = e.ticket(&ids[0]).expect("t").assignment.expect("matched");
    let lost_team = m.team;
    let refused = e
        .request_backfill(&m.match_id, &["nobody".to_owned()], 2)
        .expect_err("unknown player");
    assert_eq!(refused.code(), "InvalidBackfill");
    let bf = e
        .request_backfill(&m.match_id, &["p0".to_owned()], 2)
        .expect("backfill");
    assert_eq!(bf.state, BackfillState::Pending);
    assert_eq!(bf.open_slots.iter().sum::<u16>(), 1);
    assert_eq!(bf.open_slots[usize::from(lost_team)], 1);
    let (newcomer, _) = e
        .create_ticket(ticket("alpha", "squad", "new", 1015.0), 3)
        .expect("new");
    e.tick(4);
    let bf = e.get_backfill(&bf.id).expect("bf");
    assert_eq!(bf.state, BackfillState::Filled);
    assert_eq!(bf.tickets[0].ticket_id, newcomer.id);
    let newcomer = e.ticket(&newcomer.id).expect("t");
    let a = newcomer.assignment.expect("assigned");
    assert!(a.backfill);
    assert_eq!(a.match_id, m.match_id);
    assert_eq!(a.team, lost_team);
    let view = e.get_match(&m.match_id).expect("match");
    assert_eq!(view.lost_players, ["p0"]);
    assert!(view.teams.iter().all(|t| t.players.len() == 2), "{view:?}");
}

#[test]
fn reload_adds_changes_and_removes_queues() {
    let e = engine(&config(
        json!({"tenant": "solo", "pool": "p", "queues": [queue("a", 2, 2)]}),
    ));
    let (t, _) = e
        .create_ticket(ticket("solo", "a", "x", 1.0), 0)
        .expect("a");
    assert_eq!(
        e.create_ticket(ticket("solo", "b", "y", 1.0), 0)
            .expect_err("no b")
            .code(),
        "UnknownQueue"
    );
    let summary = e.apply_config(
        &config(json!({"tenant": "solo", "pool": "p", "queues": [queue("b", 2, 2)]})),
        5,
    );
    assert_eq!(summary.added, ["solo/p/b"]);
    assert_eq!(summary.removed, ["solo/p/a"]);
    e.create_ticket(ticket("solo", "b", "y", 1.0), 6)
        .expect("b now");
    let t = e.ticket(&t.id).expect("still readable");
    assert_eq!(
        (t.state, t.reason),
        (TicketState::Removed, Some("QueueRemoved"))
    );
    assert_eq!(e.open_tickets("solo"), 1);
    // Tighter latency: the waiting ticket (90 ms to us, 20 to eu) no longer fits "us" only.
    let mut q = queue("b", 2, 2);
    q["regions"] = json!(["us"]);
    q["maxLatencyMs"] = json!(50);
    let summary = e.apply_config(
        &config(json!({"tenant": "solo", "pool": "p", "queues": [q]})),
        7,
    );
    assert_eq!(summary.changed, ["solo/p/b"]);
    assert_eq!(e.open_tickets("solo"), 0);
}

// ---- property test: tenants and queues never mixed -----------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Create {
        tenant: usize,
        queue: usize,
        skill: f64,
        party: usize,
        eu: u32,
    },
    Cancel(usize),
    Tick(u64),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..2, 0usize..2, 900.0f64..1300.0, 1usize..=2, 0u32..150)
            .prop_map(|(tenant, queue, skill, party, eu)| Op::Create { tenant, queue, skill, party, eu }),
        1 => (0usize..200).prop_map(Op::Cancel),
        2 => (1u64..3000).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn matches_never_mix_tenants_or_queues_and_never_reuse_a_ticket(ops in prop::collection::vec(arb_op(), 1..200)) {
        let e = engine(&two_tenants());
        let tenants = ["alpha", "beta"];
        let queues = ["duel", "squad"];
        let mut now = 0u64;
        let mut created: Vec<TicketView> = Vec::new();
        let mut owner: HashMap<String, (String, String)> = HashMap::new();
        let mut seen_matches: HashMap<String, usize> = HashMap::new();
        for op in ops {
            match op {
                Op::Create { tenant, queue, skill, party, eu } => {
                    let mut t = ticket(tenants[tenant], queues[queue], "p0", skill);
                    t.players[0].latencies.insert("eu".to_owned(), eu);
                    if party == 2 {
                        let mut second = t.players[0].clone();
                        second.id = "p1".to_owned();
                        second.skill += 20.0;
                        t.players.push(second);
                    }
                    if let Ok((v, _)) = e.create_ticket(t, now) {
                        owner.insert(v.id.clone(), (v.tenant.clone(), v.queue.clone()));
                        created.push(v);
                    }
                }
                Op::Cancel(i) => {
                    if let Some(v) = created.get(i) {
                        let _ = e.cancel_ticket(&v.id, now);
                    }
                }
                Op::Tick(dt) => {
                    now += dt;
                    e.tick(now);
                }
            }
        }
        let mut in_match: HashMap<String, String> = HashMap::new();
        for v in &created {
            let t = e.ticket(&v.id).expect("retained");
            if let Some(a) = t.assignment {
                let m = e.get_match(&a.match_id).expect("match");
                *seen_matches.entry(m.id.clone()).or_default() += 1;
                for team in &m.teams {
                    for id in &team.tickets {
                        let (tenant, queue) = &owner[id];
                        prop_assert_eq!(tenant, &m.tenant);
                        prop_assert_eq!(queue, &m.queue);
                        if let Some(other) = in_match.insert(id.clone(), m.id.clone()) {
                            prop_assert_eq!(other, m.id.clone(), "ticket in two matches");
                        }
                    }
                    let players: usize = team.players.len();
                    let wanted = if m.queue == "duel" { 1 } else { 2 };
                    prop_assert_eq!(players, wanted);
                }
            }
        }
        // Every open ticket is counted against its tenant exactly once.
        for (i, tenant) in tenants.iter().enumerate() {
            let pending = created
                .iter()
                .filter(|v| v.tenant == tenants[i])
                .filter(|v| e.ticket(&v.id).is_ok_and(|t| t.state == TicketState::Pending))
                .count();
            prop_assert_eq!(e.open_tickets(tenant), pending);
        }
    }
}
