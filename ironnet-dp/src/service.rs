//! The gRPC service: dpservice's `DPDKironcore` API over [`DpState`].
//!
//! Conventions kept from dpservice: addresses and identifiers travel as
//! text in `bytes` fields; every RPC but Initialize answers ABORTED "not
//! initialized" until Initialize was called; malformed requests get
//! INVALID_ARGUMENT with dpservice's message ("Invalid interface_id" …);
//! service errors come back with gRPC OK and `Status{code, name}`. The
//! packet-capture RPCs (hardware offload only in dpservice) answer
//! UNIMPLEMENTED, never a fake success. After every successful change a new snapshot is published to
//! the pipeline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use ironnet_overlay::route::Vni;
use tonic::{Request, Response, Status};

use crate::error::ServiceError;
use crate::firewall::{FirewallRule, PortRange, ProtocolMatch, RuleAction, RuleDirection};
use crate::proto;
use crate::proto::dpd_kironcore_server::DpdKironcore;
use crate::snapshot::Published;
use crate::state::{
    DpState, ExternalRoute, Interface, InterfaceSpec, LbPort, LbSpec, MAX_LB_PORTS, NeighborNat,
    Pxe, VniType,
};

/// Longest identifier (dpservice's 64-byte buffers hold 63 characters).
const MAX_ID: usize = 63;
/// Longest PXE boot file name.
const MAX_BOOT_FILE: usize = 31;

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct DpService {
    state: Arc<Mutex<DpState>>,
    published: Published,
    uuid: String,
}

type Reply<T> = Result<Response<T>, Status>;

fn success() -> Option<proto::Status> {
    Some(proto::Status {
        code: 0,
        message: "Success".to_owned(),
    })
}

fn failure(e: ServiceError) -> Option<proto::Status> {
    Some(proto::Status {
        code: e.code(),
        message: e.to_string(),
    })
}

fn status_of<T>(r: &Result<T, ServiceError>) -> Option<proto::Status> {
    match r {
        Ok(_) => success(),
        Err(e) => failure(*e),
    }
}

fn invalid(field: &str) -> Status {
    Status::invalid_argument(format!("Invalid {field}"))
}

fn text<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, Status> {
    std::str::from_utf8(bytes).map_err(|_| invalid(field))
}

/// An interface, rule or load-balancer id: 1..=63 of `[A-Za-z0-9_-]`.
fn identifier(bytes: &[u8], field: &str) -> Result<String, Status> {
    let s = text(bytes, field)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid(field))
    }
}

fn ip_of(ip: Option<&proto::IpAddress>, field: &str) -> Result<IpAddr, Status> {
    let ip = ip.ok_or_else(|| invalid(field))?;
    let s = text(&ip.address, field)?;
    match proto::IpVersion::try_from(ip.ipver) {
        Ok(proto::IpVersion::Ipv4) => s.parse::<Ipv4Addr>().map(IpAddr::V4),
        Ok(proto::IpVersion::Ipv6) => s.parse::<Ipv6Addr>().map(IpAddr::V6),
        Err(_) => return Err(invalid(field)),
    }
    .map_err(|_| invalid(field))
}

fn prefix_of(p: Option<&proto::Prefix>, field: &str) -> Result<IpNet, Status> {
    let p = p.ok_or_else(|| invalid(&format!("{field}.ip")))?;
    let addr = ip_of(p.ip.as_ref(), &format!("{field}.ip"))?;
    let len = u8::try_from(p.length).map_err(|_| invalid(&format!("{field}.length")))?;
    IpNet::new(addr, len).map_err(|_| invalid(&format!("{field}.length")))
}

fn vni_of(v: u32) -> Result<Vni, Status> {
    Vni::new(v).ok_or_else(|| Status::invalid_argument("VNI exceeds 24-bit range"))
}

fn ip_message(addr: IpAddr) -> proto::IpAddress {
    proto::IpAddress {
        ipver: match addr {
            IpAddr::V4(_) => proto::IpVersion::Ipv4,
            IpAddr::V6(_) => proto::IpVersion::Ipv6,
        } as i32,
        address: addr.to_string().into_bytes(),
    }
}

fn text_bytes(v: impl ToString) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn vni_type(t: i32) -> Result<VniType, Status> {
    match proto::VniType::try_from(t) {
        Ok(proto::VniType::VniIpv4) => Ok(VniType::V4),
        Ok(proto::VniType::VniIpv6) => Ok(VniType::V6),
        Ok(proto::VniType::VniBoth) => Ok(VniType::Both),
        Err(_) => Err(invalid("type")),
    }
}

/// A random v4 UUID in upper case, fixed for the life of the process
/// (clients compare it to detect restarts).
fn process_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u32(std::process::id());
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        *w = h.finish();
    }
    let b: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let hex =
        |r: std::ops::Range<usize>| -> String { b[r].iter().map(|x| format!("{x:02X}")).collect() };
    let version = format!("4{:03X}", u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let variant = format!(
        "{:04X}",
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000
    );
    format!(
        "{}-{}-{version}-{variant}-{}",
        hex(0..4),
        hex(4..6),
        hex(10..16)
    )
}

impl DpService {
    /// A service over `state`, publishing to `published`.
    pub fn new(state: DpState, published: Published) -> Self {
        let svc = DpService {
            state: Arc::new(Mutex::new(state)),
            published,
            uuid: process_uuid(),
        };
        svc.publish(&mut svc.lock());
        svc
    }

