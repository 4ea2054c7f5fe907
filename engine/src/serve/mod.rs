//! `weft serve`: the engine as a long-running HTTP server for apps that embed integrations.
//!
//! - A JSON REST API under `/api/v1` for admins (integrations, customers, config vars, every
//!   instance and run) and for customers (their own instances, config vars, runs, and
//!   triggering their flows), described by the OpenAPI document at `/openapi.json`.
//! - Webhooks at `/webhooks/{instance}/{flow}`: the request becomes the run's `trigger`;
//!   answered at once with 202 and the run id, or when the run ends with the response taken
//!   from a step's result.
//! - Schedules ([`schedule`]): cron expressions with a time zone.
//! - Concurrency per flow and instance ([`gate`]): parallel, throttled, FIFO, with a bounded queue.
//!
//! Every route but `/openapi.json`, `/health` and the webhooks needs a workspace JWT or an HMAC
//! user hash ([`crate::auth`]). A customer sees only its own instances and runs; anything else
//! answers 404, so existence does not leak. Errors are `{ "error": { "code", "message" } }`.

pub mod gate;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::auth::{AuthConfig, AuthError, Principal};
use crate::runner::{RunError, RunRequest, Runner};
use crate::store::registry::{ConfigLevel, Registry};
use crate::store::{RunFilter, RunStore, RunWithSteps, SledStore, Status};
use weft_model::credential::{CredentialSpec, Scope};
use weft_model::spec::FlowSpec;
use weft_model::value::RecordedValue;
use weft_model::workspace::Workspace;

use gate::{Gate, Ticket};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest webhook body accepted by default: 6 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 6 << 20;

/// Headers never copied into a run's trigger (they carry credentials).
const PRIVATE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "x-weft-signature",
    "x-weft-user-hash",
    "proxy-authorization",
];

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest webhook body accepted.
    pub body_limit: usize,
    /// How long shutdown waits for runs in flight before recording them as interrupted.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            grace: Duration::from_secs(30),
        }
    }
}

/// The server's shared state.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

/// The gate of one flow of one instance; `None` for a parallel flow.
type FlowGate = Option<Arc<Gate>>;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    runner: Runner,
    store: Arc<SledStore>,
    auth: Result<AuthConfig, String>,
    vault: Option<Arc<crate::store::vault::Vault>>,
    /// The directory `file:` references of webhook secrets resolve against.
    base_dir: PathBuf,
    workspaces: Mutex<HashMap<String, Arc<Workspace>>>,
    gates: Mutex<HashMap<(String, String), FlowGate>>,
    in_flight: InFlight,
    options: ServeOptions,
}

/// Runs started by the server and not finished yet.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One run counted in flight from before it is handed to a task until it ends, so that a
/// shutdown between the two cannot miss it.
struct InFlightGuard(Arc<Inner>);

impl InFlightGuard {
    fn enter(inner: &Arc<Inner>) -> Self {
        inner.in_flight.count.fetch_add(1, Ordering::SeqCst);
        Self(inner.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let in_flight = &self.0.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            in_flight.idle.notify_waiters();
        }
    }
}

