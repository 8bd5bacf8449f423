//! Emit → parse round trips for every `Repr`, and header-walk checks.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::arp::ArpOperation;
use super::dhcpv4::{self, BootOp, ClasslessRoute, Dhcpv4Packet, Dhcpv4Repr};
use super::dhcpv6::{self, Dhcpv6Packet, Dhcpv6Repr, IaAddr, IaNa, StatusCode};
use super::ethernet::VlanTag;
use super::icmpv6::{NdpRepr, PrefixInfo};
use super::ip::RawOptions;
use super::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn raw_options(layer: Layer) -> impl Strategy<Value = RawOptions> {
    (0usize..=10)
        .prop_flat_map(|words| vec(any::<u8>(), words * 4))
        .prop_map(move |b| RawOptions::new(layer, &b).unwrap())
}

fn pair() -> impl Strategy<Value = IpPair> {
    prop_oneof![
        (v4(), v4()).prop_map(|(src, dst)| IpPair::V4 { src, dst }),
        (v6(), v6()).prop_map(|(src, dst)| IpPair::V6 { src, dst }),
    ]
}

proptest! {
    #[test]
    fn ethernet_round_trip(
        src in mac(), dst in mac(), ty in any::<u16>(),
        vlan in proptest::option::of((prop_oneof![Just(EtherType::VLAN), Just(EtherType::QINQ)], any::<u16>())),
        payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = EthernetRepr {
            src, dst,
            vlan: vlan.map(|(tpid, tci)| VlanTag { tpid, tci }),
            ethertype: EtherType(ty),
        };
        let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
        repr.emit(&mut buf);
        buf[repr.buffer_len()..].copy_from_slice(&payload);
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), repr);
        prop_assert_eq!(frame.payload(), &payload[..]);
        prop_assert_eq!(frame.is_vlan_tagged(), vlan.is_some());
    }

    #[test]
    fn arp_round_trip(op in any::<u16>(), sm in mac(), si in v4(), tm in mac(), ti in v4()) {
        let repr = ArpRepr {
            operation: ArpOperation::from(op),
            sender_mac: sm, sender_ip: si, target_mac: tm, target_ip: ti,
        };
        let mut buf = [0u8; 28];
        repr.emit(&mut buf);
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(), repr);
    }

    #[test]
    fn ipv4_round_trip(
        src in v4(), dst in v4(), proto in any::<u8>(), ttl in any::<u8>(), tos in any::<u8>(),
        ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(), frag in 0u16..8192,
        options in raw_options(Layer::Ipv4), payload in vec(any::<u8>(), 0..64), padding in 0usize..8,
    ) {
        let repr = Ipv4Repr {
            src, dst, protocol: IpProtocol(proto), payload_len: payload.len(), ttl, dscp_ecn: tos,
            ident, dont_frag: df, more_frags: mf, frag_offset: frag * 8, options,
        };
        let mut buf = vec![0u8; repr.total_len() + padding];
        repr.emit(&mut buf).unwrap();
        buf[repr.header_len()..repr.total_len()].copy_from_slice(&payload);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn ipv4_setters_keep_checksum_valid(
        src in v4(), dst in v4(), ttl in any::<u8>(), new_src in v4(), new_dst in v4(), new_ttl in any::<u8>(),
    ) {
        let repr = Ipv4Repr {
            src, dst, protocol: IpProtocol::UDP, payload_len: 0, ttl, dscp_ecn: 0, ident: 1,
            dont_frag: true, more_frags: false, frag_offset: 0, options: RawOptions::default(),
        };
        let mut buf = [0u8; 20];
        repr.emit(&mut buf).unwrap();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_src(new_src);
        p.set_dst(new_dst);
        p.set_ttl(new_ttl);
        prop_assert!(p.verify_checksum());
        prop_assert_eq!((p.src(), p.dst(), p.ttl()), (new_src, new_dst, new_ttl));
    }

    #[test]
    fn ipv6_round_trip(
        src in v6(), dst in v6(), nh in any::<u8>(), hl in any::<u8>(), tc in any::<u8>(),
        flow in 0u32..(1 << 20), payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = Ipv6Repr {
            src, dst, next_header: IpProtocol(nh), payload_len: payload.len(), hop_limit: hl,
            traffic_class: tc, flow_label: flow,
        };
        let mut buf = vec![0u8; 40 + payload.len()];
        repr.emit(&mut buf).unwrap();
        buf[40..].copy_from_slice(&payload);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p), repr);
    }

    #[test]
    fn udp_round_trip(addrs in pair(), sp in any::<u16>(), dp in any::<u16>(), payload in vec(any::<u8>(), 0..64)) {
        let repr = UdpRepr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[8..].copy_from_slice(&payload);
        repr.emit(&mut buf, &addrs).unwrap();
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_ne!(p.checksum(), 0);
        prop_assert_eq!(UdpRepr::parse(&p, &addrs).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn tcp_round_trip(
        addrs in pair(), sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
        flags in 0u16..0x200, window in any::<u16>(), urgent in any::<u16>(),
        options in raw_options(Layer::Tcp), payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = TcpRepr {
            src_port: sp, dst_port: dp, seq, ack, flags: TcpFlags(flags), window, urgent, options,
            payload_len: payload.len(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let hl = repr.header_len();
        buf[hl..].copy_from_slice(&payload);
        repr.emit(&mut buf, &addrs);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(TcpRepr::parse(&p, &addrs).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn icmpv4_round_trip(msg in icmpv4_message(), data in vec(any::<u8>(), 0..48)) {
        let repr = Icmpv4Repr { message: msg, data: &data };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn icmpv6_round_trip(src in v6(), dst in v6(), (msg, data) in icmpv6_message()) {
        let repr = Icmpv6Repr { message: msg, data: &data };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf, src, dst);
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Icmpv6Repr::parse(&p, src, dst).unwrap(), repr);
    }

    #[test]
    fn dhcpv4_round_trip(repr in dhcpv4_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        prop_assert!(buf.len() >= dhcpv4::MIN_EMIT_LEN);
        let p = Dhcpv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Dhcpv4Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn dhcpv6_round_trip(repr in dhcpv6_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        let p = Dhcpv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Dhcpv6Repr::parse(&p).unwrap(), repr);
    }
}

fn icmpv4_message() -> impl Strategy<Value = Icmpv4Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>())
            .prop_map(|(ident, seq)| Icmpv4Message::EchoRequest { ident, seq }),
        (any::<u16>(), any::<u16>())
            .prop_map(|(ident, seq)| Icmpv4Message::EchoReply { ident, seq }),
        (any::<u8>(), any::<u16>())
            .prop_map(|(code, next_hop_mtu)| Icmpv4Message::DstUnreachable { code, next_hop_mtu }),
        any::<u8>().prop_map(|code| Icmpv4Message::TimeExceeded { code }),
        (
            prop_oneof![Just(5u8), Just(13), Just(42)],
            any::<u8>(),
            any::<[u8; 4]>()
        )
            .prop_map(|(msg_type, code, rest)| Icmpv4Message::Other {
                msg_type,
                code,
                rest
            }),
    ]
}

fn ndp_repr() -> impl Strategy<Value = NdpRepr> {
    (
        proptest::option::of(mac()),
        proptest::option::of(mac()),
        proptest::option::of(any::<u32>()),
        proptest::option::of((
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            v6(),
        )),
    )
        .prop_map(|(source_ll, target_ll, mtu, prefix)| NdpRepr {
            source_ll,
            target_ll,
            mtu,
            prefix_info: prefix.map(
                |(prefix_len, on_link, autonomous, valid_lifetime, preferred_lifetime, prefix)| {
                    PrefixInfo {
                        prefix_len,
                        on_link,
                        autonomous,
                        valid_lifetime,
                        preferred_lifetime,
                        prefix,
                    }
                },
            ),
        })
}

fn icmpv6_message() -> impl Strategy<Value = (Icmpv6Message, Vec<u8>)> {
    let data = || vec(any::<u8>(), 0..48);
    prop_oneof![
        (any::<u8>(), data()).prop_map(|(code, d)| (Icmpv6Message::DstUnreachable { code }, d)),
        (any::<u32>(), data()).prop_map(|(mtu, d)| (Icmpv6Message::PacketTooBig { mtu }, d)),
        (any::<u8>(), data()).prop_map(|(code, d)| (Icmpv6Message::TimeExceeded { code }, d)),
        (any::<u8>(), any::<u32>(), data())
            .prop_map(|(code, pointer, d)| (Icmpv6Message::ParamProblem { code, pointer }, d)),
        (any::<u16>(), any::<u16>(), data())
            .prop_map(|(ident, seq, d)| (Icmpv6Message::EchoRequest { ident, seq }, d)),
        (any::<u16>(), any::<u16>(), data())
            .prop_map(|(ident, seq, d)| (Icmpv6Message::EchoReply { ident, seq }, d)),
        ndp_repr().prop_map(|options| (Icmpv6Message::RouterSolicit { options }, vec![])),
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            ndp_repr()
        )
            .prop_map(
                |(
                    cur_hop_limit,
                    managed,
                    other_config,
                    router_lifetime,
                    reachable_time,
                    retrans_time,
                    options,
                )| {
                    (
                        Icmpv6Message::RouterAdvert {
                            cur_hop_limit,
                            managed,
                            other_config,
                            router_lifetime,
                            reachable_time,
                            retrans_time,
                            options,
                        },
                        vec![],
                    )
                }
            ),
        (v6(), ndp_repr()).prop_map(|(target, options)| (
            Icmpv6Message::NeighborSolicit { target, options },
            vec![]
        )),
        (
            prop_oneof![Just(0u8), Just(0x80), Just(0x40), Just(0x20), Just(0xe0)],
            v6(),
            ndp_repr()
        )
            .prop_map(|(flags, target, options)| (
                Icmpv6Message::NeighborAdvert {
                    flags,
                    target,
                    options
                },
                vec![]
            )),
        (
            prop_oneof![Just(200u8), Just(137), Just(143)],
            any::<u8>(),
            data()
        )
            .prop_map(|(msg_type, code, d)| (Icmpv6Message::Other { msg_type, code }, d)),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 0..max)
}

