//! Whole frames from a few values: Ethernet + IPv4/IPv6 + UDP, TCP or ICMP
//! echo, with correct lengths and checksums. For tests, benchmarks and
//! packets the data plane originates; hot paths rewrite packets in place
//! instead.

use std::net::IpAddr;

use super::error::{Layer, WireError};
use super::ethernet::{EtherType, EthernetRepr, HEADER_LEN as ETH_LEN, MacAddr};
use super::icmpv4::{Icmpv4Message, Icmpv4Repr};
use super::icmpv6::{Icmpv6Message, Icmpv6Repr};
use super::ip::{IpPair, IpProtocol, RawOptions};
use super::ipv4::Ipv4Repr;
use super::ipv6::Ipv6Repr;
use super::tcp::{TcpFlags, TcpRepr};
use super::udp::UdpRepr;

/// The upper layer of a [`FrameSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Spec {
    /// UDP with these ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP with these fields (no options).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flags.
        flags: TcpFlags,
        /// Window.
        window: u16,
    },
    /// ICMP or ICMPv6 echo (by address family).
    Echo {
        /// Request (true) or reply.
        request: bool,
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// The payload as is, under this protocol number.
    Raw(IpProtocol),
}

/// A frame described by value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameSpec {
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// IP source.
    pub src: IpAddr,
    /// IP destination (same family as `src`).
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Upper layer.
    pub l4: L4Spec,
    /// Bytes after the upper-layer header.
    pub payload: Vec<u8>,
}

impl FrameSpec {
    fn l4_header_len(&self) -> usize {
        match self.l4 {
            L4Spec::Udp { .. } | L4Spec::Echo { .. } => 8,
            L4Spec::Tcp { .. } => 20,
            L4Spec::Raw(_) => 0,
        }
    }

    fn ip_header_len(&self) -> usize {
        if self.src.is_ipv4() { 20 } else { 40 }
    }

    /// Length of the frame.
    pub fn len(&self) -> usize {
        ETH_LEN + self.ip_header_len() + self.l4_header_len() + self.payload.len()
    }

    /// Always false: a frame has at least its headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn protocol(&self) -> IpProtocol {
        match (self.l4, self.src.is_ipv4()) {
            (L4Spec::Udp { .. }, _) => IpProtocol::UDP,
            (L4Spec::Tcp { .. }, _) => IpProtocol::TCP,
            (L4Spec::Echo { .. }, true) => IpProtocol::ICMP,
            (L4Spec::Echo { .. }, false) => IpProtocol::ICMPV6,
            (L4Spec::Raw(p), _) => p,
        }
    }

    /// Writes the frame into the start of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        WireError::check_len(Layer::Buffer, len, buf.len())?;
        let buf = &mut buf[..len];
        let ip_len = len - ETH_LEN;
        let l4_len = ip_len - self.ip_header_len();
        let (ethertype, addrs) = match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = Ipv4Repr {
                    src,
                    dst,
                    protocol: self.protocol(),
                    payload_len: l4_len,
                    ttl: self.ttl,
                    dscp_ecn: 0,
                    ident: 0,
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                    options: RawOptions::default(),
                };
                repr.emit(&mut buf[ETH_LEN..])?;
                (EtherType::IPV4, IpPair::V4 { src, dst })
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = Ipv6Repr {
                    src,
                    dst,
                    next_header: self.protocol(),
                    payload_len: l4_len,
                    hop_limit: self.ttl,
                    traffic_class: 0,
                    flow_label: 0,
                };
                repr.emit(&mut buf[ETH_LEN..])?;
                (EtherType::IPV6, IpPair::V6 { src, dst })
            }
            _ => {
                return Err(WireError::Malformed {
                    layer: Layer::Buffer,
                    reason: "source and destination of different families",
                });
            }
        };
        EthernetRepr {
            src: self.eth_src,
            dst: self.eth_dst,
            vlan: None,
            ethertype,
        }
        .emit(buf);
        let l4 = &mut buf[ETH_LEN + self.ip_header_len()..];
        let hl = self.l4_header_len();
        l4[hl..].copy_from_slice(&self.payload);
        match (self.l4, addrs) {
            (L4Spec::Udp { src_port, dst_port }, _) => UdpRepr {
                src_port,
                dst_port,
                payload_len: self.payload.len(),
            }
            .emit(l4, &addrs)?,
            (
                L4Spec::Tcp {
                    src_port,
                    dst_port,
                    seq,
                    ack,
                    flags,
                    window,
                },
                _,
            ) => TcpRepr {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                urgent: 0,
                options: RawOptions::default(),
                payload_len: self.payload.len(),
            }
            .emit(l4, &addrs),
            (
                L4Spec::Echo {
                    request,
                    ident,
                    seq,
                },
                IpPair::V4 { .. },
            ) => Icmpv4Repr {
                message: if request {
                    Icmpv4Message::EchoRequest { ident, seq }
                } else {
                    Icmpv4Message::EchoReply { ident, seq }
                },
                data: &self.payload,
            }
            .emit(l4),
            (
                L4Spec::Echo {
                    request,
                    ident,
                    seq,
                },
                IpPair::V6 { src, dst },
            ) => Icmpv6Repr {
                message: if request {
                    Icmpv6Message::EchoRequest { ident, seq }
                } else {
                    Icmpv6Message::EchoReply { ident, seq }
                },
                data: &self.payload,
            }
            .emit(l4, src, dst),
            (L4Spec::Raw(_), _) => {}
        }
        Ok(len)
    }

    /// The frame in a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut v = vec![0u8; self.len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}
