//! Ethernet II frames, with detection of 802.1Q / 802.1ad VLAN tags.
//!
//! A frame is valid after [`EthernetFrame::new_checked`] if it holds the
//! 14-byte header, and 4 more bytes when the outer EtherType announces a
//! VLAN tag. [`EthernetFrame::ethertype`] then returns the type *after* the
//! tag, and [`EthernetFrame::vlan_tag`] the tag itself. Only one tag is
//! read; a second tag shows up as an inner EtherType of `0x8100`.

use std::fmt;
use std::str::FromStr;

use super::error::{Layer, WireError};
use super::field::{set_u16, u16_at};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Group bit set (multicast or broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// The all-ones address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The Ethernet multicast address for an IPv6 multicast group
    /// (`33:33` + the group's last four bytes, RFC 2464 §7).
    pub fn ipv6_multicast(group: std::net::Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A MAC address string was not six colon- or dash-separated hex bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (want six hex bytes such as 02:00:00:00:00:01)")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or(MacParseError)?;
            if part.len() != 2 {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

/// An EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service tag (QinQ).
    pub const QINQ: EtherType = EtherType(0x88a8);

    /// Whether this type announces a VLAN tag.
    pub fn is_vlan(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of a VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A VLAN tag (TPID + TCI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The tag protocol identifier (0x8100 or 0x88a8).
    pub tpid: EtherType,
    /// Priority code point, drop eligibility and VLAN id.
    pub tci: u16,
}

impl VlanTag {
    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view without length checks.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// A view whose header (and VLAN tag, if announced) fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Ethernet, HEADER_LEN, b.len())?;
        if EtherType(u16_at(b, 12)).is_vlan() {
            WireError::check_len(Layer::Ethernet, HEADER_LEN + VLAN_TAG_LEN, b.len())?;
        }
        Ok(EthernetFrame { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[0..6]);
        MacAddr(m)
    }

    /// Source address.
    pub fn src(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[6..12]);
        MacAddr(m)
    }

    /// The EtherType right after the source address (a VLAN TPID on tagged
    /// frames).
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(u16_at(self.buffer.as_ref(), 12))
    }

    /// The VLAN tag, if the frame has one.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        let tpid = self.outer_ethertype();
        tpid.is_vlan().then(|| VlanTag {
            tpid,
            tci: u16_at(self.buffer.as_ref(), 14),
        })
    }

    /// Whether the frame is VLAN tagged.
    pub fn is_vlan_tagged(&self) -> bool {
        self.outer_ethertype().is_vlan()
    }

    /// The EtherType of the payload (after a VLAN tag, if any).
    pub fn ethertype(&self) -> EtherType {
        if self.is_vlan_tagged() {
            EtherType(u16_at(self.buffer.as_ref(), 16))
        } else {
            self.outer_ethertype()
        }
    }

    /// Header length: 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.is_vlan_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac.0);
    }

    /// Sets the source address.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType of an untagged frame (or the TPID of a tagged one).
    pub fn set_outer_ethertype(&mut self, ty: EtherType) {
        set_u16(self.buffer.as_mut(), 12, ty.0);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// An Ethernet header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src: MacAddr,
    /// Destination address.
    pub dst: MacAddr,
    /// VLAN tag, if any.
    pub vlan: Option<VlanTag>,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Self {
        EthernetRepr {
            src: frame.src(),
            dst: frame.dst(),
            vlan: frame.vlan_tag(),
            ethertype: frame.ethertype(),
        }
    }

    /// Header length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Writes the header at the start of `buf` (at least
    /// [`buffer_len`](Self::buffer_len) bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..6].copy_from_slice(&self.dst.0);
        buf[6..12].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(tag) => {
                set_u16(buf, 12, tag.tpid.0);
                set_u16(buf, 14, tag.tci);
                set_u16(buf, 16, self.ethertype.0);
            }
            None => set_u16(buf, 12, self.ethertype.0),
        }
    }
}
