//! Integration tests of the `matchmaker` binary: it runs on 127.0.0.1 with a temporary
//! configuration file, is fed tickets over its HTTP API and returns matches; it reloads its
//! configuration (a ConfigMap-style symlink swap) without a restart; tenants are limited; with
//! tenant credentials, a token acts as its own tenant only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running matchmaker, killed when dropped.
struct Matchmaker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Matchmaker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("matchmaker-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn start(dir: PathBuf, config: &Path, extra: &[&str]) -> Matchmaker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matchmaker"))
        .arg("--config")
        .arg(config)
        .args(["--host", "127.0.0.1", "--port", "0", "--tick-ms", "20"])
        .args(["--reload-ms", "200"])
        .args(extra)
        .env("MATCHMAKER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the matchmaker");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the listening line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Matchmaker { child, port, dir }
}

/// One HTTP/1.1 request to 127.0.0.1; the status and the body (JSON when it parses).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    http_as(port, None, method, path, body)
}

/// [`http`] with `Authorization: Bearer <token>` when a token is given.
fn http_as(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let payload = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The document the MatchmakingPool controller writes (format version 1).
fn controller_config() -> Value {
    json!({
        "version": 1, "cell": "c1", "tenant": "acme", "namespace": "acme", "pool": "mm",
        "queues": [
            {"id": "acme/mm/duel", "name": "duel", "playersPerMatch": 2, "teams": 2, "playersPerTeam": 1,
             "skillWindowInitial": 10, "skillWindowWideningPerSecond": 0, "skillWindowMaximum": 10,
             "maxLatencyMs": 100, "regions": ["eu-west-1"], "timeoutSeconds": 1, "backfill": false},
            {"id": "acme/mm/ranked", "name": "ranked", "playersPerMatch": 10, "teams": 2, "playersPerTeam": 5,
             "skillWindowInitial": 100, "skillWindowWideningPerSecond": 50, "skillWindowMaximum": 500,
             "maxLatencyMs": 80, "regions": ["eu-west-1", "us-east-1"], "timeoutSeconds": 60, "backfill": true}
        ]
    })
}

fn player(id: &str, skill: f64) -> Value {
    json!({"id": id, "skill": skill, "latencies": {"eu-west-1": 30, "us-east-1": 120}})
}

#[test]
fn serves_tickets_over_http_and_returns_matches() {
    let dir = temp_dir("serve");
    let config = dir.join("matchmaker.json");
    std::fs::write(&config, controller_config().to_string()).expect("config");
    let mm = start(dir, &config, &[]);
    let port = mm.port;
    wait_until("ready", || http(port, "GET", "/readyz", None).0 == 200);
    assert_eq!(http(port, "GET", "/livez", None).0, 200);

    // Ten players, one ticket each (one is a party of two), for a 5v5.
    let mut ids = Vec::new();
    for i in 0..8 {
        let body = json!({"queue": "ranked", "clientKey": format!("k{i}"),
                          "players": [player(&format!("p{i}"), 1500.0 + f64::from(i) * 7.0)],
                          "attributes": {"mode": "ranked"}});
        let (status, ticket) = http(port, "POST", "/v1/tickets", Some(&body));
        assert_eq!(status, 201, "{ticket}");
        assert_eq!(ticket["state"], "Pending");
        ids.push(ticket["id"].as_str().expect("id").to_owned());
    }
    // The same client key again: the same ticket, not a new one.
    let again = json!({"queue": "ranked", "clientKey": "k0", "players": [player("p0", 1500.0)]});
    let (status, ticket) = http(port, "POST", "/v1/tickets", Some(&again));
    assert_eq!(
        (status, ticket["id"].as_str()),
        (200, Some(ids[0].as_str()))
    );
    let party = json!({"tenant": "acme", "queue": "ranked",
                       "players": [player("p8", 1520.0), player("p9", 1530.0)]});
    let (status, ticket) = http(port, "POST", "/v1/tickets", Some(&party));
    assert_eq!(status, 201, "{ticket}");
    ids.push(ticket["id"].as_str().expect("id").to_owned());

    let (status, ticket) = http(
        port,
        "GET",
        &format!("/v1/tickets/{}?waitSeconds=10", ids[0]),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(ticket["state"], "Matched", "{ticket}");
    assert_eq!(ticket["attributes"]["mode"], "ranked");
    let assignment = &ticket["assignment"];
    assert_eq!(assignment["region"], "eu-west-1");
    let match_id = assignment["matchId"].as_str().expect("match id").to_owned();
    let (status, m) = http(port, "GET", &format!("/v1/matches/{match_id}"), None);
    assert_eq!(status, 200);
    let teams = m["teams"].as_array().expect("teams");
    assert_eq!(teams.len(), 2);
    for team in teams {
        assert_eq!(team["players"].as_array().expect("players").len(), 5, "{m}");
    }
    let spread = m["skillSpread"].as_f64().expect("spread");
    assert!(spread <= m["window"].as_f64().expect("window"));
    assert!(m["teamImbalance"].as_f64().expect("gap") < 10.0, "{m}");
    let party_team = teams
        .iter()
        .position(|t| {
            t["players"]
                .as_array()
                .is_some_and(|p| p.contains(&json!("p8")))
        })
        .expect("p8");
    assert!(
        teams[party_team]["players"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("p9"))),
        "the party plays together: {m}"
    );
    let (_, feed) = http(port, "GET", "/v1/matches?queue=ranked&after=0", None);
    assert_eq!(feed["matches"].as_array().map(Vec::len), Some(1), "{feed}");
    assert_eq!(feed["matches"][0]["id"], json!(match_id));

    // A stream: the ticket as it is, then its match.
    let duel = |p: &str| json!({"queue": "duel", "players": [player(p, 700.0)]});
    let (_, first) = http(port, "POST", "/v1/tickets", Some(&duel("d1")));
    let first_id = first["id"].as_str().expect("id").to_owned();
    let watcher = std::thread::spawn(move || {
        http(
            port,
            "GET",
            &format!("/v1/tickets/{first_id}/events?waitSeconds=10"),
            None,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http(port, "POST", "/v1/tickets", Some(&duel("d2"))).0, 201);
    let (status, events) = watcher.join().expect("watcher");
    assert_eq!(status, 200);
    let text = events
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| events.to_string());
    let pending = text.find("\"state\":\"Pending\"").expect("pending first");
    let matched = text.find("\"state\":\"Matched\"").expect("then matched");
    assert!(pending < matched, "{text}");

    // Backfill: p0 leaves, a newcomer takes the place.
    let (status, bf) = http(
        port,
        "POST",
        &format!("/v1/matches/{match_id}/backfill"),
        Some(&json!({"lostPlayers": ["p0"]})),
    );
    assert_eq!(status, 201, "{bf}");
    assert_eq!(bf["state"], "Pending");
    let newcomer = json!({"queue": "ranked", "players": [player("p10", 1505.0)]});
    let (status, ticket) = http(port, "POST", "/v1/tickets", Some(&newcomer));
    assert_eq!(status, 201);
    let newcomer_id = ticket["id"].as_str().expect("id").to_owned();
    let (_, ticket) = http(
        port,
        "GET",
        &format!("/v1/tickets/{newcomer_id}?waitSeconds=10"),
        None,
    );
    assert_eq!(ticket["state"], "Matched", "{ticket}");
    assert_eq!(ticket["assignment"]["matchId"], json!(match_id));
    assert_eq!(ticket["assignment"]["backfill"], true);
    let bf_id = bf["id"].as_str().expect("id");
    let (_, bf) = http(port, "GET", &format!("/v1/backfills/{bf_id}"), None);
    assert_eq!(bf["state"], "Filled", "{bf}");

    // A ticket nobody matches times out with the reason; another is cancelled.
    let lonely = json!({"queue": "duel", "players": [player("solo", 100.0)]});
    let (_, ticket) = http(port, "POST", "/v1/tickets", Some(&lonely));
    let lonely_id = ticket["id"].as_str().expect("id").to_owned();
    let (_, ticket) = http(
        port,
        "GET",
        &format!("/v1/tickets/{lonely_id}?waitSeconds=10"),
        None,
    );
    assert_eq!(ticket["state"], "TimedOut", "{ticket}");
    assert_eq!(ticket["reason"], "Timeout");
    let (_, ticket) = http(port, "POST", "/v1/tickets", Some(&lonely));
    let cancel_id = ticket["id"].as_str().expect("id").to_owned();
    let (status, ticket) = http(port, "DELETE", &format!("/v1/tickets/{cancel_id}"), None);
    assert_eq!((status, &ticket["state"]), (200, &json!("Cancelled")));
    let (status, err) = http(port, "DELETE", &format!("/v1/tickets/{}", ids[1]), None);
    assert_eq!((status, &err["error"]["code"]), (409, &json!("Conflict")));

    // Errors say what is wrong.
    let (status, err) = http(
        port,
        "POST",
        "/v1/tickets",
        Some(&json!({"queue": "casual", "players": [player("x", 1.0)]})),
    );
    assert_eq!(
        (status, &err["error"]["code"]),
        (404, &json!("UnknownQueue"))
    );
    let far = json!({"queue": "ranked", "players": [{"id": "x", "skill": 1.0, "latencies": {"eu-west-1": 500}}]});
    let (status, err) = http(port, "POST", "/v1/tickets", Some(&far));
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("80 ms")),
        "{err}"
    );
    let (status, _) = http(port, "POST", "/v1/tickets", Some(&json!("not a ticket")));
    assert_eq!(status, 400);
    assert_eq!(http(port, "GET", "/v1/tickets/t-99-1", None).0, 404);

    let (status, metrics) = http(port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = metrics.as_str().expect("text");
    for needle in [
        "matchmaker_matches_total{tenant=\"acme\",pool=\"mm\",queue=\"ranked\"} 1",
        "matchmaker_tickets_total{tenant=\"acme\",pool=\"mm\",queue=\"duel\",state=\"timed_out\"} 1",
        "matchmaker_wait_seconds_count{tenant=\"acme\",pool=\"mm\",queue=\"ranked\"} 10",
        "matchmaker_match_skill_spread_count",
        "matchmaker_tickets_pending{tenant=\"acme\",pool=\"mm\",queue=\"ranked\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(
        !text.contains(&ids[0]),
        "no ticket ids in metric labels: {text}"
    );
}

/// Lays out `dir` like a ConfigMap volume: `matchmaker.json -> ..data/matchmaker.json`, and
/// `..data -> ..<version>`; a new version is swapped in atomically by renaming a new symlink
/// over `..data`.
fn configmap_write(dir: &Path, version: &str, doc: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).expect("version dir");
    std::fs::write(versioned.join("matchmaker.json"), doc).expect("write");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap");
    let link = dir.join("matchmaker.json");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/matchmaker.json", &link).expect("symlink");
    }
}

