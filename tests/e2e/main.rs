//! End-to-end tests against the local control plane (`make e2e` starts it and sets
//! `KUBECONFIG`). They run one at a time: the operator test removes and reinstalls the CRDs.
//!
//! Without a reachable cluster every test fails with a message saying how to start one; none is
//! skipped.

mod applied;
mod chart;
mod cloud_aws;
mod crds;
mod examples;
mod fault_proxy;
mod faults;
mod gamecell_aws;
mod gamecell_fake;
mod invalid;
mod leader;
mod operator;
mod recovery;
mod support;
mod tenant_sql;
mod workloads;
