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
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use weft_model::spec::{ConfigVarSpec, VarKind};

use super::{render, strings};
use crate::auth::Principal;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::{ApiPath, ApiQuery};
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
            "/marketplace/ui/instances/{id}/wizard",
            get(wizard).post(save_page),
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
fn fragment(name: &str, context: Json) -> Response {
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

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: usize,
}

async fn wizard(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    wizard_page(
        &server,
        &instance,
        query.page,
        &FieldErrors::new(),
        &Map::new(),
        "",
    )
    .await
}

/// The wizard's page `page` (past the last page of vars: the connections page, or the end).
async fn wizard_page(
    server: &Server,
    instance: &ManagedInstance,
    page: usize,
    errors: &FieldErrors,
    entered: &Map<String, Json>,
    fired: &str,
) -> ApiResult {
    let mut pages = server.wizard(instance)?;
    if page >= pages.len() {
        return connections_page(server, instance, &FieldErrors::new(), None, fired);
    }
    // The choices of data-source picklists on this page, listed by their flows now; a source
    // that failed says so beside its field.
    let mut errors = errors.clone();
    for (name, why) in server
        .fill_data_sources(instance, &mut pages[page].vars)
        .await
    {
        errors.entry(name).or_insert(why);
    }
    let errors = &errors;
    let has_connections = !server.pinned_version(instance)?.spec.connections.is_empty();
    let total = pages.len() + usize::from(has_connections);
    let this = &pages[page];
    let vars: Vec<Json> = this
        .vars
        .iter()
        .map(|(name, spec)| field(name, spec, instance, entered, errors))
        .collect();
    Ok(fragment(
        "mp_wizard.html",
        json!({
            "t": strings(server),
            "instance": instance.spec.id,
            "integration": instance.spec.integration,
            "title": this.title,
            "description": this.description,
            "page": page,
            "number": page + 1,
            "total": total,
            "last": page + 1 == total,
            "vars": vars,
            "errors": !errors.is_empty(),
            "events": fired,
        }),
    ))
}

/// One field of the wizard as the template draws it.
fn field(
    name: &str,
    spec: &ConfigVarSpec,
    instance: &ManagedInstance,
    entered: &Map<String, Json>,
    errors: &FieldErrors,
) -> Json {
    let stored = instance.spec.config.get(name);
    let value = entered.get(name).or(stored).or(spec.default.as_ref());
    let text = match value {
        _ if spec.secret => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(v) if spec.kind == VarKind::Json => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        Some(v) => v.to_string(),
    };
    let input = match spec.kind {
        _ if spec.secret => "password",
        VarKind::String => "text",
        VarKind::Text | VarKind::Json => "textarea",
        VarKind::Number => "number",
        VarKind::Boolean => "checkbox",
        VarKind::Picklist => "select",
        VarKind::Date => "date",
        VarKind::Datetime => "datetime-local",
    };
    json!({
        "name": name,
        "label": spec.label(name),
        "description": spec.description,
        "required": spec.required,
        "input": input,
        "kind": spec.kind.name(),
        "value": text,
        "checked": value == Some(&Json::Bool(true)),
        "secret_set": spec.secret && stored.is_some(),
        "options": spec.options.iter().map(|o| json!({
            "label": o.label(),
            "value": option_text(&o.value),
            "selected": value == Some(&o.value),
        })).collect::<Vec<_>>(),
        "error": errors.get(name),
    })
}

fn option_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A form's fields, the last value of each name winning (a checkbox follows its hidden
/// `false`).
fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The value a wizard field's text stands for, by the var's type. `None`: leave the var as it
/// is (an empty secret field).
fn form_value(name: &str, spec: &ConfigVarSpec, text: &str) -> Result<Option<Json>, String> {
    if text.is_empty() && spec.kind != VarKind::Boolean {
        return Ok(if spec.secret { None } else { Some(Json::Null) });
    }
    let value = match spec.kind {
        VarKind::Number => {
            let n: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`{name}` must be a number"))?;
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                json!(n as i64)
            } else {
                json!(n)
            }
        }
        VarKind::Boolean => Json::Bool(text == "true"),
        VarKind::Json => {
            serde_json::from_str(text).map_err(|e| format!("`{name}` is not JSON: {e}"))?
        }
        VarKind::Picklist => spec
            .options
            .iter()
            .find(|o| option_text(&o.value) == text)
            .map(|o| o.value.clone())
            .unwrap_or_else(|| Json::String(text.to_string())),
        _ => Json::String(text.to_string()),
    };
    Ok(Some(value))
}

async fn save_page(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    let instance = server.own_instance(&principal, &id)?;
    let pages = server.wizard(&instance)?;
    let page = pages
        .get(query.page)
        .ok_or_else(|| ApiError::not_found(format!("the wizard has no page {}", query.page)))?;
    let form = form_fields(&body);
    let mut values = Map::new();
    let mut entered = Map::new();
    let mut errors = FieldErrors::new();
    for (name, spec) in &page.vars {
        let text = form.get(name).map(String::as_str).unwrap_or("");
        match form_value(name, spec, text) {
            Ok(Some(value)) => {
                entered.insert(name.clone(), value.clone());
                values.insert(name.clone(), value);
            }
            Ok(None) => {}
            Err(why) => {
                entered.insert(name.clone(), Json::String(text.to_string()));
                errors.insert(name.clone(), spec.message.clone().unwrap_or(why));
            }
        }
    }
    if errors.is_empty()
        && let Err(refused) = server.save_config(&instance, &values).await?
    {
        errors = refused;
    }
    if !errors.is_empty() {
        return wizard_page(&server, &instance, query.page, &errors, &entered, "").await;
    }
    let instance = server.own_instance(&principal, &id)?;
    wizard_page(
        &server,
        &instance,
        query.page + 1,
        &FieldErrors::new(),
        &Map::new(),
        "",
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
fn connections_page(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> ConfigVarSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn form_text_becomes_the_vars_type() {
        let n = spec("type = \"number\"");
        assert_eq!(form_value("n", &n, "42").unwrap(), Some(json!(42)));
        assert_eq!(form_value("n", &n, "1.5").unwrap(), Some(json!(1.5)));
        assert!(form_value("n", &n, "many").is_err());
        let b = spec("type = \"boolean\"");
        assert_eq!(form_value("b", &b, "false").unwrap(), Some(json!(false)));
        let p = spec("type = \"picklist\"\noptions = [1, 2]");
        assert_eq!(form_value("p", &p, "2").unwrap(), Some(json!(2)));
        let s = spec("secret = true");
        assert_eq!(form_value("s", &s, "").unwrap(), None);
        let t = spec("type = \"text\"");
        assert_eq!(form_value("t", &t, "").unwrap(), Some(Json::Null));
    }
}
