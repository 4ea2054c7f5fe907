//! Local stand-ins for the Contacts Sync example, so it runs end to end offline: a contacts
//! API serving pages of contacts (`GET /source/contacts?page=N`, each page naming the next),
//! and a CRM (`GET`/`PUT /crm/contacts/{id}`, `POST /crm/contacts`) that starts with some of
//! those contacts, some of them out of date, and remembers every create and update it gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The example's workspace file, as shipped in `examples/contacts-sync/`.
pub const EXAMPLE_WORKSPACE: &str = include_str!("../../../examples/contacts-sync/weft.toml");
/// The example's integration file.
pub const EXAMPLE_INTEGRATION: &str =
    include_str!("../../../examples/contacts-sync/integration.toml");

/// Contact `n` as the contacts API serves it.
pub fn contact(n: usize) -> Value {
    json!({
        "id": format!("c{n:05}"),
        "name": format!("Contact {n}"),
        "email": format!("contact{n}@example.com"),
    })
}

/// What the CRM has of contact `n` before a sync: contacts `n % 3 == 0` as the API has them,
/// `n % 3 == 1` with an old email, the others not at all.
fn crm_before(n: usize) -> Option<Value> {
    match n % 3 {
        0 => Some(contact(n)),
        1 => {
            let mut old = contact(n);
            old["email"] = json!(format!("old{n}@example.com"));
            Some(old)
        }
        _ => None,
    }
}

/// What the CRM was asked to do.
#[derive(Debug, Default, Clone)]
pub struct CrmLog {
    /// Ids created, in the order the requests came.
    pub created: Vec<String>,
    /// Ids updated, in the order the requests came.
    pub updated: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    /// Where the contacts API is, for the `next` links.
    base: String,
    pages: usize,
    per_page: usize,
    crm: Arc<Mutex<BTreeMap<String, Value>>>,
    log: Arc<Mutex<CrmLog>>,
}

/// Both stand-ins, on one loopback server, until dropped.
#[derive(Debug)]
pub struct ContactStandIns {
    /// Where they listen: the contacts API under `/source`, the CRM under `/crm`.
    pub addr: SocketAddr,
    /// How many contacts the API serves.
    pub contacts: usize,
    log: Arc<Mutex<CrmLog>>,
    task: JoinHandle<()>,
}

impl Drop for ContactStandIns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ContactStandIns {
    /// Starts the stand-ins on `127.0.0.1` serving `pages` pages of `per_page` contacts.
    pub async fn start(pages: usize, per_page: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to listen on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let contacts = pages * per_page;
        let crm: BTreeMap<String, Value> = (0..contacts)
            .filter_map(|n| {
                crm_before(n).map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c))
            })
            .collect();
        let log = Arc::new(Mutex::new(CrmLog::default()));
        let shared = Shared {
            base: format!("http://{addr}/source"),
            pages,
            per_page,
            crm: Arc::new(Mutex::new(crm)),
            log: log.clone(),
        };
        let app = Router::new()
            .route("/source/contacts", get(page))
            .route("/crm/contacts", axum::routing::post(create))
            .route("/crm/contacts/{id}", get(lookup).put(update))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            contacts,
            log,
            task,
        })
    }

    /// The contacts API's base URL.
    pub fn contacts_api(&self) -> String {
        format!("http://{}/source", self.addr)
    }

    /// The CRM's base URL.
    pub fn crm_api(&self) -> String {
        format!("http://{}/crm", self.addr)
    }

    /// What the CRM was asked to do so far.
    pub fn log(&self) -> CrmLog {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn page(
    State(shared): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    if page == 0 || page > shared.pages {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such page" })),
        )
            .into_response();
    }
    let first = (page - 1) * shared.per_page;
    let contacts: Vec<Value> = (first..first + shared.per_page).map(contact).collect();
    let next = if page < shared.pages {
        format!("{}/contacts?page={}", shared.base, page + 1)
    } else {
        String::new()
    };
    Json(json!({ "contacts": contacts, "next": next })).into_response()
}

async fn lookup(State(shared): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    match shared
        .crm
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
    {
        Some(found) => Json(found.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response(),
    }
}

async fn create(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(id) = body["id"].as_str().map(String::from) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "no id" }))).into_response();
    };
    let mut crm = shared.crm.lock().unwrap_or_else(|p| p.into_inner());
    if crm.contains_key(&id) {
        return (StatusCode::CONFLICT, Json(json!({ "error": "exists" }))).into_response();
    }
    crm.insert(id.clone(), body);
    shared
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .created
        .push(id.clone());
    (StatusCode::CREATED, Json(json!({ "created": id }))).into_response()
}

async fn update(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut crm = shared.crm.lock().unwrap_or_else(|p| p.into_inner());
    if !crm.contains_key(&id) {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response();
    }
    crm.insert(id.clone(), body);
    shared
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .updated
        .push(id.clone());
    Json(json!({ "updated": id })).into_response()
}

/// Writes the example workspace into `dir` with its config vars and grant pointed at
/// `stand_ins`. Returns the workspace file's path.
pub fn write_workspace(dir: &Path, stand_ins: &ContactStandIns) -> anyhow::Result<PathBuf> {
    let mut file: toml::Table = toml::from_str(EXAMPLE_WORKSPACE)
        .context("the example workspace shipped in the binary does not parse")?;
    let origin = format!("http://{}", stand_ins.addr);
    let mut grant = toml::Table::new();
    grant.insert(
        "allow".into(),
        vec![toml::Value::from(origin.clone())].into(),
    );
    grant.insert("allow_loopback".into(), true.into());
    let mut plugin = toml::Table::new();
    plugin.insert("source".into(), "builtin:http-request".into());
    plugin.insert("http".into(), grant.into());
    let mut plugins = toml::Table::new();
    plugins.insert("http-request".into(), plugin.into());
    file.insert("plugins".into(), plugins.into());
    let mut config = toml::Table::new();
    config.insert("contactsApi".into(), stand_ins.contacts_api().into());
    config.insert("crmApi".into(), stand_ins.crm_api().into());
    if let Some(instances) = file.get_mut("instances").and_then(|i| i.as_array_mut()) {
        for instance in instances {
            if let Some(instance) = instance.as_table_mut() {
                instance.insert("config".into(), config.clone().into());
            }
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let text = format!(
        "# Written by `weft demo contacts-sync`: examples/contacts-sync/weft.toml with the config\n\
         # vars and the grant pointed at the local stand-ins ({origin}). They stop when the demo\n\
         # ends.\n\n{}",
        toml::to_string(&file).context("failed to write the demo workspace")?
    );
    let path = dir.join("weft.toml");
    std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
    let integration = dir.join("integration.toml");
    std::fs::write(&integration, EXAMPLE_INTEGRATION)
        .with_context(|| format!("failed to write `{}`", integration.display()))?;
    Ok(path)
}