#[test]
fn reloads_its_configuration_without_a_restart() {
    let dir = temp_dir("reload");
    let volume = dir.join("volume");
    std::fs::create_dir_all(&volume).expect("volume");
    let queue = |name: &str| {
        json!({"name": name, "playersPerMatch": 2, "teams": 1,
               "skillWindow": {"initial": 50, "wideningPerSecond": 0, "maximum": 50}})
    };
    let doc =
        |queues: Vec<Value>| json!({"tenant": "acme", "pool": "mm", "queues": queues}).to_string();
    configmap_write(&volume, "v1", &doc(vec![queue("a")]));
    let mm = start(dir.clone(), &volume.join("matchmaker.json"), &[]);
    let port = mm.port;
    wait_until("ready", || http(port, "GET", "/readyz", None).0 == 200);
    let ticket = |q: &str| json!({"queue": q, "players": [{"id": "x", "skill": 1.0}]});
    assert_eq!(http(port, "POST", "/v1/tickets", Some(&ticket("a"))).0, 201);
    assert_eq!(http(port, "POST", "/v1/tickets", Some(&ticket("b"))).0, 404);

    configmap_write(&volume, "v2", &doc(vec![queue("a"), queue("b")]));
    wait_until("queue b accepted", || {
        http(port, "POST", "/v1/tickets", Some(&ticket("b"))).0 == 201
    });
    let (_, queues) = http(port, "GET", "/v1/queues", None);
    assert_eq!(
        queues["queues"].as_array().map(Vec::len),
        Some(2),
        "{queues}"
    );

    // A broken document is refused and the running configuration stays.
    configmap_write(&volume, "v3", "{\"queues\": [{\"name\": \"BAD\"}]}");
    wait_until("the refusal counted", || {
        let (_, m) = http(port, "GET", "/metrics", None);
        m.as_str()
            .is_some_and(|t| t.contains("matchmaker_config_reloads_total{outcome=\"refused\"} 1"))
    });
    assert_eq!(http(port, "POST", "/v1/tickets", Some(&ticket("b"))).0, 201);
    assert_eq!(http(port, "GET", "/readyz", None).0, 200);

    // Removing a queue: its waiting tickets leave with reason QueueRemoved.
    let far = json!({"queue": "a", "players": [{"id": "y", "skill": 1000.0}]});
    let (_, waiting) = http(port, "POST", "/v1/tickets", Some(&far));
    let id = waiting["id"].as_str().expect("id").to_owned();
    configmap_write(&volume, "v4", &doc(vec![queue("b")]));
    wait_until("queue a removed", || {
        http(port, "POST", "/v1/tickets", Some(&ticket("a"))).0 == 404
    });
    let (_, t) = http(port, "GET", &format!("/v1/tickets/{id}"), None);
    assert_eq!(
        (&t["state"], &t["reason"]),
        (&json!("Removed"), &json!("QueueRemoved"))
    );
}

