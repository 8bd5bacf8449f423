//! Connection tracking: a flow table keyed by the 5-tuple in both
//! directions, with per-protocol idle timeouts and aging driven by the time
//! passed in.
//!
//! Each flow has two keys (original and reply direction) pointing at one
//! slot, like dpservice. Without translation the reply key is the original
//! one reversed; a NAT flow expects its answers at the translated address
//! and port, so its reply key says so. A flow also records what was done
//! to it ([`FlowAction`]), so later packets are treated the same without
//! looking anything up again.
//!
//! The table is bounded: when it is full a new flow is refused (the packet
//! is dropped and counted), never an old one evicted silently. Aging scans
//! a bounded number of slots per call, so no batch pays for the whole
//! table. NAT port bindings ([`NatPorts`]) live here, because a binding
//! lives exactly as long as the flows using it.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::nat_ports::{NatPorts, Outside};
use crate::state::PortId;

/// dpservice's TCP states (no sequence tracking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// Nothing seen yet (or not TCP).
    None,
    /// A SYN went out.
    Syn,
    /// The SYN was answered with SYN+ACK.
    SynAck,
    /// The handshake's ACK came: established.
    Established,
    /// A FIN was seen on an established connection.
    FinWait,
    /// Reset, or FIN outside an established connection.
    Closed,
}

/// Zone of flows balanced or relayed for other hosts: kept apart from
/// the guests' own flows with the same addresses.
pub const ZONE_TRANSIT: u8 = 1;

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The VNI the packet is in.
    pub vni: u32,
    /// 0 for guest traffic; [`ZONE_TRANSIT`] for load-balanced and relayed
    /// traffic.
    pub zone: u8,
    /// IP protocol.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP echo: the identifier).
    pub src_port: u16,
    /// Destination port (ICMP echo: the identifier).
    pub dst_port: u16,
}

impl FlowKey {
    /// The key of the other direction.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            vni: self.vni,
            zone: self.zone,
            protocol: self.protocol,
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

/// Which way a packet travels in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// As the first packet did.
    Original,
    /// The answer.
    Reply,
}

/// TCP flags the tracker looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpBits {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// The firewall's decision, cached in a flow for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Let the flow through.
    pub allowed: bool,
    /// The rules' epoch it was made under (see `Snapshot::firewall_epoch`).
    pub epoch: u64,
}

/// What a flow's packets get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// Routed unchanged.
    Forward,
    /// Source translated: original packets leave from `addr` (and `port`,
    /// if set); answers get the original source back. `port` set means a
    /// NAT gateway binding, none a virtual IP.
    SrcNat {
        /// The public address.
        addr: IpAddr,
        /// The NAT port (ICMP: identifier), for a NAT gateway.
        port: Option<u16>,
    },
    /// Destination translated (traffic to a virtual IP): original packets
    /// go to `addr`; answers leave from the virtual IP again.
    DstNat {
        /// The interface's address.
        addr: IpAddr,
    },
    /// Load-balanced onto the target with this underlay address.
    Balance {
        /// The target.
        target: Ipv6Addr,
    },
    /// Relayed to the host owning the NAT port (neighbour NAT).
    Relay {
        /// That host's underlay address.
        underlay: Ipv6Addr,
    },
}

/// What the table knows of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// Key of the original direction (as the first packet arrived).
    pub key: FlowKey,
    /// Key the answers arrive with.
    pub reply: FlowKey,
    /// What the flow's packets get.
    pub action: FlowAction,
    /// The guest port that sent the first packet, if a guest did.
    pub from: Option<PortId>,
    /// The guest port the first packet went to, if local.
    pub to: Option<PortId>,
}

impl FlowEntry {
    /// An untranslated flow.
    pub fn forward(key: FlowKey, from: Option<PortId>, to: Option<PortId>) -> Self {
        FlowEntry {
            key,
            reply: key.reversed(),
            action: FlowAction::Forward,
            from,
            to,
        }
    }

