//! Connection tracking: a flow table keyed by the 5-tuple in both
//! directions, with per-protocol idle timeouts and aging driven by the time
//! passed in.
//!
//! Each flow has two keys (original and reply direction) pointing at one
//! slot, like dpservice. The table is bounded: when it is full a new flow
//! is refused (the packet is dropped and counted), never an old one
//! evicted silently. Aging scans a bounded number of slots per call, so no
//! batch pays for the whole table.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

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

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The VNI the packet is in.
    pub vni: u32,
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

#[derive(Debug, Clone)]
struct Flow {
    key: FlowKey,
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
}

/// Slots looked at per [`FlowTable::age`] call.
pub const AGE_BUDGET: usize = 1024;

impl FlowTable {
    /// A table for up to `capacity` flows.
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
        }
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

    /// Looks the packet's flow up (creating it if new) and advances the TCP
    /// state.
    pub fn track(&mut self, key: FlowKey, tcp: Option<TcpBits>, now: Instant) -> Tracked {
        self.last = None;
        if let Some(&slot) = self.keys.get(&key) {
            self.last = Some(slot);
            let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
                return Tracked::Full;
            };
            let dir = if flow.key == key {
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
            return Tracked::Known(dir, flow.state);
        }
        if self.live >= self.capacity {
            return Tracked::Full;
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
            key,
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
                    return Tracked::Full;
                };
                self.slots.push(Some(flow));
                s
            }
        };
        self.keys.insert(key, slot);
        self.keys.insert(key.reversed(), slot);
        self.live += 1;
        self.last = Some(slot);
        Tracked::New
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
                        >= self.timeout_of(f.state, f.key.protocol)
                }
                None => false,
            };
            if idle && let Some(f) = self.slots[self.cursor].take() {
                self.keys.remove(&f.key);
                self.keys.remove(&f.key.reversed());
                self.free.push(self.cursor as u32);
                self.live -= 1;
                removed += 1;
            }
        }
        removed
    }

    /// Removes every flow matching `pred` on its original key (used when
    /// an interface goes away); returns how many.
    pub fn purge(&mut self, mut pred: impl FnMut(&FlowKey) -> bool) -> usize {
        self.last = None;
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let hit = self.slots[i].as_ref().is_some_and(|f| pred(&f.key));
            if hit && let Some(f) = self.slots[i].take() {
                self.keys.remove(&f.key);
                self.keys.remove(&f.key.reversed());
                self.free.push(i as u32);
                self.live -= 1;
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
        assert_eq!(t.purge(|k| k.src_port == 9), 1);
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
