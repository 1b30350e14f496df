//! Pure builders of the Kubernetes objects that isolate a cell's tenants: same input, same objects; no client, no I/O, no logging.
//!
//! For every tenant of a GameCell: its Namespace (with Pod Security Admission labels chosen by
//! tier), a ResourceQuota, a LimitRange and the NetworkPolicies of its tier. Also the Secret that
//! hands a tenant the connection details of a data store. Every object carries the operator's
//! labels and a controller owner reference to the (cluster-scoped) GameCell, and is built from
//! `BTreeMap`s only, without timestamps, so two builds of the same spec are equal and comparing
//! with what the API server returns shows real drift only.
//!
//! What each tier gets:
//!
//! | object                     | Dedicated         | Shared     | Enterprise        |
//! |----------------------------|-------------------|------------|-------------------|
//! | Namespace PSA enforce      | none              | baseline   | restricted        |
//! | Namespace PSA warn / audit | baseline          | restricted | restricted        |
//! | ResourceQuota              | if quota set      | always     | if quota set      |
//! | LimitRange                 | if quota on CPU or memory | always | if quota on CPU or memory |
//! | NetworkPolicies            | none              | 4 (+1)     | 4 (+1)            |
//!
//! (+1): `gamecell-allow-datastores`, only when the cell declares a store that lives inside the
//! VPC (SQL or cache). Shared tenants also get `gamecell-allow-cell-matchmaker`: egress to the
//! cell matchmaker's port in the cell's shared-services namespace, and nowhere else there.
//!
//! A Shared cell also has a namespace of its own for the services it shares between tenants
//! ([`shared_services_objects`]): `gamecell-<cell>`, labelled with the cell (no tenant), the
//! tenants' Pod Security labels, a default-deny, DNS egress, and ingress to the cell matchmaker's
//! port from exactly this cell's tenant namespaces (by `kubernetes.io/metadata.name`, a label only
//! the API server sets, so neither another cell's tenant nor a relabelled namespace gets in).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec, Secret,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crds::gamecell::{CellTier, GameCellSpec, SqlEngine, TenantQuota, TenantSpec};
use crate::crds::{API_GROUP, API_VERSION};

/// Label naming the GameCell an object belongs to.
pub const LABEL_CELL: &str = "gamecell.dev/cell";
/// Label naming the tenant an object belongs to.
pub const LABEL_TENANT: &str = "gamecell.dev/tenant";
/// Standard label: the tool managing the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Standard label: the higher-level application (here: the cell) the object is part of.
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// Standard label: the object's role.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of [`LABEL_MANAGED_BY`] on everything this operator creates.
pub const MANAGED_BY: &str = "gamecell-operator";

/// Name of a tenant's ResourceQuota.
pub const QUOTA_NAME: &str = "gamecell-quota";
/// Name of a tenant's LimitRange.
pub const LIMIT_RANGE_NAME: &str = "gamecell-defaults";
/// NetworkPolicy denying all ingress and egress not allowed by another policy.
pub const NETPOL_DEFAULT_DENY: &str = "gamecell-default-deny";
/// NetworkPolicy allowing traffic between pods of the same namespace.
pub const NETPOL_SAME_NAMESPACE: &str = "gamecell-allow-same-namespace";
/// NetworkPolicy allowing DNS lookups against the cluster DNS.
pub const NETPOL_DNS: &str = "gamecell-allow-dns";
/// NetworkPolicy allowing egress to addresses outside the private ranges.
pub const NETPOL_EGRESS_EXTERNAL: &str = "gamecell-allow-egress-external";
/// NetworkPolicy allowing egress to the cell's in-VPC data stores on their ports.
pub const NETPOL_DATASTORES: &str = "gamecell-allow-datastores";
/// NetworkPolicy of a Shared tenant allowing egress to the cell matchmaker's port.
pub const NETPOL_CELL_MATCHMAKER: &str = "gamecell-allow-cell-matchmaker";
/// NetworkPolicy of the shared-services namespace admitting the cell's tenants to the matchmaker.
pub const NETPOL_TENANTS_TO_MATCHMAKER: &str = "gamecell-allow-tenants-to-matchmaker";
/// Component label value of the cell's shared services (the namespace and the cell matchmaker).
pub const COMPONENT_SHARED_SERVICES: &str = "shared-services";
/// Component label value of the cell matchmaker's pods, which the policies select.
pub const COMPONENT_CELL_MATCHMAKER: &str = "cell-matchmaker";
/// Port the cell matchmaker serves on (the built-in matchmaker's port).
pub const CELL_MATCHMAKER_PORT: i32 = 8080;
/// The label the API server sets on every namespace to its name.
const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Component label values.
const COMPONENT_NAMESPACE: &str = "namespace";
const COMPONENT_QUOTA: &str = "quota";
const COMPONENT_LIMITS: &str = "limits";
const COMPONENT_NETWORK_POLICY: &str = "network-policy";
const COMPONENT_CONNECTION: &str = "connection";

/// Pod Security Admission label keys.
const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
const PSA_ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
const PSA_AUDIT: &str = "pod-security.kubernetes.io/audit";
const PSA_WARN: &str = "pod-security.kubernetes.io/warn";

/// The RFC 1918 private IPv4 ranges: where the VPC, the nodes, the pods and the in-VPC data
/// stores live.
const PRIVATE_RANGES: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
/// The EC2 instance metadata service. Reaching it from a pod can hand out the node's IAM role;
/// tenants use their own role (IRSA or EKS Pod Identity, whose agent at 169.254.170.23 stays
/// reachable).
const INSTANCE_METADATA: &str = "169.254.169.254/32";

/// Container requests a LimitRange gives a container that sets none.
const DEFAULT_REQUEST_CPU: &str = "100m";
const DEFAULT_REQUEST_MEMORY: &str = "128Mi";
/// Container limits a LimitRange gives a container that sets none.
const DEFAULT_LIMIT_CPU: &str = "500m";
const DEFAULT_LIMIT_MEMORY: &str = "512Mi";

/// Default ports of the in-VPC data stores.
const POSTGRES_PORT: i32 = 5432;
const MYSQL_PORT: i32 = 3306;
const REDIS_PORT: i32 = 6379;

