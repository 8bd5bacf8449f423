//! Every YAML example in the seeds parses and validates. The blocks are
//! read from the seeds' text (`../shared/seeds/*.txt`); blocks that lost
//! their indentation there are matched line by line (leading whitespace
//! aside) with their re-indented copy in `examples/seeds/`, which is then
//! parsed instead.
#![allow(clippy::unwrap_used)]

use ironnet_core::api::{apinet, networking};
use ironnet_core::manifest::parse_manifests;
use ironnet_core::registry::{DynObject, ObjectError};

mod common;
use common::seeds::{blocks, golden, root};

/// A status fragment checked as the status of its object.
fn check_fragment(copy: &str, text: &str) {
    let object_file = copy.replace("-status", "");
    let object = std::fs::read_to_string(root().join("examples/seeds").join(&object_file)).unwrap();
    let mut value: serde_json::Value = serde_norway::from_str(&object).unwrap();
    let status: serde_json::Value = serde_norway::from_str(text).unwrap();
    value["status"] = status["status"].clone();
    let obj = DynObject::from_value(value, "default")
        .unwrap_or_else(|e| panic!("{copy} as status of {object_file}: {e}"));
    assert!(obj.value["status"].is_object(), "{copy}: status kept");
}

#[test]
fn every_seed_example_parses_and_validates() {
    let blocks = blocks();
    assert_eq!(blocks.len(), 18, "blocks found in the seeds");
    let (mut direct, mut reindented, mut fragments) = (0, 0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for b in &blocks {
        let flat = b.lines.iter().skip(1).all(|l| !l.starts_with(' '));
        let (source, text) = if flat {
            let (file, text) = golden(b);
            reindented += 1;
            (format!("examples/seeds/{file}"), text)
        } else {
            direct += 1;
            (format!("{}:{}", b.file, b.first_line), b.lines.join("\n"))
        };
        if b.lines[0] == "status:" {
            fragments += 1;
            check_fragment(source.trim_start_matches("examples/seeds/"), &text);
            continue;
        }
        let objs = parse_manifests(&text, "default")
            .unwrap_or_else(|e| panic!("{source} (seed {}:{}): {e}", b.file, b.first_line));
        assert_eq!(objs.len(), 1, "{source}");
        kinds.insert(format!(
            "{}/{}",
            objs[0].kind.info.group, objs[0].kind.info.kind
        ));
    }
    assert_eq!((direct, reindented, fragments), (7, 11, 2));
    // Every kind with an example: 7 user-facing, 6 internal.
    assert_eq!(kinds.len(), 13, "{kinds:?}");
}

#[test]
fn defaults_are_filled() {
    let objs = parse_manifests(
        &std::fs::read_to_string(root().join("examples/seeds/loadbalancer.yaml")).unwrap(),
        "default",
    )
    .unwrap();
    let lb: networking::LoadBalancer = objs[0].to_typed().unwrap();
    assert_eq!(
        lb.spec.ports[0].protocol,
        Some(ironnet_core::api::common::Protocol::TCP)
    );
    let nat = parse_manifests(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: NATGateway\nmetadata: {name: n}\nspec: {type: Public, ipFamily: IPv4, networkRef: {name: x}}\n",
        "ns1",
    )
    .unwrap();
    let nat: networking::NATGateway = nat[0].to_typed().unwrap();
    assert_eq!(nat.spec.ports_per_network_interface, Some(2048));
    assert_eq!(nat.metadata.namespace, "ns1");
    // The internal IP's family comes from its address.
    let ip = parse_manifests(
        "apiVersion: core.apinet.ironcore.dev/v1alpha1\nkind: IP\nmetadata: {name: a, namespace: default}\nspec: {type: Public, ip: 2001:db8::1}\n",
        "default",
    )
    .unwrap();
    let ip: apinet::IP = ip[0].to_typed().unwrap();
    assert_eq!(
        ip.spec.ip_family,
        Some(ironnet_core::api::common::IpFamily::IPv6)
    );
}

fn error_of(yaml: &str) -> ObjectError {
    parse_manifests(yaml, "default").expect_err("must be refused")
}

#[test]
fn unknown_fields_and_wrong_types_name_their_path() {
    let e = error_of(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {name: n}\nspec:\n  networkRef: {name: x}\n  ipFamilies: [IPv4]\n  ips:\n  - valu: 10.0.0.1\n",
    );
    match &e {
        ObjectError::Field { path, message, .. } => {
            assert_eq!(path, "spec.ips[0].valu", "{e}");
            assert!(message.contains("unknown field `valu`"), "{e}");
        }
        other => panic!("{other}"),
    }
    let e = error_of(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: NATGateway\nmetadata: {name: n}\nspec: {type: Public, ipFamily: IPv4, networkRef: {name: x}, portsPerNetworkInterface: many}\n",
    );
    assert!(
        e.to_string().contains("spec.portsPerNetworkInterface"),
        "{e}"
    );
    let e = error_of(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: VirtualIP\nmetadata: {name: v}\nspec: {type: public, ipFamily: IPv4}\n",
    );
    assert!(
        e.to_string().contains("spec.type"),
        "enum values are case-sensitive: {e}"
    );
    let e = error_of(
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Gadget\nmetadata: {name: g}\n",
    );
    assert!(matches!(e, ObjectError::UnknownKind { .. }), "{e}");
    assert!(matches!(
        error_of("metadata: {name: g}\n"),
        ObjectError::MissingKind
    ));
    assert!(matches!(error_of("a: [\n"), ObjectError::Syntax(_)));
}

#[test]
fn validation_names_field_and_reason() {
    let cases = [
        (
            "kind: NATGateway\nmetadata: {name: n}\nspec: {type: Public, ipFamily: IPv4, networkRef: {name: x}, portsPerNetworkInterface: 100}",
            "spec.portsPerNetworkInterface: 100 is not a power of 2 between 1 and 32768",
        ),
        (
            "kind: NetworkInterface\nmetadata: {name: n}\nspec: {networkRef: {name: x}, ipFamilies: [IPv4], ips: [{value: 2001:db8::1}]}",
            "spec.ips[0].value: 2001:db8::1 is not of family IPv4 (ipFamilies[0])",
        ),
        (
            "kind: Network\nmetadata: {name: a}\nspec: {peerings: [{name: p, networkRef: {name: a}}]}",
            "spec.peerings[0].networkRef: cannot peer a network with itself",
        ),
        (
            "kind: LoadBalancer\nmetadata: {name: l}\nspec: {type: Public, ipFamilies: [IPv4], networkRef: {name: x}, ips: [{value: 10.0.0.1}]}",
            "spec.ips: only allowed for type Internal",
        ),
        (
            "kind: LoadBalancer\nmetadata: {name: l}\nspec: {type: Internal, ipFamilies: [IPv4], networkRef: {name: x}, ports: [{port: 80, endPort: 90}, {port: 85}]}",
            "spec.ports[1]: overlaps ports[0] of the same protocol",
        ),
        (
            "kind: NetworkPolicy\nmetadata: {name: p}\nspec: {networkRef: {name: x}, networkInterfaceSelector: {}, policyTypes: [Ingress], ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.1.0.0/24]}}]}]}",
            "spec.ingress[0].from[0].ipBlock.except[0]: 10.1.0.0/24 is not inside 10.0.0.0/24",
        ),
        (
            "kind: VirtualIP\nmetadata: {name: Bad_Name}\nspec: {type: Public, ipFamily: IPv4}",
            "metadata.name: \"Bad_Name\" is not a DNS-1123 subdomain",
        ),
    ];
    for (body, want) in cases {
        let yaml = format!("apiVersion: networking.ironcore.dev/v1alpha1\n{body}\n");
        let e = error_of(&yaml);
        assert!(
            e.to_string().contains(want),
            "{body}\n got: {e}\nwant: {want}"
        );
    }
}
