//! The matchmaker's configuration: the documents the MatchmakingPool controller writes into the
//! pool's ConfigMap (`matchmaker.json`), parsed and checked.
//!
//! Three shapes are read (see `docs/matchmaker-api.md`):
//!
//! 1. The controller's document (`version: 1`): `tenant`, `pool`, and `queues` with flat
//!    `skillWindowInitial`, `skillWindowWideningPerSecond`, `skillWindowMaximum` fields.
//! 2. The same with queues in the MatchmakingPool's own shape (`skillWindow: {initial,
//!    wideningPerSecond, maximum}`), defaults as in the CRD (teams 2, maxLatencyMs 100,
//!    timeoutSeconds 120).
//! 3. A shared, multi-tenant matchmaker: `{"pools": [<document>, ...], "tenantLimits": {...}}`.
//!
//! Several files may be given; their pools are merged. Queues are keyed by
//! `(tenant, pool, queue)`, so tenants and pools never share a queue.
//!
//! A multi-tenant matchmaker also reads its tenants' credentials ([`TenantTokens`]): the
//! SHA-256 of each tenant's bearer token, never the token itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::core::{MAX_REGIONS, QueueRules};

/// Identifies a queue across tenants and pools.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    /// The tenant (game) the queue belongs to.
    pub tenant: String,
    /// The MatchmakingPool.
    pub pool: String,
    /// The queue's name in the pool.
    pub name: String,
}

impl fmt::Display for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.pool, self.name)
    }
}

/// One configured queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueDef {
    /// Its key.
    pub key: QueueKey,
    /// Its rules.
    pub rules: QueueRules,
}

/// Everything the matchmaker serves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The queues, sorted by key.
    pub queues: Vec<QueueDef>,
    /// Open-ticket limits of particular tenants (others get the default limit).
    pub tenant_limits: BTreeMap<String, usize>,
}

/// Values the documents may leave out, from the matchmaker's environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Tenant of documents that name none (`MATCHMAKER_TENANT`).
    pub tenant: Option<String>,
    /// Pool of documents that name none (`MATCHMAKER_POOL`); `default` otherwise.
    pub pool: Option<String>,
    /// Serve only this region (`MATCHMAKER_REGION`, Dedicated cells run one matchmaker per
    /// region): queues are narrowed to it, and queues that do not list it are not served.
    pub region: Option<String>,
}

/// Why a configuration was refused (the previous one stays in force).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {problems}")]
pub struct ConfigError {
    /// The file (or `inline`).
    pub source_name: String,
    /// Every problem found, `; `-separated.
    pub problems: String,
}

/// The credentials of a multi-tenant matchmaker's tenants: which tenant a bearer token acts as.
///
/// Read from `{"tenants": {"<tenant>": "<SHA-256 of its token, 64 hex digits>"}}` (the Secret the
/// GameCell controller mounts). Only hashes are held, so the file, a core dump or a log line
/// never carries a usable token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantTokens {
    /// SHA-256 (lowercase hex) of a token -> its tenant.
    by_hash: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensDoc {
    tenants: BTreeMap<String, String>,
}