#[test]
fn one_tenant_cannot_flood_another() {
    let dir = temp_dir("tenants");
    let config = dir.join("pools.json");
    let pool = |tenant: &str| {
        json!({"tenant": tenant, "pool": "mm", "queues": [{"name": "q", "playersPerMatch": 4,
               "skillWindow": {"initial": 10, "maximum": 10}}]})
    };
    let doc = json!({"pools": [pool("noisy"), pool("quiet")], "tenantLimits": {"noisy": 5}});
    std::fs::write(&config, doc.to_string()).expect("config");
    let mm = start(dir, &config, &[]);
    let port = mm.port;
    wait_until("ready", || http(port, "GET", "/readyz", None).0 == 200);
    let ticket = |tenant: &str, skill: f64| json!({"tenant": tenant, "queue": "q", "players": [{"id": "x", "skill": skill}]});
    let batch: Vec<Value> = (0..8)
        .map(|i| ticket("noisy", f64::from(i) * 100.0))
        .collect();
    let (status, results) = http(
        port,
        "POST",
        "/v1/tickets/batch",
        Some(&json!({"tickets": batch})),
    );
    assert_eq!(status, 200);
    let results = results["results"].as_array().expect("results").clone();
    assert!(
        results[..5].iter().all(|r| r["created"] == true),
        "{results:?}"
    );
    assert!(
        results[5..]
            .iter()
            .all(|r| r["error"]["code"] == "TenantLimitExceeded"),
        "{results:?}"
    );
    let (status, err) = http(port, "POST", "/v1/tickets", Some(&ticket("noisy", 1.0)));
    assert_eq!(
        (status, &err["error"]["code"]),
        (429, &json!("TenantLimitExceeded"))
    );
    // At its limit, the tenant is refused before its ticket is read: even a ticket that would
    // be invalid (no players) gets 429, not 400. Another tenant's invalid ticket is still 400.
    let empty = |tenant: &str| json!({"tenant": tenant, "queue": "q", "players": []});
    let (status, err) = http(port, "POST", "/v1/tickets", Some(&empty("noisy")));
    assert_eq!(
        (status, &err["error"]["code"]),
        (429, &json!("TenantLimitExceeded"))
    );
    let (status, err) = http(port, "POST", "/v1/tickets", Some(&empty("quiet")));
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("InvalidTicket"))
    );
    // The quiet tenant is served, and its tickets only meet each other.
    let mut quiet = Vec::new();
    for _ in 0..4 {
        let (status, t) = http(port, "POST", "/v1/tickets", Some(&ticket("quiet", 5.0)));
        assert_eq!(status, 201, "{t}");
        quiet.push(t["id"].as_str().expect("id").to_owned());
    }
    let (_, t) = http(
        port,
        "GET",
        &format!("/v1/tickets/{}?waitSeconds=10", quiet[0]),
        None,
    );
    assert_eq!(t["state"], "Matched", "{t}");
    let (_, m) = http(
        port,
        "GET",
        &format!(
            "/v1/matches/{}",
            t["assignment"]["matchId"].as_str().expect("id")
        ),
        None,
    );
    assert_eq!(m["tenant"], "quiet");
    let mut members: Vec<String> = m["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .flat_map(|t| t["tickets"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    members.sort();
    quiet.sort();
    assert_eq!(members, quiet);
    let (status, err) = http(
        port,
        "POST",
        "/v1/tickets",
        Some(&json!({"queue": "q", "players": [{"id": "x", "skill": 1.0}]})),
    );
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("TenantRequired"))
    );
}