    /// The process UUID reported by (Check)Initialize.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The published snapshots.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> proto::dpd_kironcore_server::DpdKironcoreServer<Self> {
        proto::dpd_kironcore_server::DpdKironcoreServer::new(self)
    }

    fn lock(&self) -> MutexGuard<'_, DpState> {
        // A panic while holding the lock leaves consistent state (every
        // operation checks before it changes), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, state: &mut DpState) {
        self.published.store(state.snapshot());
    }

    /// The state, once initialized.
    fn ready(&self) -> Result<MutexGuard<'_, DpState>, Status> {
        let state = self.lock();
        if state.is_initialized() {
            Ok(state)
        } else {
            Err(Status::aborted("not initialized"))
        }
    }

    /// Runs a change and publishes a snapshot if it succeeded.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut DpState) -> Result<T, ServiceError>,
    ) -> Result<Result<T, ServiceError>, Status> {
        let mut state = self.ready()?;
        let before = state.generation();
        let r = f(&mut state);
        if state.generation() != before {
            self.publish(&mut state);
        }
        Ok(r)
    }

    fn interface_message(&self, state: &DpState, i: &Interface) -> proto::Interface {
        proto::Interface {
            id: i.id.clone().into_bytes(),
            vni: i.vni.get(),
            primary_ipv4: text_bytes(i.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            primary_ipv6: text_bytes(i.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
            underlay_route: text_bytes(i.underlay),
            pci_name: state
                .config()
                .ports
                .get(usize::from(i.port))
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            metering_params: None,
            hostname: i.hostname.clone().unwrap_or_default(),
        }
    }

    fn preferred(&self, bytes: &[u8], field: &str) -> Result<Option<Ipv6Addr>, Status> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let addr: Ipv6Addr = text(bytes, field)?.parse().map_err(|_| invalid(field))?;
        if addr.is_unspecified() {
            return Ok(None);
        }
        if self.lock().preferred_is_valid(addr) {
            Ok(Some(addr))
        } else {
            Err(invalid(field))
        }
    }

    fn interface_spec(&self, r: &proto::CreateInterfaceRequest) -> Result<InterfaceSpec, Status> {
        let id = identifier(&r.interface_id, "interface_id")?;
        let vni = Vni::new(r.vni).ok_or_else(|| invalid("vni"))?;
        let v4_field = "ipv4_config.primary_address";
        let v6_field = "ipv6_config.primary_address";
        let v4: Ipv4Addr = r
            .ipv4_config
            .as_ref()
            .ok_or_else(|| invalid(v4_field))
            .and_then(|c| text(&c.primary_address, v4_field))?
            .parse()
            .map_err(|_| invalid(v4_field))?;
        let v6: Ipv6Addr = r
            .ipv6_config
            .as_ref()
            .ok_or_else(|| invalid(v6_field))
            .and_then(|c| text(&c.primary_address, v6_field))?
            .parse()
            .map_err(|_| invalid(v6_field))?;
        if v4.is_unspecified() && v6.is_unspecified() {
            return Err(Status::invalid_argument(
                "Invalid ipv4_config.primary_address and ipv6_config.primary_address combination",
            ));
        }
        if r.device_name.is_empty() || r.device_name.len() > MAX_ID {
            return Err(invalid("device_name"));
        }
        if r.hostname.len() > MAX_ID {
            return Err(invalid("hostname"));
        }
        let pxe = match &r.pxe_config {
            Some(p) if !p.next_server.is_empty() => {
                let field = "pxe_config.next_server";
                let next_server = if v6.is_unspecified() {
                    p.next_server.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    p.next_server.parse::<Ipv6Addr>().map(IpAddr::V6)
                }
                .map_err(|_| invalid(field))?;
                if p.boot_filename.len() > MAX_BOOT_FILE {
                    return Err(invalid("pxe_config.boot_filename"));
                }
                Some(Pxe {
                    next_server,
                    boot_filename: p.boot_filename.clone(),
                })
            }
            _ => None,
        };
        Ok(InterfaceSpec {
            id,
            vni,
            ipv4: (!v4.is_unspecified()).then_some(v4),
            ipv6: (!v6.is_unspecified()).then_some(v6),
            device: r.device_name.clone(),
            preferred_underlay: self
                .preferred(&r.preferred_underlay_route, "preferred_underlay_route")?,
            pxe,
            hostname: (!r.hostname.is_empty()).then(|| r.hostname.clone()),
        })
    }
}

/// A firewall prefix: `field.ip` with its version, `field.length` within
/// the family.
fn rule_prefix(p: Option<&proto::Prefix>, field: &str) -> Result<IpNet, Status> {
    let p = p.ok_or_else(|| invalid(&format!("{field}.ip.ipver")))?;
    let ip =
        p.ip.as_ref()
            .ok_or_else(|| invalid(&format!("{field}.ip.ipver")))?;
    if proto::IpVersion::try_from(ip.ipver).is_err() {
        return Err(invalid(&format!("{field}.ip.ipver")));
    }
    let addr = ip_of(Some(ip), &format!("{field}.ip"))?;
    let len = match addr {
        IpAddr::V4(_) => u8::try_from(p.length)
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| invalid(&format!("{field}.length")))?,
        IpAddr::V6(_) => u8::try_from(p.length)
            .ok()
            .filter(|l| *l <= 128)
            .ok_or_else(|| invalid(&format!("ip6 {field}.length")))?,
    };
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .map_err(|_| invalid(&format!("{field}.length")))
}

