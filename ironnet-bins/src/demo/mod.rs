//! The all-in-one demo: the whole system on one machine, moving real
//! packets. It starts the role binaries as an operator would (the
//! controller on its embedded store, two bond servers, and two
//! hypervisors, each an `ironnet-dp` on TAP devices with an
//! `ironnet-agent`), applies the manifests in `examples/demo/`, lets every
//! guest (a network namespace on the TAP device its interface got) take its
//! address from the dp's DHCP server, and measures a connectivity matrix.
//!
//! The underlay is a router namespace that the dps' uplinks plug into; it
//! decapsulates traffic for the internet (SRv6 `End.DX4` on the agents'
//! router address) towards an "internet" namespace and learns the public
//! addresses from the bond ([`router`]). Every address lives inside the
//! demo's namespaces; the root namespace gets none, and traffic never
//! leaves the machine. Everything is removed when the [`Demo`] is dropped.
//! Needs root, `ip`, `dhclient` and `ping`.

pub mod checks;
pub mod memory;
pub mod process;
pub mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ironnet_core::api::{apinet, networking};
use ironnet_core::client::ApiClient;
use ironnet_core::manifest::parse_manifests;
use ironnet_core::object::Resource;
use ironnet_core::store::{ObjectKey, Selection, Store};
use ironnet_overlay::route::Vni;

use crate::agent::dp::Dp;
use crate::agent::view::Hop;
use crate::testbed::{self, Topology};
use checks::{Check, Expect, Outcome, Probe};
use memory::MemoryFabric;
use process::RoleProcess;
use router::{RouterSync, Uplink};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Namespaces and TAP devices need root and a few tools.
    #[error("cannot build network namespaces: {0}")]
    Unsupported(String),
    /// A binary is missing or would not start.
    #[error("cannot start {0}")]
    Spawn(String),
    /// A role process ended.
    #[error("{0}")]
    Exited(String),
    /// A file or command failed.
    #[error("{0}")]
    Io(String),
    /// The controller's API failed.
    #[error("API: {0}")]
    Api(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// The role binaries the demo starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `ironnet-controller`.
    pub controller: PathBuf,
    /// `ironnet-bond`.
    pub bond: PathBuf,
    /// `ironnet-dp`.
    pub dp: PathBuf,
    /// `ironnet-agent`.
    pub agent: PathBuf,
    /// `ironnet-demo` itself: its `serve` and `fetch` subcommands run in
    /// the guests.
    pub demo: PathBuf,
}

impl Binaries {
    /// The binaries in directory `dir` (where cargo puts them together).
    pub fn in_dir(dir: &Path) -> Result<Self, DemoError> {
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DemoError::Spawn(format!(
                    "{}: not built (cargo build -p ironnet-bins --bins)",
                    p.display()
                )))
            }
        };
        Ok(Binaries {
            controller: find("ironnet-controller")?,
            bond: find("ironnet-bond")?,
            dp: find("ironnet-dp")?,
            agent: find("ironnet-agent")?,
            demo: find("ironnet-demo")?,
        })
    }
}

/// The manifests the demo applies, in order (the files in
/// `examples/demo/`).
pub const MANIFESTS: &[(&str, &str)] = &[
    (
        "machines.yaml",
        include_str!("../../../examples/demo/machines.yaml"),
    ),
    (
        "networks.yaml",
        include_str!("../../../examples/demo/networks.yaml"),
    ),
    (
        "virtualip.yaml",
        include_str!("../../../examples/demo/virtualip.yaml"),
    ),
    (
        "interfaces.yaml",
        include_str!("../../../examples/demo/interfaces.yaml"),
    ),
    (
        "natgateway.yaml",
        include_str!("../../../examples/demo/natgateway.yaml"),
    ),
    (
        "loadbalancer.yaml",
        include_str!("../../../examples/demo/loadbalancer.yaml"),
    ),
    (
        "networkpolicy.yaml",
        include_str!("../../../examples/demo/networkpolicy.yaml"),
    ),
];

