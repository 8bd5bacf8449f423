//! DHCPv6 client/server messages (RFC 8415), enough for a server that
//! hands each guest one address: IA_NA with IAADDR, status codes, DNS
//! servers (RFC 3646) and boot-file URL (RFC 5970).
//!
//! [`Dhcpv6Packet::new_checked`] guarantees the 4-byte header; options are
//! walked by [`Dhcpv6Options`], which checks every length. Relay messages
//! are reported as unsupported by [`Dhcpv6Repr::parse`]. A repeated option
//! keeps its first occurrence, except IA_NA, of which there may be several.

use std::net::Ipv6Addr;

use super::error::{Layer, WireError};
use super::field::{ipv6_at, set_u16, set_u32, u16_at, u32_at};

/// Header length (type + transaction ID).
pub const HEADER_LEN: usize = 4;
/// UDP port of servers and relays.
pub const SERVER_PORT: u16 = 547;
/// UDP port of clients.
pub const CLIENT_PORT: u16 = 546;

/// Option codes this module decodes.
pub mod option {
    /// Client identifier.
    pub const CLIENT_ID: u16 = 1;
    /// Server identifier.
    pub const SERVER_ID: u16 = 2;
    /// Identity association for non-temporary addresses.
    pub const IA_NA: u16 = 3;
    /// IA address.
    pub const IAADDR: u16 = 5;
    /// Option request.
    pub const ORO: u16 = 6;
    /// Elapsed time.
    pub const ELAPSED_TIME: u16 = 8;
    /// Status code.
    pub const STATUS_CODE: u16 = 13;
    /// Rapid commit.
    pub const RAPID_COMMIT: u16 = 14;
    /// User class.
    pub const USER_CLASS: u16 = 15;
    /// Vendor class.
    pub const VENDOR_CLASS: u16 = 16;
    /// DNS recursive name servers.
    pub const DNS_SERVERS: u16 = 23;
    /// Boot file URL.
    pub const BOOTFILE_URL: u16 = 59;
}

/// Status code values.
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// No addresses available.
    pub const NO_ADDRS_AVAIL: u16 = 2;
}

/// DHCPv6 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// SOLICIT (1).
    Solicit,
    /// ADVERTISE (2).
    Advertise,
    /// REQUEST (3).
    Request,
    /// CONFIRM (4).
    Confirm,
    /// RENEW (5).
    Renew,
    /// REBIND (6).
    Rebind,
    /// REPLY (7).
    Reply,
    /// RELEASE (8).
    Release,
    /// DECLINE (9).
    Decline,
    /// INFORMATION-REQUEST (11).
    InformationRequest,
    /// Any other client/server type.
    Other(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            11 => MessageType::InformationRequest,
            other => MessageType::Other(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Confirm => 4,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Decline => 9,
            MessageType::InformationRequest => 11,
            MessageType::Other(v) => v,
        }
    }
}

/// A view of a DHCPv6 message (the UDP payload).
#[derive(Debug, Clone)]
pub struct Dhcpv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Dhcpv6Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Dhcpv6Packet { buffer }
    }

    /// A view over at least the 4-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        WireError::check_len(Layer::Dhcpv6, HEADER_LEN, buffer.as_ref().len())?;
        Ok(Dhcpv6Packet { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> MessageType {
        self.buffer.as_ref()[0].into()
    }

    /// Transaction ID (24 bits).
    pub fn xid(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 0) & 0x00ff_ffff
    }

    /// The options.
    pub fn options(&self) -> Dhcpv6Options<'_> {
        Dhcpv6Options::new(&self.buffer.as_ref()[HEADER_LEN..])
    }
}

/// Iterator over `(code, data)` of DHCPv6 options; yields one error on a
/// truncated option and stops.
#[derive(Debug, Clone)]
pub struct Dhcpv6Options<'a> {
    rest: &'a [u8],
}

impl<'a> Dhcpv6Options<'a> {
    /// Options over raw bytes (a message body or an option's nested
    /// options).
    pub fn new(raw: &'a [u8]) -> Self {
        Dhcpv6Options { rest: raw }
    }
}

