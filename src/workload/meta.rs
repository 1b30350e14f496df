//! Names, labels, owner references and content hashes of workload objects (pure).
//!
//! Every object a workload builder emits carries the `app.kubernetes.io` labels (the
//! `managed-by` one is what the controllers' Deployment watches select on), the cell and tenant
//! labels of the tenancy objects, and a controller owner reference to the PlayerService or
//! MatchmakingPool it belongs to, so deleting that object lets the garbage collector delete them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

pub use crate::cell::tenancy::{
    LABEL_CELL, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_TENANT, MANAGED_BY,
};

/// Standard label: the application's name.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Standard label: the instance; with the component, what a workload's selector matches.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Label naming the PlayerService an object belongs to.
pub const LABEL_PLAYER_SERVICE: &str = "gamecell.dev/playerservice";
/// Label naming the MatchmakingPool an object belongs to.
pub const LABEL_POOL: &str = "gamecell.dev/matchmakingpool";
/// Label naming the region a regional matchmaker serves.
pub const LABEL_REGION: &str = "gamecell.dev/region";
/// Pod template annotation: hash of the settings the pods read. A settings change changes the
/// pod template, so the Deployment rolls.
pub const ANNOTATION_CONFIG_HASH: &str = "gamecell.dev/config-hash";
/// Pod template annotation: hash of the resource versions of the connection Secrets the pods
/// reference. A Secret's values are never read; when the cell rewrites one (a store was
/// recreated with a new endpoint), its version changes and the pods pick the new values up.
pub const ANNOTATION_CONNECTIONS_HASH: &str = "gamecell.dev/connections-hash";
/// ServiceAccount annotation read by IRSA (and honoured alongside EKS Pod Identity).
pub const ANNOTATION_ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
/// Component label value of a PlayerService's objects.
pub const COMPONENT_PLAYER_SERVICE: &str = "player-service";
/// Component label value of a matchmaker's objects.
pub const COMPONENT_MATCHMAKER: &str = "matchmaker";

/// Longest name of an object that is also a DNS label (Services, label values).
pub const MAX_NAME_LEN: usize = 63;

/// The object that owns a workload's children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
}

impl Owner {
    /// The owner identity of `obj`, or `None` when it lacks a namespace or UID (an object read
    /// from the API server always has both).
    #[must_use]
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Option<Self> {
        Some(Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.name_any(),
            namespace: obj.namespace()?,
            uid: obj.uid()?,
        })
    }

    /// The controller owner reference to this owner. `blockOwnerDeletion` makes a foreground
    /// deletion of the owner wait for its children.
    #[must_use]
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// `parts` joined with `-`; when longer than [`MAX_NAME_LEN`], cut and suffixed with a hash of
/// the full name, so distinct inputs keep distinct names and the result stays a DNS label.
#[must_use]
pub fn bounded_name(parts: &[&str]) -> String {
    let full = parts.join("-");
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    let hash = short_hash(full.as_bytes(), 8);
    let keep = MAX_NAME_LEN - hash.len() - 1;
    let head = full[..keep].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// The first `len` hex digits of the SHA-256 of `bytes`.
#[must_use]
pub fn short_hash(bytes: &[u8], len: usize) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_owned()
}

/// A stable hash of string pairs (ordered by key, so insertion order never matters).
#[must_use]
pub fn map_hash(data: &BTreeMap<String, String>) -> String {
    let mut bytes = Vec::new();
    for (key, value) in data {
        // Length-prefixed, so ("a", "bc") and ("ab", "c") differ.
        bytes.extend_from_slice(&key.len().to_be_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&value.len().to_be_bytes());
        bytes.extend_from_slice(value.as_bytes());
    }
    short_hash(&bytes, 16)
}

/// Who a set of workload objects is for: the labels and metadata every one of them shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The owning PlayerService or MatchmakingPool.
    pub owner: Owner,
    /// The cell the owner is bound to.
    pub cell: String,
    /// The tenant whose namespace the owner lives in.
    pub tenant: String,
}

impl Identity {
    /// Labels of an object of `instance` (the child's name) in `component`; `extra` adds the
    /// owner-kind label and, for matchmakers, the region.
    #[must_use]
    pub fn labels(
        &self,
        instance: &str,
        component: &str,
        extra: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
        let mut labels = self.selector(instance, component);
        labels.insert(LABEL_NAME.to_owned(), self.owner.name.clone());
        labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
        labels.insert(LABEL_PART_OF.to_owned(), self.cell.clone());
        labels.insert(LABEL_CELL.to_owned(), self.cell.clone());
        labels.insert(LABEL_TENANT.to_owned(), self.tenant.clone());
        for (key, value) in extra {
            labels.insert((*key).to_owned(), (*value).to_owned());
        }
        labels
    }

    /// The labels a workload's selector matches: fixed for the object's life (a Deployment's
    /// selector is immutable), unique per child in the namespace.
    #[must_use]
    pub fn selector(&self, instance: &str, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
            (LABEL_COMPONENT.to_owned(), component.to_owned()),
        ])
    }

    /// Metadata of a child named `name` with `labels`, owned by the owner.
    #[must_use]
    pub fn metadata(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.owner.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.reference()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_names_fit_a_dns_label_and_stay_distinct() {
        assert_eq!(
            bounded_name(&["pool", "mm", "eu-west-1"]),
            "pool-mm-eu-west-1"
        );
        let long = "a".repeat(40);
        let one = bounded_name(&[&long, "mm", "ap-southeast-3-extended-region-1"]);
        let two = bounded_name(&[&long, "mm", "ap-southeast-3-extended-region-2"]);
        assert!(one.len() <= MAX_NAME_LEN, "{one}");
        assert_ne!(one, two);
        assert_eq!(
            one,
            bounded_name(&[&long, "mm", "ap-southeast-3-extended-region-1"])
        );
    }

    #[test]
    fn map_hash_depends_on_content_only() {
        let a = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "2".to_owned()),
        ]);
        let mut b = BTreeMap::new();
        b.insert("B".to_owned(), "2".to_owned());
        b.insert("A".to_owned(), "1".to_owned());
        assert_eq!(map_hash(&a), map_hash(&b));
        b.insert("B".to_owned(), "3".to_owned());
        assert_ne!(map_hash(&a), map_hash(&b));
        let split = BTreeMap::from([("AB".to_owned(), "C".to_owned())]);
        let other = BTreeMap::from([("A".to_owned(), "BC".to_owned())]);
        assert_ne!(map_hash(&split), map_hash(&other));
    }
}
