//! The object store: Kubernetes semantics (resource versions, optimistic
//! concurrency, status written apart from the rest, finalizers, owner
//! garbage collection, watch from a resource version) over pluggable
//! backends.
//!
//! - [`engine`]: the semantics, sans-IO, shared by the backends;
//! - [`memory`]: in memory;
//! - [`embedded`]: one file (redb), every acknowledged write durable;
//! - `etcd` (feature `etcd`): shared by every process on one etcd cluster.

pub mod embedded;
pub mod engine;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::meta::LabelSelector;
use crate::object::KindInfo;
use crate::registry::{DynObject, ObjectError};

pub use engine::{Engine, EventType, WatchEvent};

/// What identifies an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `group/plural`.
    pub resource: String,
    /// Namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` in `namespace` of `kind`.
    pub fn new(kind: &KindInfo, namespace: &str, name: &str) -> Self {
        ObjectKey {
            resource: format!("{}/{}", kind.group, kind.plural),
            namespace: if kind.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    /// The key of `obj`.
    pub fn of(obj: &DynObject) -> Self {
        let meta = obj.meta();
        ObjectKey::new(&obj.kind.info, &meta.namespace, &meta.name)
    }

    /// One string (`group/plural/namespace/name`), the embedded store's key.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.resource, self.namespace, self.name)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.resource, self.name)
        } else {
            write!(f, "{} {}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// A store operation that failed; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// Create of an existing object.
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    /// The resource version (or uid) given is not the stored one.
    #[error("{key}: conflict: the object was changed (stored version {stored}, given {given})")]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// Stored version.
        stored: u64,
        /// Version in the request.
        given: String,
    },
    /// The object is not valid for its kind.
    #[error(transparent)]
    Invalid(#[from] ObjectError),
    /// A field that may not change changed.
    #[error("{}: {} may not change once set", .key, crate::registry::pointer_to_path(.field))]
    Immutable {
        /// The object.
        key: ObjectKey,
        /// The field, as a JSON pointer (`/spec/networkRef`).
        field: &'static str,
    },
    /// A watch from a version older than the store still remembers, or a
    /// watcher that fell too far behind: list again.
    #[error("resource version {requested} is too old (oldest {oldest}); list again")]
    Expired {
        /// Asked for.
        requested: u64,
        /// Oldest version a watch can start from.
        oldest: u64,
    },
    /// The backend failed (disk, network); nothing was acknowledged.
    #[error("backend: {0}")]
    Backend(String),
    /// An API server refused the request for a reason not mapped above
    /// (invalid fields, authentication).
    #[error("{message} ({code} {reason})")]
    Remote {
        /// HTTP status.
        code: u16,
        /// The Status reason.
        reason: String,
        /// The Status message.
        message: String,
    },
}

impl StoreError {
    /// A backend failure described by `e`.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// A seed for uids that differs between processes and starts.
pub(crate) fn uid_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        ^ u64::from(std::process::id()).rotate_left(40)
}

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A kind, or every kind.
    pub kind: Option<KindInfo>,
    /// A namespace, or every namespace.
    pub namespace: Option<String>,
    /// A label selector.
    pub labels: Option<LabelSelector>,
}

impl Selection {
    /// Every object of `kind`.
    pub fn kind(kind: KindInfo) -> Self {
        Selection {
            kind: Some(kind),
            ..Selection::default()
        }
    }

    /// Restricted to `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Restricted by `labels`.
    pub fn with_labels(mut self, labels: LabelSelector) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Whether `obj` is covered.
    pub fn matches(&self, obj: &DynObject) -> bool {
        if self.kind.is_some_and(|k| k != obj.kind.info) {
            return false;
        }
        let meta = obj.meta();
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta.namespace == ns)
            && self.labels.as_ref().is_none_or(|l| l.matches(&meta.labels))
    }
}

/// A stream of changes from a watch.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<WatchEvent>,
    lagged: Arc<AtomicBool>,
    from: u64,
}

impl Watch {
    /// The next change; `Err(Expired)` if this watcher fell too far behind
    /// (list again and watch from the list's version), `Ok(None)` when the
    /// store is gone.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, StoreError> {
        match self.rx.recv().await {
            Some(ev) => {
                self.from = ev.resource_version;
                Ok(Some(ev))
            }
            None if self.lagged.load(Ordering::Acquire) => Err(StoreError::Expired {
                requested: self.from,
                oldest: self.from + 1,
            }),
            None => Ok(None),
        }
    }
}

/// The sending side of a [`Watch`].
#[derive(Debug)]
pub(crate) struct Watcher {
    tx: mpsc::Sender<WatchEvent>,
    lagged: Arc<AtomicBool>,
    selection: Selection,
}

/// Events a watcher may have queued before it counts as too far behind.
pub const WATCH_QUEUE: usize = 4096;

impl Watcher {
    pub(crate) fn new(selection: Selection, from: u64) -> (Watcher, Watch) {
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        (
            Watcher {
                tx,
                lagged: Arc::clone(&lagged),
                selection,
            },
            Watch { rx, lagged, from },
        )
    }

    /// Ends this watch as expired (the store reloaded): the reader lists
    /// again.
    pub(crate) fn expire(self) {
        self.lagged.store(true, Ordering::Release);
    }

    /// Completes when the reading side is gone.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Delivers `ev` if selected; false if the watcher is gone or lagged
    /// (drop it).
    pub(crate) fn deliver(&self, ev: &WatchEvent) -> bool {
        if !self.selection.matches(&ev.object) {
            return !self.tx.is_closed();
        }
        match self.tx.try_send(ev.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A store. Every method either commits entirely (and, for durable
/// backends, durably) or changes nothing.
pub trait Store: Clone + Send + Sync + 'static {
    /// One object.
    fn get(&self, key: &ObjectKey) -> impl Future<Output = Result<DynObject, StoreError>> + Send;

    /// Objects in `sel`, sorted by key, and the store's version at that
    /// moment (to watch from).
    fn list(
        &self,
        sel: &Selection,
    ) -> impl Future<Output = Result<(Vec<DynObject>, u64), StoreError>> + Send;

    /// Creates `obj` (uid, version, timestamps set here; status dropped).
    fn create(&self, obj: DynObject) -> impl Future<Output = Result<DynObject, StoreError>> + Send;

    /// Replaces everything but status; a non-empty resourceVersion must be
    /// the stored one.
    fn update(&self, obj: DynObject) -> impl Future<Output = Result<DynObject, StoreError>> + Send;

    /// Replaces the status only (same concurrency rule).
    fn update_status(
        &self,
        obj: DynObject,
    ) -> impl Future<Output = Result<DynObject, StoreError>> + Send;

    /// Deletes: with finalizers the object only gets a deletionTimestamp
    /// (and is returned); without, it goes, and so do objects whose owners
    /// are then all gone.
    fn delete(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<DynObject>, StoreError>> + Send;

    /// Changes in `sel` after version `from` (0: from now on).
    fn watch(
        &self,
        sel: Selection,
        from: u64,
    ) -> impl Future<Output = Result<Watch, StoreError>> + Send;
}