/// An API error: a status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weft\""),
            );
        }
        response
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Server {
    /// A server running flows with `runner` on the managed state in `store`. `auth` is the
    /// workspace's verifier, or why there is none (then every authenticated route answers 401
    /// with that reason). `vault` stores credentials written through the API.
    pub fn new(
        store: Arc<SledStore>,
        runner: Runner,
        auth: Result<AuthConfig, String>,
        vault: Option<Arc<crate::store::vault::Vault>>,
        base_dir: PathBuf,
        options: ServeOptions,
    ) -> anyhow::Result<Self> {
        let registry = store.registry()?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                runner,
                store,
                auth,
                vault,
                base_dir,
                workspaces: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                in_flight: InFlight::default(),
                options,
            }),
        })
    }

    /// The registry the server reads instances from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/openapi.json", get(openapi))
            .route("/health", get(health))
            .route("/api/v1/me", get(me))
            .route("/api/v1/integrations", get(integrations))
            .route("/api/v1/customers", get(customers))
            .route("/api/v1/customers/{id}", get(customer))
            .route(
                "/api/v1/customers/{id}/config/{name}",
                put(set_customer_config).delete(unset_customer_config),
            )
            .route(
                "/api/v1/config/{name}",
                put(set_workspace_config).delete(unset_workspace_config),
            )
            .route("/api/v1/credentials", get(list_credentials))
            .route(
                "/api/v1/credentials/{name}",
                put(put_workspace_credential).delete(delete_workspace_credential),
            )
            .route(
                "/api/v1/customers/{id}/credentials/{name}",
                put(put_customer_credential).delete(delete_customer_credential),
            )
            .route("/api/v1/instances", get(instances))
            .route("/api/v1/instances/{id}", get(instance))
            .route(
                "/api/v1/instances/{id}/config/{name}",
                put(set_instance_config).delete(unset_instance_config),
            )
            .route(
                "/api/v1/instances/{id}/flows/{flow}/runs",
                post(trigger_flow),
            )
            .route("/api/v1/runs", get(runs))
            .route("/api/v1/runs/{id}", get(run))
            .route("/webhooks/{instance}/{flow}", any(webhook))
            .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
            .with_state(self.clone())
    }

    /// Waits until no run started by the server is in flight, or `grace` passes; then records
    /// the ones still running as interrupted (`weft runs resume` continues them). Returns how
    /// many were interrupted.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        self.drain_until(tokio::time::Instant::now() + self.inner.options.grace)
            .await
    }

    /// As [`Server::drain`], waiting until `deadline` rather than for the grace period.
    pub async fn drain_until(&self, deadline: tokio::time::Instant) -> anyhow::Result<usize> {
        let in_flight = &self.inner.in_flight;
        loop {
            let idle = in_flight.idle.notified();
            if in_flight.count.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        // Runs that have not written their start records yet (they are written lazily) write
        // them now, so that they are found and recorded as interrupted.
        self.inner.runner.record_runs_in_progress()?;
        let interrupted = self.inner.store.mark_interrupted()?;
        self.inner.store.flush()?;
        Ok(interrupted.len())
    }

    /// Runs started and not finished.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.count.load(Ordering::SeqCst)
    }

    /// Forgets every cached workspace (after a change to config vars or instances).
    fn invalidate(&self) {
        self.inner
            .workspaces
            .lock()
            .expect("the cache's lock is never poisoned")
            .clear();
    }

    /// The workspace to run instance `id` with (cached until something changes).
    fn workspace_for(&self, id: &str) -> ApiResult<Arc<Workspace>> {
        if let Some(ws) = self
            .inner
            .workspaces
            .lock()
            .expect("the cache's lock is never poisoned")
            .get(id)
        {
            return Ok(ws.clone());
        }
        if self
            .inner
            .registry
            .instance(id)
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(ApiError::not_found(format!("no instance `{id}`")));
        }
        let ws = Arc::new(
            self.inner
                .registry
                .workspace_for(id, None)
                .map_err(ApiError::internal)?,
        );
        self.inner
            .workspaces
            .lock()
            .expect("the cache's lock is never poisoned")
            .insert(id.to_string(), ws.clone());
        Ok(ws)
    }

    fn gate(&self, instance: &str, flow: &FlowSpec) -> Option<Arc<Gate>> {
        self.inner
            .gates
            .lock()
            .expect("the gates' lock is never poisoned")
            .entry((instance.to_string(), flow.name.clone()))
            .or_insert_with(|| Gate::new(flow.concurrency.as_ref()))
            .clone()
    }

    /// Who sent the request: a workspace JWT (`Authorization: Bearer …`) or an HMAC user hash
    /// (`X-Weft-App-Key`, `X-Weft-User-Id`, `X-Weft-User-Hash`). A customer not in the store
    /// yet is created from the token's claims.
    fn principal(&self, headers: &HeaderMap) -> ApiResult<Principal> {
        let auth = self.inner.auth.as_ref().map_err(|why| {
            ApiError::new(StatusCode::UNAUTHORIZED, "auth_not_configured", why.clone())
        })?;
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let principal = if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "malformed_token",
                    "the Authorization header is not text",
                )
            })?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "malformed_token",
                        "the Authorization header must be `Bearer <workspace JWT>`",
                    )
                })?;
            auth.verify_token(token.trim(), now_secs())?
        } else if let Some(hash) = text("x-weft-user-hash") {
            let (Some(app_key), Some(user)) = (text("x-weft-app-key"), text("x-weft-user-id"))
            else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_claim",
                    "a user hash needs X-Weft-App-Key and X-Weft-User-Id beside X-Weft-User-Hash",
                ));
            };
            if app_key != auth.issuer() {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unknown_app_key",
                    "X-Weft-App-Key is not this workspace's key",
                ));
            }
            auth.verify_user_hash(user, hash)?
        } else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "send `Authorization: Bearer <workspace JWT>` or an HMAC user hash",
            ));
        };
        if let Principal::Customer { id, name, fields } = &principal {
            self.inner
                .registry
                .upsert_customer(id, name.as_deref(), fields)
                .map_err(ApiError::internal)?;
        }
        Ok(principal)
    }

    fn admin(&self, headers: &HeaderMap) -> ApiResult<Principal> {
        let principal = self.principal(headers)?;
        match principal {
            Principal::Admin { .. } => Ok(principal),
            Principal::Customer { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "this route needs an admin token (`isAdmin`)",
            )),
        }
    }

    /// Instance `id`, if `principal` may see it (else 404, whether or not it exists).
    fn visible_instance(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ApiResult<crate::store::registry::ManagedInstance> {
        let instance = self
            .inner
            .registry
            .instance(id)
            .map_err(ApiError::internal)?
            .filter(|i| sees(principal, &i.spec.customer))
            .ok_or_else(|| ApiError::not_found(format!("no instance `{id}`")))?;
        Ok(instance)
    }

    /// Starts a run of `flow` of `instance` with `trigger`; with `wait`, runs it to the end.
    async fn start(
        &self,
        instance: &str,
        flow: &str,
        trigger: Json,
        wait: bool,
    ) -> ApiResult<Started> {
        let ws = self.workspace_for(instance)?;
        let spec = ws
            .instance(instance)
            .and_then(|i| ws.integrations.get(&i.integration))
            .and_then(|integration| integration.spec.flows.iter().find(|f| f.name == flow))
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(format!("instance `{instance}` has no flow `{flow}`"))
            })?;
        let ticket = match self.gate(instance, &spec) {
            None => Ticket::Free,
            Some(gate) => gate.ticket().map_err(|full| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!(
                        "{} runs of `{flow}` are already waiting for instance `{instance}`; try again later",
                        full.waiting
                    ),
                )
            })?,
        };
        let prepared = self
            .inner
            .runner
            .prepare(RunRequest {
                workspace: &ws,
                instance,
                flow: Some(flow),
                trigger,
            })
            .map_err(run_error)?;
        let id = prepared.id().to_string();
        if !wait {
            // Recorded before answering, so the id is visible at once.
            self.inner
                .store
                .put_run(prepared.record())
                .map_err(ApiError::internal)?;
        }
        let server = self.clone();
        let in_flight = InFlightGuard::enter(&self.inner);
        let task = async move {
            let _in_flight = in_flight;
            let _pass = ticket.wait().await;
            server.inner.runner.run_prepared(&ws, prepared).await
        };
        // A task of its own, so that a caller who stops waiting (a sync webhook's client that
        // hangs up) does not cancel the run half-way: it goes on and is recorded.
        let task = tokio::spawn(task);
        if wait {
            let run = task
                .await
                .map_err(|e| ApiError::internal(format!("the run's task failed: {e}")))?
                .map_err(run_error)?;
            Ok(Started::Finished(Box::new(run), spec))
        } else {
            Ok(Started::Accepted(id))
        }
    }
}

