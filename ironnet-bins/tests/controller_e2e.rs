//! `ironnet-controller` end to end: every seed example applied unchanged
//! with `ironnetctl` reaches the status the seeds document (an agent's
//! part played by the test: it registers nodes and reports interfaces
//! Ready); a restart re-allocates nothing; two replicas on one etcd fail
//! over when the leader is killed, without a duplicate allocation.
#![allow(clippy::unwrap_used)]

#[path = "../../ironnet-core/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironnet_core::api::apinet;
use ironnet_core::api::common::IpFamily;
use ironnet_core::api::networking::{self, PeeringPhase, State};
use ironnet_core::client::ApiClient;
use ironnet_core::etcd::EtcdClient;
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::runtime::leader::LeaderElection;
use ironnet_core::store::{ObjectKey, Selection, Store};

/// A running controller, killed (SIGKILL) when dropped.
struct Controller {
    child: Child,
    url: String,
}

impl Controller {
    fn start(args: &[&str]) -> Controller {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ironnet-controller"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("API on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Controller { child, url }
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(&self.url, None).unwrap()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl_apply(url: &str, yaml: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironnetctl"))
        .args(["--server", url, "apply", "-f", "-"])
        .env_remove("IRONNET_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn list<T: Resource>(c: &ApiClient) -> Vec<T> {
    let (objs, _) = c.list(&Selection::kind(T::INFO)).await.unwrap();
    objs.iter().map(|o| o.to_typed::<T>().unwrap()).collect()
}

async fn get<T: Resource>(c: &ApiClient, ns: &str, name: &str) -> Option<T> {
    c.get(&ObjectKey::new(&T::INFO, ns, name))
        .await
        .ok()
        .map(|o| o.to_typed().unwrap())
}

async fn register_node(c: &ApiClient, name: &str) {
    let mut n = apinet::Node::new("", name, apinet::Empty {});
    n.metadata.namespace.clear();
    let _ = c.create(DynObject::from_typed(&n).unwrap()).await;
}

/// The agent's part: every internal interface reported Ready.
async fn agent(c: &ApiClient) {
    for mut nic in list::<apinet::NetworkInterface>(c).await {
        if nic.status.state.is_none() {
            nic.status.state = Some(apinet::NicState::Ready);
            let _ = c.update_status(DynObject::from_typed(&nic).unwrap()).await;
        }
    }
}

/// Polls (playing the agent) until `check` holds.
async fn wait_for<F, Fut>(c: &ApiClient, what: &str, secs: u64, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        agent(c).await;
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every VNI and public address the store holds, by holder.
async fn allocations(c: &ApiClient) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for id in list::<apinet::NetworkID>(c).await {
        let prev = out.insert(
            format!("vni {}", id.metadata.name),
            id.spec.claim_ref.uid.clone(),
        );
        assert!(prev.is_none());
    }
    let ips = list::<apinet::IP>(c).await;
    for a in list::<apinet::IPAddress>(c).await {
        let cl = &a.spec.claim_ref;
        let holder = ips
            .iter()
            .find(|i| i.metadata.namespace == cl.namespace && i.metadata.name == cl.name)
            .filter(|i| i.spec.ip == a.spec.ip);
        if let Some(h) = holder {
            out.insert(format!("ip {}", a.metadata.name), h.metadata.uid.clone());
        }
    }
    out
}

fn in_pool(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v) if v.octets()[..3] == [10, 0, 0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_applied_with_ironnetctl_reach_their_documented_status() {
    let dir = common::ScratchDir::new("controller-e2e-seeds");
    let data = dir.0.join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--public-prefix",
        "10.0.0.0/24",
    ];
    let controller = Controller::start(&args);
    let c = controller.client();
    register_node(&c, "my-node").await;
    register_node(&c, "node-b").await;
    let mut manifests = common::seeds::object_manifests();
    assert_eq!(manifests.len(), 16);
    // The internal examples (seed 004) name their public addresses
    // (10.0.0.1-3); applied first, those are still free, as the seed
    // assumes. (Applied after the user examples, the dynamic allocations
    // of those may take them, and the IP reports AddressInUse.)
    manifests.sort_by_key(|(source, _)| !source.starts_with("004_"));
    for (_, yaml) in &manifests {
        ctl_apply(&controller.url, yaml);
    }

    wait_for(&c, "the documented statuses", 30, || async {
        let nic: Option<networking::NetworkInterface> =
            get(&c, "default", "networkinterface-sample").await;
        let gw: Option<networking::NATGateway> = get(&c, "default", "natgateway-sample").await;
        let lb: Option<networking::LoadBalancer> = get(&c, "default", "loadbalancer-sample").await;
        let inst: Option<apinet::Instance> = get(&c, "default", "my-instance").await;
        nic.is_some_and(|n| {
            n.status.state == Some(State::Available) && n.status.virtual_ip.is_some()
        }) && gw.is_some_and(|g| !g.status.ips.is_empty())
            && lb.is_some_and(|l| !l.status.ips.is_empty())
            && inst.is_some_and(|i| i.spec.node_ref.is_some())
    })
    .await;

    // Network: provider ID ironcore-net://<ns>/<name>/<id>/<uid>, Available.
    let net: networking::Network = get(&c, "default", "network-sample").await.unwrap();
    let parts: Vec<&str> = net
        .spec
        .provider_id
        .strip_prefix("ironcore-net://")
        .unwrap()
        .split('/')
        .collect();
    assert_eq!(parts.len(), 4, "{}", net.spec.provider_id);
    assert_eq!(parts[0], "ironnet-system");
    assert!(parts[2].parse::<u32>().unwrap() >= 200);
    assert_eq!(net.status.state, Some(State::Available));
    assert_eq!(net.status.peerings[0].phase, PeeringPhase::Pending);
    // VirtualIP status.ip; the interface shows it with ips, state and time.
    let vip: networking::VirtualIP = get(&c, "default", "virtualip-sample").await.unwrap();
    let vip_ip = vip.status.ip.unwrap();
    assert!(in_pool(vip_ip));
    let nic: networking::NetworkInterface =
        get(&c, "default", "networkinterface-sample").await.unwrap();
    assert_eq!(nic.status.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(nic.status.virtual_ip, Some(vip_ip));
    assert!(nic.status.last_state_transition_time.is_some());
    // NATGateway and LoadBalancer status.ips.
    let gw: networking::NATGateway = get(&c, "default", "natgateway-sample").await.unwrap();
    assert!(in_pool(gw.status.ips[0].ip));
    let lb: networking::LoadBalancer = get(&c, "default", "loadbalancer-sample").await.unwrap();
    assert!(in_pool(lb.status.ips[0]));
    // The internal examples: the IP is allocated, the network has an ID.
    let ip: apinet::IP = get(&c, "default", "my-public-ip").await.unwrap();
    assert_eq!(ip.spec.ip, Some("10.0.0.1".parse().unwrap()));
    let held = allocations(&c).await;
    assert_eq!(held.get("ip 10.0.0.1"), Some(&ip.metadata.uid), "{held:?}");
    assert_eq!(ip.spec.claim_ref.unwrap().name, "my-nic");
    let lb4: apinet::LoadBalancer = get(&c, "default", "my-instance").await.unwrap();
    assert!(held.contains_key("ip 10.0.0.2"), "{held:?}");
    assert_eq!(lb4.spec.ips[0].ip, Some("10.0.0.2".parse().unwrap()));
    let gw4: apinet::NATGateway = get(&c, "default", "my-nat-gateway").await.unwrap();
    assert_eq!(gw4.spec.ips[0].ip, Some("10.0.0.3".parse().unwrap()));
    assert!(held.contains_key("ip 10.0.0.3"), "{held:?}");
    let n: apinet::Network = get(&c, "default", "my-network").await.unwrap();
    assert!(n.spec.id.parse::<u32>().unwrap() >= 200);

    // A restart re-allocates nothing.
    let before = allocations(&c).await;
    assert!(before.len() >= 8, "{before:?}");
    drop(controller);
    let controller = Controller::start(&args);
    let c = controller.client();
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent(&c).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        allocations(&c).await,
        before,
        "allocations changed across a restart"
    );
    let vip: networking::VirtualIP = get(&c, "default", "virtualip-sample").await.unwrap();
    assert_eq!(vip.status.ip, Some(vip_ip));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_etcd_fail_over_without_duplicate_allocations() {
    let etcd = common::EtcdServer::start("ctl-replicas");
    let start = |id: &str| {
        Controller::start(&[
            "--store",
            "etcd",
            "--etcd-endpoints",
            &etcd.endpoint,
            "--etcd-prefix",
            "/replicas",
            "--leader-ttl",
            "2",
            "--identity",
            id,
            "--public-prefix",
            "10.1.0.0/24",
        ])
    };
    let mut replicas = BTreeMap::new();
    replicas.insert("a".to_owned(), start("a"));
    replicas.insert("b".to_owned(), start("b"));
    let c = replicas["a"].client();
    let election = LeaderElection::new(
        EtcdClient::connect(std::slice::from_ref(&etcd.endpoint)).unwrap(),
        "/replicas/leader",
        "observer",
        2,
    );
    let vip = |i: usize| {
        let v = networking::VirtualIP::new(
            "default",
            &format!("vip{i}"),
            networking::VirtualIpSpec {
                ty: Some(networking::PublicType::Public),
                ip_family: Some(IpFamily::IPv4),
                target_ref: None,
            },
        );
        DynObject::from_typed(&v).unwrap()
    };
    let net = |i: usize| {
        DynObject::from_typed(&networking::Network::new(
            "default",
            &format!("net{i}"),
            Default::default(),
        ))
        .unwrap()
    };
    for i in 0..20 {
        c.create(vip(i)).await.unwrap();
    }
    for i in 0..3 {
        c.create(net(i)).await.unwrap();
    }
    // Find the leader while it works, and kill it mid-way.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        if let Ok(Some(l)) = election.leader().await {
            break l;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for i in 20..40 {
        c.create(vip(i)).await.unwrap();
    }
    let killed = replicas.remove(&leader).unwrap();
    drop(killed);
    for i in 3..6 {
        let survivor = replicas.values().next().unwrap().client();
        survivor.create(net(i)).await.unwrap();
    }
    let survivor = replicas.values().next().unwrap().client();
    let killed_at = Instant::now();
    wait_for(
        &survivor,
        "every VirtualIP and network allocated by the survivor",
        40,
        || async {
            let vips = list::<networking::VirtualIP>(&survivor).await;
            let nets = list::<networking::Network>(&survivor).await;
            vips.len() == 40
                && vips.iter().all(|v| v.status.ip.is_some())
                && nets
                    .iter()
                    .all(|n| n.status.state == Some(State::Available))
        },
    )
    .await;
    let took = killed_at.elapsed();
    let new_leader = election.leader().await.unwrap();
    assert!(new_leader.is_some_and(|l| l != leader));
    // No address and no VNI twice.
    let vips = list::<networking::VirtualIP>(&survivor).await;
    let addrs: BTreeSet<IpAddr> = vips.iter().filter_map(|v| v.status.ip).collect();
    assert_eq!(addrs.len(), 40, "duplicate addresses");
    let nets = list::<apinet::Network>(&survivor).await;
    let vnis: BTreeSet<&str> = nets.iter().map(|n| n.spec.id.as_str()).collect();
    assert_eq!(vnis.len(), 6, "duplicate VNIs");
    let reservations = list::<apinet::IPAddress>(&survivor).await;
    assert_eq!(reservations.len(), 40, "a reservation leaked or is missing");
    eprintln!("fail-over: all allocated {took:?} after the leader was killed");
}
