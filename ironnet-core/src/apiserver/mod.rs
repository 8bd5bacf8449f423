//! The HTTP/JSON API in Kubernetes REST shape: the one door to the store
//! for agents and the CLI.
//!
//! - `GET /apis/<group>/<version>/namespaces/<ns>/<plural>`: a list
//!   (`?labelSelector=`), or with `?watch=true` (`&resourceVersion=`) a
//!   stream of newline-delimited `{"type": …, "object": …}` events;
//! - `GET /apis/<group>/<version>/<plural>`: across namespaces (and the
//!   cluster-scoped kinds);
//! - `POST` to a collection creates; `GET`, `PUT`, `DELETE` on
//!   `…/<plural>/<name>`; `PUT …/<name>/status` writes the status.
//!
//! Failures of requests that reach a route are `Status` bodies: 400 (invalid, bad request), 401, 404, 409
//! (exists, conflict), 410 (watch expired), 500; a malformed query string
//! or a wrong method gets axum's plain 400 or 405. With a token set, every
//! request needs `Authorization: Bearer <token>`.

pub mod status;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::meta::LabelSelector;
use crate::registry::{DynObject, KindEntry, by_plural};
use crate::store::{ObjectKey, Selection, Store};
pub use status::Status;

/// The API server's configuration and store.
#[derive(Debug)]
pub struct ApiServer<S> {
    store: S,
    token: Option<String>,
    /// Turns true when the server stops: open watch streams end.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl<S: Store> ApiServer<S> {
    /// A server of `store`, open to every caller (bind it to loopback).
    pub fn new(store: S) -> Self {
        ApiServer {
            store,
            token: None,
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Requires `Authorization: Bearer <token>` on every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The routes, ready to serve.
    pub fn router(self) -> Router {
        let token = self.token.clone();
        let app = Arc::new(self);
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/apis/{group}/{version}/{plural}",
                get(list_route::<S>).post(create_route::<S>),
            )
            .route(
                "/apis/{group}/{version}/{plural}/{name}",
                get(get_route::<S>)
                    .put(update_route::<S>)
                    .delete(delete_route::<S>),
            )
            .route(
                "/apis/{group}/{version}/{plural}/{name}/status",
                put(update_status_route::<S>),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}",
                get(list_route::<S>).post(create_route::<S>),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
                get(get_route::<S>)
                    .put(update_route::<S>)
                    .delete(delete_route::<S>),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/status",
                put(update_status_route::<S>),
            )
            .fallback(|| async { failure(Status::failure(404, "NotFound", "no such path")) })
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let token = token.clone();
                async move { authorize(token.as_deref(), req, next).await }
            }))
            .with_state(app)
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.stopping.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.send_replace(true);
            })
            .await
    }
}

async fn authorize(token: Option<&str>, req: Request, next: Next) -> Response {
    if let Some(token) = token
        && req.uri().path() != "/healthz"
    {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return failure(Status::failure(
                401,
                "Unauthorized",
                "a valid bearer token is required",
            ));
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type App<S> = State<Arc<ApiServer<S>>>;

/// Query parameters of lists and watches.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    #[serde(default)]
    watch: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    label_selector: Option<String>,
}

fn failure(s: Status) -> Response {
    let code = StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(s)).into_response()
}

fn ok_json(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

fn kind_of(group: &str, version: &str, plural: &str) -> Result<&'static KindEntry, Box<Status>> {
    by_plural(group, version, plural).ok_or_else(|| {
        Box::new(Status::failure(
            404,
            "NotFound",
            format!("the server has no resource {plural} in {group}/{version}"),
        ))
    })
}

/// Where a request points: kind, and namespace (`None`: all namespaces, or
/// cluster-scoped).
struct Target {
    kind: &'static KindEntry,
    namespace: Option<String>,
}

fn target(
    group: &str,
    version: &str,
    plural: &str,
    ns: Option<String>,
) -> Result<Target, Box<Status>> {
    let kind = kind_of(group, version, plural)?;
    if !kind.info.namespaced && ns.is_some() {
        return Err(Box::new(Status::bad_request(format!(
            "{} is cluster-scoped: no namespace in its path",
            kind.info.kind
        ))));
    }
    Ok(Target {
        kind,
        namespace: ns,
    })
}

