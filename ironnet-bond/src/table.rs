//! The route table: VNI → destination → next hop → the set of peers that
//! announce it.
//!
//! A next hop exists as long as one peer announces it. [`RouteTable::add`]
//! and [`RouteTable::remove`] report whether that was the first or last
//! announcer, which is all the reflector needs to decide who must hear
//! about it and all the client needs to fire Add on the first provider and
//! Remove on the last.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use ironnet_overlay::route::{Destination, NextHop, Route, Vni};

/// How the announcer set of one route changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed (a repeated ADD, or a REMOVE of something the peer
    /// did not announce).
    None,
    /// The route gained its first announcer / lost its last one.
    Edge,
    /// The peer joined or left, and others announce the route too.
    Shared,
}

type Hops<P> = BTreeMap<NextHop, BTreeSet<P>>;

/// Routes with their announcers. `P` identifies a peer.
#[derive(Debug, Clone)]
pub struct RouteTable<P> {
    vnis: BTreeMap<Vni, BTreeMap<Destination, Hops<P>>>,
    /// Routes per peer, if indexed (see [`RouteTable::without_peer_index`]).
    by_peer: Option<FxHashMap<P, FxHashSet<Route>>>,
    routes: usize,
}

impl<P> Default for RouteTable<P> {
    fn default() -> Self {
        RouteTable {
            vnis: BTreeMap::new(),
            by_peer: Some(FxHashMap::default()),
            routes: 0,
        }
    }
}

impl<P: Copy + Ord + Hash> RouteTable<P> {
    /// An empty table with a per-peer index, for many peers that come and
    /// go (the server).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table without the per-peer index: cheaper inserts, and
    /// [`announced_by`](Self::announced_by) scans. For a few peers that
    /// rarely go away (a client's servers).
    pub fn without_peer_index() -> Self {
        RouteTable {
            by_peer: None,
            ..Self::default()
        }
    }

    /// Records that `peer` announces `route`.
    pub fn add(&mut self, route: Route, peer: P) -> Change {
        let set = self
            .vnis
            .entry(route.vni)
            .or_default()
            .entry(route.destination)
            .or_default()
            .entry(route.next_hop)
            .or_default();
        if !set.insert(peer) {
            return Change::None;
        }
        if let Some(index) = &mut self.by_peer {
            index.entry(peer).or_default().insert(route);
        }
        if set.len() == 1 {
            self.routes += 1;
            Change::Edge
        } else {
            Change::Shared
        }
    }

    /// Records that `peer` no longer announces `route`.
    pub fn remove(&mut self, route: &Route, peer: P) -> Change {
        let Some(dests) = self.vnis.get_mut(&route.vni) else {
            return Change::None;
        };
        let Some(hops) = dests.get_mut(&route.destination) else {
            return Change::None;
        };
        let Some(set) = hops.get_mut(&route.next_hop) else {
            return Change::None;
        };
        if !set.remove(&peer) {
            return Change::None;
        }
        if let Some(index) = &mut self.by_peer
            && let Some(mine) = index.get_mut(&peer)
        {
            mine.remove(route);
            if mine.is_empty() {
                index.remove(&peer);
            }
        }
        if !set.is_empty() {
            return Change::Shared;
        }
        self.routes -= 1;
        hops.remove(&route.next_hop);
        if hops.is_empty() {
            dests.remove(&route.destination);
            if dests.is_empty() {
                self.vnis.remove(&route.vni);
            }
        }
        Change::Edge
    }

