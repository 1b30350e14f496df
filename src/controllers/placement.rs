//! Where a cell's Kubernetes objects (namespaces, quotas, policies, Secrets, workloads) are
//! applied. Today every cell runs in the operator's own cluster; a cell in another cluster (an
//! EKS cluster per region, a customer's cluster) becomes another arm here, not a rewrite of the
//! controllers, which only ever ask this for the client of a cell.

use kube::Client;

use crate::crds::GameCell;

/// Resolves the cluster a cell's objects live in.
#[derive(Clone)]
pub struct Placement {
    local: Client,
}

impl Placement {
    /// Every cell in the operator's own cluster.
    #[must_use]
    pub fn local(client: Client) -> Self {
        Self { local: client }
    }

    /// The client of the cluster `cell` runs in.
    #[must_use]
    pub fn client_for(&self, _cell: &GameCell) -> Client {
        self.local.clone()
    }
}