    /// The NAT binding the flow holds, if any.
    fn binding(&self) -> Option<Outside> {
        match self.action {
            FlowAction::SrcNat {
                addr,
                port: Some(port),
            } => Some(Outside {
                vni: self.key.vni,
                protocol: self.key.protocol,
                addr,
                port,
            }),
            _ => None,
        }
    }

    /// The flow as the guest sees it (before source NAT, after
    /// destination NAT): original source to the address that answers.
    pub fn guest_view(&self) -> FlowKey {
        FlowKey {
            dst: self.reply.src,
            dst_port: self.reply.src_port,
            ..self.key
        }
    }
}

/// Why a flow was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The table is full.
    Full,
    /// One of its keys belongs to another flow.
    KeyTaken,
}

#[derive(Debug, Clone)]
struct Flow {
    entry: FlowEntry,
    last_seen: Instant,
    state: TcpState,
    /// Direction of the first SYN.
    syn_dir: Direction,
    packets: u64,
    decision: Option<Decision>,
}

/// Idle timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp_established: Duration,
    /// Everything else.
    pub other: Duration,
}

/// What [`FlowTable::track`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// A known flow; the packet's direction and the flow's state.
    Known(Direction, TcpState),
    /// A new flow was created.
    New,
    /// The table is full; the flow was not created.
    Full,
}

/// The flow table.
#[derive(Debug)]
pub struct FlowTable {
    keys: FxHashMap<FlowKey, u32>,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    capacity: usize,
    timeouts: Timeouts,
    cursor: usize,
    live: usize,
    /// The slot the last `track` found or created.
    last: Option<u32>,
    nat: NatPorts,
}

/// Slots looked at per [`FlowTable::age`] call.
pub const AGE_BUDGET: usize = 1024;

