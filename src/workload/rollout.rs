//! Where a Deployment's rollout stands (pure): the figures a workload's status reports and
//! whether it is available at its current generation.
//!
//! The test is `kubectl rollout status`'s: the Deployment controller has observed the current
//! generation, every desired replica runs the current template, no old replica is left, and the
//! desired number is available.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A rollout problem the Deployment controller reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `ProgressDeadlineExceeded` or `ReplicaFailure`.
    pub reason: &'static str,
    /// The Deployment controller's message (for example a quota refusal).
    pub message: String,
    /// Whether progress stopped (a deadline passed) rather than is being retried.
    pub stalled: bool,
}

/// One or several Deployments' rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Replicas wanted.
    pub desired: i32,
    /// Replicas ready.
    pub ready: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Replicas available.
    pub available: i32,
    /// Whether every Deployment is available at its current generation.
    pub complete: bool,
    /// What is still happening, for a condition message.
    pub progress: String,
    /// A problem the Deployment controller reports.
    pub problem: Option<Problem>,
}

/// What [`observe`] reads of a Deployment (identity, generation, resourceVersion, replicas,
/// status) and nothing else: the copy a controller keeps between reconciles.
#[must_use]
pub fn slim(deployment: &Deployment) -> Deployment {
    let meta = &deployment.metadata;
    Deployment {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            generation: meta.generation,
            resource_version: meta.resource_version.clone(),
            ..ObjectMeta::default()
        },
        spec: deployment.spec.as_ref().map(|s| DeploymentSpec {
            replicas: s.replicas,
            ..DeploymentSpec::default()
        }),
        status: deployment.status.clone(),
    }
}

/// The rollout of `deployment` (`None`: it does not exist yet). `floor` is the autoscaler's
/// `minReplicas` (0 without one): a Deployment the autoscaler has not scaled up to its floor yet
/// is still rolling out, not available with fewer replicas.
#[must_use]
pub fn observe(deployment: Option<&Deployment>, floor: i32) -> Rollout {
    let Some(d) = deployment else {
        return Rollout {
            progress: "the Deployment does not exist yet".to_owned(),
            ..Rollout::default()
        };
    };
    let name = d.metadata.name.clone().unwrap_or_default();
    let desired = d
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(floor);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let progress = if !observed {
        format!("Deployment {name}: waiting for the Deployment controller to see the new spec")
    } else if updated < desired {
        format!("Deployment {name}: {updated} of {desired} replicas updated")
    } else if replicas > updated {
        format!(
            "Deployment {name}: {} old replicas pending termination",
            replicas - updated
        )
    } else {
        format!("Deployment {name}: {available} of {desired} replicas available")
    };
    let complete = observed && updated >= desired && replicas <= updated && available >= desired;
    let conditions = status.conditions.unwrap_or_default();
    let problem = conditions
        .iter()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| Problem {
            reason: "ProgressDeadlineExceeded",
            message: format!(
                "Deployment {name}: {}",
                c.message.clone().unwrap_or_default()
            ),
            stalled: true,
        })
        .or_else(|| {
            conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                .map(|c| Problem {
                    reason: "ReplicaFailure",
                    message: format!(
                        "Deployment {name}: {}",
                        c.message.clone().unwrap_or_default()
                    ),
                    stalled: false,
                })
        })
        .filter(|_| !complete);
    Rollout {
        desired,
        ready,
        updated,
        available,
        complete,
        progress,
        problem,
    }
}

/// Several rollouts as one (a pool's regional matchmakers): figures summed, complete when all
/// are, the first incomplete one's progress and the first problem.
#[must_use]
pub fn combine(rollouts: &[Rollout]) -> Rollout {
    let mut out = Rollout {
        complete: true,
        ..Rollout::default()
    };
    for r in rollouts {
        out.desired += r.desired;
        out.ready += r.ready;
        out.updated += r.updated;
        out.available += r.available;
        if !r.complete && out.complete {
            out.progress.clone_from(&r.progress);
        }
        out.complete &= r.complete;
        if out.problem.is_none() {
            out.problem.clone_from(&r.problem);
        }
    }
    if out.complete {
        out.progress = format!("{} of {} replicas available", out.available, out.desired);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status
        }))
        .expect("deployment")
    }

    #[test]
    fn a_slim_copy_observes_the_same_rollout() {
        let stuck = deployment(
            4,
            3,
            json!({"observedGeneration": 4, "replicas": 4, "updatedReplicas": 2,
                   "readyReplicas": 3, "availableReplicas": 3,
                   "conditions": [{"type": "Progressing", "status": "False",
                                   "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}),
        );
        for floor in [0, 5] {
            assert_eq!(
                observe(Some(&slim(&stuck)), floor),
                observe(Some(&stuck), floor)
            );
        }
        let done = deployment(
            2,
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(observe(Some(&slim(&done)), 0), observe(Some(&done), 0));
        assert!(
            slim(&stuck)
                .spec
                .is_some_and(|s| s.template.spec.is_none() && s.replicas == Some(3)),
            "the template is not kept"
        );
    }

    #[test]
    fn available_only_at_the_current_generation_with_every_replica_updated() {
        let done = deployment(
            2,
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                           "readyReplicas": 2, "availableReplicas": 2}),
        );
        let r = observe(Some(&done), 0);
        assert!(r.complete);
        assert_eq!((r.desired, r.ready, r.updated), (2, 2, 2));
        let below_floor = observe(Some(&done), 3);
        assert!(
            !below_floor.complete,
            "the autoscaler has not reached its floor"
        );
        assert_eq!(below_floor.desired, 3);

        let unseen = deployment(
            3,
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                             "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert!(
            !observe(Some(&unseen), 0).complete,
            "a new generation is not yet rolled out"
        );
        let rolling = deployment(
            3,
            2,
            json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2,
                                              "readyReplicas": 3, "availableReplicas": 3}),
        );
        let r = observe(Some(&rolling), 0);
        assert!(!r.complete);
        assert!(
            r.progress.contains("old replicas pending termination"),
            "{}",
            r.progress
        );
        assert!(!observe(None, 0).complete);
    }

    #[test]
    fn quota_refusals_and_deadlines_are_reported() {
        let refused = deployment(
            1,
            3,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
            "availableReplicas": 1, "conditions": [{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate", "message": "pods \"x\" is forbidden: exceeded quota"}]}),
        );
        let problem = observe(Some(&refused), 0).problem.expect("problem");
        assert_eq!(problem.reason, "ReplicaFailure");
        assert!(problem.message.contains("exceeded quota") && !problem.stalled);
        let stuck = deployment(
            1,
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing",
            "status": "False", "reason": "ProgressDeadlineExceeded", "message": "took too long"}]}),
        );
        assert!(observe(Some(&stuck), 0).problem.expect("problem").stalled);
    }

    #[test]
    fn combined_rollouts_sum_and_wait_for_all() {
        let a = Rollout {
            desired: 2,
            ready: 2,
            updated: 2,
            available: 2,
            complete: true,
            ..Rollout::default()
        };
        let b = Rollout {
            desired: 1,
            progress: "b rolling".into(),
            ..Rollout::default()
        };
        let both = combine(&[a.clone(), b]);
        assert_eq!((both.desired, both.ready, both.complete), (3, 2, false));
        assert_eq!(both.progress, "b rolling");
        assert!(combine(&[a.clone(), a]).complete);
    }
}
