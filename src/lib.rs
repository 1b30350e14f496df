//! gamecell-operator: runs game backends as cells on Kubernetes and AWS.
//!
//! The library holds everything; the binaries (`gamecell-operator`, `crdgen`) only parse their
//! arguments and call in. `crds` is the API, `controllers` the reconcilers, `admin` the health and
//! metrics server, `telemetry` logging and metrics, `crdgen` the CRD YAML rendering.

pub mod admin;
pub mod cell;
pub mod cloud;
pub mod controllers;
pub mod crdgen;
pub mod crds;
pub mod leader;
pub mod matchmaker;
pub mod sqlstore;
pub mod telemetry;
pub mod workload;
