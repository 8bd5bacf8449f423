//! A tour of `ironnet-alloc`: the decisions a controller makes when a
//! network, an interface with a public IP and a NAT gateway are created.
//!
//! Run: `cargo run -p ironnet-examples --example allocators`

use std::net::Ipv6Addr;

use ipnet::IpNet;
use ironnet_alloc::{
    AllocError, IpPoolBuilder, NatPortAllocator, PortsPerInterface, SlotPool, UnderlayAllocator,
    VniAllocator, VniRange, slots::tap_vf_names,
};

fn main() -> Result<(), AllocError> {
    // Network IDs from IronCore's default range.
    let mut vnis = VniAllocator::new(VniRange::IRONCORE_DEFAULT);
    let vni = vnis.allocate()?;
    println!("network gets VNI {vni}");

    // Public IPv4 addresses from a /28, the first address reserved.
    let prefix: IpNet = "192.0.2.0/28".parse().expect("literal prefix");
    let mut public = IpPoolBuilder::new()
        .prefix(prefix)
        .reserve_addr(prefix.network())
        .build()?;
    let vip = public.allocate()?;
    println!(
        "interface gets public IP {vip} ({} left)",
        public.available()
    );

    // A NAT gateway with one NAT IP and 2048 ports per interface.
    let mut nat: NatPortAllocator<&str> = NatPortAllocator::new(PortsPerInterface::DEFAULT);
    nat.add_ip(public.allocate()?)?;
    for nic in ["nic-a", "nic-b"] {
        let s = nat.allocate(nic)?;
        println!(
            "{nic}: NAT {} ports {}..={} (dpservice max_port {})",
            s.ip,
            s.first_port,
            s.last_port,
            s.dp_max_port()
        );
    }

    // On the hypervisor: a TAP slot and an underlay address per interface.
    let mut slots: SlotPool<String, &str> = SlotPool::new(tap_vf_names(4))?;
    let host: Ipv6Addr = "fc00:1::1".parse().expect("literal address");
    let mut underlay = UnderlayAllocator::new(host, 7);
    println!(
        "nic-a plugs into {} with underlay {}",
        slots.allocate("nic-a")?,
        underlay.allocate(0x2a)?
    );
    Ok(())
}
