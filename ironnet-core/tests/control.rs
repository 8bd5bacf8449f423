//! The network controller on a memory store: every seed example reaches
//! the status the seeds document; random sequences of creates, updates
//! and deletes with controller restarts keep every allocation unique,
//! leak nothing and keep statuses consistent with the store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironnet_core::api::apinet;
use ironnet_core::api::common::{IpFamily, LocalObjectReference};
use ironnet_core::api::events::Event;
use ironnet_core::api::networking::{self, PeeringPhase, State};
use ironnet_core::control::{Config, NetworkController};
use ironnet_core::manifest::parse_manifests;
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{ObjectKey, Selection, Store};
use proptest::prelude::*;

fn cfg(prefix: &str) -> Config {
    Config {
        public_prefixes: vec![prefix.parse().unwrap()],
        ..Config::default()
    }
}

async fn list<T: Resource>(store: &MemoryStore) -> Vec<T> {
    let (objs, _) = store.list(&Selection::kind(T::INFO)).await.unwrap();
    objs.iter().map(|o| o.to_typed::<T>().unwrap()).collect()
}

async fn get<T: Resource>(store: &MemoryStore, ns: &str, name: &str) -> T {
    store
        .get(&ObjectKey::new(&T::INFO, ns, name))
        .await
        .unwrap_or_else(|e| panic!("{} {ns}/{name}: {e}", T::INFO.kind))
        .to_typed()
        .unwrap()
}

async fn node(store: &MemoryStore, name: &str, zone: &str) {
    let mut n = apinet::Node::new("", name, apinet::Empty {});
    n.metadata.namespace.clear();
    n.metadata
        .labels
        .insert("topology.core.apinet.ironcore.dev/zone".into(), zone.into());
    store
        .create(DynObject::from_typed(&n).unwrap())
        .await
        .unwrap();
}

/// What an agent does for the controller: reports every internal
/// interface Ready.
async fn agent(store: &MemoryStore) -> usize {
    let mut n = 0;
    for mut nic in list::<apinet::NetworkInterface>(store).await {
        if nic.status.state.is_none() {
            nic.status.state = Some(apinet::NicState::Ready);
            store
                .update_status(DynObject::from_typed(&nic).unwrap())
                .await
                .unwrap();
            n += 1;
        }
    }
    n
}

/// Controller rounds and agent reports until neither has work.
async fn settle(store: &MemoryStore, cfg: &Config) {
    let c = NetworkController::new(store.clone(), cfg.clone());
    for _ in 0..50 {
        let rounds = c.settle(50).await.unwrap();
        assert!(rounds < 50, "the controller does not settle");
        if agent(store).await == 0 {
            return;
        }
    }
    panic!("controller and agent do not settle");
}

fn in_pool(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v) if v.octets()[..3] == [10, 0, 0])
}

