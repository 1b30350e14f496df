//! The Kubernetes objects every workload is made of (pure): a Deployment under the tier's pod
//! policy, its Service, autoscaler and disruption budget.
//!
//! Nothing here ever sets `privileged`, `hostNetwork`, `hostPID`, `hostIPC`, `hostPath` volumes
//! or host ports, on any tier: there is no input that could turn them on.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::Identity;
use super::policy::WorkloadPolicy;

/// Name of the port every workload container exposes and its Service targets.
pub const PORT_NAME: &str = "http";
/// Writable scratch space of a container with a read-only root filesystem.
const TMP_VOLUME: &str = "tmp";

/// What one Deployment is made of.
#[derive(Clone, Debug)]
pub struct DeploymentParts<'a> {
    /// Who the Deployment is for.
    pub identity: &'a Identity,
    /// Name of the Deployment (and of its Service and autoscaler).
    pub name: &'a str,
    /// Labels of the Deployment and its pods.
    pub labels: BTreeMap<String, String>,
    /// The selector (a subset of `labels`).
    pub selector: BTreeMap<String, String>,
    /// Replicas; `None` when an autoscaler owns the count.
    pub replicas: Option<i32>,
    /// Whether a rolling update may run a surge pod.
    pub surge: bool,
    /// The tier's pod policy.
    pub policy: &'a WorkloadPolicy,
    /// The one container.
    pub container: Container,
    /// Volumes the container mounts.
    pub volumes: Vec<Volume>,
    /// ServiceAccount of the pods (`None`: the namespace's default).
    pub service_account: Option<String>,
    /// Pod template annotations (the content hashes that roll the Deployment).
    pub annotations: BTreeMap<String, String>,
}

/// The restricted pod security context (Pod Security Standards, `restricted` profile).
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The Deployment.
#[must_use]
pub fn deployment(parts: DeploymentParts<'_>) -> Deployment {
    let DeploymentParts {
        identity,
        name,
        labels,
        selector,
        replicas,
        surge,
        policy,
        mut container,
        mut volumes,
        service_account,
        annotations,
    } = parts;
    let mut pod_security = None;
    if policy.restricted {
        container.security_context = Some(restricted_container());
        // A read-only root filesystem still needs somewhere to write temporary files.
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: TMP_VOLUME.to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            });
        volumes.push(Volume {
            name: TMP_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        pod_security = Some(restricted_pod());
    }
    Deployment {
        metadata: identity.metadata(name, labels.clone()),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: (!surge).then(|| DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    service_account_name: service_account,
                    // Game services do not talk to the Kubernetes API; IRSA and Pod Identity
                    // mount their own token.
                    automount_service_account_token: Some(false),
                    // Service links put every Service of the namespace into the environment,
                    // where they could shadow the service's own settings.
                    enable_service_links: Some(false),
                    node_selector: (!policy.node_selector.is_empty())
                        .then(|| policy.node_selector.clone()),
                    tolerations: (!policy.tolerations.is_empty())
                        .then(|| policy.tolerations.clone()),
                    security_context: pod_security,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The ClusterIP Service in front of a Deployment.
#[must_use]
pub fn service(
    identity: &Identity,
    name: &str,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    port: i32,
) -> Service {
    Service {
        metadata: identity.metadata(name, labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port,
                target_port: Some(IntOrString::String(PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The CPU autoscaler (autoscaling/v2) of the Deployment `name`.
#[must_use]
pub fn autoscaler(
    identity: &Identity,
    name: &str,
    labels: BTreeMap<String, String>,
    min: i32,
    max: i32,
    target_cpu: i32,
) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: identity.metadata(name, labels),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: name.to_owned(),
            },
            min_replicas: Some(min),
            max_replicas: max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(target_cpu),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

/// A disruption budget letting one pod at a time be evicted: node drains proceed (even with one
/// replica), but never take several replicas at once.
#[must_use]
pub fn disruption_budget(
    identity: &Identity,
    name: &str,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: identity.metadata(name, labels),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
