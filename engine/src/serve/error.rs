//! API errors: a status, a stable code and a message, answered as
//! `{ "error": { "code", "message" } }`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;

/// An API error: a status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Problems by field, for a form's values.
    fields: Option<std::collections::BTreeMap<String, String>>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    /// 422 `invalid_fields`: values refused, each with why.
    pub(super) fn invalid_fields(fields: std::collections::BTreeMap<String, String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_fields",
            message: fields
                .iter()
                .map(|(field, why)| format!("{field}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
            fields: Some(fields),
        }
    }

    /// The status it answers with.
    pub(super) fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, as the error body says it.
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    pub(super) fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(fields) = self.fields {
            error["fields"] = json!(fields);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weft\""),
            );
        }
        response
    }
}

pub(super) type ApiResult<T = Response> = Result<T, ApiError>;
