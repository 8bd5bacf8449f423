//! Validation errors with Kubernetes-style field paths
//! (`spec.ips[0].value: must be an IPv4 address`).

use std::fmt;

/// A path into an object, as Kubernetes prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level field.
    pub fn root(name: &str) -> Self {
        FieldPath(name.to_owned())
    }

    /// A field below this one.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// An element of this list.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// An entry of this map.
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{k}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where.
    pub path: FieldPath,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every invalid field of an object; empty means valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records that `path` is invalid because of `reason`.
    pub fn add(&mut self, path: &FieldPath, reason: impl Into<String>) {
        self.0.push(FieldError {
            path: path.clone(),
            reason: reason.into(),
        });
    }

    /// Records `reason` for `path` unless `ok`.
    pub fn check(&mut self, ok: bool, path: &FieldPath, reason: impl Into<String>) {
        if !ok {
            self.add(path, reason);
        }
    }

    /// No errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` if empty.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Whether `s` is a DNS-1123 label: at most 63 of `[a-z0-9-]`, starting and
/// ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain: at most 253 characters of labels
/// joined by dots.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks an object name: a DNS-1123 subdomain (Kubernetes' default rule).
pub fn check_name(errs: &mut FieldErrors, path: &FieldPath, name: &str) {
    if name.is_empty() {
        errs.add(path, "required");
    } else if !is_dns_subdomain(name) {
        errs.add(
            path,
            format!(
                "{name:?} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        let p = FieldPath::root("spec").child("ips").index(0).child("value");
        assert_eq!(p.as_str(), "spec.ips[0].value");
        assert!(is_dns_label("network-sample"));
        assert!(!is_dns_label("Network"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("partition.node-1"));
        assert!(!is_dns_subdomain("a..b"));
    }
}