/// One side of a TCP/UDP port filter: `-1` lower means any port.
fn port_range(lower: i32, upper: i32, field: &str, side: &str) -> Result<PortRange, Status> {
    if lower == -1 {
        return Ok(PortRange::ANY);
    }
    let lo = u16::try_from(lower).map_err(|_| invalid(&format!("{field}.{side}_port_lower")))?;
    let hi = u16::try_from(upper).map_err(|_| invalid(&format!("{field}.{side}_port_upper")))?;
    if hi < lo {
        return Err(invalid(&format!("{field}.{side}_port range")));
    }
    Ok(PortRange { lo, hi })
}

fn icmp_value(v: i32, field: &str) -> Result<Option<u8>, Status> {
    match v {
        -1 => Ok(None),
        v => u8::try_from(v).map(Some).map_err(|_| invalid(field)),
    }
}

fn firewall_rule(r: Option<&proto::FirewallRule>) -> Result<FirewallRule, Status> {
    let r = r.ok_or_else(|| invalid("rule id"))?;
    let id = identifier(&r.id, "rule id")?;
    let direction = match proto::TrafficDirection::try_from(r.direction) {
        Ok(proto::TrafficDirection::Ingress) => RuleDirection::Ingress,
        Ok(proto::TrafficDirection::Egress) => RuleDirection::Egress,
        Err(_) => return Err(invalid("direction")),
    };
    let action = match proto::FirewallAction::try_from(r.action) {
        Ok(proto::FirewallAction::Drop) => RuleAction::Drop,
        Ok(proto::FirewallAction::Accept) => RuleAction::Accept,
        Err(_) => return Err(invalid("action")),
    };
    let priority = u16::try_from(r.priority).map_err(|_| invalid("priority"))?;
    let src = rule_prefix(r.source_prefix.as_ref(), "source_prefix")?;
    let dst = rule_prefix(r.destination_prefix.as_ref(), "destination_prefix")?;
    use proto::protocol_filter::Filter;
    let protocol = match r.protocol_filter.as_ref().and_then(|f| f.filter.as_ref()) {
        None => ProtocolMatch::Any,
        Some(Filter::Tcp(t)) => ProtocolMatch::Tcp {
            src: port_range(t.src_port_lower, t.src_port_upper, "tcp", "src")?,
            dst: port_range(t.dst_port_lower, t.dst_port_upper, "tcp", "dst")?,
        },
        Some(Filter::Udp(u)) => ProtocolMatch::Udp {
            src: port_range(u.src_port_lower, u.src_port_upper, "udp", "src")?,
            dst: port_range(u.dst_port_lower, u.dst_port_upper, "udp", "dst")?,
        },
        Some(Filter::Icmp(i)) => ProtocolMatch::Icmp {
            icmp_type: icmp_value(i.icmp_type, "icmp.icmp_type")?,
            icmp_code: icmp_value(i.icmp_code, "icmp.icmp_code")?,
        },
    };
    Ok(FirewallRule {
        id,
        direction,
        action,
        priority,
        src,
        dst,
        protocol,
    })
}

/// Prefixes with their underlay addresses, as List(LoadBalancer)Prefixes
/// answer them.
fn prefix_messages(list: Vec<(IpNet, Ipv6Addr)>) -> Vec<proto::Prefix> {
    list.into_iter()
        .map(|(p, u)| proto::Prefix {
            ip: Some(ip_message(p.addr())),
            length: u32::from(p.prefix_len()),
            underlay_route: text_bytes(u),
        })
        .collect()
}

fn prefix_message(p: IpNet) -> proto::Prefix {
    proto::Prefix {
        ip: Some(ip_message(p.addr())),
        length: u32::from(p.prefix_len()),
        underlay_route: Vec::new(),
    }
}

fn firewall_rule_message(r: &FirewallRule) -> proto::FirewallRule {
    use proto::protocol_filter::Filter;
    let ports = |p: PortRange| -> (i32, i32) {
        if p == PortRange::ANY {
            (-1, -1)
        } else {
            (i32::from(p.lo), i32::from(p.hi))
        }
    };
    let filter = match r.protocol {
        ProtocolMatch::Any => None,
        ProtocolMatch::Tcp { src, dst } => Some(Filter::Tcp(proto::TcpFilter {
            src_port_lower: ports(src).0,
            src_port_upper: ports(src).1,
            dst_port_lower: ports(dst).0,
            dst_port_upper: ports(dst).1,
        })),
        ProtocolMatch::Udp { src, dst } => Some(Filter::Udp(proto::UdpFilter {
            src_port_lower: ports(src).0,
            src_port_upper: ports(src).1,
            dst_port_lower: ports(dst).0,
            dst_port_upper: ports(dst).1,
        })),
        ProtocolMatch::Icmp {
            icmp_type,
            icmp_code,
        } => Some(Filter::Icmp(proto::IcmpFilter {
            icmp_type: icmp_type.map_or(-1, i32::from),
            icmp_code: icmp_code.map_or(-1, i32::from),
        })),
    };
    proto::FirewallRule {
        id: r.id.clone().into_bytes(),
        direction: match r.direction {
            RuleDirection::Ingress => proto::TrafficDirection::Ingress,
            RuleDirection::Egress => proto::TrafficDirection::Egress,
        } as i32,
        action: match r.action {
            RuleAction::Drop => proto::FirewallAction::Drop,
            RuleAction::Accept => proto::FirewallAction::Accept,
        } as i32,
        priority: u32::from(r.priority),
        source_prefix: Some(prefix_message(r.src)),
        destination_prefix: Some(prefix_message(r.dst)),
        protocol_filter: filter.map(|f| proto::ProtocolFilter { filter: Some(f) }),
    }
}

