//! The conditions a workload reports, from what its reconcile found (pure).
//!
//! `Ready`, `Reconciling` and `Stalled` follow kstatus; `PolicyAdjusted` says whether the cell's
//! tier changed what the spec asked for, and how. A refused workload is `Stalled` with the
//! refusal's reason; one still rolling out is `Reconciling`; one whose Deployments are available
//! at their current generation is `Ready`.

use crate::controllers::conditions::Desired;
use crate::crds::conditions as cond;

use super::binding::Refusal;
use super::policy::Adjustment;
use super::rollout::Rollout;

/// Condition type: the tier's policy changed what the spec asked for.
pub const POLICY_ADJUSTED: &str = "PolicyAdjusted";
/// `Ready` reason of an available workload.
pub const AVAILABLE: &str = "Available";
/// `Ready` reason while the Deployments roll out.
pub const ROLLING_OUT: &str = "RollingOut";
/// `Ready` reason while a bound store's connection Secret is not yet written by the cell.
pub const WAITING_FOR_DATA_STORES: &str = "WaitingForDataStores";

/// What a workload's reconcile found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing is deployed, for this reason.
    Refused(Refusal),
    /// The objects are applied.
    Deployed {
        /// What the tier's policy changed.
        adjustments: Vec<Adjustment>,
        /// Where the Deployments stand.
        rollout: Rollout,
        /// Connection Secrets the pods reference that do not exist yet.
        missing_secrets: Vec<String>,
    },
}

impl Outcome {
    /// Whether the workload is waiting for something that changes on its own (a rollout, the
    /// cell writing its Secrets), so it is worth looking again soon.
    #[must_use]
    pub fn converging(&self) -> bool {
        match self {
            Self::Refused(_) => false,
            Self::Deployed {
                rollout,
                missing_secrets,
                ..
            } => !(rollout.complete && missing_secrets.is_empty()),
        }
    }
}

/// The conditions of `outcome`, in the order they are shown.
#[must_use]
pub fn conditions(outcome: &Outcome) -> Vec<Desired> {
    match outcome {
        Outcome::Refused(r) => vec![
            Desired::new(cond::READY, false, r.reason, r.message.clone()),
            Desired::new(
                cond::RECONCILING,
                false,
                r.reason,
                "nothing is deployed until the spec or the cell changes",
            ),
            Desired::new(cond::STALLED, true, r.reason, r.message.clone()),
        ],
        Outcome::Deployed {
            adjustments,
            rollout,
            missing_secrets,
        } => {
            let mut out = if rollout.complete && missing_secrets.is_empty() {
                vec![
                    Desired::new(cond::READY, true, AVAILABLE, rollout.progress.clone()),
                    Desired::new(cond::RECONCILING, false, AVAILABLE, "rolled out"),
                    Desired::new(cond::STALLED, false, AVAILABLE, "rolled out"),
                ]
            } else if let Some(problem) = rollout.problem.as_ref().filter(|p| p.stalled) {
                vec![
                    Desired::new(cond::READY, false, problem.reason, problem.message.clone()),
                    Desired::new(
                        cond::RECONCILING,
                        false,
                        problem.reason,
                        "the rollout stopped making progress",
                    ),
                    Desired::new(cond::STALLED, true, problem.reason, problem.message.clone()),
                ]
            } else {
                let (reason, message) = if !missing_secrets.is_empty() {
                    (
                        WAITING_FOR_DATA_STORES,
                        format!(
                            "waiting for the cell to write the connection Secrets {}: its data stores are not all available yet",
                            missing_secrets.join(", ")
                        ),
                    )
                } else if let Some(problem) = &rollout.problem {
                    (problem.reason, problem.message.clone())
                } else {
                    (ROLLING_OUT, rollout.progress.clone())
                };
                vec![
                    Desired::new(cond::READY, false, reason, message.clone()),
                    Desired::new(cond::RECONCILING, true, reason, message),
                    Desired::new(cond::STALLED, false, reason, "progressing"),
                ]
            };
            out.push(match adjustments.first() {
                None => Desired::new(
                    POLICY_ADJUSTED,
                    false,
                    "AsRequested",
                    "the cell's tier policy runs the spec as written",
                ),
                Some(first) => Desired::new(
                    POLICY_ADJUSTED,
                    true,
                    first.reason,
                    adjustments
                        .iter()
                        .map(|a| format!("{}: {}", a.reason, a.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            });
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::binding::reasons;
    use crate::workload::rollout::Problem;

    fn find<'a>(c: &'a [Desired], t: &str) -> &'a Desired {
        c.iter().find(|d| d.type_ == t).expect("condition")
    }

    #[test]
    fn refused_is_stalled_with_the_refusal() {
        let c = conditions(&Outcome::Refused(Refusal::new(
            reasons::CELL_NOT_FOUND,
            "no cell",
        )));
        assert_eq!(
            (find(&c, "Ready").status, find(&c, "Ready").reason),
            (false, "CellNotFound")
        );
        assert!(find(&c, "Stalled").status);
        assert!(c.iter().all(|d| d.type_ != POLICY_ADJUSTED));
    }

    #[test]
    fn ready_only_when_rolled_out_with_its_secrets() {
        let done = Rollout {
            complete: true,
            progress: "2 of 2".into(),
            ..Rollout::default()
        };
        let outcome = |rollout: Rollout, missing: Vec<String>| Outcome::Deployed {
            adjustments: vec![Adjustment {
                reason: "ReplicasCappedByQuota",
                message: "10 -> 4".into(),
                warning: true,
            }],
            rollout,
            missing_secrets: missing,
        };
        let c = conditions(&outcome(done.clone(), vec![]));
        assert!(find(&c, "Ready").status);
        assert_eq!(find(&c, POLICY_ADJUSTED).reason, "ReplicasCappedByQuota");
        assert_eq!(
            find(&c, POLICY_ADJUSTED).message,
            "ReplicasCappedByQuota: 10 -> 4"
        );

        let waiting = outcome(done, vec!["gamecell-sql".into()]);
        assert!(waiting.converging());
        let c = conditions(&waiting);
        assert_eq!(find(&c, "Ready").reason, WAITING_FOR_DATA_STORES);
        assert!(find(&c, "Reconciling").status);

        let quota = Rollout {
            problem: Some(Problem {
                reason: "ReplicaFailure",
                message: "exceeded quota".into(),
                stalled: false,
            }),
            ..Rollout::default()
        };
        let c = conditions(&outcome(quota, vec![]));
        assert_eq!(find(&c, "Ready").reason, "ReplicaFailure");
        assert!(!find(&c, "Stalled").status);
        let stuck = Rollout {
            problem: Some(Problem {
                reason: "ProgressDeadlineExceeded",
                message: "m".into(),
                stalled: true,
            }),
            ..Rollout::default()
        };
        assert!(find(&conditions(&outcome(stuck, vec![])), "Stalled").status);
    }
}
