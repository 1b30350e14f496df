//! The `gamecell.dev/v1alpha1` API: spec and status types, schema bounds and CEL rules.
//!
//! Pure data. Nothing here talks to a cluster or a cloud; the controllers read these types and
//! the `crdgen` binary turns them into the CRD YAML under `config/crd/`.

pub mod common;
pub mod gamecell;
pub mod matchmakingpool;
pub mod playerservice;

pub use common::{Autoscaling, CellRef, conditions};
pub use gamecell::{GameCell, GameCellSpec, GameCellStatus};
pub use matchmakingpool::{MatchmakingPool, MatchmakingPoolSpec, MatchmakingPoolStatus};
pub use playerservice::{PlayerService, PlayerServiceSpec, PlayerServiceStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every kind this operator serves.
pub const API_GROUP: &str = "gamecell.dev";
/// The one served and stored version.
pub const API_VERSION: &str = "v1alpha1";

/// Every CRD this operator owns, in the order they are installed.
#[must_use]
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        GameCell::crd(),
        PlayerService::crd(),
        MatchmakingPool::crd(),
    ]
}

#[cfg(test)]
mod examples_tests;
#[cfg(test)]
mod validation_tests;
