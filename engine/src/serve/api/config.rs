//! Config vars through the API: workspace and customer level (admin), instance level (the
//! instance's customer or an admin), type-checked against the integration.

use crate::auth::Principal;
use crate::serve::auth::Admin;
use crate::serve::extract::ApiPath;
use axum::extract::State;
use serde_json::{Value as Json, json};

use crate::store::registry::ConfigLevel;

use crate::serve::api::instances::*;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok};

pub(in crate::serve) fn config_value(body: &[u8]) -> ApiResult<Json> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be the var's value as JSON (`\"text\"`, `42`, `true`, …): {e}"
        ))
    })
}

/// Customer `id`, or 404.
pub(in crate::serve) fn known_customer(server: &Server, id: &str) -> ApiResult<()> {
    match server.inner.registry.customer(id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(format!("no customer `{id}`"))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Sets config var `name` at `level` (whose customer or instance the caller checked exists).
pub(in crate::serve) fn set_config(
    server: &Server,
    level: ConfigLevel,
    name: &str,
    value: Option<Json>,
) -> ApiResult {
    server
        .inner
        .registry
        .set_config(&level, name, value.clone())
        .map_err(ApiError::internal)?;
    server.invalidate();
    ok(json!({ "name": name, "set": value.is_some() }))
}

pub(in crate::serve) async fn set_workspace_config(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let value = config_value(&body)?;
    set_config(&server, ConfigLevel::Workspace, &name, Some(value))
}

pub(in crate::serve) async fn unset_workspace_config(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    set_config(&server, ConfigLevel::Workspace, &name, None)
}

pub(in crate::serve) async fn set_customer_config(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    known_customer(&server, &id)?;
    let value = config_value(&body)?;
    set_config(&server, ConfigLevel::Customer(id), &name, Some(value))
}

pub(in crate::serve) async fn unset_customer_config(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult {
    known_customer(&server, &id)?;
    set_config(&server, ConfigLevel::Customer(id), &name, None)
}

/// Checks `value` against the type the instance's integration declares for var `name`.
pub(in crate::serve) fn check_var(
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
    spec.check(name, value)
        .map_err(|why| ApiError::bad_request(format!("config var `{name}`: {why}")))
}

pub(in crate::serve) async fn set_instance_config(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    let value = config_value(&body)?;
    check_var(&server, &instance, &name, &value)?;
    if let Principal::Customer { .. } = principal {
        // A customer sets only the vars its config wizard shows (not those the operator set
        // for the whole workspace), with the same checks.
        let values = serde_json::Map::from_iter([(name.clone(), value.clone())]);
        server
            .save_config(&instance, &values)
            .await?
            .map_err(ApiError::invalid_fields)?;
        return ok(json!({ "name": name, "set": true }));
    }
    set_config(&server, ConfigLevel::Instance(id), &name, Some(value))
}

pub(in crate::serve) async fn unset_instance_config(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult {
    server.visible_instance(&principal, &id)?;
    set_config(&server, ConfigLevel::Instance(id), &name, None)
}
