//! Whether a workload may bind to the cell it names (pure): the cell exists, the workload's
//! namespace is one of the cell's tenant namespaces, every data store it binds is one the cell
//! has, and its image comes from a registry the cell allows.
//!
//! A refusal means nothing is deployed (what already runs is left running: a bad edit never
//! takes a service down) and the object's `Ready` condition carries the reason. Messages never
//! name another tenant or its namespace: a tenant learns only about its own binding.

use crate::crds::GameCell;
use crate::crds::gamecell::{GameCellSpec, TenantSpec};
use crate::crds::playerservice::DataStoreBindings;

/// Reasons a workload is refused.
pub mod reasons {
    /// `spec.cellRef` names no GameCell.
    pub const CELL_NOT_FOUND: &str = "CellNotFound";
    /// The workload's namespace is not a tenant namespace of the cell.
    pub const NAMESPACE_NOT_IN_CELL: &str = "NamespaceNotInCell";
    /// The workload binds a data store the cell does not declare.
    pub const DATA_STORE_NOT_IN_CELL: &str = "DataStoreNotInCell";
    /// The image is not from a registry in the cell's `compliance.allowedRegistries`.
    pub const IMAGE_NOT_ALLOWED: &str = "ImageNotAllowed";
    /// One replica alone needs more than the tenant's quota.
    pub const RESOURCES_EXCEED_QUOTA: &str = "ResourcesExceedQuota";
    /// The queue configuration of a pool is not valid.
    pub const INVALID_QUEUES: &str = "InvalidQueues";
    /// A queue lists a region the cell's compliance block does not allow.
    pub const QUEUE_REGION_NOT_ALLOWED: &str = "QueueRegionNotAllowed";
    /// The API server refused a child object (the message says why).
    pub const APPLY_REJECTED: &str = "ApplyRejected";
}

/// Why nothing is deployed for a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// PascalCase reason (see [`reasons`]).
    pub reason: &'static str,
    /// What is wrong and what to change.
    pub message: String,
}

impl Refusal {
    /// A refusal with `reason` and `message`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The cell and the tenant a workload in `namespace` binds to.
///
/// # Errors
/// `CellNotFound` when `cell` is `None`, `NamespaceNotInCell` when no tenant of the cell lives in
/// `namespace`.
pub fn bind<'a>(
    cell_name: &str,
    cell: Option<&'a GameCell>,
    namespace: &str,
) -> Result<(&'a GameCell, &'a TenantSpec), Refusal> {
    let cell = cell.ok_or_else(|| {
        Refusal::new(
            reasons::CELL_NOT_FOUND,
            format!(
                "GameCell {cell_name} does not exist: create it, or fix spec.cellRef.name; nothing is deployed until it exists"
            ),
        )
    })?;
    let tenant = cell
        .spec
        .tenants
        .iter()
        .find(|t| t.namespace == namespace)
        .ok_or_else(|| {
            Refusal::new(
                reasons::NAMESPACE_NOT_IN_CELL,
                format!(
                    "namespace {namespace} is not a tenant namespace of GameCell {cell_name}: a workload runs only in its own tenant's namespace of the cell it names"
                ),
            )
        })?;
    Ok((cell, tenant))
}

