//! Deterministic simulation: clients and two reflectors over a virtual
//! network with a virtual clock, message delays, bytes split at random
//! points, connection drops and server restarts. After every scenario each
//! subscriber's learned table equals what the others announce.
#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ironnet_bond::State;
use ironnet_bond::client::{
    ClientAction, ClientConfig, ClientCore, LinkState, RouteEvent, ServerId,
};
use ironnet_bond::reflector::{PeerId, Reflector};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use proptest::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    ToServer,
    ToClient,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Deliver {
        conn: usize,
        dir: Dir,
        bytes: Vec<u8>,
    },
    Closed {
        conn: usize,
        dir: Dir,
    },
    DialDone {
        client: usize,
        server: usize,
    },
    ServerUp {
        server: usize,
    },
}

struct Conn {
    client: usize,
    server: usize,
    peer: PeerId,
    alive: bool,
    last: [Instant; 2],
}

struct SimServer {
    reflector: Option<Reflector>,
    peers: HashMap<PeerId, usize>,
}

/// The virtual world.
pub struct Sim {
    now: Instant,
    rng: Rng,
    max_delay_ms: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    seq: u64,
    conns: Vec<Conn>,
    servers: Vec<SimServer>,
    clients: Vec<ClientCore>,
    client_conn: Vec<Vec<Option<usize>>>,
    /// Tables rebuilt from each client's events.
    applied: Vec<BTreeSet<Route>>,
    removes: Vec<usize>,
}

impl Sim {
    fn new(clients: usize, servers: usize, seed: u64, grace: Duration) -> Self {
        let now = Instant::now();
        let mut sim = Sim {
            now,
            rng: Rng(seed),
            max_delay_ms: 40,
            queue: BinaryHeap::new(),
            seq: 0,
            conns: Vec::new(),
            servers: (0..servers)
                .map(|_| SimServer {
                    reflector: Some(Reflector::new(1)),
                    peers: HashMap::new(),
                })
                .collect(),
            clients: Vec::new(),
            client_conn: vec![vec![None; servers]; clients],
            applied: vec![BTreeSet::new(); clients],
            removes: vec![0; clients],
        };
        for c in 0..clients {
            let mut core = ClientCore::new(ClientConfig {
                keepalive_secs: 1,
                grace,
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(2),
                seed: seed ^ c as u64,
            });
            for _ in 0..servers {
                core.add_server(now);
            }
            sim.clients.push(core);
        }
        sim
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(1 + self.rng.below(self.max_delay_ms))
    }

    /// Sends bytes in order, split at a random point.
    fn send(&mut self, conn: usize, dir: Dir, bytes: Vec<u8>) {
        if !self.conns[conn].alive {
            return;
        }
        let split = self.rng.below(bytes.len() as u64 + 1) as usize;
        let (a, b) = bytes.split_at(split);
        for part in [a.to_vec(), b.to_vec()] {
            if part.is_empty() {
                continue;
            }
            let at = (self.now + self.delay()).max(self.conns[conn].last[dir as usize]);
            self.conns[conn].last[dir as usize] = at;
            self.schedule(
                at,
                Ev::Deliver {
                    conn,
                    dir,
                    bytes: part,
                },
            );
        }
    }

