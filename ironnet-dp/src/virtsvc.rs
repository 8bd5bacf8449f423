//! Virtual services (dpservice's `--udp-virtsvc` / `--tcp-virtsvc`): an
//! IPv4 (address, port) that every guest can reach, such as a metadata
//! service on 169.254.169.254:80, served by an IPv6 (address, port) on the
//! underlay. The dp replaces the guest's IPv4 header with an IPv6 header
//! (no tunnel) on the way out and the service's IPv6 header with an IPv4
//! header on the way back.
//!
//! Each service has its own underlay source address,
//! [`service_underlay`]: the host's /64, type `0xD0`, subtype `0xFF`,
//! flags `0x40` (dpservice's "secondary pool"), then the service index.
//! Guest connections share the service's 64 512 source ports (1024 and
//! up); the connection table lives in the pipeline.
//!
//! This module holds the static configuration: parsing the
//! `IPv4,port,IPv6,port` flag values and the lookup tables. It is pure.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use rustc_hash::FxHashMap;

/// At most this many services (dpservice's limit).
pub const MAX_VIRTUAL_SERVICES: usize = 256;

/// The first source port of a service's connections towards the service.
pub const FIRST_CONNECTION_PORT: u16 = 1024;

/// Connections a service can hold at once (ports 1024..=65535).
pub const CONNECTIONS_PER_SERVICE: usize = 65536 - FIRST_CONNECTION_PORT as usize;

/// Bytes 8..12 of every service underlay address.
const UNDERLAY_MARK: [u8; 4] = [0xd0, 0xff, 0x40, 0x00];

/// The transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceProtocol {
    /// TCP (`--tcp-virtsvc`).
    Tcp,
    /// UDP (`--udp-virtsvc`).
    Udp,
}

impl ServiceProtocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            ServiceProtocol::Tcp => 6,
            ServiceProtocol::Udp => 17,
        }
    }

    /// The protocol with IP protocol number `n`, if TCP or UDP.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(ServiceProtocol::Tcp),
            17 => Some(ServiceProtocol::Udp),
            _ => None,
        }
    }
}

impl std::fmt::Display for ServiceProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceProtocol::Tcp => "tcp",
            ServiceProtocol::Udp => "udp",
        })
    }
}

/// One virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VirtualService {
    /// TCP or UDP.
    pub protocol: ServiceProtocol,
    /// The address guests use.
    pub virtual_addr: Ipv4Addr,
    /// The port guests use.
    pub virtual_port: u16,
    /// The service's underlay address.
    pub service_addr: Ipv6Addr,
    /// The service's port.
    pub service_port: u16,
}

/// A virtual-service definition or set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VirtsvcError {
    /// Not four comma-separated fields.
    #[error("virtual service {0:?}: expected IPv4,port,IPv6,port")]
    Format(String),
    /// A field that does not parse.
    #[error("virtual service {text:?}: invalid {field} {value:?}")]
    Field {
        /// The whole definition.
        text: String,
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// Port 0 on either side.
    #[error("virtual service {0:?}: port 0 is not allowed")]
    PortZero(String),
    /// Two services with the same guest-facing (protocol, address, port).
    #[error("virtual service {protocol} {addr}:{port} is defined twice")]
    DuplicateVirtual {
        /// Protocol.
        protocol: ServiceProtocol,
        /// Virtual address.
        addr: Ipv4Addr,
        /// Virtual port.
        port: u16,
    },
    /// Two services with the same underlay (protocol, address, port).
    #[error("virtual service {protocol} [{addr}]:{port} is the target of two services")]
    DuplicateService {
        /// Protocol.
        protocol: ServiceProtocol,
        /// Service address.
        addr: Ipv6Addr,
        /// Service port.
        port: u16,
    },
    /// More than [`MAX_VIRTUAL_SERVICES`].
    #[error("{0} virtual services; at most {MAX_VIRTUAL_SERVICES} are supported")]
    TooMany(usize),
}

