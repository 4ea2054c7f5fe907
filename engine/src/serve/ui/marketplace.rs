//! The embedded marketplace: a page an app frames (`/marketplace`, loaded by `/embed.js`) and the
//! fragments its script swaps in, each rendered here with the customer's token, which the page
//! receives from the app by `postMessage` and sends as a header (never in a URL or a cookie).
//!
//! Fragments name what happened in `data-weft-events` (activated, configured, enabled,
//! disabled, removed, connection_added, connection_failed); the page's script passes them on to
//! the app.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value as Json, json};

use super::wizard::{form_fields, wizard_page};
use super::{render, strings};
use crate::auth::Principal;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::ApiPath;
use crate::serve::self_service::{FieldErrors, customer_of};
use crate::serve::{Mode, Server, Started, sees};
use crate::store::RunStore;
use crate::store::registry::ManagedInstance;

pub(in crate::serve) fn routes() -> Router<Server> {
    Router::new()
        .route("/marketplace", get(shell))
        .route("/marketplace/theme.css", get(theme_css))
        .route("/marketplace/ui/list", get(list))
        .route(
            "/marketplace/ui/activate/{integration}",
            axum::routing::post(activate),
        )
        .route(
            "/marketplace/ui/instances/{id}/connections",
            get(connections),
        )
        .route(
            "/marketplace/ui/instances/{id}/connections/{name}",
            axum::routing::post(connect),
        )
        .route(
            "/marketplace/ui/instances/{id}/finish",
            axum::routing::post(finish),
        )
        .route(
            "/marketplace/ui/instances/{id}/enable",
            axum::routing::post(enable),
        )
        .route(
            "/marketplace/ui/instances/{id}/disable",
            axum::routing::post(disable),
        )
        .route(
            "/marketplace/ui/instances/{id}/remove",
            get(confirm_remove).post(remove),
        )
        .route(
            "/marketplace/ui/instances/{id}/run",
            axum::routing::post(run),
        )
        .route("/marketplace/ui/runs/{run}", get(run_status))
        .route(crate::serve::oauth::CALLBACK_PATH, get(oauth_callback))
        .merge(super::wizard::routes())
}

/// The provider's answer to an authorization the customer's popup started.
#[derive(serde::Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /marketplace/oauth/callback`: finishes the connection and shows the popup a page that
/// tells the marketplace (its opener) how it went, then closes.
async fn oauth_callback(
    State(server): State<Server>,
    axum::extract::Query(query): axum::extract::Query<CallbackQuery>,
) -> Response {
    let outcome = server
        .finish_authorization(
            query.state.as_deref(),
            query.code.as_deref(),
            query.error.as_deref(),
        )
        .await;
    render(
        if outcome.problem.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "oauth_done.html",
        json!({
            "t": strings(&server),
            "instance": outcome.instance,
            "connection": outcome.connection,
            "problem": outcome.problem,
        }),
        "'none'",
    )
}

/// `GET /marketplace`: the page an app frames. It holds no customer data: that comes in
/// fragments once the app has handed the page a token.
async fn shell(State(server): State<Server>) -> Response {
    let embed = server.embed();
    let origins = embed.origins;
    let frame_ancestors = if origins.is_empty() {
        "'none'".to_string()
    } else {
        origins.join(" ")
    };
    let mode = embed.theme.mode.unwrap_or_else(|| "light".into());
    render(
        StatusCode::OK,
        "marketplace.html",
        json!({ "t": strings(&server), "origins": origins.join(" "), "mode": mode }),
        &frame_ancestors,
    )
}

/// `GET /marketplace/theme.css`: the workspace's theme as CSS variables (values were checked
/// against their forms when the workspace was loaded).
async fn theme_css(State(server): State<Server>) -> Response {
    let theme = server.embed().theme;
    // `:root.mode-dark` too, which is more specific than the style sheet's dark defaults.
    let mut css = String::from(":root, :root.mode-dark {\n");
    for (var, value) in [
        ("--weft-accent", &theme.accent),
        ("--weft-bg", &theme.background),
        ("--weft-text", &theme.text),
        ("--weft-font", &theme.font),
        ("--weft-radius", &theme.radius),
    ] {
        if let Some(value) = value {
            css.push_str(&format!("  {var}: {value};\n"));
        }
    }
    css.push_str("}\n");
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        css,
    )
        .into_response()
}