/// The public range the controller hands out (TEST-NET-3).
pub const PUBLIC_PREFIX: &str = "203.0.113.0/24";
/// The internet namespace's address (TEST-NET-2).
pub const INTERNET: &str = "198.51.100.2";
/// The router address the agents send internet traffic to.
pub const ROUTER_SID: &str = "fc00:b::100";
/// The port every name server listens on.
pub const PORT: u16 = 8080;
const PUBLIC_VNI: u32 = 100;
const SYSTEM_NAMESPACE: &str = "ironnet-system";

/// A hypervisor: its node name, underlay address, MAC index, TAP prefix.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Node name (agent `--node`, machine pool).
    pub node: &'static str,
    /// The dp's `--ipv6`.
    pub underlay: &'static str,
    /// Its /64.
    pub prefix: &'static str,
    /// The dp's `--mac-index`.
    pub mac: u8,
}

/// The two hypervisors.
pub const HOSTS: [HostSpec; 2] = [
    HostSpec {
        node: "hv-a",
        underlay: "fc00:1::1",
        prefix: "fc00:1::/64",
        mac: 0x0a,
    },
    HostSpec {
        node: "hv-b",
        underlay: "fc00:2::1",
        prefix: "fc00:2::/64",
        mac: 0x0b,
    },
];

/// The guests: interface (and machine) name, host index, address.
pub const GUESTS: [(&str, usize, &str); 6] = [
    ("web-a", 0, "10.0.0.11"),
    ("db-a", 0, "10.0.0.12"),
    ("red-a", 0, "10.1.0.11"),
    ("web-b", 1, "10.0.0.21"),
    ("app-b", 1, "10.0.0.22"),
    ("green-b", 1, "10.2.0.21"),
];

/// The public addresses the controller chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddresses {
    /// db-a's virtual IP.
    pub vip: IpAddr,
    /// The NAT gateway's address.
    pub nat: IpAddr,
    /// The load balancer's address.
    pub lb: IpAddr,
}

/// Where the guests and dps live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Network namespaces on TAP devices, real kernels as guests (root).
    Netns,
    /// In-process dps on memory ports, simulated guests (no root).
    Memory,
}

/// A dp's gRPC and metrics addresses.
#[derive(Debug, Clone, Copy)]
struct DpEndpoint {
    grpc: SocketAddr,
    metrics: Option<SocketAddr>,
}

/// A running demo; dropping it stops every process and removes every
/// namespace, TAP device and file it made.
#[derive(Debug)]
pub struct Demo {
    tag: String,
    bins: Binaries,
    api: ApiClient,
    api_url: String,
    controller: RoleProcess,
    bonds: Vec<RoleProcess>,
    bond_http: Vec<SocketAddr>,
    agents: Vec<RoleProcess>,
    dps: Vec<DpEndpoint>,
    memory: Option<MemoryFabric>,
    /// Kept for its drop, which stops it.
    _router: Option<RouterSync>,
    public: Option<PublicAddresses>,
    // Last: namespaces go after the processes using them.
    topo: Topology,
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], testbed::free_port()))
}

fn sh(ns: &str, cmd: &str) -> Result<String, DemoError> {
    testbed::sh(ns, cmd).map_err(DemoError::Io)
}

