//! When a run's records are written, made durable and acknowledged.
//!
//! With `--durability step`, a step that may have changed something outside Weft (an HTTP
//! request other than GET/HEAD/OPTIONS/TRACE, an object written, state written, or a failure)
//! is flushed before the run goes on, and so is every record before it: after a crash it is
//! never run again. A step that only read is acknowledged with the next flush, its own run's
//! or another's; a crash before that runs it again, which changes nothing outside.
//!
//! A step's record is written when the step ends if it is to be flushed now, if it is
//! acknowledged at once (a step observer with `--durability run|background`), if it wrote
//! state, if it ran inside flow control (a loop's iterations are not all kept in memory), or if
//! the run's records are already being written as it goes; otherwise it is kept until the run
//! ends. The run's start record is written before its first step record, or by
//! [`super::starts`] once the run has gone on for a while. A run with nothing written when it
//! ends is written once, whole, with its steps.
//!
//! Steps of one run may end at once (the iterations of a loop with `concurrency`), so the
//! recorder is shared: records are numbered and written under its lock, and flushes are
//! awaited outside it.

use std::sync::{Mutex, MutexGuard};

use super::starts::Started;
use super::{RunError, Runner};
use crate::store::{Durability, RunRecord, StateWrite, StepRecord};

/// Writes one run's records: what is written at once, what is kept until the end, and when
/// each step is flushed and acknowledged.
pub(super) struct Recorder<'r> {
    runner: &'r Runner,
    state: Mutex<State>,
}

struct State {
    /// The run's start record, once its steps are about to run.
    started: Option<Started>,
    /// The number the next record gets.
    next_index: u32,
    /// The records of the flow's own steps (not those inside flow control), in order.
    top: Vec<StepRecord>,
    /// How many of `top` are in the store.
    written_top: usize,
    /// Whether records are written as they end (anything of the run is in the store).
    writing: bool,
    /// Whether the last step's record waits for the flush of the run's final record to be
    /// made durable and acknowledged.
    deferred_ack: bool,
    /// Records of steps that only read, to be acknowledged after the next flush (kept only
    /// when there is an observer to tell).
    unacknowledged: Vec<StepRecord>,
}

impl<'r> Recorder<'r> {
    /// A recorder for a run whose `prior` records are in the store already (those of a resumed
    /// run).
    pub(super) fn new(runner: &'r Runner, prior: &[StepRecord]) -> Self {
        let top: Vec<StepRecord> = prior
            .iter()
            .filter(|r| r.scope.is_empty())
            .cloned()
            .collect();
        Self {
            runner,
            state: Mutex::new(State {
                started: None,
                next_index: prior.iter().map(|r| r.index + 1).max().unwrap_or(0),
                written_top: top.len(),
                top,
                writing: !prior.is_empty(),
                deferred_ack: false,
                unacknowledged: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's steps are about to run: its start record is kept ready to be written.
    pub(super) fn begin(&self, run: &RunRecord) {
        self.lock().started = Some(self.runner.starts.begin(run));
    }

    /// Records `record`, a step that just ended, with the binary values it produced and the
    /// state it wrote; `changed_outside` when it may have changed something outside Weft,
    /// `ends_run` when the run ends with it.
    pub(super) async fn step_ended(
        &self,
        run: &RunRecord,
        mut record: StepRecord,
        blobs: &[(String, Vec<u8>)],
        state_writes: &[StateWrite],
        changed_outside: bool,
        ends_run: bool,
    ) -> Result<(), RunError> {
        let runner = self.runner;
        let store = &runner.store;
        let per_step = runner.durability == Durability::Step;
        // The last of the flow's own steps waits for the run's final record, whose flush makes
        // both durable; any other step that changed something is flushed now. (A step inside
        // flow control is flushed on its own even when it ends the run: the final flush
        // acknowledges the flow's own last step only.)
        let deferred = ends_run && record.scope.is_empty();
        let flush_now = per_step && !deferred && (changed_outside || !state_writes.is_empty());
        // Without per-step flushes an observer hears of each step as it is written.
        let observed = runner.observer.is_some();
        let acknowledge_now = !deferred && (flush_now || (observed && !per_step));
        let (for_observer, earlier) = {
            let mut state = self.lock();
            record.index = state.next_index;
            state.next_index += 1;
            let nested = !record.scope.is_empty();
            let write_now = acknowledge_now
                || nested
                || !state_writes.is_empty()
                || state.writing
                || state.started.as_ref().is_some_and(Started::written);
            if write_now {
                // The run's record goes first, then any steps kept until now, then this one.
                if let Some(started) = &state.started {
                    started.write(&**store).map_err(RunError::Store)?;
                }
                for kept in &state.top[state.written_top..] {
                    store.put_step(&run.id, kept).map_err(RunError::Store)?;
                }
                store
                    .commit_step(&run.id, &record, blobs, state_writes)
                    .map_err(RunError::Store)?;
                state.writing = true;
            } else {
                // Kept until the run ends; its binary values can go now (they are keyed by
                // their content, so an unreferenced one costs only space until pruned).
                store.put_blobs(blobs).map_err(RunError::Store)?;
            }
            if deferred {
                // The run's own record follows at once; one flush after it covers both, and
                // the step is acknowledged then (see `run_ended`).
                state.deferred_ack = true;
            }
            let for_observer = (acknowledge_now && observed).then(|| record.clone());
            if observed && !deferred && !acknowledge_now {
                state.unacknowledged.push(record.clone());
            }
            // Every step that only read is in the store by now (written above, or written by
            // this step's write), so the flush below acknowledges them too.
            let earlier = if flush_now {
                std::mem::take(&mut state.unacknowledged)
            } else {
                Vec::new()
            };
            if !nested {
                state.top.push(record);
                if write_now {
                    state.written_top = state.top.len();
                }
            }
            (for_observer, earlier)
        };
        if flush_now {
            runner.flusher.flush().await.map_err(RunError::Store)?;
        }
        if let Some(observer) = &runner.observer {
            for record in earlier.iter().chain(&for_observer) {
                observer(run, record);
            }
        }
        Ok(())
    }

    /// Writes what is left of `run`, which ended; flushes unless flushing is left to the store,
    /// then acknowledges the last step if it waited for this flush. Returns the records of the
    /// flow's own steps.
    pub(super) async fn run_ended(self, run: &RunRecord) -> Result<Vec<StepRecord>, RunError> {
        let runner = self.runner;
        let mut state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(started) = state.started.take() {
            started.end();
        }
        if !state.writing {
            runner
                .store
                .put_whole_run(run, &state.top)
                .map_err(RunError::Store)?;
        } else {
            for step in &state.top[state.written_top..] {
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
        if let Some(observer) = &runner.observer {
            for record in &state.unacknowledged {
                observer(run, record);
            }
            if state.deferred_ack
                && let Some(last) = state.top.last()
            {
                observer(run, last);
            }
        }
        Ok(state.top)
    }
}
