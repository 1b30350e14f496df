//! The objects of a PlayerService (pure): ServiceAccount, settings ConfigMap, Deployment,
//! Service, disruption budget and, when it autoscales, a HorizontalPodAutoscaler.
//!
//! The settings (the spec's `env` plus what the operator tells every service about its cell)
//! live in the ConfigMap `<service>-settings`, read with `envFrom`; their hash is an annotation
//! of the pod template, so changing a setting rolls the Deployment and nothing else does. Bound
//! data stores are referenced by Secret name and key only: the connection values never pass
//! through this module.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
    SecretEnvSource, SecretKeySelector, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::binding::{Refusal, check_data_stores, check_image};
use super::meta::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_CONNECTIONS_HASH, ANNOTATION_ROLE_ARN,
    COMPONENT_PLAYER_SERVICE, Identity, LABEL_PLAYER_SERVICE, Owner, map_hash,
};
use super::objects::{self, DeploymentParts, PORT_NAME};
use super::policy::{Adjustment, ContainerDefaults, Scale, size, workload_policy};
use crate::crds::gamecell::{CellTier, TenantSpec};
use crate::crds::playerservice::DataStoreBindings;
use crate::crds::{GameCell, PlayerService};

/// Connection Secret of the SQL store (written by the GameCell controller in every tenant
/// namespace).
pub const SECRET_SQL: &str = "gamecell-sql";
/// Connection Secret of the cache.
pub const SECRET_CACHE: &str = "gamecell-cache";
/// Connection Secret naming the tenant's document tables (`TABLE_<NAME>`).
pub const SECRET_TABLES: &str = "gamecell-tables";
/// Connection Secret naming the cell's buckets (`BUCKET_<NAME>`, `BUCKET_<NAME>_PREFIX`).
pub const SECRET_BUCKETS: &str = "gamecell-buckets";

/// Name of the service's container.
pub const CONTAINER_NAME: &str = "service";

/// What a PlayerService's objects depend on besides the service itself.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The owner identity of the service.
    pub owner: &'a Owner,
    /// The cell it is bound to.
    pub cell: &'a GameCell,
    /// The tenant whose namespace it is in.
    pub tenant: &'a TenantSpec,
    /// The tenant's LimitRange defaults.
    pub defaults: &'a ContainerDefaults,
    /// `resourceVersion` of each connection Secret that exists in the namespace, by name.
    pub secret_versions: &'a BTreeMap<String, String>,
}

/// Everything a PlayerService runs as, and what policy changed on the way.
#[derive(Clone, Debug)]
pub struct ServiceObjects {
    /// The pods' identity (IRSA-annotated when the cell has a workload role).
    pub service_account: ServiceAccount,
    /// The settings.
    pub config_map: ConfigMap,
    /// The Deployment.
    pub deployment: Deployment,
    /// The ClusterIP Service.
    pub service: Service,
    /// The disruption budget.
    pub disruption_budget: PodDisruptionBudget,
    /// The autoscaler, when the spec autoscales.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// Fixed replicas after policy (`None`: the autoscaler decides).
    pub replicas: Option<i32>,
    /// The connection Secrets the pods reference, which must exist for them to start.
    pub secrets: Vec<String>,
    /// What the tier's policy changed.
    pub adjustments: Vec<Adjustment>,
}