/// A fragment: rendered HTML, framed by nobody (the page fetches it).
pub(super) fn fragment(name: &str, context: Json) -> Response {
    render(StatusCode::OK, name, context, "'none'")
}

/// Events a fragment reports, as its `data-weft-events` attribute holds them.
fn events(list: &[(&str, Json)]) -> String {
    Json::Array(
        list.iter()
            .map(|(kind, detail)| json!({ "type": kind, "detail": detail }))
            .collect(),
    )
    .to_string()
}

async fn list(State(server): State<Server>, principal: Principal) -> ApiResult {
    list_with(&server, &principal, "", None)
}

fn list_with(
    server: &Server,
    principal: &Principal,
    fired: &str,
    notice: Option<&str>,
) -> ApiResult {
    let customer = customer_of(principal)?;
    let t = strings(server);
    let mut categories: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for offer in server.offers(customer)? {
        let spec = &offer.published.spec;
        let listing = spec.marketplace.clone().unwrap_or_default();
        let status = match &offer.instance {
            None => t["not_active"].clone(),
            Some(i) if i.spec.enabled => t["active"].clone(),
            Some(_) => t["disabled"].clone(),
        };
        // A connection that stopped working is what the customer must see first.
        let broken = match &offer.instance {
            Some(i) => server.connections(i)?.iter().any(|c| c.failed.is_some()),
            None => false,
        };
        categories
            .entry(listing.category.clone().unwrap_or_default())
            .or_default()
            .push(json!({
                "name": spec.name,
                "description": listing.description.or(spec.description.clone()),
                "icon": listing.icon,
                "status": status,
                "broken": broken,
                "instance": offer.instance.as_ref().map(|i| json!({ "id": i.spec.id, "enabled": i.spec.enabled })),
            }));
    }
    let categories: Vec<Json> = categories
        .into_iter()
        .map(|(name, offers)| json!({ "name": name, "offers": offers }))
        .collect();
    Ok(fragment(
        "mp_list.html",
        json!({ "t": t, "categories": categories, "events": fired, "notice": notice }),
    ))
}

async fn activate(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(integration): ApiPath<String>,
) -> ApiResult {
    let instance = server.activate(&principal, &integration)?;
    let fired = events(&[(
        "activated",
        json!({ "integration": integration, "instance": instance.spec.id }),
    )]);
    wizard_page(
        &server,
        &instance,
        0,
        &FieldErrors::new(),
        &Map::new(),
        &fired,
    )
    .await
}

async fn connections(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    connections_page(&server, &instance, &FieldErrors::new(), None, "")
}

/// The wizard's last page: the connections, each with its form, and the button that finishes.
pub(super) fn connections_page(
    server: &Server,
    instance: &ManagedInstance,
    errors: &FieldErrors,
    failed: Option<&str>,
    fired: &str,
) -> ApiResult {
    let t = strings(server);
    let pages = server.wizard(instance)?.len();
    let connections: Vec<Json> = server
        .connections(instance)?
        .into_iter()
        .map(|c| {
            let fields: Vec<Json> = c
                .spec
                .kind
                .fields()
                .iter()
                .map(|(field, secret)| {
                    let error = (failed == Some(c.name.as_str()))
                        .then(|| errors.get(*field))
                        .flatten();
                    json!({
                        "name": field,
                        "label": t.get(&format!("field_{field}")).cloned().unwrap_or(field.to_string()),
                        "secret": secret,
                        "error": error,
                    })
                })
                .collect();
            json!({
                "name": c.name,
                "label": c.spec.label.clone().unwrap_or(c.name.clone()),
                "description": c.spec.description,
                "connected": c.connected,
                "failed": c.failed,
                "oauth": c.spec.kind == weft_model::spec::ConnectionKind::Oauth2,
                "fields": fields,
            })
        })
        .collect();
    let missing = server.missing(instance)?;
    Ok(fragment(
        "mp_connections.html",
        json!({
            "t": t,
            "instance": instance.spec.id,
            "integration": instance.spec.integration,
            "connections": connections,
            "back": pages.checked_sub(1),
            "number": pages + 1,
            "total": pages + usize::from(!connections.is_empty()),
            "missing": missing,
            "events": fired,
        }),
    ))
}

