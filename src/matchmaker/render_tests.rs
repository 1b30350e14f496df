//! The document the MatchmakingPool controller writes (`workload::matchmaker::render`, in the
//! pool's ConfigMap) read back by the matchmaker's parser: every tier's pool yields the queues
//! it asked for (windows, teams, latency, regions, timeouts, backfill), tenant-qualified.

use kube::ResourceExt;
use serde_json::{Value, json};

use super::config::{Config, Defaults, QueueDef};
use crate::crds::{GameCell, MatchmakingPool};
use crate::workload::matchmaker::{CONFIG_KEY, Inputs, PoolObjects, build, queue_config, render};
use crate::workload::meta::Owner;

fn cell(spec: Value) -> GameCell {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": "c1", "uid": "cell-uid"}, "spec": spec
    }))
    .expect("cell")
}

fn pool(ns: &str, spec: Value) -> MatchmakingPool {
    serde_json::from_value(json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
        "metadata": {"name": "arena", "namespace": ns, "uid": "pool-uid"}, "spec": spec
    }))
    .expect("pool")
}

/// Two queues that differ in every rule, one with explicit regions and one without.
fn queues(regions: &[&str]) -> Value {
    json!([
        {"name": "ranked", "playersPerMatch": 10, "teams": 2,
         "skillWindow": {"initial": 40, "wideningPerSecond": 15, "maximum": 350},
         "maxLatencyMs": 80, "regions": regions, "timeoutSeconds": 90, "backfill": true},
        {"name": "duel", "playersPerMatch": 2, "teams": 2,
         "skillWindow": {"initial": 120, "wideningPerSecond": 0, "maximum": 120}},
        {"name": "royale", "playersPerMatch": 60, "teams": 20,
         "skillWindow": {"initial": 200, "wideningPerSecond": 50, "maximum": 1000},
         "maxLatencyMs": 150, "regions": regions, "timeoutSeconds": 300}
    ])
}

fn tenant_of<'a>(c: &'a GameCell, ns: &str) -> &'a crate::crds::gamecell::TenantSpec {
    c.spec
        .tenants
        .iter()
        .find(|t| t.namespace == ns)
        .expect("tenant")
}

fn objects(p: &MatchmakingPool, c: &GameCell) -> PoolObjects {
    let owner = Owner::of(p).expect("owner");
    let ns = p.namespace().expect("namespace");
    build(
        p,
        Inputs {
            owner: &owner,
            cell: c,
            tenant: tenant_of(c, &ns),
        },
    )
    .expect("built")
}

/// The document in the ConfigMap `build` makes, which is `render`'s output for the pool.
fn document(p: &MatchmakingPool, c: &GameCell) -> String {
    let ns = p.namespace().expect("namespace");
    let rendered = render(&queue_config(p, c, tenant_of(c, &ns)).expect("config")).expect("doc");
    let objects = objects(p, c);
    let in_map = &objects.config_map.data.as_ref().expect("data")[CONFIG_KEY];
    assert_eq!(in_map, &rendered, "the ConfigMap carries render's output");
    rendered
}

fn env_of(objects: &PoolObjects, instance: usize, name: &str) -> Option<String> {
    let d = serde_json::to_value(&objects.instances[instance].deployment).expect("json");
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

fn queue<'a>(config: &'a Config, name: &str) -> &'a QueueDef {
    config
        .queues
        .iter()
        .find(|q| q.key.name == name)
        .unwrap_or_else(|| panic!("queue {name} in {config:?}"))
}

/// Asserts the rules of the three queues of [`queues`]; `regions` are the ones each queue is
/// served in (sorted), `None` when the queue is not served by this matchmaker.
fn assert_queues(
    config: &Config,
    tenant: &str,
    ranked_regions: Option<&[&str]>,
    default_regions: Option<&[&str]>,
) {
    let served = [ranked_regions, default_regions, ranked_regions]
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert_eq!(config.queues.len(), served, "{config:?}");
    for q in &config.queues {
        assert_eq!(q.key.tenant, tenant);
        assert_eq!(q.key.pool, "arena");
    }
    if let Some(regions) = ranked_regions {
        let r = &queue(config, "ranked").rules;
        assert_eq!((r.players_per_match, r.teams, r.team_size()), (10, 2, 5));
        assert_eq!(
            (
                r.window_initial,
                r.window_widening_per_second,
                r.window_maximum
            ),
            (40.0, 15.0, 350.0)
        );
        assert_eq!(r.max_latency_ms, 80);
        assert_eq!(r.regions, regions);
        assert_eq!(r.timeout_ms, 90_000);
        assert!(r.backfill);
        let r = &queue(config, "royale").rules;
        assert_eq!((r.players_per_match, r.teams, r.team_size()), (60, 20, 3));
        assert_eq!(
            (
                r.window_initial,
                r.window_widening_per_second,
                r.window_maximum
            ),
            (200.0, 50.0, 1000.0)
        );
        assert_eq!(r.widening_ms(), 16_000);
        assert_eq!((r.max_latency_ms, r.timeout_ms), (150, 300_000));
        assert_eq!(r.regions, regions);
        assert!(!r.backfill);
    }
    if let Some(regions) = default_regions {
        // CRD defaults: maxLatencyMs 100, timeoutSeconds 120, no backfill; no regions in
        // the spec: the cell's region.
        let r = &queue(config, "duel").rules;
        assert_eq!((r.players_per_match, r.teams, r.team_size()), (2, 2, 1));
        assert_eq!(
            (
                r.window_initial,
                r.window_widening_per_second,
                r.window_maximum
            ),
            (120.0, 0.0, 120.0)
        );
        assert_eq!((r.max_latency_ms, r.timeout_ms), (100, 120_000));
        assert_eq!(r.regions, regions);
        assert!(!r.backfill);
    }
}

