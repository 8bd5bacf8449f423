//! The demo's edge router learns where public addresses live the way a
//! data-centre router would from its route feed: a bond client subscribed
//! to the public VNI. Each public prefix (virtual IP, NAT address, load
//! balancer) becomes a kernel route in the router namespace that
//! encapsulates towards the announcing host's underlay address (SRv6
//! `encap.red`, which is IP-in-IPv6 on the wire). When several hosts
//! announce one prefix (a NAT address shared by port ranges, a load
//! balancer on two hosts), the lowest underlay address wins; the dps
//! forward what belongs to a neighbour.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use ironnet_bond::{BondClient, ClientConfig};
use ironnet_overlay::route::{Route, Vni};
use tokio::task::JoinHandle;

/// Keeps the router's public routes equal to what the bond says.
#[derive(Debug)]
pub struct RouterSync {
    task: JoinHandle<()>,
}

/// One hypervisor as the router sees it: its underlay /64 and the router's
/// interface towards it.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The host's underlay /64.
    pub prefix: Ipv6Net,
    /// The router-side interface.
    pub dev: String,
}

impl RouterSync {
    /// Connects to `servers`, subscribes to `public_vni` and installs routes
    /// in namespace `ns` until dropped.
    pub fn spawn(
        servers: Vec<SocketAddr>,
        public_vni: Vni,
        ns: String,
        uplinks: Vec<Uplink>,
    ) -> Self {
        let task = tokio::spawn(async move {
            let config = ClientConfig {
                keepalive_secs: 2,
                ..ClientConfig::default()
            };
            let (client, _events) = BondClient::spawn(config, servers);
            if client.subscribe(public_vni).await.is_err() {
                return;
            }
            let mut installed: BTreeMap<IpNet, Ipv6Addr> = BTreeMap::new();
            loop {
                if let Ok(routes) = client.routes().await {
                    let want = wanted(&routes, public_vni);
                    sync(&ns, &uplinks, &mut installed, &want).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        RouterSync { task }
    }
}

impl Drop for RouterSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Public prefix → the underlay address it is sent to.
pub(crate) fn wanted(routes: &[Route], public_vni: Vni) -> BTreeMap<IpNet, Ipv6Addr> {
    let mut want: BTreeMap<IpNet, Ipv6Addr> = BTreeMap::new();
    for r in routes.iter().filter(|r| r.vni == public_vni) {
        let prefix = r.destination.prefix();
        if !matches!(prefix, IpNet::V4(_)) || prefix.prefix_len() == 0 {
            continue;
        }
        let hop = r.next_hop.underlay;
        want.entry(prefix)
            .and_modify(|h| *h = (*h).min(hop))
            .or_insert(hop);
    }
    want
}

async fn sync(
    ns: &str,
    uplinks: &[Uplink],
    installed: &mut BTreeMap<IpNet, Ipv6Addr>,
    want: &BTreeMap<IpNet, Ipv6Addr>,
) {
    for (prefix, hop) in want {
        if installed.get(prefix) == Some(hop) {
            continue;
        }
        let Some(up) = uplinks.iter().find(|u| u.prefix.contains(hop)) else {
            continue;
        };
        let cmd = format!(
            "route replace {prefix} encap seg6 mode encap.red segs {hop} dev {}",
            up.dev
        );
        if ip(ns, &cmd).await {
            installed.insert(*prefix, *hop);
        }
    }
    let gone: Vec<IpNet> = installed
        .keys()
        .filter(|p| !want.contains_key(p))
        .copied()
        .collect();
    for prefix in gone {
        if ip(ns, &format!("route del {prefix}")).await {
            installed.remove(&prefix);
        }
    }
}

async fn ip(ns: &str, cmd: &str) -> bool {
    let out = tokio::process::Command::new("ip")
        .args(["-n", ns])
        .args(cmd.split_whitespace())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            tracing::warn!(
                "ip -n {ns} {cmd}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            tracing::warn!("ip: {e}");
            false
        }
    }
}
