//! Where a cell's Kubernetes objects (namespaces, quotas, policies, Secrets, workloads) are
//! applied. Today every cell runs in the operator's own cluster; a cell in another cluster (an
//! EKS cluster per region, a customer's cluster) becomes another arm here, not a rewrite of the
//! controllers, which only ever ask this for the client of a cell.

use kube::Client;

use super::apply::Applier;
use crate::crds::GameCell;

/// Resolves the cluster a cell's objects live in.
#[derive(Clone)]
pub struct Placement {
    local: Applier,
}

impl Placement {
    /// Every cell in the operator's own cluster, applied through `local` (whose memo is fed by
    /// watches of that cluster).
    #[must_use]
    pub fn local(local: Applier) -> Self {
        Self { local }
    }

    /// The client of the cluster `cell` runs in.
    #[must_use]
    pub fn client_for(&self, cell: &GameCell) -> Client {
        self.applier_for(cell).client().clone()
    }

    /// What applies `cell`'s objects in the cluster it runs in (a cluster without watches of its
    /// own would get `Applier::without_memo`).
    #[must_use]
    pub fn applier_for(&self, _cell: &GameCell) -> Applier {
        self.local.clone()
    }
}
