//! Types shared by several kinds: the reference to a cell, scaling settings, condition vocabulary.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Points a namespaced workload at the GameCell it belongs to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CellRef {
    /// Name of the GameCell (cluster-scoped) this object is bound to. The object's namespace must
    /// belong to that cell: a tenant namespace of a shared cell, or the cell's own namespace.
    #[schemars(length(min = 1, max = 30))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("cellRef.name must be a GameCell name: lowercase letters, digits and '-', starting with a letter"))]
    pub name: String,
}

/// Horizontal autoscaling between a floor and a ceiling on CPU utilisation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct Autoscaling {
    /// Fewest replicas the autoscaler keeps, even when idle.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most replicas the autoscaler may run. On shared cells the tenant's quota may cap it
    /// further; the object's conditions say so when it does.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation, in percent of the requested CPU, that the autoscaler aims for.
    #[serde(default = "default_target_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percent: i32,
}

fn default_target_cpu() -> i32 {
    70
}

/// The condition types and reasons the operator sets, in one vocabulary for every kind.
///
/// `Ready`, `Reconciling` and `Stalled` follow kstatus, so `kubectl wait`, Argo CD and Flux read
/// them without custom code; the others say which part is or is not in shape.
pub mod conditions {
    /// The object is fully reconciled and serving.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec (abnormal only if it lasts).
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress without a change to the spec, credentials or cloud.
    pub const STALLED: &str = "Stalled";
    /// Every data store of a cell exists and is available.
    pub const DATA_STORES_READY: &str = "DataStoresReady";
    /// The cell's spec satisfies its tier's policy and its compliance block.
    pub const POLICY_COMPLIANT: &str = "PolicyCompliant";
    /// For enterprise cells: the customer's EKS cluster was found ACTIVE and supported.
    pub const CLUSTER_VERIFIED: &str = "ClusterVerified";
    /// Every service bound to a cell is ready.
    pub const SERVICES_READY: &str = "ServicesReady";
}

/// The shape of the `status.conditions` list: merged by `type`, as Kubernetes does for its own.
pub type Conditions = Vec<Condition>;
