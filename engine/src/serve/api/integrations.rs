//! `/api/v1/integrations`: integrations and their versions (admin).

use crate::serve::auth::Admin;
use axum::extract::State;
use serde_json::json;

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok};

pub(in crate::serve) async fn integrations(
    State(server): State<Server>,
    _admin: Admin,
) -> ApiResult {
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