impl<'a> Iterator for Dhcpv6Options<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.rest = &[];
            return Some(Err(malformed("truncated option header")));
        }
        let code = u16_at(self.rest, 0);
        let len = usize::from(u16_at(self.rest, 2));
        if self.rest.len() < 4 + len {
            self.rest = &[];
            return Some(Err(malformed("truncated option")));
        }
        let data = &self.rest[4..4 + len];
        self.rest = &self.rest[4 + len..];
        Some(Ok((code, data)))
    }
}

fn malformed(reason: &'static str) -> WireError {
    WireError::Malformed {
        layer: Layer::Dhcpv6,
        reason,
    }
}

/// A status code option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusCode {
    /// The code ([`status`]).
    pub code: u16,
    /// UTF-8 message (not validated).
    pub message: Vec<u8>,
}

impl StatusCode {
    fn parse(data: &[u8]) -> Result<Self, WireError> {
        if data.len() < 2 {
            return Err(malformed("status code option too short"));
        }
        Ok(StatusCode {
            code: u16_at(data, 0),
            message: data[2..].to_vec(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = self.code.to_be_bytes().to_vec();
        v.extend_from_slice(&self.message);
        v
    }
}

/// An address inside an IA_NA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime, seconds (`u32::MAX` = infinite).
    pub preferred_lifetime: u32,
    /// Valid lifetime, seconds.
    pub valid_lifetime: u32,
    /// Nested status code.
    pub status: Option<StatusCode>,
}

/// An identity association for non-temporary addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IaNa {
    /// IA identifier chosen by the client.
    pub iaid: u32,
    /// T1, seconds.
    pub t1: u32,
    /// T2, seconds.
    pub t2: u32,
    /// Addresses.
    pub addresses: Vec<IaAddr>,
    /// Nested status code.
    pub status: Option<StatusCode>,
}

impl IaNa {
    fn parse(data: &[u8]) -> Result<Self, WireError> {
        if data.len() < 12 {
            return Err(malformed("IA_NA option too short"));
        }
        let mut ia = IaNa {
            iaid: u32_at(data, 0),
            t1: u32_at(data, 4),
            t2: u32_at(data, 8),
            addresses: Vec::new(),
            status: None,
        };
        for opt in Dhcpv6Options::new(&data[12..]) {
            match opt? {
                (option::IAADDR, d) => {
                    if d.len() < 24 {
                        return Err(malformed("IAADDR option too short"));
                    }
                    let mut status = None;
                    for nested in Dhcpv6Options::new(&d[24..]) {
                        if let (option::STATUS_CODE, s) = nested? {
                            status.get_or_insert(StatusCode::parse(s)?);
                        }
                    }
                    ia.addresses.push(IaAddr {
                        addr: ipv6_at(d, 0),
                        preferred_lifetime: u32_at(d, 16),
                        valid_lifetime: u32_at(d, 20),
                        status,
                    });
                }
                (option::STATUS_CODE, d) if ia.status.is_none() => {
                    ia.status = Some(StatusCode::parse(d)?);
                }
                _ => {}
            }
        }
        Ok(ia)
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + 28 * self.addresses.len());
        v.extend_from_slice(&self.iaid.to_be_bytes());
        v.extend_from_slice(&self.t1.to_be_bytes());
        v.extend_from_slice(&self.t2.to_be_bytes());
        for a in &self.addresses {
            let mut d = a.addr.octets().to_vec();
            d.extend_from_slice(&a.preferred_lifetime.to_be_bytes());
            d.extend_from_slice(&a.valid_lifetime.to_be_bytes());
            if let Some(s) = &a.status {
                push_option(&mut d, option::STATUS_CODE, &s.encode());
            }
            push_option(&mut v, option::IAADDR, &d);
        }
        if let Some(s) = &self.status {
            push_option(&mut v, option::STATUS_CODE, &s.encode());
        }
        v
    }
}

