//! Building `status.conditions` the Kubernetes way (pure).
//!
//! `lastTransitionTime` moves only when a condition's status flips, so recomputing the same
//! conditions twice yields the same list and a reconcile that changed nothing writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition the reconciler wants, before timestamps are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// Human-readable explanation; never carries a secret.
    pub message: String,
}

impl Desired {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Merges `desired` into `previous`: conditions are ordered as desired, keep their
/// `lastTransitionTime` when their status did not change, and take `now` when it did.
/// Conditions of types no longer desired are dropped.
#[must_use]
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_owned();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: d.type_.to_owned(),
                status,
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of `type_`, if present.
#[must_use]
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and True.
#[must_use]
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            &[Desired::new("Ready", false, "Provisioning", "creating")],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));

        let same = merge(
            &first,
            &[Desired::new(
                "Ready",
                false,
                "Provisioning",
                "still creating",
            )],
            Some(1),
            &at(200),
        );
        assert_eq!(
            same[0].last_transition_time,
            at(100),
            "status unchanged: time kept"
        );
        assert_eq!(same[0].message, "still creating");

        let flipped = merge(
            &same,
            &[Desired::new("Ready", true, "Ready", "done")],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert_eq!(flipped[0].observed_generation, Some(2));
    }

    #[test]
    fn merging_the_same_conditions_twice_is_a_fixed_point() {
        let desired = [
            Desired::new("Ready", true, "Ready", "ok"),
            Desired::new("Stalled", false, "Ready", "ok"),
        ];
        let once = merge(&[], &desired, Some(3), &at(10));
        let twice = merge(&once, &desired, Some(3), &at(99));
        assert_eq!(once, twice);
        assert!(is_true(&twice, "Ready"));
        assert!(!is_true(&twice, "Stalled"));
        assert!(find(&twice, "Missing").is_none());
    }
}
