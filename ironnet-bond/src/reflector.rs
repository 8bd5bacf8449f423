//! The route reflector (the bond server) without I/O: bytes and time go in,
//! bytes per peer and closed peers come out.
//!
//! Rules, in the words of the bond issue:
//! - it keeps VNI → destination → next hop → announcing peers
//!   ([`RouteTable`]);
//! - a subscriber hears about a next hop exactly while somebody announces
//!   it and the subscriber itself does not ([`visible_to`]). That one rule
//!   gives the subscribe dump, live ADD reflection to everyone but the
//!   sender, and REMOVE only when the last announcer is gone; a peer never
//!   hears of its own routes. (metalbond's dump sends a peer its own non-NAT
//!   routes while live updates never echo; here both paths agree.) When a
//!   peer starts announcing a hop it had learned it is sent a REMOVE, and
//!   when it stops while others still announce the hop, an ADD.
//! - UNSUBSCRIBE withdraws what the peer announced in that VNI, and a peer
//!   that goes away (transport closed, keepalive timeout, protocol error,
//!   slow consumer) has all its routes withdrawn: at once, or after the
//!   departure grace ([`Reflector::with_departed_grace`]). Within the grace
//!   a restarted announcer takes its routes over without anyone hearing a
//!   REMOVE, so an agent restart does not flap routes on other hosts.
//!
//! Every reflected UPDATE is encoded once and copied to each subscriber.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ironnet_overlay::route::{Route, Vni};

use crate::codec::{self, Action, Decoder, Message};
use crate::conn::{CloseReason, Connection, Event, Role, State};
use crate::table::{Change, RouteTable, visible_to};

/// Identifies one accepted connection for the life of the reflector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

/// Counters kept by the reflector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReflectorStats {
    /// UPDATE messages received.
    pub updates_in: u64,
    /// UPDATE messages queued to subscribers (dumps included).
    pub updates_out: u64,
}

/// One peer as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: PeerId,
    /// Its address.
    pub remote: SocketAddr,
    /// Connection state.
    pub state: State,
    /// VNIs it subscribed to.
    pub subscriptions: Vec<Vni>,
    /// Routes it announces.
    pub announced: usize,
}

#[derive(Debug)]
struct Peer {
    conn: Connection,
    decoder: Decoder,
    out: Vec<u8>,
    subscriptions: BTreeSet<Vni>,
    remote: SocketAddr,
}

/// The reflector's state.
#[derive(Debug)]
pub struct Reflector {
    keepalive_secs: u32,
    peers: BTreeMap<PeerId, Peer>,
    next_id: u64,
    table: RouteTable<PeerId>,
    subscribers: BTreeMap<Vni, BTreeSet<PeerId>>,
    dirty: BTreeSet<PeerId>,
    closed: VecDeque<(PeerId, CloseReason)>,
    stats: ReflectorStats,
    frame: Vec<u8>,
    grace: Duration,
    /// Peers gone within their grace: when their routes are withdrawn.
    departed: BTreeMap<PeerId, Instant>,
}

impl Reflector {
    /// A reflector that offers `keepalive_secs` to its peers.
    pub fn new(keepalive_secs: u32) -> Self {
        Reflector {
            keepalive_secs: keepalive_secs.max(1),
            peers: BTreeMap::new(),
            next_id: 0,
            table: RouteTable::new(),
            subscribers: BTreeMap::new(),
            dirty: BTreeSet::new(),
            closed: VecDeque::new(),
            stats: ReflectorStats::default(),
            frame: Vec::with_capacity(64),
            grace: Duration::ZERO,
            departed: BTreeMap::new(),
        }
    }

