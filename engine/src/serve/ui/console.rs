//! The console for operators: integrations and their versions, customers, instances (with each
//! config var's value and where it came from), connections' status, and runs, each drawn as a
//! timeline of its steps with inputs, outputs, logs and errors one click away, and replay and
//! resume buttons.
//!
//! An operator signs in with an admin token (a workspace JWT with `isAdmin`); the console keeps
//! it in an HttpOnly, SameSite=Strict cookie scoped to `/console` and checks it on every request
//! as the API checks its header, so the console holds no sessions of its own and works the same
//! behind several front ends. Forms that change something also need their `Origin` to be this
//! server.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use weft_model::records::{RunFilter, Status};

use super::render;
use super::timeline::{format_ms, timeline};
use crate::auth::Principal;
use crate::serve::auth::now_secs;
use crate::serve::extract::{ApiPath, ApiQuery};
use crate::serve::{InFlightGuard, Server};
use crate::store::RunStore;

/// The cookie that holds the operator's admin token.
const COOKIE: &str = "weft_console";
/// How long a sign-in lasts at most (the token's own expiry may end it sooner).
const SIGN_IN_SECS: u64 = 8 * 3600;

pub(in crate::serve) fn routes() -> Router<Server> {
    Router::new()
        .route("/console", get(home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/instances/{id}", get(instance_page))
        .route("/console/runs", get(runs_page))
        .route("/console/runs/{id}", get(run_page))
        .route("/console/runs/{id}/replay", post(replay))
        .route("/console/runs/{id}/resume", post(resume))
}

/// A page only operators see, or the answer that sends the browser to sign in.
fn signed_in(server: &Server, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE}=")))
        .map(str::to_string);
    let Some(token) = token else {
        return Err(Box::new(Redirect::to("/console/login").into_response()));
    };
    match server.inner.auth.as_ref() {
        Ok(auth) => match auth.verify_token(&token, now_secs()) {
            Ok(Principal::Admin { .. }) => Ok(()),
            _ => Err(Box::new(
                Redirect::to("/console/login?expired=1").into_response(),
            )),
        },
        Err(_) => Err(Box::new(Redirect::to("/console/login").into_response())),
    }
}

/// Refuses a form sent from another origin (the cookie is SameSite=Strict already; this holds
/// even for browsers that do not honour that).
fn same_origin(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if bare == host {
        Ok(())
    } else {
        Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "this form must be sent from the console itself",
            )
                .into_response(),
        ))
    }
}

fn page(name: &str, context: Json) -> Response {
    render(StatusCode::OK, name, context, "'none'")
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    expired: Option<u8>,
}

async fn login_page(
    State(server): State<Server>,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> Response {
    let problem = match (&server.inner.auth, query.expired) {
        (Err(why), _) => Some(format!(
            "The console needs `[auth]` in the workspace file: {why}"
        )),
        (Ok(_), Some(_)) => Some("Your sign-in expired or was refused; sign in again.".into()),
        _ => None,
    };
    page("console_login.html", json!({ "problem": problem }))
}

async fn login(
    State(server): State<Server>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = same_origin(&headers) {
        return *refused;
    }
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let verdict = match server.inner.auth.as_ref() {
        Err(why) => Err(format!(
            "The console needs `[auth]` in the workspace file: {why}"
        )),
        Ok(auth) => match auth.verify_token(&token, now_secs()) {
            Ok(Principal::Admin { .. }) => Ok(()),
            Ok(Principal::Customer { .. }) => Err(
                "That is a customer's token; the console needs an admin token (`isAdmin`).".into(),
            ),
            Err(e) => Err(format!("The token was refused: {}", e.message)),
        },
    };
    if let Err(problem) = verdict {
        return render(
            StatusCode::UNAUTHORIZED,
            "console_login.html",
            json!({ "problem": problem }),
            "'none'",
        );
    }
    let secure = if is_loopback(&headers) {
        ""
    } else {
        "; Secure"
    };
    let cookie = format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={SIGN_IN_SECS}{secure}"
    );
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether the browser reached the server on a loopback address, where there is no TLS to
/// require (a `Secure` cookie would not come back over plain HTTP elsewhere).
fn is_loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn logout(headers: HeaderMap) -> Response {
    if let Err(refused) = same_origin(&headers) {
        return *refused;
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "weft_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the console could not read the store: {e}"),
    )
        .into_response()
}

