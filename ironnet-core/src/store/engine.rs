//! The store's semantics without I/O: objects, versions, the event log and
//! watchers. Backends wrap an [`Engine`] and persist what
//! [`take_changes`](Engine::take_changes) reports before acknowledging.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::{ObjectKey, Selection, StoreError, Watch, Watcher};
use crate::meta::ObjectMeta;
use crate::registry::DynObject;
use crate::time::now_rfc3339;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed (including a deletion request held by finalizers).
    Modified,
    /// Gone.
    Deleted,
}

impl EventType {
    /// The name on the wire (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    /// The type named `name` on the wire.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub ty: EventType,
    /// The object after the change (its last state for `Deleted`).
    pub object: DynObject,
    /// The store version of the change.
    pub resource_version: u64,
}

/// Events remembered for watches that start in the past.
pub const DEFAULT_LOG: usize = 10_000;

/// The store's state and rules.
#[derive(Debug)]
pub struct Engine {
    objects: BTreeMap<ObjectKey, DynObject>,
    version: u64,
    log: VecDeque<WatchEvent>,
    log_capacity: usize,
    watchers: Vec<Watcher>,
    changed: Vec<ObjectKey>,
    pending: Vec<WatchEvent>,
    /// Pre-images of what the current operation changed, and the version
    /// before it: what [`rollback`](Engine::rollback) restores.
    undo: Vec<(ObjectKey, Option<DynObject>)>,
    undo_version: Option<u64>,
    uid_seed: u64,
}

/// Keys to persist after an operation: each with its object now (`None`:
/// deleted), and the store version.
#[derive(Debug, Default)]
pub struct Changes {
    /// Changed objects.
    pub objects: Vec<(ObjectKey, Option<DynObject>)>,
    /// The version after the operation.
    pub version: u64,
    /// Events to [`publish`](Engine::publish) once persisted.
    pub events: Vec<WatchEvent>,
}

fn without(value: &Value, fields: &[&str]) -> Value {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        for f in fields {
            o.remove(*f);
        }
    }
    v
}

impl Engine {
    /// An empty store; `uid_seed` makes uids unique across restarts.
    pub fn new(uid_seed: u64) -> Self {
        Self::with_log(uid_seed, DEFAULT_LOG)
    }

    /// An empty store remembering `log` events for watches.
    pub fn with_log(uid_seed: u64, log: usize) -> Self {
        Engine {
            objects: BTreeMap::new(),
            version: 0,
            log: VecDeque::new(),
            log_capacity: log.max(1),
            watchers: Vec::new(),
            changed: Vec::new(),
            pending: Vec::new(),
            undo: Vec::new(),
            undo_version: None,
            uid_seed,
        }
    }