fn push_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    // Lengths are checked by `validate` before anything is emitted.
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A DHCPv6 client/server message as values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dhcpv6Repr {
    /// Message type.
    pub msg_type: MessageType,
    /// Transaction ID (24 bits).
    pub xid: u32,
    /// Client identifier (DUID).
    pub client_id: Option<Vec<u8>>,
    /// Server identifier (DUID).
    pub server_id: Option<Vec<u8>>,
    /// IA_NA options, in order.
    pub ia_na: Vec<IaNa>,
    /// Elapsed time, hundredths of a second.
    pub elapsed_time: Option<u16>,
    /// Requested option codes.
    pub oro: Vec<u16>,
    /// Top-level status code.
    pub status: Option<StatusCode>,
    /// Rapid commit present.
    pub rapid_commit: bool,
    /// User class (raw).
    pub user_class: Option<Vec<u8>>,
    /// Vendor class (raw).
    pub vendor_class: Option<Vec<u8>>,
    /// DNS servers; `Some(empty)` is an option with no addresses.
    pub dns_servers: Option<Vec<Ipv6Addr>>,
    /// Boot file URL.
    pub boot_file_url: Option<Vec<u8>>,
    /// Other options, in order.
    pub other: Vec<(u16, Vec<u8>)>,
}

/// The option codes [`Dhcpv6Repr`] decodes into its own fields.
const DECODED: [u16; 11] = [
    option::CLIENT_ID,
    option::SERVER_ID,
    option::IA_NA,
    option::ORO,
    option::ELAPSED_TIME,
    option::STATUS_CODE,
    option::RAPID_COMMIT,
    option::USER_CLASS,
    option::VENDOR_CLASS,
    option::DNS_SERVERS,
    option::BOOTFILE_URL,
];

impl Dhcpv6Repr {
    /// A message of `msg_type` with no options.
    pub fn new(msg_type: MessageType, xid: u32) -> Self {
        Dhcpv6Repr {
            msg_type,
            xid: xid & 0x00ff_ffff,
            client_id: None,
            server_id: None,
            ia_na: Vec::new(),
            elapsed_time: None,
            oro: Vec::new(),
            status: None,
            rapid_commit: false,
            user_class: None,
            vendor_class: None,
            dns_servers: None,
            boot_file_url: None,
            other: Vec::new(),
        }
    }

    /// Reads a client/server message.
    pub fn parse<T: AsRef<[u8]>>(p: &Dhcpv6Packet<T>) -> Result<Self, WireError> {
        let msg_type = p.msg_type();
        if matches!(msg_type, MessageType::Other(12 | 13)) {
            return Err(WireError::Unsupported {
                layer: Layer::Dhcpv6,
                what: "relay messages",
            });
        }
        let mut r = Dhcpv6Repr::new(msg_type, p.xid());
        for opt in p.options() {
            let (code, data) = opt?;
            match code {
                option::CLIENT_ID => {
                    r.client_id.get_or_insert_with(|| data.to_vec());
                }
                option::SERVER_ID => {
                    r.server_id.get_or_insert_with(|| data.to_vec());
                }
                option::IA_NA => r.ia_na.push(IaNa::parse(data)?),
                option::ELAPSED_TIME => match data {
                    [a, b] => {
                        r.elapsed_time.get_or_insert(u16::from_be_bytes([*a, *b]));
                    }
                    _ => return Err(malformed("elapsed time option length")),
                },
                option::ORO => {
                    if !data.len().is_multiple_of(2) {
                        return Err(malformed("option request option length"));
                    }
                    if r.oro.is_empty() {
                        r.oro = data.chunks_exact(2).map(|c| u16_at(c, 0)).collect();
                    }
                }
                option::STATUS_CODE => {
                    if r.status.is_none() {
                        r.status = Some(StatusCode::parse(data)?);
                    }
                }
                option::RAPID_COMMIT => r.rapid_commit = true,
                option::USER_CLASS => {
                    r.user_class.get_or_insert_with(|| data.to_vec());
                }
                option::VENDOR_CLASS => {
                    r.vendor_class.get_or_insert_with(|| data.to_vec());
                }
                option::DNS_SERVERS => {
                    if !data.len().is_multiple_of(16) {
                        return Err(malformed("DNS servers option length"));
                    }
                    r.dns_servers.get_or_insert_with(|| {
                        data.chunks_exact(16).map(|c| ipv6_at(c, 0)).collect()
                    });
                }
                option::BOOTFILE_URL => {
                    r.boot_file_url.get_or_insert_with(|| data.to_vec());
                }
                _ => r.other.push((code, data.to_vec())),
            }
        }
        Ok(r)
    }