/// The SHA-256 of `token`, lowercase hex: what [`TenantTokens`] stores.
#[must_use]
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TenantTokens {
    /// Parses the credentials document.
    ///
    /// # Errors
    /// Not JSON of that shape, a tenant name that is not one, a hash that is not 64 hex digits,
    /// or two tenants with the same token. The messages name tenants, never hashes.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, ConfigError> {
        let err = |problems: String| ConfigError {
            source_name: source_name.to_owned(),
            problems,
        };
        let doc: TokensDoc = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut problems = Vec::new();
        let mut by_hash = BTreeMap::new();
        for (tenant, hash) in doc.tenants {
            if tenant.is_empty() || tenant.len() > 63 || tenant.contains('/') {
                problems.push(format!("tenant {tenant:?} is not a valid tenant name"));
            }
            let hash = hash.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(format!(
                    "tenants.{tenant}: not a SHA-256 in hex (64 hex digits)"
                ));
                continue;
            }
            if let Some(other) = by_hash.insert(hash, tenant.clone()) {
                problems.push(format!("tenants {other} and {tenant} have the same token"));
            }
        }
        if problems.is_empty() {
            Ok(Self { by_hash })
        } else {
            Err(err(problems.join("; ")))
        }
    }

    /// The tenant `token` acts as, if any.
    #[must_use]
    pub fn tenant_of(&self, token: &str) -> Option<&str> {
        self.by_hash.get(&token_hash(token)).map(String::as_str)
    }

    /// Tenants with a credential.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no tenant has a credential.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PoolDoc {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    pool: Option<String>,
    queues: Vec<QueueDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WindowDoc {
    initial: f64,
    #[serde(default)]
    widening_per_second: f64,
    maximum: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueDoc {
    name: String,
    players_per_match: i64,
    #[serde(default)]
    teams: Option<i64>,
    #[serde(default)]
    players_per_team: Option<i64>,
    #[serde(default)]
    skill_window: Option<WindowDoc>,
    #[serde(default)]
    skill_window_initial: Option<f64>,
    #[serde(default)]
    skill_window_widening_per_second: Option<f64>,
    #[serde(default)]
    skill_window_maximum: Option<f64>,
    #[serde(default)]
    max_latency_ms: Option<i64>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    #[serde(default)]
    backfill: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MultiDoc {
    pools: Vec<Value>,
    #[serde(default)]
    tenant_limits: BTreeMap<String, usize>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Config {
    /// Parses one document (any of the three shapes).
    ///
    /// # Errors
    /// Every problem found, with the field it is in.
    pub fn parse(source_name: &str, text: &str, defaults: &Defaults) -> Result<Self, ConfigError> {
        let err = |problems: String| ConfigError {
            source_name: source_name.to_owned(),
            problems,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let (pools, tenant_limits) = if value.get("pools").is_some() {
            let multi: MultiDoc = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
            (multi.pools, multi.tenant_limits)
        } else {
            (vec![value], BTreeMap::new())
        };
        let mut problems = Vec::new();
        let mut queues = Vec::new();
        for (i, pool) in pools.into_iter().enumerate() {
            let at = if i == 0 && tenant_limits.is_empty() {
                String::new()
            } else {
                format!("pools[{i}].")
            };
            match serde_json::from_value::<PoolDoc>(pool) {
                Ok(doc) => pool_queues(&doc, &at, defaults, &mut queues, &mut problems),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        let config = Self {
            queues,
            tenant_limits,
        };
        config.finish().map_err(|p| {
            problems.extend(p);
            err(problems.join("; "))
        })?;
        if problems.is_empty() {
            let mut config = config;
            config.queues.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(config)
        } else {
            Err(err(problems.join("; ")))
        }
    }

    /// Merges several documents' configurations.
    ///
    /// # Errors
    /// When two documents configure the same queue.
    pub fn merge(parts: Vec<Self>) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for part in parts {
            out.queues.extend(part.queues);
            out.tenant_limits.extend(part.tenant_limits);
        }
        out.queues.sort_by(|a, b| a.key.cmp(&b.key));
        out.finish().map_err(|p| ConfigError {
            source_name: "configuration".to_owned(),
            problems: p.join("; "),
        })?;
        Ok(out)
    }

    fn finish(&self) -> Result<(), Vec<String>> {
        let mut seen = std::collections::BTreeSet::new();
        let dups: Vec<String> = self
            .queues
            .iter()
            .filter(|q| !seen.insert(q.key.clone()))
            .map(|q| format!("queue {} is configured twice", q.key))
            .collect();
        if dups.is_empty() { Ok(()) } else { Err(dups) }
    }
}

fn pool_queues(
    doc: &PoolDoc,
    at: &str,
    defaults: &Defaults,
    queues: &mut Vec<QueueDef>,
    problems: &mut Vec<String>,
) {
    if let Some(v) = doc.version
        && v != 1
    {
        problems.push(format!("{at}version: {v} is not supported (1 is)"));
    }
    let Some(tenant) = doc.tenant.clone().or_else(|| defaults.tenant.clone()) else {
        problems.push(format!(
            "{at}tenant: missing (and MATCHMAKER_TENANT is not set)"
        ));
        return;
    };
    let pool = doc
        .pool
        .clone()
        .or_else(|| defaults.pool.clone())
        .unwrap_or_else(|| "default".to_owned());
    if tenant.is_empty() || tenant.len() > 63 || tenant.contains('/') {
        problems.push(format!("{at}tenant: {tenant:?} is not a valid tenant name"));
    }
    if !valid_name(&pool) {
        problems.push(format!("{at}pool: {pool:?} is not a valid pool name"));
    }
    if doc.queues.is_empty() {
        problems.push(format!("{at}queues: at least one queue is needed"));
    }
    for (i, q) in doc.queues.iter().enumerate() {
        let at = format!("{at}queues[{i}] ({})", q.name);
        match queue_rules(q, defaults) {
            Ok(Some(rules)) => queues.push(QueueDef {
                key: QueueKey {
                    tenant: tenant.clone(),
                    pool: pool.clone(),
                    name: q.name.clone(),
                },
                rules,
            }),
            Ok(None) => {}
            Err(p) => problems.extend(p.into_iter().map(|p| format!("{at}: {p}"))),
        }
    }
}

fn queue_rules(q: &QueueDoc, defaults: &Defaults) -> Result<Option<QueueRules>, Vec<String>> {
    let mut p = Vec::new();
    if !valid_name(&q.name) || q.name.len() > 40 {
        p.push("name must be 1-40 lowercase letters, digits and '-'".to_owned());
    }
    let players = q.players_per_match;
    let teams = q.teams.unwrap_or(2);
    if !(2..=200).contains(&players) {
        p.push(format!("playersPerMatch {players} is not within 2..=200"));
    }
    if !(1..=100).contains(&teams) {
        p.push(format!("teams {teams} is not within 1..=100"));
    } else if players % teams != 0 || players < teams {
        p.push(format!(
            "{players} players do not split into {teams} equal teams"
        ));
    } else if let Some(per) = q.players_per_team
        && per != players / teams
    {
        p.push(format!(
            "playersPerTeam {per} is not playersPerMatch / teams"
        ));
    }
    let window = match (
        &q.skill_window,
        q.skill_window_initial,
        q.skill_window_maximum,
    ) {
        (Some(w), None, None) => Some((w.initial, w.widening_per_second, w.maximum)),
        (None, Some(initial), Some(maximum)) => Some((
            initial,
            q.skill_window_widening_per_second.unwrap_or(0.0),
            maximum,
        )),
        _ => {
            p.push("give skillWindow {initial, wideningPerSecond, maximum} or skillWindowInitial and skillWindowMaximum".to_owned());
            None
        }
    };
    if let Some((initial, widening, maximum)) = window {
        for (name, v) in [
            ("initial", initial),
            ("wideningPerSecond", widening),
            ("maximum", maximum),
        ] {
            if !(0.0..=10_000.0).contains(&v) {
                p.push(format!("skill window {name} {v} is not within 0..=10000"));
            }
        }
        if initial > maximum {
            p.push("skill window initial exceeds maximum".to_owned());
        }
    }
    let latency = q.max_latency_ms.unwrap_or(100);
    if !(1..=10_000).contains(&latency) {
        p.push(format!("maxLatencyMs {latency} is not within 1..=10000"));
    }
    let timeout = q.timeout_seconds.unwrap_or(120);
    if !(1..=3600).contains(&timeout) {
        p.push(format!("timeoutSeconds {timeout} is not within 1..=3600"));
    }
    let mut regions = q.regions.clone();
    regions.sort();
    regions.dedup();
    if regions.len() > MAX_REGIONS {
        p.push(format!("at most {MAX_REGIONS} regions"));
    }
    if regions.iter().any(|r| r.is_empty() || r.len() > 32) {
        p.push("region names are 1-32 characters".to_owned());
    }
    let Some((initial, widening, maximum)) = window else {
        return Err(p);
    };
    if !p.is_empty() {
        return Err(p);
    }
    if let Some(only) = &defaults.region
        && !regions.is_empty()
    {
        if !regions.contains(only) {
            return Ok(None);
        }
        regions = vec![only.clone()];
    }
    Ok(Some(QueueRules {
        players_per_match: players as u16,
        teams: teams as u16,
        window_initial: initial,
        window_widening_per_second: widening,
        window_maximum: maximum,
        max_latency_ms: latency as u32,
        regions,
        timeout_ms: timeout as u64 * 1000,
        backfill: q.backfill,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The document the MatchmakingPool controller writes (`workload::matchmaker::render`).
    fn controller_doc() -> Value {
        json!({
            "version": 1, "cell": "c1", "tenant": "solo", "namespace": "solo", "pool": "mm",
            "queues": [{
                "id": "solo/mm/ranked", "name": "ranked", "playersPerMatch": 10, "teams": 2,
                "playersPerTeam": 5, "skillWindowInitial": 100, "skillWindowWideningPerSecond": 10,
                "skillWindowMaximum": 500, "maxLatencyMs": 80, "regions": ["us-east-1", "eu-west-1"],
                "timeoutSeconds": 60, "backfill": true
            }]
        })
    }

    #[test]
    fn the_controllers_document_is_read() {
        let c = Config::parse("f", &controller_doc().to_string(), &Defaults::default())
            .expect("parsed");
        assert_eq!(c.queues.len(), 1);
        let q = &c.queues[0];
        assert_eq!(q.key.to_string(), "solo/mm/ranked");
        assert_eq!(q.rules.team_size(), 5);
        assert_eq!(q.rules.regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(q.rules.timeout_ms, 60_000);
        assert_eq!(q.rules.window_at(20_000), 300.0);
        assert_eq!(q.rules.widening_ms(), 40_000);
        assert!(q.rules.backfill);
    }

    #[test]
    fn the_pool_shape_and_defaults_are_read_and_a_region_narrows_queues() {
        let doc = json!({"queues": [
            {"name": "a", "playersPerMatch": 4, "skillWindow": {"initial": 10, "maximum": 20}, "regions": ["x", "y"]},
            {"name": "b", "playersPerMatch": 2, "skillWindow": {"initial": 10, "maximum": 20}, "regions": ["y"]}
        ]});
        let defaults = Defaults {
            tenant: Some("t".into()),
            pool: None,
            region: Some("x".into()),
        };
        let c = Config::parse("f", &doc.to_string(), &defaults).expect("parsed");
        assert_eq!(c.queues.len(), 1, "b is not served in region x");
        let q = &c.queues[0];
        assert_eq!(q.key.to_string(), "t/default/a");
        assert_eq!(
            (q.rules.teams, q.rules.max_latency_ms, q.rules.timeout_ms),
            (2, 100, 120_000)
        );
        assert_eq!(q.rules.regions, ["x"]);
    }

    #[test]
    fn multi_tenant_documents_keep_tenants_apart_and_merge() {
        let doc = json!({"pools": [
            {"tenant": "alpha", "pool": "p", "queues": [{"name": "q", "playersPerMatch": 2, "skillWindow": {"initial": 1, "maximum": 2}}]},
            {"tenant": "beta", "pool": "p", "queues": [{"name": "q", "playersPerMatch": 2, "skillWindow": {"initial": 1, "maximum": 2}}]}
        ], "tenantLimits": {"alpha": 10}});
        let c = Config::parse("f", &doc.to_string(), &Defaults::default()).expect("parsed");
        let keys: Vec<String> = c.queues.iter().map(|q| q.key.to_string()).collect();
        assert_eq!(keys, ["alpha/p/q", "beta/p/q"]);
        assert_eq!(c.tenant_limits["alpha"], 10);
        let again = Config::merge(vec![c.clone(), c]).expect_err("twice");
        assert!(again.problems.contains("configured twice"), "{again}");
    }

    #[test]
    fn tenant_tokens_bind_a_token_to_its_tenant_only() {
        let doc = json!({"tenants": {"alpha": token_hash("a-token"), "beta": token_hash("b-token").to_uppercase()}});
        let tokens = TenantTokens::parse("f", &doc.to_string()).expect("parsed");
        assert_eq!(tokens.tenant_of("a-token"), Some("alpha"));
        assert_eq!(tokens.tenant_of("b-token"), Some("beta"));
        assert_eq!(tokens.tenant_of("alpha"), None);
        assert_eq!(
            tokens.tenant_of(&token_hash("a-token")),
            None,
            "a hash is no token"
        );
        let same = json!({"tenants": {"alpha": token_hash("x"), "beta": token_hash("x")}});
        let e = TenantTokens::parse("f", &same.to_string()).expect_err("refused");
        assert!(e.problems.contains("same token"), "{e}");
        let short = json!({"tenants": {"alpha": "abc"}});
        let e = TenantTokens::parse("f", &short.to_string()).expect_err("refused");
        assert!(e.problems.contains("tenants.alpha"), "{e}");
        assert!(
            !e.problems.contains("abc"),
            "a credential is never echoed: {e}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let mut doc = controller_doc();
        doc["queues"][0]["teams"] = json!(3);
        doc["queues"][0]["skillWindowInitial"] = json!(900);
        doc["queues"][0]["timeoutSeconds"] = json!(0);
        doc["queues"][0]["name"] = json!("Bad Name");
        let e = Config::parse("f", &doc.to_string(), &Defaults::default()).expect_err("refused");
        for part in [
            "equal teams",
            "exceeds maximum",
            "timeoutSeconds",
            "name must",
        ] {
            assert!(e.problems.contains(part), "{part}: {e}");
        }
        let e = Config::parse("f", "{\"queues\": []}", &Defaults::default()).expect_err("refused");
        assert!(e.problems.contains("tenant"), "{e}");
        assert!(Config::parse("f", "not json", &Defaults::default()).is_err());
    }
}
