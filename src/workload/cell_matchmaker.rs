//! The cell matchmaker of a Shared cell (pure): one built-in matchmaker in the cell's
//! shared-services namespace (`gamecell-<cell>`, `cell::tenancy`) serving every tenant's pools,
//! with each request bound to its tenant by a bearer token.
//!
//! Who writes what (one writer per object):
//!
//! | object | where | writer |
//! |---|---|---|
//! | Namespace and NetworkPolicies | `gamecell-<cell>` | GameCell controller (`cell::tenancy`) |
//! | ConfigMap `matchmaker-config`: every served pool's [`MatchmakerConfig`], sorted by tenant and pool | `gamecell-<cell>` | GameCell controller |
//! | Secret `matchmaker-tenants`: tenant -> SHA-256 of its token | `gamecell-<cell>` | GameCell controller |
//! | Deployment and Service `matchmaker` | `gamecell-<cell>` | GameCell controller |
//! | Secret `gamecell-matchmaker`: the tenant's token and the matchmaker's URL | each tenant namespace | GameCell controller |
//! | the pool's status (served where, queues, Ready) | the pool | MatchmakingPool controller |
//!
//! The GameCell controller writes the cell's objects because they aggregate every pool of the
//! cell, and it already watches and lists the pools; the MatchmakingPool controller only reads
//! them (a pool is `Ready` when the Deployment is available and the ConfigMap holds exactly the
//! pool's own configuration, [`serves`]) and removes the per-pool matchmaker a pool had before.
//!
//! A pool is served when it binds to the cell (its namespace is a tenant's), sets no image (a
//! pool with its own image keeps its own matchmaker), is not being deleted, and its queues pass
//! validation: a refused pool is left out, so it never breaks another tenant's pools.
//!
//! Steady state writes nothing: the document is rendered with a fixed field order and sorted
//! pools, so the same pools render the same bytes. A pool change changes the ConfigMap (the
//! matchmaker reloads the file without a restart) and the Deployment's own `config-hash` label
//! (which wakes the pool controller), never the pod template: only an image or
//! resources change rolls the pod. Tokens are random, written once, and reused as long as the
//! tenant's Secret holds one.
//!
//! The matchmaker is the cell's, not a tenant's: it runs outside every tenant's quota with its own
//! modest resources ([`cell_matchmaker_resources`]), one replica (the built-in matchmaker holds
//! tickets in memory; two replicas behind one Service would split them), never surged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, ResourceRequirements, Secret, SecretVolumeSource, Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::Serialize;

use super::binding::{Refusal, check_image};
use super::matchmaker::{
    CONFIG_FILE, CONFIG_KEY, CONFIG_VERSION, DEFAULT_MATCHMAKER_IMAGE, MATCHMAKER_PORT,
    MatchmakerConfig, config_volume, container, env, queue_config,
};
use super::meta::{ANNOTATION_CONFIG_HASH, Identity, LABEL_TENANT, Owner, map_hash};
use super::objects::{self, DeploymentParts};
use super::policy::workload_policy;
use crate::cell::tenancy::{
    COMPONENT_CELL_MATCHMAKER, CellIdentity, labels, owner_reference, shared_services_namespace,
};
use crate::crds::gamecell::{CellTier, TenantSpec};
use crate::crds::{API_GROUP, API_VERSION, GameCell, MatchmakingPool};
use crate::matchmaker::config::token_hash;

/// Name of the cell matchmaker's Deployment and Service.
pub const NAME: &str = "matchmaker";
/// Name of its configuration ConfigMap.
pub const CONFIG_NAME: &str = "matchmaker-config";
/// Secret in the cell namespace: tenant -> SHA-256 of its token.
pub const TOKENS_SECRET: &str = "matchmaker-tenants";
/// Key of the credentials document in [`TOKENS_SECRET`].
pub const TOKENS_KEY: &str = "tenants.json";
/// Where [`TOKENS_SECRET`] is mounted.
pub const TOKENS_DIR: &str = "/etc/gamecell/matchmaker-auth";
/// Secret in each tenant namespace: how the tenant's services reach the matchmaker.
pub const CREDENTIAL_SECRET: &str = "gamecell-matchmaker";
/// Key of the tenant's bearer token in [`CREDENTIAL_SECRET`].
pub const KEY_TOKEN: &str = "MATCHMAKER_TOKEN";
/// Key of the matchmaker's URL in [`CREDENTIAL_SECRET`].
pub const KEY_URL: &str = "MATCHMAKER_URL";
/// Key of the tenant's name in [`CREDENTIAL_SECRET`].
pub const KEY_TENANT: &str = "MATCHMAKER_TENANT";
const TOKENS_VOLUME: &str = "tenant-tokens";

