//! Scale benchmark of the operator process (issue 5): N GameCells of every tier (shared cells
//! with several tenants), 3N PlayerServices and N MatchmakingPools applied to a real local API
//! server, with the operator running as its own process against the AWS emulator or its
//! in-memory fake cloud. Reports time to Ready per kind, API requests and cloud calls per
//! object (counted by the operator itself on `/metrics`), an idle window's writes and cloud
//! calls, the process's peak RSS and CPU seconds, reconcile durations, and the floor: how long a
//! plain client takes to create the same objects the operator created, with no operator.
//!
//! Run by `make bench` (hack/bench.sh starts a cluster and emulator of its own); alone:
//! `cargo bench --bench operator -- --n 100 --cloud aws --operator-bin <path>` with KUBECONFIG
//! and AWS_ENDPOINT_URL set. Figures are measurements, never assertions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use gamecell_operator::crds::{GameCell, MatchmakingPool, PlayerService};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Node, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const MANAGER: &str = "gamecell-bench";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=gamecell-operator";

#[derive(Parser, Debug)]
struct Args {
    /// Number of GameCells (3N PlayerServices and N MatchmakingPools come with them).
    #[arg(long, default_value_t = 100)]
    n: usize,
    /// `aws` (the emulator at AWS_ENDPOINT_URL) or `fake` (in the operator's memory).
    #[arg(long, default_value = "aws")]
    cloud: String,
    /// Length of the idle window after convergence.
    #[arg(long, default_value_t = 300)]
    idle_seconds: u64,
    /// Resync period given to the operator (several resyncs fall in the idle window).
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Cells created one at a time before the scale run, for the single-cell latency.
    #[arg(long, default_value_t = 20)]
    single: usize,
    /// Requests in flight from this client (applies, and the floor's creates).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The operator binary (a release build).
    #[arg(long)]
    operator_bin: PathBuf,
    /// Port of the operator's admin server on 127.0.0.1.
    #[arg(long, default_value_t = 18080)]
    admin_port: u16,
    /// Where the Markdown report goes (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up waiting for convergence after this long.
    #[arg(long, default_value_t = 1800)]
    timeout_seconds: u64,
    /// cargo bench passes --bench; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Shared,
    Dedicated,
    Enterprise,
}

/// One generated cell with its services.
#[derive(Clone)]
struct CellPlan {
    name: String,
    tier: Tier,
    cell: Value,
    namespaces: Vec<String>,
    services: Vec<Value>,
}

const TENANTS_PER_SHARED_CELL: usize = 3;

fn tier_of(i: usize) -> Tier {
    // 40 % shared (3 tenants each), 40 % dedicated, 20 % enterprise.
    match i % 5 {
        0 | 1 => Tier::Shared,
        2 | 3 => Tier::Dedicated,
        _ => Tier::Enterprise,
    }
}

fn data_stores(tier: Tier) -> Value {
    let mut sql = json!({"engine": "Postgres", "version": "16.4", "instanceClass": "db.t4g.medium",
                         "storageGib": 20, "backupRetentionDays": 7});
    if tier == Tier::Enterprise {
        sql["backupRetentionDays"] = json!(14);
    }
    json!({
        "sql": sql,
        "cache": {"nodeType": "cache.t4g.small", "replicas": 1},
        "documentTables": [{"name": "profiles", "partitionKey": {"name": "playerId", "type": "S"},
                            "billing": "PayPerRequest"}],
        "buckets": [{"name": "replays"}],
    })
}

