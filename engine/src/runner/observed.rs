//! A run as operators see it: a `run` span around it, so every line logged while it goes on
//! carries its id, flow and instance; a line when it starts and when it ends; and the run
//! counters ([`crate::observe::metrics`]), counted here, where every kind of run (new,
//! replayed, resumed) starts and ends, so that they agree with the records.

use tracing::Instrument;
use weft_model::workspace::Workspace;

use super::{RunError, Runner, StartingPoint};
use crate::observe::metrics;
use crate::store::{RunRecord, RunWithSteps, Status};

impl Runner {
    /// Runs `run` as [`Runner::execute_run`] does, inside its span, counted.
    pub(super) async fn execute(
        &self,
        ws: &Workspace,
        run: RunRecord,
        from: StartingPoint<'_>,
        answer: Option<&str>,
    ) -> Result<RunWithSteps, RunError> {
        let span = tracing::info_span!(
            "run",
            run_id = %run.id,
            flow = %run.flow,
            instance = %run.instance,
        );
        async move {
            // A run whose instance or flow is gone is refused before anything is recorded: it
            // is not counted either.
            self.locate(ws, &run.instance, Some(&run.flow))?;
            let counted = Counted::start(&run);
            let ended = self.execute_run(ws, run, from, answer).await;
            match &ended {
                Ok(ended) => counted.finish(&ended.run),
                // The run could not be recorded to its end; `Counted` counts it as the
                // recorder records it, interrupted.
                Err(e) => tracing::error!(error = %e, "the run could not be recorded to its end"),
            }
            ended
        }
        .instrument(span)
        .await
    }
}

/// A run counted as started (or resumed) and not yet as finished. Dropped unfinished (its
/// future was cancelled, or it failed to record its end), it is counted `interrupted`, which
/// is how the recorder records such a run.
struct Counted {
    run_id: String,
    flow: String,
    instance: String,
    finished: bool,
}

impl Counted {
    fn start(run: &RunRecord) -> Self {
        if run.resumed > 0 {
            metrics::run_resumed(&run.flow, &run.instance);
            tracing::info!(resumed = run.resumed, "run resumed");
        } else {
            metrics::run_started(&run.flow, &run.instance);
            match &run.replay_of {
                Some(of) => tracing::info!(replay_of = %of, "run started"),
                None => tracing::info!("run started"),
            }
        }
        Self {
            run_id: run.id.clone(),
            flow: run.flow.clone(),
            instance: run.instance.clone(),
            finished: false,
        }
    }

    fn finish(mut self, run: &RunRecord) {
        self.finished = true;
        metrics::run_finished(&self.flow, &self.instance, run.status);
        let duration_ms = run.duration_us.unwrap_or(0) / 1000;
        // At `info` whatever the status: a failed run is an outcome, which `weft run` reports
        // itself (its logs show only problems of the engine's own), and metrics count.
        tracing::info!(status = %run.status, duration_ms, "run finished");
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.finished {
            metrics::run_finished(&self.flow, &self.instance, Status::Interrupted);
            // With the ids of its own: a run dropped as the runtime shuts down may be dropped
            // where its span is no longer known.
            tracing::warn!(
                run_id = %self.run_id,
                flow = %self.flow,
                instance = %self.instance,
                status = %Status::Interrupted,
                "run cut short before it ended"
            );
        }
    }
}
