//! One planning round: modules read the [`World`] and record what should
//! change — creates, edits of spec and metadata, status writes, deletes,
//! events — as [`Op`]s. Edits of one object by several modules merge into
//! one update; an op can require others (an address reservation before the
//! object using it) and is skipped when one of them fails.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use ironnet_alloc::{IpPool, IpPoolBuilder, VniAllocator};

use super::Config;
use super::world::World;
use crate::api::apinet::ClaimRef;
use crate::api::events::{Event, EventSeries, ObjectReference};
use crate::meta::{ObjectMeta, OwnerReference};
use crate::object::{KindInfo, Resource};
use crate::registry::{DynObject, ObjectError};
use crate::store::ObjectKey;

/// Index of an op in its round.
pub type OpId = usize;

/// What an op does.
#[derive(Debug, Clone)]
pub enum OpKind {
    /// Create the object.
    Create(DynObject),
    /// Replace spec and metadata (optimistic: the version read).
    Update(DynObject),
    /// Replace the status (the controller owns it: no version check).
    UpdateStatus(DynObject),
    /// Delete the object (of that kind).
    Delete(ObjectKey, KindInfo),
}

/// One write of a round.
#[derive(Debug, Clone)]
pub struct Op {
    /// The write.
    pub kind: OpKind,
    /// Ops that must have succeeded first.
    pub requires: Vec<OpId>,
}

impl Op {
    /// The object it writes.
    pub fn key(&self) -> ObjectKey {
        match &self.kind {
            OpKind::Create(o) | OpKind::Update(o) | OpKind::UpdateStatus(o) => ObjectKey::of(o),
            OpKind::Delete(k, _) => k.clone(),
        }
    }
}

type Finish = fn(&dyn Any, &dyn Any) -> Option<Result<DynObject, ObjectError>>;

struct Edit {
    current: Box<dyn Any + Send>,
    original: Box<dyn Any + Send>,
    finish: Finish,
    requires: Vec<OpId>,
}

fn finish<T: Resource>(
    current: &dyn Any,
    original: &dyn Any,
) -> Option<Result<DynObject, ObjectError>> {
    let cur = current.downcast_ref::<T>()?;
    let orig = original.downcast_ref::<Arc<T>>()?;
    (cur != &**orig).then(|| DynObject::from_typed(cur))
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Progress worth telling.
    Normal,
    /// Something keeps an object from being Available.
    Warning,
}

struct Note {
    regarding: ObjectReference,
    namespace: String,
    ty: EventType,
    reason: &'static str,
    note: String,
}

/// The address pools of a round, rebuilt from the reservations in the
/// world (so they never drift from the store).
#[derive(Debug, Clone)]
pub struct Pools {
    /// Public IPv4.
    pub v4: Option<IpPool>,
    /// Public IPv6.
    pub v6: Option<IpPool>,
    /// Network IDs.
    pub vni: VniAllocator,
}

impl Pools {
    /// Pools over the configured prefixes with the world's reservations
    /// taken (reservations outside the pools are left alone).
    pub fn build(cfg: &Config, world: &World) -> Pools {
        let family_pool = |v4: bool| -> Option<IpPool> {
            let nets: Vec<IpNet> = cfg
                .public_prefixes
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .copied()
                .collect();
            if nets.is_empty() {
                return None;
            }
            let mut b = IpPoolBuilder::new().prefixes(nets.iter().copied());
            for n in &nets {
                // The network and broadcast addresses of an IPv4 prefix
                // are no one's address.
                if let IpNet::V4(v) = n
                    && v.prefix_len() < 31
                {
                    b = b
                        .reserve_addr(IpAddr::V4(v.network()))
                        .reserve_addr(IpAddr::V4(v.broadcast()));
                }
            }
            let mut pool = b.build().ok()?;
            for a in world.ip_addresses.iter() {
                if let Some(ip) = a.spec.ip
                    && pool.contains(ip)
                {
                    let _ = pool.claim(ip);
                }
            }
            Some(pool)
        };
        let mut vni = VniAllocator::new(cfg.vni_range);
        for id in world.network_ids.iter() {
            if let Ok(v) = id.metadata.name.parse::<u32>()
                && cfg.vni_range.contains(v)
            {
                let _ = vni.claim(v);
            }
        }
        Pools {
            v4: family_pool(true),
            v6: family_pool(false),
            vni,
        }
    }

