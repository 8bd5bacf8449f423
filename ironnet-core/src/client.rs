//! A client of the API server that is itself a [`Store`]: controllers,
//! agents and the CLI use the remote API exactly as they would a local
//! store.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::apiserver::status::{IMMUTABLE, Status, StatusDetails};
use crate::object::KindInfo;
use crate::registry::DynObject;
use crate::registry::ObjectError;
use crate::registry::{KindEntry, pointer_to_path};
use crate::store::{EventType, ObjectKey, Selection, Store, StoreError, Watch, WatchEvent};
use crate::validation::{FieldErrors, FieldPath};

/// How long a single request (not a watch) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to an ironnet API server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// The REST path of a collection of `kind` (in `namespace`, if any).
pub fn collection_path(kind: &KindInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced => format!(
            "/apis/{}/{}/namespaces/{ns}/{}",
            kind.group, kind.version, kind.plural
        ),
        _ => format!("/apis/{}/{}/{}", kind.group, kind.version, kind.plural),
    }
}

fn resource_path(kind: &KindInfo, namespace: &str, name: &str) -> String {
    let ns = (!namespace.is_empty()).then_some(namespace);
    format!("{}/{name}", collection_path(kind, ns))
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ApiClient {
    /// A client of the server at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, StoreError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| StoreError::backend(format!("API address {base:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(StoreError::backend(format!(
                "API address {base:?}: only http:// is supported"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Ok(ApiClient {
            base,
            token,
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<Incoming>, StoreError> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| StoreError::backend(format!("{path}: {e}")))?;
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v).map_err(StoreError::backend)?)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(StoreError::backend)?;
        self.http
            .request(req)
            .await
            .map_err(|e| StoreError::backend(format!("{}: {e}", self.base)))
    }

    /// One request with a JSON answer; failures become store errors
    /// (`key` names the object for not-found and conflicts).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&ObjectKey>,
    ) -> Result<Value, StoreError> {
        let fut = async {
            let resp = self.send(method, path, body).await?;
            let code = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(StoreError::backend)?
                .to_bytes();
            Ok::<_, StoreError>((code, bytes))
        };
        let (code, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| {
                StoreError::backend(format!("{}: no answer in {REQUEST_TIMEOUT:?}", self.base))
            })??;
        if code.is_success() {
            return serde_json::from_slice(&bytes).map_err(StoreError::backend);
        }
        Err(error_of(code, &bytes, key))
    }

    /// The raw JSON at `path` (a list, an object).
    pub async fn get_json(&self, path: &str) -> Result<Value, StoreError> {
        self.call(Method::GET, path, None, None).await
    }
}

/// The store error a failed response stands for.
fn error_of(code: StatusCode, body: &[u8], key: Option<&ObjectKey>) -> StoreError {
    let status: Option<Status> = serde_json::from_slice(body).ok();
    let (reason, message) = match &status {
        Some(s) => (s.reason.clone(), s.message.clone()),
        None => (
            String::new(),
            String::from_utf8_lossy(body).trim().to_owned(),
        ),
    };
    match (reason.as_str(), key) {
        ("NotFound", Some(k)) => StoreError::NotFound(k.clone()),
        ("AlreadyExists", Some(k)) => StoreError::AlreadyExists(k.clone()),
        ("Conflict", Some(k)) => StoreError::Conflict {
            key: k.clone(),
            stored: 0,
            given: message,
        },
        ("Invalid", Some(k)) if status.as_ref().is_some_and(|s| s.details.is_some()) => {
            invalid(k, status.and_then(|s| s.details).unwrap_or_default())
        }
        ("Expired", _) => StoreError::Expired {
            requested: 0,
            oldest: 0,
        },
        _ => StoreError::Remote {
            code: code.as_u16(),
            reason,
            message,
        },
    }
}

/// The store error of an `Invalid` status: a once-set field, or field
/// errors as the server found them.
fn invalid(key: &ObjectKey, details: StatusDetails) -> StoreError {
    let immutable = kind_for(key).ok().and_then(|entry| {
        let cause = details.causes.iter().find(|c| c.message == IMMUTABLE)?;
        entry
            .immutable_fields()
            .iter()
            .copied()
            .find(|f| pointer_to_path(f) == cause.field)
    });
    if let Some(field) = immutable {
        return StoreError::Immutable {
            key: key.clone(),
            field,
        };
    }
    let mut errors = FieldErrors::default();
    for c in &details.causes {
        errors.add(&FieldPath::root(&c.field), c.message.clone());
    }
    StoreError::Invalid(ObjectError::Invalid {
        kind: details.kind,
        name: details.name,
        errors,
    })
}

fn object(v: Value) -> Result<DynObject, StoreError> {
    Ok(DynObject::from_value(v, "")?)
}

