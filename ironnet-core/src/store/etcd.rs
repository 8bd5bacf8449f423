//! The etcd store: several processes (controller replicas) share one
//! store through an etcd cluster.
//!
//! Every process keeps a mirror [`Engine`] and writes through it: an
//! operation runs on the mirror, then commits as one etcd transaction that
//! holds only if nobody else wrote since the mirror last caught up (the
//! `version` key's mod revision is unchanged). The transaction stores the
//! changed objects, the new version and a log entry with the operation's
//! events; other processes apply those entries to their mirrors from an
//! etcd watch, so resource versions and watch events are the same
//! everywhere. A transaction that loses the race is rolled back on the
//! mirror, which catches up and runs the operation again.
//!
//! Keys under the prefix `P`: `P/objects/<group>/<plural>/<ns>/<name>`,
//! `P/version`, `P/log/<first version, 20 digits>`. The log keeps the last
//! [`LOG_KEEP`] entries; a mirror further behind reloads (its watchers
//! expire and list again). Each store also compacts etcd's history every
//! [`COMPACT_EVERY`], as kube-apiserver does.
//!
//! One operation writes every object it changes in one transaction: an
//! owner garbage collection of more than about 120 objects needs etcd's
//! `--max-txn-ops` (128 by default) raised.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use super::{Engine, EventType, ObjectKey, Selection, Store, StoreError, Watch, WatchEvent};
use crate::etcd::{self, EtcdClient, EtcdError, pb};
use crate::registry::DynObject;

/// Log entries kept in etcd for mirrors that fell behind.
pub const LOG_KEEP: u64 = 10_000;
/// How often a store compacts etcd's history, to the revision it saw one
/// period earlier (kube-apiserver's default interval).
pub const COMPACT_EVERY: Duration = Duration::from_secs(300);
/// Tries of one operation against concurrent writers before giving up.
const ATTEMPTS: usize = 32;
/// Versions at or beyond this in etcd are taken as corrupt (they could
/// overflow).
const MAX_VERSION: u64 = 1 << 62;

impl From<EtcdError> for StoreError {
    fn from(e: EtcdError) -> Self {
        StoreError::backend(e)
    }
}

/// A store in etcd, shared by every process that opens the same prefix.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: EtcdClient,
    keys: Keys,
    mirror: Mutex<Mirror>,
    /// The follower and the compactor.
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

#[derive(Debug)]
struct Mirror {
    engine: Engine,
    /// The etcd mod revision of the `version` key the mirror is at.
    version_mod: i64,
}

#[derive(Debug, Clone)]
struct Keys {
    objects: String,
    version: String,
    log: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/');
        Keys {
            objects: format!("{p}/objects/"),
            version: format!("{p}/version"),
            log: format!("{p}/log/"),
        }
    }

    fn object(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.objects, key.encode())
    }

    fn log_entry(&self, version: u64) -> String {
        format!("{}{version:020}", self.log)
    }
}

/// One event as a log entry holds it.
#[derive(Debug, Serialize, Deserialize)]
struct LoggedEvent {
    #[serde(rename = "type")]
    ty: String,
    rv: u64,
    object: Value,
}

fn encode_events(events: &[WatchEvent]) -> Result<Vec<u8>, StoreError> {
    let logged: Vec<LoggedEvent> = events
        .iter()
        .map(|e| LoggedEvent {
            ty: e.ty.as_str().to_owned(),
            rv: e.resource_version,
            object: e.object.value.clone(),
        })
        .collect();
    serde_json::to_vec(&logged).map_err(StoreError::backend)
}

fn decode_events(bytes: &[u8]) -> Result<Vec<WatchEvent>, StoreError> {
    let logged: Vec<LoggedEvent> = serde_json::from_slice(bytes).map_err(StoreError::backend)?;
    logged
        .into_iter()
        .map(|l| {
            let ty = EventType::parse(&l.ty)
                .ok_or_else(|| StoreError::backend(format!("log entry: event type {:?}", l.ty)))?;
            Ok(WatchEvent {
                ty,
                object: DynObject::from_value(l.object, "")?,
                resource_version: l.rv,
            })
        })
        .collect()
}

fn parse_version(kv: Option<&pb::KeyValue>) -> Result<(u64, i64), StoreError> {
    match kv {
        None => Ok((0, 0)),
        Some(kv) => {
            let v = std::str::from_utf8(&kv.value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|v| *v < MAX_VERSION)
                .ok_or_else(|| StoreError::backend("version key is not a number in range"))?;
            Ok((v, kv.mod_revision))
        }
    }
}