enum Started {
    Accepted(String),
    Finished(Box<RunWithSteps>, FlowSpec),
}

fn sees(principal: &Principal, customer: &str) -> bool {
    match principal {
        Principal::Admin { .. } => true,
        Principal::Customer { id, .. } => id == customer,
    }
}

fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::UnknownInstance { .. } | RunError::UnknownFlow { .. } => {
            ApiError::not_found(e.to_string())
        }
        RunError::Disabled(_) => ApiError::new(StatusCode::CONFLICT, "disabled", e.to_string()),
        other => ApiError::internal(other),
    }
}

fn ok(value: Json) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn health(State(server): State<Server>) -> Response {
    axum::Json(json!({ "status": "ok", "runs_in_flight": server.in_flight() })).into_response()
}

async fn me(State(server): State<Server>, headers: HeaderMap) -> ApiResult {
    match server.principal(&headers)? {
        Principal::Admin { name } => ok(json!({ "admin": true, "name": name })),
        Principal::Customer { id, name, fields } => {
            ok(json!({ "admin": false, "customer": id, "name": name, "fields": fields }))
        }
    }
}

async fn integrations(State(server): State<Server>, headers: HeaderMap) -> ApiResult {
    server.admin(&headers)?;
    let registry = &server.inner.registry;
    let mut out = Vec::new();
    for name in registry.integration_names().map_err(ApiError::internal)? {
        let versions = registry.versions(&name).map_err(ApiError::internal)?;
        out.push(json!({
            "name": name,
            "versions": versions.iter().map(|v| json!({
                "version": v.version,
                "sha256": v.sha256,
                "published_at_ms": v.published_at_ms,
                "flows": v.spec.flows.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    ok(json!(out))
}

fn customer_json(c: &weft_model::spec::CustomerSpec) -> Json {
    json!({ "id": c.id, "name": c.name, "fields": c.fields, "config": c.config })
}

async fn customers(State(server): State<Server>, headers: HeaderMap) -> ApiResult {
    server.admin(&headers)?;
    let customers = server
        .inner
        .registry
        .customers()
        .map_err(ApiError::internal)?;
    ok(json!(
        customers.iter().map(customer_json).collect::<Vec<_>>()
    ))
}

async fn customer(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    server.admin(&headers)?;
    let customer = server
        .inner
        .registry
        .customer(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no customer `{id}`")))?;
    ok(customer_json(&customer))
}

fn vault(server: &Server) -> ApiResult<&crate::store::vault::Vault> {
    server.inner.vault.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "vault_not_configured",
            "credentials are stored encrypted under a master key: start `weft serve` with WEFT_MASTER_KEY (or WEFT_MASTER_KEY_FILE) set",
        )
    })
}

/// Stores a credential sent in the body (its secret values inline); answers with its name and
/// kind only: secrets are never returned.
fn put_credential(server: &Server, scope: Scope, name: &str, body: &[u8]) -> ApiResult {
    let vault = vault(server)?;
    let spec: CredentialSpec = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a credential (`{{\"kind\": \"api-key-secret\", \"key\": …, \"secret\": …}}`): {e}"
        ))
    })?;
    // Values are taken as given: an `env:`/`file:` reference would read the server's own
    // environment or files.
    let as_json = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    if let Some((field, _)) = as_json.as_object().into_iter().flatten().find(|(_, v)| {
        v.as_str()
            .is_some_and(|t| t.starts_with("env:") || t.starts_with("file:"))
    }) {
        return Err(ApiError::bad_request(format!(
            "field `{field}` is an `env:`/`file:` reference; through the API, send the value itself"
        )));
    }
    crate::secrets::Credential::load(&spec, name, scope.clone(), &server.inner.base_dir)
        .map_err(|e| ApiError::bad_request(format!("credential `{name}`: {e:#}")))?;
    vault.put(&scope, name, &spec).map_err(ApiError::internal)?;
    server.invalidate();
    ok(
        json!({ "name": name, "scope": scope.to_string(), "kind": spec.kind.name(), "stored": true }),
    )
}

fn delete_credential(server: &Server, scope: Scope, name: &str) -> ApiResult {
    let existed = vault(server)?
        .delete(&scope, name)
        .map_err(ApiError::internal)?;
    if !existed {
        return Err(ApiError::not_found(format!(
            "no credential `{name}` ({scope})"
        )));
    }
    server.invalidate();
    ok(json!({ "name": name, "scope": scope.to_string(), "deleted": true }))
}

async fn list_credentials(State(server): State<Server>, headers: HeaderMap) -> ApiResult {
    server.admin(&headers)?;
    let names = vault(&server)?.list().map_err(ApiError::internal)?;
    ok(json!(
        names
            .iter()
            .map(|n| json!({ "name": n.name, "scope": n.scope.to_string() }))
            .collect::<Vec<_>>()
    ))
}

async fn put_workspace_credential(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    server.admin(&headers)?;
    put_credential(&server, Scope::Workspace, &name, &body)
}

async fn delete_workspace_credential(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    server.admin(&headers)?;
    delete_credential(&server, Scope::Workspace, &name)
}

async fn put_customer_credential(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    server.admin(&headers)?;
    put_credential(&server, Scope::Customer(id), &name, &body)
}

async fn delete_customer_credential(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    server.admin(&headers)?;
    delete_credential(&server, Scope::Customer(id), &name)
}

/// An instance as the API shows it: secret config values redacted.
/// The integration version instance `instance` is pinned to.
fn pinned(
    server: &Server,
    instance: &crate::store::registry::ManagedInstance,
) -> ApiResult<Option<crate::store::registry::Published>> {
    Ok(server
        .inner
        .registry
        .versions(&instance.spec.integration)
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|p| p.version == instance.version))
}

