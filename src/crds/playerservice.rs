//! `PlayerService`: a microservice of a cell's backend (namespaced, bound to a GameCell).

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Autoscaling, CellRef};

/// Desired state of a PlayerService.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gamecell.dev",
    version = "v1alpha1",
    kind = "PlayerService",
    plural = "playerservices",
    shortname = "ps",
    category = "gamecell",
    namespaced,
    status = "PlayerServiceStatus",
    derive = "PartialEq",
    cel,
    doc = "A PlayerService is one microservice of a cell's game backend (players, sessions, saves, inventory...). The operator deploys it into the cell under the cell's tier policy and binds it to the cell's data stores.",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn(name = "Cell", type_ = "string", json_path = ".spec.cellRef.name", description = "GameCell the service belongs to"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the service is available at its current generation"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the service is or is not ready", priority = 1),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas", description = "Desired replicas after policy"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.readyReplicas", description = "Ready replicas"),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40").message("metadata.name of a PlayerService must be at most 40 characters: it names the Deployment, Service and autoscaler"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))").message("set either spec.replicas or spec.autoscaling, not both"))]
pub struct PlayerServiceSpec {
    /// The GameCell this service belongs to. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cellRef is immutable: create the service again to move it to another cell"))]
    pub cell_ref: CellRef,

    /// Container image, for example `123456789012.dkr.ecr.eu-west-1.amazonaws.com/players:1.4.2`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.contains(' ')").message("spec.image must not contain spaces"))]
    pub image: String,

    /// Fixed number of replicas. Leave unset and set `autoscaling` to scale on CPU; with neither,
    /// one replica runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Scale between a floor and a ceiling on CPU utilisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// CPU and memory requests and limits of each replica. On Shared cells, unset values come
    /// from the tenant's LimitRange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Port the service listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Plain environment variables. Credentials never go here: bind data stores instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// Which of the cell's data stores the service uses; their connection Secrets are mounted as
    /// environment variables by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_stores: Option<DataStoreBindings>,

    /// How the service authenticates players.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Players one replica can hold; with the replica ceiling, this is checked against the cell's
    /// capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub players_per_replica: Option<i32>,
}

fn default_port() -> i32 {
    8080
}

/// A plain environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')").message("env[].name must be a C identifier: letters, digits and '_', not starting with a digit"))]
    pub name: String,
    /// Variable value.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// The data stores of the cell a service binds to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataStoreBindings {
    /// Bind the cell's SQL store (on Shared cells: the tenant's own database and credentials).
    #[serde(default)]
    pub sql: bool,
    /// Bind the cell's cache (on Shared cells: with the tenant's key prefix).
    #[serde(default)]
    pub cache: bool,
    /// Names of the cell's document tables to bind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 40)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub document_tables: Vec<String>,
    /// Names of the cell's buckets to bind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(min = 3, max = 20)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub buckets: Vec<String>,
}

/// Player authentication settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Issuer of the player tokens the service accepts (an `https://` URL).
    #[schemars(length(min = 9, max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("auth.issuer must be an https:// URL"))]
    pub issuer: String,
    /// Audience the tokens must carry.
    #[schemars(length(min = 1, max = 256))]
    pub audience: String,
}

/// Observed state of a PlayerService.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlayerServiceStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and the policy conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Replicas wanted after the tier's policy was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Replicas ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Replicas running the current pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
}