fn dhcpv4_repr() -> impl Strategy<Value = Dhcpv4Repr> {
    let header = (
        prop_oneof![Just(BootOp::Request), Just(BootOp::Reply)],
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<bool>(),
        (v4(), v4(), v4(), v4()),
        mac(),
        name(64),
        name(128),
    );
    let opts1 = (
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(v4()),
        vec((v4(), 0u8..=32, v4()), 0..6),
        proptest::option::of(v4()),
        proptest::option::of(any::<u16>()),
        vec(v4(), 0..4),
        vec(v4(), 0..4),
    );
    let opts2 = (
        proptest::option::of(bytes(40)),
        proptest::option::of(v4()),
        bytes(20),
        proptest::option::of(bytes(40)),
        proptest::option::of(bytes(20)),
        proptest::option::of(bytes(20)),
        proptest::collection::btree_map(
            prop_oneof![Just(2u8), Just(15), Just(43), Just(66), Just(67), Just(250)],
            bytes(30),
            0..4,
        ),
    );
    (header, opts1, opts2).prop_map(|(h, o1, o2)| {
        let mut r = Dhcpv4Repr::empty(h.0);
        r.hops = h.1;
        r.xid = h.2;
        r.secs = h.3;
        r.broadcast = h.4;
        (r.ciaddr, r.yiaddr, r.siaddr, r.giaddr) = h.5;
        r.client_mac = h.6;
        r.server_name = h.7.into_iter().take(63).collect();
        r.boot_file = h.8.into_iter().take(127).collect();
        r.message_type = o1.0.map(Into::into);
        r.lease_time = o1.1;
        r.server_id = o1.2;
        r.classless_routes =
            o1.3.into_iter()
                .map(|(a, len, router)| ClasslessRoute {
                    destination: ipnet::Ipv4Net::new(a, len).unwrap().trunc(),
                    router,
                })
                .collect();
        r.subnet_mask = o1.4;
        r.mtu = o1.5;
        r.routers = o1.6;
        r.dns_servers = o1.7;
        r.hostname = o2.0;
        r.requested_ip = o2.1;
        r.parameter_request_list = o2.2;
        r.vendor_class = o2.3;
        r.client_id = o2.4;
        r.user_class = o2.5;
        r.other = o2.6.into_iter().collect();
        r
    })
}