impl FlowTable {
    /// The idle timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// A table of up to `capacity` flows.
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        FlowTable {
            keys: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            capacity,
            timeouts,
            cursor: 0,
            live: 0,
            last: None,
            nat: NatPorts::new(),
        }
    }

    /// The NAT port bindings.
    pub fn nat(&self) -> &NatPorts {
        &self.nat
    }

    /// The NAT port bindings, to acquire one for a new flow (which then
    /// owns it: [`insert`](Self::insert) it, or release it if that fails).
    pub fn nat_mut(&mut self) -> &mut NatPorts {
        &mut self.nat
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The most flows it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn timeout_of(&self, state: TcpState, protocol: u8) -> Duration {
        if protocol == 6 && state == TcpState::Established {
            self.timeouts.tcp_established
        } else {
            self.timeouts.other
        }
    }

    /// Looks the packet's flow up and advances its TCP state; `None` if
    /// the packet starts a new flow (nothing is created: see
    /// [`insert`](Self::insert)).
    pub fn find(
        &mut self,
        key: &FlowKey,
        tcp: Option<TcpBits>,
        now: Instant,
    ) -> Option<(Direction, TcpState)> {
        self.last = None;
        let slot = *self.keys.get(key)?;
        let flow = self.slots.get_mut(slot as usize)?.as_mut()?;
        self.last = Some(slot);
        let dir = if flow.entry.key == *key {
            Direction::Original
        } else {
            Direction::Reply
        };
        flow.last_seen = now;
        flow.packets += 1;
        if let Some(bits) = tcp {
            flow.state = next_state(flow.state, flow.syn_dir, dir, bits);
            if flow.state == TcpState::Syn && bits.syn && !bits.ack {
                flow.syn_dir = dir;
            }
        }
        Some((dir, flow.state))
    }

    /// Creates a flow for its first packet (in the original direction).
    pub fn insert(
        &mut self,
        entry: FlowEntry,
        tcp: Option<TcpBits>,
        now: Instant,
    ) -> Result<(), Refused> {
        self.last = None;
        if self.live >= self.capacity {
            return Err(Refused::Full);
        }
        if self.keys.contains_key(&entry.key) || self.keys.contains_key(&entry.reply) {
            return Err(Refused::KeyTaken);
        }
        let state = match tcp {
            Some(bits) => next_state(
                TcpState::None,
                Direction::Original,
                Direction::Original,
                bits,
            ),
            None => TcpState::None,
        };
        let flow = Flow {
            entry,
            last_seen: now,
            state,
            syn_dir: Direction::Original,
            packets: 1,
            decision: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(flow);
                s
            }
            None => {
                let Ok(s) = u32::try_from(self.slots.len()) else {
                    return Err(Refused::Full);
                };
                self.slots.push(Some(flow));
                s
            }
        };
        self.keys.insert(entry.key, slot);
        self.keys.insert(entry.reply, slot);
        self.live += 1;
        self.last = Some(slot);
        Ok(())
    }

    /// Finds the packet's flow, or creates an untranslated one.
    pub fn track(&mut self, key: FlowKey, tcp: Option<TcpBits>, now: Instant) -> Tracked {
        if let Some((dir, state)) = self.find(&key, tcp, now) {
            return Tracked::Known(dir, state);
        }
        match self.insert(FlowEntry::forward(key, None, None), tcp, now) {
            Ok(()) => Tracked::New,
            Err(_) => Tracked::Full,
        }
    }

    /// The flow the last [`find`](Self::find), [`insert`](Self::insert)
    /// or [`track`](Self::track) found or created.
    pub fn last(&self) -> Option<&FlowEntry> {
        let slot = self.last?;
        self.slots.get(slot as usize)?.as_ref().map(|f| &f.entry)
    }

    /// The firewall decision of the flow the last [`track`](Self::track)
    /// found or created (none after [`Tracked::Full`]), to read and set.
    pub fn last_decision_mut(&mut self) -> Option<&mut Option<Decision>> {
        let slot = self.last?;
        self.slots
            .get_mut(slot as usize)?
            .as_mut()
            .map(|f| &mut f.decision)
    }

    /// The state of the flow `key` belongs to.
    pub fn state(&self, key: &FlowKey) -> Option<TcpState> {
        let slot = *self.keys.get(key)?;
        self.slots.get(slot as usize)?.as_ref().map(|f| f.state)
    }

    /// The flow `key` belongs to.
    pub fn entry(&self, key: &FlowKey) -> Option<&FlowEntry> {
        let slot = *self.keys.get(key)?;
        self.slots.get(slot as usize)?.as_ref().map(|f| &f.entry)
    }

    /// Every flow, in slot order.
    pub fn entries(&self) -> impl Iterator<Item = &FlowEntry> + '_ {
        self.slots.iter().flatten().map(|f| &f.entry)
    }

    fn remove_slot(&mut self, i: usize) -> bool {
        let Some(f) = self.slots.get_mut(i).and_then(Option::take) else {
            return false;
        };
        self.keys.remove(&f.entry.key);
        self.keys.remove(&f.entry.reply);
        if let Some(out) = f.entry.binding() {
            self.nat.release(&out);
        }
        if let Ok(i) = u32::try_from(i) {
            self.free.push(i);
        }
        self.live -= 1;
        true
    }

    /// Removes up to [`AGE_BUDGET`] slots' worth of idle flows; returns how
    /// many went. Call it once per batch.
    pub fn age(&mut self, now: Instant) -> usize {
        self.last = None;
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..AGE_BUDGET.min(n) {
            self.cursor = (self.cursor + 1) % n;
            let idle = match &self.slots[self.cursor] {
                Some(f) => {
                    now.saturating_duration_since(f.last_seen)
                        >= self.timeout_of(f.state, f.entry.key.protocol)
                }
                None => false,
            };
            if idle && self.remove_slot(self.cursor) {
                removed += 1;
            }
        }
        removed
    }

    /// Removes every flow matching `pred` (used when what a flow depends
    /// on goes away); returns how many.
    pub fn purge(&mut self, mut pred: impl FnMut(&FlowEntry) -> bool) -> usize {
        self.last = None;
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let hit = self.slots[i].as_ref().is_some_and(|f| pred(&f.entry));
            if hit && self.remove_slot(i) {
                removed += 1;
            }
        }
        removed
    }
}