    /// Keeps the routes of a peer that went away for `grace` before
    /// withdrawing them (zero, the default, withdraws at once as metalbond
    /// does). A peer that announces the same route meanwhile takes it over.
    #[must_use]
    pub fn with_departed_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// A connection from `remote` was accepted.
    pub fn accept(&mut self, now: Instant, remote: SocketAddr) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.peers.insert(
            id,
            Peer {
                conn: Connection::new(Role::Server, self.keepalive_secs, now),
                decoder: Decoder::new(),
                out: Vec::new(),
                subscriptions: BTreeSet::new(),
                remote,
            },
        );
        id
    }

    /// Bytes arrived from `peer`. Unknown (already closed) peers are
    /// ignored.
    pub fn receive(&mut self, peer: PeerId, now: Instant, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.decoder.feed(bytes);
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            match p.decoder.next_message() {
                Ok(Some(msg)) => p.conn.handle(now, msg),
                Ok(None) => break,
                Err(e) => p.conn.close(CloseReason::Codec(e)),
            }
            self.drive(peer, now);
        }
    }

    /// The transport of `peer` ended.
    pub fn transport_closed(&mut self, peer: PeerId, now: Instant) {
        self.close(peer, now, CloseReason::Transport);
    }

    /// Closes `peer` (for example a slow consumer); its routes are
    /// withdrawn once the departure grace has passed.
    pub fn close(&mut self, peer: PeerId, now: Instant, reason: CloseReason) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.conn.close(reason);
            self.drive(peer, now);
        }
    }

    /// Time passed: keepalive deadlines and departure graces.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<PeerId> = self
            .departed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.departed.remove(&id);
            self.withdraw_all(id);
        }
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.conn.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.peers.get_mut(&id) {
                p.conn.handle_timeout(now);
                self.drive(id, now);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.conn.poll_timeout())
            .chain(self.departed.values().copied())
            .min()
    }

    /// Peers gone whose routes are kept until their grace ends.
    pub fn departed_count(&self) -> usize {
        self.departed.len()
    }

    /// Bytes to write to a peer, one peer at a time.
    pub fn poll_output(&mut self) -> Option<(PeerId, Vec<u8>)> {
        while let Some(id) = self.dirty.pop_first() {
            if let Some(p) = self.peers.get_mut(&id)
                && !p.out.is_empty()
            {
                return Some((id, std::mem::take(&mut p.out)));
            }
        }
        None
    }

    /// A peer the reflector closed, with the reason; its transport should
    /// be shut down.
    pub fn poll_closed(&mut self) -> Option<(PeerId, CloseReason)> {
        self.closed.pop_front()
    }

    /// The route table (announcers are peers).
    pub fn table(&self) -> &RouteTable<PeerId> {
        &self.table
    }

    /// Counters.
    pub fn stats(&self) -> ReflectorStats {
        self.stats
    }

    /// Number of peers in state ESTABLISHED.
    pub fn established_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.conn.is_established())
            .count()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Every peer with its state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(id, p)| PeerStatus {
                id: *id,
                remote: p.remote,
                state: p.conn.state(),
                subscriptions: p.subscriptions.iter().copied().collect(),
                announced: self.table.count_by(*id),
            })
            .collect()
    }

    /// Moves the peer's outgoing messages to its buffer and acts on its
    /// events.
    fn drive(&mut self, id: PeerId, now: Instant) {
        let mut events = Vec::new();
        if let Some(p) = self.peers.get_mut(&id) {
            while let Some(msg) = p.conn.poll_transmit() {
                // Control messages are tiny and always encodable.
                if codec::encode(&msg, &mut p.out).is_ok() {
                    self.dirty.insert(id);
                }
            }
            while let Some(ev) = p.conn.poll_event() {
                events.push(ev);
            }
        }
        for ev in events {
            match ev {
                Event::Established(_) => {}
                Event::Received(Message::Subscribe(vni)) => self.subscribe(id, vni),
                Event::Received(Message::Unsubscribe(vni)) => self.unsubscribe(id, vni),
                Event::Received(Message::Update(action, route)) => {
                    self.stats.updates_in += 1;
                    match action {
                        Action::Add => self.announce(id, route),
                        Action::Remove => self.withdraw(id, route),
                    }
                }
                Event::Received(_) => {}
                Event::Closed(reason) => self.remove_peer(id, now, reason),
            }
        }
    }

    fn subscribe(&mut self, id: PeerId, vni: Vni) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if !p.subscriptions.insert(vni) {
            return; // a repeated SUBSCRIBE changes nothing
        }
        self.subscribers.entry(vni).or_default().insert(id);
        let mut sent = 0;
        for (route, announcers) in self.table.vni_routes(vni) {
            if visible_to(announcers, &id)
                && codec::encode(&Message::Update(Action::Add, route), &mut p.out).is_ok()
            {
                sent += 1;
            }
        }
        if sent > 0 {
            self.stats.updates_out += sent;
            self.dirty.insert(id);
        }
    }

    fn unsubscribe(&mut self, id: PeerId, vni: Vni) {
        // Not subscribed: nothing to do (as current metalbond).
        if !self
            .peers
            .get_mut(&id)
            .is_some_and(|p| p.subscriptions.remove(&vni))
        {
            return;
        }
        self.drop_subscriber(id, vni);
        let mut mine = self.table.announced_by(id);
        mine.retain(|r| r.vni == vni);
        for route in mine {
            self.withdraw(id, route);
        }
    }

    fn drop_subscriber(&mut self, id: PeerId, vni: Vni) {
        if let Some(set) = self.subscribers.get_mut(&vni) {
            set.remove(&id);
            if set.is_empty() {
                self.subscribers.remove(&vni);
            }
        }
    }

    fn announce(&mut self, from: PeerId, route: Route) {
        match self.table.add(route, from) {
            Change::Edge => self.reflect(Action::Add, route, Some(from), None),
            // `from` saw the hop as someone else's; now it is its own.
            Change::Shared => self.reflect(Action::Remove, route, None, Some(from)),
            Change::None => {}
        }
    }

    fn withdraw(&mut self, from: PeerId, route: Route) {
        match self.table.remove(&route, from) {
            Change::Edge => self.reflect(Action::Remove, route, Some(from), None),
            // Others still announce it: `from` sees it from now on.
            Change::Shared => self.reflect(Action::Add, route, None, Some(from)),
            Change::None => {}
        }
    }

    /// Sends an UPDATE to the VNI's subscribers, all but `except`, or only
    /// `only`.
    fn reflect(
        &mut self,
        action: Action,
        route: Route,
        except: Option<PeerId>,
        only: Option<PeerId>,
    ) {
        let Some(subs) = self.subscribers.get(&route.vni) else {
            return;
        };
        self.frame.clear();
        if codec::encode(&Message::Update(action, route), &mut self.frame).is_err() {
            return;
        }
        let targets: Box<dyn Iterator<Item = &PeerId>> = match only {
            Some(one) => Box::new(subs.get(&one).into_iter()),
            None => Box::new(subs.iter()),
        };
        for id in targets {
            if Some(*id) == except {
                continue;
            }
            if let Some(p) = self.peers.get_mut(id)
                && p.conn.is_established()
            {
                p.out.extend_from_slice(&self.frame);
                self.dirty.insert(*id);
                self.stats.updates_out += 1;
            }
        }
    }

    fn remove_peer(&mut self, id: PeerId, now: Instant, reason: CloseReason) {
        let Some(p) = self.peers.remove(&id) else {
            return;
        };
        for vni in &p.subscriptions {
            self.drop_subscriber(id, *vni);
        }
        if self.grace.is_zero() || self.table.count_by(id) == 0 {
            self.withdraw_all(id);
        } else {
            self.departed.insert(id, now + self.grace);
        }
        self.dirty.remove(&id);
        self.closed.push_back((id, reason));
    }

    fn withdraw_all(&mut self, id: PeerId) {
        for route in self.table.announced_by(id) {
            self.withdraw(id, route);
        }
    }
}
