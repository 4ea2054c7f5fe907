//! `weft serve`: the engine as a long-running HTTP server for apps that embed integrations.
//!
//! - A JSON REST API under `/api/v1` for admins (integrations, customers, config vars, every
//!   instance and run) and for customers (their own instances, config vars, runs, and
//!   triggering their flows), described by the OpenAPI document at `/openapi.json`.
//! - Webhooks ([`webhooks`]) at each flow's secret `/webhooks/{token}` (and, for signed
//!   instances, `/webhooks/{instance}/{flow}`): the request becomes the run's `trigger`;
//!   answered at once with 202 and the run id, or when the run ends with the reply taken from
//!   a step's result ([`reply`]).
//! - Schedules ([`schedule`]): cron expressions with a time zone.
//! - Concurrency per flow and instance ([`gate`]): parallel, throttled, FIFO, with a bounded queue.
//! - For operators: `/health` (liveness), `/ready` (readiness, 503 once shutting down) and
//!   `/metrics` (Prometheus text format, admins only; see [`crate::observe`]).
//!
//! Every route but `/openapi.json`, `/health`, `/ready` and the webhooks needs a workspace JWT
//! or an HMAC user hash ([`crate::auth`]). A customer sees only its own instances and runs;
//! anything else answers 404, so existence does not leak. Errors are `{ "error": { "code", "message" } }`.

mod api;
mod auth;
mod data_source;
mod error;
mod extract;
mod front;
pub mod gate;
mod oauth;
mod reply;
pub mod schedule;
mod self_service;
mod ui;
mod webhook_signature;
mod webhooks;

use api::config::*;
use api::credentials::*;
use api::customers::*;
use api::instances::*;
use api::integrations::*;
use api::marketplace as market;
use api::meta::*;
use api::ops::*;
use api::runs::*;
pub use error::ApiError;
use error::ApiResult;
use webhooks::*;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde_json::Value as Json;
use tokio::sync::Notify;

use crate::auth::{AuthConfig, Principal};
use crate::runner::{RunError, RunRequest, Runner};
use crate::store::registry::Registry;
use crate::store::{RunStore, RunWithSteps, Store, WebhookTokens};
use weft_model::spec::FlowSpec;
use weft_model::workspace::Workspace;

use gate::{Gate, Ticket};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest webhook body accepted by default: 6 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 6 << 20;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest webhook body accepted.
    pub body_limit: usize,
    /// How long shutdown waits for runs in flight before recording them as interrupted.
    pub grace: Duration,
    /// Serve webhook replies with `Content-Security-Policy: sandbox`, so that an HTML body
    /// from a plugin cannot run script on the server's origin.
    pub sandbox_replies: bool,
    /// Whether runs are run here or queued for workers.
    pub role: Role,
}

/// What a server does with the runs it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Runs them itself (one process does everything).
    #[default]
    All,
    /// Queues them in the PostgreSQL store for `weft worker` processes ([`front`]).
    Front,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            grace: Duration::from_secs(30),
            sandbox_replies: true,
            role: Role::All,
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
    /// Opened once: a webhook request looks its token up here.
    webhook_tokens: WebhookTokens,
    runner: Runner,
    store: Arc<Store>,
    auth: Result<AuthConfig, String>,
    vault: Option<Arc<crate::store::vault::Vault>>,
    /// The directory `file:` references of webhook secrets resolve against.
    base_dir: PathBuf,
    workspaces: Mutex<HashMap<String, Arc<Workspace>>>,
    gates: Mutex<HashMap<(String, String), FlowGate>>,
    in_flight: InFlight,
    /// Set by [`Server::begin_shutdown`]: `/ready` answers 503 from then on.
    shutting_down: AtomicBool,
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