#[tokio::test]
async fn seed_examples_reach_the_documented_status() {
    let store = MemoryStore::new();
    let cfg = cfg("10.0.0.0/24");
    node(&store, "my-node", "a").await;
    node(&store, "node-b", "b").await;
    let manifests = common::seeds::object_manifests();
    assert_eq!(manifests.len(), 16);
    for (source, yaml) in &manifests {
        for obj in parse_manifests(yaml, "default").unwrap() {
            match store.create(obj.clone()).await {
                Ok(_) => {}
                Err(ironnet_core::store::StoreError::AlreadyExists(_)) => {}
                Err(e) => panic!("{source}: {e}"),
            }
        }
    }
    settle(&store, &cfg).await;

    // 002: Network → providerID and Available; its peer does not exist.
    let net: networking::Network = get(&store, "default", "network-sample").await;
    let internal: apinet::Network = get(&store, "ironnet-system", &net.metadata.uid).await;
    let vni: u32 = internal.spec.id.parse().unwrap();
    assert!(vni >= 200);
    assert_eq!(
        net.spec.provider_id,
        format!(
            "ironcore-net://ironnet-system/{0}/{vni}/{1}",
            net.metadata.uid, internal.metadata.uid
        )
    );
    assert_eq!(net.status.state, Some(State::Available));
    assert_eq!(net.status.peerings.len(), 1);
    assert_eq!(net.status.peerings[0].phase, PeeringPhase::Pending);
    // VirtualIP → status.ip.
    let vip: networking::VirtualIP = get(&store, "default", "virtualip-sample").await;
    let vip_ip = vip.status.ip.expect("VirtualIP status.ip");
    assert!(in_pool(vip_ip), "{vip_ip}");
    // NetworkInterface → ips, Available, virtualIP, lastStateTransitionTime.
    let nic: networking::NetworkInterface = get(&store, "default", "networkinterface-sample").await;
    assert_eq!(nic.status.state, Some(State::Available), "{:?}", nic.status);
    assert_eq!(nic.status.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(nic.status.virtual_ip, Some(vip_ip));
    assert!(nic.status.last_state_transition_time.is_some());
    assert!(
        nic.spec
            .provider_id
            .starts_with("ironcore-net://ironnet-system/")
    );
    let vip: networking::VirtualIP = get(&store, "default", "virtualip-sample").await;
    assert_eq!(vip.spec.target_ref.unwrap().name, "networkinterface-sample");
    // NATGateway → status.ips [{name, ip}].
    let gw: networking::NATGateway = get(&store, "default", "natgateway-sample").await;
    assert_eq!(gw.status.ips.len(), 1, "{:?}", gw.status);
    assert_eq!(gw.status.ips[0].name, "ip-1");
    assert!(in_pool(gw.status.ips[0].ip));
    // LoadBalancer → status.ips; its routing lists no interface (none has app: web).
    let lb: networking::LoadBalancer = get(&store, "default", "loadbalancer-sample").await;
    assert_eq!(lb.status.ips.len(), 1);
    assert!(in_pool(lb.status.ips[0]));
    let routing: networking::LoadBalancerRouting =
        get(&store, "default", "loadbalancer-sample").await;
    assert_eq!(routing.network_ref.name, "network-sample");
    // The policy names a network that does not exist: an event says so.
    let events = list::<Event>(&store).await;
    assert!(
        events
            .iter()
            .any(|e| e.regarding.name == "my-network-policy" && e.reason == "NetworkNotFound"),
        "{events:#?}"
    );

    // 004: IP allocated (the lowest free address), Network ID, the NIC
    // claims the IP by its address, the instance is scheduled, the LB and
    // NAT gateway hold their given addresses.
    let ip: apinet::IP = get(&store, "default", "my-public-ip").await;
    assert_eq!(ip.spec.ip, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(ip.spec.claim_ref.as_ref().unwrap().name, "my-nic");
    let net: apinet::Network = get(&store, "default", "my-network").await;
    assert!(net.spec.id.parse::<u32>().unwrap() >= 200);
    let nic: apinet::NetworkInterface = get(&store, "default", "my-nic").await;
    assert_eq!(nic.status.state, Some(apinet::NicState::Ready));
    let inst: apinet::Instance = get(&store, "default", "my-instance").await;
    assert!(inst.spec.node_ref.is_some());
    let lb: apinet::LoadBalancer = get(&store, "default", "my-instance").await;
    assert_eq!(lb.spec.ips[0].ip, Some("10.0.0.2".parse().unwrap()));
    let owned: Vec<apinet::Instance> = list::<apinet::Instance>(&store)
        .await
        .into_iter()
        .filter(|i| {
            i.metadata
                .controller()
                .is_some_and(|o| o.uid == lb.metadata.uid)
        })
        .collect();
    assert_eq!(owned.len(), 2, "one instance per node (no anti-affinity)");
    let gw: apinet::NATGateway = get(&store, "default", "my-nat-gateway").await;
    assert_eq!(gw.spec.ips[0].ip, Some("10.0.0.3".parse().unwrap()));
    get::<apinet::NATTable>(&store, "default", "my-nat-gateway").await;

    // Every address has exactly one holder.
    check_unique(&store).await;
}

/// Every held address and VNI has one holder, and statuses agree with
/// the store.
async fn check_unique(store: &MemoryStore) {
    let reservations = list::<apinet::IPAddress>(store).await;
    let ips = list::<apinet::IP>(store).await;
    let mut holders: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for r in &reservations {
        let c = &r.spec.claim_ref;
        if let Some(ip) = ips
            .iter()
            .find(|i| i.metadata.namespace == c.namespace && i.metadata.name == c.name)
            && ip.spec.ip == r.spec.ip
        {
            *holders.entry(r.spec.ip.unwrap()).or_default() += 1;
        }
    }
    assert!(holders.values().all(|n| *n == 1), "{holders:?}");
    // Addresses in specs of holders are held.
    let held: BTreeSet<IpAddr> = holders.keys().copied().collect();
    let mut seen = BTreeSet::new();
    for v in list::<networking::VirtualIP>(store).await {
        if let Some(a) = v.status.ip {
            assert!(
                held.contains(&a),
                "VirtualIP {} shows {a}, not held",
                v.metadata.name
            );
            assert!(seen.insert(a), "{a} shown by two holders");
        }
    }
    for g in list::<apinet::NATGateway>(store).await {
        for e in &g.spec.ips {
            if let Some(a) = e.ip {
                assert!(
                    held.contains(&a),
                    "NAT gateway {} lists {a}, not held",
                    g.metadata.name
                );
                assert!(seen.insert(a), "{a} listed by two holders");
            }
        }
    }
    for l in list::<apinet::LoadBalancer>(store).await {
        if l.spec.ty == Some(networking::LoadBalancerType::Public) {
            for e in &l.spec.ips {
                if let Some(a) = e.ip {
                    assert!(
                        held.contains(&a),
                        "LB {} lists {a}, not held",
                        l.metadata.name
                    );
                    assert!(seen.insert(a), "{a} listed by two holders");
                }
            }
        }
    }
    let mut vnis = BTreeSet::new();
    for n in list::<apinet::Network>(store).await {
        if !n.spec.id.is_empty() {
            assert!(vnis.insert(n.spec.id.clone()), "VNI {} twice", n.spec.id);
        }
    }
    // NAT sections never overlap.
    let mut sections = BTreeSet::new();
    for t in list::<apinet::NATTable>(store).await {
        for ip in &t.ips {
            for s in &ip.sections {
                for port in [s.port, s.end_port] {
                    assert!(
                        sections.insert((ip.ip, port)),
                        "NAT port {}:{port} twice",
                        ip.ip
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------ model test

#[derive(Debug, Clone)]
enum Step {
    Network(u8),
    DeleteNetwork(u8),
    Nic {
        n: u8,
        net: u8,
        vip: Option<u8>,
        app: bool,
    },
    DeleteNic(u8),
    Vip(u8),
    DeleteVip(u8),
    Nat {
        n: u8,
        net: u8,
    },
    DeleteNat(u8),
    Lb {
        n: u8,
        net: u8,
    },
    DeleteLb(u8),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..3).prop_map(Step::Network),
        (0u8..3).prop_map(Step::DeleteNetwork),
        (0u8..6, 0u8..3, proptest::option::of(0u8..4), any::<bool>())
            .prop_map(|(n, net, vip, app)| Step::Nic { n, net, vip, app }),
        (0u8..6).prop_map(Step::DeleteNic),
        (0u8..4).prop_map(Step::Vip),
        (0u8..4).prop_map(Step::DeleteVip),
        (0u8..2, 0u8..3).prop_map(|(n, net)| Step::Nat { n, net }),
        (0u8..2).prop_map(Step::DeleteNat),
        (0u8..2, 0u8..3).prop_map(|(n, net)| Step::Lb { n, net }),
        (0u8..2).prop_map(Step::DeleteLb),
        Just(Step::Restart),
    ]
}

async fn put(store: &MemoryStore, obj: DynObject) {
    let key = ObjectKey::of(&obj);
    match store.get(&key).await {
        Ok(old) => {
            let mut v = obj.value.clone();
            v["metadata"]["resourceVersion"] = old.value["metadata"]["resourceVersion"].clone();
            let o = DynObject::from_value(v, "default").unwrap();
            // Changing a once-set field is refused; that is the store's job.
            let _ = store.update(o).await;
        }
        Err(_) => {
            store.create(obj).await.unwrap();
        }
    }
}

async fn del<T: Resource>(store: &MemoryStore, name: &str) {
    let _ = store
        .delete(&ObjectKey::new(&T::INFO, "default", name))
        .await;
}

async fn apply(store: &MemoryStore, s: &Step) {
    let nref = |i: u8| LocalObjectReference::new(&format!("net{i}"));
    match s {
        Step::Network(i) => {
            let n = networking::Network::new("default", &format!("net{i}"), Default::default());
            put(store, DynObject::from_typed(&n).unwrap()).await;
        }
        Step::DeleteNetwork(i) => del::<networking::Network>(store, &format!("net{i}")).await,
        Step::Nic { n, net, vip, app } => {
            let mut nic = networking::NetworkInterface::new(
                "default",
                &format!("nic{n}"),
                networking::NetworkInterfaceSpec {
                    network_ref: nref(*net),
                    ip_families: vec![IpFamily::IPv4],
                    ips: vec![networking::IpSource {
                        value: Some(format!("192.168.0.{}", n + 1).parse().unwrap()),
                        ephemeral: None,
                    }],
                    virtual_ip: vip.map(|v| networking::VirtualIpSource {
                        virtual_ip_ref: Some(LocalObjectReference::new(&format!("vip{v}"))),
                        ephemeral: None,
                    }),
                    ..Default::default()
                },
            );
            if *app {
                nic.metadata.labels.insert("app".into(), "web".into());
            }
            put(store, DynObject::from_typed(&nic).unwrap()).await;
        }
        Step::DeleteNic(i) => del::<networking::NetworkInterface>(store, &format!("nic{i}")).await,
        Step::Vip(i) => {
            let v = networking::VirtualIP::new(
                "default",
                &format!("vip{i}"),
                networking::VirtualIpSpec {
                    ty: Some(networking::PublicType::Public),
                    ip_family: Some(IpFamily::IPv4),
                    target_ref: None,
                },
            );
            put(store, DynObject::from_typed(&v).unwrap()).await;
        }
        Step::DeleteVip(i) => del::<networking::VirtualIP>(store, &format!("vip{i}")).await,
        Step::Nat { n, net } => {
            let g = networking::NATGateway::new(
                "default",
                &format!("nat{n}"),
                networking::NatGatewaySpec {
                    ty: Some(networking::PublicType::Public),
                    ip_family: Some(IpFamily::IPv4),
                    network_ref: nref(*net),
                    ports_per_network_interface: Some(16384),
                },
            );
            put(store, DynObject::from_typed(&g).unwrap()).await;
        }
        Step::DeleteNat(i) => del::<networking::NATGateway>(store, &format!("nat{i}")).await,
        Step::Lb { n, net } => {
            let l = networking::LoadBalancer::new(
                "default",
                &format!("lb{n}"),
                networking::LoadBalancerSpec {
                    ty: Some(networking::LoadBalancerType::Public),
                    ip_families: vec![IpFamily::IPv4],
                    network_ref: nref(*net),
                    network_interface_selector: Some(
                        ironnet_core::meta::LabelSelector::parse("app=web").unwrap(),
                    ),
                    ..Default::default()
                },
            );
            put(store, DynObject::from_typed(&l).unwrap()).await;
        }
        Step::DeleteLb(i) => del::<networking::LoadBalancer>(store, &format!("lb{i}")).await,
        Step::Restart => {}
    }
}

/// Statuses agree with the store: a NIC's virtualIP is its VIP's address;
/// a VIP's address is the one its IP holds; NAT-claimed NICs have a
/// section of their gateway.
async fn check_statuses(store: &MemoryStore) {
    let vips = list::<networking::VirtualIP>(store).await;
    for nic in list::<networking::NetworkInterface>(store).await {
        if let (Some(a), Some(src)) = (nic.status.virtual_ip, &nic.spec.virtual_ip) {
            let name = &src.virtual_ip_ref.as_ref().unwrap().name;
            let v = vips.iter().find(|v| &v.metadata.name == name);
            assert_eq!(
                v.and_then(|v| v.status.ip),
                Some(a),
                "nic {} shows {a}",
                nic.metadata.name
            );
        }
    }
    let tables = list::<apinet::NATTable>(store).await;
    for nic in list::<apinet::NetworkInterface>(store).await {
        for c in &nic.spec.nat_gateways {
            let t = tables
                .iter()
                .find(|t| t.metadata.name == c.claim_ref.name)
                .unwrap();
            assert!(
                t.ips
                    .iter()
                    .flat_map(|i| &i.sections)
                    .any(|s| s.target_ref.as_ref().unwrap().uid == nic.metadata.uid),
                "claimed NIC {} has no section",
                nic.metadata.name
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_allocations_unique_and_leak_nothing(steps in proptest::collection::vec(step(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            // A small pool (6 usable addresses), so exhaustion happens.
            let cfg = Config { nat_max_ips: 2, ..cfg("10.0.0.0/29") };
            node(&store, "n1", "a").await;
            node(&store, "n2", "b").await;
            for s in &steps {
                apply(&store, s).await;
                // A restart is a fresh controller: `settle` always starts
                // from what the store holds.
                settle(&store, &cfg).await;
                check_unique(&store).await;
                check_statuses(&store).await;
            }
            // Everything the user made goes; nothing stays behind.
            for i in 0..6 { del::<networking::NetworkInterface>(&store, &format!("nic{i}")).await; }
            for i in 0..4 { del::<networking::VirtualIP>(&store, &format!("vip{i}")).await; }
            for i in 0..2 { del::<networking::NATGateway>(&store, &format!("nat{i}")).await; }
            for i in 0..2 { del::<networking::LoadBalancer>(&store, &format!("lb{i}")).await; }
            for i in 0..3 { del::<networking::Network>(&store, &format!("net{i}")).await; }
            settle(&store, &cfg).await;
            let (left, _) = store.list(&Selection::default()).await.unwrap();
            let left: Vec<String> = left
                .iter()
                .filter(|o| o.kind.info.kind != "Node")
                .map(|o| format!("{} {}", o.kind.info.kind, ObjectKey::of(o)))
                .collect();
            assert!(left.is_empty(), "left behind: {left:#?}");
        });
    }
}

// ------------------------------------------------------------ behaviours

async fn create<T: Resource>(store: &MemoryStore, obj: &T) {
    store
        .create(DynObject::from_typed(obj).unwrap())
        .await
        .unwrap();
}

fn user_network(name: &str, peers: &[&str]) -> networking::Network {
    networking::Network::new(
        "default",
        name,
        networking::NetworkSpec {
            peerings: peers
                .iter()
                .map(|p| networking::NetworkPeering {
                    name: format!("to-{p}"),
                    network_ref: networking::PeeringNetworkRef {
                        namespace: String::new(),
                        name: (*p).into(),
                    },
                    prefixes: Vec::new(),
                })
                .collect(),
            ..Default::default()
        },
    )
}

fn user_nic(
    name: &str,
    net: &str,
    ip: &str,
    labels: &[(&str, &str)],
) -> networking::NetworkInterface {
    let mut n = networking::NetworkInterface::new(
        "default",
        name,
        networking::NetworkInterfaceSpec {
            network_ref: LocalObjectReference::new(net),
            ip_families: vec![IpFamily::IPv4],
            ips: vec![networking::IpSource {
                value: Some(ip.parse().unwrap()),
                ephemeral: None,
            }],
            ..Default::default()
        },
    );
    for (k, v) in labels {
        n.metadata.labels.insert((*k).into(), (*v).into());
    }
    n
}

async fn internal_of<T: Resource>(store: &MemoryStore, user_uid: &str) -> T {
    get(store, "ironnet-system", user_uid).await
}

#[tokio::test]
async fn nat_gateway_grows_to_its_limit_and_reports_exhaustion() {
    let store = MemoryStore::new();
    // 3 sections per address (16384 ports), at most 2 addresses: 6 NICs.
    let cfg = Config {
        nat_max_ips: 2,
        ..cfg("10.0.0.0/28")
    };
    node(&store, "n1", "a").await;
    create(&store, &user_network("net", &[])).await;
    let gw = networking::NATGateway::new(
        "default",
        "gw",
        networking::NatGatewaySpec {
            ty: Some(networking::PublicType::Public),
            ip_family: Some(IpFamily::IPv4),
            network_ref: LocalObjectReference::new("net"),
            ports_per_network_interface: Some(16384),
        },
    );
    create(&store, &gw).await;
    for i in 0..8 {
        create(
            &store,
            &user_nic(
                &format!("nic{i}"),
                "net",
                &format!("192.168.1.{}", i + 1),
                &[],
            ),
        )
        .await;
    }
    settle(&store, &cfg).await;
    let gw: networking::NATGateway = get(&store, "default", "gw").await;
    assert_eq!(gw.status.ips.len(), 2, "grew to the limit: {:?}", gw.status);
    let internal: apinet::NATGateway = internal_of(&store, &gw.metadata.uid).await;
    assert_eq!(internal.status.requested_nat_ips, Some(8));
    assert_eq!(internal.status.used_nat_ips, Some(6));
    let table: apinet::NATTable = internal_of(&store, &gw.metadata.uid).await;
    let sections: Vec<_> = table
        .ips
        .iter()
        .flat_map(|i| i.sections.iter().map(move |s| (i.ip, s.port, s.end_port)))
        .collect();
    assert_eq!(sections.len(), 6);
    assert!(
        sections
            .iter()
            .all(|(_, p, e)| (e - p + 1) == 16384 && (p - 1024) % 16384 == 0)
    );
    let claimed = list::<apinet::NetworkInterface>(&store)
        .await
        .into_iter()
        .filter(|n| !n.spec.nat_gateways.is_empty())
        .count();
    assert_eq!(claimed, 6);
    let events = list::<Event>(&store).await;
    let ev = events
        .iter()
        .find(|e| e.reason == "NATPortsExhausted")
        .expect("exhaustion event");
    assert!(ev.note.starts_with("2 of 8 interfaces"), "{}", ev.note);

    // An interface that gets a public address leaves NAT; a waiting one
    // takes its section.
    create(
        &store,
        &networking::VirtualIP::new(
            "default",
            "vip",
            networking::VirtualIpSpec {
                ty: Some(networking::PublicType::Public),
                ip_family: Some(IpFamily::IPv4),
                target_ref: None,
            },
        ),
    )
    .await;
    let mut nic0: networking::NetworkInterface = get(&store, "default", "nic0").await;
    nic0.spec.virtual_ip = Some(networking::VirtualIpSource {
        virtual_ip_ref: Some(LocalObjectReference::new("vip")),
        ephemeral: None,
    });
    store
        .update(DynObject::from_typed(&nic0).unwrap())
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let internal: apinet::NATGateway = internal_of(&store, &gw.metadata.uid).await;
    assert_eq!(internal.status.requested_nat_ips, Some(7));
    assert_eq!(internal.status.used_nat_ips, Some(6));
    let nic0: apinet::NetworkInterface = internal_of(&store, &nic0.metadata.uid).await;
    assert!(nic0.spec.nat_gateways.is_empty());
    assert_eq!(nic0.spec.public_ips.len(), 1);
    check_unique(&store).await;
}

#[tokio::test]
async fn load_balancer_instances_spread_over_zones_and_follow_nodes() {
    let store = MemoryStore::new();
    let cfg = cfg("10.0.0.0/24");
    node(&store, "n1", "a").await;
    node(&store, "n2", "a").await;
    node(&store, "n3", "b").await;
    create(&store, &user_network("net", &[])).await;
    create(
        &store,
        &user_nic("web", "net", "192.168.0.10", &[("app", "web")]),
    )
    .await;
    create(
        &store,
        &user_nic("db", "net", "192.168.0.11", &[("app", "db")]),
    )
    .await;
    let lb = networking::LoadBalancer::new(
        "default",
        "lb",
        networking::LoadBalancerSpec {
            ty: Some(networking::LoadBalancerType::Public),
            ip_families: vec![IpFamily::IPv4],
            network_ref: LocalObjectReference::new("net"),
            network_interface_selector: Some(
                ironnet_core::meta::LabelSelector::parse("app=web").unwrap(),
            ),
            ports: vec![ironnet_core::api::common::LoadBalancerPort {
                protocol: None,
                port: 80,
                end_port: None,
            }],
            ..Default::default()
        },
    );
    create(&store, &lb).await;
    settle(&store, &cfg).await;
    let lb: networking::LoadBalancer = get(&store, "default", "lb").await;
    let zones = |insts: &[apinet::Instance]| -> Vec<String> {
        let mut z: Vec<String> = insts
            .iter()
            .map(|i| {
                let n = &i.spec.node_ref.as_ref().expect("scheduled").name;
                if n == "n3" {
                    "b".into()
                } else if n == "n4" {
                    "c".into()
                } else {
                    "a".into()
                }
            })
            .collect();
        z.sort();
        z
    };
    let insts = list::<apinet::Instance>(&store).await;
    assert_eq!(zones(&insts), ["a", "b"], "one instance per zone");
    assert!(
        insts
            .iter()
            .all(|i| i.spec.ips == lb.status.ips && i.spec.load_balancer_ports.len() == 1)
    );
    // Routing: the selected interface only, with its node.
    let routing: apinet::LoadBalancerRouting = internal_of(&store, &lb.metadata.uid).await;
    assert_eq!(routing.destinations.len(), 1);
    assert_eq!(
        routing.destinations[0].ip,
        "192.168.0.10".parse::<IpAddr>().unwrap()
    );
    assert!(
        routing.destinations[0]
            .target_ref
            .as_ref()
            .is_some_and(|t| !t.node_ref.name.is_empty())
    );
    let user_routing: networking::LoadBalancerRouting = get(&store, "default", "lb").await;
    assert_eq!(user_routing.destinations[0].name, "web");

    // The zone-b node goes: its instance goes, none replaces it (no other
    // zone); a node in a new zone gets one.
    store
        .delete(&ObjectKey::new(&apinet::Node::INFO, "", "n3"))
        .await
        .unwrap();
    settle(&store, &cfg).await;
    assert_eq!(zones(&list::<apinet::Instance>(&store).await), ["a"]);
    node(&store, "n4", "c").await;
    settle(&store, &cfg).await;
    assert_eq!(zones(&list::<apinet::Instance>(&store).await), ["a", "c"]);
    // A new selected interface joins the routing.
    create(
        &store,
        &user_nic("web2", "net", "192.168.0.12", &[("app", "web")]),
    )
    .await;
    settle(&store, &cfg).await;
    let routing: apinet::LoadBalancerRouting = internal_of(&store, &lb.metadata.uid).await;
    assert_eq!(routing.destinations.len(), 2);
}

#[tokio::test]
async fn peering_binds_when_both_sides_name_each_other_and_releases() {
    let store = MemoryStore::new();
    let cfg = cfg("10.0.0.0/24");
    create(&store, &user_network("a", &["b"])).await;
    create(&store, &user_network("b", &[])).await;
    settle(&store, &cfg).await;
    let a: networking::Network = get(&store, "default", "a").await;
    assert_eq!(a.status.peerings[0].phase, PeeringPhase::Pending);
    assert!(a.spec.incoming_peerings.is_empty());
    let events = list::<Event>(&store).await;
    assert!(
        events
            .iter()
            .any(|e| e.reason == "PeeringPending" && e.note.contains("does not name this network"))
    );

    let mut b: networking::Network = get(&store, "default", "b").await;
    b.spec.peerings = user_network("b", &["a"]).spec.peerings;
    store
        .update(DynObject::from_typed(&b).unwrap())
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let a: networking::Network = get(&store, "default", "a").await;
    let b: networking::Network = get(&store, "default", "b").await;
    assert_eq!(a.status.peerings[0].phase, PeeringPhase::Bound);
    assert_eq!(b.status.peerings[0].phase, PeeringPhase::Bound);
    assert_eq!(a.spec.incoming_peerings[0].uid, b.metadata.uid);
    let ia: apinet::Network = internal_of(&store, &a.metadata.uid).await;
    let ib: apinet::Network = internal_of(&store, &b.metadata.uid).await;
    assert_eq!(ia.spec.peerings[0].id, ib.spec.id);
    assert_eq!(ib.spec.peerings[0].id, ia.spec.id);

    // b goes: a's peering is released.
    store
        .delete(&ObjectKey::new(&networking::Network::INFO, "default", "b"))
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let a: networking::Network = get(&store, "default", "a").await;
    assert_eq!(a.status.peerings[0].phase, PeeringPhase::Pending);
    assert!(a.spec.incoming_peerings.is_empty());
    let ia: apinet::Network = internal_of(&store, &a.metadata.uid).await;
    assert!(ia.spec.peerings.is_empty());
    // b's VNI went with it.
    assert_eq!(list::<apinet::NetworkID>(&store).await.len(), 1);
}

#[tokio::test]
async fn machines_own_their_ephemeral_interfaces_and_adopt_none() {
    use ironnet_core::api::compute::{
        EphemeralNetworkInterface, Machine, MachineNetworkInterface, MachineSpec,
        NetworkInterfaceTemplate,
    };
    let store = MemoryStore::new();
    let cfg = cfg("10.0.0.0/24");
    node(&store, "n1", "a").await;
    node(&store, "n2", "a").await;
    create(&store, &user_network("net", &[])).await;
    // Someone else's interface with the name the machine would use.
    create(&store, &user_nic("m-other", "net", "192.168.0.9", &[])).await;
    let eph = |name: &str, ip: &str| MachineNetworkInterface {
        name: name.into(),
        network_interface_ref: None,
        ephemeral: Some(EphemeralNetworkInterface {
            network_interface_template: NetworkInterfaceTemplate {
                metadata: Default::default(),
                spec: user_nic("x", "net", ip, &[]).spec,
            },
        }),
    };
    let m = Machine::new(
        "default",
        "m",
        MachineSpec {
            machine_pool_ref: Some(LocalObjectReference::new("n2")),
            network_interfaces: vec![eph("primary", "192.168.0.1"), eph("other", "192.168.0.2")],
            other: Default::default(),
        },
    );
    create(&store, &m).await;
    settle(&store, &cfg).await;
    let m: Machine = get(&store, "default", "m").await;
    let primary: networking::NetworkInterface = get(&store, "default", "m-primary").await;
    assert_eq!(primary.metadata.controller().unwrap().uid, m.metadata.uid);
    assert_eq!(
        primary.spec.machine_ref.as_ref().unwrap().uid,
        m.metadata.uid
    );
    assert_eq!(primary.status.state, Some(State::Available));
    let internal: apinet::NetworkInterface = internal_of(&store, &primary.metadata.uid).await;
    assert_eq!(internal.spec.node_ref.name, "n2", "on the machine's pool");
    let other: networking::NetworkInterface = get(&store, "default", "m-other").await;
    assert!(other.metadata.owner_references.is_empty(), "not adopted");
    assert!(other.spec.machine_ref.is_none());
    assert!(
        list::<Event>(&store)
            .await
            .iter()
            .any(|e| e.reason == "NetworkInterfaceNotManaged")
    );

    // Dropped from the machine: deleted; the machine goes: so do the rest.
    let mut m2 = m.clone();
    m2.spec.network_interfaces.truncate(1);
    m2.spec.network_interfaces[0] = eph("second", "192.168.0.3");
    store
        .update(DynObject::from_typed(&m2).unwrap())
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let names: BTreeSet<String> = list::<networking::NetworkInterface>(&store)
        .await
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["m-other".to_owned(), "m-second".to_owned()])
    );
    store
        .delete(&ObjectKey::new(&Machine::INFO, "default", "m"))
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let names: BTreeSet<String> = list::<networking::NetworkInterface>(&store)
        .await
        .into_iter()
        .map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, BTreeSet::from(["m-other".to_owned()]));
    assert_eq!(list::<apinet::NetworkInterface>(&store).await.len(), 1);
}

#[tokio::test]
async fn policies_compile_to_rules_and_follow_selected_objects() {
    let store = MemoryStore::new();
    let cfg = cfg("10.0.0.0/24");
    node(&store, "n1", "a").await;
    create(&store, &user_network("net", &[])).await;
    create(
        &store,
        &user_nic("db", "net", "192.168.0.5", &[("app", "db")]),
    )
    .await;
    create(
        &store,
        &user_nic("web", "net", "192.168.0.6", &[("app", "web")]),
    )
    .await;
    let yaml = "apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkPolicy
metadata: {name: p, namespace: default}
spec:
  networkRef: {name: net}
  networkInterfaceSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16}
    - objectSelector: {kind: NetworkInterface, matchLabels: {app: web}}
    ports:
    - {protocol: TCP, port: 5432}
";
    store
        .create(parse_manifests(yaml, "default").unwrap().remove(0))
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let p: networking::NetworkPolicy = get(&store, "default", "p").await;
    let rule: apinet::NetworkPolicyRule = internal_of(&store, &p.metadata.uid).await;
    assert_eq!(rule.targets.len(), 1);
    assert_eq!(rule.targets[0].ip, "192.168.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(rule.ingress_rule.len(), 1);
    assert_eq!(rule.ingress_rule[0].ip_block.len(), 1);
    assert_eq!(rule.ingress_rule[0].ips.len(), 1);
    assert_eq!(
        rule.ingress_rule[0].ips[0].prefix,
        "192.168.0.6/32".parse().unwrap()
    );
    assert_eq!(
        rule.ingress_rule[0].network_policy_ports[0].port,
        Some(5432)
    );
    assert_eq!(p.status.conditions[0].status, "True");

    // The web interface stops matching: the rule follows.
    let mut web: networking::NetworkInterface = get(&store, "default", "web").await;
    web.metadata.labels.insert("app".into(), "other".into());
    store
        .update(DynObject::from_typed(&web).unwrap())
        .await
        .unwrap();
    settle(&store, &cfg).await;
    let rule: apinet::NetworkPolicyRule = internal_of(&store, &p.metadata.uid).await;
    assert!(rule.ingress_rule[0].ips.is_empty());
}
