//! What a cell's tier means for the workloads bound to it (pure): the one place that says what
//! Shared, Dedicated and Enterprise imply for a Deployment.
//!
//! | tier       | resources                          | replicas                | pods                          |
//! |------------|------------------------------------|-------------------------|-------------------------------|
//! | Shared     | requests and limits always set, unset ones from the tenant's LimitRange | capped by the tenant's quota | never privileged, no host network, no host paths (never emitted) |
//! | Dedicated  | as asked                           | as asked                | on the cell's node group when it has one |
//! | Enterprise | as asked                           | as asked                | restricted security context; on the cell's node group when it has one |
//!
//! When policy changes what the spec asked for, it says so in an [`Adjustment`]; the controller
//! turns adjustments into the `PolicyAdjusted` condition and an Event.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::binding::{Refusal, reasons};
use super::quantity::milli;
use crate::cell::resources::{NODE_LABEL, NODE_TAINT};
use crate::crds::Autoscaling;
use crate::crds::gamecell::{CellTier, GameCellSpec, TenantQuota, TenantSpec};

/// Reasons of the adjustments policy makes.
pub mod adjustments {
    /// `spec.replicas` was lowered to what the tenant's quota can hold.
    pub const REPLICAS_CAPPED_BY_QUOTA: &str = "ReplicasCappedByQuota";
    /// `spec.autoscaling.maxReplicas` (and `minReplicas` if above it) was lowered to what the
    /// tenant's quota can hold.
    pub const MAX_REPLICAS_CAPPED_BY_QUOTA: &str = "MaxReplicasCappedByQuota";
    /// Requests or limits the spec left unset were taken from the tenant's LimitRange.
    pub const RESOURCES_DEFAULTED: &str = "ResourcesDefaulted";
}

/// A change policy made to what the spec asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// PascalCase reason (see [`adjustments`]).
    pub reason: &'static str,
    /// What was asked and what runs instead.
    pub message: String,
    /// Whether the change takes something away (a Warning Event) rather than fills a gap.
    pub warning: bool,
}

/// The workload consequences of a cell's tier.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadPolicy {
    /// Requests and limits are always emitted, unset ones from the LimitRange defaults.
    pub require_resources: bool,
    /// Replicas are capped by the tenant's quota.
    pub cap_by_quota: bool,
    /// Pods get the restricted pod security context.
    pub restricted: bool,
    /// Node selector of the cell's node group (empty: schedule anywhere).
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the cell's node group taint.
    pub tolerations: Vec<Toleration>,
}

/// The policy for workloads of `cell` (named `cell_name`).
///
/// Placement follows the node group, not only the tier: a Dedicated or Enterprise cell with
/// `spec.nodes` has nodes labelled and tainted `gamecell.dev/cell=<cell>`, which nothing but its
/// own workloads tolerate; without `spec.nodes` there is nothing to select.
#[must_use]
pub fn workload_policy(cell_name: &str, spec: &GameCellSpec) -> WorkloadPolicy {
    let shared = spec.tier == CellTier::Shared;
    let own_nodes = !shared && spec.nodes.is_some();
    WorkloadPolicy {
        require_resources: shared,
        cap_by_quota: shared,
        restricted: spec.tier == CellTier::Enterprise,
        node_selector: if own_nodes {
            BTreeMap::from([(NODE_LABEL.to_owned(), cell_name.to_owned())])
        } else {
            BTreeMap::new()
        },
        tolerations: if own_nodes {
            vec![Toleration {
                key: Some(NODE_TAINT.to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some(cell_name.to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            }]
        } else {
            Vec::new()
        },
    }
}

/// Requests and limits a container gets when it sets none: the `Container` item of the tenant's
/// LimitRange.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerDefaults {
    /// `defaultRequest`.
    pub request: BTreeMap<String, Quantity>,
    /// `default` (the default limit).
    pub limit: BTreeMap<String, Quantity>,
}

impl ContainerDefaults {
    /// The defaults of a LimitRange's `Container` item, if it has one.
    #[must_use]
    pub fn from_limit_range(limits: &LimitRange) -> Option<Self> {
        let item = limits
            .spec
            .as_ref()?
            .limits
            .iter()
            .find(|l| l.type_ == "Container")?;
        Some(Self {
            request: item.default_request.clone().unwrap_or_default(),
            limit: item.default.clone().unwrap_or_default(),
        })
    }

    /// The defaults the GameCell controller writes into every Shared tenant's LimitRange
    /// (`gamecell-defaults`), used until that LimitRange can be read.
    #[must_use]
    pub fn fallback() -> Self {
        let pair = |cpu: &str, memory: &str| {
            BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ])
        };
        Self {
            request: pair("100m", "128Mi"),
            limit: pair("500m", "512Mi"),
        }
    }
}

