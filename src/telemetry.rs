//! Logging setup and the operator's Prometheus metrics.
//!
//! Metric labels carry kinds, reasons and outcomes, never object names: a label per object is
//! how an operator's `/metrics` grows without bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log pipelines in a cluster.
    Json,
}

/// Installs the global tracing subscriber. `filter` uses `RUST_LOG` syntax.
///
/// # Errors
/// When the filter does not parse or a subscriber is already installed.
pub fn init_logging(
    format: LogFormat,
    filter: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = EnvFilter::try_new(filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()?,
    }
    Ok(())
}

/// Labels of the per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The custom resource kind.
    pub kind: String,
}

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The custom resource kind.
    pub kind: String,
    /// The error's reason (PascalCase, bounded set).
    pub reason: String,
}

/// Labels of the Kubernetes API request counter: the verb as the API server names it and the
/// resource (with its subresource, e.g. `gamecells/status`). Bounded: no names, no namespaces.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// The resource, plus `/subresource` when there is one; `other` for non-resource paths.
    pub resource: String,
}

impl RequestLabels {
    /// Whether the request changes state on the API server.
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// Classifies a Kubernetes API request from its method and URI, the way the API server's audit
/// log and `apiserver_request_total` do (pure).
#[must_use]
pub fn request_labels(method: &http::Method, uri: &http::Uri) -> RequestLabels {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => {
            return RequestLabels {
                verb: if *method == http::Method::GET {
                    "get"
                } else {
                    "other"
                },
                resource: "other".into(),
            };
        }
    };
    // namespaces/<ns>/<resource>... is namespaced; namespaces[/<name>[/<sub>]] is the namespace
    // resource itself.
    let rest = match rest {
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() && !is_namespace_sub(inner) => inner,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("other".to_owned(), false),
        [r] => ((*r).to_owned(), false),
        [r, _name] => ((*r).to_owned(), true),
        [r, _name, sub, ..] => (format!("{r}/{sub}"), true),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    RequestLabels { verb, resource }
}

/// `namespaces/<name>/status` and `namespaces/<name>/finalize` are subresources of a namespace,
/// not namespaced resources.
fn is_namespace_sub(inner: &[&str]) -> bool {
    matches!(inner, ["status" | "finalize"])
}

/// Labels of the cloud call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    /// `describe`, `create`, `delete` or `describe_cluster`.
    pub operation: &'static str,
    /// The resource kind (`Sql`, `Cache`, ...), or `Cluster`.
    pub kind: &'static str,
    /// `ok` or the error's reason (`CloudThrottled`, ...).
    pub outcome: &'static str,
}

/// Labels of the GameCell pass counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CellPassLabels {
    /// `full` (the cloud, the tenants' objects, the Secrets and the status) or `light` (the
    /// services and the status only, within the resync interval of a settled full pass).
    pub pass: &'static str,
}

/// Labels of the GameCell step histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CellStepLabels {
    /// The step of a pass, in the order a full pass runs them: `bound` (the services and pools
    /// bound to the cell), `light` (a whole light pass after `bound`), `policy`, `tenancy`,
    /// `cell_matchmaker`, `cloud` (ensure and remove the stores), `prune_tenants`,
    /// `tenant_sql`, `secrets`, `status`.
    pub step: &'static str,
}

/// Labels of the Kubernetes API request latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// The verb, as in [`RequestLabels::verb`].
    pub verb: &'static str,
}

/// Labels of the child-read counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChildReadLabels {
    /// `sent` (the apply step read the child back), `skipped` (the applied memo and the
    /// child's metadata watch showed it unchanged since it was last verified), `absent` (not
    /// read: a child with the managed-by label missing from its kind's trusted watch, written
    /// at once, see `controllers::applied::known_absent`), `unwatched`
    /// (read back: a kind without a metadata watch, i.e. Secrets) or `recent` (not read: an
    /// unwatched child verified for the same desired object moments ago, see
    /// `controllers::applied::can_skip_unwatched`).
    pub outcome: &'static str,
}

/// The service under a counted client: counts each request by verb and resource, and times it
/// by verb.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let labels = request_labels(request.method(), request.uri());
        self.metrics.kube_requests.get_or_create(&labels).inc();
        let latency = self
            .metrics
            .kube_request_seconds
            .get_or_create(&VerbLabels { verb: labels.verb })
            .clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            latency.observe(started.elapsed().as_secs_f64());
            response
        })
    }
}

