//! `MatchmakingPool`: the matchmaking queues of a cell (namespaced, bound to a GameCell).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Autoscaling, CellRef};

/// Desired state of a MatchmakingPool.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gamecell.dev",
    version = "v1alpha1",
    kind = "MatchmakingPool",
    plural = "matchmakingpools",
    shortname = "mmp",
    category = "gamecell",
    namespaced,
    status = "MatchmakingPoolStatus",
    derive = "PartialEq",
    cel,
    doc = "A MatchmakingPool is the set of matchmaking queues of a game in a cell. The operator runs a matchmaker for it (the built-in one, or the image given) configured from the queues.",
    printcolumn(name = "Cell", type_ = "string", json_path = ".spec.cellRef.name", description = "GameCell the pool belongs to"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the matchmaker is available at the current generation"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Queues", type_ = "integer", json_path = ".status.queues", description = "Queues configured"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.readyReplicas", description = "Ready matchmaker replicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40").message("metadata.name of a MatchmakingPool must be at most 40 characters: it names the matchmaker's Deployment and Service"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))").message("set either spec.replicas or spec.autoscaling, not both"))]
pub struct MatchmakingPoolSpec {
    /// The GameCell this pool belongs to. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cellRef is immutable: create the pool again to move it to another cell"))]
    pub cell_ref: CellRef,

    /// Matchmaker image. Unset runs the operator's built-in matchmaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.contains(' ')").message("spec.image must not contain spaces"))]
    pub image: Option<String>,

    /// The queues players join. Names are unique in the pool.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub queues: Vec<QueueSpec>,

    /// Fixed number of matchmaker replicas (default 1 when autoscaling is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,

    /// Scale the matchmaker on CPU utilisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

/// One matchmaking queue.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.playersPerMatch % self.teams == 0").message("queues[].playersPerMatch must be a multiple of queues[].teams so teams are equal"),
    validation = Rule::new("self.playersPerMatch >= self.teams").message("queues[].playersPerMatch must be at least queues[].teams"),
)]
pub struct QueueSpec {
    /// Queue name, unique in the pool, for example `ranked-5v5`.
    #[schemars(length(min = 1, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("queues[].name must be lowercase letters, digits and '-'"))]
    pub name: String,
    /// Players in one match.
    #[schemars(range(min = 2, max = 200))]
    pub players_per_match: i32,
    /// Teams in one match (1 for free-for-all).
    #[serde(default = "default_teams")]
    #[schemars(range(min = 1, max = 100))]
    pub teams: i32,
    /// How far apart, in rating points, the players of a match may be.
    pub skill_window: SkillWindow,
    /// Highest latency, in milliseconds, a player may have to the match's region.
    #[serde(default = "default_max_latency")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_latency_ms: i32,
    /// Regions matches may be hosted in, for example `eu-west-1`. Dedicated cells run one
    /// matchmaker per region listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 32)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub regions: Vec<String>,
    /// Seconds a ticket may wait before it leaves the queue with reason `Timeout`.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: i32,
    /// Fill running matches that lost players from this queue.
    #[serde(default)]
    pub backfill: bool,
}

fn default_teams() -> i32 {
    2
}
fn default_max_latency() -> i32 {
    100
}
fn default_timeout() -> i32 {
    120
}

/// A skill window that starts narrow and widens the longer a ticket waits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.initial <= self.maximum").message("skillWindow.initial must not exceed skillWindow.maximum"))]
pub struct SkillWindow {
    /// Width of the window, in rating points, when a ticket arrives.
    #[schemars(range(min = 0, max = 10000))]
    pub initial: i32,
    /// Rating points the window widens by per second of waiting.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub widening_per_second: i32,
    /// Widest the window gets.
    #[schemars(range(min = 0, max = 10000))]
    pub maximum: i32,
}

/// Observed state of a MatchmakingPool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MatchmakingPoolStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Queues configured in the matchmaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<i32>,
    /// Matchmaker replicas wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Matchmaker replicas ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}
