//! The marketplace's config wizard: one page of vars at a time, each field drawn from its
//! declaration, the customer's answers turned into the vars' types and saved page by page.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use weft_model::spec::{ConfigVarSpec, VarKind};

use super::marketplace::{connections_page, fragment};
use super::strings;
use crate::auth::Principal;
use crate::serve::Server;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::{ApiPath, ApiQuery};
use crate::serve::self_service::FieldErrors;
use crate::store::registry::ManagedInstance;

pub(super) fn routes() -> Router<Server> {
    Router::new().route(
        "/marketplace/ui/instances/{id}/wizard",
        get(wizard).post(save_page),
    )
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
pub(super) async fn wizard_page(
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
pub(super) fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
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