fn plan(i: usize, prefix: &str) -> CellPlan {
    let tier = tier_of(i);
    let name = format!("{prefix}{i:04}");
    let region = ["eu-west-1", "us-east-1", "us-west-2"][i % 3];
    let mut spec = json!({
        "capacity": {"maxConcurrentPlayers": 1_000_000},
        "dataStores": data_stores(tier),
        "deletionPolicy": "Retain",
    });
    let namespaces: Vec<String>;
    match tier {
        Tier::Shared => {
            namespaces = (0..TENANTS_PER_SHARED_CELL)
                .map(|t| format!("{name}-t{t}"))
                .collect();
            spec["tier"] = json!("Shared");
            spec["provider"] =
                json!({"aws": {"region": region, "clusterName": format!("bench-shared-{region}")}});
            spec["tenants"] = namespaces
                .iter()
                .enumerate()
                .map(|(t, ns)| {
                    json!({"name": format!("{name}-t{t}"), "namespace": ns,
                                      "quota": {"cpu": "4", "memory": "8Gi", "pods": 20,
                                                "maxConcurrentPlayers": 100_000}})
                })
                .collect();
        }
        Tier::Dedicated => {
            namespaces = vec![format!("{name}-live")];
            spec["tier"] = json!("Dedicated");
            spec["provider"] = json!({"aws": {"region": region, "clusterName": format!("bench-dedicated-{region}")}});
            spec["tenants"] = json!([{"name": "game", "namespace": namespaces[0]}]);
            spec["nodes"] = json!({"nodeRoleArn": "arn:aws:iam::123456789012:role/bench-nodes",
                                   "subnetIds": ["subnet-0a1b2c3d4e5f60718"],
                                   "instanceTypes": ["c7g.xlarge"], "minSize": 1, "maxSize": 3, "desiredSize": 1});
        }
        Tier::Enterprise => {
            namespaces = vec![format!("{name}-prod")];
            spec["tier"] = json!("Enterprise");
            spec["provider"] = json!({"aws": {"region": "ap-northeast-1",
                "accountRoleArn": "arn:aws:iam::345678901234:role/gamecell-operator",
                "externalId": "gamecell-bench", "clusterName": "bench-enterprise-apne1"}});
            spec["tenants"] = json!([{"name": "game", "namespace": namespaces[0]}]);
            spec["compliance"] = json!({"allowedRegions": ["ap-northeast-1"],
                "kmsKeyArn": "arn:aws:kms:ap-northeast-1:345678901234:key/6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                "minBackupRetentionDays": 14, "deletionProtection": true,
                "allowedRegistries": ["345678901234.dkr.ecr.ap-northeast-1.amazonaws.com/"]});
        }
    }
    let cell = json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
                      "metadata": {"name": name}, "spec": spec});
    let image = |svc: &str| match tier {
        Tier::Enterprise => {
            format!("345678901234.dkr.ecr.ap-northeast-1.amazonaws.com/bench/{svc}:1.0.0")
        }
        _ => format!("ghcr.io/bench/{svc}:1.0.0"),
    };
    let mut services = Vec::new();
    for (k, svc) in ["lobby", "profiles", "inventory"].iter().enumerate() {
        let ns = &namespaces[k % namespaces.len()];
        services.push(
            json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
            "metadata": {"name": svc, "namespace": ns},
            "spec": {"cellRef": {"name": name}, "image": image(svc), "replicas": 1,
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                   "limits": {"cpu": "200m", "memory": "128Mi"}},
                     "dataStores": {"sql": true, "cache": true},
                     "playersPerReplica": 1000}}),
        );
    }
    let mut pool = json!({"apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
        "metadata": {"name": "ranked", "namespace": namespaces[0]},
        "spec": {"cellRef": {"name": name}, "replicas": 1,
                 "queues": [{"name": "5v5", "playersPerMatch": 10, "teams": 2,
                             "skillWindow": {"initial": 50, "wideningPerSecond": 25, "maximum": 300},
                             "maxLatencyMs": 100, "timeoutSeconds": 60}]}});
    if tier == Tier::Enterprise {
        // Enterprise cells pull only from the customer's registry: the customer mirrors the
        // built-in matchmaker there.
        pool["spec"]["image"] = json!(image("matchmaker"));
    }
    services.push(pool);
    CellPlan {
        name,
        tier,
        cell,
        namespaces,
        services,
    }
}

/// A kwok node for a dedicated cell's node group (labelled and tainted as the operator's
/// node-group placement expects), so its pods schedule.
fn node_for(cell: &str) -> Value {
    let name = format!("bench-node-{cell}");
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"gamecell.dev/cell": cell, "kubernetes.io/hostname": name, "type": "kwok"}},
        "spec": {"taints": [{"key": "gamecell.dev/cell", "value": cell, "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                   "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                   "nodeInfo": {"architecture": "amd64", "kubeProxyVersion": "fake", "kubeletVersion": "fake",
                                "operatingSystem": "linux"},
                   "phase": "Running"}})
}

fn ready(obj: &DynamicObject) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// First time each object of a kind was seen Ready, keyed by namespace/name.
type ReadyTimes = Arc<Mutex<HashMap<String, Instant>>>;

fn watch_ready(client: &Client, ar: ApiResource, times: ReadyTimes) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let Ok(event) = event else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let objects: Vec<DynamicObject> = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => vec![o],
                _ => continue,
            };
            let now = Instant::now();
            let mut times = times.lock().expect("lock");
            for o in objects.iter().filter(|o| ready(o)) {
                let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                times.entry(key).or_insert(now);
            }
        }
    });
}

