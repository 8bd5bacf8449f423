//! Codec round trips and limits; the state machine on a virtual clock.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use proptest::prelude::*;

use crate::codec::{self, Action, Decoder, MAX_BODY_LEN, Message};
use crate::conn::{CloseReason, Connection, Event, Role, SendError, State};
use crate::error::CodecError;

fn route_strategy() -> impl Strategy<Value = Route> {
    let prefix = prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpNet::new(
            std::net::Ipv4Addr::from(a).into(),
            l
        )
        .unwrap()),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::new(Ipv6Addr::from(a).into(), l).unwrap()),
    ];
    let kind = prop_oneof![
        Just(NextHopKind::Standard),
        Just(NextHopKind::LoadBalancerTarget),
        (any::<u16>(), any::<u16>())
            .prop_map(|(port_from, port_to)| NextHopKind::Nat { port_from, port_to }),
    ];
    (
        0u32..=Vni::MAX,
        prefix,
        any::<u128>(),
        0u32..=Vni::MAX,
        kind,
    )
        .prop_map(|(v, p, u, tv, kind)| Route {
            vni: Vni::new(v).unwrap(),
            destination: Destination::new(p),
            next_hop: NextHop {
                underlay: Ipv6Addr::from(u),
                vni: Vni::new(tv).unwrap(),
                kind,
            },
        })
}

fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), any::<bool>()).prop_map(|(keepalive_secs, is_server)| Message::Hello {
            keepalive_secs,
            is_server
        }),
        Just(Message::Keepalive),
        (0u32..=Vni::MAX).prop_map(|v| Message::Subscribe(Vni::new(v).unwrap())),
        (0u32..=Vni::MAX).prop_map(|v| Message::Unsubscribe(Vni::new(v).unwrap())),
        (any::<bool>(), route_strategy()).prop_map(|(add, r)| Message::Update(
            if add { Action::Add } else { Action::Remove },
            r
        )),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_whatever_the_read_boundaries(
        msgs in proptest::collection::vec(message_strategy(), 1..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            codec::encode(m, &mut stream).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for w in cuts.windows(2) {
            dec.feed(&stream[w[0]..w[1]]);
            while let Some(m) = dec.next_message().unwrap() {
                out.push(m);
            }
        }
        prop_assert_eq!(out, msgs);
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut dec = Decoder::new();
        dec.feed(&bytes);
        while let Ok(Some(_)) = dec.next_message() {}
    }
}

#[test]
fn prefixes_are_canonical_on_the_wire() {
    // An UPDATE for 10.0.0.1/24 as metalbond may send it decodes to 10.0.0.0/24.
    let route = Route {
        vni: Vni::new(100).unwrap(),
        destination: Destination::new("10.0.0.0/24".parse().unwrap()),
        next_hop: NextHop {
            underlay: Ipv6Addr::LOCALHOST,
            vni: Vni::new(100).unwrap(),
            kind: NextHopKind::Standard,
        },
    };
    let mut pb = crate::pb::Update {
        action: 0,
        vni: 100,
        destination: Some(crate::pb::Destination {
            ip_version: 0,
            prefix: vec![10, 0, 0, 1],
            prefix_length: 24,
        }),
        next_hop: Some(crate::pb::NextHop {
            target_address: Ipv6Addr::LOCALHOST.octets().to_vec(),
            target_vni: 100,
            r#type: 0,
            nat_port_range_from: 0,
            nat_port_range_to: 0,
        }),
    };
    let frame = |u: &crate::pb::Update| {
        let body = prost::Message::encode_to_vec(u);
        let mut f = vec![1, 0, body.len() as u8, 5];
        f.extend_from_slice(&body);
        f
    };
    assert_eq!(
        codec::decode(&frame(&pb)).unwrap(),
        Some((Message::Update(Action::Add, route), frame(&pb).len()))
    );

    // Missing next hop, short address and unknown type are typed errors.
    pb.next_hop.as_mut().unwrap().target_address.truncate(4);
    assert!(matches!(
        codec::decode(&frame(&pb)),
        Err(CodecError::InvalidField {
            field: "targetAddress",
            ..
        })
    ));
    pb.next_hop = None;
    assert!(matches!(
        codec::decode(&frame(&pb)),
        Err(CodecError::MissingField {
            field: "nextHop",
            ..
        })
    ));
}