/// Whether the cell matchmaker serves `pool` of `cell`: a Shared cell's pool without an image.
#[must_use]
pub fn served_by_cell(pool: &MatchmakingPool, cell: &GameCell) -> bool {
    cell.spec.tier == CellTier::Shared && pool.spec.image.is_none()
}

/// Requests and limits of the cell matchmaker: one process for every tenant of the cell, so a
/// little more than a per-pool matchmaker; charged to no tenant's quota.
#[must_use]
pub fn cell_matchmaker_resources() -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair("250m", "256Mi")),
        limits: Some(pair("1", "512Mi")),
        ..ResourceRequirements::default()
    }
}

/// The configurations of the pools the cell matchmaker serves, sorted by tenant and pool.
#[must_use]
pub fn served_pools(cell: &GameCell, pools: &[MatchmakingPool]) -> Vec<MatchmakerConfig> {
    let name = cell.name_any();
    let mut configs: Vec<MatchmakerConfig> = pools
        .iter()
        .filter(|p| p.spec.cell_ref.name == name && p.metadata.deletion_timestamp.is_none())
        .filter(|p| served_by_cell(p, cell))
        .filter_map(|p| {
            let ns = p.namespace()?;
            let tenant = cell.spec.tenants.iter().find(|t| t.namespace == ns)?;
            queue_config(p, cell, tenant).ok()
        })
        .collect();
    configs.sort_by(|a, b| (&a.tenant, &a.pool).cmp(&(&b.tenant, &b.pool)));
    configs
}

/// The cell matchmaker's configuration document (the matchmaker's multi-tenant shape).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SharedDocument<'a> {
    version: u32,
    cell: &'a str,
    pools: &'a [MatchmakerConfig],
}

/// The document as written into the ConfigMap: `{"version", "cell", "pools": [...]}`, pools as
/// given (sorted by [`served_pools`]).
///
/// # Errors
/// Never in practice; a serializer failure is returned as `InvalidQueues`.
pub fn render(cell: &str, pools: &[MatchmakerConfig]) -> Result<String, Refusal> {
    let doc = SharedDocument {
        version: CONFIG_VERSION,
        cell,
        pools,
    };
    serde_json::to_string_pretty(&doc)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Refusal::new(super::binding::reasons::INVALID_QUEUES, e.to_string()))
}

/// Whether `document` (the cell matchmaker's ConfigMap) serves exactly `config`: an entry of the
/// same tenant and pool equal to it.
#[must_use]
pub fn serves(document: &str, config: &MatchmakerConfig) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else {
        return false;
    };
    let Ok(want) = serde_json::to_value(config) else {
        return false;
    };
    doc["pools"]
        .as_array()
        .is_some_and(|pools| pools.contains(&want))
}

/// The URL tenants reach the cell matchmaker at.
#[must_use]
pub fn url(cell: &str) -> String {
    format!(
        "http://{NAME}.{}.svc:{MATCHMAKER_PORT}",
        shared_services_namespace(cell)
    )
}

/// The cell matchmaker's objects.
#[derive(Clone, Debug)]
pub struct CellMatchmaker {
    /// `matchmaker-config`.
    pub config_map: ConfigMap,
    /// `matchmaker-tenants`. Its `Debug` prints hashes, never tokens; still, do not log it.
    pub tokens_secret: Secret,
    /// `matchmaker`.
    pub deployment: Deployment,
    /// `matchmaker`.
    pub service: Service,
}

fn cell_owner(cell: CellIdentity<'_>) -> Owner {
    Owner {
        api_version: format!("{API_GROUP}/{API_VERSION}"),
        kind: "GameCell".to_owned(),
        name: cell.name.to_owned(),
        namespace: shared_services_namespace(cell.name),
        uid: cell.uid.to_owned(),
    }
}

