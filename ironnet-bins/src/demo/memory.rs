//! The demo without root: each hypervisor's dp runs inside the demo
//! process on in-memory ports (its gRPC API on loopback, so the agents
//! program it as they would a TAP dp), and the rest of the machine is
//! simulated in the same process:
//!
//! - a guest per interface that leases its address with a real DHCP
//!   exchange, answers ping, and sends ping;
//! - the underlay router: IPv6 frames from one dp's uplink go to the dp
//!   owning the destination /64; IP-in-IPv6 sent to the router address is
//!   decapsulated towards the internet, whose answers are encapsulated
//!   towards the public routes the bond announces;
//! - the internet host (198.51.100.2), which answers and sends ping.
//!
//! Only ICMP is simulated: cells that need TCP are reported as not
//! measured.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use ironnet_dp::dataplane::Dataplane;
use ironnet_dp::io::{MemoryInjector, MemoryPort, PortIo};
use ironnet_dp::pipeline::Pipeline;
use ironnet_dp::service::DpService;
use ironnet_dp::{DpConfig, DpState, PortKind, Published, Snapshot};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::MacAddr;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::dhcpv4::{BootOp, Dhcpv4Packet, Dhcpv4Repr, MessageType};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::router::{PublicRoutes, follow_public_routes};
use super::{DemoError, HOSTS, INTERNET, ROUTER_SID};

type Inbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>>;

/// One guest slot (a VF port) as the simulated guest sees it.
#[derive(Debug, Clone)]
struct Slot {
    mac: MacAddr,
    inject: MemoryInjector,
    /// Frames for the guest that are not echo requests to it.
    inbox: Inbox,
    /// The leased address (echo requests to it are answered).
    ip: Arc<Mutex<Option<Ipv4Addr>>>,
}

/// One in-process dp.
#[derive(Debug)]
struct MemHost {
    grpc: SocketAddr,
    slots: BTreeMap<String, Slot>,
    _dataplane: Dataplane,
    _stop: oneshot::Sender<()>,
}

/// A host's uplink as the router sees it.
#[derive(Debug, Clone)]
struct Uplink {
    prefix: Ipv6Net,
    pf_mac: MacAddr,
    inject: MemoryInjector,
}

/// The in-memory hypervisors, guests, router and internet.
#[derive(Debug)]
pub struct MemoryFabric {
    hosts: Vec<MemHost>,
    guests: BTreeMap<String, Slot>,
    internet: Inbox,
    internet_out: mpsc::UnboundedSender<Vec<u8>>,
    routes: watch::Receiver<PublicRoutes>,
    tasks: Vec<JoinHandle<()>>,
}

const ROUTER_MAC: MacAddr = MacAddr([0x22, 0x22, 0x22, 0x22, 0xee, 0x80]);

