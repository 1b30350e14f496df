//! The apply step shared by the controllers: server-side apply of a desired object, skipped when
//! the object already holds every field we own (so a resync with nothing new writes nothing).
//! The read that decides it is itself skipped when the applied memo shows the child unchanged
//! since it was last verified (see `applied`), so a resync with nothing new sends nothing.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::applied::{Applied, Key, Read, desired_hash};
use super::{Error, FIELD_MANAGER};
use crate::cell::tenancy::{LABEL_MANAGED_BY, MANAGED_BY};

/// A namespaced object the apply step can write: what every tenant child, workload object and
/// connection Secret is.
pub trait NamespacedChild:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
{
}

impl<K> NamespacedChild for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
{
}

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

    /// The resourceVersion of the unwatched child `name` (a Secret) in `namespace` when this
    /// applier last read or wrote it (see [`Applied::last_version`]).
    #[must_use]
    pub fn last_version<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        self.applied
            .last_version(&Key::named::<K>(Some(namespace), name))
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
pub async fn apply_namespaced<K: NamespacedChild>(
    applier: &Applier,
    obj: &K,
) -> Result<bool, Error> {
    Ok(apply_namespaced_seen(applier, obj).await?.written)
}

/// What one apply did, and the object as the API server returned it, if the apply step read or
/// wrote it (not when the memo let it skip the read).
pub struct Seen<K> {
    /// Whether it wrote.
    pub written: bool,
    /// The object as read or written, status included.
    pub object: Option<K>,
}

/// [`apply_namespaced`], keeping the object it read or wrote: a caller that needs the child's
/// status (a Deployment's rollout) then reads it only when the apply step did not.
///
/// # Errors
/// When the API server refuses the read or the patch.
pub async fn apply_namespaced_seen<K: NamespacedChild>(
    applier: &Applier,
    obj: &K,
) -> Result<Seen<K>, Error> {
    let namespace = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<K> = Api::namespaced(applier.client.clone(), &namespace);
    apply_with(&api, &applier.applied, obj).await
}

/// A Secret the operator writes and also needs a value of (a tenant's SQL password, a
/// matchmaker token), holding only the data `keys` asked for: the copy kept at its last read
/// while the unwatched registry still takes the Secret as unchanged (the apply step skips its
/// read in that window too, see [`Applied::trusted_copy`]), else a GET whose slim result is
/// kept. `None` when it does not exist.
///
/// # Errors
/// When the API server fails the read.
pub async fn read_secret(
    applier: &Applier,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<Option<Secret>, kube::Error> {
    let key = Key::named::<Secret>(Some(namespace), name);
    if let Some(copy) = applier.applied.trusted_copy::<Secret>(&key) {
        return Ok(Some(copy));
    }
    let api: Api<Secret> = Api::namespaced(applier.client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let slim = slim_secret(secret, keys);
    applier.applied.keep_copy(slim.clone());
    Ok(Some(slim))
}

/// `secret` with its name, namespace, resourceVersion and the data `keys` only (pure): what
/// [`read_secret`] keeps, so the copies hold no more than their readers use.
#[must_use]
pub fn slim_secret(secret: Secret, keys: &[&str]) -> Secret {
    let data = secret.data.map(|data| {
        data.into_iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .collect()
    });
    Secret {
        metadata: ObjectMeta {
            name: secret.metadata.name,
            namespace: secret.metadata.namespace,
            resource_version: secret.metadata.resource_version,
            ..ObjectMeta::default()
        },
        data,
        ..Secret::default()
    }
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
    Ok(apply_with(&api, &applier.applied, obj).await?.written)
}

async fn apply_with<K>(api: &Api<K>, applied: &Applied, obj: &K) -> Result<Seen<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let key = Key::of(obj);
    let hash = desired_hash(obj)?;
    let labelled = obj
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY);
    let read = applied.read_of(&key, hash, labelled);
    if read == Read::Skip {
        return Ok(Seen {
            written: false,
            object: None,
        });
    }
    let name = obj.name_any();
    let current = match read {
        Read::Get => api.get_opt(&name).await?,
        Read::Absent | Read::Skip => None,
    };
    if !needs_apply(obj, current.as_ref())? {
        // Verified unchanged at this resourceVersion.
        applied.record(
            key,
            hash,
            current.as_ref().and_then(ResourceExt::resource_version),
        );
        return Ok(Seen {
            written: false,
            object: current,
        });
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
    Ok(Seen {
        written: true,
        object: Some(written),
    })
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

    #[test]
    fn a_slim_secret_keeps_only_the_keys_asked_for() {
        use k8s_openapi::ByteString;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("gamecell-sql".into()),
                namespace: Some("t1".into()),
                resource_version: Some("42".into()),
                labels: Some([("a".to_owned(), "b".to_owned())].into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [
                    ("SQL_PASSWORD".to_owned(), ByteString(b"p".to_vec())),
                    ("SQL_HOST".to_owned(), ByteString(b"h".to_vec())),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        let slim = slim_secret(secret, &["SQL_PASSWORD"]);
        assert_eq!(slim.metadata.name.as_deref(), Some("gamecell-sql"));
        assert_eq!(slim.metadata.namespace.as_deref(), Some("t1"));
        assert_eq!(slim.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(slim.metadata.labels, None);
        let data = slim.data.expect("data kept");
        assert_eq!(data.len(), 1);
        assert_eq!(data["SQL_PASSWORD"].0, b"p");
    }
}
