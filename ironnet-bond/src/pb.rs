//! metalbond's protobuf messages (`pb/metalbond.proto`), written out with
//! prost's derive so no code generation or `protoc` is needed. Field
//! numbers and enum values are metalbond's.

/// HELLO body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    /// Keepalive interval the sender wants, seconds.
    #[prost(uint32, tag = "1")]
    pub keepalive_interval: u32,
    /// Whether the sender is a server.
    #[prost(bool, tag = "2")]
    pub is_server: bool,
}

/// SUBSCRIBE / UNSUBSCRIBE body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Subscription {
    /// The VNI.
    #[prost(uint32, tag = "1")]
    pub vni: u32,
}

/// UPDATE body: one route added or removed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Update {
    /// [`Action`].
    #[prost(enumeration = "Action", tag = "1")]
    pub action: i32,
    /// The VNI whose table the route belongs to.
    #[prost(uint32, tag = "2")]
    pub vni: u32,
    /// The destination prefix.
    #[prost(message, optional, tag = "3")]
    pub destination: Option<Destination>,
    /// The next hop.
    #[prost(message, optional, tag = "4")]
    pub next_hop: Option<NextHop>,
}

/// A destination prefix.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Destination {
    /// [`IpVersion`].
    #[prost(enumeration = "IpVersion", tag = "1")]
    pub ip_version: i32,
    /// Raw address bytes, 4 or 16.
    #[prost(bytes = "vec", tag = "2")]
    pub prefix: Vec<u8>,
    /// Prefix length.
    #[prost(uint32, tag = "3")]
    pub prefix_length: u32,
}

/// A next hop on the underlay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NextHop {
    /// Raw IPv6 underlay address (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub target_address: Vec<u8>,
    /// VNI at the target.
    #[prost(uint32, tag = "2")]
    pub target_vni: u32,
    /// [`NextHopType`].
    #[prost(enumeration = "NextHopType", tag = "3")]
    pub r#type: i32,
    /// First NAT port (NAT hops only).
    #[prost(uint32, tag = "4")]
    pub nat_port_range_from: u32,
    /// Last NAT port (NAT hops only).
    #[prost(uint32, tag = "5")]
    pub nat_port_range_to: u32,
}

/// UPDATE action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Action {
    /// Add the route.
    Add = 0,
    /// Remove the route.
    Remove = 1,
}

/// Address family of a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum IpVersion {
    /// IPv4.
    IPv4 = 0,
    /// IPv6.
    IPv6 = 1,
}

/// Next-hop type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NextHopType {
    /// Plain route.
    Standard = 0,
    /// NAT IP with a port range.
    Nat = 1,
    /// Load balancer target.
    LoadbalancerTarget = 2,
}