/// The environment-variable form of a table or bucket name, as the GameCell controller writes
/// the keys of its connection Secrets (`saves` -> `SAVES`, `game-state` -> `GAME_STATE`).
#[must_use]
pub fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn secret_key_env(name: String, secret: &str) -> EnvVar {
    EnvVar {
        name: name.clone(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: name,
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// How the pods reach the bound stores: whole Secrets for SQL and cache, one key per bound table
/// and bucket (so a service sees only the tables and buckets it binds). Also the Secret names.
fn connections(bindings: &DataStoreBindings) -> (Vec<EnvFromSource>, Vec<EnvVar>, Vec<String>) {
    let mut from = Vec::new();
    let mut env = Vec::new();
    let mut secrets = Vec::new();
    for (bound, secret) in [(bindings.sql, SECRET_SQL), (bindings.cache, SECRET_CACHE)] {
        if bound {
            from.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: secret.to_owned(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            });
            secrets.push(secret.to_owned());
        }
    }
    let mut tables: Vec<&String> = bindings.document_tables.iter().collect();
    tables.sort();
    tables.dedup();
    for table in &tables {
        env.push(secret_key_env(
            format!("TABLE_{}", env_key(table)),
            SECRET_TABLES,
        ));
    }
    if !tables.is_empty() {
        secrets.push(SECRET_TABLES.to_owned());
    }
    let mut buckets: Vec<&String> = bindings.buckets.iter().collect();
    buckets.sort();
    buckets.dedup();
    for bucket in &buckets {
        let key = format!("BUCKET_{}", env_key(bucket));
        env.push(secret_key_env(format!("{key}_PREFIX"), SECRET_BUCKETS));
        env.push(secret_key_env(key, SECRET_BUCKETS));
    }
    if !buckets.is_empty() {
        secrets.push(SECRET_BUCKETS.to_owned());
    }
    (from, env, secrets)
}

/// The connection Secrets the pods of a service with `bindings` reference.
#[must_use]
pub fn bound_secrets(bindings: &DataStoreBindings) -> Vec<String> {
    connections(bindings).2
}

fn tier_name(tier: CellTier) -> &'static str {
    match tier {
        CellTier::Dedicated => "Dedicated",
        CellTier::Shared => "Shared",
        CellTier::Enterprise => "Enterprise",
    }
}

/// The settings of a service: its `env`, then the operator's `GAMECELL_*` keys (which win over
/// an `env` entry of the same name: they describe where the service runs, not how).
#[must_use]
pub fn settings(
    svc: &PlayerService,
    cell: &GameCell,
    tenant: &TenantSpec,
) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = svc
        .spec
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let mut set = |k: &str, v: &str| {
        data.insert(k.to_owned(), v.to_owned());
    };
    set("GAMECELL_CELL", &kube::ResourceExt::name_any(cell));
    set("GAMECELL_TENANT", &tenant.name);
    set("GAMECELL_TIER", tier_name(cell.spec.tier));
    set("GAMECELL_REGION", &cell.spec.provider.aws.region);
    set("GAMECELL_SERVICE", &kube::ResourceExt::name_any(svc));
    set("GAMECELL_PORT", &svc.spec.port.to_string());
    if let Some(auth) = &svc.spec.auth {
        set("GAMECELL_AUTH_ISSUER", &auth.issuer);
        set("GAMECELL_AUTH_AUDIENCE", &auth.audience);
    }
    data
}

