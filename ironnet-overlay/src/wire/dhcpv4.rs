//! DHCPv4 messages (RFC 2131 over BOOTP, options from RFC 2132 and 3442),
//! enough for a server that hands each guest one /32.
//!
//! [`Dhcpv4Packet::new_checked`] guarantees the 236-byte BOOTP header and
//! the magic cookie; options are walked by [`Dhcpv4Options`], which checks
//! every length. [`Dhcpv4Repr`] owns its lists (slow path); repeated
//! options are concatenated as RFC 3396 says.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::error::{Layer, WireError};
use super::ethernet::MacAddr;
use super::field::{ipv4_at, set_u16, set_u32, u16_at, u32_at};

/// BOOTP header length before the magic cookie.
pub const BOOTP_LEN: usize = 236;
/// Offset of the first option.
pub const OPTIONS_OFFSET: usize = 240;
/// The magic cookie 99.130.83.99.
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// Shortest message emitted (RFC 1542 §3.4: BOOTP relays and old clients
/// expect at least 300 bytes).
pub const MIN_EMIT_LEN: usize = 300;
/// UDP port of the server.
pub const SERVER_PORT: u16 = 67;
/// UDP port of the client.
pub const CLIENT_PORT: u16 = 68;

/// Option codes this module decodes.
pub mod option {
    /// Padding.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers.
    pub const ROUTER: u8 = 3;
    /// DNS servers.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Interface MTU.
    pub const MTU: u8 = 26;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// User class.
    pub const USER_CLASS: u8 = 77;
    /// Classless static routes.
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// End of options.
    pub const END: u8 = 255;
}

/// The option codes [`Dhcpv4Repr`] decodes into its own fields.
const DECODED: [u8; 14] = [
    option::SUBNET_MASK,
    option::ROUTER,
    option::DNS,
    option::HOSTNAME,
    option::MTU,
    option::REQUESTED_IP,
    option::LEASE_TIME,
    option::MESSAGE_TYPE,
    option::SERVER_ID,
    option::PARAMETER_REQUEST_LIST,
    option::VENDOR_CLASS,
    option::CLIENT_ID,
    option::USER_CLASS,
    option::CLASSLESS_ROUTES,
];

/// BOOTP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootOp {
    /// Client to server (1).
    Request,
    /// Server to client (2).
    Reply,
}

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPOFFER.
    Offer,
    /// DHCPREQUEST.
    Request,
    /// DHCPDECLINE.
    Decline,
    /// DHCPACK.
    Ack,
    /// DHCPNAK.
    Nak,
    /// DHCPRELEASE.
    Release,
    /// DHCPINFORM.
    Inform,
    /// Anything else.
    Other(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(v) => v,
        }
    }
}

/// A view of a DHCPv4 message (the UDP payload).
#[derive(Debug, Clone)]
pub struct Dhcpv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Dhcpv4Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Dhcpv4Packet { buffer }
    }

    /// A view over the BOOTP header and a correct magic cookie.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Dhcpv4, OPTIONS_OFFSET, b.len())?;
        if u32_at(b, BOOTP_LEN) != MAGIC_COOKIE {
            return Err(WireError::Malformed {
                layer: Layer::Dhcpv4,
                reason: "no DHCP magic cookie",
            });
        }
        Ok(Dhcpv4Packet { buffer })
    }

    /// BOOTP op code.
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Hardware type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    /// Relay hops.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// Transaction ID.
    pub fn xid(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 8)
    }

    /// Broadcast flag.
    pub fn broadcast(&self) -> bool {
        u16_at(self.buffer.as_ref(), 10) & 0x8000 != 0
    }

    /// Client address (ciaddr).
    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 12)
    }

    /// "Your" address (yiaddr).
    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 16)
    }

    /// Next server address (siaddr).
    pub fn siaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 20)
    }

    /// Relay agent address (giaddr).
    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 24)
    }

    /// The first six bytes of chaddr.
    pub fn client_mac(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[28..34]);
        MacAddr(m)
    }

    /// The server name field (64 bytes, NUL padded).
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[44..108]
    }

    /// The boot file field (128 bytes, NUL padded).
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[108..236]
    }

    /// The options.
    pub fn options(&self) -> Dhcpv4Options<'_> {
        Dhcpv4Options {
            rest: &self.buffer.as_ref()[OPTIONS_OFFSET..],
        }
    }

    /// The message type option, if present and well formed.
    pub fn message_type(&self) -> Option<MessageType> {
        self.options().find_map(|o| match o {
            Ok((option::MESSAGE_TYPE, [v])) => Some(MessageType::from(*v)),
            _ => None,
        })
    }
}

