//! `ironnetctl`'s commands as functions over any [`Store`] (the API
//! client in the binary, a memory store in tests), writing to any output.

pub mod table;

use std::io::Write;

use serde_json::Value;

use ironnet_core::manifest::to_yaml;
use ironnet_core::meta::LabelSelector;
use ironnet_core::registry::{DynObject, KindEntry, ObjectError, lookup};
use ironnet_core::store::{ObjectKey, Selection, Store, StoreError};
use ironnet_core::time::now_secs;

use table::{Table, age};

/// A command that failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A kind the CLI does not know.
    #[error("unknown kind {0:?} (see `ironnetctl kinds`)")]
    UnknownKind(String),
    /// A selector that does not parse.
    #[error("label selector: {0}")]
    Selector(String),
    /// A manifest that does not parse or validate.
    #[error(transparent)]
    Manifest(#[from] ObjectError),
    /// The server refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A manifest file that cannot be read, or a command given wrongly.
    #[error("{0}")]
    Usage(String),
    /// Some objects of a batch failed (each was reported).
    #[error("{0} of the objects failed")]
    Partial(usize),
}

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The kind's table.
    Table,
    /// The table with more columns and labels.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON (one object, or a list).
    Json,
    /// `kind.group/name` per object.
    Name,
}

/// The kind named `name` (`networks`, `network`, `nic`…,
/// `networks.core.apinet.ironcore.dev`); a bare name prefers the
/// user-facing `networking.ironcore.dev` kind.
pub fn resolve_kind(name: &str) -> Result<&'static KindEntry, CtlError> {
    let alias = match name.to_ascii_lowercase().as_str() {
        "nic" | "nics" => "networkinterfaces".to_owned(),
        "vip" | "vips" => "virtualips".to_owned(),
        "natgw" | "natgws" => "natgateways".to_owned(),
        "lb" | "lbs" => "loadbalancers".to_owned(),
        "netpol" | "netpols" => "networkpolicies".to_owned(),
        other => other.to_owned(),
    };
    let found = lookup(&alias);
    found
        .iter()
        .find(|e| e.info.group == "networking.ironcore.dev")
        .or(found.first())
        .copied()
        .ok_or_else(|| CtlError::UnknownKind(name.to_owned()))
}

/// `kind.group/name`, as kubectl names objects.
pub fn object_name(obj: &DynObject) -> String {
    format!(
        "{}.{}/{}",
        obj.kind.info.kind.to_ascii_lowercase(),
        obj.kind.info.group,
        obj.meta().name
    )
}

/// `manifest` laid over `stored` (JSON merge patch: objects merge, other
/// values replace, `null` removes); status and server-set metadata stay.
pub fn merge(stored: &Value, manifest: &Value) -> Value {
    match (stored, manifest) {
        (Value::Object(s), Value::Object(m)) => {
            let mut out = s.clone();
            for (k, v) in m {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = match s.get(k) {
                        Some(old) => merge(old, v),
                        None => v.clone(),
                    };
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, m) => m.clone(),
    }
}

/// Creates what does not exist and updates what does (fields the
/// manifest leaves out are kept); one line per object. Failures are
/// reported to `err` and the rest goes on.
pub async fn apply<S: Store>(
    store: &S,
    objs: Vec<DynObject>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), CtlError> {
    let mut failed = 0;
    for obj in objs {
        let name = object_name(&obj);
        let result = apply_one(store, obj).await;
        match result {
            Ok(what) => writeln!(out, "{name} {what}")?,
            Err(e) => {
                failed += 1;
                writeln!(err, "error: {name}: {e}")?;
            }
        }
    }
    if failed > 0 {
        return Err(CtlError::Partial(failed));
    }
    Ok(())
}

/// How often `apply` retries an object that changed under it.
const APPLY_ATTEMPTS: usize = 3;

/// Creates or updates one object; what happened. An object created by
/// someone else between the read and the create (a controller making a
/// load balancer's routing, say), or updated between the read and the
/// update, is read again and merged.
async fn apply_one<S: Store>(store: &S, obj: DynObject) -> Result<&'static str, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match store.get(&ObjectKey::of(&obj)).await {
            Err(StoreError::NotFound(_)) => store.create(obj.clone()).await.map(|_| "created"),
            Err(e) => Err(e),
            Ok(stored) => {
                let mut manifest = obj.value.clone();
                if let Some(o) = manifest.as_object_mut() {
                    o.remove("status");
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                        m.remove("uid");
                    }
                }
                let merged = merge(&stored.value, &manifest);
                match DynObject::from_value(merged, "") {
                    Err(e) => Err(StoreError::Invalid(e)),
                    Ok(m) if m.value == stored.value => Ok("unchanged"),
                    Ok(m) => store.update(m).await.map(|_| "configured"),
                }
            }
        };
        match result {
            Err(StoreError::AlreadyExists(_) | StoreError::Conflict { .. })
                if attempt < APPLY_ATTEMPTS => {}
            other => return other,
        }
    }
}

