//! `/api/v1/instances/{id}/flows/{flow}/runs` (trigger a flow) and `/api/v1/runs`.

use crate::serve::extract::{ApiPath, ApiQuery};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use weft_model::records::scope_path;

use crate::auth::Principal;
use crate::store::{RunFilter, RunStore, Status};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Mode, Server, Started, ok, sees};

#[derive(Debug, Deserialize)]
pub(in crate::serve) struct WaitQuery {
    #[serde(default)]
    wait: Option<bool>,
}

pub(in crate::serve) async fn trigger_flow(
    State(server): State<Server>,
    principal: Principal,
    ApiPath((id, flow)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    server.visible_instance(&principal, &id)?;
    // The same shape as a webhook's trigger, so a flow reads `trigger.body` either way.
    let body: Json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    let trigger = json!({ "via": "api", "body": body });
    match server
        .start(
            &id,
            &flow,
            trigger,
            if query.wait.unwrap_or(false) {
                Mode::Wait
            } else {
                Mode::Accept
            },
        )
        .await?
    {
        Started::Accepted(run_id) => Ok(accepted(&run_id)),
        Started::Finished(run, _) => ok(serde_json::to_value(&*run).map_err(ApiError::internal)?),
    }
}

pub(in crate::serve) fn accepted(run_id: &str) -> Response {
    let location = format!("/api/v1/runs/{run_id}");
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "run_id": run_id, "status": "running", "location": location })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Runs listed when the query does not say how many.
const DEFAULT_LIMIT: usize = 100;
/// The most runs one listing returns.
const MAX_LIMIT: usize = 1000;
/// The largest `offset` into a run's steps (as the API document says).
const MAX_OFFSET: usize = 1_000_000_000;

#[derive(Debug, Deserialize)]
pub(in crate::serve) struct RunsQuery {
    instance: Option<String>,
    customer: Option<String>,
    flow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

pub(in crate::serve) async fn runs(
    State(server): State<Server>,
    principal: Principal,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be from 1 to {MAX_LIMIT}"
        )));
    }
    let status = query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let customer = match &principal {
        Principal::Admin { .. } => query.customer,
        Principal::Customer { id, .. } => {
            if query.customer.as_ref().is_some_and(|c| c != id) {
                return ok(json!([]));
            }
            Some(id.clone())
        }
    };
    let filter = RunFilter {
        instance: query.instance,
        customer,
        flow: query.flow,
        status,
        since_ms: None,
        until_ms: None,
        limit: Some(limit),
    };
    let runs = server
        .inner
        .store
        .list_runs(&filter)
        .map_err(ApiError::internal)?;
    ok(serde_json::to_value(runs).map_err(ApiError::internal)?)
}

/// Which of a run's step records `GET /runs/{run}` returns: all of them (the default), or,
/// for large loops, those directly inside one place (`within`, a [`scope_path`]: `""` for the
/// flow's own steps, `pages[1]` for iteration 1 of loop `pages`), a page at a time.
#[derive(Debug, Deserialize)]
pub(in crate::serve) struct RunQuery {
    within: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

pub(in crate::serve) async fn run(
    State(server): State<Server>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult {
    let mut run = server
        .inner
        .store
        .get_run(&id)
        .map_err(ApiError::internal)?
        .filter(|r| sees(&principal, &r.run.customer))
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    if query.within.is_none() && query.offset.is_none() && query.limit.is_none() {
        return ok(serde_json::to_value(&run).map_err(ApiError::internal)?);
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be from 1 to {MAX_LIMIT}"
        )));
    }
    if let Some(within) = &query.within {
        run.steps.retain(|s| scope_path(&s.scope) == *within);
    }
    let offset = query.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "`offset` must be from 0 to {MAX_OFFSET}"
        )));
    }
    let total = run.steps.len();
    let offset = offset.min(total);
    run.steps = run.steps.drain(offset..).take(limit).collect();
    let mut body = serde_json::to_value(&run).map_err(ApiError::internal)?;
    body["steps_total"] = json!(total);
    ok(body)
}