/// dpservice's TCP state machine.
fn next_state(state: TcpState, syn_dir: Direction, dir: Direction, b: TcpBits) -> TcpState {
    if b.rst {
        return TcpState::Closed;
    }
    match state {
        TcpState::None | TcpState::Closed if b.syn && !b.ack => TcpState::Syn,
        TcpState::Syn if b.syn && b.ack && dir != syn_dir => TcpState::SynAck,
        TcpState::SynAck if b.ack && !b.syn && !b.fin && dir == syn_dir => TcpState::Established,
        TcpState::Established if b.fin => TcpState::FinWait,
        s if b.fin && s != TcpState::FinWait => TcpState::Closed,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sport: u16) -> FlowKey {
        FlowKey {
            vni: 1,
            zone: 0,
            protocol: 6,
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: sport,
            dst_port: 80,
        }
    }

    const T: Timeouts = Timeouts {
        tcp_established: Duration::from_secs(86_400),
        other: Duration::from_secs(30),
    };

    fn bits(syn: bool, ack: bool, fin: bool, rst: bool) -> Option<TcpBits> {
        Some(TcpBits { syn, ack, fin, rst })
    }

    #[test]
    fn handshake_reaches_established_and_keeps_the_long_timeout() {
        let now = Instant::now();
        let mut t = FlowTable::new(10, T);
        let k = key(1000);
        assert_eq!(
            t.track(k, bits(true, false, false, false), now),
            Tracked::New
        );
        assert_eq!(
            t.track(k.reversed(), bits(true, true, false, false), now),
            Tracked::Known(Direction::Reply, TcpState::SynAck)
        );
        assert_eq!(
            t.track(k, bits(false, true, false, false), now),
            Tracked::Known(Direction::Original, TcpState::Established)
        );
        // Idle for an hour: established TCP survives, a UDP flow does not.
        let udp = FlowKey {
            protocol: 17,
            ..key(2000)
        };
        t.track(udp, None, now);
        let later = now + Duration::from_secs(3600);
        for _ in 0..3 {
            t.age(later);
        }
        assert_eq!(t.state(&k), Some(TcpState::Established));
        assert_eq!(t.state(&udp), None);
        assert_eq!(t.len(), 1);
        // FIN, then idle past the short timeout: gone.
        t.track(k, bits(false, true, true, false), later);
        assert_eq!(t.state(&k), Some(TcpState::FinWait));
        t.age(later + Duration::from_secs(31));
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_flows_and_frees_slots_on_expiry() {
        let now = Instant::now();
        let mut t = FlowTable::new(3, T);
        for p in 0..3 {
            assert_eq!(t.track(key(p), None, now), Tracked::New);
        }
        assert_eq!(t.track(key(9), None, now), Tracked::Full);
        // Existing flows still match, in both directions.
        assert!(matches!(
            t.track(key(1).reversed(), None, now),
            Tracked::Known(Direction::Reply, _)
        ));
        t.age(now + Duration::from_secs(31));
        assert_eq!(t.len(), 0);
        assert_eq!(t.track(key(9), None, now), Tracked::New);
        assert_eq!(t.purge(|e| e.key.src_port == 9), 1);
    }

    #[test]
    fn rst_closes_and_a_new_syn_restarts() {
        let now = Instant::now();
        let mut t = FlowTable::new(10, T);
        let k = key(1);
        t.track(k, bits(true, false, false, false), now);
        t.track(k.reversed(), bits(false, false, false, true), now);
        assert_eq!(t.state(&k), Some(TcpState::Closed));
        t.track(k, bits(true, false, false, false), now);
        assert_eq!(t.state(&k), Some(TcpState::Syn));
    }
}
