//! A real HTTP server on loopback for the tests, recording every request it gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// The query parameters.
    pub query: BTreeMap<String, String>,
    /// The headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests to `/inflight` being answered now, and the most there were at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

/// The server: routes
/// - `/echo`: answers JSON with the request's headers and query (what an upstream that echoes
///   credentials back looks like);
/// - `/json`: `{"hello":"world","items":[1,2,3]}`;
/// - `/png`: a few bytes with `content-type: image/png`;
/// - `/status/{code}`: that status, with the request's headers echoed in the body;
/// - `/redirect?to=URL`: 302 to `URL`;
/// - `/big?size=N`: N bytes;
/// - `/protected`: 200 for `Authorization: Bearer good-token`, else 401;
/// - `/api/v2/pokemon/{name}`: a Pokemon whose avatar URL (`sprites.front_default`) 404s;
/// - `/flaky/{key}?fails=N`: 503 for the first N requests to that path, then `{"attempt": n}`;
/// - `/slow?ms=N`: `{"slept_ms": N}` after N milliseconds;
/// - `/inflight?ms=N&n=K`: `{"n": K}` after N milliseconds, counting how many such requests
///   were being answered at once ([`TestServer::most_in_flight`]);
/// - `/plugins/{stem}.wasm`: the plugin built from package `stem`.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 on a free port, on a thread of its own.
    pub fn start() -> Self {
        let shared = Shared::default();
        let seen = shared.seen.clone();
        let in_flight = shared.in_flight.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = Router::new()
                    .route("/{*path}", any(handle))
                    .with_state(shared);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("the server starts");
        Self {
            addr,
            seen,
            in_flight,
        }
    }

    /// The most `/inflight` requests that were being answered at once.
    pub fn most_in_flight(&self) -> usize {
        self.in_flight.lock().expect("lock").1
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The requests to `path` so far.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn handle(
    State(shared): State<Shared>,
    Path(path): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let nth = {
        let mut seen = shared.seen.lock().expect("lock");
        seen.push(Seen {
            path: path.clone(),
            query: query.clone(),
            headers: header_map.clone(),
            body: body.to_vec(),
        });
        seen.iter().filter(|s| s.path == path).count()
    };
    let echo = serde_json::json!({ "headers": header_map, "query": query, "body": String::from_utf8_lossy(&body) });
    match path.as_str() {
        "/echo" => axum::Json(echo).into_response(),
        "/json" => {
            axum::Json(serde_json::json!({ "hello": "world", "items": [1, 2, 3] })).into_response()
        }
        "/png" => ([(header::CONTENT_TYPE, "image/png")], PNG.to_vec()).into_response(),
        "/redirect" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                query.get("to").cloned().unwrap_or_default(),
            )],
        )
            .into_response(),
        "/big" => {
            let size: usize = query
                .get("size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1 << 20);
            vec![b'x'; size].into_response()
        }
        "/channels" => {
            if header_map.get("authorization").map(String::as_str) == Some("Bearer good-token") {
                axum::Json(serde_json::json!({ "data": [
                    { "label": "#general", "value": "C01" },
                    { "label": "#random", "value": "C02" },
                ] }))
                .into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({ "error": "bad token" })),
                )
                    .into_response()
            }
        }
        "/protected" => {
            if header_map.get("authorization").map(String::as_str) == Some("Bearer good-token") {
                axum::Json(serde_json::json!({ "ok": true })).into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({ "error": "bad token" })),
                )
                    .into_response()
            }
        }
        p if p.starts_with("/flaky/") => {
            let fails: usize = query.get("fails").and_then(|s| s.parse().ok()).unwrap_or(1);
            if nth <= fails {
                (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
            } else {
                axum::Json(serde_json::json!({ "attempt": nth })).into_response()
            }
        }
        p if p.starts_with("/plugins/") && p.ends_with(".wasm") => {
            let stem = &p["/plugins/".len()..p.len() - ".wasm".len()];
            match crate::PLUGINS.iter().find(|(s, _)| *s == stem) {
                Some((_, path)) => std::fs::read(path)
                    .map(IntoResponse::into_response)
                    .unwrap_or_else(|_| StatusCode::NOT_FOUND.into_response()),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        "/inflight" => {
            {
                let mut counts = shared.in_flight.lock().expect("lock");
                counts.0 += 1;
                counts.1 = counts.1.max(counts.0);
            }
            let ms: u64 = query.get("ms").and_then(|s| s.parse().ok()).unwrap_or(5);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            shared.in_flight.lock().expect("lock").0 -= 1;
            let n: i64 = query.get("n").and_then(|s| s.parse().ok()).unwrap_or(-1);
            axum::Json(serde_json::json!({ "n": n })).into_response()
        }
        "/slow" => {
            let ms: u64 = query.get("ms").and_then(|s| s.parse().ok()).unwrap_or(10);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            axum::Json(serde_json::json!({ "slept_ms": ms })).into_response()
        }
        p if p.starts_with("/api/v2/pokemon/") => {
            let host = header_map.get("host").cloned().unwrap_or_default();
            axum::Json(serde_json::json!({
                "name": &p["/api/v2/pokemon/".len()..],
                "sprites": { "front_default": format!("http://{host}/status/404") },
            }))
            .into_response()
        }
        p if p.starts_with("/status/") => {
            let code = p["/status/".len()..].parse().unwrap_or(500);
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                echo.to_string(),
            )
                .into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The smallest valid PNG: one transparent pixel.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
