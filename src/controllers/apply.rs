//! The apply step shared by the controllers: server-side apply of a desired object, skipped when
//! the object already holds every field we own (so a resync with nothing new writes nothing).
//! The read that decides it is itself skipped when the applied memo shows the child unchanged
//! since it was last verified (see `applied`), so a resync with nothing new sends nothing.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::applied::{Applied, Key, desired_hash};
use super::{Error, FIELD_MANAGER};

/// A cluster's client with the applied memo of that cluster: what the apply functions write with.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    applied: Arc<Applied>,
}

impl Applier {
    /// Applies with `client`, skipping reads the memo `applied` (of the same cluster) allows.
    #[must_use]
    pub fn new(client: Client, applied: Arc<Applied>) -> Self {
        Self { client, applied }
    }

    /// Applies with `client`, reading every child first (no memo).
    #[must_use]
    pub fn without_memo(client: Client) -> Self {
        Self::new(client, Arc::new(Applied::disabled()))
    }

    /// The client of the cluster.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The memo.
    #[must_use]
    pub fn applied(&self) -> &Applied {
        &self.applied
    }
}

/// Whether every field of `desired` is present in `actual` with the same value. Lists must match
/// element by element. Fields the API server adds (defaults, status, metadata) are ignored.
#[must_use]
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || a.get(k).is_some_and(|av| is_subset(dv, av))),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| is_subset(dv, av))
        }
        _ => desired == actual,
    }
}

fn needs_apply<K: Serialize>(desired: &K, current: Option<&K>) -> Result<bool, Error> {
    let Some(current) = current else {
        return Ok(true);
    };
    let desired = serde_json::to_value(desired).map_err(Error::Serialize)?;
    let current = serde_json::to_value(current).map_err(Error::Serialize)?;
    Ok(!is_subset(&desired, &current))
}

/// Applies a namespaced object unless it already matches. Returns whether it wrote.
///
/// # Errors
/// When the API server refuses the read or the patch.
pub async fn apply_namespaced<K>(applier: &Applier, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let namespace = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<K> = Api::namespaced(applier.client.clone(), &namespace);
    apply_with(&api, &applier.applied, obj).await
}

/// Applies a cluster-scoped object unless it already matches. Returns whether it wrote.
///
/// # Errors
/// When the API server refuses the read or the patch.
pub async fn apply_cluster<K>(applier: &Applier, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let api: Api<K> = Api::all(applier.client.clone());
    apply_with(&api, &applier.applied, obj).await
}

async fn apply_with<K>(api: &Api<K>, applied: &Applied, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let key = Key::of(obj);
    let hash = desired_hash(obj)?;
    if applied.can_skip(&key, hash) {
        return Ok(false);
    }
    let name = obj.name_any();
    let current = api.get_opt(&name).await?;
    if !needs_apply(obj, current.as_ref())? {
        // Verified unchanged at this resourceVersion.
        applied.record(key, hash, current.and_then(|c| c.resource_version()));
        return Ok(false);
    }
    let mut body = serde_json::to_value(obj).map_err(Error::Serialize)?;
    if let Value::Object(map) = &mut body {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    // Before the write: a write that fails may still have created the child.
    applied.child_written(obj.meta());
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    // Recorded only if the result holds every desired field, as a read would have found it: an
    // object the API server normalises differently (a quantity, a default) is read and patched
    // at every reconcile as before, never silently taken as converged.
    if needs_apply(obj, Some(&written))? {
        applied.forget(&key);
    } else {
        applied.record(key, hash, written.resource_version());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields_but_not_changed_ones() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"hard": {"pods": "10"}}});
        let actual = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "kubernetes.io/y": "2"}},
                            "spec": {"hard": {"pods": "10"}}, "status": {}});
        assert!(is_subset(&desired, &actual));
        let changed = json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"hard": {"pods": "10"}}});
        assert!(!is_subset(&changed, &actual));
        assert!(!is_subset(&json!({"l": [1, 2]}), &json!({"l": [1]})));
    }
}
