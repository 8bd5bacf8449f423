//! The agent end to end without packets: a controller on a memory store,
//! one bond server, and two "hypervisors", each an in-process dp (its gRPC
//! service, no ports) with an agent. Manifests go in; the test reads the
//! dps back over their gRPC API and checks what the agents programmed:
//! interfaces on the right host, routes to the other host's interfaces,
//! the NAT section and its neighbour entry, the virtual IP, load-balancer
//! targets on both hosts, firewall rules from a policy, that a restarted
//! agent changes nothing, that a dp restarted empty is programmed again,
//! and that deleting an interface removes its routes everywhere. Runs
//! everywhere (no root).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ironnet_bins::agent::dp::Dp;
use ironnet_bins::agent::view::DpView;
use ironnet_bins::agent::{Agent, AgentConfig, Snapshot};
use ironnet_bond::{ServerConfig, ServerHandle};
use ironnet_core::api::networking;
use ironnet_core::control::{Config, NetworkController};
use ironnet_core::manifest::parse_manifests;
use ironnet_core::object::Resource;
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{ObjectKey, Store};
use ironnet_dp::service::DpService;
use ironnet_dp::{DpConfig, DpState, Published, Snapshot as DpSnapshot};
use tokio::sync::{oneshot, watch};

/// A dp's gRPC service on a loopback port; stops when dropped.
struct DpServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn dp_server(host: &str) -> DpServer {
    dp_server_at(host, "127.0.0.1:0".parse().unwrap()).await
}

/// A fresh dp (nothing programmed) on `at`.
async fn dp_server_at(host: &str, at: SocketAddr) -> DpServer {
    let config = DpConfig::tap(host.parse().unwrap(), 4);
    let service = DpService::new(DpState::new(config, 7), Published::new(DpSnapshot::empty()));
    let listener = tokio::net::TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    DpServer { addr, _stop: stop }
}

struct Host {
    dp: DpServer,
    snapshot: watch::Receiver<Snapshot>,
    _stop: oneshot::Sender<()>,
}

async fn host(store: &MemoryStore, node: &str, underlay: &str, bond: SocketAddr) -> Host {
    let dp = dp_server(underlay).await;
    let (snapshot, stop) = start_agent(store, node, &dp, bond);
    Host {
        dp,
        snapshot,
        _stop: stop,
    }
}

fn start_agent(
    store: &MemoryStore,
    node: &str,
    dp: &DpServer,
    bond: SocketAddr,
) -> (watch::Receiver<Snapshot>, oneshot::Sender<()>) {
    let mut cfg = AgentConfig::new(node);
    cfg.restore_window = Duration::from_millis(500);
    cfg.resync = Duration::from_secs(2);
    cfg.router_address = Some("fc00:b::100".parse().unwrap());
    let agent = Agent::new(store.clone(), &dp.addr.to_string(), vec![bond], cfg).unwrap();
    let snapshot = agent.snapshot();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    (snapshot, stop)
}

/// Reads a dp back with every VNI and NAT address the test cares about.
async fn read(h: &Host) -> DpView {
    try_read(h).await.unwrap()
}