fn query(sel: &Selection) -> String {
    sel.labels
        .as_ref()
        .map(|l| format!("labelSelector={}", encode(&l.to_string())))
        .unwrap_or_default()
}

impl Store for ApiClient {
    async fn get(&self, key: &ObjectKey) -> Result<DynObject, StoreError> {
        let kind = &kind_for(key)?.info;
        let path = resource_path(kind, &key.namespace, &key.name);
        object(self.call(Method::GET, &path, None, Some(key)).await?)
    }

    async fn list(&self, sel: &Selection) -> Result<(Vec<DynObject>, u64), StoreError> {
        let Some(kind) = sel.kind else {
            return Err(StoreError::backend("a list through the API names a kind"));
        };
        let path = format!(
            "{}?{}",
            collection_path(&kind, sel.namespace.as_deref()),
            query(sel)
        );
        let list = self.call(Method::GET, &path, None, None).await?;
        let version = list["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let items = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(object)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, version))
    }

    async fn create(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        let key = ObjectKey::of(&obj);
        let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
        let path = collection_path(&obj.kind.info, ns);
        object(
            self.call(Method::POST, &path, Some(&obj.value), Some(&key))
                .await?,
        )
    }

    async fn update(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        let key = ObjectKey::of(&obj);
        let path = resource_path(&obj.kind.info, &key.namespace, &key.name);
        object(
            self.call(Method::PUT, &path, Some(&obj.value), Some(&key))
                .await?,
        )
    }

    async fn update_status(&self, obj: DynObject) -> Result<DynObject, StoreError> {
        let key = ObjectKey::of(&obj);
        let path = format!(
            "{}/status",
            resource_path(&obj.kind.info, &key.namespace, &key.name)
        );
        object(
            self.call(Method::PUT, &path, Some(&obj.value), Some(&key))
                .await?,
        )
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<DynObject>, StoreError> {
        let kind = &kind_for(key)?.info;
        let path = resource_path(kind, &key.namespace, &key.name);
        let v = self.call(Method::DELETE, &path, None, Some(key)).await?;
        if v["kind"] == "Status" {
            return Ok(None);
        }
        object(v).map(Some)
    }

    async fn watch(&self, sel: Selection, from: u64) -> Result<Watch, StoreError> {
        let Some(kind) = sel.kind else {
            return Err(StoreError::backend("a watch through the API names a kind"));
        };
        let path = format!(
            "{}?watch=true&resourceVersion={from}&{}",
            collection_path(&kind, sel.namespace.as_deref()),
            query(&sel)
        );
        let resp = self.send(Method::GET, &path, None).await?;
        let code = resp.status();
        if !code.is_success() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(StoreError::backend)?
                .to_bytes();
            return Err(error_of(code, &bytes, None));
        }
        let (watcher, watch) = crate::store::Watcher::new(sel, from);
        tokio::spawn(read_events(resp.into_body(), watcher));
        Ok(watch)
    }
}

/// Feeds newline-delimited watch events from `body` to `watcher`.
async fn read_events(mut body: Incoming, watcher: crate::store::Watcher) {
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            // Nobody reads this watch any more: hang up.
            () = watcher.closed() => return,
        };
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(data.chunk());
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "watch stream broke");
                watcher.expire();
                return;
            }
            None => {
                // The server ended the watch (it stopped): list again.
                watcher.expire();
                return;
            }
        }
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(nl + 1);
            // An ERROR line (410) or anything unreadable: list again.
            let Some(ev) = event_of(&line) else {
                watcher.expire();
                return;
            };
            if !watcher.deliver(&ev) {
                return;
            }
        }
    }
}

/// One line of a watch stream as an event; `None` for an `ERROR` line or
/// anything unreadable.
fn event_of(line: &[u8]) -> Option<WatchEvent> {
    let v = serde_json::from_slice::<Value>(line).ok()?;
    let ty = EventType::parse(v["type"].as_str()?)?;
    let object = object(v["object"].clone()).ok()?;
    let resource_version = object.meta().resource_version.parse().unwrap_or(0);
    Some(WatchEvent {
        ty,
        object,
        resource_version,
    })
}

fn kind_for(key: &ObjectKey) -> Result<&'static KindEntry, StoreError> {
    let (group, plural) = key
        .resource
        .split_once('/')
        .ok_or_else(|| StoreError::backend(format!("bad resource {:?}", key.resource)))?;
    crate::registry::KINDS
        .iter()
        .find(|e| e.info.group == group && e.info.plural == plural)
        .ok_or_else(|| StoreError::backend(format!("unknown resource {:?}", key.resource)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
        assert_eq!(encode("x=y"), "x%3Dy");
    }
}