fn instance_json(server: &Server, instance: &crate::store::registry::ManagedInstance) -> Json {
    let published = pinned(server, instance).ok().flatten();
    let secret: Vec<&String> = published
        .iter()
        .flat_map(|p| p.spec.config_vars.iter())
        .filter(|(_, spec)| spec.secret)
        .map(|(name, _)| name)
        .collect();
    let flows: Vec<&str> = published
        .iter()
        .flat_map(|p| p.spec.flows.iter())
        .map(|f| f.name.as_str())
        .collect();
    let config: Map<String, Json> = instance
        .spec
        .config
        .iter()
        .map(|(k, v)| {
            let v = if secret.contains(&k) {
                json!("[redacted]")
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    json!({
        "id": instance.spec.id,
        "name": instance.spec.name,
        "customer": instance.spec.customer,
        "integration": instance.spec.integration,
        "version": instance.version,
        "enabled": instance.spec.enabled,
        "flows": flows,
        "config": config,
        "webhook_signed": instance.spec.webhook_secret.is_some(),
    })
}

async fn instances(State(server): State<Server>, headers: HeaderMap) -> ApiResult {
    let principal = server.principal(&headers)?;
    let all = server
        .inner
        .registry
        .instances()
        .map_err(ApiError::internal)?;
    ok(json!(
        all.iter()
            .filter(|i| sees(&principal, &i.spec.customer))
            .map(|i| instance_json(&server, i))
            .collect::<Vec<_>>()
    ))
}

async fn instance(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    let instance = server.visible_instance(&principal, &id)?;
    ok(instance_json(&server, &instance))
}

fn config_value(body: &[u8]) -> ApiResult<Json> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be the var's value as JSON (`\"text\"`, `42`, `true`, …): {e}"
        ))
    })
}