    /// Ends a connection; each side hears about it after a delay, after
    /// what was already in flight to it.
    fn cut(&mut self, conn: usize) {
        if !self.conns[conn].alive {
            return;
        }
        self.conns[conn].alive = false;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let at = (self.now + self.delay()).max(self.conns[conn].last[dir as usize]);
            self.schedule(at, Ev::Closed { conn, dir });
        }
    }

    fn pump(&mut self) {
        loop {
            let mut progress = false;
            for c in 0..self.clients.len() {
                while let Some(action) = self.clients[c].poll_action() {
                    progress = true;
                    match action {
                        ClientAction::Dial(ServerId(s)) => {
                            let at = self.now + self.delay();
                            self.schedule(
                                at,
                                Ev::DialDone {
                                    client: c,
                                    server: s,
                                },
                            );
                        }
                        ClientAction::Close(ServerId(s), _) => {
                            if let Some(conn) = self.client_conn[c][s].take() {
                                self.cut(conn);
                            }
                        }
                    }
                }
                while let Some((ServerId(s), bytes)) = self.clients[c].poll_output() {
                    progress = true;
                    if let Some(conn) = self.client_conn[c][s] {
                        self.send(conn, Dir::ToServer, bytes);
                    }
                }
                while let Some(ev) = self.clients[c].poll_event() {
                    progress = true;
                    match ev {
                        RouteEvent::Add(r) => {
                            assert!(self.applied[c].insert(r), "double Add {r:?}")
                        }
                        RouteEvent::Remove(r) => {
                            assert!(self.applied[c].remove(&r), "Remove of absent {r:?}");
                            self.removes[c] += 1;
                        }
                    }
                }
            }
            for s in 0..self.servers.len() {
                let Some(refl) = self.servers[s].reflector.as_mut() else {
                    continue;
                };
                let mut outs = Vec::new();
                while let Some(o) = refl.poll_output() {
                    outs.push(o);
                }
                let mut closed = Vec::new();
                while let Some((peer, _)) = refl.poll_closed() {
                    closed.push(peer);
                }
                for (peer, bytes) in outs {
                    progress = true;
                    if let Some(&conn) = self.servers[s].peers.get(&peer) {
                        self.send(conn, Dir::ToClient, bytes);
                    }
                }
                for peer in closed {
                    progress = true;
                    if let Some(conn) = self.servers[s].peers.remove(&peer) {
                        self.cut(conn);
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let c = self.clients.iter().filter_map(ClientCore::poll_timeout);
        let s = self
            .servers
            .iter()
            .filter_map(|s| s.reflector.as_ref().and_then(Reflector::poll_timeout));
        c.chain(s).min()
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Deliver { conn, dir, bytes } => {
                let (c, s, peer) = {
                    let k = &self.conns[conn];
                    (k.client, k.server, k.peer)
                };
                match dir {
                    Dir::ToServer => {
                        let current = self.servers[s].peers.get(&peer) == Some(&conn);
                        if let Some(r) = self.servers[s].reflector.as_mut()
                            && current
                        {
                            r.receive(peer, now, &bytes);
                        }
                    }
                    Dir::ToClient => {
                        if self.client_conn[c][s] == Some(conn) {
                            self.clients[c].receive(ServerId(s), now, &bytes);
                        }
                    }
                }
            }
            Ev::Closed { conn, dir } => {
                let (c, s, peer) = {
                    let k = &self.conns[conn];
                    (k.client, k.server, k.peer)
                };
                match dir {
                    Dir::ToServer => {
                        if self.servers[s].peers.get(&peer) == Some(&conn) {
                            self.servers[s].peers.remove(&peer);
                            if let Some(r) = self.servers[s].reflector.as_mut() {
                                r.transport_closed(peer, now);
                            }
                        }
                    }
                    Dir::ToClient => {
                        if self.client_conn[c][s] == Some(conn) {
                            self.client_conn[c][s] = None;
                            self.clients[c].transport_closed(ServerId(s), now);
                        }
                    }
                }
            }
            Ev::DialDone { client, server } => match self.servers[server].reflector.as_mut() {
                Some(r) => {
                    let remote = SocketAddr::from((Ipv6Addr::LOCALHOST, 10_000 + client as u16));
                    let peer = r.accept(now, remote);
                    let conn = self.conns.len();
                    self.conns.push(Conn {
                        client,
                        server,
                        peer,
                        alive: true,
                        last: [now; 2],
                    });
                    self.servers[server].peers.insert(peer, conn);
                    self.client_conn[client][server] = Some(conn);
                    self.clients[client].connected(ServerId(server), now);
                }
                None => self.clients[client].dial_failed(ServerId(server), now),
            },
            Ev::ServerUp { server } => {
                self.servers[server].reflector = Some(Reflector::new(1));
            }
        }
    }

    /// Runs the world until `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.pump();
            let next_ev = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next = match (next_ev, self.next_timer()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            while let Some(Reverse((t, _, _))) = self.queue.peek() {
                if *t > self.now {
                    break;
                }
                let Some(Reverse((_, _, ev))) = self.queue.pop() else {
                    break;
                };
                self.handle(ev);
                self.pump();
            }
            let now = self.now;
            for c in &mut self.clients {
                c.handle_timeout(now);
            }
            for s in &mut self.servers {
                if let Some(r) = s.reflector.as_mut() {
                    r.handle_timeout(now);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn restart_server(&mut self, s: usize, down_for: Duration) {
        self.servers[s].reflector = None;
        let conns: Vec<usize> = self.servers[s].peers.drain().map(|(_, c)| c).collect();
        for conn in conns {
            self.cut(conn);
        }
        let at = self.now + down_for;
        self.schedule(at, Ev::ServerUp { server: s });
    }

    fn drop_connection(&mut self, c: usize, s: usize) {
        if let Some(conn) = self.client_conn[c][s] {
            self.cut(conn);
        }
    }

    /// What client `c` should have learned.
    fn expected(&self, c: usize) -> BTreeSet<Route> {
        let subs: BTreeSet<Vni> = self.clients[c].subscriptions().collect();
        let mine: BTreeSet<Route> = self.clients[c].announcements().copied().collect();
        self.clients
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != c)
            .flat_map(|(_, o)| o.announcements().copied())
            .filter(|r| subs.contains(&r.vni) && !mine.contains(r))
            .collect()
    }

    fn all_established(&self) -> bool {
        self.clients.iter().all(|c| {
            (0..c.server_count())
                .all(|s| c.server_state(ServerId(s)) == Some(LinkState::Up(State::Established)))
        })
    }

    fn check_converged(&self) {
        assert!(self.all_established(), "not every link is back up");
        for c in 0..self.clients.len() {
            let learned: BTreeSet<Route> = self.clients[c].routes().collect();
            let expected = self.expected(c);
            assert_eq!(learned, expected, "client {c} table differs");
            assert_eq!(self.applied[c], expected, "client {c} events differ");
        }
    }
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

/// Route `i` of client `c`: some destinations are shared between clients
/// (with different next hops), some NAT hops share an IP.
fn route_of(c: usize, i: u8) -> Route {
    let mut underlay = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, c as u16 + 1);
    let v = u32::from(i % 3) + 1;
    let (dest, kind) = match i % 4 {
        0 => (format!("10.{c}.{i}.0/24"), NextHopKind::Standard),
        1 if i > 4 => {
            // An anycast hop several clients announce identically.
            underlay = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xffff);
            ("0.0.0.0/0".to_owned(), NextHopKind::Standard)
        }
        1 => ("0.0.0.0/0".to_owned(), NextHopKind::Standard),
        2 => (
            "203.0.113.7/32".to_owned(),
            NextHopKind::Nat {
                port_from: 1024 * (c as u16 + 1),
                port_to: 1024 * (c as u16 + 2),
            },
        ),
        _ => (
            format!("2001:db8:{c}::/64"),
            NextHopKind::LoadBalancerTarget,
        ),
    };
    Route {
        vni: vni(v),
        destination: Destination::new(dest.parse().unwrap()),
        next_hop: NextHop {
            underlay,
            vni: vni(v),
            kind,
        },
    }
}

#[derive(Debug, Clone)]
enum Op {
    Announce(usize, u8),
    Withdraw(usize, u8),
    Subscribe(usize, u32),
    Unsubscribe(usize, u32),
    Drop(usize, usize),
    /// Drop a link and toggle an announcement while it is down.
    DropAndToggle(usize, usize, u8),
    Restart(usize, u64),
    Wait(u64),
}

const CLIENTS: usize = 6;

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        4 => (c.clone(), 0u8..8).prop_map(|(c, i)| Op::Announce(c, i)),
        2 => (c.clone(), 0u8..8).prop_map(|(c, i)| Op::Withdraw(c, i)),
        3 => (c.clone(), 1u32..4).prop_map(|(c, v)| Op::Subscribe(c, v)),
        1 => (c.clone(), 1u32..4).prop_map(|(c, v)| Op::Unsubscribe(c, v)),
        1 => (c.clone(), 0usize..2).prop_map(|(c, s)| Op::Drop(c, s)),
        1 => (c, 0usize..2, 0u8..8).prop_map(|(c, s, i)| Op::DropAndToggle(c, s, i)),
        1 => (0usize..2, 0u64..4000).prop_map(|(s, ms)| Op::Restart(s, ms)),
        3 => (0u64..1500).prop_map(Op::Wait),
    ]
}

fn run_scenario(ops: &[Op], seed: u64, grace: Duration) -> Sim {
    let mut sim = Sim::new(CLIENTS, 2, seed, grace);
    sim.advance(Duration::from_millis(200));
    for op in ops {
        match *op {
            Op::Announce(c, i) => {
                sim.clients[c].announce(route_of(c, i));
            }
            Op::Withdraw(c, i) => {
                sim.clients[c].withdraw(&route_of(c, i));
            }
            Op::Subscribe(c, v) => {
                sim.clients[c].subscribe(vni(v));
            }
            Op::Unsubscribe(c, v) => {
                sim.clients[c].unsubscribe(vni(v));
            }
            Op::Drop(c, s) => sim.drop_connection(c, s),
            Op::DropAndToggle(c, s, i) => {
                sim.drop_connection(c, s);
                let r = route_of(c, i);
                if !sim.clients[c].withdraw(&r) {
                    sim.clients[c].announce(r);
                }
            }
            Op::Restart(s, ms) => sim.restart_server(s, Duration::from_millis(ms)),
            Op::Wait(ms) => sim.advance(Duration::from_millis(ms)),
        }
        sim.pump();
        sim.advance(Duration::from_millis(5));
    }
    // Long enough for every backoff, grace period and dump.
    sim.advance(Duration::from_secs(30));
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_subscriber_converges_to_the_announced_set(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
        grace_ms in prop_oneof![Just(0u64), 100u64..5000],
    ) {
        let sim = run_scenario(&ops, seed, Duration::from_millis(grace_ms));
        sim.check_converged();
    }
}

#[test]
fn losing_one_of_two_servers_removes_nothing() {
    let mut sim = Sim::new(3, 2, 7, Duration::ZERO);
    sim.clients[0].subscribe(vni(1));
    sim.clients[1].subscribe(vni(1));
    for i in [0, 3, 6] {
        sim.clients[1].announce(route_of(1, i));
        sim.clients[2].announce(route_of(2, i));
    }
    sim.advance(Duration::from_secs(2));
    sim.check_converged();
    assert_eq!(sim.applied[0].len(), 6);
    // Server 0 dies for 20 s: server 1 still provides everything.
    sim.restart_server(0, Duration::from_secs(20));
    sim.advance(Duration::from_secs(10));
    assert_eq!(
        sim.removes[0], 0,
        "a route another server still provides was removed"
    );
    assert_eq!(sim.applied[0].len(), 6);
    sim.advance(Duration::from_secs(20));
    sim.check_converged();
    assert_eq!(sim.removes[0], 0);
}

#[test]
fn withdrawing_while_a_connection_is_down_leaves_nothing_stale() {
    let mut sim = Sim::new(2, 2, 9, Duration::ZERO);
    sim.clients[0].subscribe(vni(1));
    sim.clients[1].announce(route_of(1, 0));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.applied[0].len(), 1);
    // The link to server 0 drops; the withdraw reaches only server 1. When
    // the link is back, server 0 must not still hold the old announcement.
    sim.drop_connection(1, 0);
    sim.clients[1].withdraw(&route_of(1, 0));
    sim.advance(Duration::from_secs(10));
    sim.check_converged();
    assert!(sim.applied[0].is_empty());
}