/// Every metric the operator exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Reconciles started, by kind.
    pub reconciles: Family<KindLabels, Counter>,
    /// Reconciles that failed, by kind and reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Reconcile duration in seconds, by kind.
    pub duration: Family<KindLabels, Histogram>,
    /// 1 once the operator's CRDs are installed and its caches are synced.
    pub ready: Gauge,
    /// 1 while this replica runs the controllers (holds the lease, or runs without election).
    pub leader: Gauge,
    /// Requests this process sent to the Kubernetes API server, by verb and resource.
    pub kube_requests: Family<RequestLabels, Counter>,
    /// Calls this process made to the cloud, by operation, kind and outcome.
    pub cloud_calls: Family<CloudCallLabels, Counter>,
    /// Reads of a child by the apply step, sent or skipped.
    pub child_reads: Family<ChildReadLabels, Counter>,
    /// GameCell reconciles by pass: `full` or `light` (see `controllers::settled`).
    pub cell_passes: Family<CellPassLabels, Counter>,
    /// Time spent in each step of a GameCell pass (see [`StepTimer`]).
    pub cell_steps: Family<CellStepLabels, Histogram>,
    /// Time from sending a request to the API server to its response's headers, by verb (a
    /// watch counts until its stream opens).
    pub kube_request_seconds: Family<VerbLabels, Histogram>,
}

/// Buckets of the duration histograms, in seconds: up to a minute, so that a slow pass is
/// measured rather than counted as "more than 10 s".
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Times the steps of one GameCell pass: each [`StepTimer::lap`] records the time since the
/// previous lap (or the start) under the step's name.
pub struct StepTimer<'a> {
    metrics: &'a Metrics,
    last: Instant,
}

