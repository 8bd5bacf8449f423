//! metalbond protocol v1 framing: version byte `1`, 16-bit big-endian body
//! length, message type, protobuf body.
//!
//! [`decode`] works on whatever bytes have arrived so far: it returns
//! `Ok(None)` until a whole frame is there, so frames split across reads and
//! many frames in one read both work. Every field is validated; prefixes are
//! canonicalised (host bits cleared), so `10.0.0.1/24` and `10.0.0.0/24` are
//! one destination. Bodies over [`MAX_BODY_LEN`] bytes are refused on both
//! sides, as metalbond does on send.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use prost::Message as _;

use crate::error::CodecError;
use crate::pb;

/// The protocol version byte.
pub const VERSION: u8 = 1;
/// Header length: version, 2-byte length, type.
pub const HEADER_LEN: usize = 4;
/// Longest body: 1280-byte IPv6 minimum MTU minus IPv6, TCP and frame
/// headers, metalbond's limit.
pub const MAX_BODY_LEN: usize = 1188;

const TYPE_HELLO: u8 = 1;
const TYPE_KEEPALIVE: u8 = 2;
const TYPE_SUBSCRIBE: u8 = 3;
const TYPE_UNSUBSCRIBE: u8 = 4;
const TYPE_UPDATE: u8 = 5;

/// Whether an UPDATE adds or removes its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Add.
    Add,
    /// Remove.
    Remove,
}

/// One protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// HELLO: the keepalive interval in seconds the sender wants, and
    /// whether it is a server.
    Hello {
        /// Seconds.
        keepalive_secs: u32,
        /// Sender is a server.
        is_server: bool,
    },
    /// KEEPALIVE.
    Keepalive,
    /// SUBSCRIBE to a VNI.
    Subscribe(Vni),
    /// UNSUBSCRIBE from a VNI.
    Unsubscribe(Vni),
    /// UPDATE: one route.
    Update(Action, Route),
}

fn invalid(field: &'static str, reason: &'static str) -> CodecError {
    CodecError::InvalidField { field, reason }
}

fn vni(v: u32, field: &'static str) -> Result<Vni, CodecError> {
    Vni::new(v).ok_or(invalid(field, "more than 24 bits"))
}

