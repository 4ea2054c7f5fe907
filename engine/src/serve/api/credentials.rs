//! `/api/v1/credentials` and `/api/v1/customers/{id}/credentials`: write-only credentials,
//! sealed in the vault (admin).

use crate::serve::auth::Admin;
use crate::serve::extract::ApiPath;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use weft_model::credential::{CredentialSpec, Scope};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok};

pub(in crate::serve) fn vault(server: &Server) -> ApiResult<&crate::store::vault::Vault> {
    server.inner.vault.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "vault_not_configured",
            "credentials are stored encrypted under a master key: start `weft serve` with WEFT_MASTER_KEY (or WEFT_MASTER_KEY_FILE) set",
        )
    })
}

/// Stores a credential sent in the body (its secret values inline); answers with its name and
/// kind only: secrets are never returned.
pub(in crate::serve) fn put_credential(
    server: &Server,
    scope: Scope,
    name: &str,
    body: &[u8],
) -> ApiResult {
    let vault = vault(server)?;
    let spec: CredentialSpec = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a credential (`{{\"kind\": \"api-key-secret\", \"key\": …, \"secret\": …}}`): {e}"
        ))
    })?;
    // Values are taken as given: an `env:`/`file:` reference would read the server's own
    // environment or files.
    let as_json = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    if let Some((field, _)) = as_json.as_object().into_iter().flatten().find(|(_, v)| {
        v.as_str()
            .is_some_and(|t| t.starts_with("env:") || t.starts_with("file:"))
    }) {
        return Err(ApiError::bad_request(format!(
            "field `{field}` is an `env:`/`file:` reference; through the API, send the value itself"
        )));
    }
    crate::secrets::Credential::from_stored(&spec, name, scope.clone())
        .map_err(|e| ApiError::bad_request(format!("credential `{name}`: {e:#}")))?;
    vault.put(&scope, name, &spec).map_err(ApiError::internal)?;
    server.invalidate();
    ok(
        json!({ "name": name, "scope": scope.to_string(), "kind": spec.kind.name(), "stored": true }),
    )
}

pub(in crate::serve) fn delete_credential(server: &Server, scope: Scope, name: &str) -> ApiResult {
    let existed = vault(server)?
        .delete(&scope, name)
        .map_err(ApiError::internal)?;
    if !existed {
        return Err(ApiError::not_found(format!(
            "no credential `{name}` ({scope})"
        )));
    }
    server.invalidate();
    ok(json!({ "name": name, "scope": scope.to_string(), "deleted": true }))
}

pub(in crate::serve) async fn list_credentials(
    State(server): State<Server>,
    _admin: Admin,
) -> ApiResult {
    let names = vault(&server)?.list().map_err(ApiError::internal)?;
    ok(json!(
        names
            .iter()
            .map(|n| json!({ "name": n.name, "scope": n.scope.to_string() }))
            .collect::<Vec<_>>()
    ))
}

pub(in crate::serve) async fn put_workspace_credential(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    put_credential(&server, Scope::Workspace, &name, &body)
}

pub(in crate::serve) async fn delete_workspace_credential(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    delete_credential(&server, Scope::Workspace, &name)
}

pub(in crate::serve) async fn put_customer_credential(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    put_credential(&server, Scope::Customer(id), &name, &body)
}

pub(in crate::serve) async fn delete_customer_credential(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult {
    delete_credential(&server, Scope::Customer(id), &name)
}