impl MemoryFabric {
    /// Starts a dp per host (gRPC on loopback, `vfs` guest slots named as
    /// the agents' `tap_prefix` says) and the simulated router, which
    /// learns public routes from `bonds`.
    pub async fn start(
        tag: &str,
        vfs: usize,
        bonds: Vec<SocketAddr>,
        public_vni: Vni,
    ) -> Result<Self, DemoError> {
        let mut hosts = Vec::new();
        let mut uplinks = Vec::new();
        let mut pf_streams = Vec::new();
        let mut tasks = Vec::new();
        for h in &HOSTS {
            let underlay: Ipv6Addr = h.underlay.parse().map_err(|_| bad(h.underlay))?;
            let mut config = DpConfig::tap_named(underlay, vfs, &format!("{tag}{}", &h.node[3..]));
            for p in &mut config.ports {
                p.mac.0[4] = h.mac;
            }
            config.ipv6_overlay = true;
            let mut ports: Vec<Arc<dyn PortIo>> = Vec::new();
            let mut slots = BTreeMap::new();
            let mut pipe = Pipeline::new();
            for (i, p) in config.ports.iter().enumerate() {
                let (port, handle) = MemoryPort::pair();
                ports.push(Arc::new(port));
                let (inject, mut sent) = handle.split();
                match p.kind {
                    PortKind::Pf if i == 0 => {
                        pipe.set_neighbor(0, ROUTER_MAC);
                        uplinks.push(Uplink {
                            prefix: h.prefix.parse().map_err(|_| bad(h.prefix))?,
                            pf_mac: p.mac,
                            inject,
                        });
                        pf_streams.push(sent);
                    }
                    PortKind::Pf => {}
                    PortKind::Vf => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let slot = Slot {
                            mac: MacAddr([0x02, 0, 0, h.mac, 0, u8::try_from(i).unwrap_or(0)]),
                            inject: inject.clone(),
                            inbox: Arc::new(tokio::sync::Mutex::new(rx)),
                            ip: Arc::new(Mutex::new(None)),
                        };
                        let ip = Arc::clone(&slot.ip);
                        tasks.push(tokio::spawn(async move {
                            while let Some(frame) = sent.recv().await {
                                let me = ip.lock().ok().and_then(|g| *g);
                                match me.and_then(|me| echo_reply_to(&frame, me)) {
                                    Some(reply) => inject.inject(reply),
                                    None => {
                                        let _ = tx.send(frame);
                                    }
                                }
                            }
                        }));
                        slots.insert(p.name.clone(), slot);
                    }
                }
            }
            let published = Published::new(Snapshot::empty());
            let service = DpService::new(
                DpState::new(config.clone(), u64::from(h.mac)),
                published.clone(),
            );
            let dataplane = Dataplane::spawn(ports, published, pipe);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| DemoError::Io(e.to_string()))?;
            let grpc = listener
                .local_addr()
                .map_err(|e| DemoError::Io(e.to_string()))?;
            let (stop, stopped) = oneshot::channel::<()>();
            tasks.push(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(service.into_server())
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        async {
                            let _ = stopped.await;
                        },
                    )
                    .await;
            }));
            hosts.push(MemHost {
                grpc,
                slots,
                _dataplane: dataplane,
                _stop: stop,
            });
        }

        // The router: public routes from the bond, frames from every uplink.
        let (follower, routes) = follow_public_routes(bonds, public_vni);
        tasks.push(follower);
        let (internet_tx, internet_rx) = mpsc::unbounded_channel();
        let (internet_out, mut from_internet) = mpsc::unbounded_channel::<Vec<u8>>();
        let sid: Ipv6Addr = ROUTER_SID.parse().map_err(|_| bad(ROUTER_SID))?;
        let router = Router {
            uplinks,
            routes: routes.clone(),
            sid,
        };
        for mut stream in pf_streams {
            let (router, internet_tx) = (router.clone(), internet_tx.clone());
            tasks.push(tokio::spawn(async move {
                while let Some(frame) = stream.recv().await {
                    router.forward_uplink_frame(&frame, &internet_tx);
                }
            }));
        }
        tasks.push(tokio::spawn(async move {
            while let Some(packet) = from_internet.recv().await {
                router.send_to_public(packet);
            }
        }));
        let guests = BTreeMap::new();
        Ok(MemoryFabric {
            hosts,
            guests,
            internet: Arc::new(tokio::sync::Mutex::new(internet_rx)),
            internet_out,
            routes,
            tasks,
        })
    }

    /// Whether the router has a route for public address `ip`.
    pub fn routes_to(&self, ip: IpAddr) -> bool {
        self.routes.borrow().contains_key(&IpNet::from(ip))
    }

    /// The gRPC address of host `i`'s dp.
    pub fn grpc(&self, i: usize) -> Option<SocketAddr> {
        self.hosts.get(i).map(|h| h.grpc)
    }

    /// Plugs guest `name` into slot `tap` of host `host` and leases its
    /// address with DHCP; the address.
    pub async fn lease(
        &mut self,
        name: &str,
        host: usize,
        tap: &str,
    ) -> Result<Ipv4Addr, DemoError> {
        let slot = self
            .hosts
            .get(host)
            .and_then(|h| h.slots.get(tap))
            .cloned()
            .ok_or_else(|| DemoError::Io(format!("no slot {tap} on host {host}")))?;
        let xid = 0x1d00_0000 | u32::from(slot.mac.0[5]) | (u32::from(slot.mac.0[3]) << 8);
        slot.inject
            .inject(dhcp(slot.mac, xid, MessageType::Discover));
        wait_dhcp(&slot, xid, MessageType::Offer).await?;
        slot.inject
            .inject(dhcp(slot.mac, xid, MessageType::Request));
        let ip = wait_dhcp(&slot, xid, MessageType::Ack).await?;
        if let Ok(mut g) = slot.ip.lock() {
            *g = Some(ip);
        }
        self.guests.insert(name.to_owned(), slot);
        Ok(ip)
    }

    /// Pings `dst` from guest `from` (or `internet`): whether an answer
    /// came (two tries, one second each).
    pub async fn ping(&self, from: &str, dst: Ipv4Addr) -> bool {
        for seq in 1..=2u16 {
            let ident = 0x4000 | u16::from(dst.octets()[3]);
            if from == "internet" {
                let Ok(src) = INTERNET.parse::<Ipv4Addr>() else {
                    return false;
                };
                let Some(frame) = echo(MacAddr::BROADCAST, src, dst, ident, seq, true) else {
                    return false;
                };
                let _ = self.internet_out.send(frame[14..].to_vec());
                if wait_echo_reply(&self.internet, dst, ident, 0).await {
                    return true;
                }
                continue;
            }
            let Some(slot) = self.guests.get(from) else {
                return false;
            };
            let Some(src) = slot.ip.lock().ok().and_then(|g| *g) else {
                return false;
            };
            let Some(frame) = echo(slot.mac, src, dst, ident, seq, true) else {
                return false;
            };
            slot.inject.inject(frame);
            if wait_echo_reply(&slot.inbox, dst, ident, 14).await {
                return true;
            }
        }
        false
    }
}