fn key_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn ar_of(obj: &Value) -> ApiResource {
    match obj["kind"].as_str() {
        Some("GameCell") => ApiResource::erase::<GameCell>(&()),
        Some("PlayerService") => ApiResource::erase::<PlayerService>(&()),
        Some("MatchmakingPool") => ApiResource::erase::<MatchmakingPool>(&()),
        Some("Node") => ApiResource::erase::<Node>(&()),
        other => panic!("unexpected kind {other:?}"),
    }
}

async fn apply(client: &Client, obj: &Value) -> kube::Result<()> {
    let ar = ar_of(obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map(|_| ())
}

/// Retries an apply a few times (the namespace may not exist yet, the API server may be busy).
async fn apply_retrying(client: &Client, obj: &Value) {
    let mut delay = Duration::from_millis(100);
    for attempt in 0.. {
        match apply(client, obj).await {
            Ok(()) => return,
            Err(e) if attempt < 200 => {
                if attempt > 20 {
                    eprintln!("bench: apply {} retrying: {e}", key_of(obj));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => panic!("bench: apply {} failed: {e}", key_of(obj)),
        }
    }
}

async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/crd");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/crd")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("crd file");
        for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
            let crd: CustomResourceDefinition = serde_json::from_value(doc).expect("a CRD");
            let name = crd.name_any();
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("apply CRD");
            for _ in 0..100 {
                let established = api
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The operator process and what we read of it.
struct Operator {
    child: tokio::process::Child,
    admin: String,
}

impl Operator {
    async fn start(args: &Args, log: &std::path::Path) -> Self {
        let log_file = std::fs::File::create(log).expect("operator log");
        let child = tokio::process::Command::new(&args.operator_bin)
            .env(
                "GAMECELL_ADMIN_ADDR",
                format!("127.0.0.1:{}", args.admin_port),
            )
            .env("GAMECELL_CLOUD", &args.cloud)
            .env("GAMECELL_RESYNC_SECONDS", args.resync_seconds.to_string())
            .env("RUST_LOG", "warn")
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("starting the operator");
        let op = Self {
            child,
            admin: format!("http://127.0.0.1:{}", args.admin_port),
        };
        for _ in 0..600 {
            if http_get(&format!("{}/readyz", op.admin))
                .await
                .is_some_and(|(code, _)| code == 200)
            {
                return op;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the operator did not become ready; log: {}", log.display());
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    async fn metrics(&self) -> Metrics {
        let (_, body) = http_get(&format!("{}/metrics", self.admin))
            .await
            .expect("metrics");
        Metrics::parse(&body)
    }

    /// Peak resident set (VmHWM) in MiB and CPU seconds (user + system) so far.
    fn rss_and_cpu(&self) -> (f64, f64) {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at field 3.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'.
        (hwm_kib / 1024.0, (ticks(11) + ticks(12)) / 100.0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// Plain HTTP/1.1 GET on 127.0.0.1 (the operator's admin server): status code and body.
async fn http_get(url: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    // The admin server may answer chunked; strip chunk sizes if so.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((code, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The operator's counters, by metric line (name with labels) -> value.
#[derive(Clone, Default)]
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    fn delta(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }

    /// Sum of `metric{...}` values grouped by one label.
    fn by_label(&self, metric: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(labels) = k.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
                continue;
            };
            let value = labels
                .trim_end_matches('}')
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{label}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default();
            *out.entry(value).or_insert(0.0) += v;
        }
        out
    }

    /// Writes (create/update/patch/delete) to the API server.
    fn writes(&self) -> f64 {
        self.by_label("gamecell_operator_kube_requests_total", "verb")
            .iter()
            .filter(|(verb, _)| {
                matches!(
                    verb.as_str(),
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn cloud_by_operation(&self) -> BTreeMap<String, f64> {
        self.by_label("gamecell_operator_cloud_calls_total", "operation")
    }

    /// p50 and p99 of the reconcile duration of `kind` from the histogram's buckets (the upper
    /// bound of the bucket the quantile falls in).
    fn reconcile_quantiles(&self, kind: &str) -> (String, String, f64) {
        let h = self.histogram("gamecell_operator_reconcile_duration_seconds", "kind", kind);
        (h.quantile(0.5), h.quantile(0.99), h.count)
    }

    /// The histogram `metric` for the series whose `label` is `value`.
    fn histogram(&self, metric: &str, label: &str, value: &str) -> HistogramSeries {
        let bucket = format!("{metric}_bucket{{");
        let wanted = format!("{label}=\"{value}\"");
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let labels = k.strip_prefix(&bucket)?;
                if !labels.contains(&wanted) {
                    return None;
                }
                let le = labels.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let series = |suffix: &str| {
            self.0
                .get(&format!("{metric}_{suffix}{{{wanted}}}"))
                .copied()
                .unwrap_or(0.0)
        };
        HistogramSeries {
            count: buckets.last().map_or(0.0, |b| b.1),
            sum: series("sum"),
            buckets,
        }
    }

    /// The values of `label` in the series of histogram `metric`.
    fn histogram_labels(&self, metric: &str, label: &str) -> Vec<String> {
        // `by_label` groups by the label's value: each appears once, in order.
        self.by_label(&format!("{metric}_count"), label)
            .into_iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(k, _)| k)
            .collect()
    }
}

/// One series of a histogram: cumulative buckets (upper bound, count), count and sum.
struct HistogramSeries {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

impl HistogramSeries {
    /// The upper bound of the bucket quantile `p` falls in.
    fn quantile(&self, p: f64) -> String {
        let largest = self
            .buckets
            .iter()
            .rev()
            .find(|(le, _)| le.is_finite())
            .map_or(0.0, |b| b.0);
        self.buckets
            .iter()
            .find(|(_, c)| *c >= p * self.count)
            .map_or("-".to_owned(), |(le, _)| {
                if le.is_infinite() {
                    format!("> {largest} s")
                } else {
                    format!("≤ {} ms", le * 1000.0)
                }
            })
    }

    fn mean_ms(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count * 1000.0
        } else {
            f64::NAN
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// The kinds of object the operator creates, for the floor.
fn created_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
    ]
}

/// Everything the operator created (by its managed-by label), as plain objects a client could
/// create: server-set fields, owners and status removed.
async fn snapshot_created(client: &Client) -> Vec<(ApiResource, Value)> {
    let mut out = Vec::new();
    for ar in created_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = api
            .list(&ListParams::default().labels(MANAGED_BY))
            .await
            .expect("list created objects");
        for o in list.items {
            let mut v = serde_json::to_value(&o).expect("json");
            let meta = v["metadata"].take();
            v["metadata"] = json!({"name": meta["name"], "labels": meta["labels"],
                                   "annotations": meta["annotations"]});
            if let Some(ns) = meta["namespace"].as_str() {
                v["metadata"]["namespace"] = json!(format!("f-{ns}"));
            }
            if ar.kind == "Namespace" {
                v["metadata"]["name"] =
                    json!(format!("f-{}", meta["name"].as_str().unwrap_or_default()));
            }
            if let Some(obj) = v.as_object_mut() {
                obj.remove("status");
            }
            if ar.kind == "Service"
                && let Some(spec) = v["spec"].as_object_mut()
            {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            out.push((ar.clone(), v));
        }
    }
    out
}

/// Creates the snapshot with a plain client (namespaces first), `concurrency` requests in
/// flight; returns the wall time and the number of objects.
async fn create_floor(
    client: &Client,
    objects: &[(ApiResource, Value)],
    concurrency: usize,
) -> Duration {
    let start = Instant::now();
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        objects.iter().partition(|(ar, _)| ar.kind == "Namespace");
    for batch in [namespaces, rest] {
        futures::stream::iter(batch)
            .map(|(ar, v)| async move {
                let api: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                    None => Api::all_with(client.clone(), ar),
                };
                let obj: DynamicObject = serde_json::from_value(v.clone()).expect("object");
                let mut delay = Duration::from_millis(50);
                for _ in 0..50 {
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => return,
                        Err(kube::Error::Api(s)) if s.code == 409 => return,
                        Err(_) => {
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(1));
                        }
                    }
                }
                eprintln!("bench: floor create of {} failed", obj.name_any());
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
    }
    start.elapsed()
}

async fn floor_deployments_available(client: &Client, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let api: Api<Deployment> = Api::all(client.clone());
    while start.elapsed() < timeout {
        let list = api
            .list(&ListParams::default().labels(MANAGED_BY))
            .await
            .ok()?;
        let floor: Vec<_> = list
            .items
            .iter()
            .filter(|d| d.namespace().is_some_and(|ns| ns.starts_with("f-")))
            .collect();
        let available = floor.iter().all(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                >= d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        });
        if !floor.is_empty() && available {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Seeds the emulator with the EKS clusters the generated cells name (dedicated node groups
/// join an existing cluster; enterprise clusters are the customer's).
fn seed_emulator(args: &Args, plans: &[CellPlan], dir: &std::path::Path) {
    let mut seen = std::collections::BTreeSet::new();
    let mut docs = Vec::new();
    for p in plans {
        let cluster = p.cell["spec"]["provider"]["aws"]["clusterName"].to_string();
        if p.tier != Tier::Shared && seen.insert(cluster) {
            docs.push(serde_json::to_string(&p.cell).expect("json"));
        }
    }
    let file = dir.join("seed-cells.yaml");
    std::fs::write(&file, docs.join("\n---\n")).expect("write seed file");
    let seed = args.operator_bin.with_file_name("seed-emulator");
    let status = std::process::Command::new(&seed)
        .arg(&file)
        .status()
        .expect("running seed-emulator");
    assert!(status.success(), "seed-emulator failed");
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = Client::try_default().await.expect("KUBECONFIG");
    let workdir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench/{}-{}", args.cloud, args.n));
    std::fs::create_dir_all(&workdir).expect("workdir");
    let mut report = String::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };
    eprintln!("bench: installing CRDs");
    install_crds(&client).await;

    let singles: Vec<CellPlan> = (0..args.single)
        .map(|i| plan(i * 5 + 2, "single-"))
        .collect();
    let plans: Vec<CellPlan> = (0..args.n).map(|i| plan(i, "bench-")).collect();
    if args.cloud == "aws" {
        eprintln!("bench: seeding the emulator's EKS clusters");
        let all: Vec<CellPlan> = plans.iter().chain(singles.iter()).cloned().collect();
        seed_emulator(&args, &all, &workdir);
    }
    eprintln!("bench: creating kwok nodes for the dedicated cells' node groups");
    let nodes: Vec<Value> = plans
        .iter()
        .chain(singles.iter())
        .filter(|p| p.tier == Tier::Dedicated)
        .map(|p| node_for(&p.name))
        .collect();
    futures::stream::iter(nodes.iter())
        .map(|n| apply_retrying(&client, n))
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;

    let cell_ready: ReadyTimes = ReadyTimes::default();
    let ps_ready: ReadyTimes = ReadyTimes::default();
    let mmp_ready: ReadyTimes = ReadyTimes::default();
    watch_ready(
        &client,
        ApiResource::erase::<GameCell>(&()),
        cell_ready.clone(),
    );
    watch_ready(
        &client,
        ApiResource::erase::<PlayerService>(&()),
        ps_ready.clone(),
    );
    watch_ready(
        &client,
        ApiResource::erase::<MatchmakingPool>(&()),
        mmp_ready.clone(),
    );

    eprintln!("bench: starting the operator ({} cloud)", args.cloud);
    let operator = Operator::start(&args, &workdir.join("operator.log")).await;
    let (rss_start, _) = operator.rss_and_cpu();

    // 1. Single cells, one at a time: apply -> Ready.
    let mut single_times = Vec::new();
    for p in &singles {
        let start = Instant::now();
        apply_retrying(&client, &p.cell).await;
        let key = format!("/{}", p.name);
        loop {
            if let Some(t) = cell_ready.lock().expect("lock").get(&key) {
                single_times.push(t.duration_since(start).as_secs_f64());
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                eprintln!("bench: single cell {} not Ready after 120 s", p.name);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cells_api: Api<GameCell> = Api::all(client.clone());
    for p in &singles {
        let _ = cells_api.delete(&p.name, &DeleteParams::default()).await;
    }
    for p in &singles {
        for _ in 0..600 {
            if cells_api.get_opt(&p.name).await.ok().flatten().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    single_times.sort_by(f64::total_cmp);

    // 2. The scale run.
    let before = operator.metrics().await;
    let (_, cpu_before) = operator.rss_and_cpu();
    let applied: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let namespaces_after: Arc<Mutex<Vec<f64>>> = Arc::default();
    let start = Instant::now();
    eprintln!(
        "bench: applying {} cells, {} services",
        plans.len(),
        plans.len() * 4
    );
    futures::stream::iter(plans.iter())
        .map(|p| {
            let client = client.clone();
            let applied = applied.clone();
            let namespaces_after = namespaces_after.clone();
            async move {
                let cell_applied = Instant::now();
                applied
                    .lock()
                    .expect("lock")
                    .insert(format!("/{}", p.name), cell_applied);
                apply_retrying(&client, &p.cell).await;
                // Services go into the cell's namespaces once the operator has made them.
                let ns_api: Api<Namespace> = Api::all(client.clone());
                for ns in &p.namespaces {
                    while ns_api.get_opt(ns).await.ok().flatten().is_none() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                namespaces_after
                    .lock()
                    .expect("lock")
                    .push(cell_applied.elapsed().as_secs_f64());
                for s in &p.services {
                    applied
                        .lock()
                        .expect("lock")
                        .insert(key_of(s), Instant::now());
                    apply_retrying(&client, s).await;
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;
    let applied_at = start.elapsed();
    eprintln!(
        "bench: applied in {:.1} s; waiting for Ready",
        applied_at.as_secs_f64()
    );
    let total = plans.len() * 5;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let all_keys: Vec<String> = plans
        .iter()
        .flat_map(|p| std::iter::once(format!("/{}", p.name)).chain(p.services.iter().map(key_of)))
        .collect();
    loop {
        let n = {
            let (c, p, m) = (
                cell_ready.lock().expect("lock"),
                ps_ready.lock().expect("lock"),
                mmp_ready.lock().expect("lock"),
            );
            all_keys
                .iter()
                .filter(|k| c.contains_key(*k) || p.contains_key(*k) || m.contains_key(*k))
                .count()
        };
        if n >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged = start.elapsed();
    let after = operator.metrics().await;
    let (rss_converged, cpu_converged) = operator.rss_and_cpu();

    // Per-kind time from apply to Ready.
    let applied = applied.lock().expect("lock").clone();
    let per_kind = |times: &ReadyTimes, keys: Vec<String>| {
        let times = times.lock().expect("lock");
        let mut lat: Vec<f64> = keys
            .iter()
            .filter_map(|k| Some(times.get(k)?.duration_since(*applied.get(k)?).as_secs_f64()))
            .collect();
        lat.sort_by(f64::total_cmp);
        (
            lat.len(),
            keys.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
        )
    };
    let cell_keys: Vec<String> = plans.iter().map(|p| format!("/{}", p.name)).collect();
    let svc_keys = |kind: &str| -> Vec<String> {
        plans
            .iter()
            .flat_map(|p| p.services.iter())
            .filter(|s| s["kind"] == kind)
            .map(key_of)
            .collect()
    };

    let conv = after.delta(&before);

    // 3. Settling: Ready is not the end of convergence (a cell's status still takes in its
    // services' readiness, a rollout still completes). The idle window starts once the operator
    // has written nothing for SETTLE_QUIET, so it measures steady state, not the tail of
    // convergence.
    const SETTLE_QUIET: Duration = Duration::from_secs(20);
    let mut last_writes = operator.metrics().await.writes();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < SETTLE_QUIET
        && start.elapsed() < converged + Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let writes = operator.metrics().await.writes();
        if writes > last_writes {
            last_writes = writes;
            quiet_since = Instant::now();
        }
    }
    let settled = start.elapsed() - quiet_since.elapsed();

    // 4. Idle window.
    eprintln!("bench: idle window of {} s", args.idle_seconds);
    let rv_before = resource_versions(&client).await;
    let idle_before = operator.metrics().await;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle = operator.metrics().await.delta(&idle_before);
    let rv_after = resource_versions(&client).await;
    let changed: Vec<&String> = rv_before
        .iter()
        .filter(|(k, v)| rv_after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    let changed_objects = changed.len();
    if !changed.is_empty() {
        eprintln!("bench: changed during the idle window: {changed:?}");
    }
    let idle_writes_by_resource: Vec<String> = idle
        .0
        .iter()
        .filter(|(k, v)| {
            **v > 0.0
                && k.starts_with("gamecell_operator_kube_requests_total{")
                && ["create", "update", "patch", "delete"]
                    .iter()
                    .any(|w| k.contains(&format!("verb=\"{w}\"")))
        })
        .map(|(k, v)| {
            format!(
                "{} {v}",
                k.trim_start_matches("gamecell_operator_kube_requests_total")
            )
        })
        .collect();
    let (rss_peak, cpu_total) = operator.rss_and_cpu();

    // 5. The floor: the same objects, created by a plain client with no operator running.
    let snapshot = snapshot_created(&client).await;
    operator.stop().await;
    eprintln!(
        "bench: floor: creating {} objects with a plain client",
        snapshot.len()
    );
    let floor = create_floor(&client, &snapshot, args.concurrency).await;
    let floor_available = floor_deployments_available(&client, Duration::from_secs(600)).await;

    // Report.
    say(format!(
        "### N = {} ({} cloud)\n",
        args.n,
        if args.cloud == "aws" {
            "AWS emulator (moto)"
        } else {
            "in-process fake"
        }
    ));
    let tiers = plans.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(format!("{:?}", p.tier)).or_insert(0) += 1;
        m
    });
    say(format!(
        "{} GameCells ({}; shared cells with {} tenants), {} PlayerServices, {} MatchmakingPools; {} objects created by the operator (snapshot by its label). Client concurrency {}; operator resync {} s.\n",
        plans.len(),
        tiers
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        TENANTS_PER_SHARED_CELL,
        svc_keys("PlayerService").len(),
        svc_keys("MatchmakingPool").len(),
        snapshot.len(),
        args.concurrency,
        args.resync_seconds
    ));
    say("| kind | Ready | p50 s | p99 s | max s |".into());
    say("|---|---:|---:|---:|---:|".into());
    for (kind, times, keys) in [
        ("GameCell", &cell_ready, cell_keys.clone()),
        ("PlayerService", &ps_ready, svc_keys("PlayerService")),
        ("MatchmakingPool", &mmp_ready, svc_keys("MatchmakingPool")),
    ] {
        let (ok, n, p50, p99, max) = per_kind(times, keys);
        say(format!(
            "| {kind} | {ok}/{n} | {p50:.2} | {p99:.2} | {max:.2} |"
        ));
    }
    let floor_s = floor.as_secs_f64();
    say(format!(
        "\n- All applied after {:.1} s; all Ready after **{:.1} s** (first apply to last Ready); last operator write of the convergence at {:.1} s (then {} s without a write before the idle window).",
        applied_at.as_secs_f64(),
        converged.as_secs_f64(),
        settled.as_secs_f64(),
        SETTLE_QUIET.as_secs()
    ));
    say(format!(
        "- Floor: a plain client created the same {} objects in **{:.1} s** (no operator){}; ratio **{:.2}x**{}.",
        snapshot.len(),
        floor_s,
        floor_available.map_or(String::new(), |d| format!(
            ", their Deployments available {:.1} s later",
            d.as_secs_f64()
        )),
        converged.as_secs_f64() / floor_s,
        floor_available.map_or(String::new(), |d| format!(
            " (against create + available: {:.2}x)",
            converged.as_secs_f64() / (floor_s + d.as_secs_f64())
        ))
    ));
    let objects = (plans.len() * 5) as f64;
    let verbs = conv.by_label("gamecell_operator_kube_requests_total", "verb");
    say(format!(
        "- API requests during convergence: {} in all, **{:.1} per custom object** ({} objects); by verb: {}.",
        verbs.values().sum::<f64>(),
        verbs.values().sum::<f64>() / objects,
        objects,
        verbs
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.2}/object)", v / objects))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Where the requests go: the largest (verb, resource) pairs, so a change that cuts requests
    // can be aimed at, and checked against, the pair it targets.
    let mut pairs: Vec<(&str, f64)> = conv
        .0
        .iter()
        .filter_map(|(k, v)| {
            let labels = k.strip_prefix("gamecell_operator_kube_requests_total{")?;
            (*v > 0.0).then_some((labels.trim_end_matches('}'), *v))
        })
        .collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    say(format!(
        "- Largest request kinds during convergence (per custom object): {}.",
        pairs
            .iter()
            .take(14)
            .map(|(labels, v)| format!("{{{labels}}} {v} ({:.2})", v / objects))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let cloud = conv.cloud_by_operation();
    say(format!(
        "- Cloud calls during convergence: {}.",
        if cloud.is_empty() {
            "none".into()
        } else {
            cloud
                .iter()
                .map(|(k, v)| format!("{k} {v} ({:.2}/cell)", v / plans.len() as f64))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let idle_cloud = idle.cloud_by_operation();
    let idle_mutating: f64 = idle_cloud
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "create" | "delete"))
        .map(|(_, v)| v)
        .sum();
    let idle_verbs = idle.by_label("gamecell_operator_kube_requests_total", "verb");
    say(format!(
        "- Idle window of {} s after convergence: **{} API writes**{} (requests by verb: {}), **{} mutating cloud calls** (cloud calls: {}); {} of {} custom objects changed resourceVersion.",
        args.idle_seconds,
        idle.writes(),
        if idle_writes_by_resource.is_empty() {
            String::new()
        } else {
            format!(" ({})", idle_writes_by_resource.join(", "))
        },
        if idle_verbs.values().all(|v| *v == 0.0) {
            "none".into()
        } else {
            idle_verbs
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        idle_mutating,
        if idle_cloud.values().all(|v| *v == 0.0) {
            "none".into()
        } else {
            idle_cloud
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        changed_objects,
        rv_before.len()
    ));
    say(format!(
        "- Operator process: peak RSS **{rss_peak:.1} MiB** (after start {rss_start:.1} MiB, at convergence {rss_converged:.1} MiB); CPU {:.1} s during convergence, {:.1} s in all.",
        cpu_converged - cpu_before,
        cpu_total
    ));
    let mut recon = Vec::new();
    for kind in ["GameCell", "PlayerService", "MatchmakingPool"] {
        let (p50, p99, count) = conv.reconcile_quantiles(kind);
        recon.push(format!("{kind} {count} reconciles, p50 {p50}, p99 {p99}"));
    }
    say(format!(
        "- Reconcile duration during convergence (histogram buckets): {}.",
        recon.join("; ")
    ));
    let passes = conv.by_label("gamecell_operator_cell_passes_total", "pass");
    say(format!(
        "- GameCell passes during convergence: {}.",
        passes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let steps_metric = "gamecell_operator_cell_step_seconds";
    let mut steps: Vec<(String, HistogramSeries)> = conv
        .histogram_labels(steps_metric, "step")
        .into_iter()
        .map(|step| {
            let h = conv.histogram(steps_metric, "step", &step);
            (step, h)
        })
        .collect();
    steps.sort_by(|a, b| b.1.sum.total_cmp(&a.1.sum));
    say(format!(
        "- Time in the steps of GameCell passes during convergence, largest total first (step: count, total s, mean ms, p99 bucket): {}.",
        steps
            .iter()
            .map(|(step, h)| format!(
                "{step} {} / {:.1} s / {:.1} ms / {}",
                h.count,
                h.sum,
                h.mean_ms(),
                h.quantile(0.99)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let latency_metric = "gamecell_operator_kube_request_seconds";
    say(format!(
        "- API request latency during convergence, by verb (count, mean ms, p50, p99 bucket): {}.",
        conv.histogram_labels(latency_metric, "verb")
            .iter()
            .map(|verb| {
                let h = conv.histogram(latency_metric, "verb", verb);
                format!(
                    "{verb} {} / {:.1} ms / {} / {}",
                    h.count,
                    h.mean_ms(),
                    h.quantile(0.5),
                    h.quantile(0.99)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let mut ns_waits = namespaces_after.lock().expect("lock").clone();
    ns_waits.sort_by(f64::total_cmp);
    say(format!(
        "- Cell apply to all its namespaces seen by the benchmark (what the services' applies wait for): p50 **{:.2} s**, p99 **{:.2} s**, max {:.2} s ({} cells).",
        percentile(&ns_waits, 0.5),
        percentile(&ns_waits, 0.99),
        ns_waits.last().copied().unwrap_or(f64::NAN),
        ns_waits.len()
    ));
    if !single_times.is_empty() {
        say(format!(
            "- Single cell, applied alone ({} dedicated cells with SQL, cache, table, bucket and node group, one at a time): apply to Ready p50 **{:.2} s**, p99 **{:.2} s**, max {:.2} s.",
            single_times.len(),
            percentile(&single_times, 0.5),
            percentile(&single_times, 0.99),
            single_times.last().copied().unwrap_or(f64::NAN)
        ));
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &report).expect("write report");
    }
}

/// resourceVersion of every GameCell, PlayerService and MatchmakingPool.
async fn resource_versions(client: &Client) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for ar in [
        ApiResource::erase::<GameCell>(&()),
        ApiResource::erase::<PlayerService>(&()),
        ApiResource::erase::<MatchmakingPool>(&()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        if let Ok(list) = api.list(&ListParams::default()).await {
            for o in list.items {
                out.insert(
                    format!(
                        "{}/{}/{}",
                        ar.kind,
                        o.namespace().unwrap_or_default(),
                        o.name_any()
                    ),
                    o.resource_version().unwrap_or_default(),
                );
            }
        }
    }
    out
}
