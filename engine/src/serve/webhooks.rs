//! Webhooks: the request becomes the run's trigger; answered at once with 202, or when the run
//! ends with the reply taken from a step's result ([`super::reply`]).
//!
//! Every flow of every instance has a secret address, `/webhooks/{token}`, with a random token
//! of 256 bits kept in the store ([`crate::store::WebhookTokens`]). The readable address
//! `/webhooks/{instance}/{flow}` answers only for instances with a `webhook_secret`, whose
//! requests must then be signed ([`super::webhook_signature`]); an instance with a secret has
//! its token address signed too.
//!
//! Webhook callers are not authenticated as API users are, so they learn nothing they were not
//! given: an unknown token, an instance without a secret, a bad or stale signature, an unknown
//! or disabled flow all answer the same 404, and the reason goes to the server's log. Error
//! bodies never carry a run's error, a template or a step's name; the run's record has them.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use weft_model::trigger::{WebhookRequest, webhook_trigger};

use crate::observe::metrics;
use crate::serve::api::runs::accepted;
use crate::serve::error::ApiError;
use crate::serve::extract::ApiPath;
use crate::serve::{Mode, Server, Started, webhook_signature};
use crate::store::HookTarget;

/// What the trigger records as the path of a request to a token address: never the token.
const TOKEN_PATH: &str = "/webhooks/{token}";

/// `METHOD /webhooks/{token}`: runs the flow the token was made for.
pub(in crate::serve) async fn webhook_by_token(
    State(server): State<Server>,
    ApiPath(token): ApiPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let target = match server.inner.webhook_tokens.find(&token) {
        Ok(Some(target)) => target,
        Ok(None) => return nowhere(),
        Err(e) => return unavailable(&format!("a webhook token lookup failed: {e:#}")),
    };
    let request = Request {
        method,
        uri,
        headers,
    };
    receive(server, target, TOKEN_PATH, false, request, body).await
}

/// `METHOD /webhooks/{instance}/{flow}`: only for an instance with a webhook secret.
pub(in crate::serve) async fn webhook_by_name(
    State(server): State<Server>,
    ApiPath((instance, flow)): ApiPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_string();
    let request = Request {
        method,
        uri,
        headers,
    };
    let target = HookTarget { instance, flow };
    receive(server, target, &path, true, request, body).await
}

/// The head of a webhook request.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// The answer to anyone who asks for a webhook they may not know of.
fn nowhere() -> Response {
    ApiError::not_found("no webhook at this address").into_response()
}

/// A failure of the server's own; the caller hears only that, the log has the rest.
fn unavailable(why: &str) -> Response {
    tracing::error!("a webhook could not be taken: {why}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the webhook could not be taken; try again later",
    )
    .into_response()
}

/// Logs why a request to a webhook of `target` was refused, and refuses it as [`nowhere`].
fn refused(target: &HookTarget, why: &str) -> Response {
    tracing::info!(
        instance = %target.instance,
        flow = %target.flow,
        "webhook refused: {why}"
    );
    nowhere()
}

async fn receive(
    server: Server,
    target: HookTarget,
    path: &str,
    by_name: bool,
    request: Request,
    body: Body,
) -> Response {
    let received = Instant::now();
    let limit = server.inner.options.body_limit;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the webhook body is over the {limit}-byte limit"),
        )
        .into_response();
    };
    // The instance as the cached workspace has it (the cache is dropped on every write).
    let ws = match server.workspace_for(&target.instance) {
        Ok(ws) => ws,
        Err(e) => return refused(&target, e.message()),
    };
    let Some(instance) = ws.instance(&target.instance) else {
        return nowhere();
    };
    match &instance.webhook_secret {
        None if by_name => {
            return refused(
                &target,
                "its readable address needs a `webhook_secret` on the instance; use its token address",
            );
        }
        None => {}
        Some(reference) => {
            let secret = match crate::secrets::load_reference(reference, &server.inner.base_dir) {
                Ok(secret) => secret,
                Err(e) => {
                    return unavailable(&format!(
                        "the webhook secret of instance `{}` cannot be read: {e:#}",
                        target.instance
                    ));
                }
            };
            if let Err(why) = webhook_signature::verify(
                secret.as_bytes(),
                &request.headers,
                &body,
                super::auth::now_secs(),
            ) {
                return refused(&target, &why.to_string());
            }
        }
    }
    let Some(flow) = ws
        .integrations
        .get(&instance.integration)
        .and_then(|i| i.spec.flows.iter().find(|f| f.name == target.flow))
    else {
        return refused(&target, "the instance's integration has no such flow");
    };
    if !instance.enabled {
        return refused(&target, "the instance is disabled");
    }

    let trigger = match trigger(&request, path, &body) {
        Ok(trigger) => trigger,
        Err(e) => return e.into_response(),
    };
    let wait_asked = match wait_query(request.uri.query()) {
        Ok(wait) => wait,
        Err(e) => return e.into_response(),
    };
    let mode = if wait_asked || flow.webhook.as_ref().is_some_and(|w| w.sync) {
        Mode::Answer
    } else {
        Mode::Accept
    };
    let answer = match server
        .start(&target.instance, &target.flow, trigger, mode)
        .await
    {
        Ok(Started::Accepted(run_id)) => accepted(&run_id),
        Ok(Started::Finished(run, spec)) => super::reply::webhook_reply(&server, &run, &spec),
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            "too many runs of this webhook are waiting; try again later",
        )
        .into_response(),
        Err(e) => unavailable(&format!(
            "webhook `{}`/`{}`: {}",
            target.instance,
            target.flow,
            e.message()
        )),
    };
    // Recorded only for a flow that exists: the flow of a refused request is whatever its
    // caller made up, and each new one would be a new series.
    metrics::webhook_answered(&target.flow, mode == Mode::Answer, received.elapsed());
    answer
}

/// `?wait=true|false` (also `1`/`0`): whether the caller asked to wait for the run.
fn wait_query(query: Option<&str>) -> Result<bool, ApiError> {
    let Some((_, value)) = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(name, _)| name == "wait")
    else {
        return Ok(false);
    };
    match value.as_ref() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request("`wait` must be true or false")),
    }
}

/// The run's trigger ([`weft_model::trigger`]).
fn trigger(request: &Request, path: &str, body: &[u8]) -> Result<Json, ApiError> {
    let headers: Vec<(&str, &[u8])> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    webhook_trigger(&WebhookRequest {
        method: request.method.as_str(),
        path,
        query: request.uri.query(),
        headers: &headers,
        body,
    })
    .map_err(ApiError::bad_request)
}