impl Target {
    fn key(&self, name: &str) -> Result<ObjectKey, Box<Status>> {
        if self.kind.info.namespaced && self.namespace.is_none() {
            return Err(Box::new(Status::bad_request(format!(
                "{} is namespaced: use …/namespaces/<ns>/{}/{name}",
                self.kind.info.kind, self.kind.info.plural
            ))));
        }
        Ok(ObjectKey::new(
            &self.kind.info,
            self.namespace.as_deref().unwrap_or(""),
            name,
        ))
    }

    /// Parses a request body as an object of this kind in this namespace
    /// (and with `name`, if given).
    fn body(&self, body: &Bytes, name: Option<&str>) -> Result<DynObject, Box<Status>> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Box::new(Status::bad_request(format!("body is not JSON: {e}"))))?;
        let obj = DynObject::from_value(value, self.namespace.as_deref().unwrap_or(""))
            .map_err(|e| Box::new(Status::from_object_error(&e)))?;
        if obj.kind.info != self.kind.info {
            return Err(Box::new(Status::bad_request(format!(
                "a {} sent to the {} collection",
                obj.kind.info.kind, self.kind.info.plural
            ))));
        }
        let meta = obj.meta();
        if self.kind.info.namespaced && self.namespace.as_deref() != Some(meta.namespace.as_str()) {
            return Err(Box::new(Status::bad_request(format!(
                "metadata.namespace {:?} does not match the path",
                meta.namespace
            ))));
        }
        if let Some(name) = name
            && meta.name != name
        {
            return Err(Box::new(Status::bad_request(format!(
                "metadata.name {:?} does not match the path ({name:?})",
                meta.name
            ))));
        }
        Ok(obj)
    }
}

