//! The apply step shared by the controllers: server-side apply of a desired object, skipped when
//! the object already holds every field we own (so a resync with nothing new writes nothing).

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, FIELD_MANAGER};

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
pub async fn apply_namespaced<K>(client: &Client, obj: &K) -> Result<bool, Error>
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
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    apply_with(&api, obj).await
}

/// Applies a cluster-scoped object unless it already matches. Returns whether it wrote.
///
/// # Errors
/// When the API server refuses the read or the patch.
pub async fn apply_cluster<K>(client: &Client, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    apply_with(&api, obj).await
}

async fn apply_with<K>(api: &Api<K>, obj: &K) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = obj.name_any();
    let current = api.get_opt(&name).await?;
    if !needs_apply(obj, current.as_ref())? {
        return Ok(false);
    }
    let mut body = serde_json::to_value(obj).map_err(Error::Serialize)?;
    if let Value::Object(map) = &mut body {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
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