/// The GameCell the objects belong to: its name (labels) and UID (owner references).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellIdentity<'a> {
    /// `metadata.name` of the GameCell.
    pub name: &'a str,
    /// `metadata.uid` of the GameCell.
    pub uid: &'a str,
}

/// The isolation objects of one tenant, all in (or, for the Namespace, named) the tenant's
/// namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantObjects {
    /// The tenant's name in the spec.
    pub tenant: String,
    /// The tenant's Namespace.
    pub namespace: Namespace,
    /// `gamecell-quota`, when the tier or the tenant's quota calls for one.
    pub resource_quota: Option<ResourceQuota>,
    /// `gamecell-defaults`, when there is a quota to fit (always on Shared).
    pub limit_range: Option<LimitRange>,
    /// The tier's NetworkPolicies, in a fixed order; empty on Dedicated.
    pub network_policies: Vec<NetworkPolicy>,
}

/// The isolation objects of every tenant of the cell, in the order of `spec.tenants`.
#[must_use]
pub fn tenant_objects(cell: CellIdentity<'_>, spec: &GameCellSpec) -> Vec<TenantObjects> {
    spec.tenants
        .iter()
        .map(|tenant| build_tenant(cell, spec, tenant))
        .collect()
}

fn build_tenant(cell: CellIdentity<'_>, spec: &GameCellSpec, tenant: &TenantSpec) -> TenantObjects {
    let resource_quota = resource_quota(cell, spec.tier, tenant);
    // A LimitRange exists so that pods without resources still fit a quota on requests and
    // limits. Where there is no such quota (Dedicated or Enterprise without one) it would only
    // cap pods that set no limits at 500m / 512Mi, which is not harmless: a game server without
    // limits would be throttled and OOM-killed. So: always on Shared, elsewhere with the quota.
    let limit_range = (spec.tier == CellTier::Shared
        || resource_quota.as_ref().is_some_and(constrains_compute))
    .then(|| limit_range(cell, tenant));
    TenantObjects {
        tenant: tenant.name.clone(),
        namespace: namespace(cell, spec.tier, tenant),
        resource_quota,
        limit_range,
        network_policies: network_policies(cell, spec, tenant),
    }
}

/// The LimitRange the GameCell controller writes in `tenant`'s namespace on a Shared cell: what a
/// workload of that tenant is defaulted to, known without reading it back.
#[must_use]
pub fn shared_tenant_limit_range(cell: CellIdentity<'_>, tenant: &TenantSpec) -> LimitRange {
    limit_range(cell, tenant)
}

/// The controller owner reference to the GameCell. The GameCell is cluster-scoped, so it may own
/// both cluster-scoped objects (Namespaces) and namespaced ones; deleting the cell lets the
/// garbage collector delete them, and `blockOwnerDeletion` keeps a foreground deletion of the
/// cell waiting for them.
#[must_use]
pub fn owner_reference(cell: CellIdentity<'_>) -> OwnerReference {
    OwnerReference {
        api_version: format!("{API_GROUP}/{API_VERSION}"),
        kind: "GameCell".to_owned(),
        name: cell.name.to_owned(),
        uid: cell.uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of an object the operator creates for `tenant` of `cell`.
#[must_use]
pub fn labels(cell: &str, tenant: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = cell_labels(cell, component);
    labels.insert(LABEL_TENANT.to_owned(), tenant.to_owned());
    labels
}

/// The labels that do not name a tenant.
fn cell_labels(cell: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_PART_OF.to_owned(), cell.to_owned()),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
        (LABEL_CELL.to_owned(), cell.to_owned()),
    ])
}