async fn list<S: Store>(app: Arc<ApiServer<S>>, t: Target, params: ListParams) -> Response {
    let mut sel = Selection::kind(t.kind.info);
    sel.namespace = t.namespace.clone();
    if let Some(text) = params.label_selector.as_deref().filter(|s| !s.is_empty()) {
        match LabelSelector::parse(text) {
            Ok(l) => sel.labels = Some(l),
            Err(e) => return failure(Status::bad_request(format!("labelSelector: {e}"))),
        }
    }
    let from = match params.resource_version.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return failure(Status::bad_request(format!(
                    "resourceVersion {v:?} is not a number"
                )));
            }
        },
    };
    if matches!(params.watch.as_deref(), Some("true" | "1")) {
        return watch(app, sel, from.unwrap_or(0)).await;
    }
    match app.store.list(&sel).await {
        Ok((items, version)) => ok_json(
            StatusCode::OK,
            &json!({
                "apiVersion": t.kind.info.api_version(),
                "kind": format!("{}List", t.kind.info.kind),
                "metadata": {"resourceVersion": version.to_string()},
                "items": items.into_iter().map(|o| o.value).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => failure(Status::from_store_error(&e)),
    }
}

async fn watch<S: Store>(app: Arc<ApiServer<S>>, sel: Selection, from: u64) -> Response {
    let mut w = match app.store.watch(sel, from).await {
        Ok(w) => w,
        Err(e) => return failure(Status::from_store_error(&e)),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut stopping = app.stopping.subscribe();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                n = w.next() => n,
                // The caller hung up, or the server stops.
                () = tx.closed() => return,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let line = match next {
                Ok(Some(ev)) => json!({"type": ev.ty.as_str(), "object": ev.object.value}),
                Ok(None) => return,
                Err(e) => json!({"type": "ERROR", "object": Status::from_store_error(&e)}),
            };
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.push(b'\n');
            let end = line["type"] == "ERROR";
            // A caller that stops reading must not hold the server up.
            let sent = tokio::select! {
                r = tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
                _ = stopping.wait_for(|s| *s) => false,
            };
            if !sent || end {
                return;
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn create<S: Store>(app: Arc<ApiServer<S>>, t: Target, body: Bytes) -> Response {
    if t.kind.info.namespaced && t.namespace.is_none() {
        return failure(Status::bad_request(format!(
            "{} is namespaced: POST to …/namespaces/<ns>/{}",
            t.kind.info.kind, t.kind.info.plural
        )));
    }
    let obj = match t.body(&body, None) {
        Ok(o) => o,
        Err(s) => return failure(*s),
    };
    match app.store.create(obj).await {
        Ok(o) => ok_json(StatusCode::CREATED, &o.value),
        Err(e) => failure(Status::from_store_error(&e)),
    }
}

async fn get_one<S: Store>(app: Arc<ApiServer<S>>, t: Target, name: String) -> Response {
    let key = match t.key(&name) {
        Ok(k) => k,
        Err(s) => return failure(*s),
    };
    match app.store.get(&key).await {
        Ok(o) => ok_json(StatusCode::OK, &o.value),
        Err(e) => failure(Status::from_store_error(&e)),
    }
}

async fn update<S: Store>(
    app: Arc<ApiServer<S>>,
    t: Target,
    name: String,
    body: Bytes,
    status_only: bool,
) -> Response {
    if let Err(r) = t.key(&name) {
        return failure(*r);
    }
    let obj = match t.body(&body, Some(&name)) {
        Ok(o) => o,
        Err(s) => return failure(*s),
    };
    let result = if status_only {
        app.store.update_status(obj).await
    } else {
        app.store.update(obj).await
    };
    match result {
        Ok(o) => ok_json(StatusCode::OK, &o.value),
        Err(e) => failure(Status::from_store_error(&e)),
    }
}

async fn delete<S: Store>(app: Arc<ApiServer<S>>, t: Target, name: String) -> Response {
    let key = match t.key(&name) {
        Ok(k) => k,
        Err(s) => return failure(*s),
    };
    match app.store.delete(&key).await {
        Ok(Some(o)) => ok_json(StatusCode::OK, &o.value),
        Ok(None) => ok_json(
            StatusCode::OK,
            &json!(Status::success(format!("{key} deleted"))),
        ),
        Err(e) => failure(Status::from_store_error(&e)),
    }
}

/// The parameters of every API path (`ns` and `name` where the path has
/// them).
#[derive(Debug, Deserialize)]
struct PathParams {
    group: String,
    version: String,
    #[serde(default)]
    ns: Option<String>,
    plural: String,
    #[serde(default)]
    name: String,
}

impl PathParams {
    fn target(&self) -> Result<Target, Box<Status>> {
        target(&self.group, &self.version, &self.plural, self.ns.clone())
    }
}

async fn list_route<S: Store>(
    State(app): App<S>,
    Path(p): Path<PathParams>,
    Query(q): Query<ListParams>,
) -> Response {
    match p.target() {
        Ok(t) => list(app, t, q).await,
        Err(s) => failure(*s),
    }
}

async fn create_route<S: Store>(
    State(app): App<S>,
    Path(p): Path<PathParams>,
    body: Bytes,
) -> Response {
    match p.target() {
        Ok(t) => create(app, t, body).await,
        Err(s) => failure(*s),
    }
}

async fn get_route<S: Store>(State(app): App<S>, Path(p): Path<PathParams>) -> Response {
    match p.target() {
        Ok(t) => get_one(app, t, p.name).await,
        Err(s) => failure(*s),
    }
}

async fn update_route<S: Store>(
    State(app): App<S>,
    Path(p): Path<PathParams>,
    body: Bytes,
) -> Response {
    match p.target() {
        Ok(t) => update(app, t, p.name, body, false).await,
        Err(s) => failure(*s),
    }
}

async fn update_status_route<S: Store>(
    State(app): App<S>,
    Path(p): Path<PathParams>,
    body: Bytes,
) -> Response {
    match p.target() {
        Ok(t) => update(app, t, p.name, body, true).await,
        Err(s) => failure(*s),
    }
}

async fn delete_route<S: Store>(State(app): App<S>, Path(p): Path<PathParams>) -> Response {
    match p.target() {
        Ok(t) => delete(app, t, p.name).await,
        Err(s) => failure(*s),
    }
}
