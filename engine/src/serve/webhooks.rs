//! `/webhooks/{instance}/{flow}`: the request becomes the run's trigger; answered at once
//! with 202, or when the run ends with the response taken from a step's result.

use crate::serve::extract::ApiPath;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use crate::store::{RunStore, RunWithSteps, Status};
use weft_model::spec::FlowSpec;
use weft_model::value::RecordedValue;

use crate::serve::api::runs::*;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{PRIVATE_HEADERS, Server, Started};

/// `METHOD /webhooks/{instance}/{flow}`: runs the flow with the request as its trigger.
pub(in crate::serve) async fn webhook(
    State(server): State<Server>,
    ApiPath((instance, flow)): ApiPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let limit = server.inner.options.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the webhook body is over the {limit}-byte limit"),
        )
    })?;
    // The instance as the cached workspace has it (the cache is dropped on every write).
    let ws = server.workspace_for(&instance)?;
    let spec = ws
        .instance(&instance)
        .ok_or_else(|| ApiError::not_found(format!("no instance `{instance}`")))?;
    if let Some(reference) = &spec.webhook_secret {
        check_signature(&server, reference, &headers, &body)?;
    }

    let query: Map<String, Json> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Json::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let wait_asked = query
        .get("wait")
        .and_then(Json::as_str)
        .is_some_and(|v| v == "true" || v == "1");
    let header_map: Map<String, Json> = headers
        .iter()
        .filter(|(name, _)| !PRIVATE_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((
                name.to_string(),
                Json::String(value.to_str().ok()?.to_string()),
            ))
        })
        .collect();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.contains("+json"));
    let body_value = if body.is_empty() {
        Json::Null
    } else if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    } else {
        match std::str::from_utf8(&body) {
            Ok(text) => Json::String(text.to_string()),
            Err(_) => {
                use base64::Engine as _;
                json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&body) })
            }
        }
    };
    let trigger = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": query,
        "headers": header_map,
        "body": body_value,
    });

    let sync = wait_asked
        || ws
            .integrations
            .get(&spec.integration)
            .and_then(|i| i.spec.flows.iter().find(|f| f.name == flow))
            .and_then(|f| f.webhook.as_ref())
            .is_some_and(|w| w.sync);
    match server.start(&instance, &flow, trigger, sync).await? {
        Started::Accepted(run_id) => Ok(accepted(&run_id)),
        Started::Finished(run, spec) => Ok(webhook_response(&server, &run, &spec)),
    }
}

pub(in crate::serve) fn check_signature(
    server: &Server,
    reference: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let secret =
        crate::secrets::load_reference(reference, &server.inner.base_dir).map_err(|e| {
            ApiError::internal(format!(
                "the instance's webhook secret cannot be read: {e:#}"
            ))
        })?;
    let given = headers
        .get("x-weft-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_signature",
                "this webhook is signed: send X-Weft-Signature: sha256=<hex HMAC-SHA256 of the body>",
            )
        })?;
    let digits = given.strip_prefix("sha256=").unwrap_or(given);
    let expected = hex::decode(digits)
        .ok()
        .filter(|mac| mac.len() == 32)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "X-Weft-Signature is not `sha256=` followed by 64 hex digits",
            )
        })?;
    if crate::auth::hmac_sha256_matches(secret.as_bytes(), body, &expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Weft-Signature does not match the body",
        ))
    }
}

/// The response of a synchronous webhook: from the response step's result.
pub(in crate::serve) fn webhook_response(
    server: &Server,
    run: &RunWithSteps,
    flow: &FlowSpec,
) -> Response {
    let run_id = HeaderValue::from_str(&run.run.id).ok();
    let mut response = if run.run.status == Status::Failed || run.run.status == Status::Interrupted
    {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "run_failed",
            format!(
                "run {} {}: {}",
                run.run.id,
                run.run.status,
                run.run.error.as_deref().unwrap_or("no error recorded")
            ),
        )
        .into_response()
    } else {
        let step = match flow.webhook.as_ref().and_then(|w| w.response_step.as_ref()) {
            Some(id) => run.steps.iter().find(|s| &s.id == id),
            None => run.steps.last(),
        };
        match step.and_then(|s| s.output.as_ref()) {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(RecordedValue::Json(value)) => json_response(value),
            Some(RecordedValue::Bytes(summary)) => {
                match server.inner.store.get_blob(&summary.sha256) {
                    Ok(Some(bytes)) => (
                        [(header::CONTENT_TYPE, summary.content_type.clone())],
                        bytes,
                    )
                        .into_response(),
                    _ => ApiError::internal("the step's binary result is not in the store")
                        .into_response(),
                }
            }
        }
    };
    if let Some(id) = run_id {
        response.headers_mut().insert("x-weft-run-id", id);
    }
    response
}

/// `{ status, headers, body }` becomes that response; any other value a 200 JSON body.
pub(in crate::serve) fn json_response(value: &Json) -> Response {
    let Some(status) = value
        .get("status")
        .and_then(Json::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return axum::Json(value.clone()).into_response();
    };
    let mut response = match value.get("body") {
        None | Some(Json::Null) => status.into_response(),
        Some(Json::String(text)) => (status, text.clone()).into_response(),
        Some(other) => (status, axum::Json(other.clone())).into_response(),
    };
    if let Some(headers) = value.get("headers").and_then(Json::as_object) {
        for (name, value) in headers {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            response.headers_mut().insert(name, value);
        }
    }
    response
}