    /// Who announces `route` (empty if nobody).
    pub fn announcers(&self, route: &Route) -> impl Iterator<Item = P> + '_ {
        self.vnis
            .get(&route.vni)
            .and_then(|d| d.get(&route.destination))
            .and_then(|h| h.get(&route.next_hop))
            .into_iter()
            .flatten()
            .copied()
    }

    /// Whether anybody announces `route`.
    pub fn contains(&self, route: &Route) -> bool {
        self.announcers(route).next().is_some()
    }

    /// The routes `peer` announces: from the index, or by a scan of the
    /// table when it has none.
    pub fn announced_by(&self, peer: P) -> Vec<Route> {
        match &self.by_peer {
            Some(index) => index
                .get(&peer)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
            None => self
                .iter()
                .filter(|(_, set)| set.contains(&peer))
                .map(|(r, _)| r)
                .collect(),
        }
    }

    /// How many routes `peer` announces.
    pub fn count_by(&self, peer: P) -> usize {
        match &self.by_peer {
            Some(index) => index.get(&peer).map_or(0, |s| s.len()),
            None => self.iter().filter(|(_, set)| set.contains(&peer)).count(),
        }
    }

    /// Every route of `vni` with its announcers, ordered by destination and
    /// next hop.
    pub fn vni_routes(&self, vni: Vni) -> impl Iterator<Item = (Route, &BTreeSet<P>)> + '_ {
        self.vnis.get(&vni).into_iter().flat_map(move |dests| {
            dests.iter().flat_map(move |(dest, hops)| {
                hops.iter().map(move |(hop, set)| {
                    (
                        Route {
                            vni,
                            destination: *dest,
                            next_hop: *hop,
                        },
                        set,
                    )
                })
            })
        })
    }

    /// Every route with its announcers, ordered by VNI, destination and
    /// next hop.
    pub fn iter(&self) -> impl Iterator<Item = (Route, &BTreeSet<P>)> + '_ {
        self.vnis.keys().flat_map(move |vni| self.vni_routes(*vni))
    }

    /// The VNIs that have routes.
    pub fn vnis(&self) -> impl Iterator<Item = Vni> + '_ {
        self.vnis.keys().copied()
    }

    /// Number of distinct routes (announced by at least one peer).
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
}

/// Whether subscriber `who` sees a route with these announcers: somebody
/// announces it and `who` does not (a peer never hears of its own routes).
pub fn visible_to<P: Ord>(announcers: &BTreeSet<P>, who: &P) -> bool {
    !announcers.is_empty() && !announcers.contains(who)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_overlay::route::NextHopKind;

    fn route(dest: &str, hop: u16) -> Route {
        Route {
            vni: Vni::new(100).unwrap(),
            destination: Destination::new(dest.parse().unwrap()),
            next_hop: NextHop {
                underlay: std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, hop),
                vni: Vni::new(100).unwrap(),
                kind: NextHopKind::Standard,
            },
        }
    }

    #[test]
    fn changes_report_first_and_last_announcer() {
        let mut t = RouteTable::new();
        let r = route("10.0.0.0/24", 1);
        assert_eq!(t.add(r, 1), Change::Edge);
        assert_eq!(t.add(r, 1), Change::None);
        assert_eq!(t.add(r, 2), Change::Shared);
        assert_eq!(t.add(r, 3), Change::Shared);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(&r, 3), Change::Shared);
        assert_eq!(t.remove(&r, 1), Change::Shared);
        assert_eq!(t.remove(&r, 1), Change::None);
        assert_eq!(t.remove(&r, 2), Change::Edge);
        assert!(t.is_empty());
        assert_eq!(t.vnis().count(), 0);
        assert!(t.announced_by(2).is_empty());
    }

    #[test]
    fn unindexed_table_answers_the_same() {
        let mut a = RouteTable::new();
        let mut b = RouteTable::without_peer_index();
        for (i, peer) in [(1, 1), (2, 1), (2, 2), (3, 2)] {
            let r = route("10.0.0.0/24", i);
            assert_eq!(a.add(r, peer), b.add(r, peer));
        }
        for peer in [1, 2, 3] {
            let mut x = a.announced_by(peer);
            x.sort();
            assert_eq!(x, b.announced_by(peer));
            assert_eq!(a.count_by(peer), b.count_by(peer));
        }
    }

    #[test]
    fn hops_of_one_destination_are_separate() {
        let mut t = RouteTable::new();
        let (a, b) = (route("10.0.0.0/24", 1), route("10.0.0.0/24", 2));
        t.add(a, 7);
        t.add(b, 7);
        assert_eq!(t.len(), 2);
        assert_eq!(t.count_by(7), 2);
        assert_eq!(t.remove(&a, 7), Change::Edge);
        assert!(t.contains(&b));
        let listed: Vec<_> = t.iter().map(|(r, _)| r).collect();
        assert_eq!(listed, vec![b]);
    }

    #[test]
    fn own_routes_are_invisible() {
        let one: BTreeSet<u8> = [1].into();
        let two: BTreeSet<u8> = [1, 2].into();
        assert!(!visible_to(&one, &1));
        assert!(visible_to(&one, &2));
        assert!(!visible_to(&two, &1));
        assert!(visible_to(&two, &3));
        assert!(!visible_to(&BTreeSet::new(), &1));
    }
}