/// What `get`, `delete` and `watch` act on.
#[derive(Debug, Clone)]
pub struct Target {
    /// The kind.
    pub kind: &'static KindEntry,
    /// A namespace, or `None` for all (and for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// A label selector (text form).
    pub selector: Option<String>,
}

impl Target {
    fn selection(&self) -> Result<Selection, CtlError> {
        let mut sel = Selection::kind(self.kind.info);
        if self.kind.info.namespaced {
            sel.namespace = self.namespace.clone();
        }
        if let Some(text) = &self.selector {
            sel.labels = Some(LabelSelector::parse(text).map_err(CtlError::Selector)?);
        }
        Ok(sel)
    }

    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(
            &self.kind.info,
            self.namespace.as_deref().unwrap_or("default"),
            name,
        )
    }

    fn all_namespaces(&self) -> bool {
        self.kind.info.namespaced && self.namespace.is_none()
    }
}

/// Prints objects as `output` says.
fn print(
    t: &Target,
    objs: &[DynObject],
    output: Output,
    single: bool,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    match output {
        Output::Table | Output::Wide => {
            let wide = output == Output::Wide;
            let ns = t.all_namespaces();
            let mut table = Table::new(&t.kind.info, wide, ns, false);
            for o in objs {
                table.push(Table::row(&t.kind.info, &o.value, wide, ns, None));
            }
            write!(out, "{}", table.render())?;
        }
        Output::Yaml => {
            for (i, o) in objs.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", to_yaml(&o.value))?;
            }
        }
        Output::Json => {
            let v = if single && objs.len() == 1 {
                objs[0].value.clone()
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": objs.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
                })
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )?;
        }
        Output::Name => {
            for o in objs {
                writeln!(out, "{}", object_name(o))?;
            }
        }
    }
    Ok(())
}

/// `get KIND [NAME…]`.
pub async fn get<S: Store>(
    store: &S,
    t: &Target,
    names: &[String],
    output: Output,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let objs = if names.is_empty() {
        store.list(&t.selection()?).await?.0
    } else {
        let mut v = Vec::new();
        for n in names {
            v.push(store.get(&t.key(n)).await?);
        }
        v
    };
    if objs.is_empty() && matches!(output, Output::Table | Output::Wide) {
        writeln!(out, "No {} found.", t.kind.info.plural)?;
        return Ok(());
    }
    print(t, &objs, output, !names.is_empty(), out)
}

