//! What the dp answers itself on a guest port: ARP for the gateway
//! 169.254.0.1, neighbour and router solicitations for fe80::1, DHCPv4 and
//! DHCPv6. Each handler returns the reply frame (sent back on the same
//! port) or a drop reason, and may learn the guest's MAC address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::dhcpv4::{
    self, BootOp, ClasslessRoute, Dhcpv4Packet, Dhcpv4Repr, MessageType as Dhcp4Type,
};
use ironnet_overlay::wire::dhcpv6::{
    self, Dhcpv6Packet, Dhcpv6Repr, IaAddr, IaNa, MessageType as Dhcp6Type, StatusCode,
};
use ironnet_overlay::wire::icmpv6::NdpRepr;
use ironnet_overlay::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv6Message,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, MacAddr,
};

use super::DropReason;
use crate::snapshot::{IfaceView, Snapshot};
use crate::state::Pxe;

/// The IPv4 gateway every guest uses.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// The IPv6 gateway every guest uses.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// All-nodes multicast.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RA/NA flags (RFC 4861).
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// iPXE's TFTP boot file, as dpservice serves it.
const IPXE_TFTP_FILE: &str = "ipxe/x86_64/ipxe.new";
const INFINITE: u32 = u32::MAX;

/// A reply, and the guest MAC it taught us (if any).
pub(crate) struct Answer {
    pub(crate) frame: Vec<u8>,
    pub(crate) learned: Option<MacAddr>,
}

fn eth_ipv6_multicast(dst: Ipv6Addr) -> MacAddr {
    let o = dst.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// ARP request for the gateway → reply. An ARP from the guest's own
/// address teaches its MAC; anything else is dropped.
pub(crate) fn arp(
    payload: &[u8],
    port_mac: MacAddr,
    iface: Option<&IfaceView>,
) -> Result<Answer, DropReason> {
    let p = ArpPacket::new_checked(payload).map_err(|_| DropReason::Malformed)?;
    let req = ArpRepr::parse(&p).map_err(|_| DropReason::Malformed)?;
    let learned = iface
        .and_then(|i| i.ipv4)
        .filter(|ip| *ip == req.sender_ip)
        .map(|_| req.sender_mac);
    if req.operation != ArpOperation::Request || req.target_ip != GATEWAY_V4 {
        return match learned {
            Some(_) => Err(DropReason::Consumed),
            None => Err(DropReason::ArpIgnored),
        };
    }
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        sender_mac: port_mac,
        sender_ip: GATEWAY_V4,
        target_mac: req.sender_mac,
        target_ip: req.sender_ip,
    };
    let eth = EthernetRepr {
        src: port_mac,
        dst: req.sender_mac,
        ethertype: EtherType::ARP,
        vlan: None,
    };
    let mut frame = vec![0u8; eth.buffer_len() + reply.buffer_len()];
    eth.emit(&mut frame);
    reply.emit(&mut frame[eth.buffer_len()..]);
    Ok(Answer { frame, learned })
}

