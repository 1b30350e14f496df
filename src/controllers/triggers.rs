//! What wakes a reconcile: the watch streams the controllers are built on, each filtered to the
//! changes its reconcile acts on.
//!
//! A watch event is sent for every new resourceVersion, status writes included. Unfiltered, a
//! controller's own status write woke another full reconcile of the object it had just
//! reconciled (every child read again, every data store described again), and each status write
//! of a cell woke every service and pool bound to it, although they read nothing of the cell's
//! status. kube-runtime's `predicate_filter` would drop the status writes, but it also drops the
//! final delete event (a deleted object's metadata equals its last update's), which is the one
//! event a service bound to a deleted cell must see: [`changes`] filters updates and passes
//! every deletion.
//!
//! What a service did learn from its cell's status churn, that the cell's connection Secrets had
//! been written, it now learns from the GameCell controller directly ([`ServiceWakeups`]):
//! Secrets are not watched (see `applied`). The other way round, a cell is woken by every change
//! of its workloads, status included, from the workload controllers' own watches once their
//! stores hold the change ([`CellWakeups`]): the cell reads its workloads from those stores.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::channel::mpsc;
use futures::{Stream, StreamExt, future};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::cells_seen::CellsSeen;
use crate::crds::{GameCell, PlayerService};

/// A kind the controllers watch.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A hash of what an object must change for a reconcile of it, or of what it triggers, to be
/// worth running: its identity (a recreated object is new), its spec (`generation`, which the
/// API server also bumps when it marks an object with finalizers for deletion), its deletion,
/// labels, annotations and finalizers. Never its status or its resourceVersion.
#[must_use]
pub fn worth_reconciling<K: Resource>(obj: &K) -> u64 {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    hasher.finish()
}

/// Whether [`changes`] passes deletions on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletions {
    /// Passed on: the trigger of other objects (a service whose cell is gone must say so).
    Pass,
    /// Dropped: a controller's own objects (a deleted object has nothing left to reconcile; a
    /// finalizer's cleanup starts on the update that marks the deletion).
    Drop,
}

/// The objects of a watch whose [`worth_reconciling`] hash changed since the watch last showed
/// them, and (with [`Deletions::Pass`]) every deleted one. A relist shows each object again and
/// passes those that changed while the watch was down; what it does not list is forgotten, so
/// the memory of hashes holds only objects that exist.
pub fn changes<K, S>(
    events: S,
    deletions: Deletions,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    let mut relisted: HashMap<(Option<String>, String), u64> = HashMap::new();
    events.filter_map(move |event| {
        let passed = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Apply(obj)) => {
                let hash = worth_reconciling(&obj);
                let previous = seen.insert(key_of(&obj), hash);
                (previous != Some(hash)).then_some(Ok(obj))
            }
            Ok(watcher::Event::InitApply(obj)) => {
                let key = key_of(&obj);
                let hash = worth_reconciling(&obj);
                let changed = seen.get(&key) != Some(&hash);
                relisted.insert(key, hash);
                changed.then_some(Ok(obj))
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&key_of(&obj));
                (deletions == Deletions::Pass).then_some(Ok(obj))
            }
            Ok(watcher::Event::Init) => {
                relisted.clear();
                None
            }
            Ok(watcher::Event::InitDone) => {
                seen = std::mem::take(&mut relisted);
                None
            }
        };
        future::ready(passed)
    })
}

fn key_of<K: Resource>(obj: &K) -> (Option<String>, String) {
    (obj.meta().namespace.clone(), obj.name_any())
}

/// A controller of `K` woken only by [`changes`] of its own objects (no deletions), with the
/// store of every `K` the watch keeps.
#[must_use]
pub fn controller_of<K: Watched>(api: Api<K>, config: watcher::Config) -> Controller<K> {
    controller_tapped(api, config, |_| {})
}

/// [`controller_of`], calling `tap` with every event of the watch (status writes included) once
/// the store holds it: what wakes the GameCell controller, which reads the workloads from this
/// store ([`CellWakeups`]).
#[must_use]
pub fn controller_tapped<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    mut tap: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> Controller<K> {
    let (reader, writer) = reflector::store();
    // No reconcile reads managedFields, and at 1,000 cells they were a large part of the
    // operator's memory: every cell, service and pool is held in a store with them, and their
    // entries (one per field manager, each with its whole field set) often outweigh the spec.
    let events = watcher(api, config)
        .default_backoff()
        .modify(slim_for_store)
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                tap(event);
            }
        });
    Controller::for_stream(changes(events, Deletions::Drop), reader)
}

