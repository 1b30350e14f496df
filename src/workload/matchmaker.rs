//! The objects of a MatchmakingPool (pure): its validated queue configuration as a ConfigMap,
//! and the matchmaker Deployments, Services and autoscalers that serve it, after the cell's tier.
//!
//! | tier       | matchmakers                                                                  |
//! |------------|------------------------------------------------------------------------------|
//! | Dedicated  | one per region the pool's queues list (`<pool>-mm-<region>`, `MATCHMAKER_REGION`); a queue without regions is served in the cell's region |
//! | Shared     | none of its own when it sets no image: the cell matchmaker serves it (`workload::cell_matchmaker`); with an image, one per pool (`<pool>-mm`) in the tenant's namespace, sized under the tenant's quota |
//! | Enterprise | one private matchmaker per pool (`<pool>-mm`), with a NetworkPolicy admitting only pods of its own namespace |
//!
//! Shared cells run one multi-tenant matchmaker per cell, built from every pool's
//! [`MatchmakerConfig`] (which carries the tenant and tenant-qualified queue ids) by
//! `workload::cell_matchmaker`. A pool with its own image keeps its own matchmaker: the cell
//! matchmaker is the built-in one.
//!
//! The configuration document is JSON with a fixed field order, queues sorted by name and
//! regions sorted, so the same pool always renders the same bytes and reordering the spec rolls
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, Probe,
    ResourceRequirements, Service, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde::Serialize;

use super::binding::{Refusal, check_image, reasons};
use super::meta::{
    ANNOTATION_CONFIG_HASH, COMPONENT_MATCHMAKER, Identity, LABEL_COMPONENT, LABEL_POOL,
    LABEL_REGION, Owner, bounded_name, map_hash,
};
use super::objects::{self, DeploymentParts, PORT_NAME};
use super::policy::{Adjustment, ContainerDefaults, Scale, size, workload_policy};
use crate::crds::gamecell::{CellTier, TenantSpec};
use crate::crds::{GameCell, MatchmakingPool};

/// The built-in matchmaker, run when a pool sets no image. Built in issue 6; it reads
/// [`CONFIG_FILE`], serves tickets on [`MATCHMAKER_PORT`] and, when `MATCHMAKER_REGION` is set,
/// only the queues of that region.
pub const DEFAULT_MATCHMAKER_IMAGE: &str = "ghcr.io/gamecell/matchmaker:0.1.0";
/// Port the matchmaker serves on.
pub const MATCHMAKER_PORT: i32 = 8080;
/// Key of the configuration document in the ConfigMap.
pub const CONFIG_KEY: &str = "matchmaker.json";
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/gamecell/matchmaker";
/// Path of the configuration document in the container.
pub const CONFIG_FILE: &str = "/etc/gamecell/matchmaker/matchmaker.json";
/// Version of the configuration document's format.
pub const CONFIG_VERSION: u32 = 1;
const CONTAINER_NAME: &str = "matchmaker";
/// Name of the configuration volume.
pub const CONFIG_VOLUME: &str = "config";

