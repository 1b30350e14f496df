//! The workloads of a cell, pure: binding checks, the tier's workload policy and the Kubernetes
//! objects that run PlayerServices and MatchmakingPools. No client, no I/O: the controllers
//! observe, call in here to decide, then apply.
//!
//! - [`binding`]: may this object bind to the cell it names (cell, namespace, stores, image)?
//! - [`policy`]: what the tier changes (resources, quota caps, placement, security context).
//! - [`service`], [`matchmaker`]: the objects of each kind; [`objects`]: the pieces they share.
//! - [`cell_matchmaker`]: the one multi-tenant matchmaker of a Shared cell.
//! - [`rollout`]: whether a Deployment is available at its current generation; [`status`]: the
//!   conditions that follow.
//! - [`summary`]: the cell's view of its workloads, for the GameCell controller.
//! - [`meta`], [`quantity`]: names, labels, owner references, hashes; resource quantities.

pub mod binding;
pub mod cell_matchmaker;
pub mod matchmaker;
pub mod meta;
pub mod objects;
pub mod policy;
pub mod quantity;
pub mod rollout;
pub mod service;
pub mod status;
pub mod summary;
