//! The virtual-service paths of the pipeline and their connection table.
//!
//! - **Guest → service**: an IPv4 TCP/UDP packet to a service's virtual
//!   (address, port) gets an IPv6 header from the service's underlay
//!   address to the service, source port `1024 + connection`, and leaves on
//!   the first PF towards the router. No conntrack, NAT or firewall (as in
//!   dpservice: these are the host's services, not the network's).
//! - **Service → guest**: an unencapsulated IPv6 packet on a PF to a
//!   service's underlay address, from the service's (address, port), to a
//!   live connection's port gets the IPv4 header back: from the virtual
//!   (address, port) to the guest's.
//!
//! Connections: per service, up to 64 512 (guest port, address, transport
//! port) at once. A guest endpoint keeps its slot while it is used; new
//! endpoints take fresh slots in order and, once all exist, the next
//! expired one. A slot expires after the idle timeout of other flows, or
//! that of established TCP once the guest's SYN, the service's SYN-ACK and
//! the guest's ACK were seen (a FIN or RST ends that).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ironnet_overlay::translate::{self, Translation};
use ironnet_overlay::wire::{EthernetFrame, IpProtocol, Ipv6Packet, MacAddr, TcpFlags};
use rustc_hash::FxHashMap;

use super::conntrack::Timeouts;
use super::{DropReason, L3, Packet, Pipeline, Verdict, first_pf};
use crate::snapshot::Snapshot;
use crate::state::PortId;
use crate::virtsvc::{CONNECTIONS_PER_SERVICE, FIRST_CONNECTION_PORT, service_underlay};

/// A guest's end of a virtual-service connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestEnd {
    /// The guest's port.
    pub port: PortId,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Its transport port.
    pub l4_port: u16,
}

/// Where a TCP connection is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing seen that counts (or UDP).
    Idle,
    /// The guest's SYN.
    Syn,
    /// The service's SYN-ACK after it.
    SynAck,
    /// The guest's ACK after that: long timeout.
    Established,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    guest: GuestEnd,
    last: Instant,
    phase: Phase,
    /// Its guest port went away: free whatever the time.
    retired: bool,
}

impl Slot {
    fn expires(&self, t: &Timeouts) -> Instant {
        let idle = if self.phase == Phase::Established {
            t.tcp_established
        } else {
            t.other
        };
        self.last + idle
    }

    fn alive(&self, now: Instant, t: &Timeouts) -> bool {
        !self.retired && now < self.expires(t)
    }

    /// Moves the handshake on for TCP `flags` seen from the guest or the
    /// service.
    fn saw(&mut self, now: Instant, flags: u16, from_guest: bool) {
        self.last = now;
        let has = |f: u16| flags & f != 0;
        self.phase = if has(TcpFlags::FIN) || has(TcpFlags::RST) {
            Phase::Idle
        } else {
            match (self.phase, from_guest) {
                _ if from_guest && has(TcpFlags::SYN) && !has(TcpFlags::ACK) => Phase::Syn,
                (Phase::Syn, false) if has(TcpFlags::SYN) && has(TcpFlags::ACK) => Phase::SynAck,
                (Phase::SynAck, true) if has(TcpFlags::ACK) => Phase::Established,
                (phase, _) => phase,
            }
        };
    }
}

/// The connections of one service.
#[derive(Debug, Default)]
pub struct ServiceConnections {
    slots: Vec<Slot>,
    by_guest: FxHashMap<GuestEnd, u16>,
    /// Where the search for an expired slot goes on.
    cursor: usize,
}

impl ServiceConnections {
    /// The slot of `guest` (kept, fresh, or the next expired one), marked
    /// as used now; `None` if all are live.
    pub fn acquire(
        &mut self,
        guest: GuestEnd,
        now: Instant,
        flags: u16,
        t: &Timeouts,
    ) -> Option<u16> {
        let index = match self.by_guest.get(&guest) {
            Some(&i) => {
                let slot = self.slots.get_mut(usize::from(i))?;
                if !slot.alive(now, t) {
                    slot.phase = Phase::Idle;
                    slot.retired = false;
                }
                i
            }
            None => {
                let i = self.free_slot(guest, now, t)?;
                self.by_guest.insert(guest, i);
                i
            }
        };
        let slot = self.slots.get_mut(usize::from(index))?;
        slot.saw(now, flags, true);
        Some(index)
    }

