//! The gRPC API over a real loopback connection: round trips and every
//! error path with dpservice's codes and messages.
#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use ironnet_dp::proto::dpd_kironcore_client::DpdKironcoreClient;
use ironnet_dp::proto::{self, IpVersion};
use ironnet_dp::service::DpService;
use ironnet_dp::{DpConfig, DpState, Published, Snapshot};
use tonic::Code;
use tonic::transport::Channel;

struct Dp {
    client: DpdKironcoreClient<Channel>,
    published: Published,
    _server: tokio::task::JoinHandle<()>,
}

async fn start() -> Dp {
    let config = DpConfig::tap("fc00:1::1".parse().unwrap(), 4);
    let published = Published::new(Snapshot::empty());
    let svc = DpService::new(DpState::new(config, 7), published.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let client = DpdKironcoreClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Dp {
        client,
        published,
        _server: server,
    }
}

fn ip(s: &str) -> Option<proto::IpAddress> {
    let ipver = if s.contains(':') {
        IpVersion::Ipv6
    } else {
        IpVersion::Ipv4
    };
    Some(proto::IpAddress {
        ipver: ipver as i32,
        address: s.as_bytes().to_vec(),
    })
}

fn prefix(s: &str, len: u32) -> Option<proto::Prefix> {
    Some(proto::Prefix {
        ip: ip(s),
        length: len,
        underlay_route: Vec::new(),
    })
}

fn iface(id: &str, device: &str, v4: &str, v6: &str) -> proto::CreateInterfaceRequest {
    proto::CreateInterfaceRequest {
        interface_id: id.as_bytes().to_vec(),
        vni: 100,
        ipv4_config: Some(proto::IpConfig {
            primary_address: v4.as_bytes().to_vec(),
        }),
        ipv6_config: Some(proto::IpConfig {
            primary_address: v6.as_bytes().to_vec(),
        }),
        device_name: device.to_owned(),
        ..Default::default()
    }
}

fn code(s: &Option<proto::Status>) -> u32 {
    s.as_ref().unwrap().code
}

fn route(vni: u32, p: &str, len: u32, via: &str) -> proto::CreateRouteRequest {
    proto::CreateRouteRequest {
        vni,
        route: Some(proto::Route {
            prefix: prefix(p, len),
            nexthop_vni: vni,
            nexthop_address: ip(via),
            weight: 100,
        }),
    }
}

#[tokio::test]
async fn nothing_works_before_initialize() {
    let mut dp = start().await;
    let e = dp
        .client
        .check_initialized(proto::CheckInitializedRequest {})
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Aborted, "not initialized"));
    let e = dp
        .client
        .create_interface(iface("vm1", "net_tap2", "10.0.0.1", "::"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    let uuid = dp
        .client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap()
        .into_inner()
        .uuid;
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid, uuid.to_uppercase());
    let again = dp
        .client
        .check_initialized(proto::CheckInitializedRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&again.status), again.uuid), (0, uuid));
}

