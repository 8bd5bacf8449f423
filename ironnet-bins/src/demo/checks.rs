//! The connectivity matrix: what the demo sends, from which namespace to
//! which address, what the manifests say should happen, and what did. Every
//! cell is measured with real packets (ping, TCP connections answered by a
//! name server in the target), never assumed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// How a cell is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// ICMP echo (two requests; one reply is enough).
    Ping,
    /// `count` TCP connections to `port`; each is answered with the
    /// server's name and the address it saw the client come from.
    Tcp {
        /// Port.
        port: u16,
        /// Connections.
        count: usize,
    },
}

/// What the manifests make of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Packets get through.
    Reach,
    /// Nothing gets through.
    Blocked,
    /// TCP is answered, and the server saw this source address.
    SeenFrom(String),
    /// Every one of these servers answers some of the connections.
    Spread(Vec<String>),
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Check {
    /// Why the cell is there ("same host", "policy" …).
    pub topic: &'static str,
    /// The sending guest (or `internet`).
    pub from: String,
    /// The target as shown.
    pub to: String,
    /// The address probed.
    pub addr: String,
    /// How.
    pub probe: Probe,
    /// The expectation.
    pub expect: Expect,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it matches the expectation (true when not measured).
    pub ok: bool,
    /// Whether it was measured at all.
    pub measured: bool,
    /// What happened, in words.
    pub got: String,
}

/// Answers per server name, and the client addresses the servers saw.
fn parse_answers(out: &str) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut names = BTreeMap::new();
    let mut peers = Vec::new();
    for line in out.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(peer)) = (it.next(), it.next()) {
            *names.entry(name.to_owned()).or_default() += 1;
            if !peers.iter().any(|p| p == peer) {
                peers.push(peer.to_owned());
            }
        }
    }
    (names, peers)
}

/// Runs one check from namespace `ns`; `helper` is the demo binary (its
/// `fetch` subcommand makes the TCP connections).
pub fn run(check: &Check, ns: &str, helper: &Path) -> Outcome {
    match &check.probe {
        Probe::Ping => {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "ping", "-4", "-c", "2", "-i", "0.2"])
                .args(["-W", "1", &check.addr])
                .output();
            let reached = out.is_ok_and(|o| o.status.success());
            ping_outcome(check, reached)
        }
        Probe::Tcp { port, count } => {
            let out = Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(helper)
                .args(["fetch", &format!("{}:{port}", check.addr)])
                .args(["--count", &count.to_string()])
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let (names, peers) = parse_answers(&text);
            let answered: usize = names.values().sum();
            let summary = if answered == 0 {
                "no answer".to_owned()
            } else {
                let mut s = String::new();
                for (n, c) in &names {
                    let _ = write!(s, "{}{n}×{c}", if s.is_empty() { "" } else { " " });
                }
                let _ = write!(s, ", seen from {}", peers.join(","));
                s
            };
            let ok = match &check.expect {
                Expect::Reach => answered == *count,
                Expect::Blocked => answered == 0,
                Expect::SeenFrom(ip) => answered == *count && peers == [ip.clone()],
                Expect::Spread(servers) => {
                    answered == *count
                        && servers.iter().all(|s| names.get(s).is_some_and(|n| *n > 0))
                }
            };
            Outcome {
                ok,
                measured: true,
                got: summary,
            }
        }
    }
}

/// The outcome of a ping check that was (`reached`) or was not answered.
pub fn ping_outcome(check: &Check, reached: bool) -> Outcome {
    Outcome {
        ok: reached == (check.expect != Expect::Blocked),
        measured: true,
        got: if reached { "reached" } else { "no reply" }.to_owned(),
    }
}

/// A check that could not be measured here, and why.
pub fn not_measured(why: &str) -> Outcome {
    Outcome {
        ok: true,
        measured: false,
        got: format!("not measured ({why})"),
    }
}

/// The matrix as a table: topic, from, to, probe, expectation, outcome.
pub fn render(rows: &[(Check, Outcome)]) -> String {
    let header = ["", "TOPIC", "FROM", "TO", "PROBE", "EXPECTED", "MEASURED"];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for (c, o) in rows {
        let probe = match &c.probe {
            Probe::Ping => "ping".to_owned(),
            Probe::Tcp { port, count } => format!("tcp/{port} ×{count}"),
        };
        let expect = match &c.expect {
            Expect::Reach => "reach".to_owned(),
            Expect::Blocked => "blocked".to_owned(),
            Expect::SeenFrom(ip) => format!("reach as {ip}"),
            Expect::Spread(s) => format!("spread {}", s.join("+")),
        };
        table.push(vec![
            match (o.measured, o.ok) {
                (false, _) => "--",
                (true, true) => "ok",
                (true, false) => "FAIL",
            }
            .to_owned(),
            c.topic.to_owned(),
            c.from.clone(),
            format!("{} {}", c.to, c.addr),
            probe,
            expect,
            o.got.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_per_server_and_peers_kept_once() {
        let (names, peers) =
            parse_answers("web-a 203.0.113.9\nweb-b 203.0.113.9\nweb-a 203.0.113.9\ngarbage\n");
        assert_eq!(names.get("web-a"), Some(&2));
        assert_eq!(names.get("web-b"), Some(&1));
        assert_eq!(peers, vec!["203.0.113.9".to_owned()]);
    }
}