    /// The pool of `ip`'s family.
    pub fn for_addr(&mut self, v4: bool) -> Option<&mut IpPool> {
        if v4 {
            self.v4.as_mut()
        } else {
            self.v6.as_mut()
        }
    }
}

/// The key of a typed object.
pub fn key_of<T: Resource>(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(&T::INFO, &meta.namespace, &meta.name)
}

/// An owner reference to `meta` of kind `T` (controller when `controller`).
pub fn owner_ref<T: Resource>(meta: &ObjectMeta, controller: bool) -> OwnerReference {
    OwnerReference {
        api_version: T::INFO.api_version(),
        kind: T::INFO.kind.to_owned(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: controller.then_some(true),
        block_owner_deletion: None,
    }
}

/// A claim reference to `meta` of kind `T`.
pub fn claim_ref<T: Resource>(meta: &ObjectMeta) -> ClaimRef {
    ClaimRef {
        group: T::INFO.group.to_owned(),
        resource: T::INFO.plural.to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
    }
}

/// Whether `meta` names an owner with `uid` as its controller.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.controller().is_some_and(|o| o.uid == uid)
}

/// A planning round.
pub struct Plan<'w> {
    /// What the controller knows.
    pub world: &'w World,
    /// Its configuration.
    pub cfg: &'w Config,
    /// Address and VNI pools, with this round's allocations taken.
    pub pools: Pools,
    ops: Vec<Op>,
    edits: BTreeMap<ObjectKey, Edit>,
    created: BTreeSet<ObjectKey>,
    notes: Vec<Note>,
    /// Objects the planner could not express (a bug or a name too long):
    /// logged, counted, never panicked on.
    pub invalid: Vec<String>,
}

impl<'w> Plan<'w> {
    /// An empty round over `world`.
    pub fn new(world: &'w World, cfg: &'w Config) -> Self {
        Plan {
            world,
            cfg,
            pools: Pools::build(cfg, world),
            ops: Vec::new(),
            edits: BTreeMap::new(),
            created: BTreeSet::new(),
            notes: Vec::new(),
            invalid: Vec::new(),
        }
    }

    fn push(&mut self, kind: OpKind, requires: Vec<OpId>) -> OpId {
        self.ops.push(Op { kind, requires });
        self.ops.len() - 1
    }

    /// Plans the creation of `obj`; `None` if it could not be expressed.
    pub fn create<T: Resource>(&mut self, obj: &T, requires: Vec<OpId>) -> Option<OpId> {
        match DynObject::from_typed(obj) {
            Ok(d) => {
                self.created.insert(ObjectKey::of(&d));
                Some(self.push(OpKind::Create(d), requires))
            }
            Err(e) => {
                self.invalid
                    .push(format!("create {} {}: {e}", T::INFO.kind, obj.meta().name));
                None
            }
        }
    }

    /// Whether this round creates an object of `T` named so.
    pub fn creates<T: Resource>(&self, namespace: &str, name: &str) -> bool {
        self.created
            .contains(&ObjectKey::new(&T::INFO, namespace, name))
    }

    /// Plans the deletion of `meta`'s object.
    pub fn delete<T: Resource>(&mut self, meta: &ObjectMeta) {
        self.push(OpKind::Delete(key_of::<T>(meta), T::INFO), Vec::new());
    }

    /// The working copy of `current` (spec and metadata), shared by every
    /// module of the round; written as one update if it ends up changed.
    pub fn edit<T: Resource>(&mut self, current: &Arc<T>) -> &mut T {
        let key = key_of::<T>(current.meta());
        let edit = self.edits.entry(key).or_insert_with(|| Edit {
            current: Box::new((**current).clone()),
            original: Box::new(Arc::clone(current)),
            finish: finish::<T>,
            requires: Vec::new(),
        });
        if !edit.current.is::<T>() {
            edit.current = Box::new((**current).clone());
        }
        match edit.current.downcast_mut::<T>() {
            Some(t) => t,
            None => unreachable!("replaced above with a T"),
        }
    }

    /// Makes the update of `current` wait for `op`.
    pub fn edit_requires<T: Resource>(&mut self, current: &Arc<T>, op: OpId) {
        self.edit(current);
        if let Some(e) = self.edits.get_mut(&key_of::<T>(current.meta())) {
            e.requires.push(op);
        }
    }