#[tokio::test]
async fn interfaces_round_trip_with_dpservice_errors() {
    let mut dp = start().await;
    dp.client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    let c = &mut dp.client;

    let created = c
        .create_interface(iface("vm1", "net_tap2", "172.32.10.5", "2001::10"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&created.status), 0);
    assert_eq!(created.vf.unwrap().name, "dtapvf_0");
    let underlay: Ipv6Addr = String::from_utf8(created.underlay_route)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(underlay.segments()[..4], [0xfc00, 1, 0, 0]);
    assert_eq!(underlay.octets()[8], 0xd0, "dpservice underlay format");

    // Errors, each with dpservice's code, none changing anything.
    let generation = dp.published.load().generation;
    for (req, want) in [
        (iface("vm9", "net_tap2", "172.32.10.9", "::"), 202), // device in use
        (iface("vm1", "net_tap3", "172.32.10.9", "::"), 402), // id in use
        (iface("vm2", "net_tap3", "172.32.10.5", "::"), 301), // IP in use in the VNI
        (iface("vm2", "net_tap3", "0.0.0.0", "2001::10"), 301),
        (iface("vm2", "net_tap9", "172.32.10.6", "::"), 201), // unknown device
        (iface("vm2", "dtap0", "172.32.10.6", "::"), 201),    // a PF is no VF
    ] {
        let r = c.create_interface(req).await.unwrap().into_inner();
        assert_eq!(code(&r.status), want);
        assert!(r.underlay_route.is_empty());
    }
    assert_eq!(
        dp.published.load().generation,
        generation,
        "a rejected request changed state"
    );

    // Malformed requests: INVALID_ARGUMENT with dpservice's messages.
    let mut bad_pref = iface("vm2", "net_tap3", "172.32.10.6", "::");
    bad_pref.preferred_underlay_route = b"fc00:1::d000:0:0:1".to_vec();
    let mut no_v6 = iface("vm2", "net_tap3", "172.32.10.6", "::");
    no_v6.ipv6_config = None;
    for (req, msg) in [
        (
            iface("vm 2", "net_tap3", "172.32.10.6", "::"),
            "Invalid interface_id",
        ),
        (
            iface("", "net_tap3", "172.32.10.6", "::"),
            "Invalid interface_id",
        ),
        (
            iface("vm2", "net_tap3", "172.32.10.300", "::"),
            "Invalid ipv4_config.primary_address",
        ),
        (
            iface("vm2", "net_tap3", "0.0.0.0", "::"),
            "Invalid ipv4_config.primary_address and ipv6_config.primary_address combination",
        ),
        (iface("vm2", "", "172.32.10.6", "::"), "Invalid device_name"),
        (bad_pref, "Invalid preferred_underlay_route"),
        (no_v6, "Invalid ipv6_config.primary_address"),
    ] {
        let e = c.create_interface(req).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, msg));
    }

    // A preferred underlay (external flag) is taken as is, once.
    let mut pref = iface("vm2", "dtapvf_1", "172.32.10.6", "::");
    pref.preferred_underlay_route = b"fc00:1::8000:0:1".to_vec();
    let r = c.create_interface(pref).await.unwrap().into_inner();
    assert_eq!(
        (code(&r.status), r.underlay_route),
        (0, b"fc00:1::8000:0:1".to_vec())
    );
    let mut pref = iface("vm3", "net_tap4", "172.32.10.7", "::");
    pref.preferred_underlay_route = b"fc00:1::8000:0:1".to_vec();
    let r = c.create_interface(pref).await.unwrap().into_inner();
    assert_eq!(code(&r.status), 401);

    let list = c
        .list_interfaces(proto::ListInterfacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .interfaces;
    let ids: Vec<_> = list
        .iter()
        .map(|i| String::from_utf8_lossy(&i.id).into_owned())
        .collect();
    assert_eq!(ids, ["vm1", "vm2"]);
    assert_eq!(list[1].primary_ipv6, b"::");
    let got = c
        .get_interface(proto::GetInterfaceRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let i = got.interface.unwrap();
    assert_eq!(
        (i.vni, i.primary_ipv4, i.pci_name.as_str()),
        (100, b"172.32.10.5".to_vec(), "dtapvf_0")
    );
    let missing = c
        .get_interface(proto::GetInterfaceRequest {
            interface_id: b"nope".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(missing.status.unwrap().message, "NOT_FOUND");

    // Delete: gone, and again is 201.
    let del = |id: &str| proto::DeleteInterfaceRequest {
        interface_id: id.as_bytes().to_vec(),
    };
    assert_eq!(
        code(
            &c.delete_interface(del("vm2"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    assert_eq!(
        code(
            &c.delete_interface(del("vm2"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        201
    );
    // The address and the device are free again.
    let r = c
        .create_interface(iface("vm2", "net_tap3", "172.32.10.6", "::"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
}

#[tokio::test]
async fn prefixes_routes_and_vnis() {
    let mut dp = start().await;
    dp.client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    let c = &mut dp.client;
    c.create_interface(iface("vm1", "net_tap2", "172.32.10.5", "2001::10"))
        .await
        .unwrap();

    // Alias prefixes.
    let create = |id: &str, p: &str, len| proto::CreatePrefixRequest {
        interface_id: id.as_bytes().to_vec(),
        prefix: prefix(p, len),
        preferred_underlay_route: Vec::new(),
    };
    let r = c
        .create_prefix(create("vm1", "10.20.0.9", 24))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    assert!(!r.underlay_route.is_empty());
    let r = c
        .create_prefix(create("vm1", "10.20.0.0", 24))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 301, "masked duplicate");
    let r = c
        .create_prefix(create("vmX", "10.30.0.0", 24))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 205);
    let e = c
        .create_prefix(create("vm1", "10.30.0.0", 33))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid prefix.length");
    let list = c
        .list_prefixes(proto::ListPrefixesRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .prefixes;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].ip.as_ref().unwrap().address.as_slice(),
            list[0].length
        ),
        (&b"10.20.0.0"[..], 24)
    );
    let delete = |p: &str, len| proto::DeletePrefixRequest {
        interface_id: b"vm1".to_vec(),
        prefix: prefix(p, len),
    };
    assert_eq!(
        code(
            &c.delete_prefix(delete("10.20.0.0", 24))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    assert_eq!(
        code(
            &c.delete_prefix(delete("10.20.0.0", 24))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        302
    );

    // Routes.
    let ok = c
        .create_route(route(100, "0.0.0.0", 0, "fc00:2::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&ok.status), 0);
    let ok6 = c
        .create_route(route(100, "2002::", 64, "fc00:2::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&ok6.status), 0);
    for (req, want) in [
        (route(100, "0.0.0.0", 0, "fc00:2::2"), 301),
        (route(100, "10.0.0.0", 8, "192.168.1.1"), 204),
        (route(999, "10.0.0.0", 8, "fc00:2::1"), 206),
    ] {
        assert_eq!(
            code(&c.create_route(req).await.unwrap().into_inner().status),
            want
        );
    }
    let listed = c
        .list_routes(proto::ListRoutesRequest { vni: 100 })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(listed.len(), 2, "IPv4 and IPv6 routes are listed");
    assert_eq!(
        listed[0].nexthop_address.as_ref().unwrap().address,
        b"fc00:2::1"
    );
    let all = c
        .list_routes(proto::ListRoutesRequest { vni: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.routes.len(), 2);
    let unknown = c
        .list_routes(proto::ListRoutesRequest { vni: 5 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&unknown.status), 206);
    let del = |p: &str, len| proto::DeleteRouteRequest {
        vni: 100,
        route: Some(proto::Route {
            prefix: prefix(p, len),
            ..Default::default()
        }),
    };
    assert_eq!(
        code(
            &c.delete_route(del("172.32.10.5", 32))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        304
    );
    assert_eq!(
        code(
            &c.delete_route(del("2002::", 64))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    assert_eq!(
        code(
            &c.delete_route(del("2002::", 64))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        302
    );

    // VNIs.
    let in_use = |vni, ty: proto::VniType| proto::CheckVniInUseRequest {
        vni,
        r#type: ty as i32,
    };
    let r = c
        .check_vni_in_use(in_use(100, proto::VniType::VniIpv4))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&r.status), r.in_use), (0, true));
    let r = c
        .check_vni_in_use(in_use(200, proto::VniType::VniIpv6))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&r.status), r.in_use), (0, false));
    let r = c
        .check_vni_in_use(in_use(100, proto::VniType::VniBoth))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 203);
    let reset = |ty: proto::VniType| proto::ResetVniRequest {
        vni: 100,
        r#type: ty as i32,
    };
    assert_eq!(
        code(
            &c.reset_vni(reset(proto::VniType::VniIpv4))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        203
    );
    assert_eq!(
        code(
            &c.reset_vni(reset(proto::VniType::VniBoth))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    let after = c
        .list_routes(proto::ListRoutesRequest { vni: 100 })
        .await
        .unwrap()
        .into_inner();
    assert!(after.routes.is_empty(), "ResetVni drops external routes");
    // The interface route survived the reset.
    let snap = dp.published.load();
    let vni = ironnet_overlay::route::Vni::new(100).unwrap();
    assert!(
        snap.routes
            .lookup(vni, "172.32.10.5".parse().unwrap())
            .is_some()
    );

    // Deleting the interface releases the VNI and its prefixes.
    c.create_prefix(create("vm1", "10.40.0.0", 16))
        .await
        .unwrap();
    c.delete_interface(proto::DeleteInterfaceRequest {
        interface_id: b"vm1".to_vec(),
    })
    .await
    .unwrap();
    let r = c
        .check_vni_in_use(in_use(100, proto::VniType::VniIpv4))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.in_use);
    assert!(
        dp.published.load().vnf.is_empty(),
        "underlay table still holds entries"
    );
}

#[tokio::test]
async fn capture_is_unimplemented_and_version_is_checked() {
    let mut dp = start().await;
    dp.client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    let e = dp
        .client
        .capture_start(proto::CaptureStartRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = dp
        .client
        .get_version(proto::GetVersionRequest {
            client_protocol: "1".into(),
            client_name: String::new(),
            client_version: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid client_name");
    let v = dp
        .client
        .get_version(proto::GetVersionRequest {
            client_protocol: "1".into(),
            client_name: "test".into(),
            client_version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.service_version.starts_with("ironnet-dp-"));
}

fn fw_rule(id: &str, action: proto::FirewallAction, src_len: u32) -> proto::FirewallRule {
    proto::FirewallRule {
        id: id.as_bytes().to_vec(),
        direction: proto::TrafficDirection::Ingress as i32,
        action: action as i32,
        priority: 100,
        source_prefix: prefix("10.0.0.0", src_len),
        destination_prefix: prefix("0.0.0.0", 0),
        protocol_filter: Some(proto::ProtocolFilter {
            filter: Some(proto::protocol_filter::Filter::Tcp(proto::TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: 80,
                dst_port_upper: 443,
            })),
        }),
    }
}

#[tokio::test]
async fn firewall_rules_round_trip_with_dpservice_errors() {
    let mut dp = start().await;
    dp.client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    let c = &mut dp.client;
    c.create_interface(iface("vm1", "net_tap2", "10.0.0.1", "::"))
        .await
        .unwrap();
    let create = |rule: proto::FirewallRule, id: &str| proto::CreateFirewallRuleRequest {
        interface_id: id.as_bytes().to_vec(),
        rule: Some(rule),
    };
    let r = c
        .create_firewall_rule(create(
            fw_rule("web", proto::FirewallAction::Accept, 8),
            "vm1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&r.status), r.rule_id.as_slice()), (0, &b"web"[..]));
    // Drop rules are taken (and enforced), unlike dpservice's 441.
    let r = c
        .create_firewall_rule(create(
            fw_rule("deny", proto::FirewallAction::Drop, 0),
            "vm1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let generation = dp.published.load().generation;
    let r = c
        .create_firewall_rule(create(
            fw_rule("web", proto::FirewallAction::Accept, 8),
            "vm1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 202, "same rule id");
    let r = c
        .create_firewall_rule(create(
            fw_rule("x", proto::FirewallAction::Accept, 8),
            "vm9",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 205, "unknown interface");
    assert_eq!(
        dp.published.load().generation,
        generation,
        "rejections change nothing"
    );

    let got = c
        .get_firewall_rule(proto::GetFirewallRuleRequest {
            interface_id: b"vm1".to_vec(),
            rule_id: b"web".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&got.status), 0);
    assert_eq!(
        got.rule,
        Some(fw_rule("web", proto::FirewallAction::Accept, 8))
    );
    let list = c
        .list_firewall_rules(proto::ListFirewallRulesRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&[u8]> = list.rules.iter().map(|r| r.id.as_slice()).collect();
    assert_eq!(ids, [&b"web"[..], &b"deny"[..]], "creation order");
    let del = |id: &str| proto::DeleteFirewallRuleRequest {
        interface_id: b"vm1".to_vec(),
        rule_id: id.as_bytes().to_vec(),
    };
    assert_eq!(
        code(
            &c.delete_firewall_rule(del("web"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    assert_eq!(
        code(
            &c.delete_firewall_rule(del("web"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        201
    );

    // Validation, before anything changes.
    let mut bad_len = fw_rule("a", proto::FirewallAction::Accept, 33);
    let e = c
        .create_firewall_rule(create(bad_len.clone(), "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid source_prefix.length");
    bad_len.source_prefix = prefix("2001:db8::", 129);
    let e = c
        .create_firewall_rule(create(bad_len, "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid ip6 source_prefix.length");
    let mut bad = fw_rule("a", proto::FirewallAction::Accept, 8);
    bad.direction = 7;
    let e = c
        .create_firewall_rule(create(bad, "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid direction");
    let mut bad = fw_rule("a", proto::FirewallAction::Accept, 8);
    bad.priority = 70000;
    let e = c
        .create_firewall_rule(create(bad, "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid priority");
    let mut bad = fw_rule("a", proto::FirewallAction::Accept, 8);
    bad.protocol_filter = Some(proto::ProtocolFilter {
        filter: Some(proto::protocol_filter::Filter::Udp(proto::UdpFilter {
            src_port_lower: 100,
            src_port_upper: 99,
            dst_port_lower: -1,
            dst_port_upper: -1,
        })),
    });
    let e = c
        .create_firewall_rule(create(bad, "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid udp.src_port range");
    let mut bad = fw_rule("a", proto::FirewallAction::Accept, 8);
    bad.protocol_filter = Some(proto::ProtocolFilter {
        filter: Some(proto::protocol_filter::Filter::Icmp(proto::IcmpFilter {
            icmp_type: 256,
            icmp_code: -1,
        })),
    });
    let e = c
        .create_firewall_rule(create(bad, "vm1"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid icmp.icmp_type");

    // Deleting the interface removes its rules with it.
    c.delete_interface(proto::DeleteInterfaceRequest {
        interface_id: b"vm1".to_vec(),
    })
    .await
    .unwrap();
    c.create_interface(iface("vm1", "net_tap2", "10.0.0.1", "::"))
        .await
        .unwrap();
    let list = c
        .list_firewall_rules(proto::ListFirewallRulesRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.rules.is_empty());
}

fn nat_req(id: &str, nat: &str, min: u32, max: u32) -> proto::CreateNatRequest {
    proto::CreateNatRequest {
        interface_id: id.as_bytes().to_vec(),
        nat_ip: ip(nat),
        min_port: min,
        max_port: max,
        preferred_underlay_route: Vec::new(),
    }
}

fn neigh_req(nat: &str, min: u32, max: u32, underlay: &str) -> proto::CreateNeighborNatRequest {
    proto::CreateNeighborNatRequest {
        nat_ip: ip(nat),
        vni: 100,
        min_port: min,
        max_port: max,
        underlay_route: underlay.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn vip_and_nat_round_trip_with_dpservice_errors() {
    let mut dp = start().await;
    let c = &mut dp.client;
    c.initialize(proto::InitializeRequest {}).await.unwrap();
    c.create_interface(iface("vm1", "net_tap2", "10.0.0.1", "fd00::1"))
        .await
        .unwrap();
    c.create_interface(iface("vm2", "net_tap3", "10.0.0.2", "fd00::2"))
        .await
        .unwrap();
    c.create_interface(iface("v6only", "net_tap4", "0.0.0.0", "fd00::3"))
        .await
        .unwrap();
    let vip = |id: &str, addr: &str| proto::CreateVipRequest {
        interface_id: id.as_bytes().to_vec(),
        vip_ip: ip(addr),
        preferred_underlay_route: Vec::new(),
    };
    // VIP: create, duplicate (343), same address elsewhere (323), IPv6
    // (204), unknown interface (205), interface without IPv4 (204).
    let r = c
        .create_vip(vip("vm1", "45.0.0.1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let vip_underlay: Ipv6Addr = std::str::from_utf8(&r.underlay_route)
        .unwrap()
        .parse()
        .unwrap();
    let before = dp.published.load().generation;
    for (req, want) in [
        (vip("vm1", "45.0.0.9"), 343),
        (vip("vm2", "45.0.0.1"), 323),
        (vip("vm2", "2001:db8::1"), 204),
        (vip("nope", "45.0.0.2"), 205),
        (vip("v6only", "45.0.0.2"), 204),
    ] {
        let r = c.create_vip(req).await.unwrap().into_inner();
        assert_eq!(code(&r.status), want);
        assert!(r.underlay_route.is_empty());
    }
    assert_eq!(
        dp.published.load().generation,
        before,
        "rejected calls change nothing"
    );
    let e = c.create_vip(vip("vm2", "300.0.0.1")).await.unwrap_err();
    assert_eq!(e.message(), "Invalid vip_ip");
    let g = c
        .get_vip(proto::GetVipRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.vip_ip, ip("45.0.0.1"));
    assert_eq!(g.underlay_route, vip_underlay.to_string().into_bytes());
    let g = c
        .get_vip(proto::GetVipRequest {
            interface_id: b"vm2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&g.status), 341);
    // NAT: the VIP's address is taken (323); a shared NAT IP is fine.
    let r = c
        .create_nat(nat_req("vm2", "45.0.0.1", 1000, 2000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 323);
    let r = c
        .create_nat(nat_req("vm2", "45.0.0.5", 1000, 2000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let r = c
        .create_nat(nat_req("vm1", "45.0.0.5", 2000, 3000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let r = c
        .create_nat(nat_req("vm1", "45.0.0.5", 3000, 4000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 343);
    for (req, msg) in [
        (nat_req("vm2", "45.0.0.5", 70000, 70001), "Invalid min_port"),
        (nat_req("vm2", "45.0.0.5", 1, 70000), "Invalid max_port"),
        (nat_req("vm2", "45.0.0.5", 5, 5), "Invalid port range"),
    ] {
        assert_eq!(c.create_nat(req).await.unwrap_err().message(), msg);
    }
    let g = c
        .get_nat(proto::GetNatRequest {
            interface_id: b"vm2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (g.nat_ip, g.min_port, g.max_port),
        (ip("45.0.0.5"), 1000, 2000)
    );
    let all = |addr: &str| proto::ListLocalNatsRequest { nat_ip: ip(addr) };
    let l = c
        .list_local_nats(all("0.0.0.0"))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = l
        .nat_entries
        .iter()
        .map(|e| (e.nat_ip.clone(), e.min_port, e.actual_nat_ip.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (ip("10.0.0.1"), 2000, ip("45.0.0.5")),
            (ip("10.0.0.2"), 1000, ip("45.0.0.5"))
        ]
    );
    let l = c
        .list_local_nats(all("45.9.9.9"))
        .await
        .unwrap()
        .into_inner();
    assert!(l.nat_entries.is_empty());
    let l = c
        .list_local_nats(all("2001:db8::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&l.status), 204);
    // Neighbour NAT: overlap on the same NAT IP (202), exact delete.
    let n = c
        .create_neighbor_nat(neigh_req("45.0.0.5", 4000, 5000, "fc00:2::9"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&n.status), 0);
    let n = c
        .create_neighbor_nat(neigh_req("45.0.0.5", 4999, 6000, "fc00:2::9"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&n.status), 202);
    let n = c
        .create_neighbor_nat(neigh_req("45.0.0.1", 1, 2, "fc00:2::9"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&n.status), 323, "a VIP is not a NAT IP");
    let e = c
        .create_neighbor_nat(neigh_req("45.0.0.5", 6000, 7000, "not-an-ip"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid underlay_route");
    let l = c
        .list_neighbor_nats(proto::ListNeighborNatsRequest {
            nat_ip: ip("45.0.0.5"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.nat_entries.len(), 1);
    assert_eq!(l.nat_entries[0].underlay_route, b"fc00:2::9".to_vec());
    let del = |min, max| proto::DeleteNeighborNatRequest {
        nat_ip: ip("45.0.0.5"),
        vni: 100,
        min_port: min,
        max_port: max,
    };
    let d = c
        .delete_neighbor_nat(del(4000, 4500))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 201);
    let d = c
        .delete_neighbor_nat(del(4000, 5000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 0);
    // Deleting an interface removes its VIP and NAT: the addresses are
    // free again and the underlay address is gone from the table.
    c.delete_interface(proto::DeleteInterfaceRequest {
        interface_id: b"vm1".to_vec(),
    })
    .await
    .unwrap();
    assert!(!dp.published.load().vnf.contains_key(&vip_underlay));
    let r = c
        .create_vip(vip("vm2", "45.0.0.1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let d = c
        .delete_nat(proto::DeleteNatRequest {
            interface_id: b"vm2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 0);
    let d = c
        .delete_nat(proto::DeleteNatRequest {
            interface_id: b"vm2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 341);
    let l = c
        .list_local_nats(all("0.0.0.0"))
        .await
        .unwrap()
        .into_inner();
    assert!(l.nat_entries.is_empty());
}

fn lb_req(
    id: &str,
    addr: &str,
    ports: &[(u32, proto::Protocol)],
) -> proto::CreateLoadBalancerRequest {
    proto::CreateLoadBalancerRequest {
        loadbalancer_id: id.as_bytes().to_vec(),
        loadbalanced_ip: ip(addr),
        vni: 100,
        loadbalanced_ports: ports
            .iter()
            .map(|(p, proto)| proto::LbPort {
                port: *p,
                protocol: *proto as i32,
            })
            .collect(),
        preferred_underlay_route: Vec::new(),
    }
}

#[tokio::test]
async fn load_balancers_targets_and_prefixes_round_trip() {
    use proto::Protocol::{Icmp, Tcp, Udp};
    let mut dp = start().await;
    let c = &mut dp.client;
    c.initialize(proto::InitializeRequest {}).await.unwrap();
    let r = c
        .create_load_balancer(lb_req("lb1", "45.0.1.1", &[(80, Tcp), (53, Udp)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let r = c
        .create_load_balancer(lb_req("lb2", "45.0.1.1", &[(80, Tcp)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 202, "same VNI and address");
    let many: Vec<(u32, proto::Protocol)> = (1..=16).map(|p| (p, Tcp)).collect();
    for (req, msg) in [
        (
            lb_req("lb2", "45.0.1.2", &many),
            "Too many loadbalanced_ports",
        ),
        (
            lb_req("lb2", "45.0.1.2", &[(80, Icmp)]),
            "Invalid loadbalanced_ports.protocol",
        ),
        (
            lb_req("lb2", "45.0.1.2", &[(70000, Tcp)]),
            "Invalid loadbalanced_ports.port",
        ),
        (
            lb_req("lb2", "45.0.1.2", &[(80, Tcp), (80, Tcp)]),
            "Duplicate loadbalanced_ports entry",
        ),
        (
            lb_req("lb 2", "45.0.1.2", &[(80, Tcp)]),
            "Invalid loadbalanced_id",
        ),
    ] {
        let e = c.create_load_balancer(req).await.unwrap_err();
        if msg != "Invalid loadbalanced_id" {
            assert_eq!(e.message(), msg);
        } else {
            assert_eq!(e.message(), "Invalid loadbalancer_id");
        }
    }
    let mut req = lb_req("lb2", "45.0.1.2", &[(80, Tcp)]);
    req.vni = 1 << 24;
    let e = c.create_load_balancer(req).await.unwrap_err();
    assert_eq!(e.message(), "VNI exceeds 24-bit range");
    let g = c
        .get_load_balancer(proto::GetLoadBalancerRequest {
            loadbalancer_id: b"lb1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.loadbalanced_ip, ip("45.0.1.1"));
    assert_eq!(g.loadbalanced_ports.len(), 2);
    let target = |t: &str| proto::CreateLoadBalancerTargetRequest {
        loadbalancer_id: b"lb1".to_vec(),
        target_ip: ip(t),
    };
    for t in ["fc00:2::1", "fc00:3::1"] {
        let r = c
            .create_load_balancer_target(target(t))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), 0);
    }
    let r = c
        .create_load_balancer_target(target("fc00:2::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 202);
    let r = c
        .create_load_balancer_target(target("10.0.0.1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 204);
    let r = c
        .create_load_balancer_target(proto::CreateLoadBalancerTargetRequest {
            loadbalancer_id: b"nope".to_vec(),
            target_ip: ip("fc00:2::1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 422);
    for i in 2..64u32 {
        let r = c
            .create_load_balancer_target(target(&format!("fc00:9::{i:x}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), 0);
    }
    let r = c
        .create_load_balancer_target(target("fc00:9::ffff"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 423, "65th target");
    let l = c
        .list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest {
            loadbalancer_id: b"lb1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.target_ips.len(), 64);
    let del = |t: &str| proto::DeleteLoadBalancerTargetRequest {
        loadbalancer_id: b"lb1".to_vec(),
        target_ip: ip(t),
    };
    let d = c
        .delete_load_balancer_target(del("fc00:3::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 0);
    let d = c
        .delete_load_balancer_target(del("fc00:3::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 201);
    // The published table follows the targets.
    let snap = dp.published.load();
    let lb = snap.lbs.values().next().unwrap();
    assert_eq!(lb.maglev.targets().len(), 63);
    // LB prefixes: no route, an underlay address of the interface.
    c.create_interface(iface("vm1", "net_tap2", "10.0.0.1", "fd00::1"))
        .await
        .unwrap();
    let lbp = |id: &str| proto::CreateLoadBalancerPrefixRequest {
        interface_id: id.as_bytes().to_vec(),
        prefix: prefix("45.0.1.1", 32),
        preferred_underlay_route: Vec::new(),
    };
    let r = c
        .create_load_balancer_prefix(lbp("vm1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), 0);
    let r2 = c
        .create_load_balancer_prefix(lbp("vm1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r2.status), 202);
    let r3 = c
        .create_load_balancer_prefix(lbp("nope"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r3.status), 205);
    let l = c
        .list_load_balancer_prefixes(proto::ListLoadBalancerPrefixesRequest {
            interface_id: b"vm1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.prefixes.len(), 1);
    assert_eq!(l.prefixes[0].underlay_route, r.underlay_route);
    let routes = c
        .list_routes(proto::ListRoutesRequest { vni: 100 })
        .await
        .unwrap()
        .into_inner();
    assert!(routes.routes.is_empty());
    let dl = |id: &str| proto::DeleteLoadBalancerPrefixRequest {
        interface_id: id.as_bytes().to_vec(),
        prefix: prefix("45.0.1.1", 32),
    };
    assert_eq!(
        code(
            &c.delete_load_balancer_prefix(dl("vm1"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        0
    );
    assert_eq!(
        code(
            &c.delete_load_balancer_prefix(dl("vm1"))
                .await
                .unwrap()
                .into_inner()
                .status
        ),
        201
    );
    // Delete the LB; its VNI reference goes with it.
    let lbs = c
        .list_load_balancers(proto::ListLoadBalancersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lbs.loadbalancers.len(), 1);
    let d = c
        .delete_load_balancer(proto::DeleteLoadBalancerRequest {
            loadbalancer_id: b"lb1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 0);
    let d = c
        .delete_load_balancer(proto::DeleteLoadBalancerRequest {
            loadbalancer_id: b"lb1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&d.status), 201);
    let l = c
        .list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest {
            loadbalancer_id: b"lb1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&l.status), 422);
    assert!(dp.published.load().lbs.is_empty());
}