impl Drop for MemoryFabric {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn bad(what: &str) -> DemoError {
    DemoError::Io(format!("bad address {what}"))
}

#[derive(Debug, Clone)]
struct Router {
    uplinks: Vec<Uplink>,
    routes: watch::Receiver<PublicRoutes>,
    sid: Ipv6Addr,
}

impl Router {
    /// A frame from a dp's uplink: to the dp owning its destination, or
    /// (IP-in-IPv6 to the router address) decapsulated for the internet.
    fn forward_uplink_frame(&self, frame: &[u8], internet: &mpsc::UnboundedSender<Vec<u8>>) {
        let Some(dst) = ipv6_dst(frame) else {
            return;
        };
        if dst == self.sid {
            if frame.get(20) == Some(&4)
                && let Some(inner) = frame.get(54..)
            {
                self.internet(inner, internet);
            }
            return;
        }
        if let Some(up) = self.uplinks.iter().find(|u| u.prefix.contains(&dst)) {
            let mut out = frame.to_vec();
            out[..6].copy_from_slice(&up.pf_mac.0);
            out[6..12].copy_from_slice(&ROUTER_MAC.0);
            up.inject.inject(out);
        }
    }

    /// The internet host: answers echo requests to itself, keeps replies.
    fn internet(&self, packet: &[u8], inbox: &mpsc::UnboundedSender<Vec<u8>>) {
        let Ok(me) = INTERNET.parse::<Ipv4Addr>() else {
            return;
        };
        match echo_reply_to_ip(packet, me) {
            Some(reply) => self.send_to_public(reply),
            None => {
                let _ = inbox.send(packet.to_vec());
            }
        }
    }

    /// An IPv4 packet from the internet: encapsulated towards the host
    /// announcing its destination, or dropped without a route.
    fn send_to_public(&self, packet: Vec<u8>) {
        let Some(dst) = packet.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
            return;
        };
        let dst = IpNet::from(IpAddr::V4(Ipv4Addr::from(dst)));
        let Some(hop) = self.routes.borrow().get(&dst).copied() else {
            return;
        };
        let Some(up) = self.uplinks.iter().find(|u| u.prefix.contains(&hop)) else {
            return;
        };
        let Ok(len) = u16::try_from(packet.len()) else {
            return;
        };
        let mut f = Vec::with_capacity(54 + packet.len());
        f.extend_from_slice(&up.pf_mac.0);
        f.extend_from_slice(&ROUTER_MAC.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[4, 64]);
        f.extend_from_slice(&self.sid.octets());
        f.extend_from_slice(&hop.octets());
        f.extend_from_slice(&packet);
        up.inject.inject(f);
    }
}

fn ipv6_dst(frame: &[u8]) -> Option<Ipv6Addr> {
    if frame.get(12..14)? != [0x86, 0xdd] {
        return None;
    }
    let b: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// An ICMP echo frame (Ethernet + IPv4).
fn echo(
    mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
    request: bool,
) -> Option<Vec<u8>> {
    FrameSpec {
        eth_src: mac,
        eth_dst: MacAddr::BROADCAST,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: 64,
        l4: L4Spec::Echo {
            request,
            ident,
            seq,
        },
        payload: b"ironnet-demo".to_vec(),
    }
    .to_vec()
    .ok()
}

/// Fields of an IPv4 ICMP echo packet: (src, dst, request?, ident, seq).
fn parse_echo(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, bool, u16, u16)> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 1 {
        return None;
    }
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    let icmp = ip.get(ihl..)?;
    let request = match icmp.first()? {
        8 => true,
        0 => false,
        _ => return None,
    };
    let ident = u16::from_be_bytes(icmp.get(4..6)?.try_into().ok()?);
    let seq = u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?);
    Some((src.into(), dst.into(), request, ident, seq))
}