/// NS for fe80::1 → NA; RS → RA (managed and other-config set, no prefix:
/// addresses come from DHCPv6).
pub(crate) fn neighbor_discovery(
    frame: &[u8],
    port_mac: MacAddr,
    snap: &Snapshot,
) -> Result<Answer, DropReason> {
    if !snap.ipv6_overlay {
        return Err(DropReason::NdDisabled);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
    let icmp = Icmpv6Packet::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
    if !icmp.verify_checksum(ip.src(), ip.dst()) {
        return Err(DropReason::Malformed);
    }
    let req = Icmpv6Repr::parse(&icmp, ip.src(), ip.dst()).map_err(|_| DropReason::Malformed)?;
    let (dst, eth_dst) = if ip.src().is_unspecified() {
        (ALL_NODES, eth_ipv6_multicast(ALL_NODES))
    } else {
        (ip.src(), eth.src())
    };
    let (message, learned) = match req.message {
        Icmpv6Message::NeighborSolicit { target, .. } if target == GATEWAY_V6 => (
            Icmpv6Message::NeighborAdvert {
                flags: NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
                target: GATEWAY_V6,
                options: NdpRepr {
                    target_ll: Some(port_mac),
                    ..NdpRepr::default()
                },
            },
            (!ip.src().is_unspecified()).then_some(eth.src()),
        ),
        Icmpv6Message::RouterSolicit { .. } => (
            Icmpv6Message::RouterAdvert {
                cur_hop_limit: 255,
                managed: true,
                other_config: true,
                router_lifetime: u16::MAX,
                reachable_time: 0,
                retrans_time: 0,
                options: NdpRepr {
                    source_ll: Some(port_mac),
                    ..NdpRepr::default()
                },
            },
            None,
        ),
        _ => return Err(DropReason::NdIgnored),
    };
    let reply = Icmpv6Repr { message, data: &[] };
    let mut icmp_bytes = vec![0u8; reply.buffer_len()];
    reply.emit(&mut icmp_bytes, GATEWAY_V6, dst);
    let frame = FrameSpec {
        eth_src: port_mac,
        eth_dst,
        src: IpAddr::V6(GATEWAY_V6),
        dst: IpAddr::V6(dst),
        ttl: 255,
        l4: L4Spec::Raw(IpProtocol::ICMPV6),
        payload: icmp_bytes,
    }
    .to_vec()
    .map_err(|_| DropReason::Malformed)?;
    Ok(Answer { frame, learned })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How a PXE client asked to boot.
enum PxeMode {
    Tftp,
    Http,
}

fn pxe_mode(vendor_class: Option<&[u8]>, user_class: Option<&[u8]>) -> Option<PxeMode> {
    if user_class.is_some_and(|u| contains(u, b"iPXE")) {
        Some(PxeMode::Http)
    } else if vendor_class.is_some_and(|v| contains(v, b"PXEClient")) {
        Some(PxeMode::Tftp)
    } else {
        None
    }
}

/// DHCPv4: DISCOVER → OFFER, REQUEST → ACK with the interface's /32, the
/// gateway as classless routes and router, MTU, DNS, hostname and PXE.
pub(crate) fn dhcpv4(
    udp_payload: &[u8],
    port_mac: MacAddr,
    iface: &IfaceView,
    snap: &Snapshot,
) -> Result<Answer, DropReason> {
    let Some(addr) = iface.ipv4 else {
        return Err(DropReason::DhcpNoAddress);
    };
    let p = Dhcpv4Packet::new_checked(udp_payload).map_err(|_| DropReason::Malformed)?;
    let req = Dhcpv4Repr::parse(&p).map_err(|_| DropReason::Malformed)?;
    if req.op != BootOp::Request {
        return Err(DropReason::DhcpIgnored);
    }
    let (reply_type, learned) = match req.message_type {
        Some(Dhcp4Type::Discover) => (Dhcp4Type::Offer, None),
        Some(Dhcp4Type::Request) => (Dhcp4Type::Ack, Some(req.client_mac)),
        _ => return Err(DropReason::DhcpIgnored),
    };
    let mut reply = Dhcpv4Repr::empty(BootOp::Reply);
    reply.xid = req.xid;
    reply.broadcast = req.broadcast;
    reply.yiaddr = addr;
    reply.siaddr = GATEWAY_V4;
    reply.client_mac = req.client_mac;
    reply.message_type = Some(reply_type);
    reply.lease_time = Some(INFINITE);
    reply.server_id = Some(GATEWAY_V4);
    reply.classless_routes = vec![
        ClasslessRoute {
            destination: Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16)
                .map_err(|_| DropReason::Malformed)?,
            router: Ipv4Addr::UNSPECIFIED,
        },
        ClasslessRoute {
            destination: Ipv4Net::default(),
            router: GATEWAY_V4,
        },
    ];
    reply.subnet_mask = Some(Ipv4Addr::BROADCAST);
    reply.mtu = Some(snap.dhcp_mtu);
    reply.routers = vec![GATEWAY_V4];
    reply.dns_servers = snap.dhcp_dns.clone();
    reply.hostname = iface.hostname.as_ref().map(|h| h.as_bytes().to_vec());
    let mode = pxe_mode(req.vendor_class.as_deref(), req.user_class.as_deref());
    if let (
        Some(mode),
        Some(Pxe {
            next_server: IpAddr::V4(server),
            boot_filename,
        }),
    ) = (mode, &iface.pxe)
    {
        reply.siaddr = *server;
        reply.boot_file = match mode {
            PxeMode::Tftp => IPXE_TFTP_FILE.as_bytes().to_vec(),
            PxeMode::Http => format!("http://{server}{boot_filename}").into_bytes(),
        };
    }
    let broadcast = req.broadcast || iface.pxe.is_some() && !reply.boot_file.is_empty();
    let (ip_dst, eth_dst) = if broadcast {
        (Ipv4Addr::BROADCAST, MacAddr::BROADCAST)
    } else {
        (addr, req.client_mac)
    };
    let mut payload = vec![0u8; reply.buffer_len()];
    reply
        .emit(&mut payload)
        .map_err(|_| DropReason::Malformed)?;
    let frame = FrameSpec {
        eth_src: port_mac,
        eth_dst,
        src: IpAddr::V4(GATEWAY_V4),
        dst: IpAddr::V4(ip_dst),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: dhcpv4::SERVER_PORT,
            dst_port: dhcpv4::CLIENT_PORT,
        },
        payload,
    }
    .to_vec()
    .map_err(|_| DropReason::Malformed)?;
    Ok(Answer { frame, learned })
}