fn status() -> impl Strategy<Value = StatusCode> {
    (any::<u16>(), bytes(20)).prop_map(|(code, message)| StatusCode { code, message })
}

fn ia_na() -> impl Strategy<Value = IaNa> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        vec(
            (
                v6(),
                any::<u32>(),
                any::<u32>(),
                proptest::option::of(status()),
            ),
            0..3,
        ),
        proptest::option::of(status()),
    )
        .prop_map(|(iaid, t1, t2, addrs, status)| IaNa {
            iaid,
            t1,
            t2,
            addresses: addrs
                .into_iter()
                .map(
                    |(addr, preferred_lifetime, valid_lifetime, status)| IaAddr {
                        addr,
                        preferred_lifetime,
                        valid_lifetime,
                        status,
                    },
                )
                .collect(),
            status,
        })
}

fn dhcpv6_repr() -> impl Strategy<Value = Dhcpv6Repr> {
    (
        (
            prop_oneof![1u8..=9, Just(11u8), Just(42u8)],
            0u32..(1 << 24),
        ),
        (
            proptest::option::of(bytes(30)),
            proptest::option::of(bytes(30)),
            vec(ia_na(), 0..3),
        ),
        (
            proptest::option::of(any::<u16>()),
            vec(any::<u16>(), 0..5),
            proptest::option::of(status()),
            any::<bool>(),
        ),
        (
            proptest::option::of(bytes(20)),
            proptest::option::of(bytes(20)),
            proptest::option::of(vec(v6(), 0..3)),
            proptest::option::of(name(40)),
        ),
        vec(
            (
                prop_oneof![Just(7u16), Just(24), Just(39), Just(1000)],
                bytes(20),
            ),
            0..3,
        ),
    )
        .prop_map(|(h, ids, misc, classes, other)| {
            let mut r = Dhcpv6Repr::new(h.0.into(), h.1);
            (r.client_id, r.server_id, r.ia_na) = ids;
            (r.elapsed_time, r.oro, r.status, r.rapid_commit) = misc;
            (r.user_class, r.vendor_class, r.dns_servers, r.boot_file_url) = classes;
            r.other = other;
            r
        })
}