/// Polls `check` every 200 ms until it yields a value or `limit` passes.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::from("not yet");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Timeout(format!("{what} ({last})")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Demo {
    /// Why the demo cannot build namespaces here (`None`: it can).
    pub fn unsupported() -> Option<String> {
        testbed::missing(&["ip", "dhclient", "ping"])
    }

    /// Starts every process and the hosts, and waits for the API. `tag`
    /// (at most 5 characters) prefixes namespace and TAP names.
    pub async fn start(tag: &str, bins: Binaries, mode: Mode) -> Result<Demo, DemoError> {
        if mode == Mode::Netns
            && let Some(why) = Self::unsupported()
        {
            return Err(DemoError::Unsupported(why));
        }
        let mut topo = Topology::new(tag);
        let logs = topo.dir().join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| DemoError::Io(e.to_string()))?;

        let api_addr = free_addr();
        let controller = RoleProcess::start(
            "controller",
            &bins.controller,
            vec![
                "--store".into(),
                "embedded".into(),
                "--data-dir".into(),
                topo.dir().join("controller").display().to_string(),
                "--listen".into(),
                api_addr.to_string(),
                "--metrics-listen".into(),
                free_addr().to_string(),
                "--public-prefix".into(),
                PUBLIC_PREFIX.into(),
            ],
            &logs,
        )?;
        let api_url = format!("http://{api_addr}");
        let api = ApiClient::new(&api_url, None).map_err(|e| DemoError::Api(e.to_string()))?;

        let mut bonds = Vec::new();
        let mut bond_addrs = Vec::new();
        let mut bond_http = Vec::new();
        for i in 1..=2 {
            let (listen, http) = (free_addr(), free_addr());
            bonds.push(RoleProcess::start(
                &format!("bond-{i}"),
                &bins.bond,
                vec![
                    "server".into(),
                    "--listen".into(),
                    listen.to_string(),
                    "--http".into(),
                    http.to_string(),
                ],
                &logs,
            )?);
            bond_addrs.push(listen);
            bond_http.push(http);
        }

        let public_vni =
            Vni::new(PUBLIC_VNI).ok_or_else(|| DemoError::Io("bad public VNI".into()))?;
        let (dps, memory, router) = match mode {
            Mode::Netns => {
                let (dps, router) =
                    build_netns(&mut topo, tag, &bins, bond_addrs.clone(), public_vni)?;
                (dps, None, Some(router))
            }
            Mode::Memory => {
                let fabric = MemoryFabric::start(tag, 3, bond_addrs.clone(), public_vni).await?;
                let dps = (0..HOSTS.len())
                    .filter_map(|i| fabric.grpc(i))
                    .map(|grpc| DpEndpoint {
                        grpc,
                        metrics: None,
                    })
                    .collect();
                (dps, Some(fabric), None)
            }
        };
        let mut agents = Vec::new();
        for (h, dp) in HOSTS.iter().zip(&dps) {
            let mut args = vec![
                "--node".to_owned(),
                h.node.to_owned(),
                "--api".into(),
                api_url.clone(),
                "--dp".into(),
                dp.grpc.to_string(),
                "--router-address".into(),
                ROUTER_SID.into(),
                "--vfs".into(),
                "3".into(),
                "--tap-prefix".into(),
                format!("{tag}{}", &h.node[3..]),
                "--resync".into(),
                "10".into(),
            ];
            for b in &bond_addrs {
                args.push("--bond".into());
                args.push(b.to_string());
            }
            agents.push(RoleProcess::start(
                &format!("agent-{}", h.node),
                &bins.agent,
                args,
                &logs,
            )?);
        }
        let mut demo = Demo {
            tag: tag.to_owned(),
            bins,
            api,
            api_url,
            controller,
            bonds,
            bond_http,
            agents,
            dps,
            memory,
            _router: router,
            public: None,
            topo,
        };
        demo.wait_for_api().await?;
        Ok(demo)
    }

    async fn wait_for_api(&mut self) -> Result<(), DemoError> {
        let sel = Selection::kind(networking::Network::INFO);
        let api = self.api.clone();
        until("the controller's API", Duration::from_secs(30), || {
            let (api, sel) = (api.clone(), sel.clone());
            async move { Ok(api.list(&sel).await.ok().map(|_| ())) }
        })
        .await?;
        self.controller.check()
    }

    /// Applies the demo's manifests; one line per object.
    pub async fn apply(&self, out: &mut Vec<u8>) -> Result<(), DemoError> {
        for (file, text) in MANIFESTS {
            let objs = parse_manifests(text, "default")
                .map_err(|e| DemoError::Api(format!("{file}: {e}")))?;
            crate::ctl::apply(&self.api, objs, out, &mut std::io::sink())
                .await
                .map_err(|e| DemoError::Api(format!("{file}: {e}")))?;
        }
        Ok(())
    }

    /// Waits until every interface is Available on its host, moves its TAP
    /// device into the guest's namespace and takes a DHCP lease there;
    /// then starts the name servers and waits for the router to know every
    /// public address.
    pub async fn bring_up_guests(&mut self) -> Result<(), DemoError> {
        for (name, host, addr) in GUESTS {
            let tap = self.wait_for_tap(name).await?;
            let leased = match self.memory.as_mut() {
                Some(fabric) => fabric.lease(name, host, &tap).await?.to_string(),
                None => {
                    let ns = self.ns(name);
                    testbed::attach(&tap, &ns).map_err(DemoError::Io)?;
                    let (v4, _) = testbed::lease_family(&self.topo, &ns, &tap, false)
                        .map_err(DemoError::Io)?;
                    v4.split_whitespace().next().unwrap_or_default().to_owned()
                }
            };
            if leased != addr {
                return Err(DemoError::Io(format!(
                    "{name} leased {leased:?}, want {addr}"
                )));
            }
        }
        let public = self.public_addresses().await?;
        if let Some(fabric) = &self.memory {
            for ip in [public.vip, public.nat, public.lb] {
                until(
                    &format!("the router's route to {ip}"),
                    Duration::from_secs(30),
                    || async move { Ok(fabric.routes_to(ip).then_some(())) },
                )
                .await?;
            }
            self.public = Some(public);
            return Ok(());
        }
        // Load-balancer targets accept the LB's address as their own.
        for name in ["web-a", "web-b"] {
            sh(
                &self.ns(name),
                &format!("ip addr add {}/32 dev lo", public.lb),
            )?;
        }
        for (name, ns) in [
            ("web-a", self.ns("web-a")),
            ("web-b", self.ns("web-b")),
            ("internet", self.ns("internet")),
        ] {
            let child = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(&self.bins.demo)
                .args(["serve", "--name", name, "--port", &PORT.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| DemoError::Spawn(format!("name server: {e}")))?;
            self.topo.adopt(child);
        }
        let rt = self.ns("router");
        for ip in [public.vip, public.nat, public.lb] {
            let rt = rt.clone();
            until(
                &format!("the router's route to {ip}"),
                Duration::from_secs(30),
                || {
                    let rt = rt.clone();
                    async move {
                        let r = testbed::sh(&rt, &format!("ip route show {ip}/32"))?;
                        Ok(r.contains("encap").then_some(()))
                    }
                },
            )
            .await?;
        }
        self.public = Some(public);
        Ok(())
    }

    /// The namespace of a guest, `router` or `internet`.
    pub fn ns(&self, who: &str) -> String {
        match who {
            "router" => format!("{}rt", self.tag),
            "internet" => format!("{}inet", self.tag),
            guest => format!("{}{guest}", self.tag),
        }
    }

    async fn typed<T: Resource>(&self, ns: &str, name: &str) -> Result<T, String> {
        let key = ObjectKey::new(&T::INFO, ns, name);
        let obj = self.api.get(&key).await.map_err(|e| e.to_string())?;
        obj.to_typed().map_err(|e| e.to_string())
    }

    /// Waits for interface `name` to be Available; its TAP device.
    async fn wait_for_tap(&self, name: &str) -> Result<String, DemoError> {
        until(
            &format!("interface {name} to become Available"),
            Duration::from_secs(60),
            || async move {
                let nic: networking::NetworkInterface = self.typed("default", name).await?;
                if nic.status.state != Some(networking::State::Available) {
                    return Ok(None);
                }
                let internal: apinet::NetworkInterface =
                    self.typed(SYSTEM_NAMESPACE, &nic.metadata.uid).await?;
                Ok(internal.status.tap_device.map(|t| t.name))
            },
        )
        .await
    }

    /// The public addresses the controller allocated (waits for them).
    pub async fn public_addresses(&self) -> Result<PublicAddresses, DemoError> {
        until("public addresses", Duration::from_secs(30), || async move {
            let vip: networking::VirtualIP = self.typed("default", "db-public").await?;
            let nat: networking::NATGateway = self.typed("default", "blue-nat").await?;
            let lb: networking::LoadBalancer = self.typed("default", "web").await?;
            Ok((|| {
                Some(PublicAddresses {
                    vip: vip.status.ip?,
                    nat: nat.status.ips.first()?.ip,
                    lb: *lb.status.ips.first()?,
                })
            })())
        })
        .await
    }

    /// The connectivity matrix the manifests call for.
    pub fn checks(&self) -> Vec<Check> {
        let Some(p) = &self.public else {
            return Vec::new();
        };
        let ping = |topic, from: &str, to: &str, addr: &str, expect| Check {
            topic,
            from: from.to_owned(),
            to: to.to_owned(),
            addr: addr.to_owned(),
            probe: Probe::Ping,
            expect,
        };
        let tcp = |topic, from: &str, to: &str, addr: &str, count, expect| Check {
            topic,
            from: from.to_owned(),
            to: to.to_owned(),
            addr: addr.to_owned(),
            probe: Probe::Tcp { port: PORT, count },
            expect,
        };
        let (vip, nat, lb) = (p.vip.to_string(), p.nat.to_string(), p.lb.to_string());
        vec![
            ping("same host", "web-a", "db-a", "10.0.0.12", Expect::Reach),
            ping("same host", "app-b", "web-b", "10.0.0.21", Expect::Blocked),
            tcp("same host", "app-b", "web-b", "10.0.0.21", 3, Expect::Reach),
            ping("across hosts", "db-a", "app-b", "10.0.0.22", Expect::Reach),
            ping("across hosts", "app-b", "db-a", "10.0.0.12", Expect::Reach),
            ping("policy", "db-a", "web-b", "10.0.0.21", Expect::Blocked),
            tcp("policy", "db-a", "web-b", "10.0.0.21", 3, Expect::Reach),
            tcp("policy", "app-b", "web-a", "10.0.0.11", 3, Expect::Reach),
            ping("peering", "red-a", "db-a", "10.0.0.12", Expect::Reach),
            ping("peering", "red-a", "app-b", "10.0.0.22", Expect::Reach),
            ping(
                "no peering",
                "green-b",
                "app-b",
                "10.0.0.22",
                Expect::Blocked,
            ),
            ping(
                "no peering",
                "green-b",
                "db-a",
                "10.0.0.12",
                Expect::Blocked,
            ),
            ping("NAT", "app-b", "internet", INTERNET, Expect::Reach),
            tcp(
                "NAT",
                "app-b",
                "internet",
                INTERNET,
                3,
                Expect::SeenFrom(nat.clone()),
            ),
            tcp(
                "NAT",
                "web-a",
                "internet",
                INTERNET,
                3,
                Expect::SeenFrom(nat.clone()),
            ),
            ping("NAT", "internet", "blue-nat", &nat, Expect::Reach),
            ping("virtual IP", "internet", "db-a", &vip, Expect::Reach),
            tcp(
                "virtual IP",
                "db-a",
                "internet",
                INTERNET,
                3,
                Expect::SeenFrom(vip),
            ),
            tcp(
                "load balancer",
                "internet",
                "web",
                &lb,
                30,
                Expect::Spread(vec!["web-a".into(), "web-b".into()]),
            ),
            ping(
                "no public IP",
                "green-b",
                "internet",
                INTERNET,
                Expect::Blocked,
            ),
            ping(
                "isolation",
                "internet",
                "app-b",
                "10.0.0.22",
                Expect::Blocked,
            ),
        ]
    }

    /// Runs checks (blocking; each from its own namespace).
    pub async fn measure(&self, checks: Vec<Check>) -> Vec<(Check, Outcome)> {
        let mut out = Vec::new();
        for c in checks {
            let outcome = match (&self.memory, &c.probe) {
                (Some(_), Probe::Tcp { .. }) => checks::not_measured("TCP needs root"),
                (Some(fabric), Probe::Ping) => match c.addr.parse() {
                    Ok(dst) => checks::ping_outcome(&c, fabric.ping(&c.from, dst).await),
                    Err(_) => checks::not_measured("not an IPv4 address"),
                },
                (None, _) => {
                    let ns = self.ns(&c.from);
                    let helper = self.bins.demo.clone();
                    let probe = c.clone();
                    tokio::task::spawn_blocking(move || checks::run(&probe, &ns, &helper))
                        .await
                        .unwrap_or_else(|_| checks::not_measured("the probe panicked"))
                }
            };
            out.push((c, outcome));
        }
        out
    }

    /// `ironnetctl get` tables of the user-facing objects.
    pub async fn status_tables(&self) -> String {
        let mut out = Vec::new();
        for kind in [
            "networks",
            "networkinterfaces",
            "virtualips",
            "natgateways",
            "loadbalancers",
            "networkpolicies",
        ] {
            let Ok(entry) = crate::ctl::resolve_kind(kind) else {
                continue;
            };
            let target = crate::ctl::Target {
                kind: entry,
                namespace: Some("default".into()),
                selector: None,
            };
            out.extend_from_slice(format!("$ ironnetctl get {kind}\n").as_bytes());
            if let Err(e) =
                crate::ctl::get(&self.api, &target, &[], crate::ctl::Output::Table, &mut out).await
            {
                out.extend_from_slice(format!("error: {e}\n").as_bytes());
            }
            out.push(b'\n');
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Where to look next: the API, logs, metrics and status pages.
    pub fn pointers(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "  ironnetctl --server {} get networkinterfaces -o wide\n",
            self.api_url
        ));
        s.push_str(&format!(
            "  ironnetctl --server {} describe loadbalancer web\n",
            self.api_url
        ));
        for (i, http) in self.bond_http.iter().enumerate() {
            s.push_str(&format!(
                "  bond-{} status page:  http://{http}/  (routes: /routes.json)\n",
                i + 1
            ));
        }
        for (h, dp) in HOSTS.iter().zip(&self.dps) {
            let metrics = dp
                .metrics
                .map_or_else(String::new, |m| format!("metrics http://{m}/metrics, "));
            s.push_str(&format!(
                "  {} dp:                {metrics}gRPC {}\n",
                h.node, dp.grpc
            ));
        }
        if self.memory.is_none() {
            s.push_str(&format!(
                "  a guest's shell:      ip netns exec {} bash\n",
                self.ns("app-b")
            ));
        }
        s.push_str(&format!(
            "  logs:                 {}\n",
            self.topo.dir().join("logs").display()
        ));
        s
    }

    /// The agent of host `i` (0: hv-a, 1: hv-b).
    pub fn agent(&mut self, i: usize) -> Option<&mut RoleProcess> {
        self.agents.get_mut(i)
    }

    /// Bond server `i` (0 or 1).
    pub fn bond(&mut self, i: usize) -> Option<&mut RoleProcess> {
        self.bonds.get_mut(i)
    }

    /// Restarts the controller (same embedded store) and waits for its API.
    pub async fn restart_controller(&mut self) -> Result<(), DemoError> {
        self.controller.restart()?;
        self.wait_for_api().await
    }

    /// The controller's API.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// Every route host `i`'s dp has, per VNI, for the VNIs of its
    /// interfaces and their peers (read over the dp's gRPC API).
    pub async fn dp_routes(
        &self,
        i: usize,
    ) -> Result<BTreeMap<u32, BTreeMap<ipnet::IpNet, Hop>>, DemoError> {
        let dp = self
            .dps
            .get(i)
            .ok_or_else(|| DemoError::Io(format!("no host {i}")))?;
        let client = Dp::new(&dp.grpc.to_string()).map_err(|e| DemoError::Io(e.to_string()))?;
        let (no_vnis, no_nats) = (BTreeSet::new(), BTreeSet::new());
        let view = client
            .read(&no_vnis, &no_nats)
            .await
            .map_err(|e| DemoError::Io(e.to_string()))?;
        // Peered VNIs show up as targets of the local VNIs' routes; a
        // range around the controller's first VNIs covers the demo's.
        let vnis: BTreeSet<u32> = view
            .interfaces
            .values()
            .map(|i| i.vni)
            .chain(200..210)
            .collect();
        let view = client
            .read(&vnis, &no_nats)
            .await
            .map_err(|e| DemoError::Io(e.to_string()))?;
        Ok(view.routes)
    }

    /// Starts pinging `to` from guest `from` every 20 ms for `duration`;
    /// [`SteadyPing::finish`] waits for the end and counts.
    pub fn steady_ping(
        &self,
        from: &str,
        to: &str,
        duration: Duration,
    ) -> Result<SteadyPing, DemoError> {
        let count = (duration.as_millis() / 20).max(1).to_string();
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(from),
                "ping",
                "-4",
                "-q",
                "-i",
                "0.02",
            ])
            .args(["-c", &count, "-W", "1", to])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| DemoError::Spawn(format!("ping: {e}")))?;
        Ok(SteadyPing { child })
    }
}