/// Customer `id`, or 404.
fn known_customer(server: &Server, id: &str) -> ApiResult<()> {
    match server.inner.registry.customer(id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(format!("no customer `{id}`"))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Sets config var `name` at `level` (whose customer or instance the caller checked exists).
fn set_config(server: &Server, level: ConfigLevel, name: &str, value: Option<Json>) -> ApiResult {
    server
        .inner
        .registry
        .set_config(&level, name, value.clone())
        .map_err(ApiError::internal)?;
    server.invalidate();
    ok(json!({ "name": name, "set": value.is_some() }))
}

async fn set_workspace_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    server.admin(&headers)?;
    let value = config_value(&body)?;
    set_config(&server, ConfigLevel::Workspace, &name, Some(value))
}

async fn unset_workspace_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    server.admin(&headers)?;
    set_config(&server, ConfigLevel::Workspace, &name, None)
}

async fn set_customer_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    server.admin(&headers)?;
    known_customer(&server, &id)?;
    let value = config_value(&body)?;
    set_config(&server, ConfigLevel::Customer(id), &name, Some(value))
}

async fn unset_customer_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    server.admin(&headers)?;
    known_customer(&server, &id)?;
    set_config(&server, ConfigLevel::Customer(id), &name, None)
}

/// Checks `value` against the type the instance's integration declares for var `name`.
fn check_var(
    server: &Server,
    instance: &crate::store::registry::ManagedInstance,
    name: &str,
    value: &Json,
) -> ApiResult<()> {
    let declared = pinned(server, instance)?.and_then(|p| p.spec.config_vars.get(name).cloned());
    let Some(spec) = declared else {
        return Err(ApiError::bad_request(format!(
            "integration `{}` declares no config var `{name}`",
            instance.spec.integration
        )));
    };
    if !spec.kind.accepts(value) {
        return Err(ApiError::bad_request(format!(
            "config var `{name}` is a {}; {value} is not",
            spec.kind.name()
        )));
    }
    Ok(())
}

