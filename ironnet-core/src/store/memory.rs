//! The in-memory store: an [`Engine`] behind a lock.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Engine, ObjectKey, Selection, Store, StoreError, Watch};
use crate::registry::DynObject;

/// A store that lives as long as the process.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    engine: Arc<Mutex<Engine>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_log(super::engine::DEFAULT_LOG)
    }

    /// An empty store remembering `log` events for watches from the past.
    pub fn with_log(log: usize) -> Self {
        MemoryStore {
            engine: Arc::new(Mutex::new(Engine::with_log(super::uid_seed(), log))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock cannot leave a half-applied
        // operation behind (each is applied in full before events go out).
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut e = self.lock();
        let r = f(&mut e);
        let changes = e.take_changes();
        e.publish(changes.events);
        r
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &ObjectKey) -> Result<DynObject, StoreError> {
        self.lock().get(key)
    }

    async fn list(&self, sel: &Selection) -> Result<(Vec<DynObject>, u64), StoreError> {
        Ok(self.lock().list(sel))
    }

    async fn create(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.create(obj))
    }

    async fn update(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.update(obj, false))
    }

    async fn update_status(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.update(obj, true))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<DynObject>, StoreError> {
        self.run(|e| e.delete(key))
    }

    async fn watch(&self, sel: Selection, from: u64) -> Result<Watch, StoreError> {
        self.lock().watch(sel, from)
    }
}