async fn home(State(server): State<Server>, headers: HeaderMap) -> Response {
    if let Err(sign_in) = signed_in(&server, &headers) {
        return *sign_in;
    }
    let registry = &server.inner.registry;
    let result = (|| -> anyhow::Result<Json> {
        let mut integrations = Vec::new();
        for name in registry.integration_names()? {
            let versions = registry.versions(&name)?;
            let listed = versions
                .last()
                .and_then(|p| p.spec.marketplace.as_ref())
                .is_some_and(|m| m.listed);
            integrations.push(json!({
                "name": name,
                "versions": versions.iter().map(|p| json!({
                    "version": p.version,
                    "published": format_time(p.published_at_ms),
                })).collect::<Vec<_>>(),
                "listed": listed,
            }));
        }
        let customers = registry.customers()?;
        let mut instances = Vec::new();
        for instance in registry.instances()? {
            let connections = server.connections(&instance).unwrap_or_default();
            let count = |status: &str| connections.iter().filter(|c| c.status() == status).count();
            let summary = match (connections.len(), count("failed")) {
                (0, _) => String::new(),
                (all, 0) => format!("{} of {all} connected", count("connected")),
                (all, failed) => {
                    format!("{} of {all} connected, {failed} failed", count("connected"))
                }
            };
            instances.push(json!({
                "id": instance.spec.id,
                "customer": instance.spec.customer,
                "integration": instance.spec.integration,
                "version": instance.version,
                "enabled": instance.spec.enabled,
                "source": if instance.self_service { "marketplace" } else { "workspace file" },
                "connections": summary,
            }));
        }
        Ok(json!({
            "integrations": integrations,
            "customers": customers.iter().map(|c| json!({ "id": c.id, "name": c.name })).collect::<Vec<_>>(),
            "instances": instances,
        }))
    })();
    match result {
        Ok(context) => page("console_home.html", context),
        Err(e) => internal(format!("{e:#}")),
    }
}