#[test]
fn identical_routes_from_two_announcers_survive_one_withdraw() {
    let mut sim = Sim::new(3, 1, 13, Duration::ZERO);
    let anycast = route_of(1, 5);
    assert_eq!(anycast, route_of(2, 5));
    sim.clients[0].subscribe(anycast.vni);
    sim.clients[1].subscribe(anycast.vni);
    sim.clients[1].announce(anycast);
    sim.clients[2].announce(anycast);
    sim.advance(Duration::from_secs(2));
    sim.check_converged();
    // Client 2 withdraws: client 1 now provides the route alone, so client
    // 1 must learn it (it was hidden from it as its own) and client 0 keeps
    // it.
    sim.clients[1].withdraw(&anycast);
    sim.advance(Duration::from_secs(1));
    sim.check_converged();
    assert!(sim.applied[0].contains(&anycast));
    sim.clients[2].withdraw(&anycast);
    sim.advance(Duration::from_secs(1));
    sim.check_converged();
    assert!(sim.applied[0].is_empty());
}

#[test]
fn grace_period_rides_out_a_server_restart() {
    // One server only: without grace its restart removes routes, with
    // grace nothing flaps.
    for (grace, flaps) in [(Duration::ZERO, true), (Duration::from_secs(10), false)] {
        let mut sim = Sim::new(2, 1, 11, grace);
        sim.clients[0].subscribe(vni(1));
        sim.clients[1].announce(route_of(1, 0));
        sim.clients[1].announce(route_of(1, 3));
        sim.advance(Duration::from_secs(2));
        sim.check_converged();
        sim.restart_server(0, Duration::from_millis(500));
        sim.advance(Duration::from_secs(30));
        sim.check_converged();
        assert_eq!(sim.removes[0] > 0, flaps, "grace {grace:?}");
    }
}

