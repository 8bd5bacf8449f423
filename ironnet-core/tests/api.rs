//! The API server on the wire: paths, status codes and `Status` bodies,
//! label selectors, the watch stream and bearer tokens, spoken to with
//! plain HTTP/1.1 requests.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ironnet_core::apiserver::ApiServer;
use ironnet_core::store::memory::MemoryStore;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn serve(token: Option<&str>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = ApiServer::new(MemoryStore::new());
    if let Some(t) = token {
        server = server.with_token(t);
    }
    tokio::spawn(server.serve(listener, std::future::pending()));
    addr
}

fn request(method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> Vec<u8> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request; the status code and the JSON body.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request(method, path, body.as_ref(), token))
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn network(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "networking.ironcore.dev/v1alpha1",
        "kind": "Network",
        "metadata": {"name": name, "labels": labels},
        "spec": {}
    })
}

const NETS: &str = "/apis/networking.ironcore.dev/v1alpha1/namespaces/default/networks";

#[tokio::test]
async fn rest_paths_status_codes_and_status_bodies() {
    let addr = serve(None).await;
    let (code, created) = call(
        addr,
        "POST",
        NETS,
        Some(network("a", json!({"app": "web"}))),
        None,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["resourceVersion"], "1");
    call(
        addr,
        "POST",
        NETS,
        Some(network("b", json!({"app": "db"}))),
        None,
    )
    .await;

    // 409 AlreadyExists.
    let (code, status) = call(addr, "POST", NETS, Some(network("a", json!({}))), None).await;
    assert_eq!(
        (code, status["kind"].as_str(), status["reason"].as_str()),
        (409, Some("Status"), Some("AlreadyExists"))
    );
    assert_eq!(status["code"], 409);

    // 404 for an object, and for a resource the server does not have.
    let (code, status) = call(addr, "GET", &format!("{NETS}/nope"), None, None).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = call(
        addr,
        "GET",
        "/apis/networking.ironcore.dev/v1alpha1/namespaces/default/widgets",
        None,
        None,
    )
    .await;
    assert_eq!(code, 404);

    // 400 with the field path for an unknown field and for invalid values.
    let mut bad = network("c", json!({}));
    bad["spec"]["colour"] = json!("blue");
    let (code, status) = call(addr, "POST", NETS, Some(bad), None).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("Invalid")));
    assert!(
        status["message"].as_str().unwrap().contains("colour"),
        "{status}"
    );
    let (code, status) = call(
        addr,
        "POST",
        NETS,
        Some(network("Bad_Name", json!({}))),
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["details"]["causes"][0]["field"], "metadata.name",
        "{status}"
    );
    // A body that is not JSON, a kind sent to another collection, a name
    // that is not the path's.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /apis/networking.ironcore.dev/v1alpha1/namespaces/default/networks HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{{{").await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let vip = json!({"apiVersion": "networking.ironcore.dev/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "v"}, "spec": {"type": "Public", "ipFamily": "IPv4"}});
    assert_eq!(call(addr, "POST", NETS, Some(vip), None).await.0, 400);
    assert_eq!(
        call(
            addr,
            "PUT",
            &format!("{NETS}/b"),
            Some(created.clone()),
            None
        )
        .await
        .0,
        400
    );

    // 409 Conflict on a stale resourceVersion; the right one updates.
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("0");
    let (code, status) = call(addr, "PUT", &format!("{NETS}/a"), Some(stale), None).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    let mut fresh = created.clone();
    fresh["metadata"]["labels"]["tier"] = json!("front");
    let (code, updated) = call(addr, "PUT", &format!("{NETS}/a"), Some(fresh), None).await;
    assert_eq!(code, 200);
    assert_eq!(updated["metadata"]["labels"]["tier"], "front");

    // Lists: per namespace, across namespaces, by label selector.
    let (code, list) = call(addr, "GET", NETS, None, None).await;
    assert_eq!((code, list["kind"].as_str()), (200, Some("NetworkList")));
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
    let (_, all) = call(
        addr,
        "GET",
        "/apis/networking.ironcore.dev/v1alpha1/networks",
        None,
        None,
    )
    .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (_, web) = call(
        addr,
        "GET",
        &format!("{NETS}?labelSelector=app%20in%20(web)"),
        None,
        None,
    )
    .await;
    let names: Vec<&str> = web["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    let (code, _) = call(
        addr,
        "GET",
        &format!("{NETS}?labelSelector=bad%20key"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 400);

    // A cluster-scoped kind has no namespace in its path.
    let node = json!({"apiVersion": "core.apinet.ironcore.dev/v1alpha1", "kind": "Node", "metadata": {"name": "n1"}});
    assert_eq!(
        call(
            addr,
            "POST",
            "/apis/core.apinet.ironcore.dev/v1alpha1/nodes",
            Some(node.clone()),
            None
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            addr,
            "POST",
            "/apis/core.apinet.ironcore.dev/v1alpha1/namespaces/default/nodes",
            Some(node),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            addr,
            "GET",
            "/apis/core.apinet.ironcore.dev/v1alpha1/nodes/n1",
            None,
            None
        )
        .await
        .0,
        200
    );

    // Delete answers a Success status; the object is gone.
    let (code, status) = call(addr, "DELETE", &format!("{NETS}/b"), None, None).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("Success")));
    assert_eq!(
        call(addr, "GET", &format!("{NETS}/b"), None, None).await.0,
        404
    );
}

#[tokio::test]
async fn watch_streams_events_and_expires_with_410() {
    let addr = serve(None).await;
    let (_, list) = call(addr, "GET", NETS, None, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request(
        "GET",
        &format!("{NETS}?watch=true&resourceVersion={rv}"),
        None,
        None,
    ))
    .await
    .unwrap();
    let mut reader = BufReader::new(s);
    call(addr, "POST", NETS, Some(network("w", json!({}))), None).await;
    call(addr, "DELETE", &format!("{NETS}/w"), None, None).await;
    let mut events = Vec::new();
    let mut line = String::new();
    while events.len() < 2 {
        line.clear();
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        // Skip the HTTP head and the chunk sizes: keep JSON objects.
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line.trim()) {
            events.push((
                v["type"].as_str().unwrap().to_owned(),
                v["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(
        events,
        [
            ("ADDED".to_owned(), "w".to_owned()),
            ("DELETED".to_owned(), "w".to_owned())
        ]
    );

    // A watch from a version the server never had: 410 Expired.
    let (code, status) = call(
        addr,
        "GET",
        &format!("{NETS}?watch=true&resourceVersion=999"),
        None,
        None,
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn a_token_is_required_when_set() {
    let addr = serve(Some("s3cret")).await;
    let (code, status) = call(addr, "GET", NETS, None, None).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    assert_eq!(call(addr, "GET", NETS, None, Some("wrong")).await.0, 401);
    assert_eq!(call(addr, "GET", NETS, None, Some("s3cret")).await.0, 200);
    assert_eq!(call(addr, "GET", "/healthz", None, None).await.0, 200);
}