/// The Secret `gamecell-<store>` in `namespace` holding the connection details of a data store.
///
/// The values come from the caller and go into `data` (not `stringData`, which the API server
/// never returns), so the built Secret compares exactly with the one read back. The Secret carries
/// the cell labels with component `connection` but no tenant label (the caller passes a
/// namespace, not a tenant). This builder never logs, and `Secret`'s `Debug` prints the bytes: do
/// not log the result either.
#[must_use]
pub fn connection_secret(
    cell: CellIdentity<'_>,
    namespace: &str,
    store: &str,
    data: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("gamecell-{store}")),
            namespace: Some(namespace.to_owned()),
            labels: Some(cell_labels(cell.name, COMPONENT_CONNECTION)),
            owner_references: Some(vec![owner_reference(cell)]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(key, value)| (key, ByteString(value.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Metadata of a namespaced object of `tenant`.
fn namespaced_meta(
    cell: CellIdentity<'_>,
    tenant: &TenantSpec,
    name: &str,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(tenant.namespace.clone()),
        labels: Some(labels(cell.name, &tenant.name, component)),
        owner_references: Some(vec![owner_reference(cell)]),
        ..ObjectMeta::default()
    }
}

/// The tenant's Namespace with the Pod Security Admission labels of the tier.
///
/// Enterprise enforces `restricted` (the customer's compliance rules); Shared enforces `baseline`
/// (no host access, no privileged pods: what keeps one tenant from escaping onto a node shared
/// with another) and warns and audits against `restricted`; Dedicated only warns and audits
/// against `baseline`, since one game owns the cell and its nodes.
fn namespace(cell: CellIdentity<'_>, tier: CellTier, tenant: &TenantSpec) -> Namespace {
    let mut labels = labels(cell.name, &tenant.name, COMPONENT_NAMESPACE);
    let (enforce, warn_audit) = match tier {
        CellTier::Enterprise => (Some("restricted"), "restricted"),
        CellTier::Shared => (Some("baseline"), "restricted"),
        CellTier::Dedicated => (None, "baseline"),
    };
    if let Some(level) = enforce {
        labels.insert(PSA_ENFORCE.to_owned(), level.to_owned());
        labels.insert(PSA_ENFORCE_VERSION.to_owned(), "latest".to_owned());
    }
    labels.insert(PSA_AUDIT.to_owned(), warn_audit.to_owned());
    labels.insert(PSA_WARN.to_owned(), warn_audit.to_owned());
    Namespace {
        metadata: ObjectMeta {
            name: Some(tenant.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(cell)]),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The `hard` entries a tenant's quota asks for: CPU and memory bound both requests and limits
/// (so the sum of limits cannot overcommit the share either), pods bound the pod count. Only the
/// fields set in the spec, copied verbatim.
fn quota_hard(quota: &TenantQuota) -> BTreeMap<String, Quantity> {
    let mut hard = BTreeMap::new();
    if let Some(cpu) = &quota.cpu {
        hard.insert("requests.cpu".to_owned(), Quantity(cpu.clone()));
        hard.insert("limits.cpu".to_owned(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &quota.memory {
        hard.insert("requests.memory".to_owned(), Quantity(memory.clone()));
        hard.insert("limits.memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(pods) = quota.pods {
        hard.insert("pods".to_owned(), Quantity(pods.to_string()));
    }
    hard
}

/// `gamecell-quota`. Shared tenants always get one, with `services.loadbalancers` and
/// `services.nodeports` at 0: a tenant on shared nodes never opens a node port or a load
/// balancer of its own; traffic comes in through what the operator sets up. Dedicated and
/// Enterprise tenants get one only when their quota sets CPU, memory or pods.
fn resource_quota(
    cell: CellIdentity<'_>,
    tier: CellTier,
    tenant: &TenantSpec,
) -> Option<ResourceQuota> {
    let mut hard = tenant.quota.as_ref().map(quota_hard).unwrap_or_default();
    if tier == CellTier::Shared {
        hard.insert(
            "services.loadbalancers".to_owned(),
            Quantity("0".to_owned()),
        );
        hard.insert("services.nodeports".to_owned(), Quantity("0".to_owned()));
    }
    if hard.is_empty() {
        return None;
    }
    Some(ResourceQuota {
        metadata: namespaced_meta(cell, tenant, QUOTA_NAME, COMPONENT_QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    })
}

/// Whether a quota bounds CPU or memory, which makes every pod declare them.
fn constrains_compute(quota: &ResourceQuota) -> bool {
    quota
        .spec
        .as_ref()
        .and_then(|spec| spec.hard.as_ref())
        .is_some_and(|hard| {
            hard.keys()
                .any(|key| key.starts_with("requests.") || key.starts_with("limits."))
        })
}

/// `gamecell-defaults`: requests and limits for containers that set none, so that they are
/// admitted under a quota on requests and limits.
///
/// Caveat for workload authors: a container that sets a request above a default limit (say
/// `cpu: 2`) but no limit gets the default limit and is refused; set limits with requests.
fn limit_range(cell: CellIdentity<'_>, tenant: &TenantSpec) -> LimitRange {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    LimitRange {
        metadata: namespaced_meta(cell, tenant, LIMIT_RANGE_NAME, COMPONENT_LIMITS),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default_request: Some(quantities(DEFAULT_REQUEST_CPU, DEFAULT_REQUEST_MEMORY)),
                default: Some(quantities(DEFAULT_LIMIT_CPU, DEFAULT_LIMIT_MEMORY)),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

/// The tier's NetworkPolicies for `tenant`, in a fixed order.
///
/// Dedicated: none. One game owns the cell, its nodes and its data stores; there is no other
/// tenant to keep out, and the game's own manifests may add policies of their own.
///
/// Shared and Enterprise: deny everything, then allow traffic inside the namespace, DNS, egress
/// outside the private ranges, and (when the cell has one) the in-VPC data stores. The ingress
/// side is what keeps tenants apart: every tenant namespace admits ingress from its own pods
/// only, so another tenant's pods are unreachable whatever that tenant's egress allows.
fn network_policies(
    cell: CellIdentity<'_>,
    spec: &GameCellSpec,
    tenant: &TenantSpec,
) -> Vec<NetworkPolicy> {
    if spec.tier == CellTier::Dedicated {
        return Vec::new();
    }
    let mut policies = vec![
        default_deny(cell, tenant),
        allow_same_namespace(cell, tenant),
        allow_dns(cell, tenant),
        allow_egress_external(cell, tenant),
    ];
    if let Some(policy) = allow_datastores(cell, spec, tenant) {
        policies.push(policy);
    }
    if spec.tier == CellTier::Shared {
        policies.push(allow_cell_matchmaker(cell, tenant));
    }
    policies
}

/// `gamecell-allow-cell-matchmaker` (Shared): egress to the cell matchmaker's pods in the cell's
/// shared-services namespace, on its port only. The namespace is pinned by the label the API
/// server sets to its name, and the pods by the cell matchmaker's component label.
fn allow_cell_matchmaker(cell: CellIdentity<'_>, tenant: &TenantSpec) -> NetworkPolicy {
    network_policy(
        cell,
        tenant,
        NETPOL_CELL_MATCHMAKER,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Egress"]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: selector(
                        LABEL_NAMESPACE_NAME,
                        &shared_services_namespace(cell.name),
                    ),
                    pod_selector: selector(LABEL_COMPONENT, COMPONENT_CELL_MATCHMAKER),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port("TCP", CELL_MATCHMAKER_PORT)]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// The namespace of a Shared cell's shared services: `gamecell-<cell>` (cut and hashed to stay
/// a DNS label). Deterministic; [`shared_namespace_conflict`] says when it cannot be the cell's.
#[must_use]
pub fn shared_services_namespace(cell: &str) -> String {
    crate::workload::meta::bounded_name(&["gamecell", cell])
}

/// Why the cell cannot use its shared-services namespace, if it cannot: a tenant of the cell
/// lives in a namespace of that name, or the namespace exists and another object owns it (a
/// tenant namespace of another cell, or one someone created by hand). `existing_owner_uids` are
/// the controller owner UIDs of the namespace as it exists (`None`: it does not exist).
#[must_use]
pub fn shared_namespace_conflict(
    cell: CellIdentity<'_>,
    spec: &GameCellSpec,
    existing_owner_uids: Option<&[String]>,
) -> Option<String> {
    let name = shared_services_namespace(cell.name);
    if let Some(t) = spec.tenants.iter().find(|t| t.namespace == name) {
        return Some(format!(
            "tenant {} lives in namespace {name}, which is the cell's shared-services namespace: move the tenant to another namespace",
            t.name
        ));
    }
    match existing_owner_uids {
        Some(uids) if !uids.iter().any(|u| u == cell.uid) => Some(format!(
            "namespace {name} exists and is not this cell's: the cell matchmaker needs it; delete or rename that namespace"
        )),
        _ => None,
    }
}

/// The shared-services namespace of a Shared cell and its NetworkPolicies.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedServicesObjects {
    /// `gamecell-<cell>`.
    pub namespace: Namespace,
    /// Default-deny, DNS egress, tenants to the matchmaker; in that order.
    pub network_policies: Vec<NetworkPolicy>,
}

/// The shared-services namespace of a Shared cell, or `None` for other tiers.
#[must_use]
pub fn shared_services_objects(
    cell: CellIdentity<'_>,
    spec: &GameCellSpec,
) -> Option<SharedServicesObjects> {
    if spec.tier != CellTier::Shared {
        return None;
    }
    let name = shared_services_namespace(cell.name);
    let mut labels = cell_labels(cell.name, COMPONENT_SHARED_SERVICES);
    labels.insert(PSA_ENFORCE.to_owned(), "baseline".to_owned());
    labels.insert(PSA_ENFORCE_VERSION.to_owned(), "latest".to_owned());
    labels.insert(PSA_AUDIT.to_owned(), "restricted".to_owned());
    labels.insert(PSA_WARN.to_owned(), "restricted".to_owned());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(cell)]),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let policy = |policy_name: &str, spec: NetworkPolicySpec| NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name.to_owned()),
            namespace: Some(name.clone()),
            labels: Some(cell_labels(cell.name, COMPONENT_NETWORK_POLICY)),
            owner_references: Some(vec![owner_reference(cell)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    };
    let mut tenant_namespaces: Vec<String> =
        spec.tenants.iter().map(|t| t.namespace.clone()).collect();
    tenant_namespaces.sort();
    tenant_namespaces.dedup();
    let network_policies = vec![
        policy(
            NETPOL_DEFAULT_DENY,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: policy_types(&["Ingress", "Egress"]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            NETPOL_DNS,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: policy_types(&["Egress"]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: selector(LABEL_NAMESPACE_NAME, "kube-system"),
                        pod_selector: selector("k8s-app", "kube-dns"),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            NETPOL_TENANTS_TO_MATCHMAKER,
            NetworkPolicySpec {
                pod_selector: selector(LABEL_COMPONENT, COMPONENT_CELL_MATCHMAKER),
                policy_types: policy_types(&["Ingress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_expressions: Some(vec![LabelSelectorRequirement {
                                key: LABEL_NAMESPACE_NAME.to_owned(),
                                operator: "In".to_owned(),
                                values: Some(tenant_namespaces),
                            }]),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port("TCP", CELL_MATCHMAKER_PORT)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
    ];
    Some(SharedServicesObjects {
        namespace,
        network_policies,
    })
}

fn network_policy(
    cell: CellIdentity<'_>,
    tenant: &TenantSpec,
    name: &str,
    spec: NetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: namespaced_meta(cell, tenant, name, COMPONENT_NETWORK_POLICY),
        spec: Some(spec),
    }
}

/// `{}`: every pod (as a policy's podSelector) or every pod of the policy's namespace (as a peer).
fn all_pods() -> Option<LabelSelector> {
    Some(LabelSelector::default())
}

fn selector(key: &str, value: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
        ..LabelSelector::default()
    })
}

fn policy_types(types: &[&str]) -> Option<Vec<String>> {
    Some(types.iter().map(|t| (*t).to_owned()).collect())
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(number)),
        ..NetworkPolicyPort::default()
    }
}

/// `gamecell-default-deny`: selects every pod for ingress and egress and allows nothing, so only
/// what the other policies allow gets through.
fn default_deny(cell: CellIdentity<'_>, tenant: &TenantSpec) -> NetworkPolicy {
    network_policy(
        cell,
        tenant,
        NETPOL_DEFAULT_DENY,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Ingress", "Egress"]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// `gamecell-allow-same-namespace`: the tenant's pods talk to each other. A peer with only a
/// podSelector selects pods of the policy's own namespace.
fn allow_same_namespace(cell: CellIdentity<'_>, tenant: &TenantSpec) -> NetworkPolicy {
    let same_namespace = || {
        Some(vec![NetworkPolicyPeer {
            pod_selector: all_pods(),
            ..NetworkPolicyPeer::default()
        }])
    };
    network_policy(
        cell,
        tenant,
        NETPOL_SAME_NAMESPACE,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Ingress", "Egress"]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: same_namespace(),
                ..NetworkPolicyIngressRule::default()
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: same_namespace(),
                ..NetworkPolicyEgressRule::default()
            }]),
        },
    )
}

/// `gamecell-allow-dns`: egress on UDP and TCP 53 to the cluster DNS pods (`k8s-app=kube-dns`).
/// The namespace is pinned to `kube-system` (where EKS and most distributions run CoreDNS, and
/// which the API server labels `kubernetes.io/metadata.name`), so a tenant labelling its own pods
/// `k8s-app=kube-dns` does not widen another tenant's egress.
fn allow_dns(cell: CellIdentity<'_>, tenant: &TenantSpec) -> NetworkPolicy {
    network_policy(
        cell,
        tenant,
        NETPOL_DNS,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Egress"]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: selector("kubernetes.io/metadata.name", "kube-system"),
                    pod_selector: selector("k8s-app", "kube-dns"),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// `gamecell-allow-egress-external`: egress to any IPv4 address except the private ranges and the
/// instance metadata service.
///
/// Why: tenants must reach AWS endpoints (DynamoDB, S3, STS, Secrets Manager, ...), which are
/// public addresses reached through the NAT gateway or gateway endpoints, and the internet. But
/// pods, nodes and other tenants' services all live in the private ranges, so an allow-all
/// egress would let a tenant open connections to another tenant's pods; excluding the private
/// ranges keeps that from ever being allowed by this policy (the other tenant's ingress
/// default-deny refuses it too: two independent walls). The metadata service is excluded so a
/// tenant cannot take the node's IAM role. IPv6 is not listed, so it stays denied.
fn allow_egress_external(cell: CellIdentity<'_>, tenant: &TenantSpec) -> NetworkPolicy {
    let except = PRIVATE_RANGES
        .iter()
        .chain(std::iter::once(&INSTANCE_METADATA))
        .map(|cidr| (*cidr).to_owned())
        .collect();
    network_policy(
        cell,
        tenant,
        NETPOL_EGRESS_EXTERNAL,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Egress"]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: "0.0.0.0/0".to_owned(),
                        except: Some(except),
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ..NetworkPolicyEgressRule::default()
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// The TCP ports of the cell's data stores that live inside the VPC, sorted.
fn datastore_ports(spec: &GameCellSpec) -> Vec<i32> {
    let mut ports = Vec::new();
    if let Some(stores) = &spec.data_stores {
        if let Some(sql) = &stores.sql {
            ports.push(match sql.engine {
                SqlEngine::Postgres => POSTGRES_PORT,
                SqlEngine::MySQL => MYSQL_PORT,
            });
        }
        if stores.cache.is_some() {
            ports.push(REDIS_PORT);
        }
    }
    ports.sort_unstable();
    ports
}

/// `gamecell-allow-datastores`: egress to the private ranges on the ports of the cell's SQL and
/// cache stores only, when the cell has such a store.
///
/// RDS, Aurora and ElastiCache endpoints resolve to private VPC addresses, which
/// [`allow_egress_external`] excludes; without this policy a tenant could not reach its own
/// database. Only the engines' ports are opened (the default ports the operator provisions with;
/// an adopted instance on another port is not covered), and another tenant's pod listening on
/// such a port still refuses the connection through its own ingress default-deny. DynamoDB and
/// S3 are public endpoints and need nothing here.
fn allow_datastores(
    cell: CellIdentity<'_>,
    spec: &GameCellSpec,
    tenant: &TenantSpec,
) -> Option<NetworkPolicy> {
    let ports = datastore_ports(spec);
    if ports.is_empty() {
        return None;
    }
    let to = PRIVATE_RANGES
        .iter()
        .map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: (*cidr).to_owned(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        })
        .collect();
    Some(network_policy(
        cell,
        tenant,
        NETPOL_DATASTORES,
        NetworkPolicySpec {
            pod_selector: all_pods(),
            policy_types: policy_types(&["Egress"]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(to),
                ports: Some(ports.into_iter().map(|p| port("TCP", p)).collect()),
            }]),
            ..NetworkPolicySpec::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const CELL: CellIdentity<'static> = CellIdentity {
        name: "eu-shared-1",
        uid: "0b6a4c1e-7f3d-4d2a-9c51-2f8e5b7a9d10",
    };

    fn spec(value: Value) -> GameCellSpec {
        serde_json::from_value(value).expect("fixture deserializes")
    }

    fn shared_spec() -> GameCellSpec {
        spec(json!({
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [
                {"name": "alpha", "namespace": "game-alpha", "quota": {"cpu": "8", "memory": "16Gi", "pods": 50, "maxConcurrentPlayers": 5000}},
                {"name": "beta", "namespace": "game-beta", "quota": {"cpu": "4", "memory": "8Gi"}},
                {"name": "gamma", "namespace": "game-gamma"}
            ]
        }))
    }

    fn shared_spec_with_stores() -> GameCellSpec {
        spec(json!({
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [
                {"name": "alpha", "namespace": "game-alpha"},
                {"name": "beta", "namespace": "game-beta"}
            ],
            "dataStores": {
                "sql": {"engine": "Postgres", "version": "16.4"},
                "cache": {"nodeType": "cache.t4g.small"}
            }
        }))
    }

    fn enterprise_spec() -> GameCellSpec {
        spec(json!({
            "tier": "Enterprise",
            "provider": {"aws": {
                "region": "eu-central-1",
                "accountRoleArn": "arn:aws:iam::123456789012:role/gamecell-operator",
                "externalId": "gamecell-ext-1",
                "clusterName": "customer-eks"
            }},
            "tenants": [{"name": "studio", "namespace": "studio-game"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "deletionProtection": true},
            "dataStores": {"sql": {"engine": "MySQL", "version": "8.0.39"}}
        }))
    }

    fn dedicated_spec(quota: Option<Value>) -> GameCellSpec {
        let mut tenant = json!({"name": "solo", "namespace": "solo-game"});
        if let Some(quota) = quota {
            tenant["quota"] = quota;
        }
        spec(json!({
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1"}},
            "tenants": [tenant],
            "dataStores": {"cache": {"nodeType": "cache.t4g.small"}}
        }))
    }

    fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
        meta.labels.as_ref()?.get(key).map(String::as_str)
    }

    fn policy_names(objects: &TenantObjects) -> Vec<&str> {
        objects
            .network_policies
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect()
    }

    fn hard(objects: &TenantObjects) -> BTreeMap<String, String> {
        objects
            .resource_quota
            .as_ref()
            .and_then(|q| q.spec.as_ref())
            .and_then(|s| s.hard.clone())
            .expect("quota has hard entries")
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }

    /// Metadata of every namespaced object of a tenant.
    fn namespaced(objects: &TenantObjects) -> Vec<&ObjectMeta> {
        let mut metas: Vec<&ObjectMeta> = Vec::new();
        metas.extend(objects.resource_quota.iter().map(|q| &q.metadata));
        metas.extend(objects.limit_range.iter().map(|l| &l.metadata));
        metas.extend(objects.network_policies.iter().map(|p| &p.metadata));
        metas
    }

    fn peers(policy: &NetworkPolicy) -> Vec<&NetworkPolicyPeer> {
        let spec = policy.spec.as_ref().expect("policy has a spec");
        let ingress = spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| r.from.iter().flatten());
        let egress = spec
            .egress
            .iter()
            .flatten()
            .flat_map(|r| r.to.iter().flatten());
        ingress.chain(egress).collect()
    }

    #[test]
    fn shared_tenant_gets_quota_limits_and_five_policies_under_baseline() {
        let all = tenant_objects(CELL, &shared_spec());
        assert_eq!(all.len(), 3);
        for objects in &all {
            let ns = &objects.namespace.metadata;
            assert_eq!(label(ns, PSA_ENFORCE), Some("baseline"));
            assert_eq!(label(ns, PSA_ENFORCE_VERSION), Some("latest"));
            assert_eq!(label(ns, PSA_WARN), Some("restricted"));
            assert_eq!(label(ns, PSA_AUDIT), Some("restricted"));
            assert!(objects.resource_quota.is_some(), "{}", objects.tenant);
            assert!(objects.limit_range.is_some(), "{}", objects.tenant);
            assert_eq!(
                policy_names(objects),
                [
                    NETPOL_DEFAULT_DENY,
                    NETPOL_SAME_NAMESPACE,
                    NETPOL_DNS,
                    NETPOL_EGRESS_EXTERNAL,
                    NETPOL_CELL_MATCHMAKER
                ]
            );
        }
    }

    #[test]
    fn shared_quota_copies_values_and_closes_node_ports_and_load_balancers() {
        let all = tenant_objects(CELL, &shared_spec());
        let expected = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            hard(&all[0]),
            expected(&[
                ("limits.cpu", "8"),
                ("limits.memory", "16Gi"),
                ("pods", "50"),
                ("requests.cpu", "8"),
                ("requests.memory", "16Gi"),
                ("services.loadbalancers", "0"),
                ("services.nodeports", "0"),
            ])
        );
        assert_eq!(
            hard(&all[1]),
            expected(&[
                ("limits.cpu", "4"),
                ("limits.memory", "8Gi"),
                ("requests.cpu", "4"),
                ("requests.memory", "8Gi"),
                ("services.loadbalancers", "0"),
                ("services.nodeports", "0"),
            ])
        );
        // No quota in the spec: the service limits still apply.
        assert_eq!(
            hard(&all[2]),
            expected(&[("services.loadbalancers", "0"), ("services.nodeports", "0")])
        );
        let quota = all[0].resource_quota.as_ref().expect("quota");
        assert_eq!(quota.metadata.name.as_deref(), Some(QUOTA_NAME));
    }

    #[test]
    fn limit_range_sets_container_defaults() {
        let all = tenant_objects(CELL, &shared_spec());
        let range = all[0].limit_range.as_ref().expect("limit range");
        assert_eq!(range.metadata.name.as_deref(), Some(LIMIT_RANGE_NAME));
        let value = serde_json::to_value(range.spec.as_ref().expect("spec")).expect("serializes");
        assert_eq!(
            value,
            json!({"limits": [{
                "type": "Container",
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "default": {"cpu": "500m", "memory": "512Mi"}
            }]})
        );
    }

    #[test]
    fn shared_objects_only_name_the_tenants_own_namespace() {
        for spec in [shared_spec(), shared_spec_with_stores()] {
            for objects in tenant_objects(CELL, &spec) {
                let tenant = spec
                    .tenants
                    .iter()
                    .find(|t| t.name == objects.tenant)
                    .expect("tenant in spec");
                assert_eq!(
                    objects.namespace.metadata.name.as_deref(),
                    Some(tenant.namespace.as_str())
                );
                assert_eq!(objects.namespace.metadata.namespace, None);
                for meta in namespaced(&objects) {
                    assert_eq!(
                        meta.namespace.as_deref(),
                        Some(tenant.namespace.as_str()),
                        "{:?}",
                        meta.name
                    );
                }
                for policy in &objects.network_policies {
                    for peer in peers(policy) {
                        if policy.metadata.name.as_deref() == Some(NETPOL_CELL_MATCHMAKER) {
                            // The one namespace a tenant may reach: its cell's shared services.
                            assert_eq!(
                                peer.namespace_selector,
                                selector(
                                    "kubernetes.io/metadata.name",
                                    &shared_services_namespace(CELL.name)
                                )
                            );
                            assert_eq!(
                                peer.pod_selector,
                                selector(LABEL_COMPONENT, COMPONENT_CELL_MATCHMAKER)
                            );
                        } else if policy.metadata.name.as_deref() == Some(NETPOL_DNS) {
                            assert_eq!(
                                peer.namespace_selector,
                                selector("kubernetes.io/metadata.name", "kube-system")
                            );
                            assert_eq!(peer.pod_selector, selector("k8s-app", "kube-dns"));
                        } else {
                            assert_eq!(
                                peer.namespace_selector, None,
                                "{:?} selects other namespaces",
                                policy.metadata.name
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn network_policies_have_the_documented_shape() {
        let all = tenant_objects(CELL, &shared_spec());
        let specs: Vec<Value> = all[0]
            .network_policies
            .iter()
            .map(|p| serde_json::to_value(p.spec.as_ref().expect("spec")).expect("serializes"))
            .collect();
        assert_eq!(
            specs[0],
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        );
        assert_eq!(
            specs[1],
            json!({
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}]
            })
        );
        assert_eq!(
            specs[2],
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
                    }],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
                }]
            })
        );
        assert_eq!(
            specs[3],
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {
                    "cidr": "0.0.0.0/0",
                    "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"]
                }}]}]
            })
        );
    }

    #[test]
    fn shared_tenants_reach_the_cell_matchmaker_port_only() {
        let all = tenant_objects(CELL, &shared_spec());
        let policy = all[0].network_policies.last().expect("policy");
        assert_eq!(
            policy.metadata.name.as_deref(),
            Some(NETPOL_CELL_MATCHMAKER)
        );
        assert_eq!(
            serde_json::to_value(policy.spec.as_ref().expect("spec")).expect("json"),
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gamecell-eu-shared-1"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/component": "cell-matchmaker"}}
                    }],
                    "ports": [{"protocol": "TCP", "port": 8080}]
                }]
            })
        );
        for spec in [enterprise_spec(), dedicated_spec(None)] {
            for objects in tenant_objects(CELL, &spec) {
                assert!(!policy_names(&objects).contains(&NETPOL_CELL_MATCHMAKER));
            }
        }
    }

    #[test]
    fn the_shared_services_namespace_admits_only_this_cells_tenants() {
        let spec = shared_spec();
        let objects = shared_services_objects(CELL, &spec).expect("shared cell");
        let ns = &objects.namespace.metadata;
        assert_eq!(ns.name.as_deref(), Some("gamecell-eu-shared-1"));
        assert_eq!(label(ns, LABEL_CELL), Some(CELL.name));
        assert_eq!(label(ns, LABEL_TENANT), None, "the cell's, no tenant's");
        assert_eq!(label(ns, PSA_ENFORCE), Some("baseline"));
        assert_eq!(label(ns, PSA_WARN), Some("restricted"));
        assert_eq!(ns.owner_references, Some(vec![owner_reference(CELL)]));
        let names: Vec<&str> = objects
            .network_policies
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                NETPOL_DEFAULT_DENY,
                NETPOL_DNS,
                NETPOL_TENANTS_TO_MATCHMAKER
            ]
        );
        for p in &objects.network_policies {
            assert_eq!(
                p.metadata.namespace.as_deref(),
                Some("gamecell-eu-shared-1")
            );
        }
        let specs: Vec<Value> = objects
            .network_policies
            .iter()
            .map(|p| serde_json::to_value(p.spec.as_ref().expect("spec")).expect("json"))
            .collect();
        assert_eq!(
            specs[0],
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        );
        // Ingress: the matchmaker's port, from exactly the cell's tenant namespaces (sorted),
        // selected by the name label the API server sets; nothing else gets in, and the
        // matchmaker itself reaches nothing but DNS.
        assert_eq!(
            specs[2],
            json!({
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "cell-matchmaker"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"namespaceSelector": {"matchExpressions": [{
                        "key": "kubernetes.io/metadata.name", "operator": "In",
                        "values": ["game-alpha", "game-beta", "game-gamma"]
                    }]}}],
                    "ports": [{"protocol": "TCP", "port": 8080}]
                }]
            })
        );
        assert!(specs.iter().all(|s| s.get("egress").is_none_or(
            |e| e[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                == "kube-system"
        )));
        // Another cell's tenants are not admitted: their namespaces are not listed.
        let other = shared_services_objects(
            CellIdentity {
                name: "other",
                uid: "u2",
            },
            &spec_of_tenants(&[("delta", "game-delta")]),
        )
        .expect("shared");
        let values = serde_json::to_value(&other.network_policies[2]).expect("json")["spec"]
            ["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
            .clone();
        assert_eq!(values, json!(["game-delta"]));
        assert_eq!(shared_services_objects(CELL, &enterprise_spec()), None);
        assert_eq!(shared_services_objects(CELL, &dedicated_spec(None)), None);
    }

    fn spec_of_tenants(tenants: &[(&str, &str)]) -> GameCellSpec {
        let tenants: Vec<Value> = tenants
            .iter()
            .map(|(name, ns)| json!({"name": name, "namespace": ns}))
            .collect();
        spec(
            json!({"tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}}, "tenants": tenants}),
        )
    }

    #[test]
    fn the_shared_services_namespace_is_never_taken_from_someone_else() {
        let spec = shared_spec();
        assert_eq!(shared_namespace_conflict(CELL, &spec, None), None);
        let ours = vec![CELL.uid.to_owned()];
        assert_eq!(shared_namespace_conflict(CELL, &spec, Some(&ours)), None);
        let theirs = vec!["someone-else".to_owned()];
        assert!(
            shared_namespace_conflict(CELL, &spec, Some(&theirs))
                .is_some_and(|m| m.contains("is not this cell's"))
        );
        assert!(shared_namespace_conflict(CELL, &spec, Some(&[])).is_some());
        let squatting = spec_of_tenants(&[("sly", "gamecell-eu-shared-1")]);
        assert!(
            shared_namespace_conflict(CELL, &squatting, None)
                .is_some_and(|m| m.contains("tenant sly"))
        );
        let long = "c".repeat(63);
        let name = shared_services_namespace(&long);
        assert!(name.len() <= 63 && name.starts_with("gamecell-"), "{name}");
        assert_ne!(name, shared_services_namespace(&"c".repeat(62)));
    }

    #[test]
    fn in_vpc_data_stores_open_their_ports_to_private_ranges_only() {
        let all = tenant_objects(CELL, &shared_spec_with_stores());
        for objects in &all {
            assert_eq!(objects.network_policies.len(), 6);
            let policy = &objects.network_policies[4];
            assert_eq!(policy.metadata.name.as_deref(), Some(NETPOL_DATASTORES));
            let value =
                serde_json::to_value(policy.spec.as_ref().expect("spec")).expect("serializes");
            assert_eq!(
                value,
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [
                            {"ipBlock": {"cidr": "10.0.0.0/8"}},
                            {"ipBlock": {"cidr": "172.16.0.0/12"}},
                            {"ipBlock": {"cidr": "192.168.0.0/16"}}
                        ],
                        "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]
                    }]
                })
            );
        }
    }

    #[test]
    fn enterprise_tenant_is_restricted_and_isolated() {
        let all = tenant_objects(CELL, &enterprise_spec());
        assert_eq!(all.len(), 1);
        let objects = &all[0];
        let ns = &objects.namespace.metadata;
        assert_eq!(ns.name.as_deref(), Some("studio-game"));
        assert_eq!(label(ns, PSA_ENFORCE), Some("restricted"));
        assert_eq!(label(ns, PSA_ENFORCE_VERSION), Some("latest"));
        assert_eq!(label(ns, PSA_AUDIT), Some("restricted"));
        assert_eq!(label(ns, PSA_WARN), Some("restricted"));
        // No quota in the spec: no ResourceQuota, so no LimitRange either.
        assert!(objects.resource_quota.is_none());
        assert!(objects.limit_range.is_none());
        assert_eq!(
            policy_names(objects),
            [
                NETPOL_DEFAULT_DENY,
                NETPOL_SAME_NAMESPACE,
                NETPOL_DNS,
                NETPOL_EGRESS_EXTERNAL,
                NETPOL_DATASTORES
            ]
        );
        let ports = objects.network_policies[4]
            .spec
            .as_ref()
            .and_then(|s| s.egress.as_ref())
            .and_then(|e| e[0].ports.clone())
            .expect("ports");
        assert_eq!(ports, [port("TCP", 3306)]);
    }

    #[test]
    fn dedicated_tenant_has_no_policies_and_only_warns() {
        let all = tenant_objects(CELL, &dedicated_spec(None));
        let objects = &all[0];
        let ns = &objects.namespace.metadata;
        assert_eq!(label(ns, PSA_ENFORCE), None);
        assert_eq!(label(ns, PSA_ENFORCE_VERSION), None);
        assert_eq!(label(ns, PSA_WARN), Some("baseline"));
        assert_eq!(label(ns, PSA_AUDIT), Some("baseline"));
        assert!(objects.network_policies.is_empty());
        assert!(objects.resource_quota.is_none());
        assert!(objects.limit_range.is_none());
    }

    #[test]
    fn dedicated_quota_is_copied_without_service_limits() {
        let all = tenant_objects(
            CELL,
            &dedicated_spec(Some(json!({"cpu": "500m", "memory": "1Gi", "pods": 3}))),
        );
        let objects = &all[0];
        let hard = hard(objects);
        assert_eq!(hard.get("requests.cpu").map(String::as_str), Some("500m"));
        assert_eq!(hard.get("limits.cpu").map(String::as_str), Some("500m"));
        assert_eq!(hard.get("requests.memory").map(String::as_str), Some("1Gi"));
        assert_eq!(hard.get("limits.memory").map(String::as_str), Some("1Gi"));
        assert_eq!(hard.get("pods").map(String::as_str), Some("3"));
        assert!(!hard.contains_key("services.nodeports"));
        assert!(!hard.contains_key("services.loadbalancers"));
        assert!(objects.limit_range.is_some());

        // Only a pod count: quota yes, but no compute bound, so no LimitRange capping pods.
        let all = tenant_objects(CELL, &dedicated_spec(Some(json!({"pods": 10}))));
        assert!(all[0].resource_quota.is_some());
        assert!(all[0].limit_range.is_none());

        // A quota with only maxConcurrentPlayers bounds nothing Kubernetes knows about.
        let all = tenant_objects(
            CELL,
            &dedicated_spec(Some(json!({"maxConcurrentPlayers": 1000}))),
        );
        assert!(all[0].resource_quota.is_none());
    }

    #[test]
    fn every_object_carries_labels_and_the_owner_reference() {
        let owner = owner_reference(CELL);
        assert_eq!(owner.api_version, "gamecell.dev/v1alpha1");
        assert_eq!(owner.kind, "GameCell");
        assert_eq!(owner.name, CELL.name);
        assert_eq!(owner.uid, CELL.uid);
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        for spec in [
            shared_spec(),
            shared_spec_with_stores(),
            enterprise_spec(),
            dedicated_spec(Some(json!({"cpu": "1"}))),
        ] {
            for objects in tenant_objects(CELL, &spec) {
                let mut metas = namespaced(&objects);
                metas.push(&objects.namespace.metadata);
                for meta in metas {
                    assert_eq!(meta.owner_references, Some(vec![owner.clone()]));
                    assert_eq!(label(meta, LABEL_CELL), Some(CELL.name));
                    assert_eq!(label(meta, LABEL_TENANT), Some(objects.tenant.as_str()));
                    assert_eq!(label(meta, LABEL_MANAGED_BY), Some(MANAGED_BY));
                    assert_eq!(label(meta, LABEL_PART_OF), Some(CELL.name));
                    assert!(label(meta, LABEL_COMPONENT).is_some());
                }
            }
        }
        assert_eq!(
            labels("c", "t", "quota"),
            BTreeMap::from([
                (LABEL_CELL.to_owned(), "c".to_owned()),
                (LABEL_TENANT.to_owned(), "t".to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                (LABEL_PART_OF.to_owned(), "c".to_owned()),
                (LABEL_COMPONENT.to_owned(), "quota".to_owned()),
            ])
        );
    }

    #[test]
    fn building_twice_yields_identical_objects() {
        for spec in [
            shared_spec(),
            shared_spec_with_stores(),
            enterprise_spec(),
            dedicated_spec(Some(json!({"cpu": "2", "memory": "4Gi"}))),
        ] {
            let first = tenant_objects(CELL, &spec);
            let second = tenant_objects(CELL, &spec);
            assert_eq!(first, second);
            assert_eq!(
                serde_json::to_string(
                    &first
                        .iter()
                        .map(|o| &o.network_policies)
                        .collect::<Vec<_>>()
                )
                .expect("serializes"),
                serde_json::to_string(
                    &second
                        .iter()
                        .map(|o| &o.network_policies)
                        .collect::<Vec<_>>()
                )
                .expect("serializes"),
            );
        }
        let data = BTreeMap::from([("password".to_owned(), "s3cr3t".to_owned())]);
        assert_eq!(
            connection_secret(CELL, "game-alpha", "sql", data.clone()),
            connection_secret(CELL, "game-alpha", "sql", data)
        );
    }

    #[test]
    fn connection_secret_uses_data_not_string_data() {
        let data = BTreeMap::from([
            ("host".to_owned(), "db.internal".to_owned()),
            ("password".to_owned(), "s3cr3t".to_owned()),
        ]);
        let secret = connection_secret(CELL, "game-alpha", "sql", data);
        assert_eq!(secret.metadata.name.as_deref(), Some("gamecell-sql"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("game-alpha"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.string_data, None);
        assert_eq!(
            secret.data,
            Some(BTreeMap::from([
                ("host".to_owned(), ByteString(b"db.internal".to_vec())),
                ("password".to_owned(), ByteString(b"s3cr3t".to_vec())),
            ]))
        );
        assert_eq!(
            secret.metadata.owner_references,
            Some(vec![owner_reference(CELL)])
        );
        assert_eq!(label(&secret.metadata, LABEL_COMPONENT), Some("connection"));
        assert_eq!(label(&secret.metadata, LABEL_CELL), Some(CELL.name));
        assert_eq!(label(&secret.metadata, LABEL_MANAGED_BY), Some(MANAGED_BY));
    }
}