    /// Options in emit order.
    fn encoded_options(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut push = |code: u16, data: Option<Vec<u8>>| {
            if let Some(d) = data {
                out.push((code, d));
            }
        };
        push(option::CLIENT_ID, self.client_id.clone());
        push(option::SERVER_ID, self.server_id.clone());
        for ia in &self.ia_na {
            push(option::IA_NA, Some(ia.encode()));
        }
        push(
            option::ELAPSED_TIME,
            self.elapsed_time.map(|t| t.to_be_bytes().to_vec()),
        );
        push(
            option::ORO,
            (!self.oro.is_empty()).then(|| self.oro.iter().flat_map(|c| c.to_be_bytes()).collect()),
        );
        push(
            option::STATUS_CODE,
            self.status.as_ref().map(StatusCode::encode),
        );
        push(option::RAPID_COMMIT, self.rapid_commit.then(Vec::new));
        push(option::USER_CLASS, self.user_class.clone());
        push(option::VENDOR_CLASS, self.vendor_class.clone());
        push(
            option::DNS_SERVERS,
            self.dns_servers
                .as_ref()
                .map(|v| v.iter().flat_map(|a| a.octets()).collect()),
        );
        push(option::BOOTFILE_URL, self.boot_file_url.clone());
        for (code, data) in &self.other {
            push(*code, Some(data.clone()));
        }
        out
    }

    /// Checks what [`emit`](Self::emit) needs: a 24-bit transaction ID, no
    /// relay type, options under 64 KiB, `other` free of decoded codes.
    pub fn validate(&self) -> Result<(), WireError> {
        self.check(&self.encoded_options())
    }

    /// [`validate`](Self::validate) on options encoded once by the caller.
    fn check(&self, encoded: &[(u16, Vec<u8>)]) -> Result<(), WireError> {
        if self.xid > 0x00ff_ffff {
            return Err(WireError::TooLarge {
                layer: Layer::Dhcpv6,
                field: "transaction id",
            });
        }
        if matches!(self.msg_type, MessageType::Other(12 | 13)) {
            return Err(WireError::Unsupported {
                layer: Layer::Dhcpv6,
                what: "relay messages",
            });
        }
        if self.other.iter().any(|(c, _)| DECODED.contains(c)) {
            return Err(malformed("other options hold a decoded code"));
        }
        if encoded.iter().any(|(_, d)| d.len() > usize::from(u16::MAX)) {
            return Err(WireError::TooLarge {
                layer: Layer::Dhcpv6,
                field: "option",
            });
        }
        Ok(())
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self
                .encoded_options()
                .iter()
                .map(|(_, d)| 4 + d.len())
                .sum::<usize>()
    }

    /// Writes the message into `buf` (at least
    /// [`buffer_len`](Self::buffer_len) bytes) after [`validate`](Self::validate).
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let encoded = self.encoded_options();
        self.check(&encoded)?;
        set_u32(
            buf,
            0,
            (u32::from(u8::from(self.msg_type)) << 24) | self.xid,
        );
        let mut at = HEADER_LEN;
        for (code, data) in encoded {
            set_u16(buf, at, code);
            set_u16(buf, at + 2, data.len() as u16);
            buf[at + 4..at + 4 + data.len()].copy_from_slice(&data);
            at += 4 + data.len();
        }
        Ok(())
    }
}
