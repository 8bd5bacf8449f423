//! The YAML blocks of the seeds (`../shared/seeds/*.txt`), and their
//! re-indented copies in `examples/seeds/` for blocks that lost their
//! indentation there.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The project root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Lines of a seed that carry prose glued to the YAML: (file prefix,
/// line number, the YAML part).
const GLUED: &[(&str, usize, &str)] = &[("003_", 29, "ipFamily: IPv4")];

pub struct Block {
    /// The seed file.
    pub file: String,
    /// Its first line (1-based).
    pub first_line: usize,
    /// The lines as the seed has them.
    pub lines: Vec<String>,
}

fn yamlish(line: &str) -> bool {
    let t = line.trim_start();
    if t.is_empty() || line.starts_with("```") || line.starts_with("Key Fields") {
        return false;
    }
    if t.starts_with('#') || t.starts_with("- ") {
        return true;
    }
    match t.split_once(':') {
        Some((key, rest)) => {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
                && (rest.is_empty() || rest.starts_with(' '))
        }
        None => false,
    }
}

pub fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("../shared/seeds"))
        .expect("shared/seeds beside the project")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].starts_with("apiVersion:") || lines[i] == "status:" {
                let mut j = i + 1;
                while j < lines.len() && yamlish(lines[j]) {
                    j += 1;
                    // Prose glued to a line ends the block there.
                    if GLUED.iter().any(|(p, l, _)| name.starts_with(p) && *l == j) {
                        break;
                    }
                }
                let mut block: Vec<String> = lines[i..j].iter().map(|l| (*l).to_owned()).collect();
                for (prefix, line, yaml) in GLUED {
                    if name.starts_with(prefix) && (i + 1..=j).contains(line) {
                        let l = &mut block[line - i - 1];
                        assert!(l.starts_with(yaml), "{name}:{line} changed: {l}");
                        *l = (*yaml).to_owned();
                    }
                }
                out.push(Block {
                    file: name.clone(),
                    first_line: i + 1,
                    lines: block,
                });
                i = j;
            } else {
                i += 1;
            }
        }
    }
    out
}

fn stripped(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The re-indented copy of a flat block.
pub fn golden(block: &Block) -> (String, String) {
    let want = stripped(&block.lines);
    for entry in std::fs::read_dir(root().join("examples/seeds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if stripped(&lines) == want {
            return (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            );
        }
    }
    panic!(
        "{}:{}: flat block without a re-indented copy in examples/seeds:\n{}",
        block.file,
        block.first_line,
        block.lines.join("\n")
    );
}

/// Every seed example that is a whole object, as YAML to apply: the seed's
/// own text, or its re-indented copy; with where it came from.
pub fn object_manifests() -> Vec<(String, String)> {
    blocks()
        .iter()
        .filter(|b| b.lines[0] != "status:")
        .map(|b| {
            let flat = b.lines.iter().skip(1).all(|l| !l.starts_with(' '));
            if flat {
                let (file, text) = golden(b);
                (format!("examples/seeds/{file}"), text)
            } else {
                (format!("{}:{}", b.file, b.first_line), b.lines.join("\n"))
            }
        })
        .collect()
}
