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
use tokio::sync::watch;
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

/// Public prefix → the underlay address it is sent to.
pub type PublicRoutes = BTreeMap<IpNet, Ipv6Addr>;

/// Follows the public VNI on `servers` with a bond client: the table of
/// public routes, kept current until the task is aborted.
pub fn follow_public_routes(
    servers: Vec<SocketAddr>,
    public_vni: Vni,
) -> (JoinHandle<()>, watch::Receiver<PublicRoutes>) {
    let (tx, rx) = watch::channel(PublicRoutes::new());
    let task = tokio::spawn(async move {
        let config = ClientConfig {
            keepalive_secs: 2,
            ..ClientConfig::default()
        };
        let (client, _events) = BondClient::spawn(config, servers);
        if client.subscribe(public_vni).await.is_err() {
            return;
        }
        loop {
            if let Ok(routes) = client.routes().await {
                tx.send_if_modified(|t| {
                    let want = wanted(&routes, public_vni);
                    let changed = *t != want;
                    *t = want;
                    changed
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (task, rx)
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
        let (follower, routes) = follow_public_routes(servers, public_vni);
        let task = tokio::spawn(async move {
            // Aborted with this task.
            struct Abort(JoinHandle<()>);
            impl Drop for Abort {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let _follower = Abort(follower);
            let mut installed = PublicRoutes::new();
            loop {
                let want = routes.borrow().clone();
                // Level-triggered: a failed `ip` call is retried.
                sync(&ns, &uplinks, &mut installed, &want).await;
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

/// The public routes in `routes`; several hops for one prefix: the lowest.
fn wanted(routes: &[Route], public_vni: Vni) -> PublicRoutes {
    let mut want = PublicRoutes::new();
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

async fn sync(ns: &str, uplinks: &[Uplink], installed: &mut PublicRoutes, want: &PublicRoutes) {
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