#[test]
fn dedicated_pools_render_a_document_every_regional_matchmaker_reads() {
    let c = cell(
        json!({"tier": "Dedicated", "provider": {"aws": {"region": "us-east-1"}},
                        "tenants": [{"name": "solo", "namespace": "solo"}]}),
    );
    let p = pool(
        "solo",
        json!({"cellRef": {"name": "c1"}, "queues": queues(&["us-west-2", "eu-west-1"])}),
    );
    let doc = document(&p, &c);
    // Read whole (no MATCHMAKER_REGION): every queue, every region.
    let all = Config::parse("matchmaker.json", &doc, &Defaults::default()).expect("parsed");
    assert_queues(
        &all,
        "solo",
        Some(&["eu-west-1", "us-west-2"]),
        Some(&["us-east-1"]),
    );
    // As each regional Deployment reads it: its environment names tenant, pool and region,
    // and it serves only the queues of its region, narrowed to it.
    let objects = objects(&p, &c);
    let regions: Vec<String> = objects
        .instances
        .iter()
        .map(|i| i.region.clone().expect("regional"))
        .collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1", "us-west-2"]);
    for (i, region) in regions.iter().enumerate() {
        let defaults = Defaults {
            tenant: env_of(&objects, i, "MATCHMAKER_TENANT"),
            pool: env_of(&objects, i, "MATCHMAKER_POOL"),
            region: env_of(&objects, i, "MATCHMAKER_REGION"),
        };
        assert_eq!(defaults.region.as_deref(), Some(region.as_str()));
        let config = Config::parse("matchmaker.json", &doc, &defaults).expect("parsed");
        let only: &[&str] = &[region.as_str()];
        let ranked = (region != "us-east-1").then_some(only);
        let default = (region == "us-east-1").then_some(only);
        assert_queues(&config, "solo", ranked, default);
    }
}

#[test]
fn shared_pools_render_a_tenant_qualified_document() {
    let c = cell(
        json!({"tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
                        "tenants": [{"name": "alpha", "namespace": "a"},
                                    {"name": "beta", "namespace": "b"}]}),
    );
    let a = pool(
        "a",
        json!({"cellRef": {"name": "c1"}, "queues": queues(&["eu-west-1"])}),
    );
    let b = pool(
        "b",
        json!({"cellRef": {"name": "c1"}, "queues": queues(&["eu-west-1"])}),
    );
    let (doc_a, doc_b) = (document(&a, &c), document(&b, &c));
    let objects = objects(&a, &c);
    assert_eq!(objects.instances.len(), 1);
    assert_eq!(env_of(&objects, 0, "MATCHMAKER_REGION"), None);
    let defaults = Defaults {
        tenant: env_of(&objects, 0, "MATCHMAKER_TENANT"),
        pool: env_of(&objects, 0, "MATCHMAKER_POOL"),
        region: None,
    };
    let config_a = Config::parse("matchmaker.json", &doc_a, &defaults).expect("parsed");
    assert_queues(
        &config_a,
        "alpha",
        Some(&["eu-west-1"]),
        Some(&["eu-west-1"]),
    );
    // Read with no environment at all, the document still names its tenant and pool; the
    // two tenants' same-named pools and queues stay apart when one matchmaker loads both.
    let config_b = Config::parse("b.json", &doc_b, &Defaults::default()).expect("parsed");
    assert_queues(
        &config_b,
        "beta",
        Some(&["eu-west-1"]),
        Some(&["eu-west-1"]),
    );
    let merged = Config::merge(vec![config_a, config_b]).expect("merged");
    assert_eq!(merged.queues.len(), 6);
    assert_eq!(
        merged
            .queues
            .iter()
            .filter(|q| q.key.tenant == "alpha")
            .count(),
        3
    );
}

#[test]
fn enterprise_pools_render_a_document_within_their_compliance_regions() {
    let c = cell(json!({"tier": "Enterprise",
        "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/r",
                              "externalId": "ext", "clusterName": "k"}},
        "tenants": [{"name": "acme", "namespace": "acme"}],
        "compliance": {"allowedRegions": ["eu-central-1", "eu-west-1"],
                       "allowedRegistries": ["registry.acme.example/"]}}));
    let p = pool(
        "acme",
        json!({"cellRef": {"name": "c1"}, "image": "registry.acme.example/mm:2",
               "queues": queues(&["eu-west-1", "eu-central-1"])}),
    );
    let doc = document(&p, &c);
    let objects = objects(&p, &c);
    assert_eq!(objects.instances.len(), 1);
    let defaults = Defaults {
        tenant: env_of(&objects, 0, "MATCHMAKER_TENANT"),
        pool: env_of(&objects, 0, "MATCHMAKER_POOL"),
        region: env_of(&objects, 0, "MATCHMAKER_REGION"),
    };
    let config = Config::parse("matchmaker.json", &doc, &defaults).expect("parsed");
    assert_queues(
        &config,
        "acme",
        Some(&["eu-central-1", "eu-west-1"]),
        Some(&["eu-central-1"]),
    );
}