impl VirtualService {
    /// Parses `IPv4,port,IPv6,port` (the value of `--tcp-virtsvc` or
    /// `--udp-virtsvc`).
    pub fn parse(protocol: ServiceProtocol, text: &str) -> Result<Self, VirtsvcError> {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let [v4, vport, v6, sport] = fields[..] else {
            return Err(VirtsvcError::Format(text.to_owned()));
        };
        let bad = |field: &'static str, value: &str| VirtsvcError::Field {
            text: text.to_owned(),
            field,
            value: value.to_owned(),
        };
        let service = VirtualService {
            protocol,
            virtual_addr: Ipv4Addr::from_str(v4).map_err(|_| bad("IPv4 address", v4))?,
            virtual_port: vport.parse().map_err(|_| bad("virtual port", vport))?,
            service_addr: Ipv6Addr::from_str(v6).map_err(|_| bad("IPv6 address", v6))?,
            service_port: sport.parse().map_err(|_| bad("service port", sport))?,
        };
        if service.virtual_port == 0 || service.service_port == 0 {
            return Err(VirtsvcError::PortZero(text.to_owned()));
        }
        Ok(service)
    }
}

/// The configured services with their lookup tables; index `i` is the
/// service's number in its underlay address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualServices {
    services: Vec<VirtualService>,
    by_virtual: FxHashMap<(u8, Ipv4Addr, u16), u16>,
}

impl VirtualServices {
    /// Validates `services`: at most [`MAX_VIRTUAL_SERVICES`], no two
    /// sharing their guest side or their underlay side.
    pub fn new(services: Vec<VirtualService>) -> Result<Self, VirtsvcError> {
        if services.len() > MAX_VIRTUAL_SERVICES {
            return Err(VirtsvcError::TooMany(services.len()));
        }
        let mut by_virtual = FxHashMap::default();
        let mut by_service = FxHashMap::default();
        for (i, s) in services.iter().enumerate() {
            let index = u16::try_from(i).map_err(|_| VirtsvcError::TooMany(services.len()))?;
            let proto = s.protocol.number();
            if by_virtual
                .insert((proto, s.virtual_addr, s.virtual_port), index)
                .is_some()
            {
                return Err(VirtsvcError::DuplicateVirtual {
                    protocol: s.protocol,
                    addr: s.virtual_addr,
                    port: s.virtual_port,
                });
            }
            if by_service
                .insert((proto, s.service_addr, s.service_port), index)
                .is_some()
            {
                return Err(VirtsvcError::DuplicateService {
                    protocol: s.protocol,
                    addr: s.service_addr,
                    port: s.service_port,
                });
            }
        }
        Ok(VirtualServices {
            services,
            by_virtual,
        })
    }

    /// No services configured.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// The services in index order.
    pub fn iter(&self) -> impl Iterator<Item = &VirtualService> + '_ {
        self.services.iter()
    }

    /// Service `index`.
    pub fn get(&self, index: u16) -> Option<&VirtualService> {
        self.services.get(usize::from(index))
    }

    /// The service guests reach at (`protocol` number, `addr`, `port`).
    pub fn by_virtual(&self, protocol: u8, addr: Ipv4Addr, port: u16) -> Option<u16> {
        self.by_virtual.get(&(protocol, addr, port)).copied()
    }

    /// The service whose underlay address is `addr` on host `host`.
    pub fn by_underlay(&self, host: Ipv6Addr, addr: Ipv6Addr) -> Option<u16> {
        let (h, a) = (host.octets(), addr.octets());
        if h[..8] != a[..8] || a[8..12] != UNDERLAY_MARK {
            return None;
        }
        let index = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
        let index = u16::try_from(index).ok()?;
        (usize::from(index) < self.services.len()).then_some(index)
    }
}

