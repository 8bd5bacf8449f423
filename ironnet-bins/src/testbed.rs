//! Network-namespace test beds for ironnet-dp, shared by the packet tests
//! and the TAP benchmark: namespaces and processes that are removed on
//! drop, dps started from their binary, and the gRPC calls that program
//! them. Linux only; needs root.
//!
//! Every address a test bed uses lives inside namespaces it creates; the
//! root namespace only sees the dp's gRPC and metrics sockets on
//! 127.0.0.1 and TAP devices that are moved into namespaces at once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironnet_dp::proto;
use ironnet_dp::proto::dpd_kironcore_client::DpdKironcoreClient;
use tonic::transport::Channel;

/// Runs a command; its stdout, or an error with both outputs.
pub fn run(args: &[&str]) -> Result<String, String> {
    let (cmd, rest) = args.split_first().ok_or("empty command")?;
    let out = Command::new(cmd)
        .args(rest)
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs a command inside a namespace.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Runs a whitespace-separated command line inside a namespace.
pub fn sh(ns: &str, cmd: &str) -> Result<String, String> {
    in_ns(ns, &cmd.split_whitespace().collect::<Vec<_>>())
}

/// Why namespace tests cannot run here (`None`: they can). `tools` are
/// commands that must be on the PATH.
pub fn missing(tools: &[&str]) -> Option<String> {
    let root = run(&["id", "-u"]).map(|s| s.trim() == "0").unwrap_or(false);
    if !root {
        return Some("not root".into());
    }
    let absent: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| run(&["sh", "-c", &format!("command -v {t}")]).is_err())
        .collect();
    if absent.is_empty() {
        None
    } else {
        Some(format!(
            "{} missing (run scripts/setup.sh)",
            absent.join(", ")
        ))
    }
}

/// Namespaces, processes and temporary files; all removed on drop.
#[derive(Debug)]
pub struct Topology {
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Topology {
    /// An empty test bed whose temporary directory is named after `tag`.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ironnet-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        Topology {
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates namespace `name` (replacing a leftover) with loopback up.
    pub fn netns(&mut self, name: &str) -> Result<(), String> {
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        in_ns(name, &["ip", "link", "set", "lo", "up"])?;
        for conf in ["all", "default"] {
            in_ns(
                name,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{conf}.accept_dad=0"),
                ],
            )?;
        }
        Ok(())
    }

