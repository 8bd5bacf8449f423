//! The `ironnet-bond` binary end to end on loopback: a server, a client
//! that announces and a client that subscribes and prints what it learns.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the child when dropped, also when the test fails.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironnet-bond"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Lines<BufReader<ChildStdout>> = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Proc(child), rx)
}

fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("no output in time")
}

#[test]
fn server_and_clients_exchange_routes() {
    let (_server, out) = spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--keepalive",
        "1",
    ]);
    let listening = next_line(&out);
    let addr = listening.strip_prefix("listening on ").unwrap().to_owned();
    assert!(next_line(&out).starts_with("status page on http://127.0.0.1:"));

    let (_announcer, _a) = spawn(&[
        "client",
        "--server",
        &addr,
        "--announce",
        "100#10.1.0.0/16#fd00::1",
        "--announce",
        "100#203.0.113.1/32#fd00::1#NAT#32768#65535",
    ]);
    let (_subscriber, sub) = spawn(&["client", "--server", &addr, "--subscribe", "100"]);
    let mut got = vec![next_line(&sub), next_line(&sub)];
    got.sort();
    assert_eq!(
        got,
        [
            "ADD 100 10.1.0.0/16 via fd00::1 vni 0 (STD)",
            "ADD 100 203.0.113.1/32 via fd00::1 vni 0 (NAT 32768-65535)",
        ]
    );
    // The announcer stops: its routes are withdrawn.
    drop(_announcer);
    let mut gone = vec![next_line(&sub), next_line(&sub)];
    gone.sort();
    assert!(
        gone.iter().all(|l| l.starts_with("REMOVE 100 ")),
        "{gone:?}"
    );
}

#[test]
fn bad_announcements_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ironnet-bond"))
        .args([
            "client",
            "--server",
            "127.0.0.1:1",
            "--announce",
            "1#10.0.0.0/8#fd00::1#NAT",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NAT needs #FROM#TO ports"), "{err}");
}