async fn set_instance_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    let instance = server.visible_instance(&principal, &id)?;
    let value = config_value(&body)?;
    check_var(&server, &instance, &name, &value)?;
    set_config(&server, ConfigLevel::Instance(id), &name, Some(value))
}

async fn unset_instance_config(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    server.visible_instance(&principal, &id)?;
    set_config(&server, ConfigLevel::Instance(id), &name, None)
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: Option<bool>,
}

async fn trigger_flow(
    State(server): State<Server>,
    headers: HeaderMap,
    Path((id, flow)): Path<(String, String)>,
    Query(query): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    server.visible_instance(&principal, &id)?;
    // The same shape as a webhook's trigger, so a flow reads `trigger.body` either way.
    let body: Json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    let trigger = json!({ "via": "api", "body": body });
    match server
        .start(&id, &flow, trigger, query.wait.unwrap_or(false))
        .await?
    {
        Started::Accepted(run_id) => Ok(accepted(&run_id)),
        Started::Finished(run, _) => ok(serde_json::to_value(&*run).map_err(ApiError::internal)?),
    }
}

fn accepted(run_id: &str) -> Response {
    let location = format!("/api/v1/runs/{run_id}");
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "run_id": run_id, "status": "running", "location": location })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    instance: Option<String>,
    customer: Option<String>,
    flow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn runs(
    State(server): State<Server>,
    headers: HeaderMap,
    Query(query): Query<RunsQuery>,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let customer = match &principal {
        Principal::Admin { .. } => query.customer,
        Principal::Customer { id, .. } => {
            if query.customer.as_ref().is_some_and(|c| c != id) {
                return ok(json!([]));
            }
            Some(id.clone())
        }
    };
    let filter = RunFilter {
        instance: query.instance,
        customer,
        flow: query.flow,
        status,
        since_ms: None,
        until_ms: None,
        limit: Some(query.limit.unwrap_or(100).min(1000)),
    };
    let runs = server
        .inner
        .store
        .list_runs(&filter)
        .map_err(ApiError::internal)?;
    ok(serde_json::to_value(runs).map_err(ApiError::internal)?)
}

async fn run(
    State(server): State<Server>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let principal = server.principal(&headers)?;
    let run = server
        .inner
        .store
        .get_run(&id)
        .map_err(ApiError::internal)?
        .filter(|r| sees(&principal, &r.run.customer))
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    ok(serde_json::to_value(&run).map_err(ApiError::internal)?)
}

