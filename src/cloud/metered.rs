//! A cloud decorator that counts every call (by operation, kind and outcome) in the operator's
//! metrics, so an SRE can see on `/metrics` that a quiet cell makes no mutating cloud calls and
//! the benchmark can count calls per object without touching the provider.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    CloudError, CloudProvider, DeleteProgress, DesiredResource, ObservedCluster, ObservedResource,
    ResourceKind, Scope,
};
use crate::telemetry::{CloudCallLabels, Metrics};

/// Wraps a provider and counts its calls.
pub struct MeteredCloud {
    inner: Arc<dyn CloudProvider>,
    metrics: Arc<Metrics>,
}

impl MeteredCloud {
    /// Counts the calls made through `inner` in `metrics.cloud_calls`.
    #[must_use]
    pub fn new(inner: Arc<dyn CloudProvider>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        kind: &'static str,
        result: &Result<T, CloudError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        self.metrics
            .cloud_calls
            .get_or_create(&CloudCallLabels {
                operation,
                kind,
                outcome,
            })
            .inc();
    }
}

#[async_trait]
impl CloudProvider for MeteredCloud {
    fn tenant_databases(&self) -> Arc<dyn crate::sqlstore::TenantDatabases> {
        self.inner.tenant_databases()
    }

    async fn describe(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
    ) -> Result<Option<ObservedResource>, CloudError> {
        let result = self.inner.describe(scope, kind, identifier).await;
        self.count("describe", kind.as_str(), &result);
        result
    }

    async fn create(
        &self,
        scope: &Scope,
        desired: &DesiredResource,
    ) -> Result<ObservedResource, CloudError> {
        let result = self.inner.create(scope, desired).await;
        self.count("create", desired.kind.as_str(), &result);
        result
    }

    async fn delete(
        &self,
        scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<DeleteProgress, CloudError> {
        let result = self
            .inner
            .delete(scope, kind, identifier, final_snapshot)
            .await;
        self.count("delete", kind.as_str(), &result);
        result
    }

    async fn describe_cluster(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<ObservedCluster>, CloudError> {
        let result = self.inner.describe_cluster(scope, name).await;
        self.count("describe_cluster", "Cluster", &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::{FakeCloud, Op};

    #[tokio::test]
    async fn every_call_is_counted_with_its_outcome() {
        let fake = Arc::new(FakeCloud::new());
        let metrics = Arc::new(Metrics::new());
        let cloud = MeteredCloud::new(fake.clone(), metrics.clone());
        let scope = Scope {
            region: "eu-west-1".into(),
            assume_role: None,
        };
        assert!(
            cloud
                .describe(&scope, ResourceKind::Bucket, "b")
                .await
                .expect("describe")
                .is_none()
        );
        fake.fail_next(
            Op::Describe,
            CloudError::Throttled {
                service: "fake",
                message: "slow down".into(),
            },
        );
        assert!(
            cloud
                .describe(&scope, ResourceKind::Bucket, "b")
                .await
                .is_err()
        );
        let _ = cloud.describe_cluster(&scope, "c").await;
        let text = metrics.encode();
        for line in [
            "gamecell_operator_cloud_calls_total{operation=\"describe\",kind=\"Bucket\",outcome=\"ok\"} 1",
            "gamecell_operator_cloud_calls_total{operation=\"describe\",kind=\"Bucket\",outcome=\"CloudThrottled\"} 1",
            "gamecell_operator_cloud_calls_total{operation=\"describe_cluster\",kind=\"Cluster\",outcome=\"ok\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
