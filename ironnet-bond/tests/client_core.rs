//! The client core against a scripted server that behaves as metalbond's
//! does (its dump echoes our own routes; it never re-sends a route we stop
//! announcing), and the reflector's handling of odd requests.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ironnet_bond::client::{ClientConfig, ClientCore, RouteEvent, ServerId};
use ironnet_bond::codec::{self, Action, Decoder, Message};
use ironnet_bond::reflector::{PeerId, Reflector};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};

fn frame(msg: Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(&msg, &mut out).unwrap();
    out
}

fn route(hop: u16) -> Route {
    let vni = Vni::new(7).unwrap();
    Route {
        vni,
        destination: Destination::new("0.0.0.0/0".parse().unwrap()),
        next_hop: NextHop {
            underlay: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, hop),
            vni,
            kind: NextHopKind::Standard,
        },
    }
}

/// A client whose only server has completed the handshake.
fn established() -> (ClientCore, Instant) {
    let now = Instant::now();
    let mut c = ClientCore::new(ClientConfig::default());
    let s = c.add_server(now);
    c.handle_timeout(now);
    c.connected(s, now);
    c.receive(
        s,
        now,
        &frame(Message::Hello {
            keepalive_secs: 5,
            is_server: true,
        }),
    );
    c.receive(s, now, &frame(Message::Keepalive));
    while c.poll_output().is_some() {}
    while c.poll_action().is_some() {}
    (c, now)
}

fn events(c: &mut ClientCore) -> Vec<RouteEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn own_routes_are_masked_not_dropped() {
    let (mut c, now) = established();
    let s = ServerId(0);
    let r = route(1);
    c.subscribe(r.vni);
    // Another host provides the anycast route.
    c.receive(s, now, &frame(Message::Update(Action::Add, r)));
    assert_eq!(events(&mut c), [RouteEvent::Add(r)]);
    // We announce it too: it is ours now, not a learned route.
    c.announce(r);
    assert_eq!(events(&mut c), [RouteEvent::Remove(r)]);
    assert_eq!(c.routes().count(), 0);
    // A metalbond server echoes it in a dump: still masked.
    c.receive(s, now, &frame(Message::Update(Action::Add, r)));
    assert!(events(&mut c).is_empty());
    // We withdraw; a metalbond server sends nothing, yet the other host
    // still provides the route, so it is learned again.
    c.withdraw(&r);
    assert_eq!(events(&mut c), [RouteEvent::Add(r)]);
    assert_eq!(c.routes().collect::<Vec<_>>(), [r]);
}

#[test]
fn unsubscribe_forgets_own_announcements_without_events() {
    let (mut c, now) = established();
    let s = ServerId(0);
    let (mine, theirs) = (route(1), route(2));
    c.subscribe(mine.vni);
    c.announce(mine);
    c.receive(s, now, &frame(Message::Update(Action::Add, mine)));
    c.receive(s, now, &frame(Message::Update(Action::Add, theirs)));
    assert_eq!(events(&mut c), [RouteEvent::Add(theirs)]);
    c.unsubscribe(mine.vni);
    assert_eq!(events(&mut c), [RouteEvent::Remove(theirs)]);
    assert_eq!(c.announcements().count(), 0);
    assert_eq!(c.table().len(), 0);
}