/// Builds every object of `svc`.
///
/// # Errors
/// A refusal (`DataStoreNotInCell`, `ImageNotAllowed`, `ResourcesExceedQuota`): nothing is to be
/// deployed.
pub fn build(svc: &PlayerService, inputs: Inputs<'_>) -> Result<ServiceObjects, Refusal> {
    let cell_name = kube::ResourceExt::name_any(inputs.cell);
    let spec = &svc.spec;
    let bindings = spec.data_stores.clone().unwrap_or_default();
    check_data_stores(&cell_name, &inputs.cell.spec, &bindings)?;
    check_image(&cell_name, &inputs.cell.spec, &spec.image)?;
    let policy = workload_policy(&cell_name, &inputs.cell.spec);
    let sizing = size(
        &policy,
        inputs.tenant,
        Scale::from_spec(spec.replicas, spec.autoscaling.as_ref()),
        spec.resources.as_ref(),
        inputs.defaults,
    )?;

    let identity = Identity {
        owner: inputs.owner.clone(),
        cell: cell_name,
        tenant: inputs.tenant.name.clone(),
    };
    let name = inputs.owner.name.as_str();
    let labels = identity.labels(
        name,
        COMPONENT_PLAYER_SERVICE,
        &[(LABEL_PLAYER_SERVICE, name)],
    );
    let selector = identity.selector(name, COMPONENT_PLAYER_SERVICE);

    let settings_name = format!("{name}-settings");
    let data = settings(svc, inputs.cell, inputs.tenant);
    let (mut env_from, env, secrets) = connections(&bindings);
    env_from.insert(
        0,
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: settings_name.clone(),
                optional: None,
            }),
            ..EnvFromSource::default()
        },
    );
    let versions: BTreeMap<String, String> = secrets
        .iter()
        .map(|s| {
            (
                s.clone(),
                inputs.secret_versions.get(s).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let mut annotations = BTreeMap::from([(ANNOTATION_CONFIG_HASH.to_owned(), map_hash(&data))]);
    if !versions.is_empty() {
        annotations.insert(ANNOTATION_CONNECTIONS_HASH.to_owned(), map_hash(&versions));
    }

    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(spec.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: spec.port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env_from: Some(env_from),
        env: (!env.is_empty()).then_some(env),
        resources: sizing.resources.clone(),
        ..Container::default()
    };
    let (replicas, autoscaler) = match sizing.scale {
        Scale::Fixed(r) => (Some(r), None),
        Scale::Autoscaled {
            min,
            max,
            target_cpu,
        } => (
            None,
            Some(objects::autoscaler(
                &identity,
                name,
                labels.clone(),
                min,
                max,
                target_cpu,
            )),
        ),
    };

    let role_arn = inputs
        .cell
        .spec
        .workloads
        .as_ref()
        .and_then(|w| w.role_arn.clone());
    let mut sa_meta = identity.metadata(name, labels.clone());
    if let Some(arn) = role_arn {
        sa_meta.annotations = Some(BTreeMap::from([(ANNOTATION_ROLE_ARN.to_owned(), arn)]));
    }
    let service_account = ServiceAccount {
        metadata: sa_meta,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let config_map = ConfigMap {
        metadata: identity.metadata(&settings_name, labels.clone()),
        data: Some(data),
        ..ConfigMap::default()
    };
    let deployment = objects::deployment(DeploymentParts {
        identity: &identity,
        name,
        labels: labels.clone(),
        selector: selector.clone(),
        replicas,
        surge: sizing.surge,
        policy: &policy,
        container,
        volumes: Vec::new(),
        service_account: Some(name.to_owned()),
        annotations,
    });
    let service = objects::service(&identity, name, labels.clone(), selector.clone(), spec.port);
    let disruption_budget = objects::disruption_budget(&identity, name, labels, selector);
    Ok(ServiceObjects {
        service_account,
        config_map,
        deployment,
        service,
        disruption_budget,
        autoscaler,
        replicas,
        secrets,
        adjustments: sizing.adjustments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::connections::connection_data;
    use crate::cell::resources::desired_resources;
    use crate::cell::tenancy::{CellIdentity, connection_secret};
    use crate::cloud::ObservedResource;
    use crate::workload::binding::reasons;
    use crate::workload::policy::adjustments;
    use serde_json::{Value, json};

    fn cell(spec: Value) -> GameCell {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
            "metadata": {"name": "c1", "uid": "cell-uid"}, "spec": spec
        }))
        .expect("cell")
    }

    fn shared_cell() -> GameCell {
        cell(json!({
            "tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "alpha", "namespace": "ns-a", "quota": {"cpu": "2", "pods": 10}},
                        {"name": "beta", "namespace": "ns-b"}],
            "dataStores": {"sql": {"engine": "Postgres", "version": "16"}, "cache": {},
                           "documentTables": [{"name": "game-state", "partitionKey": {"name": "pk", "type": "S"}}],
                           "buckets": [{"name": "assets"}]},
            "workloads": {"roleArn": "arn:aws:iam::123456789012:role/games"}
        }))
    }

    fn dedicated_cell() -> GameCell {
        cell(json!({
            "tier": "Dedicated", "provider": {"aws": {"region": "us-east-1", "clusterName": "k"}},
            "tenants": [{"name": "solo", "namespace": "solo"}],
            "nodes": {"instanceTypes": ["c7g.large"], "minSize": 1, "maxSize": 2,
                      "nodeRoleArn": "arn:aws:iam::123456789012:role/n", "subnetIds": ["subnet-01234567"]}
        }))
    }

    fn enterprise_cell(registries: &[&str]) -> GameCell {
        cell(json!({
            "tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/r",
                                  "externalId": "ext", "clusterName": "k"}},
            "tenants": [{"name": "acme", "namespace": "acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "allowedRegistries": registries}
        }))
    }

    fn service(ns: &str, spec: Value) -> PlayerService {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
            "metadata": {"name": "players", "namespace": ns, "uid": "svc-uid"}, "spec": spec
        }))
        .expect("service")
    }

    fn build_for(
        svc: &PlayerService,
        cell: &GameCell,
        versions: &BTreeMap<String, String>,
    ) -> Result<ServiceObjects, Refusal> {
        let owner = Owner::of(svc).expect("owner");
        let ns = kube::ResourceExt::namespace(svc).expect("ns");
        let tenant = cell
            .spec
            .tenants
            .iter()
            .find(|t| t.namespace == ns)
            .expect("tenant");
        build(
            svc,
            Inputs {
                owner: &owner,
                cell,
                tenant,
                defaults: &ContainerDefaults::fallback(),
                secret_versions: versions,
            },
        )
    }

    fn pod_spec(objects: &ServiceObjects) -> Value {
        serde_json::to_value(&objects.deployment).expect("json")["spec"]["template"]["spec"].clone()
    }

    fn config_hash(objects: &ServiceObjects) -> String {
        objects
            .deployment
            .spec
            .as_ref()
            .expect("spec")
            .template
            .metadata
            .as_ref()
            .expect("meta")
            .annotations
            .as_ref()
            .expect("annotations")[ANNOTATION_CONFIG_HASH]
            .clone()
    }

    #[test]
    fn shared_service_gets_resources_quota_caps_secret_references_and_no_host_access() {
        let cell = shared_cell();
        let svc = service(
            "ns-a",
            json!({
                "cellRef": {"name": "c1"}, "image": "ghcr.io/a/players:1", "replicas": 8,
                "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                "dataStores": {"sql": true, "documentTables": ["game-state"], "buckets": ["assets"]}
            }),
        );
        let objects = build_for(&svc, &cell, &BTreeMap::new()).expect("built");
        // 2 cpu / 500m default limit = 4 replicas, below the 10 pods.
        assert_eq!(objects.replicas, Some(4));
        let reasons: Vec<_> = objects.adjustments.iter().map(|a| a.reason).collect();
        assert_eq!(
            reasons,
            [
                adjustments::REPLICAS_CAPPED_BY_QUOTA,
                adjustments::RESOURCES_DEFAULTED
            ]
        );
        assert!(objects.autoscaler.is_none());

        let pod = pod_spec(&objects);
        let container = &pod["containers"][0];
        assert_eq!(container["resources"]["requests"]["cpu"], "100m");
        assert_eq!(container["resources"]["limits"]["cpu"], "500m");
        assert_eq!(
            container["envFrom"][0]["configMapRef"]["name"],
            "players-settings"
        );
        assert_eq!(container["envFrom"][1]["secretRef"]["name"], SECRET_SQL);
        let env: Vec<&str> = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| e["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            env,
            ["TABLE_GAME_STATE", "BUCKET_ASSETS_PREFIX", "BUCKET_ASSETS"]
        );
        assert_eq!(
            container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            SECRET_TABLES
        );
        assert_eq!(objects.secrets, [SECRET_SQL, SECRET_TABLES, SECRET_BUCKETS]);
        // Never host access or privilege, whatever the tier.
        let text = pod.to_string();
        for forbidden in [
            "privileged",
            "hostNetwork",
            "hostPath",
            "hostPID",
            "hostIPC",
            "hostPort",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} in {text}");
        }
        assert!(pod.get("nodeSelector").is_none() && pod.get("securityContext").is_none());
        // Settings hold the env and where the service runs, never a connection value.
        let data = objects.config_map.data.as_ref().expect("data");
        assert_eq!(data["LOG_LEVEL"], "debug");
        assert_eq!(data["GAMECELL_TENANT"], "alpha");
        assert!(!data.keys().any(|k| k.starts_with("SQL_")));
        assert_eq!(
            objects
                .service_account
                .metadata
                .annotations
                .as_ref()
                .expect("annotations")[ANNOTATION_ROLE_ARN],
            "arn:aws:iam::123456789012:role/games"
        );
        // Owner reference, labels.
        let meta = &objects.deployment.metadata;
        let owner = &meta.owner_references.as_ref().expect("owners")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("PlayerService", "svc-uid", Some(true))
        );
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gamecell-operator");
        assert_eq!(labels["app.kubernetes.io/part-of"], "c1");
        assert_eq!(labels["gamecell.dev/tenant"], "alpha");
    }

    #[test]
    fn the_secret_names_and_keys_are_the_ones_the_cell_writes() {
        let cell = shared_cell();
        let desired = desired_resources("c1", "cell-uid", &cell.spec);
        let observed = desired
            .iter()
            .map(|d| {
                (
                    (d.kind, d.identifier.clone()),
                    ObservedResource {
                        identifier: d.identifier.clone(),
                        state: "available".into(),
                        ready: true,
                        endpoint: Some("h".into()),
                        port: Some(1),
                        tags: d.tags.clone(),
                        secret_arn: None,
                        encrypted: true,
                        publicly_accessible: false,
                    },
                )
            })
            .collect();
        let written = connection_data(&cell.spec, &cell.spec.tenants[0], &desired, &observed);
        let identity = CellIdentity {
            name: "c1",
            uid: "cell-uid",
        };
        let names: Vec<String> = written
            .iter()
            .map(|(store, data)| {
                kube::ResourceExt::name_any(&connection_secret(
                    identity,
                    "ns-a",
                    store,
                    data.clone(),
                ))
            })
            .collect();
        for secret in [SECRET_SQL, SECRET_CACHE, SECRET_TABLES, SECRET_BUCKETS] {
            assert!(
                names.iter().any(|n| n == secret),
                "{secret} not in {names:?}"
            );
        }
        assert!(written["tables"].contains_key(&format!("TABLE_{}", env_key("game-state"))));
        assert!(written["buckets"].contains_key(&format!("BUCKET_{}_PREFIX", env_key("assets"))));
    }

    #[test]
    fn dedicated_service_runs_on_the_cells_nodes_as_asked() {
        let cell = dedicated_cell();
        let svc = service(
            "solo",
            json!({
                "cellRef": {"name": "c1"}, "image": "x/y:1",
                "autoscaling": {"minReplicas": 2, "maxReplicas": 50, "targetCpuUtilizationPercent": 60}
            }),
        );
        let objects = build_for(&svc, &cell, &BTreeMap::new()).expect("built");
        assert!(objects.adjustments.is_empty());
        assert_eq!(objects.replicas, None);
        let hpa = serde_json::to_value(objects.autoscaler.as_ref().expect("hpa")).expect("json");
        assert_eq!(hpa["spec"]["maxReplicas"], 50);
        assert_eq!(hpa["spec"]["minReplicas"], 2);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            60
        );
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "players");
        let deployment = serde_json::to_value(&objects.deployment).expect("json");
        assert!(
            deployment["spec"].get("replicas").is_none(),
            "the autoscaler owns the count"
        );
        let pod = pod_spec(&objects);
        assert_eq!(pod["nodeSelector"]["gamecell.dev/cell"], "c1");
        assert_eq!(
            pod["tolerations"][0],
            json!({"key": "gamecell.dev/cell", "operator": "Equal", "value": "c1", "effect": "NoSchedule"})
        );
        assert!(
            pod["containers"][0].get("resources").is_none(),
            "dedicated: resources as asked"
        );
        assert!(
            objects.service_account.metadata.annotations.is_none(),
            "no workload role"
        );
    }

    #[test]
    fn enterprise_service_is_restricted_and_only_from_allowed_registries() {
        let cell = enterprise_cell(&["123456789012.dkr.ecr.eu-central-1.amazonaws.com/"]);
        let ok = service(
            "acme",
            json!({"cellRef": {"name": "c1"}, "image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/p:1"}),
        );
        let objects = build_for(&ok, &cell, &BTreeMap::new()).expect("built");
        let pod = pod_spec(&objects);
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        let sc = &pod["containers"][0]["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["mountPath"], "/tmp");
        assert!(
            pod.get("nodeSelector").is_none(),
            "no spec.nodes: schedule anywhere"
        );

        let bad = service(
            "acme",
            json!({"cellRef": {"name": "c1"}, "image": "docker.io/p:1"}),
        );
        let refused = build_for(&bad, &cell, &BTreeMap::new()).expect_err("refused");
        assert_eq!(refused.reason, reasons::IMAGE_NOT_ALLOWED);
        let any = enterprise_cell(&[]);
        assert!(
            build_for(&bad, &any, &BTreeMap::new()).is_ok(),
            "no list: any registry"
        );
    }

    #[test]
    fn a_settings_change_and_only_a_settings_change_rolls_the_pods() {
        let cell = shared_cell();
        let spec = |level: &str, replicas: i32| {
            json!({
                "cellRef": {"name": "c1"}, "image": "ghcr.io/a/players:1", "replicas": replicas,
                "env": [{"name": "LOG_LEVEL", "value": level}, {"name": "A", "value": "1"}],
            })
        };
        let base =
            build_for(&service("ns-a", spec("info", 1)), &cell, &BTreeMap::new()).expect("built");
        let again =
            build_for(&service("ns-a", spec("info", 1)), &cell, &BTreeMap::new()).expect("built");
        assert_eq!(
            serde_json::to_value(&base.deployment).expect("json"),
            serde_json::to_value(&again.deployment).expect("json"),
            "deterministic"
        );
        assert_eq!(base.config_map, again.config_map);
        let scaled =
            build_for(&service("ns-a", spec("info", 2)), &cell, &BTreeMap::new()).expect("built");
        assert_eq!(
            config_hash(&base),
            config_hash(&scaled),
            "scaling is not a settings change"
        );
        let mut reordered = service("ns-a", spec("info", 1));
        reordered.spec.env.reverse();
        assert_eq!(
            config_hash(&base),
            config_hash(&build_for(&reordered, &cell, &BTreeMap::new()).expect("built"))
        );
        let changed =
            build_for(&service("ns-a", spec("debug", 1)), &cell, &BTreeMap::new()).expect("built");
        assert_ne!(
            config_hash(&base),
            config_hash(&changed),
            "a setting changed"
        );

        // A connection Secret rewritten by the cell rolls the pods that use it.
        let bound = |v: &str| {
            let mut s = service("ns-a", spec("info", 1));
            s.spec.data_stores = Some(DataStoreBindings {
                sql: true,
                ..DataStoreBindings::default()
            });
            build_for(
                &s,
                &cell,
                &BTreeMap::from([(SECRET_SQL.to_owned(), v.to_owned())]),
            )
            .expect("built")
        };
        let annotation = |o: &ServiceObjects| {
            o.deployment
                .spec
                .as_ref()
                .expect("spec")
                .template
                .metadata
                .as_ref()
                .expect("meta")
                .annotations
                .as_ref()
                .expect("a")[ANNOTATION_CONNECTIONS_HASH]
                .clone()
        };
        assert_eq!(annotation(&bound("7")), annotation(&bound("7")));
        assert_ne!(annotation(&bound("7")), annotation(&bound("8")));
        assert_eq!(config_hash(&bound("7")), config_hash(&bound("8")));
    }

    #[test]
    fn binding_an_undeclared_store_is_refused() {
        let cell = dedicated_cell();
        let svc = service(
            "solo",
            json!({"cellRef": {"name": "c1"}, "image": "x/y:1", "dataStores": {"cache": true}}),
        );
        let refused = build_for(&svc, &cell, &BTreeMap::new()).expect_err("refused");
        assert_eq!(refused.reason, reasons::DATA_STORE_NOT_IN_CELL);
    }
}