/// Builds the cell matchmaker serving `pools` (from [`served_pools`]) with `tokens` (tenant ->
/// token; only their hashes go into the cell namespace).
///
/// # Errors
/// `ImageNotAllowed` when the cell's `compliance.allowedRegistries` exclude the built-in image.
pub fn build(
    cell: &GameCell,
    identity: CellIdentity<'_>,
    pools: &[MatchmakerConfig],
    tokens: &BTreeMap<String, String>,
) -> Result<CellMatchmaker, Refusal> {
    check_image(identity.name, &cell.spec, DEFAULT_MATCHMAKER_IMAGE)?;
    let ident = Identity {
        owner: cell_owner(identity),
        cell: identity.name.to_owned(),
        tenant: String::new(),
    };
    let mut labels = ident.labels(NAME, COMPONENT_CELL_MATCHMAKER, &[]);
    labels.remove(LABEL_TENANT);
    let selector = ident.selector(NAME, COMPONENT_CELL_MATCHMAKER);

    let data = BTreeMap::from([(CONFIG_KEY.to_owned(), render(identity.name, pools)?)]);
    let config_hash = map_hash(&data);
    let config_map = ConfigMap {
        metadata: ident.metadata(CONFIG_NAME, labels.clone()),
        data: Some(data),
        ..ConfigMap::default()
    };

    let hashes: BTreeMap<&str, String> = tokens
        .iter()
        .map(|(tenant, token)| (tenant.as_str(), token_hash(token)))
        .collect();
    let tokens_doc =
        serde_json::to_string(&serde_json::json!({ "tenants": hashes })).unwrap_or_default();
    let tokens_secret = Secret {
        metadata: ident.metadata(TOKENS_SECRET, labels.clone()),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            TOKENS_KEY.to_owned(),
            ByteString(tokens_doc.into_bytes()),
        )])),
        ..Secret::default()
    };

    let mut policy = workload_policy(identity.name, &cell.spec);
    // The operator's own pod: the restricted profile, whatever the tenants' namespaces enforce.
    policy.restricted = true;
    let vars = vec![
        env("MATCHMAKER_CONFIG", CONFIG_FILE),
        env("MATCHMAKER_PORT", &MATCHMAKER_PORT.to_string()),
        env(
            "MATCHMAKER_TENANT_TOKENS",
            &format!("{TOKENS_DIR}/{TOKENS_KEY}"),
        ),
    ];
    let mounts = vec![VolumeMount {
        name: TOKENS_VOLUME.to_owned(),
        mount_path: TOKENS_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let volumes = vec![
        config_volume(CONFIG_NAME),
        Volume {
            name: TOKENS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(TOKENS_SECRET.to_owned()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut deployment = objects::deployment(DeploymentParts {
        identity: &ident,
        name: NAME,
        labels: labels.clone(),
        selector: selector.clone(),
        replicas: Some(1),
        surge: false,
        policy: &policy,
        container: container(
            DEFAULT_MATCHMAKER_IMAGE,
            vars,
            Some(cell_matchmaker_resources()),
            mounts,
        ),
        volumes,
        service_account: None,
        // Nothing that changes with the pools: a pool change reloads, it does not roll.
        annotations: BTreeMap::new(),
    });
    // A label, not an annotation: the API server bumps a Deployment's generation for an
    // annotation change (so its rollout would look unfinished for a moment), not for a label.
    if let Some(labels) = deployment.metadata.labels.as_mut() {
        labels.insert(ANNOTATION_CONFIG_HASH.to_owned(), config_hash);
    }
    let service = objects::service(&ident, NAME, labels, selector, MATCHMAKER_PORT);
    Ok(CellMatchmaker {
        config_map,
        tokens_secret,
        deployment,
        service,
    })
}

/// The Secret `gamecell-matchmaker` in `tenant`'s namespace: its token, its name and the
/// matchmaker's URL, for `envFrom`. Never log it.
#[must_use]
pub fn credential_secret(cell: CellIdentity<'_>, tenant: &TenantSpec, token: &str) -> Secret {
    let data = BTreeMap::from([
        (KEY_TENANT.to_owned(), tenant.name.clone()),
        (KEY_TOKEN.to_owned(), token.to_owned()),
        (KEY_URL.to_owned(), url(cell.name)),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(CREDENTIAL_SECRET.to_owned()),
            namespace: Some(tenant.namespace.clone()),
            labels: Some(labels(cell.name, &tenant.name, COMPONENT_CELL_MATCHMAKER)),
            owner_references: Some(vec![owner_reference(cell)]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The token a tenant's existing credential Secret holds, if it holds a well-formed one (so it
/// is reused rather than regenerated).
#[must_use]
pub fn existing_token(secret: Option<&Secret>) -> Option<String> {
    let bytes = secret?.data.as_ref()?.get(KEY_TOKEN)?;
    let token = std::str::from_utf8(&bytes.0).ok()?;
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token.to_owned())
}

/// A new token from 32 random bytes, in hex.
#[must_use]
pub fn token_from(random: &[u8; 32]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn cell(tenants: Value) -> GameCell {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
            "metadata": {"name": "c1", "uid": "cell-uid"},
            "spec": {"tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}}, "tenants": tenants}
        }))
        .expect("cell")
    }

    fn two_tenants() -> GameCell {
        cell(json!([{"name": "alpha", "namespace": "a"}, {"name": "beta", "namespace": "b"}]))
    }

    fn pool(ns: &str, name: &str, extra: Value) -> MatchmakingPool {
        let mut spec = json!({"cellRef": {"name": "c1"}, "queues": [
            {"name": "duel", "playersPerMatch": 2, "teams": 2,
             "skillWindow": {"initial": 100, "wideningPerSecond": 10, "maximum": 500}}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")}, "spec": spec
        }))
        .expect("pool")
    }

    const IDENTITY: CellIdentity<'static> = CellIdentity {
        name: "c1",
        uid: "cell-uid",
    };

    fn tokens() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alpha".to_owned(), token_from(&[1; 32])),
            ("beta".to_owned(), token_from(&[2; 32])),
        ])
    }

    fn document(objects: &CellMatchmaker) -> Value {
        serde_json::from_str(&objects.config_map.data.as_ref().expect("data")[CONFIG_KEY])
            .expect("json")
    }

    #[test]
    fn the_shared_config_is_deterministic_and_keeps_tenants_apart() {
        let c = two_tenants();
        let pools = vec![
            pool("b", "mm", json!({})),
            pool("a", "mm", json!({})),
            pool("a", "arena", json!({})),
        ];
        let mut reversed = pools.clone();
        reversed.reverse();
        let one = build(&c, IDENTITY, &served_pools(&c, &pools), &tokens()).expect("built");
        let two = build(&c, IDENTITY, &served_pools(&c, &reversed), &tokens()).expect("built");
        assert_eq!(
            one.config_map, two.config_map,
            "the same pools, the same bytes"
        );
        assert_eq!(one.deployment, two.deployment);
        let doc = document(&one);
        let ids: Vec<&str> = doc["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .map(|p| p["queues"][0]["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["alpha/arena/duel", "alpha/mm/duel", "beta/mm/duel"]);
        assert_eq!(doc["pools"][2]["tenant"], "beta");
        assert_eq!(doc["pools"][2]["namespace"], "b");

        // The matchmaker reads it as three queues keyed by tenant: the same queue name of two
        // tenants never meets.
        let parsed = crate::matchmaker::config::Config::parse(
            "f",
            &one.config_map.data.as_ref().expect("data")[CONFIG_KEY],
            &crate::matchmaker::config::Defaults::default(),
        )
        .expect("the matchmaker reads it");
        let keys: Vec<String> = parsed.queues.iter().map(|q| q.key.to_string()).collect();
        assert_eq!(keys, ["alpha/arena/duel", "alpha/mm/duel", "beta/mm/duel"]);

        // A pool change changes the config and the Deployment's annotation, not its pods.
        let mut changed = pools.clone();
        changed[0].spec.queues[0].timeout_seconds = 30;
        let three = build(&c, IDENTITY, &served_pools(&c, &changed), &tokens()).expect("built");
        assert_ne!(one.config_map, three.config_map);
        assert_ne!(
            one.deployment.metadata.labels,
            three.deployment.metadata.labels
        );
        assert_eq!(
            one.deployment.spec.as_ref().map(|s| &s.template),
            three.deployment.spec.as_ref().map(|s| &s.template),
            "no rollout for a pool change"
        );
    }

    #[test]
    fn only_valid_image_less_pools_of_this_cells_tenants_are_served() {
        let c = two_tenants();
        let mut broken = pool("b", "broken", json!({}));
        broken.spec.queues[0].teams = 3;
        let mut leaving = pool("a", "leaving", json!({}));
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).expect("time"),
            ));
        let pools = vec![
            pool("a", "mm", json!({})),
            pool("a", "custom", json!({"image": "ghcr.io/alpha/mm:1"})),
            pool("x", "stranger", json!({})),
            pool("b", "elsewhere", json!({"cellRef": {"name": "c2"}})),
            broken,
            leaving,
            pool("b", "mm", json!({})),
        ];
        let served: Vec<String> = served_pools(&c, &pools)
            .iter()
            .map(|p| format!("{}/{}", p.tenant, p.pool))
            .collect();
        assert_eq!(served, ["alpha/mm", "beta/mm"]);
        assert!(served_by_cell(&pools[0], &c));
        assert!(!served_by_cell(&pools[1], &c));
    }

    #[test]
    fn serves_matches_a_pool_exactly() {
        let c = two_tenants();
        let pools = vec![pool("a", "mm", json!({})), pool("b", "mm", json!({}))];
        let configs = served_pools(&c, &pools);
        let doc = render("c1", &configs).expect("rendered");
        assert!(serves(&doc, &configs[0]) && serves(&doc, &configs[1]));
        let mut changed = pools[0].clone();
        changed.spec.queues[0].max_latency_ms = 10;
        let newer = queue_config(&changed, &c, &c.spec.tenants[0]).expect("config");
        assert!(
            !serves(&doc, &newer),
            "an older config does not serve the new spec"
        );
        assert!(!serves(
            &render("c1", &configs[1..]).expect("r"),
            &configs[0]
        ));
        assert!(!serves("not json", &configs[0]));
    }

    #[test]
    fn the_deployment_runs_the_built_in_matchmaker_for_the_cell() {
        let c = two_tenants();
        let objects = build(
            &c,
            IDENTITY,
            &served_pools(&c, &[pool("a", "mm", json!({}))]),
            &tokens(),
        )
        .expect("built");
        let d = serde_json::to_value(&objects.deployment).expect("json");
        assert_eq!(d["metadata"]["namespace"], "gamecell-c1");
        assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "GameCell");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/component"],
            "cell-matchmaker"
        );
        assert!(d["metadata"]["labels"].get("gamecell.dev/tenant").is_none());
        assert_eq!(d["spec"]["replicas"], 1);
        let pod = &d["spec"]["template"]["spec"];
        let c0 = &pod["containers"][0];
        assert_eq!(c0["image"], DEFAULT_MATCHMAKER_IMAGE);
        assert_eq!(
            c0["resources"],
            json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}})
        );
        assert!(c0["env"].as_array().expect("env").contains(
            &json!({"name": "MATCHMAKER_TENANT_TOKENS", "value": "/etc/gamecell/matchmaker-auth/tenants.json"})
        ));
        assert_eq!(c0["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c0["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], TOKENS_SECRET);

        // Only hashes in the cell namespace; the tokens go to their own tenant only.
        let secret = serde_json::to_string(&objects.tokens_secret).expect("json");
        assert!(!secret.contains(&token_from(&[1; 32])));
        let doc: Value = serde_json::from_slice(
            &objects.tokens_secret.data.as_ref().expect("data")[TOKENS_KEY].0,
        )
        .expect("json");
        assert_eq!(doc["tenants"]["alpha"], token_hash(&token_from(&[1; 32])));
        let tenant = &c.spec.tenants[1];
        let cred = credential_secret(IDENTITY, tenant, &token_from(&[2; 32]));
        assert_eq!(cred.metadata.namespace.as_deref(), Some("b"));
        let data = cred.data.expect("data");
        assert_eq!(data[KEY_URL].0, b"http://matchmaker.gamecell-c1.svc:8080");
        assert_eq!(data[KEY_TENANT].0, b"beta");
        assert_eq!(
            existing_token(Some(&credential_secret(
                IDENTITY,
                tenant,
                &token_from(&[2; 32])
            ))),
            Some(token_from(&[2; 32]))
        );
        assert_eq!(existing_token(None), None);
        assert_eq!(
            existing_token(Some(&credential_secret(IDENTITY, tenant, "short"))),
            None
        );
    }
}
