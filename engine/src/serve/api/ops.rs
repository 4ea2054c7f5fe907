//! What load balancers and Prometheus ask: `/health` (liveness), `/ready` (readiness) and
//! `/metrics`.
//!
//! `/health` and `/ready` need no credentials, so they say nothing but whether this process
//! serves and can take work (and, when it cannot, a short reason). `/metrics` needs an admin
//! token: its labels name instances and flows.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::observe::metrics;
use crate::serve::Server;
use crate::serve::auth::Admin;
use crate::serve::error::{ApiError, ApiResult};

/// `GET /health`: 200 while the process serves requests at all.
pub(in crate::serve) async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /ready`: 200 when this process can take work, else 503 with why not.
pub(in crate::serve) async fn ready(State(server): State<Server>) -> Response {
    match server.readiness() {
        Ok(()) => axum::Json(json!({ "ready": true })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

/// `GET /metrics` (admin): every metric in the Prometheus text format.
pub(in crate::serve) async fn prometheus(State(server): State<Server>, _admin: Admin) -> ApiResult {
    server.record_queues();
    let text = metrics::render().ok_or_else(|| {
        ApiError::not_found(
            "this process records no metrics: the program serving the API installed no recorder (`weft::observe::metrics::install`)",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

impl Server {
    /// Whether this process can take work: it is not shutting down, and the store answers a
    /// read. The reason it cannot is short and generic; the log has the details.
    fn readiness(&self) -> Result<(), &'static str> {
        if self.shutting_down() {
            return Err("shutting down");
        }
        // A run id no run has: one lookup, whatever the store holds.
        if let Err(e) = self.inner.runner.store().get_run("readiness-probe") {
            tracing::error!("not ready: the store failed a read: {e:#}");
            return Err("the store does not answer");
        }
        Ok(())
    }

    /// Sets the queue gauges from the gates of the flows that have one, and from the shared
    /// queue on a PostgreSQL store, as they are now.
    fn record_queues(&self) {
        if let Some(queue) = self.inner.store.queue() {
            match queue.queue_depth() {
                Ok(depth) => metrics::shared_queue(
                    depth.waiting,
                    depth.running,
                    Duration::from_secs_f64(depth.oldest_wait_secs.unwrap_or(0.0).max(0.0)),
                ),
                Err(e) => tracing::error!("the shared queue's depth could not be read: {e:#}"),
            }
        }
        let gates: Vec<_> = self
            .inner
            .gates
            .lock()
            .expect("the gates' lock is never poisoned")
            .iter()
            .filter_map(|(key, gate)| Some((key.clone(), gate.clone()?)))
            .collect();
        for ((instance, flow), gate) in gates {
            let (depth, oldest) = gate.queue();
            metrics::queue(&flow, &instance, depth, oldest);
        }
    }
}