async fn instance_page(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(sign_in) = signed_in(&server, &headers) {
        return *sign_in;
    }
    let instance = match server.inner.registry.instance(&id) {
        Ok(Some(instance)) => instance,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no instance `{id}`")).into_response(),
        Err(e) => return internal(e),
    };
    // Each var's value and the level it came from, as `weft runs show` prints a run's.
    let (config, problem) = match server.workspace_for(&id) {
        Err(e) => (Vec::new(), Some(e.message().to_string())),
        Ok(ws) => match ws.instance(&id).map(|spec| ws.resolve_config(spec)) {
            Some(Ok(resolved)) => (
                resolved
                    .0
                    .iter()
                    .map(|(name, var)| json!({
                        "name": name,
                        "value": if var.secret { "[redacted]".to_string() } else { var.as_text() },
                        "level": var.level.to_string(),
                    }))
                    .collect(),
                None,
            ),
            Some(Err(problems)) => (
                Vec::new(),
                Some(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
            ),
            None => (Vec::new(), Some(format!("instance `{id}` is not in the stored workspace"))),
        },
    };
    let connections: Vec<Json> = server
        .connections(&instance)
        .unwrap_or_default()
        .iter()
        .map(|c| json!({ "name": c.name, "kind": c.spec.kind, "status": c.status(), "problem": c.failed }))
        .collect();
    let runs = server
        .inner
        .store
        .list_runs(&RunFilter {
            instance: Some(id.clone()),
            limit: Some(20),
            ..RunFilter::default()
        })
        .unwrap_or_default();
    page(
        "console_instance.html",
        json!({
            "instance": {
                "id": instance.spec.id,
                "customer": instance.spec.customer,
                "integration": instance.spec.integration,
                "version": instance.version,
                "enabled": instance.spec.enabled,
                "source": if instance.self_service { "marketplace" } else { "workspace file" },
            },
            "config": config,
            "problem": problem,
            "connections": connections,
            "runs": runs.iter().map(run_row).collect::<Vec<_>>(),
        }),
    )
}

fn run_row(run: &weft_model::records::RunRecord) -> Json {
    json!({
        "id": run.id,
        "instance": run.instance,
        "customer": run.customer,
        "flow": run.flow,
        "status": run.status.to_string(),
        "started": format_time(run.started_at_ms),
        "duration": run.duration_us.map(|us| format_ms(us as f64 / 1000.0)),
    })
}

fn format_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
struct RunsQuery {
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// An empty form field is no filter.
fn given(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

async fn runs_page(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Response {
    if let Err(sign_in) = signed_in(&server, &headers) {
        return *sign_in;
    }
    let status = given(&query.status).and_then(|s| s.parse::<Status>().ok());
    let filter = RunFilter {
        instance: given(&query.instance),
        customer: given(&query.customer),
        flow: given(&query.flow),
        status,
        since_ms: None,
        until_ms: None,
        limit: Some(200),
    };
    let runs = match server.inner.store.list_runs(&filter) {
        Ok(runs) => runs,
        Err(e) => return internal(e),
    };
    let any_running = runs.iter().any(|r| r.status == Status::Running);
    page(
        "console_runs.html",
        json!({
            "runs": runs.iter().map(run_row).collect::<Vec<_>>(),
            "filter": {
                "instance": given(&query.instance).unwrap_or_default(),
                "customer": given(&query.customer).unwrap_or_default(),
                "flow": given(&query.flow).unwrap_or_default(),
                "status": status.map(|s| s.to_string()).unwrap_or_default(),
            },
            "statuses": Status::ALL.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "poll": any_running,
        }),
    )
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

async fn run_page(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(sign_in) = signed_in(&server, &headers) {
        return *sign_in;
    }
    let run = match server.inner.store.get_run(&id) {
        Ok(Some(run)) => run,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return internal(e),
    };
    let steps: Vec<Json> = run
        .steps
        .iter()
        .map(|step| {
            json!({
                "path": step.path(),
                "id": step.id,
                "plugin": step.plugin,
                "status": step.status.to_string(),
                "failed": step.status == Status::Failed,
                "duration": format_ms(step.duration_us as f64 / 1000.0),
                "inputs": pretty(&step.inputs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()),
                "output": step.output.as_ref().map(pretty),
                "logs": step.logs.iter().map(|l| json!({ "level": l.level, "message": l.message })).collect::<Vec<_>>(),
                "error": step.error,
                "attempts": step.attempts.len(),
                "detail": step.detail.as_ref().map(pretty),
            })
        })
        .collect();
    let record = &run.run;
    page(
        "console_run.html",
        json!({
            "run": {
                "id": record.id,
                "instance": record.instance,
                "customer": record.customer,
                "integration": record.integration,
                "version": record.integration_version,
                "flow": record.flow,
                "status": record.status.to_string(),
                "started": format_time(record.started_at_ms),
                "duration": record.duration_us.map(|us| format_ms(us as f64 / 1000.0)),
                "error": record.error,
                "result": record.result.as_ref().map(pretty),
                "trigger": pretty(&record.trigger),
                "replay_of": record.replay_of,
                "resumed": record.resumed,
            },
            "timeline": timeline(&run),
            "steps": steps,
            "running": record.status == Status::Running,
            "resumable": record.status == Status::Interrupted,
        }),
    )
}

/// Runs run `id` again as a new run, in the background; the browser goes to the instance's
/// runs, where the new one shows at the top.
async fn replay(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(refused) = signed_in(&server, &headers).and_then(|()| same_origin(&headers)) {
        return *refused;
    }
    let run = match server.inner.store.get_run(&id) {
        Ok(Some(run)) => run,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return internal(e),
    };
    let ws = match server
        .inner
        .registry
        .workspace_for(&run.run.instance, Some(run.run.integration_version))
    {
        Ok(ws) => ws,
        Err(e) => {
            return (
                StatusCode::CONFLICT,
                format!("run `{id}` cannot be replayed: {e:#}"),
            )
                .into_response();
        }
    };
    let in_flight = InFlightGuard::enter(&server.inner);
    let background = server.clone();
    let run_id = id.clone();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        if let Err(e) = background.inner.runner.replay(&ws, &run_id).await {
            tracing::warn!(run = %run_id, error = %e, "a replay from the console failed to start");
        }
    });
    Redirect::to(&format!(
        "/console/runs?instance={}&flow={}",
        encode(&run.run.instance),
        encode(&run.run.flow)
    ))
    .into_response()
}

/// Continues interrupted run `id` in the background; the browser goes back to the run.
async fn resume(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(refused) = signed_in(&server, &headers).and_then(|()| same_origin(&headers)) {
        return *refused;
    }
    let run = match server.inner.store.get_run(&id) {
        Ok(Some(run)) => run,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return internal(e),
    };
    let ws = match server
        .inner
        .registry
        .workspace_for(&run.run.instance, Some(run.run.integration_version))
    {
        Ok(ws) => ws,
        Err(e) => {
            return (
                StatusCode::CONFLICT,
                format!("run `{id}` cannot be resumed: {e:#}"),
            )
                .into_response();
        }
    };
    let in_flight = InFlightGuard::enter(&server.inner);
    let background = server.clone();
    let run_id = id.clone();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        if let Err(e) = background.inner.runner.resume(&ws, &run_id).await {
            tracing::warn!(run = %run_id, error = %e, "a resume from the console failed");
        }
    });
    Redirect::to(&format!("/console/runs/{}", encode(&id))).into_response()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
