//! The embedded persistent store: one redb file. Every operation is one
//! write transaction committed (fsync'd) before it is acknowledged, so a
//! crash at any point loses no acknowledged write; watches resume from
//! versions after the restart (older ones get `Expired` and relist).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::engine::Changes;
use super::{Engine, ObjectKey, Selection, Store, StoreError, Watch};
use crate::registry::DynObject;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A store in one file.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    engine: Engine,
    db: Database,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("engine", &self.engine)
            .finish()
    }
}

fn load(db: &Database, seed: u64) -> Result<Engine, StoreError> {
    let mut engine = Engine::new(seed);
    let txn = db.begin_read().map_err(StoreError::backend)?;
    let version = match txn.open_table(META) {
        Ok(t) => t
            .get("version")
            .map_err(StoreError::backend)?
            .map_or(0, |v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(StoreError::backend(e)),
    };
    let mut objects = Vec::new();
    match txn.open_table(OBJECTS) {
        Ok(t) => {
            for row in t.iter().map_err(StoreError::backend)? {
                let (k, v) = row.map_err(StoreError::backend)?;
                let value: serde_json::Value = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::backend(format!("{}: {e}", k.value())))?;
                objects.push(DynObject::from_value(value, "default")?);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(StoreError::backend(e)),
    }
    engine.restore(objects, version);
    Ok(engine)
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(StoreError::backend)?;
        let engine = load(&db, super::uid_seed())?;
        Ok(EmbeddedStore {
            inner: Arc::new(Mutex::new(Inner { engine, db })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(db: &Database, changes: &Changes) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(StoreError::backend)?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(StoreError::backend)?;
            for (key, obj) in &changes.objects {
                let k = key.encode();
                match obj {
                    Some(o) => {
                        let bytes = serde_json::to_vec(&o.value).map_err(StoreError::backend)?;
                        objects
                            .insert(k.as_str(), bytes.as_slice())
                            .map_err(StoreError::backend)?;
                    }
                    None => {
                        objects.remove(k.as_str()).map_err(StoreError::backend)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(StoreError::backend)?;
            meta.insert("version", changes.version)
                .map_err(StoreError::backend)?;
        }
        txn.commit().map_err(StoreError::backend)
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.lock();
        let result = f(&mut inner.engine);
        let changes = inner.engine.take_changes();
        if changes.objects.is_empty() {
            return result;
        }
        match Self::persist(&inner.db, &changes) {
            Ok(()) => {
                inner.engine.publish(changes.events);
                result
            }
            Err(e) => {
                // Nothing reached the file: the operation never happened.
                inner.engine.rollback();
                Err(e)
            }
        }
    }
}

impl Store for EmbeddedStore {
    async fn get(&self, key: &ObjectKey) -> Result<DynObject, StoreError> {
        self.lock().engine.get(key)
    }

    async fn list(&self, sel: &Selection) -> Result<(Vec<DynObject>, u64), StoreError> {
        Ok(self.lock().engine.list(sel))
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
        self.lock().engine.watch(sel, from)
    }
}
