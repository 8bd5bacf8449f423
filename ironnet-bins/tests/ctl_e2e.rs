//! End to end: `ironnetctl apply -f` every seed example against a running
//! `ironnet-controller` (embedded store), then `get` and `describe` show
//! each; the objects survive a controller restart; `delete -f` removes
//! them; a token, when set, is required.
#![allow(clippy::unwrap_used)]

#[path = "../../ironnet-core/tests/common/seeds.rs"]
mod seeds;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ironnet_core::manifest::parse_manifests;

/// A running controller, killed when dropped.
struct Controller {
    child: Child,
    url: String,
}

impl Controller {
    fn start(data: &Path, extra: &[&str]) -> Controller {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ironnet-controller"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("API on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Controller { child, url }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(c: &Controller, args: &[&str], stdin: Option<&str>, token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironnetctl"));
    cmd.args(["--server", &c.url])
        .args(args)
        .env_remove("IRONNET_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("IRONNET_TOKEN", t);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ironnet-ctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_seed_example_applies_and_shows() {
    let dir = scratch("seeds");
    let data = dir.join("data");
    let manifests = seeds::object_manifests();
    assert_eq!(manifests.len(), 16, "object examples in the seeds");

    let controller = Controller::start(&data, &["--no-controllers"]);
    let mut applied = Vec::new();
    for (i, (source, yaml)) in manifests.iter().enumerate() {
        let file = dir.join(format!("seed-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let out = ok(
            &ctl(
                &controller,
                &["apply", "-f", file.to_str().unwrap()],
                None,
                None,
            ),
            source,
        );
        assert!(
            out.trim().ends_with(" created")
                || out.trim().ends_with(" configured")
                || out.trim().ends_with(" unchanged"),
            "{source}: {out}"
        );
        let obj = parse_manifests(yaml, "default").unwrap().remove(0);
        applied.push((source.clone(), obj));
    }
    // Applying everything again from stdin, as one multi-document stream,
    // changes nothing.
    let all: Vec<&str> = manifests.iter().map(|(_, y)| y.as_str()).collect();
    let out = ok(
        &ctl(
            &controller,
            &["apply", "-f", "-"],
            Some(&all.join("\n---\n")),
            None,
        ),
        "apply -f -",
    );
    assert_eq!(out.lines().count(), 16);
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");

    let check_shown = |controller: &Controller| {
        for (source, obj) in &applied {
            let m = obj.meta();
            let kind = format!("{}.{}", obj.kind.info.plural, obj.kind.info.group);
            let mut args = vec!["get", kind.as_str(), m.name.as_str(), "-o", "json"];
            if obj.kind.info.namespaced {
                args.extend(["-n", m.namespace.as_str()]);
            }
            let got: serde_json::Value =
                serde_json::from_str(&ok(&ctl(controller, &args, None, None), source)).unwrap();
            assert_eq!(got["metadata"]["name"], m.name.as_str(), "{source}");
            assert!(
                got["metadata"]["uid"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty()),
                "{source}"
            );
            // Every field the manifest set is what the server holds.
            for field in ["spec", "destinations", "ips", "targets"] {
                if let Some(want) = obj.value.get(field) {
                    assert_eq!(&got[field], want, "{source}: {field}");
                }
            }
            let mut args = vec!["describe", kind.as_str(), m.name.as_str()];
            if obj.kind.info.namespaced {
                args.extend(["-n", m.namespace.as_str()]);
            }
            let text = ok(&ctl(controller, &args, None, None), source);
            assert!(
                text.contains(&format!("Name:              {}", m.name)),
                "{source}: {text}"
            );
            assert!(
                text.contains(&format!("Kind:              {} (", obj.kind.info.kind)),
                "{source}: {text}"
            );
            let table = ok(
                &ctl(controller, &["get", kind.as_str(), "-A"], None, None),
                source,
            );
            assert!(
                table.starts_with("NAMESPACE") || table.starts_with("NAME"),
                "{table}"
            );
            assert!(
                table
                    .lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().any(|c| c == m.name)),
                "{source}: {table}"
            );
        }
    };
    check_shown(&controller);

    // The embedded store keeps everything across a restart.
    drop(controller);
    let controller = Controller::start(&data, &["--no-controllers"]);
    check_shown(&controller);

    // Errors: an unknown kind, a missing object, an invalid manifest.
    let out = ctl(&controller, &["get", "widgets"], None, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind"));
    let out = ctl(&controller, &["get", "networks", "nope"], None, None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );
    let bad =
        "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: Bad_Name}\n";
    let out = ctl(&controller, &["apply", "-f", "-"], Some(bad), None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("metadata.name"),
        "{out:?}"
    );

    // delete -f removes what apply made.
    let out = ok(
        &ctl(
            &controller,
            &["delete", "-f", "-"],
            Some(&all.join("\n---\n")),
            None,
        ),
        "delete -f -",
    );
    assert!(
        out.lines()
            .all(|l| l.ends_with(" deleted") || l.ends_with(" not found")),
        "{out}"
    );
    for (source, obj) in &applied {
        let kind = format!("{}.{}", obj.kind.info.plural, obj.kind.info.group);
        let out = ok(
            &ctl(
                &controller,
                &["get", kind.as_str(), "-A", "-o", "name"],
                None,
                None,
            ),
            source,
        );
        assert!(out.trim().is_empty(), "{source}: left {out}");
    }
    drop(controller);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_is_required_when_configured() {
    let dir = scratch("token");
    let token = dir.join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let controller = Controller::start(
        &dir.join("data"),
        &["--token-file", token.to_str().unwrap()],
    );
    let out = ctl(&controller, &["get", "networks"], None, None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let out = ctl(&controller, &["get", "networks"], None, Some("t0ken"));
    assert_eq!(ok(&out, "with token").trim(), "No networks found.");
    drop(controller);
    let _ = std::fs::remove_dir_all(&dir);
}
