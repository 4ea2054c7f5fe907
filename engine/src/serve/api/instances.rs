//! `/api/v1/instances`: instances as the caller may see them.

use crate::auth::Principal;
use crate::serve::extract::ApiPath;
use axum::extract::State;
use serde_json::{Map, Value as Json, json};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok, sees};

/// An instance as the API shows it: secret config values redacted.
/// The integration version instance `instance` is pinned to.
pub(in crate::serve) fn pinned(
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
