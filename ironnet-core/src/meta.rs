//! Object metadata, owner references and label selectors, as Kubernetes
//! defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldErrors, FieldPath, check_name, is_dns_subdomain};

/// Labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// `metadata` of every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name, unique per kind and namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix for a generated name when `name` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// Namespace (empty for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Unique id, set by the store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
    /// Version of this object in the store, for optimistic concurrency.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Spec changes so far (set by the store).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// When the store created it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// When deletion was requested while finalizers remained (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Owners; an object whose owners are all gone is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Finalizers that must be removed before the object goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A reference to an owning object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// Owner's apiVersion.
    pub api_version: String,
    /// Owner's kind.
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// Owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether deleting the owner waits for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl ObjectMeta {
    /// Checks name (or generateName), labels, annotations and owner
    /// references under `path` (`metadata`).
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath, namespaced: bool) {
        if self.name.is_empty() && !self.generate_name.is_empty() {
            let base = self.generate_name.trim_end_matches('-');
            if !base.is_empty() && !is_dns_subdomain(base) {
                errs.add(
                    &path.child("generateName"),
                    "not a DNS-1123 subdomain prefix",
                );
            }
        } else {
            check_name(errs, &path.child("name"), &self.name);
        }
        if namespaced {
            if !self.namespace.is_empty() && !crate::validation::is_dns_label(&self.namespace) {
                errs.add(&path.child("namespace"), "not a DNS-1123 label");
            }
        } else if !self.namespace.is_empty() {
            errs.add(
                &path.child("namespace"),
                "must be empty: the kind is cluster-scoped",
            );
        }
        for (k, v) in &self.labels {
            let p = path.child("labels").key(k);
            if let Err(e) = check_label_key(k) {
                errs.add(&p, e);
            }
            if let Err(e) = check_label_value(v) {
                errs.add(&p, e);
            }
        }
        for k in self.annotations.keys() {
            if let Err(e) = check_label_key(k) {
                errs.add(&path.child("annotations").key(k), e);
            }
        }
        for (i, o) in self.owner_references.iter().enumerate() {
            let p = path.child("ownerReferences").index(i);
            for (field, value) in [
                ("apiVersion", &o.api_version),
                ("kind", &o.kind),
                ("name", &o.name),
                ("uid", &o.uid),
            ] {
                errs.check(!value.is_empty(), &p.child(field), "required");
            }
        }
        let controllers = self
            .owner_references
            .iter()
            .filter(|o| o.controller == Some(true))
            .count();
        errs.check(
            controllers <= 1,
            &path.child("ownerReferences"),
            "at most one owner may be the controller",
        );
    }

    /// The owner reference marked as controller.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true))
    }
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Checks a label or annotation key: an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 alphanumerics, `-`, `_` and `.`.
pub fn check_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!("key {k:?}: prefix must be a DNS-1123 subdomain"));
    }
    if !name_part_ok(name) {
        return Err(format!(
            "key {k:?}: name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or as a key's name part.
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || name_part_ok(v) {
        Ok(())
    } else {
        Err(format!(
            "value {v:?} must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Each `k: v` is `k In [v]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    /// Requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// How the key's value is tested.
    pub operator: SelectorOperator,
    /// Values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operators of a [`LabelSelectorRequirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label exists and its value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label exists.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// The text form that [`LabelSelector::parse`] reads back.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut terms: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            terms.push(match r.operator {
                SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                SelectorOperator::Exists => r.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", r.key),
            });
        }
        f.write_str(&terms.join(","))
    }
}

impl LabelSelector {
    /// Whether `labels` satisfy every term. An empty selector matches
    /// everything.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Checks keys, values and operator arity under `path`.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        for (k, v) in &self.match_labels {
            let p = path.child("matchLabels").key(k);
            if let Err(e) = check_label_key(k) {
                errs.add(&p, e);
            }
            if let Err(e) = check_label_value(v) {
                errs.add(&p, e);
            }
        }
        for (i, r) in self.match_expressions.iter().enumerate() {
            let p = path.child("matchExpressions").index(i);
            if let Err(e) = check_label_key(&r.key) {
                errs.add(&p.child("key"), e);
            }
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn => errs.check(
                    !r.values.is_empty(),
                    &p.child("values"),
                    "must be non-empty for In and NotIn",
                ),
                SelectorOperator::Exists | SelectorOperator::DoesNotExist => errs.check(
                    r.values.is_empty(),
                    &p.child("values"),
                    "must be empty for Exists and DoesNotExist",
                ),
            }
            for (j, v) in r.values.iter().enumerate() {
                if let Err(e) = check_label_value(v) {
                    errs.add(&p.child("values").index(j), e);
                }
            }
        }
    }

    /// Parses the `key=value,key!=value,key in (a,b),key notin (a),key,!key`
    /// text form of `?labelSelector=` and `-l`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut sel = LabelSelector::default();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = |key: &str, operator, values: Vec<String>| {
                let key = key.trim().to_owned();
                check_label_key(&key)?;
                Ok::<_, String>(LabelSelectorRequirement {
                    key,
                    operator,
                    values,
                })
            };
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| format!("{term:?}: expected (values)"))?;
                Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
            };
            if let Some(key) = term.strip_prefix('!') {
                sel.match_expressions
                    .push(req(key, SelectorOperator::DoesNotExist, vec![])?);
            } else if let Some((k, v)) = term.split_once("!=") {
                sel.match_expressions.push(req(
                    k,
                    SelectorOperator::NotIn,
                    vec![v.trim().to_owned()],
                )?);
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                let (k, v) = (k.trim(), v.trim());
                check_label_key(k)?;
                check_label_value(v)?;
                sel.match_labels.insert(k.to_owned(), v.to_owned());
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                sel.match_expressions
                    .push(req(k, SelectorOperator::NotIn, set(rest)?)?);
            } else if let Some((k, rest)) = term.split_once(" in ") {
                sel.match_expressions
                    .push(req(k, SelectorOperator::In, set(rest)?)?);
            } else {
                sel.match_expressions
                    .push(req(term, SelectorOperator::Exists, vec![])?);
            }
        }
        Ok(sel)
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