/// A DUID-LL (type 3, hardware type 1 = Ethernet) for the port.
fn server_duid(mac: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac.octets());
    d
}

/// DHCPv6: SOLICIT → ADVERTISE (REPLY with rapid commit), REQUEST, RENEW,
/// REBIND → REPLY with the interface's address (infinite lifetimes), DNS and
/// PXE boot URL; CONFIRM, RELEASE and INFORMATION-REQUEST → REPLY.
pub(crate) fn dhcpv6(
    frame: &[u8],
    udp_payload: &[u8],
    port_mac: MacAddr,
    iface: &IfaceView,
    snap: &Snapshot,
) -> Result<Answer, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
    let p = Dhcpv6Packet::new_checked(udp_payload).map_err(|_| DropReason::Malformed)?;
    let req = Dhcpv6Repr::parse(&p).map_err(|_| DropReason::Malformed)?;
    let with_address = matches!(
        req.msg_type,
        Dhcp6Type::Solicit | Dhcp6Type::Request | Dhcp6Type::Renew | Dhcp6Type::Rebind
    );
    let reply_type = match req.msg_type {
        Dhcp6Type::Solicit if !req.rapid_commit => Dhcp6Type::Advertise,
        Dhcp6Type::Solicit
        | Dhcp6Type::Request
        | Dhcp6Type::Renew
        | Dhcp6Type::Rebind
        | Dhcp6Type::Confirm
        | Dhcp6Type::Release
        | Dhcp6Type::InformationRequest => Dhcp6Type::Reply,
        _ => return Err(DropReason::DhcpIgnored),
    };
    let mut reply = Dhcpv6Repr::new(reply_type, req.xid);
    reply.server_id = Some(server_duid(port_mac));
    reply.client_id = req.client_id.clone();
    reply.rapid_commit = req.rapid_commit && req.msg_type == Dhcp6Type::Solicit;
    if with_address {
        let iaid = req.ia_na.first().map_or(0, |ia| ia.iaid);
        match iface.ipv6 {
            Some(addr) => reply.ia_na.push(IaNa {
                iaid,
                t1: INFINITE,
                t2: INFINITE,
                addresses: vec![IaAddr {
                    addr,
                    preferred_lifetime: INFINITE,
                    valid_lifetime: INFINITE,
                    status: None,
                }],
                status: None,
            }),
            None => {
                reply.msg_type = Dhcp6Type::Reply;
                reply.status = Some(StatusCode {
                    code: dhcpv6::status::NO_ADDRS_AVAIL,
                    message: b"no IPv6 address on this interface".to_vec(),
                });
            }
        }
    }
    if reply.status.is_none() && req.msg_type != Dhcp6Type::Release {
        reply.dns_servers = Some(snap.dhcpv6_dns.clone());
        let mode = pxe_mode(req.vendor_class.as_deref(), req.user_class.as_deref());
        if let (
            Some(mode),
            Some(Pxe {
                next_server: IpAddr::V6(server),
                boot_filename,
            }),
        ) = (mode, &iface.pxe)
        {
            reply.boot_file_url = Some(
                match mode {
                    PxeMode::Tftp => format!("tftp://[{server}]/{IPXE_TFTP_FILE}"),
                    PxeMode::Http => format!("http://[{server}]/{boot_filename}"),
                }
                .into_bytes(),
            );
        }
    }
    let mut payload = vec![0u8; reply.buffer_len()];
    reply
        .emit(&mut payload)
        .map_err(|_| DropReason::Malformed)?;
    let frame = FrameSpec {
        eth_src: port_mac,
        eth_dst: eth.src(),
        src: IpAddr::V6(GATEWAY_V6),
        dst: IpAddr::V6(ip.src()),
        ttl: 255,
        l4: L4Spec::Udp {
            src_port: dhcpv6::SERVER_PORT,
            dst_port: dhcpv6::CLIENT_PORT,
        },
        payload,
    }
    .to_vec()
    .map_err(|_| DropReason::Malformed)?;
    Ok(Answer {
        frame,
        learned: None,
    })
}
