//! ARP for IPv4 over Ethernet (RFC 826), the only kind guests send.
//!
//! [`ArpPacket::new_checked`] needs the 28 bytes of an Ethernet/IPv4 ARP
//! message; [`ArpRepr::parse`] also insists on hardware type 1, protocol
//! 0x0800 and address lengths 6 and 4.

use std::net::Ipv4Addr;

use super::error::{Layer, WireError};
use super::ethernet::{EtherType, MacAddr};
use super::field::{ipv4_at, set_u16, u16_at};

/// Length of an Ethernet/IPv4 ARP message.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Request (1).
    Request,
    /// Reply (2).
    Reply,
    /// Any other code.
    Other(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Other(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Other(v) => v,
        }
    }
}

/// A view of an ARP message.
#[derive(Debug, Clone)]
pub struct ArpPacket<T> {
    buffer: T,
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// A view without length checks.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// A view over at least 28 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        WireError::check_len(Layer::Arp, PACKET_LEN, buffer.as_ref().len())?;
        Ok(ArpPacket { buffer })
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 0)
    }

    /// Protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[4]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[5]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        u16_at(self.buffer.as_ref(), 6).into()
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 8)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 14)
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 18)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 24)
    }
}

/// An Ethernet/IPv4 ARP message as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP message.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self, WireError> {
        if p.hardware_type() != 1 || p.hardware_len() != 6 {
            return Err(WireError::Unsupported {
                layer: Layer::Arp,
                what: "hardware other than Ethernet",
            });
        }
        if p.protocol_type() != EtherType::IPV4.0 || p.protocol_len() != 4 {
            return Err(WireError::Unsupported {
                layer: Layer::Arp,
                what: "protocol other than IPv4",
            });
        }
        Ok(ArpRepr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// Always 28.
    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the message into the first 28 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        set_u16(buf, 0, 1);
        set_u16(buf, 2, EtherType::IPV4.0);
        buf[4] = 6;
        buf[5] = 4;
        set_u16(buf, 6, self.operation.into());
        buf[8..14].copy_from_slice(&self.sender_mac.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_mac.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
    }
}
