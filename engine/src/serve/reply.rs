//! The response to a synchronous webhook, made from a step's result: `{ status, headers, body }`
//! ([`weft_model::reply`], checked when the step ended), a binary value, or any other value as
//! a JSON body.
//!
//! The step may be a third party's plugin and the response is served on the API's origin, so
//! every reply carries `X-Content-Type-Options: nosniff` and, unless the operator allows
//! scripts (`weft serve --allow-reply-scripts`), `Content-Security-Policy: sandbox`: an HTML
//! or SVG body is shown as a document of a unique origin that runs no script.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use crate::serve::Server;
use crate::serve::error::ApiError;
use crate::store::{RunStore, RunWithSteps, Status};
use weft_model::reply::{self, ReplyBody};
use weft_model::spec::FlowSpec;
use weft_model::value::RecordedValue;

/// The step of `flow` whose result answers its webhook: `response_step`, or the last step.
pub(in crate::serve) fn answering_step(flow: &FlowSpec) -> Option<&str> {
    flow.webhook
        .as_ref()
        .and_then(|w| w.response_step.as_deref())
        .or_else(|| flow.steps.last().map(|s| s.id.as_str()))
}

/// The response to a synchronous webhook whose run is `run`.
pub(in crate::serve) fn webhook_reply(
    server: &Server,
    run: &RunWithSteps,
    flow: &FlowSpec,
) -> Response {
    // A `stop` step with a result answers with it, whether it stopped the run succeeded or
    // failed (a flow may refuse a request with its own status).
    let stopped_with = run.run.stopped_by.as_ref().and(run.run.result.as_ref());
    let mut response = if stopped_with.is_none()
        && (run.run.status == Status::Failed || run.run.status == Status::Interrupted)
    {
        // The caller is not an API user: the run's error (which may quote templates, config
        // or upstream answers) stays in the run's record.
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "run_failed",
            format!("run {} {}; its record says why", run.run.id, run.run.status),
        )
        .into_response()
    } else {
        let step = answering_step(flow).and_then(|id| run.steps.iter().find(|s| s.id == id));
        let output = match stopped_with {
            Some(result) => Some(result),
            None => step.and_then(|s| s.output.as_ref()),
        };
        let mut response = match output {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(RecordedValue::Json(value)) => json_reply(&run.run.id, value),
            Some(RecordedValue::Bytes(summary)) => {
                match server.inner.store.get_blob(&summary.sha256) {
                    Ok(Some(bytes)) => match HeaderValue::from_str(&summary.content_type) {
                        Ok(content_type) => {
                            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
                        }
                        Err(_) => bad_reply(&run.run.id, "its content type is not a header value"),
                    },
                    _ => bad_reply(&run.run.id, "its binary result is not in the store"),
                }
            }
        };
        if server.inner.options.sandbox_replies {
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            );
        }
        response
    };
    if let Ok(id) = HeaderValue::from_str(&run.run.id) {
        response.headers_mut().insert("x-weft-run-id", id);
    }
    response
}

/// A reply that passed the step's check but still cannot be served (it was recorded before
/// the check existed, or its binary value was pruned).
fn bad_reply(run_id: &str, why: &str) -> Response {
    tracing::warn!(
        run_id,
        "the webhook reply of the run cannot be served: {why}"
    );
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "bad_reply",
        format!(
            "run {run_id} succeeded, but its reply cannot be served; the server's log says why"
        ),
    )
    .into_response()
}

/// `{ status, headers, body }` becomes that response; any other value a 200 JSON body.
fn json_reply(run_id: &str, value: &Json) -> Response {
    let reply = match reply::parse(value) {
        Ok(Some(reply)) => reply,
        Ok(None) => return axum::Json(value.clone()).into_response(),
        Err(why) => return bad_reply(run_id, &why),
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut response = match reply.body {
        ReplyBody::Empty => status.into_response(),
        ReplyBody::Text(text) => (status, text).into_response(),
        ReplyBody::Json(json) => (status, axum::Json(json)).into_response(),
    };
    for (name, value) in &reply.headers {
        // Checked by `reply::parse`: tokens and visible ASCII always convert.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