#[test]
fn bad_frames_are_refused() {
    assert_eq!(codec::decode(&[2]), Err(CodecError::BadVersion(2)));
    assert_eq!(
        codec::decode(&[1, 0, 0, 9]),
        Err(CodecError::UnknownType(9))
    );
    let len = (MAX_BODY_LEN + 1) as u16;
    let [hi, lo] = len.to_be_bytes();
    assert!(matches!(
        codec::decode(&[1, hi, lo, 5]),
        Err(CodecError::TooLarge { .. })
    ));
    assert!(matches!(
        codec::decode(&[1, 0, 2, 3, 0xff, 0xff]),
        Err(CodecError::Decode { .. })
    ));
    assert_eq!(codec::decode(&[1, 0, 5]), Ok(None));
}

/// Moves messages between two connections until both are quiet.
fn pump(a: &mut Connection, b: &mut Connection, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(m) = a.poll_transmit() {
            b.handle(now, m);
            moved = true;
        }
        while let Some(m) = b.poll_transmit() {
            a.handle(now, m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn handshake_negotiates_the_smaller_keepalive() {
    let t0 = Instant::now();
    let mut client = Connection::new(Role::Client, 5, t0);
    let mut server = Connection::new(Role::Server, 3, t0);
    pump(&mut client, &mut server, t0);
    assert_eq!(client.state(), State::Established);
    assert_eq!(server.state(), State::Established);
    assert_eq!(
        events(&mut client),
        vec![Event::Established(Duration::from_secs(3))]
    );
    assert_eq!(
        events(&mut server),
        vec![Event::Established(Duration::from_secs(3))]
    );
}

#[test]
fn client_keeps_alive_and_silence_times_out_after_two_and_a_half_intervals() {
    let t0 = Instant::now();
    let mut client = Connection::new(Role::Client, 2, t0);
    let mut server = Connection::new(Role::Server, 2, t0);
    pump(&mut client, &mut server, t0);
    // For a minute both sides keep each other alive.
    let mut now = t0;
    for _ in 0..60 {
        now += Duration::from_secs(1);
        client.handle_timeout(now);
        server.handle_timeout(now);
        pump(&mut client, &mut server, now);
    }
    assert!(client.is_established() && server.is_established());
    // The server goes silent: the client gives up 5 s (2.5 × 2 s) after the
    // last echo.
    let last = now;
    now += Duration::from_millis(4900);
    client.handle_timeout(now);
    while client.poll_transmit().is_some() {}
    assert!(client.is_established());
    now = last + Duration::from_secs(5);
    client.handle_timeout(now);
    assert_eq!(client.state(), State::Closed);
    assert!(
        events(&mut client).contains(&Event::Closed(CloseReason::KeepaliveTimeout(
            Duration::from_secs(5)
        )))
    );
}

#[test]
fn protocol_violations_close_with_a_reason() {
    let t0 = Instant::now();
    let mut server = Connection::new(Role::Server, 3, t0);
    server.handle(
        t0,
        Message::Hello {
            keepalive_secs: 0,
            is_server: false,
        },
    );
    assert_eq!(
        events(&mut server),
        vec![Event::Closed(CloseReason::ZeroKeepalive)]
    );

    let mut server = Connection::new(Role::Server, 3, t0);
    server.handle(t0, Message::Keepalive);
    assert!(matches!(
        events(&mut server)[..],
        [Event::Closed(CloseReason::Unexpected {
            message: "KEEPALIVE",
            ..
        })]
    ));

    // A client does not accept SUBSCRIBE; nobody sends routes before ESTABLISHED.
    let mut client = Connection::new(Role::Client, 3, t0);
    let mut server = Connection::new(Role::Server, 3, t0);
    pump(&mut client, &mut server, t0);
    assert_eq!(
        server.send(Message::Subscribe(Vni::new(1).unwrap())),
        Err(SendError::ServerSubscribe)
    );
    client.handle(t0, Message::Subscribe(Vni::new(1).unwrap()));
    assert_eq!(client.state(), State::Closed);
    let mut fresh = Connection::new(Role::Client, 3, t0);
    assert!(matches!(
        fresh.send(Message::Subscribe(Vni::new(1).unwrap())),
        Err(SendError::NotEstablished(_))
    ));
}

#[test]
fn handshake_that_never_finishes_times_out() {
    let t0 = Instant::now();
    let mut client = Connection::new(Role::Client, 4, t0);
    client.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(client.state(), State::Closed);
    assert!(matches!(
        events(&mut client)[..],
        [Event::Closed(CloseReason::HandshakeTimeout(_))]
    ));
}