#[test]
fn ipv6_walks_extension_headers() {
    // IPv6 → hop-by-hop (8) → destination options (16) → fragment (8) → UDP.
    let mut buf = vec![0u8; 40 + 8 + 16 + 8 + 8];
    let repr = Ipv6Repr {
        src: Ipv6Addr::LOCALHOST,
        dst: Ipv6Addr::LOCALHOST,
        next_header: IpProtocol::HOP_BY_HOP,
        payload_len: buf.len() - 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut buf).unwrap();
    buf[40] = IpProtocol::DEST_OPTS.0;
    buf[41] = 0;
    buf[48] = IpProtocol::FRAGMENT.0;
    buf[49] = 1;
    buf[64] = IpProtocol::UDP.0;
    let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
    let upper = p.upper_layer().unwrap();
    assert_eq!(upper.protocol, IpProtocol::UDP);
    assert_eq!(upper.offset, 72);
    assert_eq!(upper.fragment, Some((0, false)));
    assert!(upper.has_header());

    // A later fragment has no upper-layer header.
    buf[66] = 0x01;
    let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
    assert!(!p.upper_layer().unwrap().has_header());

    // A chain running past the payload is an error, not a panic.
    buf[49] = 200;
    let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
    assert!(matches!(p.upper_layer(), Err(WireError::Truncated { .. })));
}

#[test]
fn ipv4_rejects_inconsistent_lengths() {
    let mut buf = [0u8; 20];
    buf[0] = 0x46; // IHL 6 = 24 bytes > buffer
    buf[3] = 20;
    assert!(Ipv4Packet::new_checked(&buf[..]).is_err());
    buf[0] = 0x44; // IHL 4 < 5
    assert!(Ipv4Packet::new_checked(&buf[..]).is_err());
    buf[0] = 0x45;
    buf[3] = 40; // total length > buffer
    assert!(Ipv4Packet::new_checked(&buf[..]).is_err());
    buf[3] = 20;
    assert!(Ipv4Packet::new_checked(&buf[..]).is_ok());
}

#[test]
fn dhcpv4_concatenates_split_options_and_rejects_truncation() {
    let mut repr = Dhcpv4Repr::empty(BootOp::Request);
    repr.message_type = Some(dhcpv4::MessageType::Discover);
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    // Append hostname "ab" split over two option 12 instances, then END.
    let at = dhcpv4::OPTIONS_OFFSET + 3;
    buf[at..at + 7].copy_from_slice(&[12, 1, b'a', 12, 1, b'b', 255]);
    let parsed = Dhcpv4Repr::parse(&Dhcpv4Packet::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(parsed.hostname.as_deref(), Some(&b"ab"[..]));
    // An option claiming more bytes than the message has.
    buf[at..at + 3].copy_from_slice(&[12, 250, b'a']);
    let short = &buf[..at + 3];
    assert!(Dhcpv4Repr::parse(&Dhcpv4Packet::new_checked(short).unwrap()).is_err());
}

#[test]
fn dhcpv6_rejects_relay_and_truncated_options() {
    let buf = [12u8, 0, 0, 1];
    assert!(matches!(
        Dhcpv6Repr::parse(&Dhcpv6Packet::new_checked(&buf[..]).unwrap()),
        Err(WireError::Unsupported { .. })
    ));
    let buf = [1u8, 0, 0, 1, 0, 1, 0, 9, 1, 2];
    assert!(Dhcpv6Repr::parse(&Dhcpv6Packet::new_checked(&buf[..]).unwrap()).is_err());
    let _ = dhcpv6::SERVER_PORT;
}
