//! `/api/v1/instances`: instances as the caller may see them.

use crate::auth::Principal;
use crate::serve::extract::ApiPath;
use axum::extract::State;
use serde_json::{Map, Value as Json, json};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok, sees};

/// The integration version instance `instance` is pinned to.
pub(in crate::serve) fn pinned(
    server: &Server,
    instance: &crate::store::registry::ManagedInstance,
) -> ApiResult<Option<crate::store::registry::Published>> {
    server
        .inner
        .registry
        .pinned(instance)
        .map_err(ApiError::internal)
}

/// An instance as the API shows it: secret config values redacted.
pub(in crate::serve) fn instance_json(
    server: &Server,
    instance: &crate::store::registry::ManagedInstance,
) -> Json {
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
    let webhooks: Map<String, Json> = flows
        .iter()
        .filter_map(|flow| {
            let path = server.webhook_path(&instance.spec.id, flow).ok()?;
            Some((flow.to_string(), Json::String(path)))
        })
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
        "webhooks": webhooks,
        "webhook_signed": instance.spec.webhook_secret.is_some(),
    })
}

pub(in crate::serve) async fn instances(
    State(server): State<Server>,
    principal: Principal,
) -> ApiResult {
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

pub(in crate::serve) async fn instance(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    ok(instance_json(&server, &instance))
}

/// `POST /api/v1/instances/{instance}/flows/{flow}/webhook/rotate`: a new secret address for
/// the flow's webhook; the old one answers 404 from now on.
pub(in crate::serve) async fn rotate_webhook(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, flow)): ApiPath<(String, String)>,
) -> ApiResult {
    let instance = server.visible_instance(&principal, &id)?;
    let known =
        pinned(&server, &instance)?.is_some_and(|p| p.spec.flows.iter().any(|f| f.name == flow));
    if !known {
        return Err(ApiError::not_found(format!(
            "instance `{id}` has no flow `{flow}`"
        )));
    }
    let token = server
        .inner
        .webhook_tokens
        .rotate(&id, &flow)
        .map_err(ApiError::internal)?;
    ok(json!({ "flow": flow, "webhook": format!("/webhooks/{token}") }))
}