/// A NAT port range: both ports at most 65535 and `min < max`.
fn nat_ports(min: u32, max: u32) -> Result<(u16, u16), Status> {
    let min = u16::try_from(min).map_err(|_| invalid("min_port"))?;
    let max = u16::try_from(max).map_err(|_| invalid("max_port"))?;
    if min >= max {
        return Err(invalid("port range"));
    }
    Ok((min, max))
}

/// The NAT IP a list call filters on: `None` for `0.0.0.0` (all), an
/// IPv6 address is a service error (204).
fn nat_filter(
    ip: Option<&proto::IpAddress>,
) -> Result<Result<Option<Ipv4Addr>, ServiceError>, Status> {
    Ok(match ip_of(ip, "nat_ip")? {
        IpAddr::V4(a) if a.is_unspecified() => Ok(None),
        IpAddr::V4(a) => Ok(Some(a)),
        IpAddr::V6(_) => Err(ServiceError::BadIpVersion),
    })
}

/// Balanced ports: at most 15, TCP or UDP, ports 1..=65535, no
/// duplicates.
fn lb_ports(ports: &[proto::LbPort]) -> Result<Vec<LbPort>, Status> {
    if ports.len() > MAX_LB_PORTS {
        return Err(Status::invalid_argument("Too many loadbalanced_ports"));
    }
    let mut out: Vec<LbPort> = Vec::with_capacity(ports.len());
    for p in ports {
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("loadbalanced_ports.port"))?;
        let protocol = match proto::Protocol::try_from(p.protocol) {
            Ok(proto::Protocol::Tcp) => 6,
            Ok(proto::Protocol::Udp) => 17,
            _ => return Err(invalid("loadbalanced_ports.protocol")),
        };
        let entry = LbPort { protocol, port };
        if out.contains(&entry) {
            return Err(Status::invalid_argument(
                "Duplicate loadbalanced_ports entry",
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

fn lb_port_messages(ports: &[LbPort]) -> Vec<proto::LbPort> {
    ports
        .iter()
        .map(|p| proto::LbPort {
            port: u32::from(p.port),
            protocol: if p.protocol == 6 {
                proto::Protocol::Tcp
            } else {
                proto::Protocol::Udp
            } as i32,
        })
        .collect()
}

macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        $(
            // Spelled as `async_trait` expands methods: the attribute does
            // not see inside this macro.
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _: Request<proto::$req>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Reply<proto::$resp>> + Send + 'async_trait>,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    Err(Status::unimplemented(concat!(
                        stringify!($name),
                        " is not implemented by ironnet-dp yet"
                    )))
                })
            }
        )*
    };
}

#[tonic::async_trait]
impl DpdKironcore for DpService {
    async fn check_initialized(
        &self,
        _: Request<proto::CheckInitializedRequest>,
    ) -> Reply<proto::CheckInitializedResponse> {
        let _state = self.ready()?;
        Ok(Response::new(proto::CheckInitializedResponse {
            status: success(),
            uuid: self.uuid.clone(),
        }))
    }

    async fn initialize(
        &self,
        _: Request<proto::InitializeRequest>,
    ) -> Reply<proto::InitializeResponse> {
        let mut state = self.lock();
        state.initialize();
        self.publish(&mut state);
        Ok(Response::new(proto::InitializeResponse {
            status: success(),
            uuid: self.uuid.clone(),
        }))
    }

    async fn get_version(
        &self,
        req: Request<proto::GetVersionRequest>,
    ) -> Reply<proto::GetVersionResponse> {
        let r = req.into_inner();
        for (value, field) in [
            (&r.client_protocol, "client_protocol"),
            (&r.client_name, "client_name"),
            (&r.client_version, "client_version"),
        ] {
            if value.is_empty() || value.len() > MAX_ID {
                return Err(invalid(field));
            }
        }
        let _state = self.ready()?;
        let version = format!("ironnet-dp-{}", env!("CARGO_PKG_VERSION"));
        Ok(Response::new(proto::GetVersionResponse {
            status: success(),
            service_protocol: version.clone(),
            service_version: version,
        }))
    }

    async fn list_interfaces(
        &self,
        _: Request<proto::ListInterfacesRequest>,
    ) -> Reply<proto::ListInterfacesResponse> {
        let state = self.ready()?;
        let interfaces = state
            .interfaces()
            .map(|i| self.interface_message(&state, i))
            .collect();
        Ok(Response::new(proto::ListInterfacesResponse {
            status: success(),
            interfaces,
        }))
    }