/// Checks that every store in `bindings` is declared by the cell.
///
/// # Errors
/// `DataStoreNotInCell`, naming every missing store.
pub fn check_data_stores(
    cell_name: &str,
    spec: &GameCellSpec,
    bindings: &DataStoreBindings,
) -> Result<(), Refusal> {
    let stores = spec.data_stores.clone().unwrap_or_default();
    let mut missing = Vec::new();
    if bindings.sql && stores.sql.is_none() {
        missing.push("sql".to_owned());
    }
    if bindings.cache && stores.cache.is_none() {
        missing.push("cache".to_owned());
    }
    for table in &bindings.document_tables {
        if !stores.document_tables.iter().any(|t| &t.name == table) {
            missing.push(format!("documentTables/{table}"));
        }
    }
    for bucket in &bindings.buckets {
        if !stores.buckets.iter().any(|b| &b.name == bucket) {
            missing.push(format!("buckets/{bucket}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Refusal::new(
            reasons::DATA_STORE_NOT_IN_CELL,
            format!(
                "GameCell {cell_name} has no {}: bind only the stores the cell declares under spec.dataStores",
                missing.join(", ")
            ),
        ))
    }
}

/// Whether `image` comes from `registry`, a prefix such as
/// `123456789012.dkr.ecr.eu-west-1.amazonaws.com/`. A prefix that does not end in `/` must be
/// followed by `/`, `:` or `@` (or end the image), so `ghcr.io/acme` allows `ghcr.io/acme/x` but
/// not `ghcr.io/acme-evil/x`. Images are compared as written: `nginx` is not taken to mean
/// `docker.io/library/nginx`, which errs on the side of refusing.
#[must_use]
pub fn from_registry(image: &str, registry: &str) -> bool {
    if registry.is_empty() {
        return false;
    }
    image.strip_prefix(registry).is_some_and(|rest| {
        registry.ends_with('/') || rest.is_empty() || rest.starts_with(['/', ':', '@'])
    })
}

/// Checks `image` against the cell's `compliance.allowedRegistries` (any tier that lists them;
/// Enterprise cells are where they are expected). An empty list allows every registry.
///
/// # Errors
/// `ImageNotAllowed`.
pub fn check_image(cell_name: &str, spec: &GameCellSpec, image: &str) -> Result<(), Refusal> {
    let allowed = spec
        .compliance
        .as_ref()
        .map(|c| c.allowed_registries.as_slice())
        .unwrap_or_default();
    if allowed.is_empty() || allowed.iter().any(|r| from_registry(image, r)) {
        Ok(())
    } else {
        Err(Refusal::new(
            reasons::IMAGE_NOT_ALLOWED,
            format!(
                "image {image} is not from a registry GameCell {cell_name} allows ({}): push it to one of them",
                allowed.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(spec: serde_json::Value) -> GameCell {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
            "metadata": {"name": "c1", "uid": "u1"}, "spec": spec
        }))
        .expect("cell")
    }

    fn shared() -> GameCell {
        cell(json!({
            "tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "alpha", "namespace": "ns-a"}, {"name": "beta", "namespace": "ns-b"}],
            "dataStores": {"sql": {"engine": "Postgres", "version": "16"},
                           "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}]}
        }))
    }

    #[test]
    fn binds_to_the_tenant_of_the_namespace() {
        let cell = shared();
        let (_, tenant) = bind("c1", Some(&cell), "ns-b").expect("bound");
        assert_eq!(tenant.name, "beta");
        let refused = bind("c1", None, "ns-b").expect_err("no cell");
        assert_eq!(refused.reason, reasons::CELL_NOT_FOUND);
        let refused = bind("c1", Some(&cell), "ns-x").expect_err("foreign namespace");
        assert_eq!(refused.reason, reasons::NAMESPACE_NOT_IN_CELL);
        assert!(
            !refused.message.contains("ns-a") && !refused.message.contains("alpha"),
            "never names another tenant: {}",
            refused.message
        );
    }

    #[test]
    fn binding_a_store_the_cell_lacks_is_refused() {
        let cell = shared();
        let ok = DataStoreBindings {
            sql: true,
            document_tables: vec!["saves".into()],
            ..DataStoreBindings::default()
        };
        assert!(check_data_stores("c1", &cell.spec, &ok).is_ok());
        let bad = DataStoreBindings {
            cache: true,
            buckets: vec!["assets".into()],
            ..ok
        };
        let refused = check_data_stores("c1", &cell.spec, &bad).expect_err("missing");
        assert_eq!(refused.reason, reasons::DATA_STORE_NOT_IN_CELL);
        assert!(
            refused.message.contains("cache, buckets/assets"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn registries_match_on_a_boundary() {
        assert!(from_registry("ghcr.io/acme/x:1", "ghcr.io/acme"));
        assert!(from_registry("ghcr.io/acme/x:1", "ghcr.io/acme/"));
        assert!(from_registry("ghcr.io/acme:1", "ghcr.io/acme"));
        assert!(!from_registry("ghcr.io/acme-evil/x:1", "ghcr.io/acme"));
        assert!(!from_registry("docker.io/x", ""));
        let spec = cell(json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/r",
                                  "externalId": "ext", "clusterName": "k"}},
            "tenants": [{"name": "acme", "namespace": "acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"],
                           "allowedRegistries": ["123456789012.dkr.ecr.eu-central-1.amazonaws.com/"]}
        }))
        .spec;
        assert!(
            check_image(
                "c1",
                &spec,
                "123456789012.dkr.ecr.eu-central-1.amazonaws.com/p:1"
            )
            .is_ok()
        );
        let refused = check_image("c1", &spec, "docker.io/p:1").expect_err("refused");
        assert_eq!(refused.reason, reasons::IMAGE_NOT_ALLOWED);
        assert!(
            check_image("c1", &shared().spec, "docker.io/p:1").is_ok(),
            "no list: any registry"
        );
    }
}