/// A ping running in the background.
#[derive(Debug)]
pub struct SteadyPing {
    child: std::process::Child,
}

impl SteadyPing {
    /// Waits for the ping to end: (sent, received).
    pub async fn finish(self) -> Result<(u64, u64), DemoError> {
        let child = self.child;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| DemoError::Io(e.to_string()))?
            .map_err(|e| DemoError::Io(e.to_string()))?;
        parse_ping_counts(&String::from_utf8_lossy(&out.stdout))
            .ok_or_else(|| DemoError::Io("no ping summary".into()))
    }
}

/// The namespaces of [`Mode::Netns`]: the router, the internet and one per
/// guest; a dp per host on TAP devices with its uplink in the router; the
/// router's routes to the hosts, to the internet and (from the bond) to
/// the public addresses.
fn build_netns(
    topo: &mut Topology,
    tag: &str,
    bins: &Binaries,
    bond_addrs: Vec<SocketAddr>,
    public_vni: Vni,
) -> Result<(Vec<DpEndpoint>, RouterSync), DemoError> {
    // Namespaces: the router, the internet, one per guest.
    let (rt, inet) = (format!("{tag}rt"), format!("{tag}inet"));
    for ns in [rt.clone(), inet.clone()]
        .into_iter()
        .chain(GUESTS.iter().map(|g| format!("{tag}{}", g.0)))
    {
        topo.netns(&ns).map_err(DemoError::Io)?;
    }

    let mut dps = Vec::new();
    let mut uplinks = Vec::new();
    for h in &HOSTS {
        let router_mac = format!("22:22:22:22:{:02x}:80", h.mac);
        let dp = testbed::spawn_dp(
            topo,
            &bins.dp.display().to_string(),
            &format!("{tag}{}", &h.node[3..]),
            h.underlay,
            3,
            h.mac,
            testbed::free_port(),
            &["--pf-router-mac", &router_mac],
        )
        .map_err(DemoError::Spawn)?;
        for pf in dp.ports.iter().take(2) {
            testbed::attach(pf, &rt).map_err(DemoError::Io)?;
        }
        let pf0 = dp.ports[0].clone();
        let gw = format!("fe80::{:x}", h.mac);
        sh(
            &rt,
            &format!("ip -6 route add {} via {gw} dev {pf0}", h.prefix),
        )?;
        sh(
            &rt,
            &format!(
                "ip -6 neigh replace {gw} lladdr 22:22:22:22:{:02x}:00 dev {pf0} nud permanent",
                h.mac
            ),
        )?;
        uplinks.push(Uplink {
            prefix: h
                .prefix
                .parse()
                .map_err(|_| DemoError::Io(h.prefix.into()))?,
            dev: pf0,
        });
        dps.push(DpEndpoint {
            grpc: SocketAddr::from(([127, 0, 0, 1], dp.grpc_port)),
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], dp.metrics_port))),
        });
    }
    testbed::run(&[
        "ip", "link", "add", "rtx", "netns", &rt, "type", "veth", "peer", "name", "inx", "netns",
        &inet,
    ])
    .map_err(DemoError::Io)?;
    for cmd in [
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
        "ip link set rtx up",
        "ip addr add 198.51.100.1/24 dev rtx",
        "ip -6 addr add fc00:b::1/128 dev lo",
        // Answers the dps make themselves (ping to a NAT IP) go back to
        // the tunnel's source: make that the decapsulating SID.
        &format!("ip sr tunsrc set {ROUTER_SID}"),
        &format!(
            "ip -6 route add {ROUTER_SID}/128 encap seg6local action End.DX4 nh4 {INTERNET} dev rtx"
        ),
    ] {
        sh(&rt, cmd)?;
    }
    for cmd in [
        "ip link set inx up",
        &format!("ip addr add {INTERNET}/24 dev inx"),
        "ip route add default via 198.51.100.1",
    ] {
        sh(&inet, cmd)?;
    }

    Ok((dps, RouterSync::spawn(bond_addrs, public_vni, rt, uplinks)))
}

/// `N packets transmitted, M received` from ping's summary.
fn parse_ping_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some((nums.next()??, nums.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_counts() {
        let out = "--- 10.0.0.22 ping statistics ---\n\
                   500 packets transmitted, 497 received, 0.6% packet loss, time 10s\n";
        assert_eq!(parse_ping_counts(out), Some((500, 497)));
        assert_eq!(parse_ping_counts("nothing"), None);
    }

    #[test]
    fn the_manifests_parse() {
        for (file, text) in MANIFESTS {
            let objs = parse_manifests(text, "default").unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!objs.is_empty(), "{file}");
        }
    }
}