    /// Loads persisted objects and version (no events).
    pub fn restore(&mut self, objects: Vec<DynObject>, version: u64) {
        for obj in objects {
            self.objects.insert(ObjectKey::of(&obj), obj);
        }
        self.version = version;
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// What changed since the last call, to persist; then either
    /// [`publish`](Engine::publish) (persisted) or
    /// [`rollback`](Engine::rollback) (not).
    pub fn take_changes(&mut self) -> Changes {
        let mut keys = std::mem::take(&mut self.changed);
        keys.sort();
        keys.dedup();
        Changes {
            objects: keys
                .into_iter()
                .map(|k| {
                    let v = self.objects.get(&k).cloned();
                    (k, v)
                })
                .collect(),
            version: self.version,
            events: std::mem::take(&mut self.pending),
        }
    }

    /// Undoes everything since the last [`publish`](Engine::publish)
    /// (the backend could not persist it): objects, version and pending
    /// events are as before, watchers saw nothing.
    pub fn rollback(&mut self) {
        for (key, pre) in self.undo.drain(..).rev() {
            match pre {
                Some(o) => self.objects.insert(key, o),
                None => self.objects.remove(&key),
            };
        }
        if let Some(v) = self.undo_version.take() {
            self.version = v;
        }
        self.changed.clear();
        self.pending.clear();
    }

    /// Applies changes another writer committed (a replica sharing the
    /// backend), in order, and delivers them to watchers. Events at or
    /// below the current version are already here and skipped; an event
    /// beyond the next version is a gap and refused (reload instead).
    pub fn apply_committed(&mut self, events: Vec<WatchEvent>) -> Result<(), StoreError> {
        // Check the whole batch first: a gap anywhere refuses all of it.
        let mut expect = self.version;
        for ev in &events {
            if ev.resource_version <= expect {
                continue;
            }
            if ev.resource_version > expect + 1 {
                return Err(StoreError::Expired {
                    requested: expect,
                    oldest: ev.resource_version,
                });
            }
            expect = ev.resource_version;
        }
        let mut fresh = Vec::new();
        for ev in events {
            if ev.resource_version <= self.version {
                continue;
            }
            let key = ObjectKey::of(&ev.object);
            match ev.ty {
                EventType::Deleted => self.objects.remove(&key),
                _ => self.objects.insert(key, ev.object.clone()),
            };
            self.version = ev.resource_version;
            fresh.push(ev);
        }
        self.publish(fresh);
        Ok(())
    }

    /// Replaces the whole state with `objects` at `version` (a reload after
    /// falling too far behind a shared backend). Every watcher and the log
    /// are dropped as expired: they list again.
    pub fn reset(&mut self, objects: Vec<DynObject>, version: u64) {
        for w in self.watchers.drain(..) {
            w.expire();
        }
        self.log.clear();
        self.objects.clear();
        self.changed.clear();
        self.pending.clear();
        self.undo.clear();
        self.undo_version = None;
        self.restore(objects, version);
    }

    /// Stores (`Some`) or removes (`None`) `key`, remembering its
    /// pre-image for [`rollback`](Engine::rollback).
    fn put(&mut self, key: ObjectKey, obj: Option<DynObject>) {
        if !self.undo.iter().any(|(k, _)| *k == key) {
            let pre = self.objects.get(&key).cloned();
            self.undo.push((key.clone(), pre));
        }
        match obj {
            Some(o) => self.objects.insert(key.clone(), o),
            None => self.objects.remove(&key),
        };
        self.changed.push(key);
    }

    /// The changes are persisted: they stand, and their events go to
    /// watchers and the log.
    pub fn publish(&mut self, events: Vec<WatchEvent>) {
        self.undo.clear();
        self.undo_version = None;
        for ev in events {
            self.watchers.retain(|w| w.deliver(&ev));
            if self.log.len() == self.log_capacity {
                self.log.pop_front();
            }
            self.log.push_back(ev);
        }
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Result<DynObject, StoreError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    /// Objects in `sel`, by key, and the version.
    pub fn list(&self, sel: &Selection) -> (Vec<DynObject>, u64) {
        let objs = self
            .objects
            .values()
            .filter(|o| sel.matches(o))
            .cloned()
            .collect();
        (objs, self.version)
    }

    fn next_uid(&mut self) -> String {
        let n = self.version.wrapping_add(1) ^ self.uid_seed.rotate_left(17);
        let a = splitmix(self.uid_seed ^ n);
        let b = splitmix(a ^ n.rotate_left(32));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn emit(&mut self, ty: EventType, object: DynObject) {
        self.pending.push(WatchEvent {
            ty,
            object,
            resource_version: self.version,
        });
    }

    fn bump(&mut self, obj: &mut DynObject, meta: &mut ObjectMeta) {
        if self.undo_version.is_none() {
            self.undo_version = Some(self.version);
        }
        self.version += 1;
        meta.resource_version = self.version.to_string();
        obj.set_meta(meta);
    }

    /// Creates `obj`.
    pub fn create(&mut self, mut obj: DynObject) -> Result<DynObject, StoreError> {
        let mut meta = obj.meta();
        if meta.name.is_empty() {
            if meta.generate_name.is_empty() {
                return Err(StoreError::Invalid(crate::registry::ObjectError::Invalid {
                    kind: obj.kind.info.kind.to_owned(),
                    name: String::new(),
                    errors: {
                        let mut e = crate::validation::FieldErrors::default();
                        e.add(
                            &crate::validation::FieldPath::root("metadata").child("name"),
                            "name or generateName is required",
                        );
                        e
                    },
                }));
            }
            let mut n = self.version;
            loop {
                n = splitmix(n ^ self.uid_seed);
                let candidate = format!("{}{}", meta.generate_name, base36(n, 5));
                if !self.objects.contains_key(&ObjectKey::new(
                    &obj.kind.info,
                    &meta.namespace,
                    &candidate,
                )) {
                    meta.name = candidate;
                    break;
                }
            }
        }
        // The name may have just been generated: not in `obj` yet.
        let key = ObjectKey::new(&obj.kind.info, &meta.namespace, &meta.name);
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists(key));
        }
        meta.uid = self.next_uid();
        meta.generation = 1;
        meta.creation_timestamp = Some(now_rfc3339());
        meta.deletion_timestamp = None;
        if obj.kind.info.has_status
            && let Some(o) = obj.value.as_object_mut()
        {
            o.remove("status");
        }
        self.bump(&mut obj, &mut meta);
        self.put(key, Some(obj.clone()));
        self.emit(EventType::Added, obj.clone());
        Ok(obj)
    }

    /// Replaces all but status (`status_only`: only status) of the stored
    /// object, checking resourceVersion and uid if given.
    pub fn update(&mut self, obj: DynObject, status_only: bool) -> Result<DynObject, StoreError> {
        let given = obj.meta();
        let key = ObjectKey::of(&obj);
        let stored = self.get(&key)?;
        let mut meta = stored.meta();
        let conflict = |given: String| StoreError::Conflict {
            key: key.clone(),
            stored: meta.resource_version.parse().unwrap_or(0),
            given,
        };
        if !given.resource_version.is_empty() && given.resource_version != meta.resource_version {
            return Err(conflict(given.resource_version.clone()));
        }
        if !given.uid.is_empty() && given.uid != meta.uid {
            return Err(conflict(format!("uid {}", given.uid)));
        }
        let mut value = if status_only {
            let mut v = stored.value.clone();
            if let Some(o) = v.as_object_mut() {
                match obj.value.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            v
        } else {
            let mut v = obj.value.clone();
            if let Some(o) = v.as_object_mut() {
                match stored.value.get("status") {
                    Some(s) if obj.kind.info.has_status => o.insert("status".into(), s.clone()),
                    _ if obj.kind.info.has_status => o.remove("status"),
                    _ => None,
                };
            }
            meta.labels = given.labels;
            meta.annotations = given.annotations;
            meta.owner_references = given.owner_references;
            meta.finalizers = given.finalizers;
            v
        };
        if !status_only
            && without(&value, &["metadata", "status"])
                != without(&stored.value, &["metadata", "status"])
        {
            meta.generation += 1;
        }
        if let Some(o) = value.as_object_mut()
            && let Ok(m) = serde_json::to_value(&meta)
        {
            o.insert("metadata".into(), m);
        }
        let checked = obj.kind.check(value)?;
        if !status_only && let Some(field) = obj.kind.immutable_violation(&stored.value, &checked) {
            return Err(StoreError::Immutable { key, field });
        }
        let mut updated = DynObject {
            kind: obj.kind,
            value: checked,
        };
        if updated.value == stored.value {
            return Ok(stored);
        }
        self.bump(&mut updated, &mut meta);
        self.put(key.clone(), Some(updated.clone()));
        self.emit(EventType::Modified, updated.clone());
        if meta.deletion_timestamp.is_some() && meta.finalizers.is_empty() {
            self.remove(&key);
        }
        Ok(updated)
    }

    /// Deletes, honouring finalizers; returns the object if it stays.
    pub fn delete(&mut self, key: &ObjectKey) -> Result<Option<DynObject>, StoreError> {
        let mut obj = self.get(key)?;
        let mut meta = obj.meta();
        if meta.finalizers.is_empty() {
            self.remove(key);
            return Ok(None);
        }
        if meta.deletion_timestamp.is_none() {
            meta.deletion_timestamp = Some(now_rfc3339());
            self.bump(&mut obj, &mut meta);
            self.put(key.clone(), Some(obj.clone()));
            self.emit(EventType::Modified, obj.clone());
        }
        Ok(Some(obj))
    }

    /// Removes an object and collects what it owned.
    fn remove(&mut self, key: &ObjectKey) {
        let Some(mut obj) = self.objects.get(key).cloned() else {
            return;
        };
        let mut meta = obj.meta();
        self.bump(&mut obj, &mut meta);
        self.put(key.clone(), None);
        self.emit(EventType::Deleted, obj);
        let uid = meta.uid;
        let dependents: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, o)| o.meta().owner_references.iter().any(|r| r.uid == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            let Some(mut d) = self.objects.get(&dep).cloned() else {
                continue;
            };
            let mut dmeta = d.meta();
            dmeta.owner_references.retain(|r| r.uid != uid);
            if dmeta.owner_references.is_empty() {
                // Collected like a delete: finalizers still hold it.
                let _ = self.delete(&dep);
            } else {
                self.bump(&mut d, &mut dmeta);
                self.put(dep, Some(d.clone()));
                self.emit(EventType::Modified, d);
            }
        }
    }

    /// Registers a watch of `sel` from version `from` (0: now).
    pub fn watch(&mut self, sel: Selection, from: u64) -> Result<Watch, StoreError> {
        let from = if from == 0 { self.version } else { from };
        let oldest = self
            .log
            .front()
            .map_or(self.version, |e| e.resource_version - 1);
        if from < oldest || from > self.version {
            return Err(StoreError::Expired {
                requested: from,
                oldest,
            });
        }
        let (watcher, watch) = Watcher::new(sel, from);
        for ev in self.log.iter().filter(|e| e.resource_version > from) {
            if !watcher.deliver(ev) {
                return Err(StoreError::Expired {
                    requested: from,
                    oldest: self.version,
                });
            }
        }
        self.watchers.push(watcher);
        Ok(watch)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char::from(DIGITS[(n % DIGITS.len() as u64) as usize]));
        n /= DIGITS.len() as u64;
    }
    s
}