/// An environment variable with a literal value.
#[must_use]
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// A probe of the matchmaker's HTTP port at `path`.
fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The matchmaker container: `image` on [`MATCHMAKER_PORT`], `env`, the configuration mounted
/// read-only at [`CONFIG_DIR`] plus `mounts`, ready when `/readyz` says a valid configuration is
/// loaded (an invalid first configuration keeps it out of its Service) and live while `/livez`
/// answers.
#[must_use]
pub fn container(
    image: &str,
    env: Vec<EnvVar>,
    resources: Option<ResourceRequirements>,
    mounts: Vec<VolumeMount>,
) -> Container {
    let mut volume_mounts = vec![VolumeMount {
        name: CONFIG_VOLUME.to_owned(),
        mount_path: CONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    volume_mounts.extend(mounts);
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(image.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: MATCHMAKER_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        resources,
        readiness_probe: Some(http_probe("/readyz", 5)),
        liveness_probe: Some(http_probe("/livez", 10)),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    }
}

/// The volume of the configuration ConfigMap `config_map`.
#[must_use]
pub fn config_volume(config_map: &str) -> Volume {
    Volume {
        name: CONFIG_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Requests and limits of every matchmaker container (the pool's spec has none): enough for the
/// built-in matchmaker, and complete, so a Shared tenant's quota can size it.
#[must_use]
pub fn matchmaker_resources() -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair("100m", "128Mi")),
        limits: Some(pair("500m", "256Mi")),
        ..ResourceRequirements::default()
    }
}

/// The configuration document a matchmaker reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchmakerConfig {
    /// Format version ([`CONFIG_VERSION`]).
    pub version: u32,
    /// The cell.
    pub cell: String,
    /// The tenant: tickets and matches never cross it.
    pub tenant: String,
    /// The pool's namespace.
    pub namespace: String,
    /// The pool.
    pub pool: String,
    /// The queues, sorted by name.
    pub queues: Vec<QueueConfig>,
}

/// One queue as the matchmaker reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueConfig {
    /// `<tenant>/<pool>/<queue>`: unique in the cell, so queues of different tenants never mix.
    pub id: String,
    /// The queue's name in the pool.
    pub name: String,
    /// Players in one match.
    pub players_per_match: i32,
    /// Teams in one match.
    pub teams: i32,
    /// Players in one team.
    pub players_per_team: i32,
    /// Initial skill window, rating points.
    pub skill_window_initial: i32,
    /// Widening per second of waiting.
    pub skill_window_widening_per_second: i32,
    /// Widest window.
    pub skill_window_maximum: i32,
    /// Highest latency to the match's region, milliseconds.
    pub max_latency_ms: i32,
    /// Regions matches may be hosted in, sorted; never empty (the cell's region by default).
    pub regions: Vec<String>,
    /// Seconds before a ticket times out.
    pub timeout_seconds: i32,
    /// Whether running matches are backfilled.
    pub backfill: bool,
}

