//! kubectl-like tables: per-kind columns read from the objects' JSON.

use serde_json::Value;

use ironnet_core::object::KindInfo;
use ironnet_core::time::{now_secs, parse_rfc3339};

/// A column: header and a path into the object (`/a/b`, `*` walks an
/// array), and whether it shows only with `-o wide`.
type Column = (&'static str, &'static str, bool);

const NET: &str = "networking.ironcore.dev";
const APINET: &str = "core.apinet.ironcore.dev";

/// The kind-specific columns (between NAME and AGE).
fn columns(kind: &KindInfo) -> &'static [Column] {
    match (kind.group, kind.kind) {
        (NET, "Network") => &[
            ("STATE", "/status/state", false),
            ("PEERINGS", "/spec/peerings/*/name", false),
            ("PROVIDER-ID", "/spec/providerID", true),
        ],
        (NET, "NetworkInterface") => &[
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/status/ips", false),
            ("STATE", "/status/state", false),
            ("VIRTUAL-IP", "/status/virtualIP", true),
            ("PROVIDER-ID", "/spec/providerID", true),
        ],
        (NET, "VirtualIP") => &[
            ("TYPE", "/spec/type", false),
            ("IP", "/status/ip", false),
            ("TARGET", "/spec/targetRef/name", true),
        ],
        (NET, "NATGateway") => &[
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/status/ips/*/ip", false),
            ("PORTS-PER-NIC", "/spec/portsPerNetworkInterface", true),
        ],
        (NET, "LoadBalancer") => &[
            ("TYPE", "/spec/type", false),
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/status/ips", false),
            ("PORTS", "/spec/ports/*/port", true),
        ],
        (NET, "LoadBalancerRouting") => &[
            ("NETWORK", "/networkRef/name", false),
            ("DESTINATIONS", "/destinations/*/name", false),
        ],
        (NET, "NetworkPolicy") => &[
            ("NETWORK", "/spec/networkRef/name", false),
            ("PRIORITY", "/spec/priority", false),
            ("TYPES", "/spec/policyTypes", true),
        ],
        (APINET, "IP") => &[
            ("IP", "/spec/ip", false),
            ("FAMILY", "/spec/ipFamily", false),
            ("CLAIMER", "/spec/claimRef/name", true),
        ],
        (APINET, "IPAddress") | (APINET, "NetworkID") => {
            &[("CLAIMER", "/spec/claimRef/name", false)]
        }
        (APINET, "Network") => &[("ID", "/spec/id", false)],
        (APINET, "NetworkInterface") => &[
            ("NODE", "/spec/nodeRef/name", false),
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/spec/ips", false),
            ("STATE", "/status/state", false),
            ("PUBLIC-IPS", "/spec/publicIPs/*/ip", true),
        ],
        (APINET, "Instance") => &[
            ("NODE", "/spec/nodeRef/name", false),
            ("TYPE", "/spec/type", false),
            ("IPS", "/spec/ips", false),
        ],
        (APINET, "LoadBalancer") => &[
            ("TYPE", "/spec/type", false),
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/spec/ips/*/ip", false),
        ],
        (APINET, "NATGateway") => &[
            ("FAMILY", "/spec/ipFamily", false),
            ("NETWORK", "/spec/networkRef/name", false),
            ("IPS", "/spec/ips/*/ip", false),
            ("USED", "/status/usedNATIPs", true),
        ],
        (APINET, "NATTable") => &[("IPS", "/ips/*/ip", false)],
        (APINET, "NetworkPolicyRule") => &[
            ("NETWORK", "/networkRef/name", false),
            ("TARGETS", "/targets/*/ip", false),
            ("PRIORITY", "/priority", true),
        ],
        _ => &[],
    }
}

/// The values at `path` (`*` walks arrays), as text.
pub fn values(v: &Value, path: &str) -> Vec<String> {
    let mut current = vec![v];
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for c in current {
            match (seg, c) {
                ("*", Value::Array(items)) => next.extend(items.iter()),
                (_, Value::Object(o)) => next.extend(o.get(seg)),
                _ => {}
            }
        }
        current = next;
    }
    let mut out = Vec::new();
    for c in current {
        match c {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => out.extend(items.iter().map(scalar)),
            other => out.push(scalar(other)),
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An age as kubectl prints it (`42s`, `5m`, `3h`, `12d`).
pub fn age(created: &str, now: u64) -> String {
    let Some(t) = parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    let s = now.saturating_sub(t);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Rows of a table, padded to aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The header row for `kind`.
    pub fn new(kind: &KindInfo, wide: bool, namespaces: bool, event: bool) -> Self {
        let mut h = Vec::new();
        if event {
            h.push("EVENT".to_owned());
        }
        if namespaces {
            h.push("NAMESPACE".to_owned());
        }
        h.push("NAME".to_owned());
        h.extend(
            columns(kind)
                .iter()
                .filter(|c| wide || !c.2)
                .map(|c| c.0.to_owned()),
        );
        h.push("AGE".to_owned());
        if wide {
            h.push("LABELS".to_owned());
        }
        Table { rows: vec![h] }
    }

    /// A row for `obj`.
    pub fn row(
        kind: &KindInfo,
        obj: &Value,
        wide: bool,
        namespaces: bool,
        event: Option<&str>,
    ) -> Vec<String> {
        let mut r = Vec::new();
        if let Some(e) = event {
            r.push(e.to_owned());
        }
        if namespaces {
            r.push(values(obj, "/metadata/namespace").join(","));
        }
        r.push(values(obj, "/metadata/name").join(","));
        for c in columns(kind).iter().filter(|c| wide || !c.2) {
            let v = values(obj, c.1);
            r.push(if v.is_empty() {
                "<none>".to_owned()
            } else {
                v.join(",")
            });
        }
        r.push(
            obj.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .map_or("<unknown>".to_owned(), |c| age(c, now_secs())),
        );
        if wide {
            let labels: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", scalar(v)))
                        .collect()
                })
                .unwrap_or_default();
            r.push(if labels.is_empty() {
                "<none>".to_owned()
            } else {
                labels.join(",")
            });
        }
        r
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, columns separated by at least three spaces.
    pub fn render(&self) -> String {
        let n = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 3;
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v = json!({"spec": {"ips": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "n": 3, "e": ""}});
        assert_eq!(values(&v, "/spec/ips/*/ip"), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(values(&v, "/spec/n"), ["3"]);
        assert!(values(&v, "/spec/e").is_empty());
        assert!(values(&v, "/spec/missing/x").is_empty());
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age("1970-01-01T00:00:00Z", 42), "42s");
        assert_eq!(age("1970-01-01T00:00:00Z", 600), "10m");
        assert_eq!(age("1970-01-01T00:00:00Z", 3 * 3600), "3h");
        assert_eq!(age("1970-01-01T00:00:00Z", 5 * 86_400), "5d");
    }

    #[test]
    fn columns_are_aligned() {
        let mut t = Table {
            rows: vec![vec!["NAME".into(), "AGE".into()]],
        };
        t.push(vec!["a-long-name".into(), "1s".into()]);
        assert_eq!(t.render(), "NAME          AGE\na-long-name   1s\n");
    }
}
