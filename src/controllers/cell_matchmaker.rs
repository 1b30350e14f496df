//! The cell matchmaker step of the GameCell controller (Shared cells): the shared-services
//! namespace and its policies, each tenant's credential Secret, and the one matchmaker serving
//! every tenant's pools. Who writes what, and why, is in `workload::cell_matchmaker`; this module
//! only observes and applies (every apply is skipped when the object already matches, so a
//! resync writes nothing).

use std::collections::BTreeMap;
use std::io::Read;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::DeleteParams;
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Error;
use super::apply::{Applier, apply_cluster, apply_namespaced, read_secret};
use crate::cell::tenancy::{
    CellIdentity, shared_namespace_conflict, shared_services_namespace, shared_services_objects,
};
use crate::crds::{GameCell, MatchmakingPool};
use crate::workload::cell_matchmaker::{
    self, CONFIG_NAME, CREDENTIAL_SECRET, KEY_TOKEN, NAME, existing_token, token_from,
};

/// The controller owner UIDs of the namespace `name`, or `None` when it does not exist.
///
/// # Errors
/// When the API server fails the read.
pub async fn namespace_owners(client: &Client, name: &str) -> Result<Option<Vec<String>>, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    Ok(api.get_metadata_opt(name).await?.map(|ns| {
        ns.owner_references()
            .iter()
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
            .collect()
    }))
}

/// Applies the cell matchmaker of a Shared cell (nothing for other tiers); `pools` are the
/// MatchmakingPools that name the cell (from the watch cache).
///
/// # Errors
/// When the Kubernetes API fails.
pub async fn apply(
    applier: &Applier,
    cell: &GameCell,
    identity: CellIdentity<'_>,
    pools: &[MatchmakingPool],
) -> Result<(), Error> {
    let client = applier.client();
    let spec = &cell.spec;
    let Some(shared) = shared_services_objects(identity, spec) else {
        return Ok(());
    };
    let namespace = shared_services_namespace(identity.name);
    let owners = namespace_owners(client, &namespace).await?;
    if let Some(conflict) = shared_namespace_conflict(identity, spec, owners.as_deref()) {
        // The pools bound to the cell report it in their status; nothing is taken over.
        tracing::warn!(%conflict, "no cell matchmaker");
        return Ok(());
    }
    apply_cluster(applier, &shared.namespace).await?;
    for policy in &shared.network_policies {
        apply_namespaced(applier, policy).await?;
    }

    // Each tenant's token: the one its Secret holds, or a new random one.
    let mut tokens = BTreeMap::new();
    for tenant in &spec.tenants {
        let current =
            read_secret(applier, &tenant.namespace, CREDENTIAL_SECRET, &[KEY_TOKEN]).await?;
        let token = match existing_token(current.as_ref()) {
            Some(token) => token,
            None => match random_token() {
                Ok(token) => token,
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, error = %e, "cannot draw a matchmaker token; retried at the next reconcile");
                    continue;
                }
            },
        };
        let secret = cell_matchmaker::credential_secret(identity, tenant, &token);
        apply_namespaced(applier, &secret).await?;
        tokens.insert(tenant.name.clone(), token);
    }

    let served = cell_matchmaker::served_pools(cell, pools);
    let built = if served.is_empty() {
        None
    } else {
        match cell_matchmaker::build(cell, identity, &served, &tokens) {
            Ok(objects) => Some(objects),
            Err(refusal) => {
                // The pools report the refusal (their controller makes the same check).
                tracing::warn!(reason = refusal.reason, message = %refusal.message, "no cell matchmaker");
                None
            }
        }
    };
    match built {
        Some(objects) => {
            // The configuration first: the Deployment's annotation wakes the pools' controller,
            // which then reads a ConfigMap that already holds them.
            apply_namespaced(applier, &objects.config_map).await?;
            apply_namespaced(applier, &objects.tokens_secret).await?;
            apply_namespaced(applier, &objects.deployment).await?;
            apply_namespaced(applier, &objects.service).await?;
        }
        None => {
            // No pool to serve: no idle matchmaker. Credentials and policies stay.
            let uid = identity.uid;
            delete_owned::<Deployment>(client, &namespace, NAME, uid).await?;
            delete_owned::<Service>(client, &namespace, NAME, uid).await?;
            delete_owned::<ConfigMap>(client, &namespace, CONFIG_NAME, uid).await?;
        }
    }
    Ok(())
}

/// Deletes `name` in `namespace` if it exists and `owner_uid` controls it.
///
/// # Errors
/// When the API server fails.
pub async fn delete_owned<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let Some(current) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    let ours = current
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true));
    if !ours || current.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    tracing::info!(kind = %K::kind(&()), %namespace, %name, "deleting a matchmaker object no longer wanted");
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(token_from(&bytes))
}
