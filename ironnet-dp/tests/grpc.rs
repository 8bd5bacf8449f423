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
async fn other_calls_are_unimplemented_and_version_is_checked() {
    let mut dp = start().await;
    dp.client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    let e = dp
        .client
        .create_vip(proto::CreateVipRequest::default())
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