/// Appends the frame for `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let (ty, body) = match *msg {
        Message::Hello {
            keepalive_secs,
            is_server,
        } => (
            TYPE_HELLO,
            pb::Hello {
                keepalive_interval: keepalive_secs,
                is_server,
            }
            .encode_to_vec(),
        ),
        Message::Keepalive => (TYPE_KEEPALIVE, Vec::new()),
        Message::Subscribe(v) => (
            TYPE_SUBSCRIBE,
            pb::Subscription { vni: v.get() }.encode_to_vec(),
        ),
        Message::Unsubscribe(v) => (
            TYPE_UNSUBSCRIBE,
            pb::Subscription { vni: v.get() }.encode_to_vec(),
        ),
        Message::Update(action, route) => {
            (TYPE_UPDATE, update_to_pb(action, &route).encode_to_vec())
        }
    };
    if body.len() > MAX_BODY_LEN {
        return Err(CodecError::TooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    out.push(VERSION);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.push(ty);
    out.extend_from_slice(&body);
    Ok(())
}

fn update_to_pb(action: Action, route: &Route) -> pb::Update {
    let prefix = route.destination.prefix();
    let (ip_version, bytes) = match prefix.addr() {
        IpAddr::V4(a) => (pb::IpVersion::IPv4, a.octets().to_vec()),
        IpAddr::V6(a) => (pb::IpVersion::IPv6, a.octets().to_vec()),
    };
    let hop = &route.next_hop;
    let (ty, from, to) = match hop.kind {
        NextHopKind::Standard => (pb::NextHopType::Standard, 0, 0),
        NextHopKind::Nat { port_from, port_to } => (
            pb::NextHopType::Nat,
            u32::from(port_from),
            u32::from(port_to),
        ),
        NextHopKind::LoadBalancerTarget => (pb::NextHopType::LoadbalancerTarget, 0, 0),
    };
    pb::Update {
        action: match action {
            Action::Add => pb::Action::Add,
            Action::Remove => pb::Action::Remove,
        } as i32,
        vni: route.vni.get(),
        destination: Some(pb::Destination {
            ip_version: ip_version as i32,
            prefix: bytes,
            prefix_length: u32::from(prefix.prefix_len()),
        }),
        next_hop: Some(pb::NextHop {
            target_address: hop.underlay.octets().to_vec(),
            target_vni: hop.vni.get(),
            r#type: ty as i32,
            nat_port_range_from: from,
            nat_port_range_to: to,
        }),
    }
}

fn decode_pb<M: prost::Message + Default>(
    body: &[u8],
    message: &'static str,
) -> Result<M, CodecError> {
    M::decode(body).map_err(|e| CodecError::Decode {
        message,
        reason: e.to_string(),
    })
}

fn update_from_pb(u: pb::Update) -> Result<Message, CodecError> {
    let action = match pb::Action::try_from(u.action) {
        Ok(pb::Action::Add) => Action::Add,
        Ok(pb::Action::Remove) => Action::Remove,
        Err(_) => return Err(invalid("action", "neither ADD nor REMOVE")),
    };
    let d = u.destination.ok_or(CodecError::MissingField {
        message: "UPDATE",
        field: "destination",
    })?;
    let h = u.next_hop.ok_or(CodecError::MissingField {
        message: "UPDATE",
        field: "nextHop",
    })?;
    let len = u8::try_from(d.prefix_length).map_err(|_| invalid("prefixLength", "too long"))?;
    let addr = match pb::IpVersion::try_from(d.ip_version) {
        Ok(pb::IpVersion::IPv4) => {
            let b: [u8; 4] = d.prefix[..]
                .try_into()
                .map_err(|_| invalid("prefix", "IPv4 prefix is not 4 bytes"))?;
            IpAddr::V4(Ipv4Addr::from(b))
        }
        Ok(pb::IpVersion::IPv6) => {
            let b: [u8; 16] = d.prefix[..]
                .try_into()
                .map_err(|_| invalid("prefix", "IPv6 prefix is not 16 bytes"))?;
            IpAddr::V6(Ipv6Addr::from(b))
        }
        Err(_) => return Err(invalid("ipVersion", "neither IPv4 nor IPv6")),
    };
    let prefix =
        IpNet::new(addr, len).map_err(|_| invalid("prefixLength", "longer than the address"))?;
    let underlay: [u8; 16] = h.target_address[..]
        .try_into()
        .map_err(|_| invalid("targetAddress", "not a 16-byte IPv6 address"))?;
    let port = |v: u32, field| u16::try_from(v).map_err(|_| invalid(field, "above 65535"));
    let kind = match pb::NextHopType::try_from(h.r#type) {
        Ok(pb::NextHopType::Standard) => NextHopKind::Standard,
        Ok(pb::NextHopType::Nat) => NextHopKind::Nat {
            port_from: port(h.nat_port_range_from, "natPortRangeFrom")?,
            port_to: port(h.nat_port_range_to, "natPortRangeTo")?,
        },
        Ok(pb::NextHopType::LoadbalancerTarget) => NextHopKind::LoadBalancerTarget,
        Err(_) => return Err(invalid("type", "unknown next-hop type")),
    };
    Ok(Message::Update(
        action,
        Route {
            vni: vni(u.vni, "vni")?,
            destination: Destination::new(prefix),
            next_hop: NextHop {
                underlay: Ipv6Addr::from(underlay),
                vni: vni(h.target_vni, "targetVNI")?,
                kind,
            },
        },
    ))
}

/// Decodes the first frame of `buf`: `Ok(None)` if it is not complete yet,
/// else the message and the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, CodecError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        // Even a partial header can be judged by its version byte.
        return match buf.first() {
            Some(&v) if v != VERSION => Err(CodecError::BadVersion(v)),
            _ => Ok(None),
        };
    };
    if header[0] != VERSION {
        return Err(CodecError::BadVersion(header[0]));
    }
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if len > MAX_BODY_LEN {
        return Err(CodecError::TooLarge {
            len,
            max: MAX_BODY_LEN,
        });
    }
    let ty = header[3];
    if !(TYPE_HELLO..=TYPE_UPDATE).contains(&ty) {
        return Err(CodecError::UnknownType(ty));
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let msg = match ty {
        TYPE_HELLO => {
            let h: pb::Hello = decode_pb(body, "HELLO")?;
            Message::Hello {
                keepalive_secs: h.keepalive_interval,
                is_server: h.is_server,
            }
        }
        // metalbond sends an empty body; anything in it carries no meaning.
        TYPE_KEEPALIVE => Message::Keepalive,
        TYPE_SUBSCRIBE => {
            let s: pb::Subscription = decode_pb(body, "SUBSCRIBE")?;
            Message::Subscribe(vni(s.vni, "vni")?)
        }
        TYPE_UNSUBSCRIBE => {
            let s: pb::Subscription = decode_pb(body, "UNSUBSCRIBE")?;
            Message::Unsubscribe(vni(s.vni, "vni")?)
        }
        _ => update_from_pb(decode_pb(body, "UPDATE")?)?,
    };
    Ok(Some((msg, HEADER_LEN + len)))
}

/// Accumulates bytes from a stream and yields whole messages.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded.
    start: usize,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        // Drop what was decoded before growing: a move per feed, not per
        // message.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After
    /// an error the stream cannot be resynchronised: reset the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, CodecError> {
        match decode(&self.buf[self.start..])? {
            Some((msg, used)) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