/// Iterator over `(code, data)` of DHCPv4 options, skipping pads and
/// stopping at END; yields one error on a truncated option and stops.
#[derive(Debug, Clone)]
pub struct Dhcpv4Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Dhcpv4Options<'a> {
    type Item = Result<(u8, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, rest) = self.rest.split_first()?;
            match code {
                option::PAD => self.rest = rest,
                option::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.rest = &[];
                        return Some(Err(truncated_option()));
                    };
                    let len = usize::from(len);
                    if rest.len() < len {
                        self.rest = &[];
                        return Some(Err(truncated_option()));
                    }
                    let (data, rest) = rest.split_at(len);
                    self.rest = rest;
                    return Some(Ok((code, data)));
                }
            }
        }
    }
}

fn truncated_option() -> WireError {
    WireError::Malformed {
        layer: Layer::Dhcpv4,
        reason: "truncated option",
    }
}

/// One classless static route (option 121).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClasslessRoute {
    /// Destination.
    pub destination: Ipv4Net,
    /// Router (0.0.0.0 = on link).
    pub router: Ipv4Addr,
}

/// A DHCPv4 message as values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dhcpv4Repr {
    /// BOOTP operation.
    pub op: BootOp,
    /// Relay hops.
    pub hops: u8,
    /// Transaction ID.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Broadcast flag.
    pub broadcast: bool,
    /// ciaddr.
    pub ciaddr: Ipv4Addr,
    /// yiaddr.
    pub yiaddr: Ipv4Addr,
    /// siaddr.
    pub siaddr: Ipv4Addr,
    /// giaddr.
    pub giaddr: Ipv4Addr,
    /// Client Ethernet address.
    pub client_mac: MacAddr,
    /// Server name (up to 63 bytes, without the NUL padding).
    pub server_name: Vec<u8>,
    /// Boot file name (up to 127 bytes, without the NUL padding).
    pub boot_file: Vec<u8>,
    /// Option 53.
    pub message_type: Option<MessageType>,
    /// Option 51, seconds (`u32::MAX` = infinite).
    pub lease_time: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 121.
    pub classless_routes: Vec<ClasslessRoute>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<Vec<u8>>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 55.
    pub parameter_request_list: Vec<u8>,
    /// Option 60.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 61.
    pub client_id: Option<Vec<u8>>,
    /// Option 77.
    pub user_class: Option<Vec<u8>>,
    /// Any other options, in order of first appearance.
    pub other: Vec<(u8, Vec<u8>)>,
}

fn malformed(reason: &'static str) -> WireError {
    WireError::Malformed {
        layer: Layer::Dhcpv4,
        reason,
    }
}

fn one_addr(data: &[u8], what: &'static str) -> Result<Ipv4Addr, WireError> {
    match data {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(malformed(what)),
    }
}

fn addr_list(data: &[u8], what: &'static str) -> Result<Vec<Ipv4Addr>, WireError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(malformed(what));
    }
    Ok(data.chunks_exact(4).map(|c| ipv4_at(c, 0)).collect())
}