    /// Takes ownership of a process: it is killed on drop.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // Daemons (dhclient, iperf3) keep running inside: kill them.
            if let Ok(pids) = run(&["ip", "netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run(&["kill", "-9", pid]);
                }
            }
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A started dp: its port names (PF0, PF1, VFs…) and ports.
#[derive(Debug, Clone)]
pub struct DpProcess {
    /// TAP names in port order.
    pub ports: Vec<String>,
    /// gRPC port on 127.0.0.1.
    pub grpc_port: u16,
    /// Metrics port on 127.0.0.1.
    pub metrics_port: u16,
}

/// Starts the `ironnet-dp` binary at `binary` with TAP names prefixed by
/// `tag`, gRPC on `grpc_port` and metrics on a free port.
#[allow(clippy::too_many_arguments)]
pub fn spawn_dp(
    topo: &mut Topology,
    binary: &str,
    tag: &str,
    ipv6: &str,
    vfs: usize,
    mac_index: u8,
    grpc_port: u16,
    extra: &[&str],
) -> Result<DpProcess, String> {
    let metrics_port = free_port();
    let mut dp = Command::new(binary)
        .args([
            "--ipv6",
            ipv6,
            "--vfs",
            &vfs.to_string(),
            "--tap-prefix",
            tag,
        ])
        .args(["--mac-index", &mac_index.to_string()])
        .args(["--grpc-port", &grpc_port.to_string()])
        .args(["--enable-ipv6-overlay", "--dhcp-mtu", "1400"])
        .args(["--http", &format!("127.0.0.1:{metrics_port}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let stdout = dp.stdout.take().ok_or("no stdout")?;
    topo.adopt(dp);
    let mut lines = BufReader::new(stdout).lines();
    let mut next = || -> Result<String, String> {
        lines
            .next()
            .ok_or("the dp exited")?
            .map_err(|e| e.to_string())
    };
    let ports_line = next()?;
    let ports: Vec<String> = ports_line
        .strip_prefix("ports ")
        .ok_or_else(|| format!("unexpected: {ports_line}"))?
        .split(' ')
        .map(String::from)
        .collect();
    if ports.len() != 2 + vfs {
        return Err(format!("unexpected ports: {ports_line}"));
    }
    let _grpc = next()?;
    let _metrics = next()?;
    Ok(DpProcess {
        ports,
        grpc_port,
        metrics_port,
    })
}

/// Moves a TAP into a namespace and brings it up.
pub fn attach(dev: &str, ns: &str) -> Result<(), String> {
    run(&["ip", "link", "set", dev, "netns", ns])?;
    in_ns(ns, &["ip", "link", "set", dev, "up"])?;
    Ok(())
}

/// Joins the dps' uplinks in namespace `fabric`: every PF moves there and
/// each dp's PF0 is enslaved to bridge `br0`. The bridge gets a MAC of its
/// own: it would otherwise take its lowest port's MAC and keep frames for
/// that MAC to itself.
pub fn bridge_fabric(fabric: &str, dps: &[&DpProcess]) -> Result<(), String> {
    sh(
        fabric,
        "ip link add br0 address 02:00:00:00:00:fe type bridge",
    )?;
    sh(fabric, "ip link set br0 up")?;
    for dp in dps {
        for pf in dp.ports.iter().take(2) {
            attach(pf, fabric)?;
        }
        let pf0 = dp.ports.first().ok_or("a dp without ports")?;
        sh(fabric, &format!("ip link set {pf0} master br0"))?;
    }
    Ok(())
}

/// Three pings from namespace `ns` to `dst` (IPv4 or IPv6), 0.2 s apart.
pub fn ping(ns: &str, dst: &str) -> Result<String, String> {
    let family = if dst.contains(':') { "-6" } else { "-4" };
    in_ns(
        ns,
        &["ping", family, "-c", "3", "-i", "0.2", "-W", "2", dst],
    )
}

/// Sends `bytes` over one TCP connection with iperf3 (60 s at most) from
/// `client_ns` to a server started in `server_ns` on `dst`; the bytes sent
/// and the bytes the server had received when the client finished (iperf3
/// stops counting there, so data still in flight is not in it). The
/// server is a child that is killed if anything fails.
pub fn tcp_transfer(
    server_ns: &str,
    client_ns: &str,
    dst: &str,
    bytes: u64,
) -> Result<(u64, u64), String> {
    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", server_ns, "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("iperf3 -s: {e}"))?,
    );
    let amount = bytes.to_string();
    let mut last = String::new();
    for _ in 0..50 {
        let args = ["timeout", "60", "iperf3", "-c", dst, "-n", &amount, "-J"];
        match in_ns(client_ns, &args) {
            Ok(out) => {
                let v: serde_json::Value =
                    serde_json::from_str(&out).map_err(|e| format!("iperf3 output: {e}"))?;
                // iperf3 -J can report a refused connection (the server not
                // listening yet) in its output and still exit with 0.
                if let Some(e) = v["error"].as_str() {
                    last = e.to_owned();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                let count = |side: &str| v["end"][side]["bytes"].as_u64();
                return count("sum_sent")
                    .zip(count("sum_received"))
                    .ok_or_else(|| format!("no byte counts in {out}"));
            }
            // The server may not listen yet.
            Err(e) => last = e,
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(last)
}

/// `GET /metrics` of a dp.
pub fn metrics(dp: &DpProcess) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", dp.metrics_port)).map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: dp\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// An `IpAddress` message for `s` (IPv6 if it has a colon).
pub fn ip(s: &str) -> Option<proto::IpAddress> {
    let ipver = if s.contains(':') {
        proto::IpVersion::Ipv6
    } else {
        proto::IpVersion::Ipv4
    };
    Some(proto::IpAddress {
        ipver: ipver as i32,
        address: s.as_bytes().to_vec(),
    })
}

/// Connects to a dp and initializes it.
pub async fn connect(dp: &DpProcess) -> Result<DpdKironcoreClient<Channel>, String> {
    let mut client = DpdKironcoreClient::connect(format!("http://127.0.0.1:{}", dp.grpc_port))
        .await
        .map_err(|e| e.to_string())?;
    client
        .initialize(proto::InitializeRequest {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

/// CreateInterface in VNI 100 (hostname `<id>-host`); its underlay address.
pub async fn create_interface(
    client: &mut DpdKironcoreClient<Channel>,
    id: &str,
    dev: &str,
    v4: &str,
    v6: &str,
) -> Result<String, String> {
    let r = client
        .create_interface(proto::CreateInterfaceRequest {
            interface_id: id.as_bytes().to_vec(),
            vni: 100,
            ipv4_config: Some(proto::IpConfig {
                primary_address: v4.as_bytes().to_vec(),
            }),
            ipv6_config: Some(proto::IpConfig {
                primary_address: v6.as_bytes().to_vec(),
            }),
            device_name: dev.to_owned(),
            hostname: format!("{id}-host"),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    match r.status {
        Some(s) if s.code == 0 => String::from_utf8(r.underlay_route).map_err(|e| e.to_string()),
        other => Err(format!("CreateInterface {id}: {other:?}")),
    }
}

/// CreateRoute in VNI 100.
pub async fn create_route(
    client: &mut DpdKironcoreClient<Channel>,
    prefix: &str,
    len: u32,
    via: &str,
) -> Result<(), String> {
    let r = client
        .create_route(proto::CreateRouteRequest {
            vni: 100,
            route: Some(proto::Route {
                prefix: Some(proto::Prefix {
                    ip: ip(prefix),
                    length: len,
                    underlay_route: Vec::new(),
                }),
                nexthop_vni: 100,
                nexthop_address: ip(via),
                weight: 100,
            }),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    match r.status {
        Some(s) if s.code == 0 => Ok(()),
        other => Err(format!("CreateRoute {prefix}/{len}: {other:?}")),
    }
}

/// The DHCP hook: applies what the server handed out (address, gateway
/// route for /32 addresses) inside the guest, and nothing else (no
/// resolv.conf changes on the host).
const HOOK: &str = r#"#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr add "$new_ip_address/32" dev "$interface"
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    for r in $new_routers; do
        ip -4 route replace "$r" dev "$interface"
        ip -4 route replace default via "$r" dev "$interface"
    done
    echo "$new_ip_address $new_interface_mtu $new_host_name" > "$LEASE_OUT"
    ;;
BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad
    echo "$new_ip6_address" > "$LEASE_OUT"
    ;;
esac
exit 0
"#;

/// Leases IPv4 and IPv6 with Debian's `dhclient` inside `ns` on `dev` (and
/// waits for the IPv6 default route from the dp's RA); returns what the
/// hook saw for each family: `address mtu hostname`, and the IPv6 address.
pub fn lease(topo: &Topology, ns: &str, dev: &str) -> Result<(String, String), String> {
    lease_family(topo, ns, dev, true)
}

/// [`lease`], IPv4 only unless `ipv6` (the IPv6 result is then empty).
pub fn lease_family(
    topo: &Topology,
    ns: &str,
    dev: &str,
    ipv6: bool,
) -> Result<(String, String), String> {
    if !ipv6 {
        return Ok((dhclient(topo, ns, dev, "-4")?, String::new()));
    }
    // dhclient -6 needs a usable link-local address.
    wait_for(Duration::from_secs(10), || {
        let a = in_ns(
            ns,
            &["ip", "-6", "addr", "show", "dev", dev, "scope", "link"],
        )?;
        Ok((a.contains("fe80") && !a.contains("tentative")).then_some(()))
    })
    .map_err(|e| format!("no link-local address on {dev}: {e}"))?;
    let v4 = dhclient(topo, ns, dev, "-4")?;
    let v6 = dhclient(topo, ns, dev, "-6")?;
    // IPv6 needs the router: the RA from the dp gives the default route.
    wait_for(Duration::from_secs(10), || {
        let routes = in_ns(ns, &["ip", "-6", "route", "show", "default"])?;
        Ok(routes.contains("fe80::1").then_some(()))
    })
    .map_err(|e| format!("no IPv6 default route from the RA in {ns}: {e}"))?;
    Ok((v4, v6))
}

/// One `dhclient` run for `family` (`-4` or `-6`); what the hook saw.
fn dhclient(topo: &Topology, ns: &str, dev: &str, family: &str) -> Result<String, String> {
    let out = topo.dir().join(format!("out-{ns}{family}"));
    // dhclient gives its script a clean environment: the output path
    // is written into the script.
    let hook = topo.dir().join(format!("hook-{ns}{family}.sh"));
    std::fs::write(
        &hook,
        HOOK.replace("$LEASE_OUT", &out.display().to_string()),
    )
    .map_err(|e| e.to_string())?;
    run(&["chmod", "+x", &hook.display().to_string()])?;
    let r = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(["dhclient", "-v", family, "-1", "-sf"])
        .arg(&hook)
        .arg("-lf")
        .arg(topo.dir().join(format!("lease-{ns}{family}")))
        .arg("-pf")
        .arg(topo.dir().join(format!("pid-{ns}{family}")))
        .arg(dev)
        .output()
        .map_err(|e| e.to_string())?;
    if !r.status.success() {
        return Err(format!(
            "dhclient {family} in {ns}: {}",
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    let text =
        std::fs::read_to_string(&out).map_err(|e| format!("no lease {family} in {ns}: {e}"))?;
    Ok(text.trim().to_owned())
}

/// Polls `check` every 100 ms until it returns a value or `limit` passes.
pub fn wait_for<T>(
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_owned(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("gave up after {limit:?}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a packet test must be skipped here: it needs root and the
/// tools `scripts/setup.sh` installs. Under CI a missing tool fails the
/// test instead.
pub fn skip_packet_test() -> bool {
    if let Some(why) = missing(&["ip", "dhclient", "ping", "iperf3"]) {
        assert!(
            std::env::var_os("CI").is_none(),
            "packet test cannot run in CI: {why}"
        );
        eprintln!("skipping packet test: {why}");
        return true;
    }
    false
}

/// A loopback port free right now, chosen by the kernel (a fixed range
/// could collide with ephemeral ports of other connections, such as
/// TIME_WAIT leftovers of earlier tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// A command running test `helper` of the current test binary inside
/// namespace `ns` with environment variable `env` set (helper tests do
/// nothing unless their variable is set).
pub fn helper(ns: &str, helper: &str, env: (&str, &str)) -> Command {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(exe)
        .args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1);
    c
}