/// How many replicas a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// A fixed count.
    Fixed(i32),
    /// An autoscaler between `min` and `max` aiming at `target_cpu` percent of the CPU request.
    Autoscaled {
        /// Floor.
        min: i32,
        /// Ceiling.
        max: i32,
        /// Target CPU utilisation, percent.
        target_cpu: i32,
    },
}

impl Scale {
    /// The scale a spec asks for: `replicas`, else `autoscaling`, else one replica.
    #[must_use]
    pub fn from_spec(replicas: Option<i32>, autoscaling: Option<&Autoscaling>) -> Self {
        match (replicas, autoscaling) {
            (Some(r), _) => Self::Fixed(r),
            (None, Some(a)) => Self::Autoscaled {
                min: a.min_replicas,
                max: a.max_replicas,
                target_cpu: a.target_cpu_utilization_percent,
            },
            (None, None) => Self::Fixed(1),
        }
    }

    /// The most replicas this scale may run.
    #[must_use]
    pub fn ceiling(self) -> i32 {
        match self {
            Self::Fixed(r) => r,
            Self::Autoscaled { max, .. } => max,
        }
    }
}

/// What runs after policy: scale, resources, and whether a rollout may add a surge pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizing {
    /// Replicas after the quota cap.
    pub scale: Scale,
    /// The container's requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// Whether rolling updates may run one pod above the replica count. Off when the replicas
    /// already fill the quota: a surge pod would be refused and the rollout would never finish.
    pub surge: bool,
    /// What policy changed.
    pub adjustments: Vec<Adjustment>,
}

const COMPUTE: [&str; 2] = ["cpu", "memory"];

fn get<'a>(map: Option<&'a BTreeMap<String, Quantity>>, key: &str) -> Option<&'a Quantity> {
    map.and_then(|m| m.get(key))
}

/// Requests and limits with every CPU and memory entry set. Unset requests follow Kubernetes:
/// the limit when one is set, else the LimitRange default; unset limits take the LimitRange
/// default, raised to the request when the request is above it (a request above the limit is
/// refused by the API server). Returns what was defaulted, as `"cpu request 100m"`.
fn complete_resources(
    requested: Option<&ResourceRequirements>,
    defaults: &ContainerDefaults,
) -> (ResourceRequirements, Vec<String>) {
    let asked_requests = requested.and_then(|r| r.requests.as_ref());
    let asked_limits = requested.and_then(|r| r.limits.as_ref());
    let mut requests = asked_requests.cloned().unwrap_or_default();
    let mut limits = asked_limits.cloned().unwrap_or_default();
    let mut defaulted = Vec::new();
    for resource in COMPUTE {
        if get(asked_requests, resource).is_none() {
            let value = get(asked_limits, resource).or_else(|| defaults.request.get(resource));
            if let Some(value) = value {
                if get(asked_limits, resource).is_none() {
                    defaulted.push(format!("{resource} request {}", value.0));
                }
                requests.insert(resource.to_owned(), value.clone());
            }
        }
        if get(asked_limits, resource).is_none()
            && let Some(default) = defaults.limit.get(resource)
        {
            let request = requests.get(resource);
            let value = match (request.and_then(|q| milli(&q.0)), milli(&default.0)) {
                (Some(r), Some(d)) if r > d => {
                    let raised = request.cloned().unwrap_or_else(|| default.clone());
                    defaulted.push(format!(
                        "{resource} limit {} (the request: the default {} is below it)",
                        raised.0, default.0
                    ));
                    raised
                }
                _ => {
                    defaulted.push(format!("{resource} limit {}", default.0));
                    default.clone()
                }
            };
            limits.insert(resource.to_owned(), value);
        }
    }
    let resources = ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..requested.cloned().unwrap_or_default()
    };
    (resources, defaulted)
}