/// [`read`], with an error while the dp is not initialised.
async fn try_read(h: &Host) -> Result<DpView, String> {
    let dp = Dp::new(&h.dp.addr.to_string()).map_err(|e| e.to_string())?;
    let vnis = (1..=300).collect();
    let nats = ["45.0.0.1", "45.0.0.2", "45.0.0.3", "45.0.0.4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    dp.read(&vnis, &nats).await.map_err(|e| e.to_string())
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = check().await;
        match r {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn apply(store: &MemoryStore, yaml: &str) {
    for obj in parse_manifests(yaml, "default").unwrap() {
        store.create(obj).await.unwrap();
    }
}

const MANIFESTS: &str = r#"
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata: {name: net}
---
apiVersion: compute.ironcore.dev/v1alpha1
kind: Machine
metadata: {name: ma}
spec: {machinePoolRef: {name: hv-a}}
---
apiVersion: compute.ironcore.dev/v1alpha1
kind: Machine
metadata: {name: mb}
spec: {machinePoolRef: {name: hv-b}}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {name: nic-a, labels: {app: web}}
spec:
  networkRef: {name: net}
  machineRef: {name: ma}
  ipFamilies: [IPv4]
  ips: [{value: 10.0.0.1}]
  prefixes: [{value: 10.1.0.0/24}]
  virtualIP:
    ephemeral:
      virtualIPTemplate:
        spec: {type: Public, ipFamily: IPv4}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {name: nic-b, labels: {app: web}}
spec:
  networkRef: {name: net}
  machineRef: {name: mb}
  ipFamilies: [IPv4]
  ips: [{value: 10.0.0.2}]
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NATGateway
metadata: {name: nat}
spec:
  type: Public
  ipFamily: IPv4
  networkRef: {name: net}
  portsPerNetworkInterface: 1024
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata: {name: lb}
spec:
  type: Internal
  networkRef: {name: net}
  ipFamilies: [IPv4]
  ips: [{value: 10.0.9.9}]
  networkInterfaceSelector: {matchLabels: {app: web}}
  ports: [{protocol: TCP, port: 8080}]
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkPolicy
metadata: {name: web}
spec:
  networkRef: {name: net}
  networkInterfaceSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/16}}]
    ports: [{protocol: TCP, port: 8080}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_programmed_through_the_dp_api() {
    ironnet_bins::init_tracing(false);
    let store = MemoryStore::new();
    let bond = ServerHandle::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let bond_addr = bond.local_addr();
    let cfg = Config {
        public_prefixes: vec!["45.0.0.0/24".parse().unwrap()],
        ..Config::default()
    };
    let (_stop_controller, stopped) = oneshot::channel::<()>();
    tokio::spawn(NetworkController::new(store.clone(), cfg).run(async {
        let _ = stopped.await;
    }));
    let mut a = host(&store, "hv-a", "fc00:1::1", bond_addr).await;
    let mut b = host(&store, "hv-b", "fc00:2::1", bond_addr).await;
    apply(&store, MANIFESTS).await;

    // Both user interfaces become Available (their internal ones Ready).
    for name in ["nic-a", "nic-b"] {
        eventually(&format!("{name} Available"), || async {
            let key = ObjectKey::new(&networking::NetworkInterface::INFO, "default", name);
            let nic: networking::NetworkInterface = store
                .get(&key)
                .await
                .map_err(|e| e.to_string())?
                .to_typed()
                .unwrap();
            (nic.status.state == Some(networking::State::Available))
                .then_some(())
                .ok_or(format!("{:?}", nic.status))
        })
        .await;
    }

    // Each host has its own interface on the first TAP slot; each routes
    // to the other's address (and A's alias prefix) over the underlay.
    eventually("routes between the hosts", || async {
        let (va, vb) = (read(&a).await, read(&b).await);
        let ia = va.interfaces.values().next().ok_or("no interface on A")?;
        let ib = vb.interfaces.values().next().ok_or("no interface on B")?;
        if (va.interfaces.len(), vb.interfaces.len()) != (1, 1) {
            return Err(format!(
                "{} / {} interfaces",
                va.interfaces.len(),
                vb.interfaces.len()
            ));
        }
        assert!(
            ["net_tap2", "dtapvf_0"].contains(&ia.device.as_str()),
            "{}",
            ia.device
        );
        assert_eq!(ia.ipv4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(ib.ipv4, Some("10.0.0.2".parse().unwrap()));
        let vni = ia.vni;
        let ra = va.routes.get(&vni).ok_or("no routes on A")?;
        let rb = vb.routes.get(&vni).ok_or("no routes on B")?;
        let to = |r: &std::collections::BTreeMap<ipnet::IpNet, _>, p: &str| {
            r.get(&p.parse::<ipnet::IpNet>().unwrap()).copied()
        };
        let hop_b = to(ra, "10.0.0.2/32").ok_or("A has no route to 10.0.0.2")?;
        let hop_a = to(rb, "10.0.0.1/32").ok_or("B has no route to 10.0.0.1")?;
        let hop_prefix = to(rb, "10.1.0.0/24").ok_or("B has no route to A's prefix")?;
        assert_eq!(hop_b.underlay, ib.underlay);
        assert_eq!(hop_a.underlay, ia.underlay);
        assert_eq!(
            hop_prefix.underlay,
            ia.prefixes.values().next().copied().unwrap()
        );
        // The default route to the router.
        let default = to(ra, "0.0.0.0/0").ok_or("A has no default route")?;
        assert_eq!(
            default.underlay,
            "fc00:b::100".parse::<std::net::Ipv6Addr>().unwrap()
        );
        Ok(())
    })
    .await;

    // A has a virtual IP; B is NAT'd, and A knows B's section.
    eventually("VIP, NAT and neighbour NAT", || async {
        let (va, vb) = (read(&a).await, read(&b).await);
        let ia = va.interfaces.values().next().ok_or("A")?;
        let ib = vb.interfaces.values().next().ok_or("B")?;
        let vip = ia.vip.ok_or("no VIP on A")?;
        let (nat, nat_ul) = ib.nat.ok_or("no NAT on B")?;
        assert_ne!(vip.0, nat.ip, "distinct public addresses");
        assert_eq!(nat.last - nat.first + 1, 1024);
        let n = va
            .neighbor_nats
            .iter()
            .find(|n| n.range == nat)
            .ok_or(format!("A lacks B's section: {:?}", va.neighbor_nats))?;
        assert_eq!(n.underlay, nat_ul);
        Ok(())
    })
    .await;

    // The internal LB has instances on both hosts, each with both
    // interfaces as targets; the policy gave each interface its rules.
    eventually("load balancer and firewall", || async {
        let (va, vb) = (read(&a).await, read(&b).await);
        for (host, v) in [("A", &va), ("B", &vb)] {
            let lb = v.lbs.values().next().ok_or(format!("no LB on {host}"))?;
            if lb.targets.len() != 2 {
                return Err(format!("{host}: LB targets {:?}", lb.targets));
            }
            let i = v.interfaces.values().next().ok_or(host)?;
            if i.lb_targets.is_empty() || i.firewall.is_empty() {
                return Err(format!("{host}: {:?} / {:?}", i.lb_targets, i.firewall));
            }
        }
        Ok(())
    })
    .await;

    // A new agent on A (a restart) reads the dp back and changes
    // nothing: the same interface (same underlay address), no failed
    // call, the same routes on B afterwards.
    let before_a = read(&a).await;
    let (snapshot, stop) = start_agent(&store, "hv-a", &a.dp, bond_addr);
    a._stop = stop;
    a.snapshot = snapshot;
    eventually("the new agent's first passes", || async {
        let passes = a.snapshot.borrow().passes;
        (passes >= 3)
            .then_some(())
            .ok_or(format!("{passes} passes"))
    })
    .await;
    let after_a = read(&a).await;
    assert_eq!(
        before_a.interfaces, after_a.interfaces,
        "nothing re-created"
    );
    assert_eq!(a.snapshot.borrow().dp_errors, 0);

    // The dp on B restarts empty on the same address: the agent notices
    // (not initialised, a new UUID) and programs it again, interface,
    // routes and all.
    let before_b = read(&b).await;
    let restarts = b.snapshot.borrow().dp_restarts;
    let addr = b.dp.addr;
    drop(std::mem::replace(&mut b.dp._stop, oneshot::channel().0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.dp = dp_server_at("fc00:2::1", addr).await;
    eventually("B re-programmed after a dp restart", || async {
        let vb = try_read(&b).await?;
        let same_routes = vb.routes == before_b.routes;
        let n = vb.interfaces.len();
        (n == 1 && same_routes && vb.lbs.len() == before_b.lbs.len())
            .then_some(())
            .ok_or(format!("{n} interfaces, same routes: {same_routes}"))
    })
    .await;
    assert!(
        b.snapshot.borrow().dp_restarts > restarts,
        "restart counted"
    );

    // Deleting B's interface removes it from B and its routes from A.
    let key = ObjectKey::new(&networking::NetworkInterface::INFO, "default", "nic-b");
    store.delete(&key).await.unwrap();
    eventually("nic-b gone everywhere", || async {
        let (va, vb) = (read(&a).await, read(&b).await);
        if !vb.interfaces.is_empty() {
            return Err("B still has its interface".into());
        }
        let stale = va
            .routes
            .values()
            .flat_map(|r| r.keys())
            .any(|p| *p == "10.0.0.2/32".parse::<ipnet::IpNet>().unwrap());
        if stale {
            return Err("A still routes to 10.0.0.2".into());
        }
        if va.lbs.values().any(|lb| lb.targets.len() != 1) {
            return Err(format!("A's LB targets: {:?}", va.lbs));
        }
        Ok(())
    })
    .await;
    let errors = a.snapshot.borrow().dp_errors + b.snapshot.borrow().dp_errors;
    assert_eq!(errors, 0, "no dp call failed");
}