fn trim_nul(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

fn parse_classless(mut data: &[u8]) -> Result<Vec<ClasslessRoute>, WireError> {
    let mut routes = Vec::new();
    while let Some((&width, rest)) = data.split_first() {
        if width > 32 {
            return Err(malformed("classless route prefix longer than 32"));
        }
        let significant = usize::from(width).div_ceil(8);
        if rest.len() < significant + 4 {
            return Err(malformed("truncated classless route"));
        }
        let mut dst = [0u8; 4];
        dst[..significant].copy_from_slice(&rest[..significant]);
        let destination = Ipv4Net::new(Ipv4Addr::from(dst), width)
            .map_err(|_| malformed("classless route prefix"))?
            .trunc();
        routes.push(ClasslessRoute {
            destination,
            router: ipv4_at(rest, significant),
        });
        data = &rest[significant + 4..];
    }
    Ok(routes)
}

impl Dhcpv4Repr {
    /// Reads a message from an Ethernet client (htype 1, hlen 6).
    pub fn parse<T: AsRef<[u8]>>(p: &Dhcpv4Packet<T>) -> Result<Self, WireError> {
        let op = match p.op() {
            1 => BootOp::Request,
            2 => BootOp::Reply,
            _ => return Err(malformed("op is neither request nor reply")),
        };
        if p.htype() != 1 || p.hlen() != 6 {
            return Err(WireError::Unsupported {
                layer: Layer::Dhcpv4,
                what: "hardware other than Ethernet",
            });
        }
        // Concatenate repeated options (RFC 3396), keeping first-seen order.
        let mut raw: Vec<(u8, Vec<u8>)> = Vec::new();
        for opt in p.options() {
            let (code, data) = opt?;
            match raw.iter_mut().find(|(c, _)| *c == code) {
                Some((_, v)) => v.extend_from_slice(data),
                None => raw.push((code, data.to_vec())),
            }
        }
        let mut repr = Dhcpv4Repr {
            op,
            hops: p.hops(),
            xid: p.xid(),
            secs: p.secs(),
            broadcast: p.broadcast(),
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            siaddr: p.siaddr(),
            giaddr: p.giaddr(),
            client_mac: p.client_mac(),
            server_name: trim_nul(p.sname()),
            boot_file: trim_nul(p.file()),
            ..Dhcpv4Repr::empty(op)
        };
        for (code, data) in raw {
            match code {
                option::MESSAGE_TYPE => match data[..] {
                    [v] => repr.message_type = Some(v.into()),
                    _ => return Err(malformed("message type option length")),
                },
                option::LEASE_TIME => match data[..] {
                    [a, b, c, d] => repr.lease_time = Some(u32::from_be_bytes([a, b, c, d])),
                    _ => return Err(malformed("lease time option length")),
                },
                option::MTU => match data[..] {
                    [a, b] => repr.mtu = Some(u16::from_be_bytes([a, b])),
                    _ => return Err(malformed("MTU option length")),
                },
                option::SERVER_ID => repr.server_id = Some(one_addr(&data, "server id option")?),
                option::SUBNET_MASK => {
                    repr.subnet_mask = Some(one_addr(&data, "subnet mask option")?)
                }
                option::REQUESTED_IP => {
                    repr.requested_ip = Some(one_addr(&data, "requested address option")?);
                }
                option::ROUTER => repr.routers = addr_list(&data, "router option")?,
                option::DNS => repr.dns_servers = addr_list(&data, "DNS option")?,
                option::CLASSLESS_ROUTES => repr.classless_routes = parse_classless(&data)?,
                option::HOSTNAME => repr.hostname = Some(data),
                option::PARAMETER_REQUEST_LIST => repr.parameter_request_list = data,
                option::VENDOR_CLASS => repr.vendor_class = Some(data),
                option::CLIENT_ID => repr.client_id = Some(data),
                option::USER_CLASS => repr.user_class = Some(data),
                _ => repr.other.push((code, data)),
            }
        }
        Ok(repr)
    }

    /// A message with every field zero or absent.
    pub fn empty(op: BootOp) -> Self {
        Dhcpv4Repr {
            op,
            hops: 0,
            xid: 0,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            client_mac: MacAddr::ZERO,
            server_name: Vec::new(),
            boot_file: Vec::new(),
            message_type: None,
            lease_time: None,
            server_id: None,
            classless_routes: Vec::new(),
            subnet_mask: None,
            mtu: None,
            routers: Vec::new(),
            dns_servers: Vec::new(),
            hostname: None,
            requested_ip: None,
            parameter_request_list: Vec::new(),
            vendor_class: None,
            client_id: None,
            user_class: None,
            other: Vec::new(),
        }
    }

    fn classless_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in &self.classless_routes {
            let width = r.destination.prefix_len();
            out.push(width);
            let significant = usize::from(width).div_ceil(8);
            out.extend_from_slice(&r.destination.network().octets()[..significant]);
            out.extend_from_slice(&r.router.octets());
        }
        out
    }

    /// The options in emit order: 53, 51, 54, 121, 1, 26, 3, 6, 12 (the
    /// order dpservice answers with), then 50, 55, 60, 61, 77 and the rest.
    fn encoded_options(&self) -> Vec<(u8, Vec<u8>)> {
        let list = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let mut out = Vec::new();
        let mut push = |code: u8, data: Option<Vec<u8>>| {
            if let Some(d) = data {
                out.push((code, d));
            }
        };
        push(
            option::MESSAGE_TYPE,
            self.message_type.map(|t| vec![u8::from(t)]),
        );
        push(
            option::LEASE_TIME,
            self.lease_time.map(|t| t.to_be_bytes().to_vec()),
        );
        push(
            option::SERVER_ID,
            self.server_id.map(|a| a.octets().to_vec()),
        );
        push(
            option::CLASSLESS_ROUTES,
            (!self.classless_routes.is_empty()).then(|| self.classless_bytes()),
        );
        push(
            option::SUBNET_MASK,
            self.subnet_mask.map(|a| a.octets().to_vec()),
        );
        push(option::MTU, self.mtu.map(|m| m.to_be_bytes().to_vec()));
        push(
            option::ROUTER,
            (!self.routers.is_empty()).then(|| list(&self.routers)),
        );
        push(
            option::DNS,
            (!self.dns_servers.is_empty()).then(|| list(&self.dns_servers)),
        );
        push(option::HOSTNAME, self.hostname.clone());
        push(
            option::REQUESTED_IP,
            self.requested_ip.map(|a| a.octets().to_vec()),
        );
        push(
            option::PARAMETER_REQUEST_LIST,
            (!self.parameter_request_list.is_empty()).then(|| self.parameter_request_list.clone()),
        );
        push(option::VENDOR_CLASS, self.vendor_class.clone());
        push(option::CLIENT_ID, self.client_id.clone());
        push(option::USER_CLASS, self.user_class.clone());
        for (code, data) in &self.other {
            push(*code, Some(data.clone()));
        }
        out
    }

    /// Checks what [`emit`](Self::emit) needs: names fit their fields,
    /// every option fits 255 bytes and is not empty, `other` holds no code
    /// this type decodes itself.
    pub fn validate(&self) -> Result<(), WireError> {
        self.check(&self.encoded_options())
    }

    /// [`validate`](Self::validate) on options encoded once by the caller.
    fn check(&self, encoded: &[(u8, Vec<u8>)]) -> Result<(), WireError> {
        let too_large = |field| WireError::TooLarge {
            layer: Layer::Dhcpv4,
            field,
        };
        if self.server_name.len() > 63 {
            return Err(too_large("server name"));
        }
        if self.boot_file.len() > 127 {
            return Err(too_large("boot file"));
        }
        for (i, (code, _)) in self.other.iter().enumerate() {
            if DECODED.contains(code) || self.other[..i].iter().any(|(c, _)| c == code) {
                return Err(malformed(
                    "other options repeat a code or hold a decoded one",
                ));
            }
        }
        for (code, data) in encoded {
            if data.len() > 255 {
                return Err(too_large("option"));
            }
            if matches!(*code, option::PAD | option::END) {
                return Err(malformed("pad or end given as an option"));
            }
        }
        Ok(())
    }

    /// Bytes [`emit`](Self::emit) writes: header, options, END, padded to
    /// [`MIN_EMIT_LEN`].
    pub fn buffer_len(&self) -> usize {
        Self::len_of(&self.encoded_options())
    }

    fn len_of(encoded: &[(u8, Vec<u8>)]) -> usize {
        let opts: usize = encoded.iter().map(|(_, d)| 2 + d.len()).sum();
        (OPTIONS_OFFSET + opts + 1).max(MIN_EMIT_LEN)
    }

    /// Writes the message into `buf` (at least
    /// [`buffer_len`](Self::buffer_len) bytes) after [`validate`](Self::validate).
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let encoded = self.encoded_options();
        self.check(&encoded)?;
        let len = Self::len_of(&encoded);
        let buf = &mut buf[..len];
        buf.fill(0);
        buf[0] = match self.op {
            BootOp::Request => 1,
            BootOp::Reply => 2,
        };
        buf[1] = 1;
        buf[2] = 6;
        buf[3] = self.hops;
        set_u32(buf, 4, self.xid);
        set_u16(buf, 8, self.secs);
        set_u16(buf, 10, if self.broadcast { 0x8000 } else { 0 });
        for (at, a) in [
            (12, self.ciaddr),
            (16, self.yiaddr),
            (20, self.siaddr),
            (24, self.giaddr),
        ] {
            buf[at..at + 4].copy_from_slice(&a.octets());
        }
        buf[28..34].copy_from_slice(&self.client_mac.0);
        buf[44..44 + self.server_name.len()].copy_from_slice(&self.server_name);
        buf[108..108 + self.boot_file.len()].copy_from_slice(&self.boot_file);
        set_u32(buf, BOOTP_LEN, MAGIC_COOKIE);
        let mut at = OPTIONS_OFFSET;
        for (code, data) in encoded {
            buf[at] = code;
            buf[at + 1] = data.len() as u8;
            buf[at + 2..at + 2 + data.len()].copy_from_slice(&data);
            at += 2 + data.len();
        }
        buf[at] = option::END;
        Ok(())
    }
}