impl EtcdStore {
    /// Opens the store under `prefix` (e.g. `/ironnet`) on the etcd cluster
    /// at `endpoints`, and follows other writers from then on.
    pub async fn open(endpoints: &[String], prefix: &str) -> Result<Self, StoreError> {
        let client = EtcdClient::connect(endpoints)?;
        let keys = Keys::new(prefix);
        let mut mirror = Mirror {
            engine: Engine::new(super::uid_seed()),
            version_mod: 0,
        };
        let revision = reload(&client, &keys, &mut mirror).await?;
        let shared = Arc::new(Shared {
            client,
            keys,
            mirror: Mutex::new(mirror),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let follower = tokio::spawn(follow(Arc::downgrade(&shared), revision + 1));
        let compactor = tokio::spawn(compact(Arc::downgrade(&shared)));
        if let Ok(mut tasks) = shared.tasks.lock() {
            tasks.extend([follower.abort_handle(), compactor.abort_handle()]);
        }
        Ok(EtcdStore { shared })
    }

    /// The client this store uses (for leader election on the same
    /// cluster).
    pub fn client(&self) -> &EtcdClient {
        &self.shared.client
    }

    async fn caught_up(&self) -> Result<MutexGuard<'_, Mirror>, StoreError> {
        let mut m = self.shared.mirror.lock().await;
        m.engine.rollback();
        catch_up(&self.shared.client, &self.shared.keys, &mut m).await?;
        Ok(m)
    }

    async fn run<T>(
        &self,
        op: impl Fn(&mut Engine) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let shared = &self.shared;
        let mut m = shared.mirror.lock().await;
        // An operation whose caller went away mid-transaction left its
        // changes unpublished: undo them (if the transaction committed
        // after all, its log entry brings them back).
        m.engine.rollback();
        let mut fresh = false;
        for _ in 0..ATTEMPTS {
            let before = m.engine.version();
            if before >= MAX_VERSION {
                return Err(StoreError::backend("store version out of range"));
            }
            let result = op(&mut m.engine);
            let changes = m.engine.take_changes();
            if changes.objects.is_empty() {
                // Refused (or a no-op) on what the mirror knows: make sure
                // it knows everything before answering.
                if fresh {
                    return result;
                }
                catch_up(&shared.client, &shared.keys, &mut m).await?;
                fresh = true;
                if m.engine.version() == before {
                    return result;
                }
                continue;
            }
            let mut success = Vec::with_capacity(changes.objects.len() + 3);
            for (key, obj) in &changes.objects {
                let k = shared.keys.object(key);
                match obj {
                    Some(o) => success.push(etcd::put(
                        k.as_bytes(),
                        serde_json::to_vec(&o.value).map_err(StoreError::backend)?,
                        0,
                    )),
                    None => success.push(etcd::delete(k.as_bytes(), &[])),
                }
            }
            success.push(etcd::put(
                shared.keys.version.as_bytes(),
                changes.version.to_string().into_bytes(),
                0,
            ));
            success.push(etcd::put(
                shared.keys.log_entry(before + 1).as_bytes(),
                encode_events(&changes.events)?,
                0,
            ));
            if changes.version > LOG_KEEP {
                // Trim only what this write pushes out of the window (the
                // writes before trimmed the rest): a range from the log's
                // start would walk every deleted entry etcd still indexes,
                // making each write cost the store's whole history.
                success.push(etcd::delete(
                    shared
                        .keys
                        .log_entry(before.saturating_sub(LOG_KEEP))
                        .as_bytes(),
                    shared.keys.log_entry(changes.version - LOG_KEEP).as_bytes(),
                ));
            }
            let txn = pb::TxnRequest {
                compare: vec![etcd::mod_revision_is(
                    shared.keys.version.as_bytes(),
                    m.version_mod,
                )],
                success,
                failure: Vec::new(),
            };
            match shared.client.txn(txn).await {
                Ok((true, revision)) => {
                    m.version_mod = revision;
                    m.engine.publish(changes.events);
                    return result;
                }
                Ok((false, _)) => {
                    // Someone else wrote first: catch up and run again.
                    m.engine.rollback();
                    catch_up(&shared.client, &shared.keys, &mut m).await?;
                    fresh = true;
                }
                Err(e) => {
                    // Not acknowledged. If it committed after all, the
                    // follower brings it in as someone else's write.
                    m.engine.rollback();
                    return Err(e.into());
                }
            }
        }
        Err(StoreError::backend(format!(
            "gave up after {ATTEMPTS} tries against concurrent writers"
        )))
    }
}

/// Loads every object and the version at one etcd revision into `m`
/// (watchers expire); returns that revision.
async fn reload(client: &EtcdClient, keys: &Keys, m: &mut Mirror) -> Result<i64, StoreError> {
    let (kvs, revision) = client
        .range(
            keys.objects.as_bytes(),
            &etcd::prefix_end(keys.objects.as_bytes()),
            0,
        )
        .await?;
    let (version_kv, _) = client.get(keys.version.as_bytes(), revision).await?;
    let (version, version_mod) = parse_version(version_kv.as_ref())?;
    let mut objects = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let value: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            StoreError::backend(format!(
                "{}: {e}",
                String::from_utf8_lossy(&kv.key).trim_start_matches(&keys.objects)
            ))
        })?;
        objects.push(DynObject::from_value(value, "")?);
    }
    m.engine.reset(objects, version);
    m.version_mod = version_mod;
    Ok(revision)
}

