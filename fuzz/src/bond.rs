//! Harnesses for `ironnet-bond`: the codec on arbitrary byte streams, the
//! connection state machine, and the reflector and client driven by
//! arbitrary messages, raw bytes and time. No panic, and the invariants
//! (decode ∘ encode is the identity, event streams match tables, tables
//! only name live peers) hold.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use ipnet::IpNet;
use ironnet_bond::client::{ClientConfig, ClientCore, RouteEvent, ServerId};
use ironnet_bond::codec::{self, Action, Decoder, Message};
use ironnet_bond::conn::{Connection, Role, State};
use ironnet_bond::reflector::{PeerId, Reflector};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};

/// Arbitrary bytes as a stream: whatever decodes re-encodes and decodes to
/// the same message, and reading in chunks gives what reading at once does.
pub fn codec(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    let mut rest = stream;
    while let Ok(Some((msg, used))) = codec::decode(rest) {
        assert!(used >= codec::HEADER_LEN && used <= rest.len());
        let mut out = Vec::new();
        codec::encode(&msg, &mut out).expect("decoded messages encode");
        assert_eq!(codec::decode(&out), Ok(Some((msg, out.len()))));
        whole.push(msg);
        rest = &rest[used..];
    }
    let mut d = Decoder::new();
    let mut chunked = Vec::new();
    'feed: for piece in stream.chunks(usize::from(chunk).max(1)) {
        d.feed(piece);
        loop {
            match d.next_message() {
                Ok(Some(m)) => chunked.push(m),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    assert_eq!(chunked, whole);
}

#[derive(Debug, Arbitrary)]
enum FuzzMsg {
    Hello(u8, bool),
    Keepalive,
    Subscribe(u8),
    Unsubscribe(u8),
    Update(bool, FuzzRoute),
}

#[derive(Debug, Arbitrary)]
struct FuzzRoute {
    vni: u8,
    prefix: u8,
    len: u8,
    hop: u8,
    kind: u8,
    ports: (u16, u16),
}

impl FuzzRoute {
    /// A route from a small space, so that collisions happen.
    fn route(&self) -> Route {
        let vni = Vni::new(u32::from(self.vni % 4)).unwrap_or(Vni::new(0).expect("0 is a VNI"));
        let prefix = IpNet::new(
            std::net::IpAddr::from([10, self.prefix % 8, 0, 0]),
            8 + self.len % 25,
        )
        .unwrap_or_default();
        let kind = match self.kind % 3 {
            0 => NextHopKind::Standard,
            1 => NextHopKind::Nat {
                port_from: self.ports.0,
                port_to: self.ports.1,
            },
            _ => NextHopKind::LoadBalancerTarget,
        };
        Route {
            vni,
            destination: Destination::new(prefix),
            next_hop: NextHop {
                underlay: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(self.hop % 4)),
                vni,
                kind,
            },
        }
    }
}

impl FuzzMsg {
    fn message(&self) -> Message {
        let vni = |v: u8| Vni::new(u32::from(v % 4)).unwrap_or(Vni::new(0).expect("0 is a VNI"));
        match self {
            FuzzMsg::Hello(ka, is_server) => Message::Hello {
                keepalive_secs: u32::from(*ka % 4),
                is_server: *is_server,
            },
            FuzzMsg::Keepalive => Message::Keepalive,
            FuzzMsg::Subscribe(v) => Message::Subscribe(vni(*v)),
            FuzzMsg::Unsubscribe(v) => Message::Unsubscribe(vni(*v)),
            FuzzMsg::Update(add, r) => {
                Message::Update(if *add { Action::Add } else { Action::Remove }, r.route())
            }
        }
    }

    fn frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode(&self.message(), &mut out).expect("small messages encode");
        out
    }
}