impl LabelSelectorRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_as_kubernetes() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let none = Labels::new();
        assert!(LabelSelector::default().matches(&none));
        let sel = LabelSelector::parse("app=web,tier in (front,back),!legacy").expect("parses");
        assert!(sel.matches(&web));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        let notin = LabelSelector::parse("app notin (db)").expect("parses");
        assert!(notin.matches(&none), "NotIn matches an absent key");
        assert!(notin.matches(&web));
        assert!(!notin.matches(&labels(&[("app", "db")])));
        assert!(
            LabelSelector::parse("app!=web")
                .expect("parses")
                .matches(&none)
        );
        assert!(LabelSelector::parse("tier").expect("parses").matches(&web));
        assert!(LabelSelector::parse("bad key=x").is_err());
    }

    #[test]
    fn the_text_form_reads_back() {
        for text in [
            "app=web,tier in (front,back),!legacy",
            "app notin (db),tier",
            "",
        ] {
            let sel = LabelSelector::parse(text).expect("parses");
            let again = LabelSelector::parse(&sel.to_string()).expect("reparses");
            assert_eq!(again, sel, "{text:?} -> {sel}");
        }
    }

    #[test]
    fn arity_is_checked() {
        let sel = LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: SelectorOperator::In,
                values: vec![],
            }],
        };
        let mut errs = FieldErrors::default();
        sel.validate(&mut errs, &FieldPath::root("spec").child("selector"));
        assert_eq!(
            errs.to_string(),
            "spec.selector.matchExpressions[0].values: must be non-empty for In and NotIn"
        );
    }
}
