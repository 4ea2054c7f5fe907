//! Who is calling: the workspace JWT or HMAC user hash of a request, as axum extractors. A
//! handler that takes a [`Principal`] answers only authenticated callers; one that takes
//! [`Admin`] only admins (403 `admin_only` for a customer).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::Server;
use super::error::{ApiError, ApiResult};
use crate::auth::Principal;

/// An admin caller (a handler that takes it answers admins only).
#[derive(Debug)]
pub(super) struct Admin;

impl FromRequestParts<Server> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, server: &Server) -> ApiResult<Self> {
        server.principal(&parts.headers)
    }
}

impl FromRequestParts<Server> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, server: &Server) -> ApiResult<Self> {
        server.admin(&parts.headers).map(|_| Admin)
    }
}

/// Seconds since the Unix epoch, by the server's clock.
pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Server {
    /// Who sent the request: a workspace JWT (`Authorization: Bearer …`) or an HMAC user hash
    /// (`X-Weft-App-Key`, `X-Weft-User-Id`, `X-Weft-User-Hash`). A customer not in the store
    /// yet is created from the token's claims.
    pub(super) fn principal(&self, headers: &HeaderMap) -> ApiResult<Principal> {
        let auth = self.inner.auth.as_ref().map_err(|why| {
            ApiError::new(StatusCode::UNAUTHORIZED, "auth_not_configured", why.clone())
        })?;
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let principal = if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "malformed_token",
                    "the Authorization header is not text",
                )
            })?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "malformed_token",
                        "the Authorization header must be `Bearer <workspace JWT>`",
                    )
                })?;
            auth.verify_token(token.trim(), now_secs())?
        } else if let Some(hash) = text("x-weft-user-hash") {
            let (Some(app_key), Some(user)) = (text("x-weft-app-key"), text("x-weft-user-id"))
            else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_claim",
                    "a user hash needs X-Weft-App-Key and X-Weft-User-Id beside X-Weft-User-Hash",
                ));
            };
            if app_key != auth.issuer() {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unknown_app_key",
                    "X-Weft-App-Key is not this workspace's key",
                ));
            }
            auth.verify_user_hash(user, hash)?
        } else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "send `Authorization: Bearer <workspace JWT>` or an HMAC user hash",
            ));
        };
        if let Principal::Customer { id, name, fields } = &principal {
            self.inner
                .registry
                .upsert_customer(id, name.as_deref(), fields)
                .map_err(ApiError::internal)?;
        }
        Ok(principal)
    }

    pub(super) fn admin(&self, headers: &HeaderMap) -> ApiResult<Principal> {
        let principal = self.principal(headers)?;
        match principal {
            Principal::Admin { .. } => Ok(principal),
            Principal::Customer { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "this route needs an admin token (`isAdmin`)",
            )),
        }
    }
}
