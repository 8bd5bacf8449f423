//! The controller's view of the store: every kind it reads, typed, kept
//! current from watches and from its own writes (write-through), so a plan
//! round reads plain maps and never the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{apinet, compute, events, networking};
use crate::object::{KindInfo, Resource};
use crate::registry::{DynObject, ObjectError};
use crate::store::{EventType, Selection, Store, WatchEvent};

/// A change for a [`World`]: every object of a kind (after a list), or one
/// event.
#[derive(Debug, Clone)]
pub enum Change {
    /// The kind's objects now.
    Listed(KindInfo, Vec<DynObject>),
    /// One change.
    Event(WatchEvent),
}

/// Follows `kinds` of `store` into `tx`, one reflector per kind: a list,
/// then the watch, and a list again whenever the watch expires. The tasks
/// end with the store or the receiver.
pub fn follow<S: Store>(
    store: &S,
    kinds: &[KindInfo],
    tx: mpsc::UnboundedSender<Change>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for kind in kinds {
        let (store, kind, tx) = (store.clone(), *kind, tx.clone());
        tasks.spawn(async move {
            let listed = tx.clone();
            crate::runtime::controller::reflect(
                store,
                Selection::kind(kind),
                &crate::runtime::Stats::default(),
                |objs| {
                    let _ = listed.send(Change::Listed(kind, objs));
                },
                |ev| {
                    let _ = tx.send(Change::Event(ev));
                },
            )
            .await;
        });
    }
    tasks
}

/// Objects of one kind by `(namespace, name)`.
#[derive(Debug, Clone)]
pub struct Objects<T> {
    map: BTreeMap<(String, String), Arc<T>>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects {
            map: BTreeMap::new(),
        }
    }
}

fn version<T: Resource>(obj: &T) -> u64 {
    obj.meta().resource_version.parse().unwrap_or(0)
}

impl<T: Resource> Objects<T> {
    /// The object `name` in `namespace` (empty for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Arc<T>> {
        self.map.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Every object, by namespace and name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        self.map.values()
    }

    /// Objects in `namespace`.
    pub fn in_namespace<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Arc<T>> {
        self.map
            .range((namespace.to_owned(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, o)| o)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keeps `obj` unless a newer version is already here.
    fn put(&mut self, obj: T) {
        let key = (obj.meta().namespace.clone(), obj.meta().name.clone());
        if self
            .map
            .get(&key)
            .is_some_and(|o| version(&**o) > version(&obj))
        {
            return;
        }
        self.map.insert(key, Arc::new(obj));
    }

    /// Drops the object unless a newer version is here.
    fn remove(&mut self, namespace: &str, name: &str, at: u64) {
        let key = (namespace.to_owned(), name.to_owned());
        if self.map.get(&key).is_some_and(|o| version(&**o) <= at) {
            self.map.remove(&key);
        }
    }
}

macro_rules! world {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// Every kind the controller reads.
        #[derive(Debug, Clone, Default)]
        pub struct World {
            $($(#[$doc])* pub $field: Objects<$ty>,)*
        }

        impl World {
            /// The kinds a world holds (what the controller watches).
            pub const KINDS: &'static [KindInfo] = &[$(<$ty as Resource>::INFO,)*];

            /// Takes in a created or changed object (older versions lose).
            pub fn apply(&mut self, obj: &DynObject) -> Result<(), ObjectError> {
                let info = obj.kind.info;
                $(if info == <$ty as Resource>::INFO {
                    self.$field.put(obj.to_typed::<$ty>()?);
                    return Ok(());
                })*
                Ok(())
            }

            /// Forgets a deleted object (`at`: the deletion's version; a
            /// newer object of that name stays).
            pub fn remove(&mut self, kind: KindInfo, namespace: &str, name: &str, at: u64) {
                $(if kind == <$ty as Resource>::INFO {
                    self.$field.remove(namespace, name, at);
                    return;
                })*
            }

            /// Takes in a change from [`follow`].
            pub fn take(&mut self, change: Change) -> Result<(), ObjectError> {
                match change {
                    Change::Listed(kind, objs) => self.replace(kind, &objs),
                    Change::Event(ev) if ev.ty == EventType::Deleted => {
                        let m = ev.object.meta();
                        self.remove(ev.object.kind.info, &m.namespace, &m.name, ev.resource_version);
                        Ok(())
                    }
                    Change::Event(ev) => self.apply(&ev.object),
                }
            }

            /// Replaces every object of `kind` (after a list).
            pub fn replace(&mut self, kind: KindInfo, objs: &[DynObject]) -> Result<(), ObjectError> {
                $(if kind == <$ty as Resource>::INFO {
                    self.$field = Objects::default();
                })*
                for o in objs {
                    self.apply(o)?;
                }
                Ok(())
            }
        }
    };
}

world! {
    /// User networks.
    networks: networking::Network,
    /// User network interfaces.
    nics: networking::NetworkInterface,
    /// User virtual IPs.
    vips: networking::VirtualIP,
    /// User NAT gateways.
    natgws: networking::NATGateway,
    /// User load balancers.
    lbs: networking::LoadBalancer,
    /// User load-balancer routings.
    lb_routings: networking::LoadBalancerRouting,
    /// User network policies.
    policies: networking::NetworkPolicy,
    /// Machines (their network interfaces).
    machines: compute::Machine,
    /// Internal networks.
    a_networks: apinet::Network,
    /// VNI reservations.
    network_ids: apinet::NetworkID,
    /// Public IP handles.
    ips: apinet::IP,
    /// Public address reservations.
    ip_addresses: apinet::IPAddress,
    /// Internal network interfaces.
    a_nics: apinet::NetworkInterface,
    /// Network-function instances.
    instances: apinet::Instance,
    /// Internal load balancers.
    a_lbs: apinet::LoadBalancer,
    /// Internal load-balancer routings.
    a_lb_routings: apinet::LoadBalancerRouting,
    /// Internal NAT gateways.
    a_natgws: apinet::NATGateway,
    /// NAT tables.
    nat_tables: apinet::NATTable,
    /// Nodes (hypervisors).
    nodes: apinet::Node,
    /// Internal network policies.
    a_policies: apinet::NetworkPolicy,
    /// Compiled policy rules.
    rules: apinet::NetworkPolicyRule,
    /// Events.
    events: events::Event,
}