/// The most replicas of one pod with `resources` that the tenant's quota holds, with what bounds
/// it (`"pods 20"`, `"cpu 4 at 1 per replica"`). `None` when the quota bounds nothing.
///
/// The quota bounds requests and limits of CPU and memory by the same figure, so a replica costs
/// the larger of its request and limit. This caps one service against the whole quota; the
/// quota itself still bounds the sum of the tenant's workloads, and pods beyond it are refused
/// by the API server (the service's `Ready` condition then shows `ReplicaFailure`).
#[must_use]
pub fn quota_cap(quota: &TenantQuota, resources: &ResourceRequirements) -> Option<(i32, String)> {
    let mut best: Option<(i128, String)> = None;
    let mut consider = |cap: i128, why: String| {
        if best.as_ref().is_none_or(|(b, _)| cap < *b) {
            best = Some((cap, why));
        }
    };
    if let Some(pods) = quota.pods {
        consider(i128::from(pods), format!("pods {pods}"));
    }
    for (resource, total) in [("cpu", &quota.cpu), ("memory", &quota.memory)] {
        let Some(total) = total.as_deref() else {
            continue;
        };
        let per_pod = [resources.requests.as_ref(), resources.limits.as_ref()]
            .into_iter()
            .filter_map(|m| get(m, resource))
            .filter_map(|q| milli(&q.0).map(|v| (v, q.0.clone())))
            .max_by_key(|(v, _)| *v);
        if let (Some(total_milli), Some((per_milli, per_text))) = (milli(total), per_pod)
            && per_milli > 0
        {
            consider(
                total_milli / per_milli,
                format!("{resource} {total} at {per_text} per replica"),
            );
        }
    }
    best.map(|(cap, why)| (i32::try_from(cap).unwrap_or(i32::MAX), why))
}

