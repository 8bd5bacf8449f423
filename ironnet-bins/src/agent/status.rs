//! The status an internal NetworkInterface gets from its node: Ready with
//! its TAP device once the dp has it with everything it asks for, Pending
//! while that is under way or its network is missing, Error when it cannot
//! be made real here. Pure.

use std::net::IpAddr;

use ironnet_core::api::apinet::{InternalNicStatus, NicState, TapDevice};

use super::desired::{Blocked, WantInterface};
use super::view::{Device, HaveInterface, same_interface};

/// The status of a wanted interface given what the dp has.
pub fn wanted(
    want: &WantInterface,
    have: Option<&HaveInterface>,
    devices: &[Device],
) -> InternalNicStatus {
    let Some(have) = have.filter(|h| same_interface(want, h)) else {
        return InternalNicStatus {
            state: Some(NicState::Pending),
            tap_device: want.slot.clone().map(|name| TapDevice { name }),
            ..Default::default()
        };
    };
    let complete = have.vip.map(|v| v.0) == want.vip
        && have.nat.map(|n| n.0) == want.nat
        && have.prefixes.keys().eq(want.prefixes.iter())
        && have.lb_targets.keys().eq(want.lb_targets.iter())
        && have.firewall.iter().eq(want.firewall.keys());
    let slot = devices
        .iter()
        .find(|d| d.is(&have.device))
        .map_or_else(|| have.device.clone(), |d| d.slot.clone());
    InternalNicStatus {
        state: Some(if complete {
            NicState::Ready
        } else {
            NicState::Pending
        }),
        pci_address: None,
        tap_device: Some(TapDevice { name: slot }),
        prefixes: have.prefixes.keys().copied().collect(),
        public_ips: have.vip.map(|v| IpAddr::V4(v.0)).into_iter().collect(),
        nat_ips: have.nat.map(|n| IpAddr::V4(n.0.ip)).into_iter().collect(),
    }
}

/// The status of an interface that cannot be made real.
pub fn blocked(reason: &Blocked) -> InternalNicStatus {
    InternalNicStatus {
        state: Some(match reason {
            Blocked::NoNetwork(_) => NicState::Pending,
            Blocked::Invalid(_) => NicState::Error,
        }),
        ..Default::default()
    }
}

/// The status of an interface no device is left for.
pub fn no_device() -> InternalNicStatus {
    InternalNicStatus {
        state: Some(NicState::Error),
        ..Default::default()
    }
}