impl StepTimer<'_> {
    /// Records the time since the last lap as `step`'s.
    pub fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.metrics
            .cell_steps
            .get_or_create(&CellStepLabels { step })
            .observe(now.duration_since(self.last).as_secs_f64());
        self.last = now;
    }
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
        let mut registry = Registry::with_prefix("gamecell_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(duration_histogram);
        let cell_steps =
            Family::<CellStepLabels, Histogram>::new_with_constructor(duration_histogram);
        let kube_request_seconds =
            Family::<VerbLabels, Histogram>::new_with_constructor(duration_histogram);
        let ready = Gauge::default();
        let leader = Gauge::default();
        let kube_requests = Family::<RequestLabels, Counter>::default();
        let cloud_calls = Family::<CloudCallLabels, Counter>::default();
        let child_reads = Family::<ChildReadLabels, Counter>::default();
        let cell_passes = Family::<CellPassLabels, Counter>::default();
        registry.register(
            "cell_passes",
            "GameCell reconciles by pass: full, or light (services and status only, within the resync interval of a settled full pass of the same generation)",
            cell_passes.clone(),
        );
        registry.register(
            "cell_step_seconds",
            "Time spent in each step of a GameCell pass",
            cell_steps.clone(),
        );
        registry.register(
            "kube_request_seconds",
            "Time from a request to the API server to its response headers, by verb",
            kube_request_seconds.clone(),
        );
        registry.register(
            "child_reads",
            "Reads of a child before applying it: sent, skipped (its metadata watch showed it unchanged since last verified), absent (a labelled child its trusted watch does not hold, written without a read), unwatched (a kind without a watch, read back) or recent (an unwatched child verified for the same desired object less than a minute ago, not read)",
            child_reads.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests sent to the Kubernetes API server, by verb and resource",
            kube_requests.clone(),
        );
        registry.register(
            "cloud_calls",
            "Calls made to the cloud provider, by operation, kind and outcome",
            cloud_calls.clone(),
        );
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that returned an error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "ready",
            "1 when CRDs are installed and caches are synced",
            ready.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the controllers",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            ready,
            leader,
            kube_requests,
            cloud_calls,
            child_reads,
            cell_passes,
            cell_steps,
            kube_request_seconds,
        }
    }

    /// A timer of the steps of one GameCell pass, started now.
    #[must_use]
    pub fn step_timer(&self) -> StepTimer<'_> {
        StepTimer {
            metrics: self,
            last: Instant::now(),
        }
    }

    /// A Kubernetes client for `config` that counts every request it sends in `kube_requests`
    /// and times it in `kube_request_seconds`.
    ///
    /// # Errors
    /// When the client cannot be built from the configuration (bad TLS material, say).
    pub fn counted_client(self: &Arc<Self>, config: kube::Config) -> kube::Result<kube::Client> {
        let metrics = self.clone();
        let count = tower::layer::layer_fn(move |inner| Counted {
            inner,
            metrics: metrics.clone(),
        });
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&count)
            .build())
    }

    /// Records one finished reconcile.
    pub fn observe(&self, kind: &str, elapsed: Duration, failure_reason: Option<&str>) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(reason) = failure_reason {
            self.failures
                .get_or_create(&FailureLabels {
                    kind: kind.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: &str, uri: &str) -> (&'static str, String) {
        let l = request_labels(&method.parse().expect("method"), &uri.parse().expect("uri"));
        (l.verb, l.resource)
    }

    #[test]
    fn each_lap_is_recorded_under_its_step() {
        let m = Metrics::new();
        let mut timer = m.step_timer();
        timer.lap("tenancy");
        timer.lap("status");
        timer.lap("status");
        let text = m.encode();
        assert!(
            text.contains("gamecell_operator_cell_step_seconds_count{step=\"tenancy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gamecell_operator_cell_step_seconds_count{step=\"status\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "gamecell_operator_cell_step_seconds_bucket{le=\"60.0\",step=\"status\"} 2"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_counted_service_counts_and_times_each_request_by_verb() {
        use tower::{Service, ServiceExt};
        let m = Arc::new(Metrics::new());
        let inner = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, std::convert::Infallible>(())
        });
        let mut counted = Counted {
            inner,
            metrics: m.clone(),
        };
        for _ in 0..2 {
            let request = http::Request::get("/api/v1/namespaces/a/secrets/s")
                .body(())
                .expect("request");
            counted
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("response");
        }
        let text = m.encode();
        assert!(
            text.contains(
                "gamecell_operator_kube_requests_total{verb=\"get\",resource=\"secrets\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("gamecell_operator_kube_request_seconds_count{verb=\"get\"} 2"),
            "{text}"
        );
        // Both took at least 30 ms: none fell in the 25 ms bucket.
        assert!(
            text.contains(
                "gamecell_operator_kube_request_seconds_bucket{le=\"0.025\",verb=\"get\"} 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn child_reads_are_exported() {
        let m = Metrics::new();
        m.child_reads
            .get_or_create(&ChildReadLabels { outcome: "skipped" })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("gamecell_operator_child_reads_total{outcome=\"skipped\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn requests_are_labelled_like_the_api_server_does() {
        let cases = [
            (
                "GET",
                "/apis/gamecell.dev/v1alpha1/gamecells?&watch=true&timeoutSeconds=290",
                "watch",
                "gamecells",
            ),
            (
                "GET",
                "/apis/gamecell.dev/v1alpha1/gamecells",
                "list",
                "gamecells",
            ),
            (
                "GET",
                "/apis/gamecell.dev/v1alpha1/gamecells/c1",
                "get",
                "gamecells",
            ),
            (
                "PATCH",
                "/apis/gamecell.dev/v1alpha1/gamecells/c1/status?fieldManager=x",
                "patch",
                "gamecells/status",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/acme/secrets/gamecell-sql?fieldManager=x",
                "patch",
                "secrets",
            ),
            ("GET", "/api/v1/namespaces/acme/secrets", "list", "secrets"),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                "create",
                "events",
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d",
                "update",
                "deployments",
            ),
            ("DELETE", "/api/v1/namespaces/acme", "delete", "namespaces"),
            ("GET", "/api/v1/namespaces", "list", "namespaces"),
            (
                "PUT",
                "/api/v1/namespaces/acme/finalize",
                "update",
                "namespaces/finalize",
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments",
                "deletecollection",
                "deployments",
            ),
            ("GET", "/version", "get", "other"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(
                labels(method, uri),
                (verb, resource.to_owned()),
                "{method} {uri}"
            );
        }
        assert!(
            request_labels(
                &http::Method::PATCH,
                &"/api/v1/namespaces/a/secrets/s".parse().expect("uri")
            )
            .is_write()
        );
        assert!(
            !request_labels(
                &http::Method::GET,
                &"/api/v1/namespaces/a/secrets/s".parse().expect("uri")
            )
            .is_write()
        );
    }

    #[test]
    fn metrics_encode_without_object_names() {
        let metrics = Metrics::new();
        metrics.observe("GameCell", Duration::from_millis(12), None);
        metrics.observe(
            "GameCell",
            Duration::from_millis(40),
            Some("CloudThrottled"),
        );
        let text = metrics.encode();
        assert!(
            text.contains("gamecell_operator_reconciles_total{kind=\"GameCell\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gamecell_operator_reconcile_failures_total{kind=\"GameCell\",reason=\"CloudThrottled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "gamecell_operator_reconcile_duration_seconds_count{kind=\"GameCell\"} 2"
            ),
            "{text}"
        );
    }
}