/// The pool's queues checked and put in canonical form.
///
/// # Errors
/// `InvalidQueues` (no queues, duplicate names, uneven teams, an inverted skill window: the
/// schema refuses these, this is the last line of defence for objects older than a rule), or
/// `QueueRegionNotAllowed` when a queue names a region outside the cell's
/// `compliance.allowedRegions`.
pub fn queue_config(
    pool: &MatchmakingPool,
    cell: &GameCell,
    tenant: &TenantSpec,
) -> Result<MatchmakerConfig, Refusal> {
    let pool_name = pool.name_any();
    let cell_region = &cell.spec.provider.aws.region;
    let allowed = cell.spec.compliance.as_ref().map(|c| &c.allowed_regions);
    let mut problems = Vec::new();
    let mut outside = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut queues = Vec::new();
    if pool.spec.queues.is_empty() {
        problems.push("the pool has no queues".to_owned());
    }
    for q in &pool.spec.queues {
        if !names.insert(q.name.as_str()) {
            problems.push(format!("queue {} is listed twice", q.name));
        }
        if q.teams < 1 || q.players_per_match % q.teams != 0 || q.players_per_match < q.teams {
            problems.push(format!(
                "queue {}: {} players do not split into {} equal teams",
                q.name, q.players_per_match, q.teams
            ));
        }
        if q.skill_window.initial > q.skill_window.maximum {
            problems.push(format!(
                "queue {}: skillWindow.initial exceeds skillWindow.maximum",
                q.name
            ));
        }
        let mut regions: Vec<String> = if q.regions.is_empty() {
            vec![cell_region.clone()]
        } else {
            q.regions.clone()
        };
        regions.sort();
        regions.dedup();
        if let Some(allowed) = allowed {
            outside.extend(regions.iter().filter(|r| !allowed.contains(r)).cloned());
        }
        queues.push(QueueConfig {
            id: format!("{}/{pool_name}/{}", tenant.name, q.name),
            name: q.name.clone(),
            players_per_match: q.players_per_match,
            teams: q.teams,
            players_per_team: if q.teams > 0 {
                q.players_per_match / q.teams
            } else {
                0
            },
            skill_window_initial: q.skill_window.initial,
            skill_window_widening_per_second: q.skill_window.widening_per_second,
            skill_window_maximum: q.skill_window.maximum,
            max_latency_ms: q.max_latency_ms,
            regions,
            timeout_seconds: q.timeout_seconds,
            backfill: q.backfill,
        });
    }
    if !problems.is_empty() {
        return Err(Refusal::new(reasons::INVALID_QUEUES, problems.join("; ")));
    }
    if !outside.is_empty() {
        return Err(Refusal::new(
            reasons::QUEUE_REGION_NOT_ALLOWED,
            format!(
                "queues list {} outside the cell's compliance.allowedRegions: matches may only be hosted where the cell's data may live",
                outside.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(MatchmakerConfig {
        version: CONFIG_VERSION,
        cell: cell.name_any(),
        tenant: tenant.name.clone(),
        namespace: pool.namespace().unwrap_or_default(),
        pool: pool_name,
        queues,
    })
}

/// The configuration document as written into the ConfigMap.
///
/// # Errors
/// Never in practice (plain strings and numbers); a serializer failure is returned as
/// `InvalidQueues`.
pub fn render(config: &MatchmakerConfig) -> Result<String, Refusal> {
    serde_json::to_string_pretty(config)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Refusal::new(reasons::INVALID_QUEUES, e.to_string()))
}

/// What a pool's objects depend on besides the pool.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The owner identity of the pool.
    pub owner: &'a Owner,
    /// The cell it is bound to.
    pub cell: &'a GameCell,
    /// The tenant whose namespace it is in.
    pub tenant: &'a TenantSpec,
}

/// One matchmaker: a Deployment, its Service and maybe an autoscaler.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The region it serves (Dedicated), or `None` (every region of the pool).
    pub region: Option<String>,
    /// The Deployment.
    pub deployment: Deployment,
    /// Its Service.
    pub service: Service,
    /// Its autoscaler, when the pool autoscales.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
}

/// Everything a pool runs as.
#[derive(Clone, Debug)]
pub struct PoolObjects {
    /// The queue configuration.
    pub config_map: ConfigMap,
    /// The matchmakers.
    pub instances: Vec<Instance>,
    /// The isolation policy (Enterprise).
    pub network_policy: Option<NetworkPolicy>,
    /// Queues configured.
    pub queues: usize,
    /// Fixed replicas of each matchmaker after policy (`None`: autoscaled).
    pub replicas: Option<i32>,
    /// What the tier's policy changed.
    pub adjustments: Vec<Adjustment>,
}

/// The regions a Dedicated pool runs a matchmaker in: every region its queues list, sorted.
#[must_use]
pub fn regions(config: &MatchmakerConfig) -> Vec<String> {
    config
        .queues
        .iter()
        .flat_map(|q| q.regions.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Builds every object of `pool`.
///
/// # Errors
/// A refusal (`InvalidQueues`, `QueueRegionNotAllowed`, `ImageNotAllowed`,
/// `ResourcesExceedQuota`): nothing is to be deployed.
pub fn build(pool: &MatchmakingPool, inputs: Inputs<'_>) -> Result<PoolObjects, Refusal> {
    let cell_name = inputs.cell.name_any();
    let config = queue_config(pool, inputs.cell, inputs.tenant)?;
    let document = render(&config)?;
    let image = pool
        .spec
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_MATCHMAKER_IMAGE.to_owned());
    check_image(&cell_name, &inputs.cell.spec, &image)?;
    let policy = workload_policy(&cell_name, &inputs.cell.spec);
    let resources = matchmaker_resources();
    let sizing = size(
        &policy,
        inputs.tenant,
        Scale::from_spec(pool.spec.replicas, pool.spec.autoscaling.as_ref()),
        Some(&resources),
        &ContainerDefaults::fallback(),
    )?;

    let identity = Identity {
        owner: inputs.owner.clone(),
        cell: cell_name,
        tenant: inputs.tenant.name.clone(),
    };
    let pool_name = inputs.owner.name.as_str();
    let base = bounded_name(&[pool_name, "mm"]);
    let config_name = bounded_name(&[pool_name, "mm", "config"]);
    let pool_labels = identity.labels(&base, COMPONENT_MATCHMAKER, &[(LABEL_POOL, pool_name)]);
    let data = BTreeMap::from([(CONFIG_KEY.to_owned(), document)]);
    let annotations = BTreeMap::from([(ANNOTATION_CONFIG_HASH.to_owned(), map_hash(&data))]);
    let config_map = ConfigMap {
        metadata: identity.metadata(&config_name, pool_labels.clone()),
        data: Some(data),
        ..ConfigMap::default()
    };

    let regional: Vec<Option<String>> = if inputs.cell.spec.tier == CellTier::Dedicated {
        regions(&config).into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let replicas = match sizing.scale {
        Scale::Fixed(r) => Some(r),
        Scale::Autoscaled { .. } => None,
    };
    let instances = regional
        .into_iter()
        .map(|region| {
            let name = match &region {
                Some(r) => bounded_name(&[pool_name, "mm", r]),
                None => base.clone(),
            };
            let mut extra = vec![(LABEL_POOL, pool_name)];
            let mut vars = vec![
                env("MATCHMAKER_CONFIG", CONFIG_FILE),
                env("MATCHMAKER_POOL", pool_name),
                env("MATCHMAKER_TENANT", &identity.tenant),
                env("MATCHMAKER_PORT", &MATCHMAKER_PORT.to_string()),
            ];
            if let Some(r) = &region {
                extra.push((LABEL_REGION, r.as_str()));
                vars.push(env("MATCHMAKER_REGION", r));
            }
            let labels = identity.labels(&name, COMPONENT_MATCHMAKER, &extra);
            let selector = identity.selector(&name, COMPONENT_MATCHMAKER);
            let container = container(&image, vars, sizing.resources.clone(), Vec::new());
            let volumes = vec![config_volume(&config_name)];
            let autoscaler = match sizing.scale {
                Scale::Fixed(_) => None,
                Scale::Autoscaled {
                    min,
                    max,
                    target_cpu,
                } => Some(objects::autoscaler(
                    &identity,
                    &name,
                    labels.clone(),
                    min,
                    max,
                    target_cpu,
                )),
            };
            let deployment = objects::deployment(DeploymentParts {
                identity: &identity,
                name: &name,
                labels: labels.clone(),
                selector: selector.clone(),
                replicas,
                surge: sizing.surge,
                policy: &policy,
                container,
                volumes,
                service_account: None,
                annotations: annotations.clone(),
            });
            let service = objects::service(&identity, &name, labels, selector, MATCHMAKER_PORT);
            Instance {
                region,
                deployment,
                service,
                autoscaler,
            }
        })
        .collect();

    let network_policy = (inputs.cell.spec.tier == CellTier::Enterprise).then(|| NetworkPolicy {
        metadata: identity.metadata(&base, pool_labels),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (LABEL_POOL.to_owned(), pool_name.to_owned()),
                    (LABEL_COMPONENT.to_owned(), COMPONENT_MATCHMAKER.to_owned()),
                ])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                // A peer with only a pod selector means pods of this namespace.
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector::default()),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(MATCHMAKER_PORT)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    });

    Ok(PoolObjects {
        config_map,
        instances,
        network_policy,
        queues: config.queues.len(),
        replicas,
        adjustments: sizing.adjustments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::policy::adjustments;
    use serde_json::{Value, json};

    fn cell(spec: Value) -> GameCell {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
            "metadata": {"name": "c1", "uid": "cell-uid"}, "spec": spec
        }))
        .expect("cell")
    }

    fn pool(ns: &str, spec: Value) -> MatchmakingPool {
        serde_json::from_value(json!({
            "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
            "metadata": {"name": "mm", "namespace": ns, "uid": "pool-uid"}, "spec": spec
        }))
        .expect("pool")
    }

    fn queue(name: &str, regions: &[&str]) -> Value {
        json!({"name": name, "playersPerMatch": 10, "teams": 2,
               "skillWindow": {"initial": 100, "wideningPerSecond": 10, "maximum": 500},
               "regions": regions})
    }

    fn build_for(p: &MatchmakingPool, c: &GameCell) -> Result<PoolObjects, Refusal> {
        let owner = Owner::of(p).expect("owner");
        let ns = p.namespace().expect("ns");
        let tenant = c
            .spec
            .tenants
            .iter()
            .find(|t| t.namespace == ns)
            .expect("tenant");
        build(
            p,
            Inputs {
                owner: &owner,
                cell: c,
                tenant,
            },
        )
    }

    fn dedicated() -> GameCell {
        cell(
            json!({"tier": "Dedicated", "provider": {"aws": {"region": "us-east-1"}},
                    "tenants": [{"name": "solo", "namespace": "solo"}]}),
        )
    }

    #[test]
    fn dedicated_pools_run_one_matchmaker_per_region() {
        let p = pool(
            "solo",
            json!({"cellRef": {"name": "c1"}, "replicas": 2,
            "queues": [queue("ranked", &["eu-west-1", "us-east-1"]), queue("casual", &[])]}),
        );
        let objects = build_for(&p, &dedicated()).expect("built");
        let names: Vec<String> = objects
            .instances
            .iter()
            .map(|i| i.deployment.name_any())
            .collect();
        assert_eq!(
            names,
            ["mm-mm-eu-west-1", "mm-mm-us-east-1"],
            "casual runs in the cell's region"
        );
        let d = serde_json::to_value(&objects.instances[0].deployment).expect("json");
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_array()
                .expect("env")
                .contains(&json!({"name": "MATCHMAKER_REGION", "value": "eu-west-1"}))
        );
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            DEFAULT_MATCHMAKER_IMAGE
        );
        assert_eq!(d["metadata"]["labels"]["gamecell.dev/region"], "eu-west-1");
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
            "mm-mm-eu-west-1"
        );
        assert!(objects.network_policy.is_none());
        assert_eq!(objects.queues, 2);
    }

    #[test]
    fn the_config_is_deterministic_sorted_and_tenant_qualified() {
        let c = dedicated();
        let a = pool(
            "solo",
            json!({"cellRef": {"name": "c1"},
            "queues": [queue("b", &["us-east-1", "eu-west-1"]), queue("a", &[])]}),
        );
        let b = pool(
            "solo",
            json!({"cellRef": {"name": "c1"},
            "queues": [queue("a", &[]), queue("b", &["eu-west-1", "us-east-1"])]}),
        );
        let one = build_for(&a, &c).expect("built");
        let two = build_for(&b, &c).expect("built");
        assert_eq!(
            one.config_map, two.config_map,
            "order in the spec does not matter"
        );
        let doc: Value =
            serde_json::from_str(&one.config_map.data.as_ref().expect("data")[CONFIG_KEY])
                .expect("json");
        assert_eq!(doc["tenant"], "solo");
        assert_eq!(doc["queues"][0]["id"], "solo/mm/a");
        assert_eq!(doc["queues"][0]["regions"], json!(["us-east-1"]));
        assert_eq!(
            doc["queues"][1]["regions"],
            json!(["eu-west-1", "us-east-1"])
        );
        assert_eq!(doc["queues"][1]["playersPerTeam"], 5);

        // Changing a queue changes the hash on every matchmaker's pod template.
        let hash = |o: &PoolObjects| {
            serde_json::to_value(&o.instances[0].deployment).expect("json")
            ["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG_HASH].clone()
        };
        let mut changed = a.clone();
        changed.spec.queues[0].timeout_seconds = 30;
        assert_eq!(hash(&one), hash(&two));
        assert_ne!(hash(&one), hash(&build_for(&changed, &c).expect("built")));
        let mut scaled = a.clone();
        scaled.spec.replicas = Some(3);
        assert_eq!(hash(&one), hash(&build_for(&scaled, &c).expect("built")));
    }

    #[test]
    fn shared_pools_with_an_image_run_in_their_tenant_namespace_under_its_quota() {
        let c = cell(
            json!({"tier": "Shared", "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [{"name": "alpha", "namespace": "a", "quota": {"pods": 2}}, {"name": "beta", "namespace": "b"}]}),
        );
        let p = pool(
            "a",
            json!({"cellRef": {"name": "c1"}, "replicas": 5, "image": "ghcr.io/alpha/mm:1",
                   "queues": [queue("q", &["eu-west-1"])]}),
        );
        let objects = build_for(&p, &c).expect("built");
        assert_eq!(objects.instances.len(), 1);
        assert_eq!(objects.instances[0].deployment.name_any(), "mm-mm");
        assert_eq!(objects.replicas, Some(2));
        assert_eq!(
            objects.adjustments[0].reason,
            adjustments::REPLICAS_CAPPED_BY_QUOTA
        );
        let labels = objects.instances[0].deployment.labels();
        assert_eq!(labels["gamecell.dev/tenant"], "alpha");
        assert_eq!(labels["gamecell.dev/matchmakingpool"], "mm");
    }

    #[test]
    fn enterprise_pools_are_private_and_follow_compliance() {
        let c = cell(json!({"tier": "Enterprise",
            "provider": {"aws": {"region": "eu-central-1", "accountRoleArn": "arn:aws:iam::123456789012:role/r",
                                  "externalId": "ext", "clusterName": "k"}},
            "tenants": [{"name": "acme", "namespace": "acme"}],
            "compliance": {"allowedRegions": ["eu-central-1"], "allowedRegistries": ["registry.acme.example/"]}}));
        let p = pool(
            "acme",
            json!({"cellRef": {"name": "c1"}, "image": "registry.acme.example/mm:2",
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4}, "queues": [queue("q", &[])]}),
        );
        let objects = build_for(&p, &c).expect("built");
        let policy =
            serde_json::to_value(objects.network_policy.as_ref().expect("policy")).expect("json");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            policy["spec"]["ingress"][0]["from"],
            json!([{"podSelector": {}}])
        );
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"]["gamecell.dev/matchmakingpool"],
            "mm"
        );
        assert!(objects.instances[0].autoscaler.is_some());
        let d = serde_json::to_value(&objects.instances[0].deployment).expect("json");
        assert_eq!(
            d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true
        );

        let default_image = pool(
            "acme",
            json!({"cellRef": {"name": "c1"}, "queues": [queue("q", &[])]}),
        );
        assert_eq!(
            build_for(&default_image, &c).expect_err("refused").reason,
            reasons::IMAGE_NOT_ALLOWED
        );
        let abroad = pool(
            "acme",
            json!({"cellRef": {"name": "c1"}, "image": "registry.acme.example/mm:2",
            "queues": [queue("q", &["us-east-1"])]}),
        );
        let refused = build_for(&abroad, &c).expect_err("refused");
        assert_eq!(refused.reason, reasons::QUEUE_REGION_NOT_ALLOWED);
        assert!(refused.message.contains("us-east-1"));
    }

    #[test]
    fn invalid_queues_are_refused_with_every_problem() {
        let mut q = queue("q", &[]);
        q["teams"] = json!(3);
        q["skillWindow"]["initial"] = json!(900);
        let p = pool(
            "solo",
            json!({"cellRef": {"name": "c1"}, "queues": [q, queue("q", &[])]}),
        );
        let refused = build_for(&p, &dedicated()).expect_err("refused");
        assert_eq!(refused.reason, reasons::INVALID_QUEUES);
        assert!(
            refused.message.contains("listed twice")
                && refused.message.contains("equal teams")
                && refused.message.contains("skillWindow"),
            "{}",
            refused.message
        );
    }
}
