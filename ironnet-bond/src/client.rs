//! The bond client without I/O: any number of servers, subscriptions,
//! announcements, and the routes learned from them.
//!
//! What it does better than metalbond's client:
//! - a route is learned once per server that provides it, and
//!   [`RouteEvent::Add`] fires when its *first* provider appears,
//!   [`RouteEvent::Remove`] only when the *last* is gone, so losing one of
//!   two servers removes nothing the other still provides;
//! - servers that are down do not block start-up, subscribing or
//!   announcing: each server is redialled with exponential backoff and
//!   jitter, and gets every subscription and announcement when its
//!   connection is established;
//! - an optional grace period keeps a lost server's routes for a while; if
//!   the server comes back and re-sends a route within it, nothing is
//!   removed (graceful restart, purely client-side);
//! - a route exactly equal to one of our own announcements is kept in the
//!   table but masked: it raises no event while we announce it, and an Add
//!   when we withdraw it and a server still provides it (metalbond's #177
//!   filter instead drops *any* route for a destination we announce, which
//!   loses other hosts' NAT port ranges and load-balancer targets of a
//!   shared IP).
//!
//! Known limit, shared with metalbond (the protocol has no end-of-dump
//! marker): after UNSUBSCRIBE and SUBSCRIBE of the same VNI in quick
//! succession, an ADD still in flight from before the UNSUBSCRIBE is taken
//! as current; if that route was withdrawn meanwhile it stays until the
//! connection is re-established.
//!
//! The owner dials when asked ([`ClientAction::Dial`]), reports the outcome
//! ([`ClientCore::connected`], [`ClientCore::dial_failed`]), moves bytes
//! ([`ClientCore::receive`], [`ClientCore::poll_output`]) and time
//! ([`ClientCore::handle_timeout`], [`ClientCore::poll_timeout`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use ironnet_overlay::route::{Route, Vni};

use crate::backoff::Backoff;
use crate::codec::{self, Action, Decoder, Message};
use crate::conn::{CloseReason, Connection, Event, Role, State};
use crate::table::{Change, RouteTable};

/// Identifies a configured server (its index, in the order added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub usize);

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Keepalive interval offered to servers, seconds.
    pub keepalive_secs: u32,
    /// How long a lost server's routes are kept; zero removes them at once.
    pub grace: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Seed for the backoff jitter; 0 lets [`BondClient`](crate::BondClient)
    /// pick one per client (the sans-IO core uses it as given).
    pub seed: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            keepalive_secs: 5,
            grace: Duration::ZERO,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            seed: 0,
        }
    }
}

/// A change of the learned route set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteEvent {
    /// The first provider of this route appeared: install it.
    Add(Route),
    /// The last provider is gone: uninstall it.
    Remove(Route),
}

/// What the owner must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Open a transport to the server and report back.
    Dial(ServerId),
    /// Shut the server's transport down (the connection was closed).
    Close(ServerId, CloseReasonKind),
}

/// A coarse close reason, for logging by the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReasonKind {
    /// The transport went away.
    Transport,
    /// Keepalive or handshake timeout.
    Timeout,
    /// The server broke the protocol.
    Protocol,
    /// Closed locally.
    Local,
}

impl From<&CloseReason> for CloseReasonKind {
    fn from(r: &CloseReason) -> Self {
        match r {
            CloseReason::Transport => CloseReasonKind::Transport,
            CloseReason::KeepaliveTimeout(_) | CloseReason::HandshakeTimeout(_) => {
                CloseReasonKind::Timeout
            }
            CloseReason::Local | CloseReason::SlowConsumer { .. } => CloseReasonKind::Local,
            _ => CloseReasonKind::Protocol,
        }
    }
}

/// The state of one server link, as reported by [`ClientCore::server_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to redial.
    Down,
    /// A dial is in progress.
    Dialing,
    /// Connected; the protocol state.
    Up(State),
}

#[derive(Debug)]
enum Link {
    Down { retry_at: Instant },
    Dialing,
    Up(Box<UpLink>),
}

#[derive(Debug)]
struct UpLink {
    conn: Connection,
    decoder: Decoder,
    out: Vec<u8>,
}

