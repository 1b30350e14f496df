//! Logging setup and the operator's Prometheus metrics.
//!
//! Metric labels carry kinds, reasons and outcomes, never object names: a label per object is
//! how an operator's `/metrics` grows without bound.

use std::time::Duration;

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
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let ready = Gauge::default();
        let leader = Gauge::default();
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
        }
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
