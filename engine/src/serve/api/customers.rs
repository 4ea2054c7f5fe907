//! `/api/v1/customers`: the workspace's customers (admin).

use crate::serve::auth::Admin;
use crate::serve::extract::ApiPath;
use axum::extract::State;
use serde_json::{Value as Json, json};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{Server, ok};

pub(in crate::serve) fn customer_json(c: &weft_model::spec::CustomerSpec) -> Json {
    json!({ "id": c.id, "name": c.name, "fields": c.fields, "config": c.config })
}

pub(in crate::serve) async fn customers(State(server): State<Server>, _admin: Admin) -> ApiResult {
    let customers = server
        .inner
        .registry
        .customers()
        .map_err(ApiError::internal)?;
    ok(json!(
        customers.iter().map(customer_json).collect::<Vec<_>>()
    ))
}

pub(in crate::serve) async fn customer(
    State(server): State<Server>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let customer = server
        .inner
        .registry
        .customer(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no customer `{id}`")))?;
    ok(customer_json(&customer))
}