#[test]
fn routes_gone_during_an_outage_expire_after_the_grace_period() {
    let mut sim = Sim::new(3, 1, 5, Duration::from_secs(5));
    sim.clients[0].subscribe(vni(1));
    sim.clients[1].announce(route_of(1, 0));
    sim.clients[2].announce(route_of(2, 0));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.applied[0].len(), 2);
    // The server restarts and client 2 withdraws meanwhile: after the
    // restart nobody re-announces its route, so the grace period ends it.
    sim.restart_server(0, Duration::from_millis(300));
    sim.clients[2].withdraw(&route_of(2, 0));
    sim.advance(Duration::from_secs(3));
    assert_eq!(
        sim.applied[0].len(),
        2,
        "removed before the grace period ended"
    );
    sim.advance(Duration::from_secs(10));
    sim.check_converged();
    assert_eq!(sim.applied[0].len(), 1);
}

#[test]
fn shared_destinations_are_all_kept() {
    // NAT IP shared by several hosts and a default route from two hosts:
    // every host gets every other host's hop (no #177 filter).
    let mut sim = Sim::new(3, 2, 3, Duration::ZERO);
    for c in 0..3 {
        sim.clients[c].subscribe(vni(2));
        sim.clients[c].subscribe(vni(3));
        sim.clients[c].announce(route_of(c, 2)); // NAT 203.0.113.7 in VNI 3
        sim.clients[c].announce(route_of(c, 1)); // 0.0.0.0/0 in VNI 2
    }
    sim.advance(Duration::from_secs(3));
    sim.check_converged();
    let by_dest: BTreeMap<Destination, usize> =
        sim.applied[0].iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.destination).or_default() += 1;
            m
        });
    assert_eq!(by_dest.len(), 2, "{by_dest:?}");
    assert!(by_dest.values().all(|n| *n == 2), "{by_dest:?}");
}

#[test]
fn a_flapping_server_does_not_extend_the_grace_period() {
    let mut sim = Sim::new(3, 1, 21, Duration::from_secs(5));
    sim.clients[0].subscribe(vni(1));
    sim.clients[1].announce(route_of(1, 0));
    sim.clients[2].announce(route_of(2, 0));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.applied[0].len(), 2);
    // Client 2's route disappears with the first outage (its withdraw
    // never reaches a server that is down) ...
    sim.restart_server(0, Duration::from_millis(500));
    sim.clients[2].withdraw(&route_of(2, 0));
    // ... and the server keeps flapping, each outage shorter than the grace
    // period. The stale route must still go 5 s after the first loss.
    for _ in 0..3 {
        sim.advance(Duration::from_millis(1500));
        sim.restart_server(0, Duration::from_millis(300));
    }
    sim.advance(Duration::from_millis(1500));
    assert!(
        !sim.applied[0].contains(&route_of(2, 0)),
        "stale route outlived its grace period"
    );
    sim.advance(Duration::from_secs(20));
    sim.check_converged();
}
