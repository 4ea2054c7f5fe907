//! When a run's records are written, made durable and acknowledged.
//!
//! A step's record is written when the step ends if it must be acknowledged before the run
//! ends (`--durability step`, or a step observer), if it wrote state, or if the run's records
//! are already being written as it goes; otherwise it is kept until the run ends. The run's
//! start record is written before its first step record, or by [`super::starts`] once the run
//! has gone on for a while. A run with nothing written when it ends is written once, whole,
//! with its steps.

use super::starts::Started;
use super::{RunError, Runner};
use crate::store::{Durability, RunRecord, StateWrite, StepRecord};

/// Writes one run's records: what is written at once, what is kept until the end, and when
/// each step is flushed and acknowledged.
pub(super) struct Recorder<'r> {
    runner: &'r Runner,
    /// The run's start record, once its steps are about to run.
    started: Option<Started>,
    /// How many of the run's steps are in the store.
    written_steps: usize,
    /// Whether the last step's record waits for the flush of the run's final record to be
    /// made durable and acknowledged.
    deferred_ack: bool,
}

impl<'r> Recorder<'r> {
    /// A recorder for a run whose first `written_steps` steps are in the store already (those
    /// of a resumed run).
    pub(super) fn new(runner: &'r Runner, written_steps: usize) -> Self {
        Self {
            runner,
            started: None,
            written_steps,
            deferred_ack: false,
        }
    }

    /// The run's steps are about to run: its start record is kept ready to be written.
    pub(super) fn begin(&mut self, run: &RunRecord) {
        self.started = Some(self.runner.starts.begin(run));
    }

    /// Records `record`, the step that just ended after `steps`, with the binary values it
    /// produced and the state it wrote; `ends_run` when no step follows it.
    pub(super) async fn step_ended(
        &mut self,
        run: &RunRecord,
        steps: &[StepRecord],
        record: &StepRecord,
        blobs: &[(String, Vec<u8>)],
        state_writes: &[StateWrite],
        ends_run: bool,
    ) -> Result<(), RunError> {
        let runner = self.runner;
        let store = &runner.store;
        // Acknowledged now rather than with the run's final record.
        let acknowledged =
            !ends_run && (runner.durability == Durability::Step || runner.observer.is_some());
        let write_now = acknowledged
            || !state_writes.is_empty()
            || self.written_steps > 0
            || self.started.as_ref().is_some_and(Started::written);
        if write_now {
            // The run's record goes first, then any steps kept until now, then this one.
            if let Some(started) = &self.started {
                started.write(&**store).map_err(RunError::Store)?;
            }
            for kept in &steps[self.written_steps..] {
                store.put_step(&run.id, kept).map_err(RunError::Store)?;
            }
            store
                .commit_step(&run.id, record, blobs, state_writes)
                .map_err(RunError::Store)?;
            self.written_steps = steps.len() + 1;
        } else {
            // Kept until the run ends; its binary values can go now (they are keyed by their
            // content, so an unreferenced one costs only space until pruned).
            store.put_blobs(blobs).map_err(RunError::Store)?;
        }
        if ends_run {
            // The run's own record follows at once; one flush after it covers both, and the
            // step is acknowledged then (see `run_ended`).
            self.deferred_ack = true;
        } else if acknowledged {
            if runner.durability == Durability::Step {
                runner.flusher.flush().await.map_err(RunError::Store)?;
            }
            if let Some(observer) = &runner.observer {
                observer(run, record);
            }
        }
        Ok(())
    }

    /// Writes what is left of `run`, which ended, with its `steps`; flushes unless flushing is
    /// left to the store, then acknowledges the last step if it waited for this flush.
    pub(super) async fn run_ended(
        mut self,
        run: &RunRecord,
        steps: &[StepRecord],
    ) -> Result<(), RunError> {
        let runner = self.runner;
        if let Some(started) = self.started.take() {
            started.end();
        }
        if self.written_steps == 0 {
            runner
                .store
                .put_whole_run(run, steps)
                .map_err(RunError::Store)?;
        } else {
            for step in &steps[self.written_steps..] {
                runner
                    .store
                    .put_step(&run.id, step)
                    .map_err(RunError::Store)?;
            }
            runner.store.put_run(run).map_err(RunError::Store)?;
        }
        if runner.durability != Durability::Background {
            runner.flusher.flush().await.map_err(RunError::Store)?;
        }
        if self.deferred_ack
            && let Some(observer) = &runner.observer
            && let Some(last) = steps.last()
        {
            observer(run, last);
        }
        Ok(())
    }
}