/// `describe KIND NAME`: metadata in words, then spec and status.
pub async fn describe<S: Store>(
    store: &S,
    t: &Target,
    name: &str,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let obj = store.get(&t.key(name)).await?;
    let v = &obj.value;
    let m = obj.meta();
    let none = |s: Vec<String>| {
        if s.is_empty() {
            "<none>".to_owned()
        } else {
            s.join(", ")
        }
    };
    writeln!(out, "Name:              {}", m.name)?;
    if t.kind.info.namespaced {
        writeln!(out, "Namespace:         {}", m.namespace)?;
    }
    writeln!(
        out,
        "Kind:              {} ({})",
        t.kind.info.kind,
        t.kind.info.api_version()
    )?;
    writeln!(
        out,
        "Labels:            {}",
        none(m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
    )?;
    writeln!(
        out,
        "Annotations:       {}",
        none(
            m.annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        )
    )?;
    writeln!(out, "UID:               {}", m.uid)?;
    writeln!(out, "Resource Version:  {}", m.resource_version)?;
    writeln!(out, "Generation:        {}", m.generation)?;
    if let Some(c) = &m.creation_timestamp {
        writeln!(out, "Created:           {c} ({} ago)", age(c, now_secs()))?;
    }
    if let Some(d) = &m.deletion_timestamp {
        writeln!(out, "Deleting since:    {d}")?;
    }
    writeln!(
        out,
        "Owners:            {}",
        none(
            m.owner_references
                .iter()
                .map(|r| format!("{}/{}", r.kind, r.name))
                .collect()
        )
    )?;
    writeln!(out, "Finalizers:        {}", none(m.finalizers.clone()))?;
    let mut body = v.clone();
    if let Some(o) = body.as_object_mut() {
        for k in ["apiVersion", "kind", "metadata"] {
            o.remove(k);
        }
        let status = o.remove("status");
        for (k, val) in o.iter() {
            section(out, k, val)?;
        }
        match status {
            Some(s) => section(out, "status", &s)?,
            None if t.kind.info.has_status => writeln!(out, "Status:            <none>")?,
            None => {}
        }
    }
    Ok(())
}

fn section(out: &mut impl Write, name: &str, v: &Value) -> Result<(), CtlError> {
    let mut title = name.to_owned();
    if let Some(f) = title.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    writeln!(out, "{title}:")?;
    for line in to_yaml(v).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// `delete KIND NAME…`: one line per object.
pub async fn delete<S: Store>(
    store: &S,
    t: &Target,
    names: &[String],
    out: &mut impl Write,
) -> Result<(), CtlError> {
    for n in names {
        let key = t.key(n);
        let what = match store.delete(&key).await? {
            None => "deleted",
            Some(_) => "marked for deletion (finalizers pending)",
        };
        writeln!(
            out,
            "{}.{}/{n} {what}",
            t.kind.info.kind.to_ascii_lowercase(),
            t.kind.info.group
        )?;
    }
    Ok(())
}

/// `delete -f FILE`: every object of the manifests.
pub async fn delete_objects<S: Store>(
    store: &S,
    objs: &[DynObject],
    out: &mut impl Write,
) -> Result<(), CtlError> {
    for o in objs {
        let what = match store.delete(&ObjectKey::of(o)).await {
            Ok(None) => "deleted",
            Ok(Some(_)) => "marked for deletion (finalizers pending)",
            Err(StoreError::NotFound(_)) => "not found",
            Err(e) => return Err(e.into()),
        };
        writeln!(out, "{} {what}", object_name(o))?;
    }
    Ok(())
}

/// `watch KIND`: the current objects, then one row per change, until the
/// store goes away. Relists when the watch expires.
pub async fn watch<S: Store>(
    store: &S,
    t: &Target,
    output: Output,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let sel = t.selection()?;
    let wide = output == Output::Wide;
    let ns = t.all_namespaces();
    let mut printed_header = false;
    loop {
        let (objs, version) = store.list(&sel).await?;
        let mut table = Table::new(&t.kind.info, wide, ns, true);
        for o in &objs {
            table.push(Table::row(
                &t.kind.info,
                &o.value,
                wide,
                ns,
                Some("EXISTING"),
            ));
        }
        let text = table.render();
        let skip = usize::from(printed_header);
        for line in text.lines().skip(skip) {
            writeln!(out, "{line}")?;
        }
        printed_header = true;
        out.flush()?;
        let mut w = store.watch(sel.clone(), version).await?;
        loop {
            match w.next().await {
                Ok(Some(ev)) => {
                    let e = ev.ty.as_str();
                    let mut t2 = Table::new(&t.kind.info, wide, ns, true);
                    t2.push(Table::row(
                        &t.kind.info,
                        &ev.object.value,
                        wide,
                        ns,
                        Some(e),
                    ));
                    if let Some(line) = t2.render().lines().nth(1) {
                        writeln!(out, "{line}")?;
                    }
                    out.flush()?;
                }
                Ok(None) => return Ok(()),
                Err(StoreError::Expired { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `kinds`: every kind with its plural, group and scope.
pub fn kinds(out: &mut impl Write) -> Result<(), CtlError> {
    let mut t = Table::default();
    t.push(vec![
        "NAME".into(),
        "KIND".into(),
        "GROUP".into(),
        "NAMESPACED".into(),
    ]);
    for e in ironnet_core::registry::KINDS {
        t.push(vec![
            e.info.plural.to_owned(),
            e.info.kind.to_owned(),
            e.info.api_version(),
            e.info.namespaced.to_string(),
        ]);
    }
    write!(out, "{}", t.render())?;
    Ok(())
}