/// Applies one log entry (committed at `mod_revision`) to the mirror.
/// Entries the mirror has are skipped; a gap means a reload.
async fn apply_entry(
    client: &EtcdClient,
    keys: &Keys,
    m: &mut Mirror,
    value: &[u8],
    mod_revision: i64,
) -> Result<(), StoreError> {
    let events = decode_events(value)?;
    let Some(last) = events.last().map(|e| e.resource_version) else {
        return Ok(());
    };
    if last >= MAX_VERSION {
        return Err(StoreError::backend("log entry version out of range"));
    }
    if last <= m.engine.version() {
        return Ok(());
    }
    match m.engine.apply_committed(events) {
        Ok(()) => {
            m.version_mod = mod_revision;
            Ok(())
        }
        Err(StoreError::Expired { .. }) => reload(client, keys, m).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Brings the mirror up to what etcd holds now.
async fn catch_up(client: &EtcdClient, keys: &Keys, m: &mut Mirror) -> Result<(), StoreError> {
    let from = keys.log_entry(m.engine.version() + 1);
    let (entries, _) = client
        .range(from.as_bytes(), &etcd::prefix_end(keys.log.as_bytes()), 0)
        .await?;
    for kv in entries {
        apply_entry(client, keys, m, &kv.value, kv.mod_revision).await?;
    }
    Ok(())
}

/// Compacts etcd every [`COMPACT_EVERY`] to the revision the mirror was at
/// one period before, so history (and etcd's database) does not grow
/// without bound while every mirror that keeps up stays ahead of it.
/// Several replicas doing the same is harmless: compacting to a revision
/// already compacted is refused. Ends when the store is dropped.
async fn compact(shared: Weak<Shared>) {
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(COMPACT_EVERY).await;
        let Some(s) = shared.upgrade() else { return };
        let now = s.mirror.lock().await.version_mod;
        if let Some(revision) = previous.filter(|r| *r > 0)
            && let Err(e) = s.client.compact(revision).await
        {
            tracing::debug!(error = %e, revision, "etcd store: compaction refused");
        }
        previous = Some(now);
    }
}

/// Follows other writers: applies each new log entry to the mirror as etcd
/// reports it. Ends when the store is dropped.
async fn follow(shared: Weak<Shared>, mut from: i64) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let client = s.client.clone();
        let keys = s.keys.clone();
        drop(s);
        let mut stream = match client
            .watch(
                keys.log.as_bytes(),
                &etcd::prefix_end(keys.log.as_bytes()),
                from,
            )
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "etcd store: watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let resp = match stream.next().await {
                Ok(Some(resp)) => resp,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "etcd store: watch broke; resuming");
                    break;
                }
            };
            let Some(s) = shared.upgrade() else { return };
            let mut m = s.mirror.lock().await;
            m.engine.rollback();
            if resp.canceled || resp.compact_revision > 0 {
                // etcd compacted past us: start over from a fresh load.
                match reload(&client, &keys, &mut m).await {
                    Ok(revision) => from = revision + 1,
                    Err(e) => tracing::warn!(error = %e, "etcd store: reload failed"),
                }
                break;
            }
            for ev in &resp.events {
                if ev.r#type != pb::event::EventType::Put as i32 {
                    continue;
                }
                let Some(kv) = &ev.kv else { continue };
                if let Err(e) =
                    apply_entry(&client, &keys, &mut m, &kv.value, kv.mod_revision).await
                {
                    tracing::warn!(error = %e, "etcd store: log entry not applied");
                }
                from = from.max(kv.mod_revision + 1);
            }
            if let Some(h) = &resp.header {
                from = from.max(h.revision + 1);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Store for EtcdStore {
    async fn get(&self, key: &ObjectKey) -> Result<DynObject, StoreError> {
        self.caught_up().await?.engine.get(key)
    }

    async fn list(&self, sel: &Selection) -> Result<(Vec<DynObject>, u64), StoreError> {
        Ok(self.caught_up().await?.engine.list(sel))
    }

    async fn create(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.create(obj.clone())).await
    }

    async fn update(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.update(obj.clone(), false)).await
    }

    async fn update_status(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        self.run(|e| e.update(obj.clone(), true)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<DynObject>, StoreError> {
        self.run(|e| e.delete(key)).await
    }

    async fn watch(&self, sel: Selection, from: u64) -> Result<Watch, StoreError> {
        self.caught_up().await?.engine.watch(sel, from)
    }
}