async fn connect(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    let fields: Map<String, Json> = form_fields(&body)
        .into_iter()
        .map(|(k, v)| (k, Json::String(v)))
        .collect();
    let detail = json!({ "instance": id, "connection": name });
    match server.connect(&instance, &name, &fields).await? {
        Ok(()) => connections_page(
            &server,
            &instance,
            &FieldErrors::new(),
            None,
            &events(&[("connection_added", detail)]),
        ),
        Err(errors) => connections_page(
            &server,
            &instance,
            &errors,
            Some(&name),
            &events(&[("connection_failed", detail)]),
        ),
    }
}

/// The wizard's end: the instance is enabled once nothing is missing.
async fn finish(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    server.set_instance_enabled(&instance, true)?;
    let detail = json!({ "instance": id, "integration": instance.spec.integration });
    let t = strings(&server);
    list_with(
        &server,
        &principal,
        &events(&[("configured", detail.clone()), ("enabled", detail)]),
        Some(&t["saved"]),
    )
}

async fn enable(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    toggle(&server, &principal, &id, true)
}

async fn disable(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    toggle(&server, &principal, &id, false)
}

fn toggle(server: &Server, principal: &Principal, id: &str, enabled: bool) -> ApiResult {
    let instance = server.own_instance(principal, id)?;
    server.set_instance_enabled(&instance, enabled)?;
    let detail = json!({ "instance": id, "integration": instance.spec.integration });
    list_with(
        server,
        principal,
        &events(&[(if enabled { "enabled" } else { "disabled" }, detail)]),
        None,
    )
}

async fn confirm_remove(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    Ok(fragment(
        "mp_remove.html",
        json!({ "t": strings(&server), "instance": id, "integration": instance.spec.integration }),
    ))
}

async fn remove(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    server.remove_instance(&instance)?;
    let detail = json!({ "instance": id, "integration": instance.spec.integration });
    list_with(&server, &principal, &events(&[("removed", detail)]), None)
}

/// Runs the instance's first flow now, answering with the run's status (which the page polls).
async fn run(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    let flow = server
        .pinned_version(&instance)?
        .spec
        .flows
        .first()
        .map(|f| f.name.clone())
        .ok_or_else(|| ApiError::not_found("the integration has no flows"))?;
    let trigger = json!({ "via": "marketplace", "body": null });
    let run_id = match server.start(&id, &flow, trigger, Mode::Accept).await? {
        Started::Accepted(run_id) => run_id,
        Started::Finished(run, _) => run.run.id.clone(),
    };
    run_fragment(&server, &principal, &run_id)
}

async fn run_status(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(run_id): ApiPath<String>,
) -> ApiResult {
    run_fragment(&server, &principal, &run_id)
}

fn run_fragment(server: &Server, principal: &Principal, run_id: &str) -> ApiResult {
    let run = server
        .inner
        .store
        .get_run(run_id)
        .map_err(ApiError::internal)?
        .filter(|r| sees(principal, &r.run.customer))
        .ok_or_else(|| ApiError::not_found(format!("no run `{run_id}`")))?;
    let running = run.run.status == crate::store::Status::Running;
    let mut response = fragment(
        "mp_run.html",
        json!({
            "t": strings(server),
            "run": run_id,
            "status": run.run.status.to_string(),
            "running": running,
            "error": run.run.error,
        }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
