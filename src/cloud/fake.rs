//! An in-memory [`CloudProvider`] for reconciler tests, with the behaviours the emulator cannot
//! show: slow provisioning, throttling and 5xx, access denied, lost create responses, resources
//! that someone else owns. It counts every call so tests can assert a quiet steady state.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    CloudError, CloudProvider, DeleteProgress, DesiredResource, ObservedCluster, ObservedResource,
    ResourceKind, STATE_INCOMPLETE, Scope,
};

/// Which call a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `describe`.
    Describe,
    /// `create`.
    Create,
    /// `delete`.
    Delete,
}

#[derive(Clone, Debug)]
struct Resource {
    observed: ObservedResource,
    /// Describes left before it reports ready.
    pending_polls: u32,
    /// Describes left before a deletion completes (`None`: not being deleted).
    deleting_polls: Option<u32>,
}

#[derive(Default)]
struct State {
    resources: BTreeMap<(ResourceKind, String), Resource>,
    clusters: BTreeMap<String, ObservedCluster>,
    faults: VecDeque<(Op, CloudError)>,
    lose_next_create_response: bool,
    interrupt_next_create: bool,
    deny_all: bool,
    refuse_delete_while_creating: bool,
    calls: BTreeMap<&'static str, u64>,
    snapshots: Vec<String>,
}

/// The fake cloud.
#[derive(Default)]
pub struct FakeCloud {
    state: Mutex<State>,
    /// Describes a new resource stays in `creating` (0: ready at once, like the emulator).
    provisioning_polls: u32,
    /// Describes a deletion stays in `deleting`.
    deletion_polls: u32,
    /// Every cluster asked for exists, ACTIVE, in the caller's region (benchmarks).
    clusters_on_demand: bool,
    /// The shared cells' tenant databases, in memory.
    tenant_databases: std::sync::Arc<crate::sqlstore::InMemoryTenantDatabases>,
}

impl FakeCloud {
    /// The in-memory tenant databases of shared cells.
    #[must_use]
    pub fn tenant_databases_state(&self) -> &crate::sqlstore::InMemoryTenantDatabases {
        &self.tenant_databases
    }

    /// A fake where resources are ready at once and deletions complete at once.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A fake where creation takes `creating` describes and deletion `deleting` describes.
    #[must_use]
    pub fn slow(creating: u32, deleting: u32) -> Self {
        Self {
            provisioning_polls: creating,
            deletion_polls: deleting,
            ..Self::default()
        }
    }

