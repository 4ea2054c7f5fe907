//! `/openapi.json` and `/api/v1/me`.

use crate::serve::OPENAPI;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Principal;

use crate::serve::error::ApiResult;
use crate::serve::ok;

pub(in crate::serve) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(in crate::serve) async fn me(principal: Principal) -> ApiResult {
    match principal {
        Principal::Admin { name } => ok(json!({ "admin": true, "name": name })),
        Principal::Customer { id, name, fields } => {
            ok(json!({ "admin": false, "customer": id, "name": name, "fields": fields }))
        }
    }
}