/// Routes of a lost server kept through the grace period, each with its
/// own deadline (a route stays stale at most `grace` after the loss that
/// made it stale, however often the server flaps).
#[derive(Debug, Default)]
struct Stale {
    routes: HashMap<Route, Instant>,
    /// No deadline in `routes` is earlier than this.
    earliest: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    link: Link,
    backoff: Backoff,
    stale: Stale,
}

/// The client's state.
#[derive(Debug)]
pub struct ClientCore {
    config: ClientConfig,
    servers: Vec<Slot>,
    subscriptions: BTreeSet<Vni>,
    announcements: BTreeSet<Route>,
    learned: RouteTable<ServerId>,
    events: VecDeque<RouteEvent>,
    actions: VecDeque<ClientAction>,
    dirty: BTreeSet<ServerId>,
    frame: Vec<u8>,
}

impl ClientCore {
    /// A client without servers.
    pub fn new(config: ClientConfig) -> Self {
        ClientCore {
            config,
            servers: Vec::new(),
            subscriptions: BTreeSet::new(),
            announcements: BTreeSet::new(),
            learned: RouteTable::without_peer_index(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            dirty: BTreeSet::new(),
            frame: Vec::with_capacity(64),
        }
    }

    /// Adds a server; it is dialled at the next [`handle_timeout`](Self::handle_timeout).
    pub fn add_server(&mut self, now: Instant) -> ServerId {
        let id = ServerId(self.servers.len());
        let seed = self.config.seed ^ (id.0 as u64).wrapping_mul(0x9e37_79b9);
        self.servers.push(Slot {
            link: Link::Down { retry_at: now },
            backoff: Backoff::new(self.config.backoff_initial, self.config.backoff_max, seed),
            stale: Stale::default(),
        });
        id
    }

    /// Subscribes to `vni` on every server, now or when each comes up.
    /// Returns false if already subscribed.
    pub fn subscribe(&mut self, vni: Vni) -> bool {
        if !self.subscriptions.insert(vni) {
            return false;
        }
        self.send_all(&Message::Subscribe(vni));
        true
    }

    /// Unsubscribes from `vni`: the VNI's learned routes are removed (with
    /// events). The protocol also makes servers withdraw what this client
    /// announced in `vni`, so those announcements are forgotten too.
    /// Returns false if not subscribed.
    pub fn unsubscribe(&mut self, vni: Vni) -> bool {
        if !self.subscriptions.remove(&vni) {
            return false;
        }
        self.send_all(&Message::Unsubscribe(vni));
        let learned: Vec<(Route, Vec<ServerId>)> = self
            .learned
            .vni_routes(vni)
            .map(|(r, s)| (r, s.iter().copied().collect()))
            .collect();
        for (route, servers) in learned {
            for s in servers {
                self.unlearn(s, route);
            }
        }
        self.announcements.retain(|r| r.vni != vni);
        true
    }

    /// Announces `route` to every server. Returns false if already announced.
    pub fn announce(&mut self, route: Route) -> bool {
        if !self.announcements.insert(route) {
            return false;
        }
        // Our own routes are masked: one we had learned from others is
        // uninstalled (an ironnet server also sends a REMOVE for it).
        if self.learned.contains(&route) {
            self.events.push_back(RouteEvent::Remove(route));
        }
        self.send_all(&Message::Update(Action::Add, route));
        true
    }

    /// Withdraws `route`. Returns false if it was not announced.
    pub fn withdraw(&mut self, route: &Route) -> bool {
        if !self.announcements.remove(route) {
            return false;
        }
        // Unmasked: a server still providing it makes it a learned route.
        if self.learned.contains(route) {
            self.events.push_back(RouteEvent::Add(*route));
        }
        self.send_all(&Message::Update(Action::Remove, *route));
        true
    }

    /// The transport to `id` is up.
    pub fn connected(&mut self, id: ServerId, now: Instant) {
        let ka = self.config.keepalive_secs;
        if let Some(slot) = self.servers.get_mut(id.0) {
            slot.link = Link::Up(Box::new(UpLink {
                conn: Connection::new(Role::Client, ka, now),
                decoder: Decoder::new(),
                out: Vec::new(),
            }));
            self.drive(id, now);
        }
    }

    /// Dialling `id` failed; it is retried after a backoff.
    pub fn dial_failed(&mut self, id: ServerId, now: Instant) {
        if let Some(slot) = self.servers.get_mut(id.0) {
            let delay = slot.backoff.next_delay();
            slot.link = Link::Down {
                retry_at: now + delay,
            };
        }
    }

    /// Bytes arrived from `id`.
    pub fn receive(&mut self, id: ServerId, now: Instant, bytes: &[u8]) {
        let Some(Link::Up(up)) = self.servers.get_mut(id.0).map(|s| &mut s.link) else {
            return;
        };
        up.decoder.feed(bytes);
        loop {
            let Some(Link::Up(up)) = self.servers.get_mut(id.0).map(|s| &mut s.link) else {
                return;
            };
            match up.decoder.next_message() {
                Ok(Some(msg)) => up.conn.handle(now, msg),
                Ok(None) => break,
                Err(e) => up.conn.close(CloseReason::Codec(e)),
            }
            self.drive(id, now);
        }
    }

    /// The transport to `id` ended.
    pub fn transport_closed(&mut self, id: ServerId, now: Instant) {
        self.close(id, now, CloseReason::Transport);
    }

    /// Closes the connection to `id` (it is redialled after a backoff).
    pub fn close(&mut self, id: ServerId, now: Instant, reason: CloseReason) {
        if let Some(Link::Up(up)) = self.servers.get_mut(id.0).map(|s| &mut s.link) {
            up.conn.close(reason);
            self.drive(id, now);
        }
    }

    /// Time passed: redials, keepalives, grace periods.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.servers.len() {
            let id = ServerId(i);
            let slot = &mut self.servers[i];
            match &mut slot.link {
                Link::Down { retry_at } if *retry_at <= now => {
                    slot.link = Link::Dialing;
                    self.actions.push_back(ClientAction::Dial(id));
                }
                Link::Up(up) if up.conn.poll_timeout().is_some_and(|t| t <= now) => {
                    up.conn.handle_timeout(now);
                    self.drive(id, now);
                }
                _ => {}
            }
            if self.servers[i].stale.earliest.is_some_and(|t| t <= now) {
                self.expire(id, now);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.servers
            .iter()
            .flat_map(|s| {
                let link = match &s.link {
                    Link::Down { retry_at } => Some(*retry_at),
                    Link::Dialing => None,
                    Link::Up(up) => up.conn.poll_timeout(),
                };
                link.into_iter().chain(s.stale.earliest)
            })
            .min()
    }

    /// The next thing the owner must do.
    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    /// Bytes to write to a server.
    pub fn poll_output(&mut self) -> Option<(ServerId, Vec<u8>)> {
        while let Some(id) = self.dirty.pop_first() {
            if let Some(Link::Up(up)) = self.servers.get_mut(id.0).map(|s| &mut s.link)
                && !up.out.is_empty()
            {
                return Some((id, std::mem::take(&mut up.out)));
            }
        }
        None
    }

    /// The next route event.
    pub fn poll_event(&mut self) -> Option<RouteEvent> {
        self.events.pop_front()
    }

    /// Learned routes (what Add/Remove events have built), in order.
    pub fn routes(&self) -> impl Iterator<Item = Route> + '_ {
        self.learned
            .iter()
            .map(|(r, _)| r)
            .filter(|r| !self.announcements.contains(r))
    }