fn sha256_hex(token: &str) -> String {
    gamecell_operator::matchmaker::config::token_hash(token)
}

#[test]
fn a_tenant_token_cannot_act_as_another_tenant() {
    let dir = temp_dir("tokens");
    let config = dir.join("pools.json");
    let pool = |tenant: &str| {
        json!({"tenant": tenant, "pool": "mm", "queues": [{"name": "q", "playersPerMatch": 2, "teams": 1,
               "skillWindow": {"initial": 10, "maximum": 10}, "backfill": true}]})
    };
    std::fs::write(
        &config,
        json!({"pools": [pool("alpha"), pool("beta")]}).to_string(),
    )
    .expect("config");
    let (token_a, token_b) = ("alpha-secret-token", "beta-secret-token");
    let tokens = dir.join("tenants.json");
    std::fs::write(
        &tokens,
        json!({"tenants": {"alpha": sha256_hex(token_a)}}).to_string(),
    )
    .expect("tokens");
    let tokens_arg = tokens.display().to_string();
    let mm = start(dir, &config, &["--tenant-tokens", &tokens_arg]);
    let port = mm.port;
    let (a, b) = (Some(token_a), Some(token_b));
    wait_until("ready", || http(port, "GET", "/readyz", None).0 == 200);
    let ticket = |tenant: Option<&str>, id: &str| {
        let mut t = json!({"queue": "q", "players": [{"id": id, "skill": 1.0}]});
        if let Some(tenant) = tenant {
            t["tenant"] = json!(tenant);
        }
        t
    };

    // No token, an unknown token (beta's is not loaded yet): 401, nothing created.
    for token in [None, b, Some("alpha")] {
        let (status, err) = http_as(port, token, "POST", "/v1/tickets", Some(&ticket(None, "x")));
        assert_eq!(
            (status, &err["error"]["code"]),
            (401, &json!("Unauthorized")),
            "{token:?}"
        );
        assert!(
            !err.to_string().contains(token_a),
            "no credential in an answer"
        );
    }
    assert_eq!(http_as(port, None, "GET", "/v1/queues", None).0, 401);

    // Alpha's token acts as alpha: without naming it, and naming it.
    let (status, mine) = http_as(port, a, "POST", "/v1/tickets", Some(&ticket(None, "a1")));
    assert_eq!((status, &mine["tenant"]), (201, &json!("alpha")), "{mine}");
    let mine = mine["id"].as_str().expect("id").to_owned();
    let (status, _) = http_as(
        port,
        a,
        "POST",
        "/v1/tickets",
        Some(&ticket(Some("alpha"), "a2")),
    );
    assert_eq!(status, 201);
    let (_, queues) = http_as(port, a, "GET", "/v1/queues", None);
    let ids: Vec<&str> = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter_map(|q| q["id"].as_str())
        .collect();
    assert_eq!(ids, ["alpha/mm/q"], "only its own queues");

    // ... and never as beta: creating, batching, listing, reading the feed: 403.
    let (status, err) = http_as(
        port,
        a,
        "POST",
        "/v1/tickets",
        Some(&ticket(Some("beta"), "b1")),
    );
    assert_eq!(
        (status, &err["error"]["code"]),
        (403, &json!("Forbidden")),
        "{err}"
    );
    let batch = json!({"tickets": [ticket(None, "a3"), ticket(Some("beta"), "b2")]});
    assert_eq!(
        http_as(port, a, "POST", "/v1/tickets/batch", Some(&batch)).0,
        403
    );
    assert_eq!(
        http_as(port, a, "GET", "/v1/queues?tenant=beta", None).0,
        403
    );
    assert_eq!(
        http_as(port, a, "GET", "/v1/matches?tenant=beta&queue=q", None).0,
        403
    );

    // Beta gets its credential (a Secret update): the file is reloaded without a restart.
    std::fs::write(
        &tokens,
        json!({"tenants": {"alpha": sha256_hex(token_a), "beta": sha256_hex(token_b)}}).to_string(),
    )
    .expect("tokens");
    wait_until("beta's token accepted", || {
        http_as(port, b, "GET", "/v1/queues", None).0 == 200
    });
    // Nothing of alpha's batch was created: beta's queue is empty, alpha still waits on its own.
    let (_, queues) = http_as(port, b, "GET", "/v1/queues", None);
    assert_eq!(queues["queues"][0]["pending"], 0, "{queues}");
    let (status, theirs) = http_as(port, b, "POST", "/v1/tickets", Some(&ticket(None, "b3")));
    assert_eq!(
        (status, &theirs["tenant"]),
        (201, &json!("beta")),
        "{theirs}"
    );
    let theirs = theirs["id"].as_str().expect("id").to_owned();

    // Beta cannot read, watch or cancel alpha's ticket by its id: 404, as if it did not exist.
    for (method, path) in [
        ("GET", format!("/v1/tickets/{mine}")),
        ("GET", format!("/v1/tickets/{mine}/events?waitSeconds=0")),
        ("DELETE", format!("/v1/tickets/{mine}")),
    ] {
        let (status, err) = http_as(port, b, method, &path, None);
        assert_eq!(
            (status, &err["error"]["code"]),
            (404, &json!("NotFound")),
            "{method} {path}"
        );
    }
    let (status, t) = http_as(port, a, "GET", &format!("/v1/tickets/{mine}"), None);
    assert_eq!(status, 200);
    assert_ne!(t["state"], "Cancelled", "beta's cancel did nothing");

    // Alpha's two tickets match each other; beta cannot read the match or ask for backfill.
    let (_, t) = http_as(
        port,
        a,
        "GET",
        &format!("/v1/tickets/{mine}?waitSeconds=10"),
        None,
    );
    assert_eq!(t["state"], "Matched", "{t}");
    let match_id = t["assignment"]["matchId"]
        .as_str()
        .expect("match")
        .to_owned();
    assert_eq!(
        http_as(port, b, "GET", &format!("/v1/matches/{match_id}"), None).0,
        404
    );
    let lost = json!({"lostPlayers": ["a1"]});
    assert_eq!(
        http_as(
            port,
            b,
            "POST",
            &format!("/v1/matches/{match_id}/backfill"),
            Some(&lost)
        )
        .0,
        404
    );
    let (status, backfill) = http_as(
        port,
        a,
        "POST",
        &format!("/v1/matches/{match_id}/backfill"),
        Some(&lost),
    );
    assert_eq!(status, 201, "{backfill}");
    let backfill = backfill["id"].as_str().expect("backfill").to_owned();
    assert_eq!(
        http_as(port, b, "GET", &format!("/v1/backfills/{backfill}"), None).0,
        404
    );
    assert_eq!(
        http_as(
            port,
            b,
            "DELETE",
            &format!("/v1/backfills/{backfill}"),
            None
        )
        .0,
        404
    );
    assert_eq!(
        http_as(port, a, "GET", &format!("/v1/backfills/{backfill}"), None).0,
        200
    );

    // Alpha cannot touch beta's ticket either; beta can.
    assert_eq!(
        http_as(port, a, "DELETE", &format!("/v1/tickets/{theirs}"), None).0,
        404
    );
    assert_eq!(
        http_as(port, b, "DELETE", &format!("/v1/tickets/{theirs}"), None).0,
        200
    );
    // Health needs no token.
    assert_eq!(http(port, "GET", "/livez", None).0, 200);
}
