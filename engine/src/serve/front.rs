//! The front-end role (`weft serve --role front`): runs are queued in the PostgreSQL store for
//! the workers (`weft worker`) rather than run here, and a caller that waits for a run's end
//! waits for its record, wherever it runs: woken when the run leaves the queue (`NOTIFY`), and
//! looking on its own now and then in case a notification was lost.
//!
//! A flow's concurrency limit travels with its queued runs (the workers hold it across
//! processes); its queue bound is checked here, against the runs of the flow waiting in the
//! store, before the run is recorded.

use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::broadcast;
use weft_model::spec::FlowSpec;
use weft_model::workspace::Workspace;

use super::error::{ApiError, ApiResult};
use super::gate::Limits;
use super::{Mode, Role, Server, Started, queue_full, reply, run_error};
use crate::runner::RunRequest;
use crate::store::postgres::ANY_RUN;
use crate::store::{RunStore, Status};

/// How often a waited-for run's record is looked at, notifications aside.
const LOOK_EVERY: Duration = Duration::from_secs(1);

impl Server {
    /// Queues a run of `flow` of `instance` with `trigger`, answering as `mode` says.
    pub(super) async fn start_queued(
        &self,
        ws: &Workspace,
        instance: &str,
        flow: &str,
        trigger: Json,
        spec: FlowSpec,
        mode: Mode,
    ) -> ApiResult<Started> {
        let store = &self.inner.store;
        let queue = store.queue().ok_or_else(|| {
            ApiError::internal(
                "the front-end role queues runs in a PostgreSQL store, and this store is not one",
            )
        })?;
        let limits = Limits::of(spec.concurrency.as_ref());
        if let Some(limits) = limits {
            let (waiting, _) = queue
                .flow_load(instance, flow)
                .map_err(ApiError::internal)?;
            if waiting >= i64::from(limits.queue) {
                return Err(queue_full(instance, flow, waiting));
            }
        }
        let prepared = self
            .inner
            .runner
            .prepare(RunRequest {
                workspace: ws,
                instance,
                flow: Some(flow),
                trigger,
            })
            .map_err(run_error)?;
        let answer = match mode {
            Mode::Answer => reply::answering_step(&spec),
            _ => None,
        };
        let id = prepared.id().to_string();
        // Listening before it is queued, so that its end cannot be missed.
        let ended = (mode != Mode::Accept).then(|| queue.ended_runs());
        // Recorded as it is queued, so that its id can be looked up at once.
        queue
            .enqueue_recorded(
                prepared.record(),
                &json!({ "trigger": prepared.record().trigger, "answer": answer }),
                limits.map(|l| l.limit),
            )
            .map_err(ApiError::internal)?;
        let Some(mut ended) = ended else {
            return Ok(Started::Accepted(id));
        };
        loop {
            // Until the run's notification (or any, after the listener reconnected), or the
            // next look.
            let heard = async {
                loop {
                    match ended.recv().await {
                        Ok(run) if run == id || run == ANY_RUN => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(LOOK_EVERY, heard).await;
            if let Some(run) = store.get_run(&id).map_err(ApiError::internal)?
                && run.run.status != Status::Running
            {
                return Ok(Started::Finished(Box::new(run), spec));
            }
        }
    }

    /// Whether runs of `flow` of `instance` queued by any front end are waiting or running
    /// (always false for a process that runs its runs itself).
    pub(super) fn queued_unfinished(&self, instance: &str, flow: &str) -> anyhow::Result<bool> {
        match self.inner.store.queue() {
            Some(queue) if self.inner.options.role == Role::Front => {
                Ok(queue.flow_load(instance, flow)?.1 > 0)
            }
            _ => Ok(false),
        }
    }
}