    fn free_slot(&mut self, guest: GuestEnd, now: Instant, t: &Timeouts) -> Option<u16> {
        let fresh = Slot {
            guest,
            last: now,
            phase: Phase::Idle,
            retired: false,
        };
        if self.slots.len() < CONNECTIONS_PER_SERVICE {
            let i = u16::try_from(self.slots.len()).ok()?;
            self.slots.push(fresh);
            return Some(i);
        }
        let n = self.slots.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if !self.slots[i].alive(now, t) {
                self.by_guest.remove(&self.slots[i].guest);
                self.slots[i] = fresh;
                self.cursor = (i + 1) % n;
                return u16::try_from(i).ok();
            }
        }
        None
    }

    /// The guest behind live connection `index`, marking the service's
    /// `flags` seen now.
    pub fn answer(
        &mut self,
        index: u16,
        now: Instant,
        flags: u16,
        t: &Timeouts,
    ) -> Option<GuestEnd> {
        let slot = self.slots.get_mut(usize::from(index))?;
        if !slot.alive(now, t) {
            return None;
        }
        slot.saw(now, flags, false);
        Some(slot.guest)
    }

    /// Forgets every connection of guest port `port`.
    pub fn forget_port(&mut self, port: PortId) {
        for slot in &mut self.slots {
            if slot.guest.port == port && !slot.retired {
                self.by_guest.remove(&slot.guest);
                slot.retired = true;
            }
        }
    }

    /// Connections that are live at `now`.
    pub fn live(&self, now: Instant, t: &Timeouts) -> usize {
        self.slots.iter().filter(|s| s.alive(now, t)).count()
    }
}

impl Pipeline {
    /// The guest → service path, if `l3` is addressed to a virtual service.
    pub(super) fn virtsvc_from_guest(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        pkt: &mut Packet,
        l3: &L3,
    ) -> Option<Verdict> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (l3.src, l3.dst) else {
            return None;
        };
        let body = l3.body(pkt.frame())?;
        if body.len() < 4 {
            return None;
        }
        let (sport, dport) = (
            u16::from_be_bytes([body[0], body[1]]),
            u16::from_be_bytes([body[2], body[3]]),
        );
        let services = &snap.virtual_services;
        let index = services.by_virtual(l3.protocol.0, dst, dport)?;
        let service = *services.get(index)?;
        let flags = tcp_flags(l3.protocol, body);
        let guest = GuestEnd {
            port: pkt.port,
            addr: src,
            l4_port: sport,
        };
        let timeouts = self.flows.timeouts();
        let conns = self.virtsvc_connections(index);
        let Some(conn) = conns.acquire(guest, now, flags, &timeouts) else {
            return Some(Verdict::Drop(DropReason::VirtsvcExhausted));
        };
        let Some((pf, pf_mac)) = first_pf(snap) else {
            return Some(Verdict::Drop(DropReason::NoPort));
        };
        let t = Translation {
            eth_src: pf_mac,
            eth_dst: self.neighbor(pf).unwrap_or(MacAddr::BROADCAST),
            src: service_underlay(snap.host_ipv6, index),
            dst: service.service_addr,
            src_port: FIRST_CONNECTION_PORT + conn,
            dst_port: service.service_port,
        };
        Some(match translate::ipv4_to_ipv6(&mut pkt.buf, &t) {
            Ok(_) => Verdict::Tx(pf),
            Err(_) => Verdict::Drop(DropReason::Malformed),
        })
    }

    /// The service → guest path, if the frame on a PF is an unencapsulated
    /// IPv6 packet to a virtual service's underlay address.
    pub(super) fn virtsvc_to_guest(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        pkt: &mut Packet,
    ) -> Option<Verdict> {
        let frame = pkt.frame();
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
        let services = &snap.virtual_services;
        let index = services.by_underlay(snap.host_ipv6, ip.dst())?;
        let service = *services.get(index)?;
        let Ok(upper) = ip.upper_layer() else {
            return Some(Verdict::Drop(DropReason::Malformed));
        };
        let body = ip.payload().get(upper.offset - 40..).unwrap_or_default();
        if upper.protocol.0 != service.protocol.number()
            || ip.src() != service.service_addr
            || body.len() < 4
            || u16::from_be_bytes([body[0], body[1]]) != service.service_port
        {
            return Some(Verdict::Drop(DropReason::NoFlow));
        }
        let dport = u16::from_be_bytes([body[2], body[3]]);
        let Some(conn) = dport.checked_sub(FIRST_CONNECTION_PORT) else {
            return Some(Verdict::Drop(DropReason::NoFlow));
        };
        let flags = tcp_flags(upper.protocol, body);
        let timeouts = self.flows.timeouts();
        let Some(guest) = self
            .virtsvc_connections(index)
            .answer(conn, now, flags, &timeouts)
        else {
            return Some(Verdict::Drop(DropReason::NoFlow));
        };
        let Some(port_mac) = snap.ports.get(usize::from(guest.port)).map(|p| p.mac) else {
            return Some(Verdict::Drop(DropReason::NoPort));
        };
        let t = Translation {
            eth_src: port_mac,
            eth_dst: self.guest_mac(guest.port),
            src: service.virtual_addr,
            dst: guest.addr,
            src_port: service.virtual_port,
            dst_port: guest.l4_port,
        };
        self.virtsvc_ident = self.virtsvc_ident.wrapping_add(1);
        Some(
            match translate::ipv6_to_ipv4(&mut pkt.buf, &t, self.virtsvc_ident) {
                Ok(_) => Verdict::Tx(guest.port),
                Err(_) => Verdict::Drop(DropReason::Malformed),
            },
        )
    }

    fn virtsvc_connections(&mut self, index: u16) -> &mut ServiceConnections {
        let i = usize::from(index);
        if self.virtsvc.len() <= i {
            self.virtsvc.resize_with(i + 1, ServiceConnections::default);
        }
        &mut self.virtsvc[i]
    }

    /// Live connections of virtual service `index` at `now`.
    pub fn virtsvc_live(&self, index: u16, now: Instant) -> usize {
        self.virtsvc
            .get(usize::from(index))
            .map_or(0, |c| c.live(now, &self.flows.timeouts()))
    }
}