/// Applies `policy` to what a workload asks for.
///
/// # Errors
/// `ResourcesExceedQuota` when not even one replica fits the tenant's quota.
pub fn size(
    policy: &WorkloadPolicy,
    tenant: &TenantSpec,
    scale: Scale,
    requested: Option<&ResourceRequirements>,
    defaults: &ContainerDefaults,
) -> Result<Sizing, Refusal> {
    let mut adjustments = Vec::new();
    let resources = if policy.require_resources {
        let (resources, defaulted) = complete_resources(requested, defaults);
        if !defaulted.is_empty() {
            adjustments.push(Adjustment {
                reason: adjustments::RESOURCES_DEFAULTED,
                message: format!(
                    "set from tenant {}'s LimitRange: {}",
                    tenant.name,
                    defaulted.join(", ")
                ),
                warning: false,
            });
        }
        Some(resources)
    } else {
        requested.cloned()
    };
    let cap = match &tenant.quota {
        Some(quota) if policy.cap_by_quota => quota_cap(
            quota,
            resources
                .as_ref()
                .unwrap_or(&ResourceRequirements::default()),
        ),
        _ => None,
    };
    let mut sized = scale;
    let mut surge = true;
    if let Some((cap, why)) = cap {
        if cap < 1 {
            return Err(Refusal::new(
                reasons::RESOURCES_EXCEED_QUOTA,
                format!(
                    "one replica needs more than tenant {}'s quota ({why}): lower its requests and limits or raise the quota",
                    tenant.name
                ),
            ));
        }
        match scale {
            Scale::Fixed(r) if r > cap => {
                sized = Scale::Fixed(cap);
                adjustments.push(Adjustment {
                    reason: adjustments::REPLICAS_CAPPED_BY_QUOTA,
                    message: format!(
                        "spec.replicas {r} capped to {cap} by tenant {}'s quota ({why})",
                        tenant.name
                    ),
                    warning: true,
                });
            }
            Scale::Autoscaled {
                min,
                max,
                target_cpu,
            } if max > cap => {
                sized = Scale::Autoscaled {
                    min: min.min(cap),
                    max: cap,
                    target_cpu,
                };
                adjustments.push(Adjustment {
                    reason: adjustments::MAX_REPLICAS_CAPPED_BY_QUOTA,
                    message: format!(
                        "spec.autoscaling.maxReplicas {max} capped to {cap} by tenant {}'s quota ({why})",
                        tenant.name
                    ),
                    warning: true,
                });
            }
            _ => {}
        }
        surge = sized.ceiling() < cap;
    }
    // Caps go first: they are what an SRE looks for.
    adjustments.sort_by_key(|a| !a.warning);
    Ok(Sizing {
        scale: sized,
        resources,
        surge,
        adjustments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crds::GameCell;
    use serde_json::json;

    fn spec(tier: &str, nodes: bool) -> GameCellSpec {
        let mut spec = json!({
            "tier": tier, "provider": {"aws": {"region": "eu-west-1", "clusterName": "k",
                "accountRoleArn": "arn:aws:iam::123456789012:role/r", "externalId": "ext"}},
            "tenants": [{"name": "t", "namespace": "t"}],
            "compliance": {"allowedRegions": ["eu-west-1"]}
        });
        if nodes {
            spec["nodes"] = json!({"instanceTypes": ["c7g.large"], "minSize": 1, "maxSize": 2,
                "nodeRoleArn": "arn:aws:iam::123456789012:role/n", "subnetIds": ["subnet-01234567"]});
        }
        let cell: GameCell = serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
            "metadata": {"name": "c"}, "spec": spec
        }))
        .expect("cell");
        cell.spec
    }

    fn tenant(quota: serde_json::Value) -> TenantSpec {
        serde_json::from_value(json!({"name": "alpha", "namespace": "a", "quota": quota}))
            .expect("tenant")
    }

    fn resources(v: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(v).expect("resources")
    }

    #[test]
    fn each_tier_means_what_the_table_says() {
        let shared = workload_policy("c", &spec("Shared", false));
        assert!(shared.require_resources && shared.cap_by_quota && !shared.restricted);
        assert!(shared.node_selector.is_empty());
        let dedicated = workload_policy("c", &spec("Dedicated", true));
        assert!(!dedicated.require_resources && !dedicated.restricted);
        assert_eq!(dedicated.node_selector["gamecell.dev/cell"], "c");
        assert_eq!(
            dedicated.tolerations[0].effect.as_deref(),
            Some("NoSchedule")
        );
        assert!(
            workload_policy("c", &spec("Dedicated", false))
                .tolerations
                .is_empty()
        );
        let enterprise = workload_policy("c", &spec("Enterprise", false));
        assert!(enterprise.restricted && !enterprise.cap_by_quota);
    }

    #[test]
    fn shared_resources_are_completed_from_the_limit_range() {
        let policy = workload_policy("c", &spec("Shared", false));
        let t = tenant(json!({}));
        let none = size(
            &policy,
            &t,
            Scale::Fixed(1),
            None,
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        let r = none.resources.expect("resources");
        assert_eq!(r.requests.as_ref().expect("requests")["cpu"].0, "100m");
        assert_eq!(r.limits.as_ref().expect("limits")["memory"].0, "512Mi");
        assert_eq!(none.adjustments[0].reason, adjustments::RESOURCES_DEFAULTED);
        assert!(!none.adjustments[0].warning);

        // A request above the default limit raises the limit instead of breaking the pod; a
        // limit without a request makes the request equal the limit, as Kubernetes does.
        let asked = resources(json!({"requests": {"cpu": "2"}, "limits": {"memory": "1Gi"}}));
        let sized = size(
            &policy,
            &t,
            Scale::Fixed(1),
            Some(&asked),
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        let r = sized.resources.expect("resources");
        assert_eq!(r.limits.as_ref().expect("limits")["cpu"].0, "2");
        assert_eq!(r.requests.as_ref().expect("requests")["memory"].0, "1Gi");
        assert_eq!(
            sized.adjustments[0].message,
            "set from tenant alpha's LimitRange: cpu limit 2 (the request: the default 500m is below it)"
        );

        let complete = resources(json!({"requests": {"cpu": "100m", "memory": "64Mi"},
                                        "limits": {"cpu": "200m", "memory": "64Mi"}}));
        let sized = size(
            &policy,
            &t,
            Scale::Fixed(1),
            Some(&complete),
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        assert!(sized.adjustments.is_empty(), "nothing to default");
        assert_eq!(sized.resources, Some(complete));
    }

    #[test]
    fn quota_caps_replicas_and_max_replicas_by_the_tightest_bound() {
        let policy = workload_policy("c", &spec("Shared", false));
        let asked = resources(json!({"requests": {"cpu": "500m", "memory": "256Mi"},
                                     "limits": {"cpu": "1", "memory": "256Mi"}}));
        let t = tenant(json!({"cpu": "4", "memory": "8Gi", "pods": 20}));
        let sized = size(
            &policy,
            &t,
            Scale::Fixed(10),
            Some(&asked),
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        assert_eq!(sized.scale, Scale::Fixed(4), "cpu 4 / limit 1");
        assert!(!sized.surge, "the quota is full: no surge pod");
        assert_eq!(
            sized.adjustments[0].reason,
            adjustments::REPLICAS_CAPPED_BY_QUOTA
        );
        assert_eq!(
            sized.adjustments[0].message,
            "spec.replicas 10 capped to 4 by tenant alpha's quota (cpu 4 at 1 per replica)"
        );
        assert!(sized.adjustments[0].warning);

        let pods = tenant(json!({"pods": 3}));
        let auto = Scale::Autoscaled {
            min: 5,
            max: 8,
            target_cpu: 70,
        };
        let sized = size(
            &policy,
            &pods,
            auto,
            Some(&asked),
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        assert_eq!(
            sized.scale,
            Scale::Autoscaled {
                min: 3,
                max: 3,
                target_cpu: 70
            }
        );
        assert_eq!(
            sized.adjustments[0].reason,
            adjustments::MAX_REPLICAS_CAPPED_BY_QUOTA
        );

        let within = size(
            &policy,
            &t,
            Scale::Fixed(2),
            Some(&asked),
            &ContainerDefaults::fallback(),
        )
        .expect("sized");
        assert_eq!(within.scale, Scale::Fixed(2));
        assert!(within.surge && within.adjustments.is_empty());

        let tiny = tenant(json!({"cpu": "500m"}));
        let refused = size(
            &policy,
            &tiny,
            Scale::Fixed(1),
            Some(&asked),
            &ContainerDefaults::fallback(),
        )
        .expect_err("does not fit");
        assert_eq!(refused.reason, reasons::RESOURCES_EXCEED_QUOTA);
    }

    #[test]
    fn other_tiers_run_what_was_asked() {
        let t = tenant(json!({"pods": 1}));
        for tier in ["Dedicated", "Enterprise"] {
            let policy = workload_policy("c", &spec(tier, false));
            let sized = size(
                &policy,
                &t,
                Scale::Fixed(10),
                None,
                &ContainerDefaults::fallback(),
            )
            .expect("sized");
            assert_eq!(sized.scale, Scale::Fixed(10));
            assert!(sized.resources.is_none() && sized.adjustments.is_empty() && sized.surge);
        }
    }
}