/// The underlay source address of service `index` on host `host`.
pub fn service_underlay(host: Ipv6Addr, index: u16) -> Ipv6Addr {
    let mut a = host.octets();
    a[8..12].copy_from_slice(&UNDERLAY_MARK);
    a[12..16].copy_from_slice(&u32::from(index).to_be_bytes());
    Ipv6Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = VirtualService::parse(ServiceProtocol::Tcp, "169.254.169.254,80,fc00:b::5,8080")
            .expect("valid");
        assert_eq!(s.virtual_addr, Ipv4Addr::new(169, 254, 169, 254));
        assert_eq!((s.virtual_port, s.service_port), (80, 8080));
        for bad in [
            "169.254.169.254,80,fc00:b::5",
            "1.2.3.4,80,fc00::1,80,9",
            "1.2.3,80,fc00::1,80",
            "1.2.3.4,99999,fc00::1,80",
            "1.2.3.4,80,fc00::g,80",
            "1.2.3.4,80,fc00::1,x",
            "",
        ] {
            assert!(
                VirtualService::parse(ServiceProtocol::Udp, bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            VirtualService::parse(ServiceProtocol::Udp, "1.2.3.4,0,fc00::1,80"),
            Err(VirtsvcError::PortZero("1.2.3.4,0,fc00::1,80".into()))
        );
    }

    #[test]
    fn duplicates_and_limits() {
        let tcp = |t: &str| VirtualService::parse(ServiceProtocol::Tcp, t).expect("valid");
        let udp = |t: &str| VirtualService::parse(ServiceProtocol::Udp, t).expect("valid");
        assert!(matches!(
            VirtualServices::new(vec![
                tcp("1.1.1.1,80,fc00::1,80"),
                tcp("1.1.1.1,80,fc00::2,80")
            ]),
            Err(VirtsvcError::DuplicateVirtual { .. })
        ));
        assert!(matches!(
            VirtualServices::new(vec![
                tcp("1.1.1.1,80,fc00::1,80"),
                tcp("1.1.1.2,80,fc00::1,80")
            ]),
            Err(VirtsvcError::DuplicateService { .. })
        ));
        // The same sides with another protocol are another service.
        let both = VirtualServices::new(vec![
            tcp("1.1.1.1,80,fc00::1,80"),
            udp("1.1.1.1,80,fc00::1,80"),
        ])
        .expect("distinct protocols");
        assert_eq!(both.by_virtual(17, Ipv4Addr::new(1, 1, 1, 1), 80), Some(1));
        let many = (0..=MAX_VIRTUAL_SERVICES)
            .map(|i| {
                tcp(&format!(
                    "1.1.{}.{},80,fc00::{:x},80",
                    i / 256,
                    i % 256,
                    i + 1
                ))
            })
            .collect();
        assert_eq!(
            VirtualServices::new(many),
            Err(VirtsvcError::TooMany(MAX_VIRTUAL_SERVICES + 1))
        );
    }

    #[test]
    fn underlay_round_trip() {
        let host: Ipv6Addr = "fc00:1::1".parse().expect("addr");
        let tcp = |t: &str| VirtualService::parse(ServiceProtocol::Tcp, t).expect("valid");
        let set = VirtualServices::new(vec![
            tcp("1.1.1.1,80,fc00::1,80"),
            tcp("1.1.1.2,80,fc00::2,80"),
        ])
        .expect("valid");
        let u = service_underlay(host, 1);
        assert_eq!(
            u,
            "fc00:1::d0ff:4000:0:1".parse::<Ipv6Addr>().expect("addr")
        );
        assert_eq!(set.by_underlay(host, u), Some(1));
        assert_eq!(set.by_underlay(host, service_underlay(host, 2)), None);
        let other: Ipv6Addr = "fc00:2::1".parse().expect("addr");
        assert_eq!(set.by_underlay(other, u), None);
        assert_eq!(set.by_underlay(host, host), None);
    }
}
