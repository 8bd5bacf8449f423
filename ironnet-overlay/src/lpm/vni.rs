//! Per-VNI routing tables: one [`Lpm`] per virtual network.
//!
//! The builder rebuilds only the VNIs that changed since the last build and
//! shares the others with the previous snapshot, so programming a route in
//! one network costs nothing for the other networks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::{Lpm, LpmBuilder};
use crate::route::Vni;

/// Editable per-VNI tables.
#[derive(Debug, Clone)]
pub struct VniTablesBuilder<T> {
    tables: BTreeMap<Vni, LpmBuilder<T>>,
    built: FxHashMap<Vni, Arc<Lpm<T>>>,
    dirty: BTreeSet<Vni>,
}

impl<T> Default for VniTablesBuilder<T> {
    fn default() -> Self {
        VniTablesBuilder {
            tables: BTreeMap::new(),
            built: FxHashMap::default(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<T: Clone> VniTablesBuilder<T> {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value of `prefix` in `vni`; returns the previous value.
    pub fn insert(&mut self, vni: Vni, prefix: IpNet, value: T) -> Option<T> {
        self.dirty.insert(vni);
        self.tables.entry(vni).or_default().insert(prefix, value)
    }

    /// Removes `prefix` from `vni`; returns its value. An emptied VNI goes.
    pub fn remove(&mut self, vni: Vni, prefix: IpNet) -> Option<T> {
        let table = self.tables.get_mut(&vni)?;
        let old = table.remove(prefix)?;
        if table.is_empty() {
            self.tables.remove(&vni);
        }
        self.dirty.insert(vni);
        Some(old)
    }

    /// Removes a whole VNI and returns how many routes it had.
    pub fn remove_vni(&mut self, vni: Vni) -> usize {
        self.dirty.insert(vni);
        self.tables.remove(&vni).map_or(0, |t| t.len())
    }

    /// The table of `vni`, if it has routes.
    pub fn table(&self, vni: Vni) -> Option<&LpmBuilder<T>> {
        self.tables.get(&vni)
    }

    /// The VNIs that have routes.
    pub fn vnis(&self) -> impl Iterator<Item = Vni> + '_ {
        self.tables.keys().copied()
    }

    /// A snapshot of every table, rebuilding only the VNIs changed since
    /// the previous call.
    pub fn build(&mut self) -> VniTables<T> {
        for vni in std::mem::take(&mut self.dirty) {
            match self.tables.get(&vni) {
                Some(table) => {
                    self.built.insert(vni, Arc::new(table.build()));
                }
                None => {
                    self.built.remove(&vni);
                }
            }
        }
        VniTables {
            tables: self.built.clone(),
        }
    }
}

/// An immutable snapshot of per-VNI tables.
#[derive(Debug, Clone)]
pub struct VniTables<T> {
    tables: FxHashMap<Vni, Arc<Lpm<T>>>,
}

impl<T> Default for VniTables<T> {
    fn default() -> Self {
        VniTables {
            tables: FxHashMap::default(),
        }
    }
}

impl<T> VniTables<T> {
    /// The table of `vni`.
    pub fn table(&self, vni: Vni) -> Option<&Lpm<T>> {
        self.tables.get(&vni).map(|t| &**t)
    }

    /// The longest prefix in `vni` containing `addr`, with its value.
    pub fn lookup(&self, vni: Vni, addr: IpAddr) -> Option<(IpNet, &T)> {
        self.table(vni)?.lookup(addr)
    }

    /// Number of VNIs with routes.
    pub fn vni_count(&self) -> usize {
        self.tables.len()
    }
}