impl Server {
    /// A server running flows with `runner` on the managed state in `store`. `auth` is the
    /// workspace's verifier, or why there is none (then every authenticated route answers 401
    /// with that reason). `vault` stores credentials written through the API.
    pub fn new(
        store: Arc<Store>,
        runner: Runner,
        auth: Result<AuthConfig, String>,
        vault: Option<Arc<crate::store::vault::Vault>>,
        base_dir: PathBuf,
        options: ServeOptions,
    ) -> anyhow::Result<Self> {
        let registry = store.registry()?;
        let webhook_tokens = store.webhook_tokens()?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                webhook_tokens,
                runner,
                store,
                auth,
                vault,
                base_dir,
                workspaces: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                in_flight: InFlight::default(),
                shutting_down: AtomicBool::new(false),
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
            .route("/ready", get(ready))
            .route("/metrics", get(prometheus))
            .route("/api/v1/me", get(me))
            .route("/api/v1/integrations", get(integrations))
            .route("/api/v1/customers", get(customers))
            .route("/api/v1/customers/{customer}", get(customer))
            .route(
                "/api/v1/customers/{customer}/config/{name}",
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
                "/api/v1/customers/{customer}/credentials/{name}",
                put(put_customer_credential).delete(delete_customer_credential),
            )
            .route("/api/v1/instances", get(instances))
            .route(
                "/api/v1/instances/{instance}",
                get(instance).delete(market::remove),
            )
            .route("/api/v1/marketplace", get(market::marketplace))
            .route("/api/v1/marketplace/{integration}", post(market::activate))
            .route("/api/v1/instances/{instance}/wizard", get(market::wizard))
            .route(
                "/api/v1/instances/{instance}/config",
                put(market::put_config),
            )
            .route("/api/v1/instances/{instance}/enable", post(market::enable))
            .route(
                "/api/v1/instances/{instance}/disable",
                post(market::disable),
            )
            .route(
                "/api/v1/instances/{instance}/connections/{name}",
                put(market::connect).delete(market::disconnect),
            )
            .route(
                "/api/v1/instances/{instance}/connections/{name}/authorize",
                post(oauth::authorize),
            )
            .route(
                "/api/v1/instances/{instance}/config/{name}",
                put(set_instance_config).delete(unset_instance_config),
            )
            .route(
                "/api/v1/instances/{instance}/flows/{flow}/runs",
                post(trigger_flow),
            )
            .route("/api/v1/runs", get(runs))
            .route("/api/v1/runs/{run}", get(run))
            .route(
                "/api/v1/instances/{instance}/flows/{flow}/webhook/rotate",
                post(rotate_webhook),
            )
            .route("/webhooks/{token}", webhook_methods(webhook_by_token))
            .route(
                "/webhooks/{instance}/{flow}",
                webhook_methods(webhook_by_name),
            )
            .merge(ui::routes())
            .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
            .layer(axum::middleware::map_response(no_sniffing))
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

    /// The secret address of the webhook of `instance`'s flow `flow`, `/webhooks/{token}`
    /// (the token is made on first use).
    pub fn webhook_path(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        let token = self.inner.webhook_tokens.ensure(instance, flow)?;
        Ok(format!("/webhooks/{token}"))
    }

    /// Every instance flow with the secret address of its webhook, made where missing:
    /// `(instance, flow, path)`.
    pub fn webhooks(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        self.inner
            .registry
            .instance_flows()?
            .into_iter()
            .map(|(instance, flow)| {
                let path = self.webhook_path(&instance, &flow)?;
                Ok((instance, flow, path))
            })
            .collect()
    }

    /// Says the server is shutting down: `/ready` answers 503 from now on, so that a load
    /// balancer stops sending it work. Call it first when told to stop.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`Server::begin_shutdown`] was called.
    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Runs started and not finished.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.count.load(Ordering::SeqCst)
    }

    /// The workspace's `[embed]` (the defaults when it has none).
    fn embed(&self) -> weft_model::spec::EmbedSpec {
        self.inner
            .registry
            .workspace()
            .ok()
            .flatten()
            .and_then(|w| w.embed)
            .unwrap_or_default()
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
        let ws = Arc::new(self.inner.registry.workspace_for(id, None).map_err(|e| {
            if e.downcast_ref::<weft_model::ValidationErrors>().is_some() {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "instance_not_runnable",
                    format!("instance `{id}` cannot run as the store has it now: {e:#}"),
                )
            } else {
                ApiError::internal(format!("{e:#}"))
            }
        })?);
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

    /// Starts a run of `flow` of `instance` with `trigger`, answering as `mode` says.
    async fn start(
        &self,
        instance: &str,
        flow: &str,
        trigger: Json,
        mode: Mode,
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
        if self.inner.options.role == Role::Front {
            return self
                .start_queued(&ws, instance, flow, trigger, spec, mode)
                .await;
        }
        let ticket = match self.gate(instance, &spec) {
            None => Ticket::Free,
            Some(gate) => gate
                .ticket()
                .map_err(|full| queue_full(instance, flow, full.waiting))?,
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
        let prepared = match (mode, reply::answering_step(&spec)) {
            (Mode::Answer, Some(step)) => prepared.answering(step),
            _ => prepared,
        };
        let wait = mode != Mode::Accept;
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

/// The methods a webhook answers (any other gets 405 with `Allow`).
fn webhook_methods<H, T>(handler: H) -> axum::routing::MethodRouter<Server>
where
    H: axum::handler::Handler<T, Server>,
    T: 'static,
{
    get(handler.clone())
        .post(handler.clone())
        .put(handler.clone())
        .patch(handler.clone())
        .delete(handler)
}

/// How a started run is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At once, with its id.
    Accept,
    /// When it ends, with its record.
    Wait,
    /// When it ends, with a step's result as a webhook reply ([`reply`]).
    Answer,
}

enum Started {
    Accepted(String),
    Finished(Box<RunWithSteps>, FlowSpec),
}

/// The answer to a run refused because `waiting` runs of its flow already wait for their turn.
fn queue_full(instance: &str, flow: &str, waiting: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "queue_full",
        format!(
            "{waiting} runs of `{flow}` are already waiting for instance `{instance}`; try again later"
        ),
    )
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

/// Every response says its content type is meant: a browser never guesses script out of a
/// body.
async fn no_sniffing(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

fn ok(value: Json) -> ApiResult {
    Ok(axum::Json(value).into_response())
}