    async fn get_interface(
        &self,
        req: Request<proto::GetInterfaceRequest>,
    ) -> Reply<proto::GetInterfaceResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let state = self.ready()?;
        Ok(Response::new(match state.interface(&id) {
            Some(i) => proto::GetInterfaceResponse {
                status: success(),
                interface: Some(self.interface_message(&state, i)),
            },
            None => proto::GetInterfaceResponse {
                status: failure(ServiceError::NotFound),
                interface: None,
            },
        }))
    }

    async fn create_interface(
        &self,
        req: Request<proto::CreateInterfaceRequest>,
    ) -> Reply<proto::CreateInterfaceResponse> {
        let spec = self.interface_spec(req.get_ref())?;
        let r = self.change(|s| s.create_interface(spec))?;
        Ok(Response::new(proto::CreateInterfaceResponse {
            status: status_of(&r),
            underlay_route: r.as_ref().map(|(u, _)| text_bytes(u)).unwrap_or_default(),
            vf: r.ok().map(|(_, name)| proto::VirtualFunction {
                name,
                ..Default::default()
            }),
        }))
    }

    async fn delete_interface(
        &self,
        req: Request<proto::DeleteInterfaceRequest>,
    ) -> Reply<proto::DeleteInterfaceResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let r = self.change(|s| s.delete_interface(&id))?;
        Ok(Response::new(proto::DeleteInterfaceResponse {
            status: status_of(&r),
        }))
    }

    async fn list_prefixes(
        &self,
        req: Request<proto::ListPrefixesRequest>,
    ) -> Reply<proto::ListPrefixesResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let r = self.ready()?.prefixes(&id);
        Ok(Response::new(proto::ListPrefixesResponse {
            status: status_of(&r),
            prefixes: prefix_messages(r.unwrap_or_default()),
        }))
    }

    async fn create_prefix(
        &self,
        req: Request<proto::CreatePrefixRequest>,
    ) -> Reply<proto::CreatePrefixResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let prefix = prefix_of(r.prefix.as_ref(), "prefix")?;
        let preferred = self.preferred(&r.preferred_underlay_route, "preferred_underlay_route")?;
        let res = self.change(|s| s.create_prefix(&id, prefix, preferred))?;
        Ok(Response::new(proto::CreatePrefixResponse {
            status: status_of(&res),
            underlay_route: res.map(text_bytes).unwrap_or_default(),
        }))
    }

    async fn delete_prefix(
        &self,
        req: Request<proto::DeletePrefixRequest>,
    ) -> Reply<proto::DeletePrefixResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let prefix = prefix_of(r.prefix.as_ref(), "prefix")?;
        let res = self.change(|s| s.delete_prefix(&id, prefix))?;
        Ok(Response::new(proto::DeletePrefixResponse {
            status: status_of(&res),
        }))
    }

    async fn list_routes(
        &self,
        req: Request<proto::ListRoutesRequest>,
    ) -> Reply<proto::ListRoutesResponse> {
        let vni = match req.get_ref().vni {
            0 => None,
            v => Some(vni_of(v)?),
        };
        let r = self.ready()?.routes(vni);
        Ok(Response::new(proto::ListRoutesResponse {
            status: status_of(&r),
            routes: r
                .unwrap_or_default()
                .into_iter()
                .map(|rt| proto::Route {
                    prefix: Some(proto::Prefix {
                        ip: Some(ip_message(rt.prefix.addr())),
                        length: u32::from(rt.prefix.prefix_len()),
                        underlay_route: Vec::new(),
                    }),
                    nexthop_vni: rt.nexthop_vni.get(),
                    nexthop_address: Some(ip_message(IpAddr::V6(rt.nexthop))),
                    weight: 100,
                })
                .collect(),
        }))
    }

    async fn create_route(
        &self,
        req: Request<proto::CreateRouteRequest>,
    ) -> Reply<proto::CreateRouteResponse> {
        let r = req.get_ref();
        let vni = vni_of(r.vni)?;
        let route = r.route.as_ref().ok_or_else(|| invalid("route.prefix.ip"))?;
        let prefix = prefix_of(route.prefix.as_ref(), "route.prefix")?;
        let nexthop_vni = vni_of(route.nexthop_vni)?;
        let nexthop = ip_of(route.nexthop_address.as_ref(), "route.nexthop_address")?;
        let res = match nexthop {
            IpAddr::V4(_) => {
                let _state = self.ready()?;
                Err(ServiceError::BadIpVersion)
            }
            IpAddr::V6(nexthop) => self.change(|s| {
                s.create_route(ExternalRoute {
                    vni,
                    prefix,
                    nexthop_vni,
                    nexthop,
                })
            })?,
        };
        Ok(Response::new(proto::CreateRouteResponse {
            status: status_of(&res),
        }))
    }

    async fn delete_route(
        &self,
        req: Request<proto::DeleteRouteRequest>,
    ) -> Reply<proto::DeleteRouteResponse> {
        let r = req.get_ref();
        let vni = vni_of(r.vni)?;
        let route = r.route.as_ref().ok_or_else(|| invalid("route.prefix.ip"))?;
        let prefix = prefix_of(route.prefix.as_ref(), "route.prefix")?;
        let res = self.change(|s| s.delete_route(vni, prefix))?;
        Ok(Response::new(proto::DeleteRouteResponse {
            status: status_of(&res),
        }))
    }

    async fn check_vni_in_use(
        &self,
        req: Request<proto::CheckVniInUseRequest>,
    ) -> Reply<proto::CheckVniInUseResponse> {
        let r = req.get_ref();
        let vni = vni_of(r.vni)?;
        let ty = vni_type(r.r#type)?;
        let res = self.ready()?.vni_in_use(vni, ty);
        Ok(Response::new(proto::CheckVniInUseResponse {
            status: status_of(&res),
            in_use: res.unwrap_or(false),
        }))
    }

    async fn reset_vni(
        &self,
        req: Request<proto::ResetVniRequest>,
    ) -> Reply<proto::ResetVniResponse> {
        let r = req.get_ref();
        let vni = vni_of(r.vni)?;
        let ty = vni_type(r.r#type)?;
        let res = self.change(|s| s.reset_vni(vni, ty))?;
        Ok(Response::new(proto::ResetVniResponse {
            status: status_of(&res),
        }))
    }

    async fn list_firewall_rules(
        &self,
        req: Request<proto::ListFirewallRulesRequest>,
    ) -> Reply<proto::ListFirewallRulesResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let state = self.ready()?;
        let r = state.firewall_rules(&id);
        Ok(Response::new(proto::ListFirewallRulesResponse {
            status: status_of(&r),
            rules: r
                .map(|rules| rules.iter().map(firewall_rule_message).collect())
                .unwrap_or_default(),
        }))
    }

    async fn create_firewall_rule(
        &self,
        req: Request<proto::CreateFirewallRuleRequest>,
    ) -> Reply<proto::CreateFirewallRuleResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let rule = firewall_rule(r.rule.as_ref())?;
        let rule_id = rule.id.clone().into_bytes();
        let res = self.change(|s| s.create_firewall_rule(&id, rule))?;
        Ok(Response::new(proto::CreateFirewallRuleResponse {
            status: status_of(&res),
            rule_id: if res.is_ok() { rule_id } else { Vec::new() },
        }))
    }

    async fn get_firewall_rule(
        &self,
        req: Request<proto::GetFirewallRuleRequest>,
    ) -> Reply<proto::GetFirewallRuleResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let rule_id = identifier(&r.rule_id, "rule_id")?;
        let state = self.ready()?;
        let res = state.firewall_rule(&id, &rule_id);
        Ok(Response::new(proto::GetFirewallRuleResponse {
            status: status_of(&res),
            rule: res.ok().map(firewall_rule_message),
        }))
    }

    async fn delete_firewall_rule(
        &self,
        req: Request<proto::DeleteFirewallRuleRequest>,
    ) -> Reply<proto::DeleteFirewallRuleResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let rule_id = identifier(&r.rule_id, "rule_id")?;
        let res = self.change(|s| s.delete_firewall_rule(&id, &rule_id))?;
        Ok(Response::new(proto::DeleteFirewallRuleResponse {
            status: status_of(&res),
        }))
    }

    async fn list_load_balancer_prefixes(
        &self,
        req: Request<proto::ListLoadBalancerPrefixesRequest>,
    ) -> Reply<proto::ListLoadBalancerPrefixesResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let r = self.ready()?.lb_prefixes(&id);
        Ok(Response::new(proto::ListLoadBalancerPrefixesResponse {
            status: status_of(&r),
            prefixes: prefix_messages(r.unwrap_or_default()),
        }))
    }

    async fn create_load_balancer_prefix(
        &self,
        req: Request<proto::CreateLoadBalancerPrefixRequest>,
    ) -> Reply<proto::CreateLoadBalancerPrefixResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let prefix = prefix_of(r.prefix.as_ref(), "prefix")?;
        let preferred = self.preferred(&r.preferred_underlay_route, "preferred_underlay_route")?;
        let res = self.change(|s| s.create_lb_prefix(&id, prefix, preferred))?;
        Ok(Response::new(proto::CreateLoadBalancerPrefixResponse {
            status: status_of(&res),
            underlay_route: res.map(text_bytes).unwrap_or_default(),
        }))
    }

    async fn delete_load_balancer_prefix(
        &self,
        req: Request<proto::DeleteLoadBalancerPrefixRequest>,
    ) -> Reply<proto::DeleteLoadBalancerPrefixResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let prefix = prefix_of(r.prefix.as_ref(), "prefix")?;
        let res = self.change(|s| s.delete_lb_prefix(&id, prefix))?;
        Ok(Response::new(proto::DeleteLoadBalancerPrefixResponse {
            status: status_of(&res),
        }))
    }

    async fn create_vip(
        &self,
        req: Request<proto::CreateVipRequest>,
    ) -> Reply<proto::CreateVipResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let vip = ip_of(r.vip_ip.as_ref(), "vip_ip")?;
        let preferred = self.preferred(&r.preferred_underlay_route, "preferred_underlay_route")?;
        let res = self.change(|s| match vip {
            IpAddr::V4(vip) => s.create_vip(&id, vip, preferred),
            IpAddr::V6(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::CreateVipResponse {
            status: status_of(&res),
            underlay_route: res.map(text_bytes).unwrap_or_default(),
        }))
    }

    async fn get_vip(&self, req: Request<proto::GetVipRequest>) -> Reply<proto::GetVipResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let res = self.ready()?.vip(&id);
        Ok(Response::new(proto::GetVipResponse {
            status: status_of(&res),
            vip_ip: res.ok().map(|(ip, _)| ip_message(IpAddr::V4(ip))),
            underlay_route: res.map(|(_, u)| text_bytes(u)).unwrap_or_default(),
        }))
    }

    async fn delete_vip(
        &self,
        req: Request<proto::DeleteVipRequest>,
    ) -> Reply<proto::DeleteVipResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let res = self.change(|s| s.delete_vip(&id))?;
        Ok(Response::new(proto::DeleteVipResponse {
            status: status_of(&res),
        }))
    }

    async fn create_load_balancer(
        &self,
        req: Request<proto::CreateLoadBalancerRequest>,
    ) -> Reply<proto::CreateLoadBalancerResponse> {
        let r = req.get_ref();
        let spec = LbSpec {
            id: identifier(&r.loadbalancer_id, "loadbalancer_id")?,
            vni: vni_of(r.vni)?,
            ip: ip_of(r.loadbalanced_ip.as_ref(), "loadbalanced_ip")?,
            ports: lb_ports(&r.loadbalanced_ports)?,
            preferred_underlay: self
                .preferred(&r.preferred_underlay_route, "preferred_underlay_route")?,
        };
        let res = self.change(|s| s.create_lb(spec))?;
        Ok(Response::new(proto::CreateLoadBalancerResponse {
            status: status_of(&res),
            underlay_route: res.map(text_bytes).unwrap_or_default(),
        }))
    }

    async fn get_load_balancer(
        &self,
        req: Request<proto::GetLoadBalancerRequest>,
    ) -> Reply<proto::GetLoadBalancerResponse> {
        let id = identifier(&req.get_ref().loadbalancer_id, "loadbalancer_id")?;
        let state = self.ready()?;
        let res = state.lb(&id);
        Ok(Response::new(match res {
            Ok(lb) => proto::GetLoadBalancerResponse {
                status: success(),
                loadbalanced_ip: Some(ip_message(lb.ip)),
                vni: lb.vni.get(),
                loadbalanced_ports: lb_port_messages(&lb.ports),
                underlay_route: text_bytes(lb.underlay),
            },
            Err(e) => proto::GetLoadBalancerResponse {
                status: failure(e),
                ..Default::default()
            },
        }))
    }

    async fn delete_load_balancer(
        &self,
        req: Request<proto::DeleteLoadBalancerRequest>,
    ) -> Reply<proto::DeleteLoadBalancerResponse> {
        let id = identifier(&req.get_ref().loadbalancer_id, "loadbalancer_id")?;
        let res = self.change(|s| s.delete_lb(&id))?;
        Ok(Response::new(proto::DeleteLoadBalancerResponse {
            status: status_of(&res),
        }))
    }

    async fn list_load_balancers(
        &self,
        _: Request<proto::ListLoadBalancersRequest>,
    ) -> Reply<proto::ListLoadBalancersResponse> {
        let state = self.ready()?;
        Ok(Response::new(proto::ListLoadBalancersResponse {
            status: success(),
            loadbalancers: state
                .lbs()
                .map(|lb| proto::Loadbalancer {
                    id: lb.id.clone().into_bytes(),
                    vni: lb.vni.get(),
                    ip: Some(ip_message(lb.ip)),
                    ports: lb_port_messages(&lb.ports),
                    underlay_route: text_bytes(lb.underlay),
                })
                .collect(),
        }))
    }

    async fn create_load_balancer_target(
        &self,
        req: Request<proto::CreateLoadBalancerTargetRequest>,
    ) -> Reply<proto::CreateLoadBalancerTargetResponse> {
        let r = req.get_ref();
        let id = identifier(&r.loadbalancer_id, "loadbalancer_id")?;
        let target = ip_of(r.target_ip.as_ref(), "target_ip")?;
        let res = self.change(|s| match target {
            IpAddr::V6(t) => s.create_lb_target(&id, t),
            IpAddr::V4(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::CreateLoadBalancerTargetResponse {
            status: status_of(&res),
        }))
    }

    async fn list_load_balancer_targets(
        &self,
        req: Request<proto::ListLoadBalancerTargetsRequest>,
    ) -> Reply<proto::ListLoadBalancerTargetsResponse> {
        let raw = &req.get_ref().loadbalancer_id;
        let id = if raw.is_empty() {
            None
        } else {
            Some(identifier(raw, "loadbalancer_id")?)
        };
        let res = self.ready()?.lb_targets(id.as_deref());
        Ok(Response::new(proto::ListLoadBalancerTargetsResponse {
            status: status_of(&res),
            target_ips: res
                .unwrap_or_default()
                .into_iter()
                .map(|t| ip_message(IpAddr::V6(t)))
                .collect(),
        }))
    }

    async fn delete_load_balancer_target(
        &self,
        req: Request<proto::DeleteLoadBalancerTargetRequest>,
    ) -> Reply<proto::DeleteLoadBalancerTargetResponse> {
        let r = req.get_ref();
        let id = identifier(&r.loadbalancer_id, "loadbalancer_id")?;
        let target = ip_of(r.target_ip.as_ref(), "target_ip")?;
        let res = self.change(|s| match target {
            IpAddr::V6(t) => s.delete_lb_target(&id, t),
            IpAddr::V4(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::DeleteLoadBalancerTargetResponse {
            status: status_of(&res),
        }))
    }

    async fn create_nat(
        &self,
        req: Request<proto::CreateNatRequest>,
    ) -> Reply<proto::CreateNatResponse> {
        let r = req.get_ref();
        let id = identifier(&r.interface_id, "interface_id")?;
        let ip = ip_of(r.nat_ip.as_ref(), "nat_ip")?;
        let (min, max) = nat_ports(r.min_port, r.max_port)?;
        let preferred = self.preferred(&r.preferred_underlay_route, "preferred_underlay_route")?;
        let res = self.change(|s| match ip {
            IpAddr::V4(ip) => s.create_nat(&id, ip, min, max, preferred),
            IpAddr::V6(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::CreateNatResponse {
            status: status_of(&res),
            underlay_route: res.map(text_bytes).unwrap_or_default(),
        }))
    }

    async fn get_nat(&self, req: Request<proto::GetNatRequest>) -> Reply<proto::GetNatResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let res = self.ready()?.nat(&id);
        Ok(Response::new(match res {
            Ok(n) => proto::GetNatResponse {
                status: success(),
                nat_ip: Some(ip_message(IpAddr::V4(n.ip))),
                min_port: u32::from(n.min_port),
                max_port: u32::from(n.max_port),
                underlay_route: text_bytes(n.underlay),
            },
            Err(e) => proto::GetNatResponse {
                status: failure(e),
                ..Default::default()
            },
        }))
    }

    async fn delete_nat(
        &self,
        req: Request<proto::DeleteNatRequest>,
    ) -> Reply<proto::DeleteNatResponse> {
        let id = identifier(&req.get_ref().interface_id, "interface_id")?;
        let res = self.change(|s| s.delete_nat(&id))?;
        Ok(Response::new(proto::DeleteNatResponse {
            status: status_of(&res),
        }))
    }

    async fn list_local_nats(
        &self,
        req: Request<proto::ListLocalNatsRequest>,
    ) -> Reply<proto::ListLocalNatsResponse> {
        let filter = nat_filter(req.get_ref().nat_ip.as_ref())?;
        let state = self.ready()?;
        let res = filter.map(|ip| state.local_nats(ip));
        Ok(Response::new(proto::ListLocalNatsResponse {
            status: status_of(&res),
            nat_entries: res
                .unwrap_or_default()
                .into_iter()
                .map(|n| proto::NatEntry {
                    nat_ip: Some(ip_message(IpAddr::V4(n.iface_ip))),
                    min_port: u32::from(n.nat.min_port),
                    max_port: u32::from(n.nat.max_port),
                    underlay_route: text_bytes(n.nat.underlay),
                    vni: n.vni.get(),
                    actual_nat_ip: Some(ip_message(IpAddr::V4(n.nat.ip))),
                })
                .collect(),
        }))
    }

    async fn create_neighbor_nat(
        &self,
        req: Request<proto::CreateNeighborNatRequest>,
    ) -> Reply<proto::CreateNeighborNatResponse> {
        let r = req.get_ref();
        let ip = ip_of(r.nat_ip.as_ref(), "nat_ip")?;
        let vni = vni_of(r.vni)?;
        let (min_port, max_port) = nat_ports(r.min_port, r.max_port)?;
        let underlay: Ipv6Addr = text(&r.underlay_route, "underlay_route")?
            .parse()
            .map_err(|_| invalid("underlay_route"))?;
        let res = self.change(|s| match ip {
            IpAddr::V4(ip) => s.create_neighbor_nat(NeighborNat {
                ip,
                vni,
                min_port,
                max_port,
                underlay,
            }),
            IpAddr::V6(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::CreateNeighborNatResponse {
            status: status_of(&res),
        }))
    }

    async fn delete_neighbor_nat(
        &self,
        req: Request<proto::DeleteNeighborNatRequest>,
    ) -> Reply<proto::DeleteNeighborNatResponse> {
        let r = req.get_ref();
        let ip = ip_of(r.nat_ip.as_ref(), "nat_ip")?;
        let vni = vni_of(r.vni)?;
        let (min, max) = nat_ports(r.min_port, r.max_port)?;
        let res = self.change(|s| match ip {
            IpAddr::V4(ip) => s.delete_neighbor_nat(ip, vni, min, max),
            IpAddr::V6(_) => Err(ServiceError::BadIpVersion),
        })?;
        Ok(Response::new(proto::DeleteNeighborNatResponse {
            status: status_of(&res),
        }))
    }

    async fn list_neighbor_nats(
        &self,
        req: Request<proto::ListNeighborNatsRequest>,
    ) -> Reply<proto::ListNeighborNatsResponse> {
        let filter = nat_filter(req.get_ref().nat_ip.as_ref())?;
        let state = self.ready()?;
        let res = filter.map(|ip| state.neighbor_nats(ip));
        Ok(Response::new(proto::ListNeighborNatsResponse {
            status: status_of(&res),
            nat_entries: res
                .unwrap_or_default()
                .into_iter()
                .map(|n| proto::NatEntry {
                    nat_ip: None,
                    min_port: u32::from(n.min_port),
                    max_port: u32::from(n.max_port),
                    underlay_route: text_bytes(n.underlay),
                    vni: n.vni.get(),
                    actual_nat_ip: Some(ip_message(IpAddr::V4(n.ip))),
                })
                .collect(),
        }))
    }

    unimplemented_rpcs! {
        capture_start(CaptureStartRequest) -> CaptureStartResponse;
        capture_stop(CaptureStopRequest) -> CaptureStopResponse;
        capture_status(CaptureStatusRequest) -> CaptureStatusResponse;
    }
}
