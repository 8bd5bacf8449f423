//! Shared test fixtures.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

pub mod seeds;

/// A real etcd on loopback for one test, in its own data directory;
/// killed and removed when dropped (also when the test fails).
pub struct EtcdServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// The client URL.
    pub endpoint: String,
}

impl EtcdServer {
    /// Starts etcd named `name` on free loopback ports.
    pub fn start(name: &str) -> EtcdServer {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (free(), free());
        let dir = std::env::temp_dir().join(format!("ironnet-etcd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = std::process::Command::new("etcd")
            .args(["--name", name, "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg("--initial-cluster")
            .arg(format!("{name}={peer_url}"))
            .args(["--log-level", "error"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd not found: scripts/setup.sh installs Debian's etcd-server");
        let server = EtcdServer {
            child,
            dir,
            endpoint,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(std::time::Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A temporary directory removed when dropped (also when the test fails).
pub struct ScratchDir(pub std::path::PathBuf);

impl ScratchDir {
    /// A fresh, empty directory named after `name` and this process.
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("ironnet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