/// `METHOD /webhooks/{instance}/{flow}`: runs the flow with the request as its trigger.
async fn webhook(
    State(server): State<Server>,
    Path((instance, flow)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let limit = server.inner.options.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the webhook body is over the {limit}-byte limit"),
        )
    })?;
    // The instance as the cached workspace has it (the cache is dropped on every write).
    let ws = server.workspace_for(&instance)?;
    let spec = ws
        .instance(&instance)
        .ok_or_else(|| ApiError::not_found(format!("no instance `{instance}`")))?;
    if let Some(reference) = &spec.webhook_secret {
        check_signature(&server, reference, &headers, &body)?;
    }

    let query: Map<String, Json> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Json::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let wait_asked = query
        .get("wait")
        .and_then(Json::as_str)
        .is_some_and(|v| v == "true" || v == "1");
    let header_map: Map<String, Json> = headers
        .iter()
        .filter(|(name, _)| !PRIVATE_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((
                name.to_string(),
                Json::String(value.to_str().ok()?.to_string()),
            ))
        })
        .collect();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.contains("+json"));
    let body_value = if body.is_empty() {
        Json::Null
    } else if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    } else {
        match std::str::from_utf8(&body) {
            Ok(text) => Json::String(text.to_string()),
            Err(_) => {
                use base64::Engine as _;
                json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&body) })
            }
        }
    };
    let trigger = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": query,
        "headers": header_map,
        "body": body_value,
    });

    let sync = wait_asked
        || ws
            .integrations
            .get(&spec.integration)
            .and_then(|i| i.spec.flows.iter().find(|f| f.name == flow))
            .and_then(|f| f.webhook.as_ref())
            .is_some_and(|w| w.sync);
    match server.start(&instance, &flow, trigger, sync).await? {
        Started::Accepted(run_id) => Ok(accepted(&run_id)),
        Started::Finished(run, spec) => Ok(webhook_response(&server, &run, &spec)),
    }
}

fn check_signature(
    server: &Server,
    reference: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let secret =
        crate::secrets::load_reference(reference, &server.inner.base_dir).map_err(|e| {
            ApiError::internal(format!(
                "the instance's webhook secret cannot be read: {e:#}"
            ))
        })?;
    let given = headers
        .get("x-weft-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_signature",
                "this webhook is signed: send X-Weft-Signature: sha256=<hex HMAC-SHA256 of the body>",
            )
        })?;
    let hex = given.strip_prefix("sha256=").unwrap_or(given);
    let expected = decode_hex(hex).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Weft-Signature is not `sha256=` followed by 64 hex digits",
        )
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| ApiError::internal("the webhook secret cannot key HMAC-SHA256"))?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Weft-Signature does not match the body",
        )
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The response of a synchronous webhook: from the response step's result.
fn webhook_response(server: &Server, run: &RunWithSteps, flow: &FlowSpec) -> Response {
    let run_id = HeaderValue::from_str(&run.run.id).ok();
    let mut response = if run.run.status == Status::Failed || run.run.status == Status::Interrupted
    {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "run_failed",
            format!(
                "run {} {}: {}",
                run.run.id,
                run.run.status,
                run.run.error.as_deref().unwrap_or("no error recorded")
            ),
        )
        .into_response()
    } else {
        let step = match flow.webhook.as_ref().and_then(|w| w.response_step.as_ref()) {
            Some(id) => run.steps.iter().find(|s| &s.id == id),
            None => run.steps.last(),
        };
        match step.and_then(|s| s.output.as_ref()) {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(RecordedValue::Json(value)) => json_response(value),
            Some(RecordedValue::Bytes(summary)) => {
                match server.inner.store.get_blob(&summary.sha256) {
                    Ok(Some(bytes)) => (
                        [(header::CONTENT_TYPE, summary.content_type.clone())],
                        bytes,
                    )
                        .into_response(),
                    _ => ApiError::internal("the step's binary result is not in the store")
                        .into_response(),
                }
            }
        }
    };
    if let Some(id) = run_id {
        response.headers_mut().insert("x-weft-run-id", id);
    }
    response
}

/// `{ status, headers, body }` becomes that response; any other value a 200 JSON body.
fn json_response(value: &Json) -> Response {
    let Some(status) = value
        .get("status")
        .and_then(Json::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return axum::Json(value.clone()).into_response();
    };
    let mut response = match value.get("body") {
        None | Some(Json::Null) => status.into_response(),
        Some(Json::String(text)) => (status, text.clone()).into_response(),
        Some(other) => (status, axum::Json(other.clone())).into_response(),
    };
    if let Some(headers) = value.get("headers").and_then(Json::as_object) {
        for (name, value) in headers {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            response.headers_mut().insert(name, value);
        }
    }
    response
}
