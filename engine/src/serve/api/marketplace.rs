//! The marketplace through the JSON API: what is offered, activating it, the config wizard's
//! questions and answers, connections, enabling, disabling and removing a customer's own
//! instance. The marketplace pages do the same through [`crate::serve::self_service`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value as Json, json};

use crate::auth::Principal;
use crate::serve::api::instances::instance_json;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::ApiPath;
use crate::serve::self_service::customer_of;
use crate::serve::{Server, ok};

fn object(body: &[u8], what: &str) -> ApiResult<Map<String, Json>> {
    match serde_json::from_slice(body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(format!(
            "the body must be a JSON object of {what}"
        ))),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// `GET /api/v1/marketplace`.
pub(in crate::serve) async fn marketplace(
    State(server): State<Server>,
    principal: Principal,
) -> ApiResult {
    let customer = customer_of(&principal)?;
    let mut listed = Vec::new();
    for offer in server.offers(customer)? {
        let spec = &offer.published.spec;
        let listing = spec.marketplace.clone().unwrap_or_default();
        let instance = match &offer.instance {
            Some(i) => {
                let failed: Vec<String> = server
                    .connections(i)?
                    .into_iter()
                    .filter(|c| c.failed.is_some())
                    .map(|c| c.name)
                    .collect();
                json!({
                    "id": i.spec.id,
                    "enabled": i.spec.enabled,
                    "version": i.version,
                    "failed_connections": failed,
                })
            }
            None => Json::Null,
        };
        listed.push(json!({
            "integration": spec.name,
            "version": offer.published.version,
            "category": listing.category,
            "description": listing.description.or(spec.description.clone()),
            "icon": listing.icon,
            "instance": instance,
        }));
    }
    ok(Json::Array(listed))
}

/// `POST /api/v1/marketplace/{integration}`: activates it for the calling customer.
pub(in crate::serve) async fn activate(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(integration): ApiPath<String>,
) -> ApiResult {
    let instance = server.activate(&principal, &integration)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(instance_json(&server, &instance)),
    )
        .into_response())
}

/// `GET /api/v1/instances/{instance}/wizard`: what the config wizard asks, page by page, with
/// the values set so far (secret ones only as `set`).
pub(in crate::serve) async fn wizard(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    let mut pages = server.wizard(&instance)?;
    let mut unlisted = std::collections::BTreeMap::new();
    for page in &mut pages {
        unlisted.extend(server.fill_data_sources(&instance, &mut page.vars).await);
    }
    let connections = server.connections(&instance)?;
    ok(json!({
        "pages": pages.iter().map(|page| json!({
            "title": page.title,
            "description": page.description,
            "vars": page.vars.iter().map(|(name, spec)| {
                let value = instance.spec.config.get(name);
                json!({
                    "name": name,
                    "type": spec.kind.name(),
                    "label": spec.label(name),
                    "description": spec.description,
                    "required": spec.required,
                    "secret": spec.secret,
                    "default": if spec.secret { None } else { spec.default.clone() },
                    "options": spec.options.iter().map(|o| json!({ "label": o.label(), "value": o.value })).collect::<Vec<_>>(),
                    "options_from": spec.options_from,
                    "options_error": unlisted.get(name),
                    "set": value.is_some(),
                    "value": if spec.secret { None } else { value.cloned() },
                })
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "connections": connections.iter().map(|c| json!({
            "name": c.name,
            "kind": c.spec.kind,
            "label": c.spec.label.clone().unwrap_or(c.name.clone()),
            "fields": c.spec.kind.fields().iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            "connected": c.connected,
            "status": c.status(),
            "problem": c.failed,
        })).collect::<Vec<_>>(),
        "missing": server.missing(&instance)?,
    }))
}

/// `PUT /api/v1/instances/{instance}/config`: sets several vars at once (`null` unsets one);
/// all are checked first, and none is stored when one is refused (422 with each field's
/// problem).
pub(in crate::serve) async fn put_config(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    let values = object(&body, "config var values")?;
    server
        .save_config(&instance, &values)
        .await?
        .map_err(ApiError::invalid_fields)?;
    ok(json!({ "instance": id, "saved": values.keys().collect::<Vec<_>>() }))
}

/// `POST /api/v1/instances/{instance}/enable`.
pub(in crate::serve) async fn enable(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    server.set_instance_enabled(&instance, true)?;
    ok(json!({ "instance": id, "enabled": true }))
}

/// `POST /api/v1/instances/{instance}/disable`.
pub(in crate::serve) async fn disable(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    server.set_instance_enabled(&instance, false)?;
    ok(json!({ "instance": id, "enabled": false }))
}

/// `DELETE /api/v1/instances/{instance}`: removes a customer's own instance.
pub(in crate::serve) async fn remove(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    server.remove_instance(&instance)?;
    ok(json!({ "instance": id, "removed": true }))
}

/// `PUT /api/v1/instances/{instance}/connections/{name}`: the connection's fields.
pub(in crate::serve) async fn connect(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    let fields = object(&body, "the connection's fields")?;
    server
        .connect(&instance, &name, &fields)
        .await?
        .map_err(ApiError::invalid_fields)?;
    ok(json!({ "instance": id, "connection": name, "connected": true }))
}

/// `DELETE /api/v1/instances/{instance}/connections/{name}`.
pub(in crate::serve) async fn disconnect(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    if !server.disconnect(&instance, &name)? {
        return Err(ApiError::not_found(format!(
            "connection `{name}` is not connected"
        )));
    }
    ok(json!({ "instance": id, "connection": name, "connected": false }))
}