/// Both roles of the connection state machine on arbitrary messages and
/// time: Closed is final, ESTABLISHED is reached only through the
/// handshake, and the deadline always lies ahead after handling time.
pub fn connection(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let t0 = Instant::now();
    for role in [Role::Client, Role::Server] {
        let mut now = t0;
        let mut c = Connection::new(role, 2, now);
        let mut seen_closed = false;
        for _ in 0..64 {
            let Ok(step) = u.arbitrary::<(bool, u16, FuzzMsg)>() else {
                break;
            };
            let before = c.state();
            if step.0 {
                now += Duration::from_millis(u64::from(step.1));
                c.handle_timeout(now);
                if let Some(t) = c.poll_timeout() {
                    assert!(t > now || c.state() == State::Closed);
                }
            } else {
                c.handle(now, step.2.message());
            }
            while c.poll_transmit().is_some() {}
            while c.poll_event().is_some() {}
            if seen_closed {
                assert_eq!(c.state(), State::Closed);
            }
            seen_closed |= c.state() == State::Closed;
            if c.state() == State::Established && before != State::Established {
                assert!(c.keepalive().is_some());
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum ReflectorOp {
    Accept,
    Send(u8, FuzzMsg),
    Raw(u8, Vec<u8>),
    Close(u8),
    Advance(u16),
}

/// The reflector on arbitrary peers, frames, garbage and time: the table
/// only names live peers and its count matches its contents.
pub fn reflector(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut now = Instant::now();
    let mut r = Reflector::new(1);
    let mut peers: Vec<PeerId> = Vec::new();
    let remote = SocketAddr::from((Ipv6Addr::LOCALHOST, 4711));
    for _ in 0..256 {
        let Ok(op) = u.arbitrary::<ReflectorOp>() else {
            break;
        };
        let pick =
            |i: u8, peers: &[PeerId]| peers.get(usize::from(i) % peers.len().max(1)).copied();
        match op {
            ReflectorOp::Accept => peers.push(r.accept(now, remote)),
            ReflectorOp::Send(i, m) => {
                if let Some(p) = pick(i, &peers) {
                    r.receive(p, now, &m.frame());
                }
            }
            ReflectorOp::Raw(i, bytes) => {
                if let Some(p) = pick(i, &peers) {
                    r.receive(p, now, &bytes);
                }
            }
            ReflectorOp::Close(i) => {
                if let Some(p) = pick(i, &peers) {
                    r.transport_closed(p, now);
                }
            }
            ReflectorOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                r.handle_timeout(now);
            }
        }
        while r.poll_output().is_some() {}
        while let Some((p, _)) = r.poll_closed() {
            peers.retain(|x| *x != p);
        }
        let live: BTreeSet<PeerId> = r.peers().iter().map(|p| p.id).collect();
        assert_eq!(live, peers.iter().copied().collect());
        let mut count = 0;
        for (_, announcers) in r.table().iter() {
            count += 1;
            assert!(!announcers.is_empty());
            assert!(announcers.iter().all(|a| live.contains(a)));
        }
        assert_eq!(count, r.table().len());
    }
}

#[derive(Debug, Arbitrary)]
enum ClientOp {
    Connected(bool),
    DialFailed(bool),
    Receive(bool, FuzzMsg),
    Raw(bool, Vec<u8>),
    Closed(bool),
    Subscribe(u8),
    Unsubscribe(u8),
    Announce(FuzzRoute),
    Withdraw(FuzzRoute),
    Advance(u16),
}

/// The client on arbitrary server behaviour: the events always rebuild
/// exactly its route table, which never shows its own announcements.
pub fn client(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut now = Instant::now();
    let grace = Duration::from_millis(u64::from(u.arbitrary::<u8>().unwrap_or(0)) * 20);
    let mut c = ClientCore::new(ClientConfig {
        keepalive_secs: 1,
        grace,
        ..ClientConfig::default()
    });
    c.add_server(now);
    c.add_server(now);
    let mut applied: BTreeSet<Route> = BTreeSet::new();
    let sid = |b: bool| ServerId(usize::from(b));
    let vni = |v: u8| Vni::new(u32::from(v % 4)).unwrap_or(Vni::new(0).expect("0 is a VNI"));
    for _ in 0..256 {
        let Ok(op) = u.arbitrary::<ClientOp>() else {
            break;
        };
        match op {
            ClientOp::Connected(s) => c.connected(sid(s), now),
            ClientOp::DialFailed(s) => c.dial_failed(sid(s), now),
            ClientOp::Receive(s, m) => c.receive(sid(s), now, &m.frame()),
            ClientOp::Raw(s, bytes) => c.receive(sid(s), now, &bytes),
            ClientOp::Closed(s) => c.transport_closed(sid(s), now),
            ClientOp::Subscribe(v) => {
                c.subscribe(vni(v));
            }
            ClientOp::Unsubscribe(v) => {
                c.unsubscribe(vni(v));
            }
            ClientOp::Announce(r) => {
                c.announce(r.route());
            }
            ClientOp::Withdraw(r) => {
                c.withdraw(&r.route());
            }
            ClientOp::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                c.handle_timeout(now);
            }
        }
        while c.poll_output().is_some() {}
        while c.poll_action().is_some() {}
        while let Some(ev) = c.poll_event() {
            match ev {
                RouteEvent::Add(r) => assert!(applied.insert(r), "double Add"),
                RouteEvent::Remove(r) => assert!(applied.remove(&r), "Remove of absent route"),
            }
        }
        let table: BTreeSet<Route> = c.routes().collect();
        assert_eq!(table, applied);
        assert!(c.announcements().all(|a| !table.contains(a)));
        let learned: BTreeSet<Route> = c.table().iter().map(|(r, _)| r).collect();
        assert!(table.is_subset(&learned));
        let subs: BTreeSet<Vni> = c.subscriptions().collect();
        assert!(table.iter().all(|r| subs.contains(&r.vni)));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn codec_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            super::codec(&data);
        }

        #[test]
        fn connection_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            super::connection(&data);
        }

        #[test]
        fn reflector_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            super::reflector(&data);
        }

        #[test]
        fn client_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            super::client(&data);
        }
    }
}