#[test]
fn unsubscribe_from_an_unsubscribed_vni_changes_nothing() {
    let now = Instant::now();
    let mut r = Reflector::new(5);
    let remote = SocketAddr::from((Ipv6Addr::LOCALHOST, 1));
    let p = r.accept(now, remote);
    let hello = frame(Message::Hello {
        keepalive_secs: 5,
        is_server: false,
    });
    r.receive(p, now, &[hello, frame(Message::Keepalive)].concat());
    let mine = route(1);
    r.receive(p, now, &frame(Message::Update(Action::Add, mine)));
    assert_eq!(r.table().len(), 1);
    // UNSUBSCRIBE without SUBSCRIBE: the announcement stays.
    r.receive(p, now, &frame(Message::Unsubscribe(mine.vni)));
    assert_eq!(r.table().len(), 1);
    // After SUBSCRIBE, UNSUBSCRIBE withdraws it (metalbond's meaning).
    r.receive(p, now, &frame(Message::Subscribe(mine.vni)));
    r.receive(p, now, &frame(Message::Unsubscribe(mine.vni)));
    assert_eq!(r.table().len(), 0);
    // The peer never heard of its own route.
    let mut d = Decoder::new();
    while let Some((_, bytes)) = r.poll_output() {
        d.feed(&bytes);
    }
    while let Some(m) = d.next_message().unwrap() {
        assert!(!matches!(m, Message::Update(..)), "{m:?}");
    }
}

/// Connects a peer to `r`, subscribes it to `vni`; its id.
fn peer(r: &mut Reflector, now: Instant, port: u16, vni: Vni) -> PeerId {
    let p = r.accept(now, SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    let hello = frame(Message::Hello {
        keepalive_secs: 5,
        is_server: false,
    });
    r.receive(p, now, &[hello, frame(Message::Keepalive)].concat());
    r.receive(p, now, &frame(Message::Subscribe(vni)));
    p
}

/// Every UPDATE queued for `who`, drained from the reflector (other
/// peers' output is dropped).
fn updates_for(r: &mut Reflector, who: PeerId) -> Vec<(Action, Route)> {
    let mut d = Decoder::new();
    while let Some((id, bytes)) = r.poll_output() {
        if id == who {
            d.feed(&bytes);
        }
    }
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        if let Message::Update(a, rt) = m {
            out.push((a, rt));
        }
    }
    out
}

#[test]
fn a_departed_peers_routes_outlive_it_by_the_grace_and_pass_to_its_successor() {
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    let mut r = Reflector::new(5).with_departed_grace(grace);
    let (kept, dropped) = (route(1), route(2));
    let watcher = peer(&mut r, t0, 1, kept.vni);
    let old = peer(&mut r, t0, 2, kept.vni);
    for rt in [kept, dropped] {
        r.receive(old, t0, &frame(Message::Update(Action::Add, rt)));
    }
    assert_eq!(updates_for(&mut r, watcher).len(), 2);

    // The announcer goes away: nothing is withdrawn yet.
    r.transport_closed(old, t0);
    assert_eq!(r.departed_count(), 1);
    assert!(r.poll_timeout().is_some_and(|t| t <= t0 + grace));
    r.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(r.table().len(), 2);
    assert!(updates_for(&mut r, watcher).is_empty());

    // Its successor announces one of the two routes again: the watcher
    // hears nothing; when the grace ends only the other is withdrawn.
    let t1 = t0 + Duration::from_secs(6);
    let new = peer(&mut r, t1, 3, kept.vni);
    r.receive(new, t1, &frame(Message::Update(Action::Add, kept)));
    assert!(updates_for(&mut r, watcher).is_empty());
    r.handle_timeout(t0 + grace);
    assert_eq!(r.departed_count(), 0);
    assert_eq!(
        updates_for(&mut r, watcher),
        vec![(Action::Remove, dropped)]
    );
    assert_eq!(r.table().len(), 1);
    assert_eq!(r.table().announcers(&kept).collect::<Vec<_>>(), vec![new]);
}

#[test]
fn without_a_grace_a_departed_peers_routes_go_at_once() {
    let t0 = Instant::now();
    let mut r = Reflector::new(5);
    let rt = route(1);
    let watcher = peer(&mut r, t0, 1, rt.vni);
    let old = peer(&mut r, t0, 2, rt.vni);
    r.receive(old, t0, &frame(Message::Update(Action::Add, rt)));
    let _ = updates_for(&mut r, watcher);
    r.transport_closed(old, t0);
    assert_eq!(updates_for(&mut r, watcher), vec![(Action::Remove, rt)]);
    assert!(r.table().is_empty());
}