/// The reply (IPv4 packet) to an echo request (IPv4 packet) for `me`.
fn echo_reply_to_ip(ip: &[u8], me: Ipv4Addr) -> Option<Vec<u8>> {
    let (src, dst, request, ident, seq) = parse_echo(ip)?;
    if !request || dst != me {
        return None;
    }
    Some(echo(MacAddr::BROADCAST, me, src, ident, seq, false)?[14..].to_vec())
}

/// The reply frame to an echo request frame for `me` (from the MAC the
/// request was sent to).
fn echo_reply_to(frame: &[u8], me: Ipv4Addr) -> Option<Vec<u8>> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let reply = echo_reply_to_ip(frame.get(14..)?, me)?;
    let mut out = Vec::with_capacity(14 + reply.len());
    out.extend_from_slice(&MacAddr::BROADCAST.0);
    out.extend_from_slice(frame.get(0..6)?);
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&reply);
    Some(out)
}

/// Waits a second for an echo reply from `from` with `ident` among the
/// frames in `inbox` (IP starting at `offset`).
async fn wait_echo_reply(inbox: &Inbox, from: Ipv4Addr, ident: u16, offset: usize) -> bool {
    let mut rx = inbox.lock().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            return false;
        };
        if let Some((src, _, false, id, _)) = frame.get(offset..).and_then(parse_echo)
            && src == from
            && id == ident
        {
            return true;
        }
    }
}

/// A DHCP client message of `kind` from `mac`.
fn dhcp(mac: MacAddr, xid: u32, kind: MessageType) -> Vec<u8> {
    let mut r = Dhcpv4Repr::empty(BootOp::Request);
    r.xid = xid;
    r.client_mac = mac;
    r.message_type = Some(kind);
    r.parameter_request_list = vec![1, 3, 6, 26, 121];
    let mut payload = vec![0u8; r.buffer_len()];
    if r.emit(&mut payload).is_err() {
        return Vec::new();
    }
    FrameSpec {
        eth_src: mac,
        eth_dst: MacAddr::BROADCAST,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::BROADCAST),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: 68,
            dst_port: 67,
        },
        payload,
    }
    .to_vec()
    .unwrap_or_default()
}

/// Waits for the server's `kind` answer to `xid`; the offered address.
async fn wait_dhcp(slot: &Slot, xid: u32, kind: MessageType) -> Result<Ipv4Addr, DemoError> {
    let mut rx = slot.inbox.lock().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            return Err(DemoError::Timeout(format!("DHCP {kind:?}")));
        };
        let Some(ip) = frame.get(14..) else { continue };
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
        if ip.get(9) != Some(&17) || ip.get(ihl + 2..ihl + 4) != Some(&[0, 68][..]) {
            continue;
        }
        let Some(body) = ip.get(ihl + 8..) else {
            continue;
        };
        let Ok(p) = Dhcpv4Packet::new_checked(body) else {
            continue;
        };
        if let Ok(r) = Dhcpv4Repr::parse(&p)
            && r.xid == xid
            && r.message_type == Some(kind)
        {
            return Ok(r.yiaddr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_get_replies_and_nothing_else_does() {
        let me: Ipv4Addr = "10.0.0.1".parse().unwrap_or(Ipv4Addr::LOCALHOST);
        let other: Ipv4Addr = "10.0.0.2".parse().unwrap_or(Ipv4Addr::LOCALHOST);
        let req = echo(MacAddr::BROADCAST, other, me, 7, 1, true).unwrap_or_default();
        let reply = echo_reply_to(&req, me).unwrap_or_default();
        assert_eq!(parse_echo(&reply[14..]), Some((me, other, false, 7, 1)));
        assert_eq!(echo_reply_to(&reply, me), None, "no reply to a reply");
        assert_eq!(echo_reply_to(&req, other), None, "not for us");
        for n in 0..req.len() {
            let _ = echo_reply_to(&req[..n], me);
        }
    }
}
