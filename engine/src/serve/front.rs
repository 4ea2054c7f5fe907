//! The front-end role (`weft serve --role front`): runs are queued in the PostgreSQL store for
//! the workers (`weft worker`) rather than run here, and a caller that waits for a run's end
//! waits for its record, wherever it runs.

use std::time::Duration;

use serde_json::{Value as Json, json};
use weft_model::spec::FlowSpec;
use weft_model::workspace::Workspace;

use super::error::{ApiError, ApiResult};
use super::{Mode, Server, Started, reply, run_error};
use crate::runner::RunRequest;
use crate::store::{RunStore, Status};

/// The longest pause between two looks at a waited-for run's record.
const LOOK_EVERY: Duration = Duration::from_millis(100);

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
        // Recorded (and committed) before it is queued, so that its id can be looked up at
        // once and the worker's records, which come after, replace this one.
        store
            .put_run(prepared.record())
            .and_then(|()| store.flush())
            .map_err(ApiError::internal)?;
        queue
            .enqueue(
                &id,
                instance,
                flow,
                &json!({ "trigger": prepared.record().trigger, "answer": answer }),
            )
            .map_err(ApiError::internal)?;
        if mode == Mode::Accept {
            return Ok(Started::Accepted(id));
        }
        let mut pause = Duration::from_millis(2);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LOOK_EVERY);
            if let Some(run) = store.get_run(&id).map_err(ApiError::internal)?
                && run.run.status != Status::Running
            {
                return Ok(Started::Finished(Box::new(run), spec));
            }
        }
    }
}