    /// The learned table with the servers providing each route (own
    /// announcements included; [`routes`](Self::routes) masks them).
    pub fn table(&self) -> &RouteTable<ServerId> {
        &self.learned
    }

    /// Subscribed VNIs.
    pub fn subscriptions(&self) -> impl Iterator<Item = Vni> + '_ {
        self.subscriptions.iter().copied()
    }

    /// Own announcements.
    pub fn announcements(&self) -> impl Iterator<Item = &Route> + '_ {
        self.announcements.iter()
    }

    /// The link state of `id`.
    pub fn server_state(&self, id: ServerId) -> Option<LinkState> {
        self.servers.get(id.0).map(|s| match &s.link {
            Link::Down { .. } => LinkState::Down,
            Link::Dialing => LinkState::Dialing,
            Link::Up(up) => LinkState::Up(up.conn.state()),
        })
    }

    /// Number of configured servers.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    fn send_all(&mut self, msg: &Message) {
        self.frame.clear();
        if codec::encode(msg, &mut self.frame).is_err() {
            return;
        }
        for (i, slot) in self.servers.iter_mut().enumerate() {
            if let Link::Up(up) = &mut slot.link
                && up.conn.is_established()
            {
                up.out.extend_from_slice(&self.frame);
                self.dirty.insert(ServerId(i));
            }
        }
    }

    fn drive(&mut self, id: ServerId, now: Instant) {
        let mut events = Vec::new();
        if let Some(Link::Up(up)) = self.servers.get_mut(id.0).map(|s| &mut s.link) {
            while let Some(msg) = up.conn.poll_transmit() {
                if codec::encode(&msg, &mut up.out).is_ok() {
                    self.dirty.insert(id);
                }
            }
            while let Some(ev) = up.conn.poll_event() {
                events.push(ev);
            }
        }
        for ev in events {
            match ev {
                Event::Established(_) => self.established(id),
                Event::Received(Message::Update(Action::Add, route)) => self.learn(id, route),
                Event::Received(Message::Update(Action::Remove, route)) => self.unlearn(id, route),
                Event::Received(_) => {}
                Event::Closed(reason) => self.lost(id, now, &reason),
            }
        }
    }

    fn established(&mut self, id: ServerId) {
        let Some(slot) = self.servers.get_mut(id.0) else {
            return;
        };
        slot.backoff.reset();
        let Link::Up(up) = &mut slot.link else {
            return;
        };
        let subs = self.subscriptions.iter().map(|v| Message::Subscribe(*v));
        let ann = self
            .announcements
            .iter()
            .map(|r| Message::Update(Action::Add, *r));
        for msg in subs.chain(ann) {
            if codec::encode(&msg, &mut up.out).is_ok() {
                self.dirty.insert(id);
            }
        }
    }

    fn learn(&mut self, id: ServerId, route: Route) {
        if !self.subscriptions.contains(&route.vni) {
            return;
        }
        if let Some(slot) = self.servers.get_mut(id.0) {
            slot.stale.routes.remove(&route);
        }
        if self.learned.add(route, id) == Change::Edge && !self.announcements.contains(&route) {
            self.events.push_back(RouteEvent::Add(route));
        }
    }

    fn unlearn(&mut self, id: ServerId, route: Route) {
        if let Some(slot) = self.servers.get_mut(id.0) {
            slot.stale.routes.remove(&route);
        }
        if self.learned.remove(&route, id) == Change::Edge && !self.announcements.contains(&route) {
            self.events.push_back(RouteEvent::Remove(route));
        }
    }

    fn lost(&mut self, id: ServerId, now: Instant, reason: &CloseReason) {
        let grace = self.config.grace;
        let Some(slot) = self.servers.get_mut(id.0) else {
            return;
        };
        let delay = slot.backoff.next_delay();
        slot.link = Link::Down {
            retry_at: now + delay,
        };
        self.actions
            .push_back(ClientAction::Close(id, CloseReasonKind::from(reason)));
        let routes: Vec<Route> = self.learned.announced_by(id);
        if grace.is_zero() {
            for route in routes {
                self.unlearn(id, route);
            }
            return;
        }
        // Routes already stale keep their deadline: repeated losses do not
        // extend it.
        let deadline = now + grace;
        let mut added = false;
        for route in routes {
            if let std::collections::hash_map::Entry::Vacant(e) = slot.stale.routes.entry(route) {
                e.insert(deadline);
                added = true;
            }
        }
        if added {
            slot.stale.earliest = Some(slot.stale.earliest.map_or(deadline, |t| t.min(deadline)));
        }
    }

    fn expire(&mut self, id: ServerId, now: Instant) {
        let Some(slot) = self.servers.get_mut(id.0) else {
            return;
        };
        let due: Vec<Route> = slot
            .stale
            .routes
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(r, _)| *r)
            .collect();
        slot.stale.routes.retain(|_, t| *t > now);
        slot.stale.earliest = slot.stale.routes.values().min().copied();
        for route in due {
            if self.learned.remove(&route, id) == Change::Edge
                && !self.announcements.contains(&route)
            {
                self.events.push_back(RouteEvent::Remove(route));
            }
        }
    }
}