    /// A fake for benchmarks of the operator process: resources ready after `creating`
    /// describes, and every EKS cluster a cell names exists, ACTIVE, at a supported version, in
    /// the region asked, so generated cells of every tier can converge without seeding.
    #[must_use]
    pub fn for_benchmarks(creating: u32) -> Self {
        Self {
            provisioning_polls: creating,
            clusters_on_demand: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another test thread poisons the lock; the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next call of `op` fails with `error` (faults queue up in order).
    pub fn fail_next(&self, op: Op, error: CloudError) {
        self.lock().faults.push_back((op, error));
    }

    /// The next create succeeds in the cloud but its response is lost (a crash or a timeout
    /// between "create" and recording it).
    pub fn lose_next_create_response(&self) {
        self.lock().lose_next_create_response = true;
    }

    /// The next create stops half-way (like an Aurora cluster whose instance call failed, or an
    /// operator killed between the two): the resource exists in state
    /// [`STATE_INCOMPLETE`](super::STATE_INCOMPLETE) and the call fails with a 5xx. It stays
    /// incomplete until a `create` finishes it.
    pub fn interrupt_next_create(&self) {
        self.lock().interrupt_next_create = true;
    }

    /// Every call is refused with AccessDenied until turned off.
    pub fn deny_all(&self, deny: bool) {
        self.lock().deny_all = deny;
    }

    /// Puts a resource in the cloud that the operator did not create (for adoption and
    /// foreign-tag tests).
    pub fn insert_existing(
        &self,
        kind: ResourceKind,
        identifier: &str,
        tags: BTreeMap<String, String>,
    ) {
        self.lock().resources.insert(
            (kind, identifier.to_owned()),
            Resource {
                observed: observed(identifier, tags, true),
                pending_polls: 0,
                deleting_polls: None,
            },
        );
    }

    /// Like RDS and ElastiCache: deleting a SQL store or cache that is still creating fails
    /// with `Busy` (`InvalidDBInstanceState`, `InvalidReplicationGroupState`) until it is
    /// available. Each refused call counts as one poll of its provisioning, so time passes.
    pub fn refuse_delete_while_creating(&self, refuse: bool) {
        self.lock().refuse_delete_while_creating = refuse;
    }

    /// Adds an EKS cluster.
    pub fn insert_cluster(&self, cluster: ObservedCluster) {
        self.lock().clusters.insert(cluster.name.clone(), cluster);
    }

    /// Removes a resource behind the operator's back (drift, or the emulator restarting).
    pub fn forget(&self, kind: ResourceKind, identifier: &str) {
        self.lock().resources.remove(&(kind, identifier.to_owned()));
    }

    /// Identifiers of every resource of `kind`.
    #[must_use]
    pub fn identifiers(&self, kind: ResourceKind) -> Vec<String> {
        self.lock()
            .resources
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Number of resources of every kind.
    #[must_use]
    pub fn resource_count(&self) -> usize {
        self.lock().resources.len()
    }

    /// Final snapshots taken.
    #[must_use]
    pub fn snapshots(&self) -> Vec<String> {
        self.lock().snapshots.clone()
    }

    /// Calls made of `op` (`describe`, `create`, `delete`, `describe_cluster`).
    #[must_use]
    pub fn calls(&self, op: &str) -> u64 {
        self.lock().calls.get(op).copied().unwrap_or(0)
    }

    /// Calls that change something in the cloud.
    #[must_use]
    pub fn mutating_calls(&self) -> u64 {
        self.calls("create") + self.calls("delete")
    }

    fn enter(
        &self,
        name: &'static str,
        op: Op,
    ) -> Result<std::sync::MutexGuard<'_, State>, CloudError> {
        let mut state = self.lock();
        *state.calls.entry(name).or_default() += 1;
        if state.deny_all {
            return Err(CloudError::AccessDenied {
                service: "fake",
                message: format!("not authorized to perform {name}"),
            });
        }
        if let Some(pos) = state.faults.iter().position(|(o, _)| *o == op)
            && let Some((_, error)) = state.faults.remove(pos)
        {
            return Err(error);
        }
        Ok(state)
    }
}

fn observed(identifier: &str, tags: BTreeMap<String, String>, ready: bool) -> ObservedResource {
    ObservedResource {
        identifier: identifier.to_owned(),
        state: if ready { "available" } else { "creating" }.to_owned(),
        ready,
        endpoint: Some(format!("{identifier}.fake.local")),
        port: Some(5432),
        tags,
        secret_arn: None,
        encrypted: true,
        publicly_accessible: false,
    }
}

fn state_refuses_delete(kind: ResourceKind, pending_polls: u32, refuse: bool) -> bool {
    refuse && pending_polls > 0 && matches!(kind, ResourceKind::Sql | ResourceKind::Cache)
}

#[async_trait]
impl CloudProvider for FakeCloud {
    fn tenant_databases(&self) -> std::sync::Arc<dyn crate::sqlstore::TenantDatabases> {
        self.tenant_databases.clone()
    }

    async fn describe(
        &self,
        _scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
    ) -> Result<Option<ObservedResource>, CloudError> {
        let mut state = self.enter("describe", Op::Describe)?;
        let key = (kind, identifier.to_owned());
        let Some(resource) = state.resources.get_mut(&key) else {
            return Ok(None);
        };
        if let Some(polls) = resource.deleting_polls {
            if polls == 0 {
                state.resources.remove(&key);
                return Ok(None);
            }
            resource.deleting_polls = Some(polls - 1);
            resource.observed.state = "deleting".into();
            resource.observed.ready = false;
            return Ok(Some(resource.observed.clone()));
        }
        if resource.observed.state == STATE_INCOMPLETE {
            // Nothing finishes it but a create.
        } else if resource.pending_polls > 0 {
            resource.pending_polls -= 1;
        } else {
            resource.observed.state = "available".into();
            resource.observed.ready = true;
        }
        Ok(Some(resource.observed.clone()))
    }

    async fn create(
        &self,
        _scope: &Scope,
        desired: &DesiredResource,
    ) -> Result<ObservedResource, CloudError> {
        let mut state = self.enter("create", Op::Create)?;
        let key = (desired.kind, desired.identifier.clone());
        if let Some(resource) = state.resources.get_mut(&key)
            && resource.observed.state == STATE_INCOMPLETE
        {
            // Finishing an interrupted create: its missing parts are requested now.
            resource.observed.state = "creating".into();
            resource.pending_polls = self.provisioning_polls;
            return Ok(resource.observed.clone());
        }
        if state.resources.contains_key(&key) {
            return Err(CloudError::InvalidRequest {
                service: "fake",
                message: format!(
                    "{} {} already exists",
                    desired.kind.as_str(),
                    desired.identifier
                ),
            });
        }
        let ready = self.provisioning_polls == 0;
        let resource = Resource {
            observed: observed(&desired.identifier, desired.tags.clone(), ready),
            pending_polls: self.provisioning_polls,
            deleting_polls: None,
        };
        let reply = resource.observed.clone();
        state.resources.insert(key.clone(), resource);
        if std::mem::take(&mut state.interrupt_next_create) {
            if let Some(resource) = state.resources.get_mut(&key) {
                resource.observed.state = STATE_INCOMPLETE.into();
                resource.observed.ready = false;
            }
            return Err(CloudError::Unavailable {
                service: "fake",
                message: "create interrupted half-way".into(),
            });
        }
        if std::mem::take(&mut state.lose_next_create_response) {
            return Err(CloudError::Unavailable {
                service: "fake",
                message: "connection reset".into(),
            });
        }
        Ok(reply)
    }

    async fn delete(
        &self,
        _scope: &Scope,
        kind: ResourceKind,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<DeleteProgress, CloudError> {
        let mut state = self.enter("delete", Op::Delete)?;
        let key = (kind, identifier.to_owned());
        let deletion_polls = self.deletion_polls;
        let refuse_while_creating = state.refuse_delete_while_creating;
        let Some(resource) = state.resources.get_mut(&key) else {
            return Ok(DeleteProgress::Gone);
        };
        if resource.deleting_polls.is_some() {
            return Ok(DeleteProgress::InProgress);
        }
        if state_refuses_delete(kind, resource.pending_polls, refuse_while_creating) {
            resource.pending_polls -= 1;
            return Err(CloudError::Busy {
                service: "fake",
                message: format!("{} {identifier} is still creating", kind.as_str()),
            });
        }
        if deletion_polls == 0 {
            state.resources.remove(&key);
            if let Some(snapshot) = final_snapshot {
                state.snapshots.push(snapshot.to_owned());
            }
            return Ok(DeleteProgress::Gone);
        }
        resource.deleting_polls = Some(deletion_polls);
        if let Some(snapshot) = final_snapshot {
            state.snapshots.push(snapshot.to_owned());
        }
        Ok(DeleteProgress::InProgress)
    }

    async fn describe_cluster(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<ObservedCluster>, CloudError> {
        let state = self.enter("describe_cluster", Op::Describe)?;
        if self.clusters_on_demand && !state.clusters.contains_key(name) {
            return Ok(Some(ObservedCluster {
                name: name.to_owned(),
                status: "ACTIVE".into(),
                version: format!("1.{}", crate::cell::policy::SUPPORTED_EKS_MINORS.end()),
                region: scope.region.clone(),
            }));
        }
        Ok(state.clusters.get(name).cloned())
    }
}