    /// `current` as this round has edited it so far.
    pub fn planned<'a, T: Resource>(&'a self, current: &'a T) -> &'a T {
        self.edits
            .get(&key_of::<T>(current.meta()))
            .and_then(|e| e.current.downcast_ref::<T>())
            .unwrap_or(current)
    }

    /// Writes `current`'s status as `change` leaves it, if that differs.
    pub fn status<T: Resource>(&mut self, current: &T, change: impl FnOnce(&mut T)) {
        let mut new = current.clone();
        change(&mut new);
        if &new == current {
            return;
        }
        new.meta_mut().resource_version.clear();
        match DynObject::from_typed(&new) {
            Ok(d) => {
                self.push(OpKind::UpdateStatus(d), Vec::new());
            }
            Err(e) => self.invalid.push(format!(
                "status of {} {}: {e}",
                T::INFO.kind,
                current.meta().name
            )),
        }
    }

    /// Tells about `obj` (once per reason; the note is updated when it
    /// changes). Objects not yet created get no events.
    pub fn event<T: Resource>(
        &mut self,
        obj: &T,
        ty: EventType,
        reason: &'static str,
        note: impl Into<String>,
    ) {
        let meta = obj.meta();
        if meta.uid.is_empty() {
            return;
        }
        self.notes.push(Note {
            regarding: ObjectReference {
                api_version: T::INFO.api_version(),
                kind: T::INFO.kind.to_owned(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
            },
            namespace: if T::INFO.namespaced {
                meta.namespace.clone()
            } else {
                self.cfg.namespace.clone()
            },
            ty,
            reason,
            note: note.into(),
        });
    }

    /// A warning about `obj`.
    pub fn warn<T: Resource>(&mut self, obj: &T, reason: &'static str, note: impl Into<String>) {
        self.event(obj, EventType::Warning, reason, note);
    }

    /// The ops of the round, edits and events included.
    pub fn finish(mut self) -> (Vec<Op>, Vec<String>) {
        let edits = std::mem::take(&mut self.edits);
        for (_, e) in edits {
            match (e.finish)(&*e.current, &*e.original) {
                Some(Ok(d)) => {
                    self.push(OpKind::Update(d), e.requires);
                }
                Some(Err(err)) => self.invalid.push(format!("update: {err}")),
                None => {}
            }
        }
        let notes = std::mem::take(&mut self.notes);
        let now = crate::time::now_rfc3339();
        for n in notes {
            self.write_event(n, &now);
        }
        (self.ops, self.invalid)
    }

    fn write_event(&mut self, n: Note, now: &str) {
        let name = format!("{}.{}", n.regarding.name, n.reason.to_ascii_lowercase());
        let ty = match n.ty {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        match self.world.events.get(&n.namespace, &name) {
            Some(old) if old.note == n.note && old.regarding.uid == n.regarding.uid => {}
            Some(old) => {
                let mut ev = (**old).clone();
                let count = ev.series.as_ref().map_or(1, |s| s.count) + 1;
                ev.note = n.note;
                ev.ty = ty.to_owned();
                ev.regarding = n.regarding;
                ev.series = Some(EventSeries {
                    count,
                    last_observed_time: now.to_owned(),
                });
                ev.metadata.resource_version.clear();
                match DynObject::from_typed(&ev) {
                    Ok(d) => {
                        self.push(OpKind::Update(d), Vec::new());
                    }
                    Err(e) => self.invalid.push(format!("event {name}: {e}")),
                }
            }
            None => {
                let info: KindInfo = Event::INFO;
                let mut meta = ObjectMeta {
                    name,
                    namespace: n.namespace,
                    ..ObjectMeta::default()
                };
                // Only namespaced objects in the same namespace own
                // their events (they go with them).
                if n.regarding.namespace == meta.namespace {
                    meta.owner_references.push(OwnerReference {
                        api_version: n.regarding.api_version.clone(),
                        kind: n.regarding.kind.clone(),
                        name: n.regarding.name.clone(),
                        uid: n.regarding.uid.clone(),
                        controller: None,
                        block_owner_deletion: None,
                    });
                }
                let ev = Event {
                    api_version: info.api_version(),
                    kind: info.kind.to_owned(),
                    metadata: meta,
                    regarding: n.regarding,
                    ty: ty.to_owned(),
                    reason: n.reason.to_owned(),
                    note: n.note,
                    reporting_controller: self.cfg.reporter.clone(),
                    event_time: now.to_owned(),
                    series: None,
                };
                self.create(&ev, Vec::new());
            }
        }
    }
}
