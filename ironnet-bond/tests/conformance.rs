//! Byte-level conformance: frames written out by hand from the protocol
//! description (version 1, 16-bit big-endian length, type, protobuf body
//! with metalbond's field numbers), checked in both directions: what we
//! encode is exactly these bytes, and these bytes decode to the message.
#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use ironnet_bond::CodecError;
use ironnet_bond::codec::{self, Action, Decoder, Message};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![1, 0, body.len() as u8, ty];
    f.extend_from_slice(body);
    f
}

fn both_ways(msg: Message, bytes: &[u8]) {
    let mut out = Vec::new();
    codec::encode(&msg, &mut out).unwrap();
    assert_eq!(out, bytes, "encoding {msg:?}");
    assert_eq!(codec::decode(bytes).unwrap(), Some((msg, bytes.len())));
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

#[test]
fn hello_from_server_and_client() {
    // Hello{keepaliveInterval(1)=5, isServer(2)=true}
    both_ways(
        Message::Hello {
            keepalive_secs: 5,
            is_server: true,
        },
        &[0x01, 0x00, 0x04, 0x01, 0x08, 0x05, 0x10, 0x01],
    );
    // isServer=false is the proto3 default and not written.
    both_ways(
        Message::Hello {
            keepalive_secs: 3,
            is_server: false,
        },
        &[0x01, 0x00, 0x02, 0x01, 0x08, 0x03],
    );
}

#[test]
fn keepalive_subscribe_unsubscribe() {
    both_ways(Message::Keepalive, &[0x01, 0x00, 0x00, 0x02]);
    // Subscription{vni(1)=100}
    both_ways(
        Message::Subscribe(vni(100)),
        &[0x01, 0x00, 0x02, 0x03, 0x08, 0x64],
    );
    // vni 300 is the varint AC 02.
    both_ways(
        Message::Unsubscribe(vni(300)),
        &[0x01, 0x00, 0x03, 0x04, 0x08, 0xac, 0x02],
    );
}

#[test]
fn update_add_standard_ipv4() {
    let underlay: Ipv6Addr = "fd00::1".parse().unwrap();
    let route = Route {
        vni: vni(100),
        destination: Destination::new("10.0.0.0/24".parse().unwrap()),
        next_hop: NextHop {
            underlay,
            vni: vni(100),
            kind: NextHopKind::Standard,
        },
    };
    // Destination{ipVersion(1)=IPv4(0) omitted, prefix(2)=0a000000, prefixLength(3)=24}
    let dest = [0x12, 0x04, 0x0a, 0x00, 0x00, 0x00, 0x18, 0x18];
    // NextHop{targetAddress(1)=fd00::1, targetVNI(2)=100, type(3)=STANDARD(0) omitted}
    let mut hop = vec![0x0a, 0x10];
    hop.extend_from_slice(&underlay.octets());
    hop.extend_from_slice(&[0x10, 0x64]);
    // Update{action(1)=ADD(0) omitted, vni(2)=100, destination(3), nextHop(4)}
    let mut body = vec![0x10, 0x64, 0x1a, dest.len() as u8];
    body.extend_from_slice(&dest);
    body.extend_from_slice(&[0x22, hop.len() as u8]);
    body.extend_from_slice(&hop);
    assert_eq!(body.len(), 34);
    both_ways(Message::Update(Action::Add, route), &frame(5, &body));
}

#[test]
fn update_remove_nat_ipv6_with_ports_above_32767() {
    let underlay: Ipv6Addr = "fd00:0:0:1::7".parse().unwrap();
    let prefix: Ipv6Addr = "2001:db8::".parse().unwrap();
    let route = Route {
        vni: vni(7),
        destination: Destination::new("2001:db8::/32".parse().unwrap()),
        next_hop: NextHop {
            underlay,
            vni: vni(7),
            kind: NextHopKind::Nat {
                port_from: 1024,
                port_to: 65535,
            },
        },
    };
    // Destination{ipVersion=IPv6(1), prefix=16 bytes, prefixLength=32}
    let mut dest = vec![0x08, 0x01, 0x12, 0x10];
    dest.extend_from_slice(&prefix.octets());
    dest.extend_from_slice(&[0x18, 0x20]);
    // NextHop{address, targetVNI=7, type=NAT(1), from(4)=1024, to(5)=65535}
    let mut hop = vec![0x0a, 0x10];
    hop.extend_from_slice(&underlay.octets());
    hop.extend_from_slice(&[
        0x10, 0x07, 0x18, 0x01, 0x20, 0x80, 0x08, 0x28, 0xff, 0xff, 0x03,
    ]);
    // Update{action=REMOVE(1), vni=7, destination, nextHop}
    let mut body = vec![0x08, 0x01, 0x10, 0x07, 0x1a, dest.len() as u8];
    body.extend_from_slice(&dest);
    body.extend_from_slice(&[0x22, hop.len() as u8]);
    body.extend_from_slice(&hop);
    assert_eq!(body.len(), 59);
    both_ways(Message::Update(Action::Remove, route), &frame(5, &body));
}

#[test]
fn update_load_balancer_target() {
    let underlay: Ipv6Addr = "fd00::2".parse().unwrap();
    let route = Route {
        vni: vni(1),
        destination: Destination::new("192.0.2.10/32".parse().unwrap()),
        next_hop: NextHop {
            underlay,
            vni: vni(1),
            kind: NextHopKind::LoadBalancerTarget,
        },
    };
    let dest = [0x12, 0x04, 192, 0, 2, 10, 0x18, 0x20];
    let mut hop = vec![0x0a, 0x10];
    hop.extend_from_slice(&underlay.octets());
    hop.extend_from_slice(&[0x10, 0x01, 0x18, 0x02]);
    let mut body = vec![0x10, 0x01, 0x1a, dest.len() as u8];
    body.extend_from_slice(&dest);
    body.extend_from_slice(&[0x22, hop.len() as u8]);
    body.extend_from_slice(&hop);
    both_ways(Message::Update(Action::Add, route), &frame(5, &body));
}

#[test]
fn frames_split_anywhere_and_batched_decode_the_same() {
    let mut stream = Vec::new();
    stream.extend_from_slice(&[0x01, 0x00, 0x02, 0x01, 0x08, 0x03]);
    stream.extend_from_slice(&[0x01, 0x00, 0x00, 0x02]);
    stream.extend_from_slice(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x64]);
    let want = vec![
        Message::Hello {
            keepalive_secs: 3,
            is_server: false,
        },
        Message::Keepalive,
        Message::Subscribe(vni(100)),
    ];
    for chunk in 1..=stream.len() {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            d.feed(piece);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, want, "chunk size {chunk}");
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn malformed_frames_are_typed_errors() {
    // Version 2.
    assert_eq!(
        codec::decode(&[0x02, 0x00, 0x00, 0x02]),
        Err(CodecError::BadVersion(2))
    );
    // Type 6 and type 0.
    assert_eq!(
        codec::decode(&[0x01, 0x00, 0x00, 0x06]),
        Err(CodecError::UnknownType(6))
    );
    assert_eq!(
        codec::decode(&[0x01, 0x00, 0x00, 0x00]),
        Err(CodecError::UnknownType(0))
    );
    // A 1189-byte body is refused from the header alone.
    assert!(matches!(
        codec::decode(&[0x01, 0x04, 0xa5, 0x05]),
        Err(CodecError::TooLarge { len: 1189, .. })
    ));
    // A truncated varint.
    assert!(matches!(
        codec::decode(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x80]),
        Err(CodecError::Decode { .. })
    ));
    // VNI above 24 bits: 0x01000000 = varint 80 80 80 08.
    assert!(matches!(
        codec::decode(&[0x01, 0x00, 0x05, 0x03, 0x08, 0x80, 0x80, 0x80, 0x08]),
        Err(CodecError::InvalidField { field: "vni", .. })
    ));
    // UPDATE without destination: only vni.
    assert!(matches!(
        codec::decode(&frame(5, &[0x10, 0x01])),
        Err(CodecError::MissingField {
            field: "destination",
            ..
        })
    ));
    // IPv4 destination with a 5-byte prefix.
    let mut body = vec![
        0x10, 0x01, 0x1a, 0x09, 0x12, 0x05, 1, 2, 3, 4, 5, 0x18, 0x18,
    ];
    body.extend_from_slice(&[0x22, 0x12, 0x0a, 0x10]);
    body.extend_from_slice(&[0; 16]);
    assert!(matches!(
        codec::decode(&frame(5, &body)),
        Err(CodecError::InvalidField {
            field: "prefix",
            ..
        })
    ));
    // Prefix length 33 for IPv4.
    let mut body = vec![0x10, 0x01, 0x1a, 0x08, 0x12, 0x04, 1, 2, 3, 4, 0x18, 0x21];
    body.extend_from_slice(&[0x22, 0x12, 0x0a, 0x10]);
    body.extend_from_slice(&[0; 16]);
    assert!(matches!(
        codec::decode(&frame(5, &body)),
        Err(CodecError::InvalidField {
            field: "prefixLength",
            ..
        })
    ));
    // NAT port above 65535.
    let mut body = vec![0x10, 0x01, 0x1a, 0x08, 0x12, 0x04, 1, 2, 3, 4, 0x18, 0x20];
    let mut hop = vec![0x0a, 0x10];
    hop.extend_from_slice(&[0; 16]);
    hop.extend_from_slice(&[0x18, 0x01, 0x20, 0x80, 0x80, 0x04]);
    body.extend_from_slice(&[0x22, hop.len() as u8]);
    body.extend_from_slice(&hop);
    assert!(matches!(
        codec::decode(&frame(5, &body)),
        Err(CodecError::InvalidField { .. })
    ));
}

#[test]
fn largest_message_fits_the_body_limit() {
    // The send-side limit can never trigger for v1 messages: the largest
    // UPDATE (every field at its maximum) is far below 1188 bytes.
    let route = Route {
        vni: vni(Vni::MAX),
        destination: Destination::new("ffff::/128".parse().unwrap()),
        next_hop: NextHop {
            underlay: Ipv6Addr::from([0xff; 16]),
            vni: vni(Vni::MAX),
            kind: NextHopKind::Nat {
                port_from: u16::MAX,
                port_to: u16::MAX,
            },
        },
    };
    let mut out = Vec::new();
    codec::encode(&Message::Update(Action::Remove, route), &mut out).unwrap();
    assert!(out.len() - codec::HEADER_LEN <= codec::MAX_BODY_LEN);
}