/// What a controller's store keeps of an object: all of it but its managedFields.
pub fn slim_for_store<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// The objects an event is about (none for the markers of a relist).
pub fn objects_of<K>(event: &watcher::Event<K>) -> Option<&K> {
    match event {
        watcher::Event::Apply(obj)
        | watcher::Event::InitApply(obj)
        | watcher::Event::Delete(obj) => Some(obj),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Wakes the GameCell a workload names whenever the workload changes (its status included: the
/// cell's status aggregates its workloads'), or is deleted (a deleted cell waits for its
/// workloads to be gone).
///
/// The wake-up is sent from the workload controller's own watch, after its store took the
/// change, and the cell reads its workloads from that same store. A watch of its own (as
/// before) raced that store: a cell woken by its watch could still read the older workload
/// from the store, count it not ready, and nothing woke it again until the resync (the idle
/// status writes the benchmark showed). Unbounded: the GameCell controller's queue takes every
/// wake-up at once and merges those of one cell.
#[derive(Clone)]
pub struct CellWakeups {
    sender: mpsc::UnboundedSender<ObjectRef<GameCell>>,
}

impl CellWakeups {
    /// The sending half, and the stream the GameCell controller reconciles on.
    pub fn new() -> (
        Self,
        impl Stream<Item = ObjectRef<GameCell>> + Send + 'static,
    ) {
        let (sender, receiver) = mpsc::unbounded();
        (Self { sender }, receiver)
    }

    /// Asks for a reconcile of the cell named `cell`.
    pub fn wake(&self, cell: &str) {
        // Fails only once the GameCell controller is gone (shutdown).
        let _ = self.sender.unbounded_send(ObjectRef::new(cell));
    }
}

/// A metadata-only watch of every `K` in the cluster, every change of which is a reconcile
/// trigger (a Deployment's rollout is in its status; it must wake its owner), with the watcher's
/// default backoff. `Api<PartialObjectMeta<K>>` makes metadata-only requests.
pub fn metadata_touched<K: Watched>(
    client: Client,
    config: watcher::Config,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static {
    watcher(Api::<PartialObjectMeta<K>>::all(client), config)
        .default_backoff()
        .touched_objects()
}

/// A metadata-only watch of every GameCell, passing only its [`changes`] and deletions (how the
/// services and pools follow the cells they bind to), each event first noted in `seen` (which
/// cells a workload controller may reuse without a read: `cells_seen`).
pub fn cell_changes_noted(
    client: Client,
    config: watcher::Config,
    seen: CellsSeen,
) -> impl Stream<Item = Result<PartialObjectMeta<GameCell>, watcher::Error>> + Send + 'static {
    changes(
        watcher(Api::<PartialObjectMeta<GameCell>>::all(client), config)
            .default_backoff()
            .inspect(move |event| seen.observe(event)),
        Deletions::Pass,
    )
}

/// How many wake-ups may wait for the PlayerService controller. A full queue drops the new one:
/// the service still looks again at its provisioning poll while a Secret it binds is missing.
const WAKEUP_QUEUE: usize = 1024;

/// Wakes PlayerServices when the GameCell controller wrote a connection Secret they may bind,
/// the one event of a cell a service needs that the cell's metadata does not show.
#[derive(Clone)]
pub struct ServiceWakeups {
    sender: mpsc::Sender<ObjectRef<PlayerService>>,
}

impl ServiceWakeups {
    /// The sending half, and the stream the PlayerService controller reconciles on.
    pub fn new() -> (
        Self,
        impl Stream<Item = ObjectRef<PlayerService>> + Send + 'static,
    ) {
        let (sender, receiver) = mpsc::channel(WAKEUP_QUEUE);
        (Self { sender }, receiver)
    }

    /// Asks for a reconcile of every service in `services` that lives in `namespace`.
    pub fn wake_in(&self, namespace: &str, services: &[PlayerService]) {
        let mut sender = self.sender.clone();
        for service in services
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace))
        {
            if sender.try_send(ObjectRef::from_obj(service)).is_err() {
                tracing::debug!(service = %service.name_any(), "wake-up queue full; the service polls instead");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn object(name: &str, generation: i64, resource_version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ns".to_owned()),
                uid: Some(format!("uid-{name}")),
                generation: Some(generation),
                resource_version: Some(resource_version.to_owned()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn passed(
        events: Vec<watcher::Event<ConfigMap>>,
        deletions: Deletions,
    ) -> Vec<(String, String)> {
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        block_on(changes(stream, deletions).collect::<Vec<_>>())
            .into_iter()
            .map(|r| {
                let o = r.expect("no error was sent");
                (o.name_any(), o.resource_version().unwrap_or_default())
            })
            .collect()
    }

    fn names(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn status_only_updates_are_dropped_and_spec_changes_pass() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let events = vec![
            Init,
            InitApply(object("a", 1, "1")),
            InitDone,
            // A status write: new resourceVersion, same generation.
            Apply(object("a", 1, "2")),
            // A spec change.
            Apply(object("a", 2, "3")),
            Apply(object("b", 1, "4")),
            Apply(object("b", 1, "5")),
        ];
        assert_eq!(
            passed(events, Deletions::Drop),
            names(&[("a", "1"), ("a", "3"), ("b", "4")])
        );
    }

    #[test]
    fn metadata_that_a_reconcile_acts_on_passes() {
        use watcher::Event::Apply;
        let mut deleting = object("a", 2, "2");
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let mut finalized = deleting.clone();
        finalized.metadata.resource_version = Some("3".into());
        finalized.metadata.finalizers = Some(vec!["gamecell.dev/cleanup".into()]);
        let mut labelled = finalized.clone();
        labelled.metadata.resource_version = Some("4".into());
        labelled.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
        let mut recreated = object("a", 1, "5");
        recreated.metadata.uid = Some("another".into());
        let events = vec![
            Apply(object("a", 1, "1")),
            Apply(deleting),
            Apply(finalized),
            Apply(labelled),
            Apply(recreated),
        ];
        assert_eq!(
            passed(events, Deletions::Drop),
            names(&[("a", "1"), ("a", "2"), ("a", "3"), ("a", "4"), ("a", "5")])
        );
    }

    #[test]
    fn deletions_pass_only_when_asked_and_are_forgotten() {
        use watcher::Event::{Apply, Delete};
        let events = || {
            vec![
                Apply(object("a", 1, "1")),
                Delete(object("a", 1, "2")),
                // The same name again, after the deletion: new.
                Apply(object("a", 1, "3")),
            ]
        };
        assert_eq!(
            passed(events(), Deletions::Pass),
            names(&[("a", "1"), ("a", "2"), ("a", "3")])
        );
        assert_eq!(
            passed(events(), Deletions::Drop),
            names(&[("a", "1"), ("a", "3")])
        );
    }

    #[test]
    fn a_relist_passes_what_changed_while_the_watch_was_down_and_forgets_the_rest() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let events = vec![
            Init,
            InitApply(object("a", 1, "1")),
            InitApply(object("b", 1, "2")),
            InitDone,
            // The watch expired (410); meanwhile a's spec changed and b was deleted.
            Init,
            InitApply(object("a", 2, "5")),
            InitDone,
            // b again, as created anew: passes, since the relist forgot it.
            Apply(object("b", 1, "6")),
        ];
        assert_eq!(
            passed(events, Deletions::Drop),
            names(&[("a", "1"), ("b", "2"), ("a", "5"), ("b", "6")])
        );
    }

    #[test]
    fn a_store_keeps_everything_but_managed_fields() {
        let mut obj = object("a", 3, "7");
        obj.metadata.managed_fields = Some(vec![Default::default()]);
        obj.metadata.labels = Some([("team".to_owned(), "blue".to_owned())].into());
        obj.data = Some([("k".to_owned(), "v".to_owned())].into());
        let hash = worth_reconciling(&obj);
        let mut slim = obj.clone();
        slim_for_store(&mut slim);
        assert_eq!(slim.metadata.managed_fields, None);
        obj.metadata.managed_fields = None;
        assert_eq!(slim, obj, "nothing else is dropped");
        assert_eq!(worth_reconciling(&slim), hash);
    }

    #[test]
    fn errors_pass_through() {
        let stream = futures::stream::iter(vec![Err::<watcher::Event<ConfigMap>, _>(
            watcher::Error::NoResourceVersion,
        )]);
        let out = block_on(changes(stream, Deletions::Drop).collect::<Vec<_>>());
        assert!(matches!(
            out.as_slice(),
            [Err(watcher::Error::NoResourceVersion)]
        ));
    }

    #[test]
    fn a_tapped_event_names_its_object_and_cells_are_woken_by_name() {
        assert_eq!(
            objects_of(&watcher::Event::Delete(object("a", 1, "1"))).map(ResourceExt::name_any),
            Some("a".to_owned())
        );
        assert!(objects_of::<ConfigMap>(&watcher::Event::InitDone).is_none());
        let (wakeups, receiver) = CellWakeups::new();
        wakeups.wake("c1");
        wakeups.wake("c2");
        drop(wakeups);
        let woken: Vec<String> = block_on(receiver.collect::<Vec<_>>())
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(woken, vec!["c1", "c2"]);
    }

    #[test]
    fn wakeups_name_the_services_of_the_namespace() {
        let (wakeups, receiver) = ServiceWakeups::new();
        let service = |ns: &str, name: &str| {
            let mut s = PlayerService::new(
                name,
                serde_json::from_value(serde_json::json!({"cellRef": {"name": "c"}, "image": "i"}))
                    .expect("a valid spec"),
            );
            s.metadata.namespace = Some(ns.to_owned());
            s
        };
        wakeups.wake_in(
            "t1",
            &[service("t1", "a"), service("t2", "b"), service("t1", "c")],
        );
        drop(wakeups);
        let woken: Vec<String> = block_on(receiver.collect::<Vec<_>>())
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        assert_eq!(woken, vec!["t1/a", "t1/c"]);
    }
}