fn tcp_flags(protocol: IpProtocol, body: &[u8]) -> u16 {
    match (protocol, body.get(13)) {
        (IpProtocol::TCP, Some(&f)) => u16::from(f),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: Timeouts = Timeouts {
        tcp_established: Duration::from_secs(1000),
        other: Duration::from_secs(30),
    };

    fn guest(n: u16) -> GuestEnd {
        GuestEnd {
            port: 2,
            addr: Ipv4Addr::new(10, 0, 0, 1),
            l4_port: n,
        }
    }

    #[test]
    fn keeps_a_guest_on_its_slot_and_hands_out_in_order() {
        let now = Instant::now();
        let mut c = ServiceConnections::default();
        assert_eq!(c.acquire(guest(1), now, 0, &T), Some(0));
        assert_eq!(c.acquire(guest(2), now, 0, &T), Some(1));
        assert_eq!(c.acquire(guest(1), now, 0, &T), Some(0));
        assert_eq!(c.answer(1, now, 0, &T), Some(guest(2)));
        assert_eq!(c.answer(2, now, 0, &T), None);
        assert_eq!(c.answer(0, now + Duration::from_secs(31), 0, &T), None);
    }

    #[test]
    fn handshake_gives_the_long_timeout_and_fin_takes_it() {
        let now = Instant::now();
        let mut c = ServiceConnections::default();
        let i = c.acquire(guest(1), now, TcpFlags::SYN, &T).expect("slot");
        c.answer(i, now, TcpFlags::SYN | TcpFlags::ACK, &T)
            .expect("live");
        c.acquire(guest(1), now, TcpFlags::ACK, &T);
        let later = now + Duration::from_secs(500);
        assert_eq!(c.answer(i, later, TcpFlags::ACK, &T), Some(guest(1)));
        c.acquire(guest(1), later, TcpFlags::FIN | TcpFlags::ACK, &T);
        assert_eq!(c.answer(i, later + Duration::from_secs(31), 0, &T), None);
        // An ACK without the handshake does not establish.
        let mut c = ServiceConnections::default();
        let i = c.acquire(guest(1), now, TcpFlags::ACK, &T).expect("slot");
        assert_eq!(c.answer(i, now + Duration::from_secs(31), 0, &T), None);
    }

    #[test]
    fn reuses_only_expired_slots_once_all_exist() {
        let now = Instant::now();
        let mut c = ServiceConnections::default();
        for n in 0..CONNECTIONS_PER_SERVICE {
            let port = u16::try_from(n).expect("fits");
            assert!(c.acquire(guest(port), now, 0, &T).is_some());
        }
        let other = GuestEnd {
            addr: Ipv4Addr::new(10, 0, 0, 2),
            ..guest(1)
        };
        assert_eq!(c.acquire(other, now, 0, &T), None, "all live");
        // Keep slot 0 alive, let the rest expire: slot 1 is taken next.
        let later = now + Duration::from_secs(20);
        c.acquire(guest(0), later, 0, &T);
        let after = now + Duration::from_secs(40);
        assert_eq!(c.acquire(other, after, 0, &T), Some(1));
        assert_eq!(c.answer(1, after, 0, &T), Some(other));
        assert_eq!(c.answer(0, after, 0, &T), Some(guest(0)));
        assert_eq!(c.live(after, &T), 2);
    }
}
